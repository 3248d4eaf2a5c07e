/**
 * Client life across a broker restart (docs/client.md "Reconnect"): pending requests fail with
 * connection_lost, the client reconnects with backoff to a new broker on the same ports, its subscriptions
 * are restored exactly once, and a refused re-handshake or a disabled reconnect ends the client.
 */
import test, { describe } from 'node:test';
import assert from 'node:assert/strict';
import { connect, SocketdError, type Client } from '../../src/client/index.js';
import type { RunningServer } from '../../src/server.js';
import type { AccessPolicy } from '../../src/broker/access.js';
import { eventually, ports, startTestBroker } from '../support/broker.js';

type T = 'tcp' | 'ws' | 'udp';
const TRANSPORTS: readonly T[] = ['tcp', 'ws', 'udp'];
const WAIT = 8000;

function urlOf(p: { tcp: number; udp: number; ws: number }, transport: T): string {
  return transport === 'ws' ? `sd:ws://127.0.0.1:${p.ws}/` : `sd:${transport}://127.0.0.1:${p[transport]}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A broker on exactly these ports (the restarted one). */
function restartOn(p: { tcp: number; udp: number; ws: number }, access?: AccessPolicy): Promise<RunningServer> {
  const at = (port: number) => ({ enabled: true, host: '127.0.0.1', port });
  return startTestBroker({ listeners: { tcp: at(p.tcp), udp: at(p.udp), ws: at(p.ws) } }, access === undefined ? {} : { access });
}

const FAST_RECONNECT = { reconnect: { initialDelay: 50, maxDelay: 400, factor: 2, jitter: 0.2 }, heartbeatInterval: 250, connectTimeout: 2000 };

describe('client: reconnect', () => {
  test('after a broker restart on the same ports: pending requests fail, subscriptions are restored once', async () => {
    const first = await startTestBroker();
    const p = ports(first);
    const clients = new Map<T, Client>();
    const received = new Map<T, string[]>();
    const disconnects = new Map<T, SocketdError[]>();
    const reconnects = new Map<T, Promise<{ attempts: number }>>();
    const delays: number[] = [];
    let second: RunningServer | null = null;
    let responder: Client | null = null;
    let publisher: Client | null = null;
    try {
      for (const t of TRANSPORTS) {
        const c = await connect(urlOf(p, t), { ...FAST_RECONNECT, name: `sub-${t}` });
        clients.set(t, c);
        received.set(t, []);
        disconnects.set(t, []);
        await c.on('feed.*', (m) => void received.get(t)!.push(m.text()));
        await c.on('ask.me', (m) => m.reply(`${t} here`));
        c.events.on('disconnect', (e) => void disconnects.get(t)!.push(e));
        if (t === 'tcp') c.events.on('reconnecting', ({ delay }) => void delays.push(delay));
        reconnects.set(t, c.events.next('reconnect'));
      }
      responder = await connect(urlOf(p, 'tcp'), { reconnect: false });
      const responderClosed = responder.events.next('close');
      await responder.on('slow', () => {});
      const pending = TRANSPORTS.map((t) => clients.get(t)!.request('slow', 'x', { timeout: 20_000 }).then(
        () => 'resolved',
        (e: SocketdError) => e.code,
      ));
      await sleep(100);

      await first.close();
      assert.deepEqual(await Promise.all(pending), ['connection_lost', 'connection_lost', 'connection_lost']);
      await responderClosed;
      assert.equal(responder.state, 'closed', 'reconnect: false ends the client when the connection goes');
      for (const t of TRANSPORTS) {
        await eventually(() => disconnects.get(t)!.length === 1, WAIT, `${t} disconnect`);
        const e = disconnects.get(t)![0]!;
        assert.equal(e.code, 'connection_lost');
        assert.equal(e.closeCode, 1001, `${t}: the broker's Close code (${e.message})`);
        assert.throws(() => clients.get(t)!.send('feed.x'), (err: SocketdError) => err.code === 'connection_lost');
      }

      await sleep(700); // a few failed attempts with growing delays
      second = await restartOn(p);
      for (const t of TRANSPORTS) {
        const { attempts } = await reconnects.get(t)!;
        assert.ok(attempts >= 1, `${t}: ${attempts} attempts`);
        assert.equal(clients.get(t)!.connected, true);
      }
      assert.ok(delays.length >= 3, `several attempts: ${delays.join()}`);
      assert.ok(delays[1]! > delays[0]! * 1.2 || delays[2]! > delays[1]!, `backoff grows: ${delays.join()}`);
      assert.ok(delays.every((d) => d <= 400 * 1.2 + 1), `capped: ${delays.join()}`);
      assert.equal(second.events.subscriptionCount, 6, 'two subscriptions per client, no duplicates');

      publisher = await connect(urlOf(p, 'ws'));
      publisher.send('feed.news', 'after restart');
      for (const t of TRANSPORTS) await eventually(() => received.get(t)!.length === 1, WAIT, `${t} got the message`);
      await sleep(200);
      for (const t of TRANSPORTS) assert.deepEqual(received.get(t), ['after restart'], `${t}: exactly once`);
      for (const t of TRANSPORTS) {
        const reply = await publisher.request('ask.me', undefined, { to: `sub-${t}` });
        assert.equal(reply.text(), `${t} here`);
      }
    } finally {
      await Promise.all([...clients.values()].map((c) => c.close()));
      await responder?.close();
      await publisher?.close();
      await first.close();
      await second?.close();
    }
  });

  test('a refused re-handshake ends the client (no more attempts)', async () => {
    const first = await startTestBroker();
    const p = ports(first);
    let second: RunningServer | null = null;
    const client = await connect(urlOf(p, 'tcp'), FAST_RECONNECT);
    try {
      const errors: SocketdError[] = [];
      client.events.on('error', (e) => void errors.push(e));
      const closed = client.events.next('close');
      await first.close();
      second = await restartOn(p, { authenticate: () => ({ code: 'auth_failed', text: 'go away' }) });
      await closed;
      assert.equal(client.state, 'closed');
      assert.equal(errors[0]?.code, 'handshake_refused');
      assert.equal(errors[0]?.message, 'go away');
      const sessions = second.broker.sessionCount;
      await sleep(300);
      assert.equal(second.broker.sessionCount, sessions, 'no further attempts');
    } finally {
      await client.close();
      await first.close();
      await second?.close();
    }
  });

  test('close() while reconnecting stops the attempts and resolves', async () => {
    const first = await startTestBroker();
    const p = ports(first);
    const client = await connect(urlOf(p, 'udp'), FAST_RECONNECT);
    const attempts: number[] = [];
    client.events.on('reconnecting', ({ attempt }) => void attempts.push(attempt));
    await first.close();
    await eventually(() => attempts.length >= 2, WAIT, 'reconnect attempts');
    await client.close();
    const count = attempts.length;
    await sleep(500);
    assert.equal(attempts.length, count);
    assert.equal(client.state, 'closed');
  });
});
