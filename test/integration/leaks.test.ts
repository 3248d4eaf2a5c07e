/**
 * Nothing is left behind (spec §3: on Close or on the connection dropping, the broker releases everything the
 * session held): many connect/handshake/disconnect cycles on every transport, connections cut mid-frame,
 * sessions ending with streams and fragment routes open.
 */
import test, { describe } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { Flag, encodeFrame } from '../../src/protocol/index.js';
import type { RunningServer } from '../../src/server.js';
import { RawClient, type RawTransport } from '../support/raw-client.js';
import { startTestBroker, eventually } from '../support/broker.js';
import { TRANSPORTS, assertBrokerEmpty, closeAll, connect, portOf, sleep } from '../support/integration.js';

const CONFIG = { timeouts: { requestMs: 5000, idleMs: 10_000, handshakeMs: 2000 } };

async function withBroker(body: (server: RunningServer) => Promise<void>, overrides: Record<string, Record<string, unknown>> = CONFIG): Promise<void> {
  const server = await startTestBroker(overrides);
  try {
    await body(server);
  } finally {
    await server.close();
  }
}

function activeResources(): number {
  return process.getActiveResourcesInfo().length;
}

function describeResources(): string {
  const counts = new Map<string, number>();
  for (const r of process.getActiveResourcesInfo()) counts.set(r, (counts.get(r) ?? 0) + 1);
  return [...counts].map(([k, v]) => `${k}=${v}`).join(' ');
}

/** One full cycle: connect, handshake, one Ping/Pong, leave (udp with a Close frame, the others by dropping). */
async function cycle(server: RunningServer, transport: RawTransport, i: number): Promise<void> {
  const client = await connect(server, transport, i % 3 === 0 ? {} : { name: `leak-${i % 7}` });
  try {
    client.ping();
    await client.nextFlag(Flag.Pong);
  } finally {
    closeAll(client);
  }
}

describe('connect/disconnect cycles', () => {
  test('1,000 cycles over tcp, ws and udp, sequential and in parallel batches of 50, leave nothing behind', async () => {
    await withBroker(async (server) => {
      // Warm up every transport once, so lazily created handles are not counted as growth.
      for (const t of TRANSPORTS) await cycle(server, t, 1);
      await assertBrokerEmpty(server);
      await sleep(50);
      const before = activeResources();
      const beforeText = describeResources();
      const total = 1000;
      let done = 0;
      // 150 one by one, 50 per transport.
      for (let i = 0; i < 150; i++, done++) await cycle(server, TRANSPORTS[i % 3], i);
      // The rest in parallel batches of 50, transports interleaved.
      while (done < total) {
        const batch: Promise<void>[] = [];
        for (let k = 0; k < 50 && done < total; k++, done++) batch.push(cycle(server, TRANSPORTS[done % 3], done));
        await Promise.all(batch);
      }
      assert.equal(done, total);
      assert.equal(server.broker.stats.connectionsTotal, total + 3);
      await assertBrokerEmpty(server, 5000);
      assert.equal(server.broker.stats.sessionsOpen, 0);
      assert.equal(server.broker.connectionCount, 0);
      assert.equal([...server.broker.registry.names()].length, 0, 'no name group left');
      try {
        await eventually(() => activeResources() <= before + 3, 5000, 'active resources back near the start');
      } catch {
        assert.fail(`active resources grew: before ${before} (${beforeText}), after ${activeResources()} (${describeResources()})`);
      }
    });
  });

  test('udp sessions that vanish without Close are released by the idle timeout', async () => {
    await withBroker(async (server) => {
      const clients = await Promise.all(Array.from({ length: 20 }, (_, i) => connect(server, 'udp', { name: `ghost-${i % 3}` })));
      await eventually(() => server.broker.sessionCount === 20, 1000, '20 udp sessions');
      for (const c of clients) c.close(); // no Close frame
      await assertBrokerEmpty(server, 3000);
    }, { timeouts: { requestMs: 300, idleMs: 300, handshakeMs: 300 } });
  });

  test('connections that never finish the handshake are released by the handshake timeout', async () => {
    await withBroker(async (server) => {
      const clients = await Promise.all([
        ...Array.from({ length: 10 }, () => RawClient.open('tcp', portOf(server, 'tcp'))),
        ...Array.from({ length: 10 }, () => RawClient.open('ws', portOf(server, 'ws'))),
      ]);
      await eventually(() => server.broker.sessionCount === 20, 1000, '20 connections');
      await Promise.all(clients.map((c) => c.waitClosed(3000)));
      await assertBrokerEmpty(server, 3000);
    }, { timeouts: { requestMs: 300, idleMs: 1000, handshakeMs: 200 } });
  });
});

describe('abrupt ends', () => {
  test('tcp connections cut mid-frame (before and after the handshake) leave nothing behind', async () => {
    await withBroker(async (server) => {
      const port = portOf(server, 'tcp');
      const svc = await connect(server, 'tcp', { name: 'svc' });
      for (let i = 0; i < 30; i++) {
        const handshaken = i % 2 === 0;
        const client = handshaken ? await RawClient.connect('tcp', port, { name: 'half' }) : await RawClient.open('tcp', port);
        const frame = handshaken
          ? encodeFrame({ flag: Flag.Request, event: 'cut', meta: '@=svc', data: randomBytes(4000) })
          : encodeFrame({ flag: Flag.Connect, sid: 'abc', event: `tcp://127.0.0.1:${port}`, meta: 'Socket.D=1.0', data: `tcp://127.0.0.1:${port}` });
        // Half a frame, or just part of its length prefix, then the connection drops.
        const cut = i % 3 === 0 ? 2 : Math.floor(frame.length / 2);
        client.sendBytes(frame.subarray(0, cut));
        await sleep(5);
        client.close();
      }
      await eventually(() => server.broker.sessionCount === 1, 3000, 'only svc left');
      assert.equal(svc.frames.filter((f) => f.flag === Flag.Request).length, 0, 'no half frame was forwarded');
      closeAll(svc);
      await assertBrokerEmpty(server);
    });
  });

  test('a 1 MB frame announced and cut after 100 bytes leaves nothing behind', async () => {
    await withBroker(async (server) => {
      const client = await connect(server, 'tcp', { name: 'big' });
      const frame = encodeFrame({ flag: Flag.Message, event: 'big', meta: '@=nobody', data: Buffer.alloc(1 << 20) });
      client.sendBytes(frame.subarray(0, 100));
      await sleep(20);
      client.close();
      await assertBrokerEmpty(server);
    });
  });

  test('ws connections cut in the middle of a WebSocket frame leave nothing behind', async () => {
    await withBroker(async (server) => {
      const port = portOf(server, 'ws');
      for (let i = 0; i < 10; i++) {
        const socket = net.connect(port, '127.0.0.1');
        await new Promise<void>((resolve, reject) => {
          socket.once('connect', resolve);
          socket.once('error', reject);
        });
        socket.on('error', () => undefined);
        const upgraded = new Promise<void>((resolve) => {
          let text = '';
          const onData = (chunk: Buffer): void => {
            text += chunk.toString('latin1');
            if (text.includes('\r\n\r\n')) {
              socket.off('data', onData);
              resolve();
            }
          };
          socket.on('data', onData);
        });
        socket.write(
          'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
            `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: Socket.D\r\n\r\n`,
        );
        await upgraded;
        // A masked binary frame header announcing 1000 bytes, then only 10 of them.
        const header = Buffer.from([0x82, 0x80 | 126, 0x03, 0xe8, 1, 2, 3, 4]);
        socket.write(Buffer.concat([header, randomBytes(10)]));
        await sleep(5);
        socket.destroy();
      }
      await assertBrokerEmpty(server);
    });
  });

  test('sessions ending with streams, scatter-gathers and fragment routes open leave nothing behind', async () => {
    await withBroker(async (server) => {
      for (let round = 0; round < 3; round++) {
        const responders = [
          await connect(server, 'tcp', { name: 'svc' }),
          await connect(server, 'ws', { name: 'svc' }),
          await connect(server, 'udp', { name: 'svc' }),
        ];
        const requesters = [await connect(server, 'tcp'), await connect(server, 'ws'), await connect(server, 'udp')];
        await eventually(() => server.broker.registry.group('svc')?.members.length === 3, 1000, '3 responders');
        for (const r of requesters) {
          for (let k = 0; k < 5; k++) r.send({ flag: Flag.Request, event: 'open', meta: '@=svc', data: `${k}` });
          r.send({ flag: Flag.Subscribe, event: 'open', meta: '@=svc', data: 'sub' });
          r.send({ flag: Flag.Subscribe, event: 'open', meta: '@=svc*', data: 'gather' });
          r.send({ flag: Flag.Request, event: 'open', meta: '@=svc&Data-Fragment-Idx=1&Data-Fragment-Total=3&Data-Length=30', data: 'part' });
          r.send({ flag: Flag.Message, event: 'open', meta: '@=svc&Data-Fragment-Idx=1&Data-Fragment-Total=2&Data-Length=30', data: 'part' });
        }
        // 3 requesters x (5 + 1 + 3 + 1 + 1) frames reach the responders.
        await eventually(() => responders.reduce((n, c) => n + c.frames.length, 0) >= 33, 3000, 'every frame delivered');
        assert.ok(server.broker.stats.streamsOpen >= 3 * 8, `streams open: ${server.broker.stats.streamsOpen}`);
        assert.ok(server.broker.pendingTimers > 0);
        // Some responders answer a bit, then everyone leaves abruptly: requesters first on even rounds.
        const first = round % 2 === 0 ? requesters : responders;
        const second = round % 2 === 0 ? responders : requesters;
        for (const c of first) c.transport === 'udp' ? c.sendClose() : c.close();
        await sleep(20);
        for (const c of second) c.transport === 'udp' ? c.sendClose() : c.close();
        await assertBrokerEmpty(server);
        for (const c of [...first, ...second]) c.close();
      }
      assert.equal(server.broker.stats.streamsOpen, 0);
    });
  });
});
