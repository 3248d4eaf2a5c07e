/**
 * The Node dialer loads the ws and udp adapters on their first dial (dial.ts). These tests run first in their
 * own process, so the adapters are not loaded yet: a dial given up while its adapter loads must open nothing,
 * and the next dial must work.
 */
import test, { describe } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { connect, SocketdError } from '../../src/client/index.js';

// The broker (which loads every adapter) is imported only once the first dial was given up.
const broker = (): Promise<typeof import('../support/broker.js')> => import('../support/broker.js');

async function rejects(promise: Promise<unknown>): Promise<SocketdError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof SocketdError, String(error));
    return error;
  }
  assert.fail('expected a rejection');
}

describe('client: dialing while the transport adapter loads', () => {
  test('ws: a connect timeout during the load opens no socket; the next connect works', async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((s) => void sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as net.AddressInfo).port;
    const error = await rejects(connect(`sd:ws://127.0.0.1:${port}/`, { connectTimeout: 1 }));
    assert.equal(error.code, 'connect_timeout');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(sockets.length, 0, 'the cancelled dial never opened a socket');
    const { startTestBroker, ports } = await broker();
    const server = await startTestBroker();
    try {
      const client = await connect(`sd:ws://127.0.0.1:${ports(server).ws}/`);
      assert.equal(client.transport, 'ws');
      await client.close();
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
      await server.close();
    }
  });

  test('udp: the first dial loads the adapter and connects', async () => {
    const { startTestBroker, ports } = await broker();
    const server = await startTestBroker();
    try {
      const client = await connect(`sd:udp://127.0.0.1:${ports(server).udp}`);
      assert.equal(client.transport, 'udp');
      const reply = client.request('nobody.here', 'x', { timeout: 2000 });
      assert.equal((await rejects(reply)).alarmCode, 4004);
      await client.close();
    } finally {
      await server.close();
    }
  });
});
