/**
 * Spec §7–§8 over real sockets: access rules (handshake and frame), each limit, the memory budget, and TLS
 * listeners (sd:tcps, sd:wss) with a certificate generated here.
 */
import test, { describe } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import WebSocket from 'ws';
import { Flag, FrameDecoder, DEFAULT_FRAME_LIMITS, encodeBare, encodeFrame, type Frame } from '../../src/protocol/index.js';
import { RawClient, sid } from '../support/raw-client.js';
import { startTestBroker, ports, eventually } from '../support/broker.js';
import { selfSignedCert } from '../support/transport-helpers.js';

async function refusedWith(promise: Promise<unknown>, reason: string): Promise<void> {
  await assert.rejects(promise, (error: Error) => {
    assert.match(error.message, new RegExp(`reason=${reason}`));
    return true;
  });
}

describe('access (spec §8)', () => {
  const hashed = `sha256:${createHash('sha256').update('reporter-secret').digest('hex')}`;
  const access = {
    anonymous: false,
    users: [
      { name: 'admin', token: 'admin-secret' },
      {
        name: 'orders',
        token: 'orders-secret',
        permissions: {
          publish: { allow: ['orders.>'], deny: ['orders.internal.>'] },
          subscribe: { allow: ['orders.>', 'chat.>'], deny: ['chat.admin'] },
          claim: { allow: ['orders-*'] },
          address: { allow: ['orders-*'] },
        },
      },
      { name: 'reporter', token: hashed, permissions: { publish: { allow: ['reports.>'] } } },
    ],
  };

  test('handshake: no token, a wrong token, a forbidden name are refused with Close and a reason', async () => {
    const server = await startTestBroker({ access });
    const p = ports(server);
    try {
      await refusedWith(RawClient.connect('tcp', p.tcp), 'auth_required');
      await refusedWith(RawClient.connect('ws', p.ws, { query: 'token=wrong-token' }), 'auth_failed');
      await refusedWith(RawClient.connect('udp', p.udp, { name: 'billing', query: 'token=orders-secret' }), 'name_forbidden');
      const ok = await RawClient.connect('tcp', p.tcp, { name: 'orders-1', query: 'token=orders-secret' });
      const hashedUser = await RawClient.connect('tcp', p.tcp, { meta: 'token=reporter-secret' });
      ok.close();
      hashedUser.close();
      assert.equal(server.broker.stats.handshakesRefused.get('auth_required'), 1);
      assert.equal(server.broker.stats.handshakesRefused.get('auth_failed'), 1);
      assert.equal(server.broker.stats.handshakesRefused.get('name_forbidden'), 1);
    } finally {
      await server.close();
    }
  });

  test('frames: publish, subscribe and address rules, allowed and denied (Alarm 4003)', async () => {
    const server = await startTestBroker({ access });
    const p = ports(server);
    const admin = await RawClient.connect('tcp', p.tcp, { name: 'orders-svc', query: 'token=admin-secret' });
    const orders = await RawClient.connect('ws', p.ws, { name: 'orders-1', query: 'token=orders-secret' });
    try {
      const subAdmin = admin.send({ flag: Flag.Request, event: '$sub', meta: 'event=orders.>' });
      assert.equal((await admin.nextFor(subAdmin)).flag, Flag.ReplyEnd);
      // publish allowed / denied by allow list / denied by deny list
      orders.send({ flag: Flag.Message, event: 'orders.created', data: 'o1' });
      assert.equal((await admin.nextFlag(Flag.Message)).data.toString(), 'o1');
      for (const event of ['billing.x', 'orders.internal.audit']) {
        const s = orders.send({ flag: Flag.Message, event, data: 'x' });
        const alarm = await orders.nextFor(s);
        assert.equal(alarm.meta('code'), '4003', event);
      }
      assert.deepEqual(await admin.collect(100), [], 'denied publishes reached nobody');
      // subscribe: allowed, not covered by allow, covered by deny
      const okSub = orders.send({ flag: Flag.Request, event: '$sub', meta: 'event=chat.*' });
      assert.equal((await orders.nextFor(okSub)).flag, Flag.ReplyEnd);
      for (const pattern of ['billing.>', 'chat.admin']) {
        const s = orders.send({ flag: Flag.Request, event: '$sub', meta: `event=${pattern}` });
        assert.equal((await orders.nextFor(s)).meta('code'), '4003', pattern);
      }
      // delivery filter: chat.* overlaps the denied chat.admin
      admin.send({ flag: Flag.Message, event: 'chat.admin', data: 'secret' });
      admin.send({ flag: Flag.Message, event: 'chat.room', data: 'hello' });
      assert.equal((await orders.nextFlag(Flag.Message)).data.toString(), 'hello', 'chat.admin was filtered out');
      // address: allowed by glob / denied
      const okAt = orders.send({ flag: Flag.Request, event: 'q', meta: '@=orders-svc' });
      const fwd = await admin.nextFlag(Flag.Request);
      admin.send({ flag: Flag.ReplyEnd, sid: fwd.sid, event: 'q', data: 'a' });
      assert.equal((await orders.nextFor(okAt)).flag, Flag.ReplyEnd);
      const deniedAt = orders.send({ flag: Flag.Request, event: 'q', meta: '@=billing' });
      assert.equal((await orders.nextFor(deniedAt)).meta('code'), '4003');
      assert.ok((server.broker.stats.alarms.get(4003) ?? 0) >= 5);
    } finally {
      admin.close();
      orders.close();
      await server.close();
    }
  });
});

describe("publish checks with the sender's last-event cache (fastPaths.matchCacheSize) on and off", () => {
  const access = {
    anonymous: false,
    users: [
      { name: 'admin', token: 'admin-secret' },
      { name: 'orders', token: 'orders-secret', permissions: { publish: { allow: ['orders.>'], deny: ['orders.internal.>'] } } },
    ],
  };
  const cases: [string, object][] = [['cache on (default)', {}], ['cache off', { fastPaths: { matchCacheSize: 0 } }]];
  for (const [label, fastPaths] of cases) {
    test(`${label}: every frame gets the answer its own event deserves, however events repeat or alternate`, async () => {
      const server = await startTestBroker({ access, ...fastPaths });
      const p = ports(server);
      const admin = await RawClient.connect('tcp', p.tcp, { query: 'token=admin-secret' });
      const orders = await RawClient.connect('tcp', p.tcp, { query: 'token=orders-secret' });
      try {
        const subAdmin = admin.send({ flag: Flag.Request, event: '$sub', meta: 'event=orders.>' });
        assert.equal((await admin.nextFor(subAdmin)).flag, Flag.ReplyEnd);
        // [event, expected: delivered or the Alarm code]; 'orders.x.y.z' and 'billing.x.yz' have the same length.
        const script: [string, string][] = [
          ['orders.x.y.z', 'delivered'],
          ['orders.x.y.z', 'delivered'],
          ['billing.x.yz', '4003'],
          ['orders.x.y.z', 'delivered'],
          ['orders.internal.audit', '4003'],
          ['orders.internal.audit', '4003'],
          ['orders.*', '4000'],
          ['orders.x.y.z', 'delivered'],
          ['orders.internal', 'delivered'],
          ['orders.internal.x', '4003'],
          ['orders.internal', 'delivered'],
        ];
        const sids = script.map(([event], i) => orders.send({ flag: Flag.Message, event, data: String(i) }));
        const delivered = script.filter(([, expect]) => expect === 'delivered').length;
        await eventually(() => admin.frames.filter((f) => f.flag === Flag.Message).length === delivered, 5000, 'the deliveries');
        const got = admin.frames.filter((f) => f.flag === Flag.Message).map((f) => `${f.event}#${f.data.toString()}`);
        assert.deepEqual(got, script.flatMap(([event, expect], i) => (expect === 'delivered' ? [`${event}#${i}`] : [])));
        for (let i = 0; i < script.length; i++) {
          const [event, expect] = script[i]!;
          if (expect === 'delivered') continue;
          const alarm = await orders.nextFor(sids[i]!);
          assert.equal(alarm.meta('code'), expect, `frame ${i} (${event})`);
          assert.equal(alarm.event, event);
        }
        // Remembered only with the cache on, and only an event accepted twice in a row (refused frames in
        // between do not count): 'orders.internal', accepted before and after the refused 'orders.internal.x'.
        const session = [...server.broker.allSessions()].find((s) => s.permissions.user === 'orders')!;
        assert.equal(session.lastPublished?.event, fastPaths === cases[0]![1] ? 'orders.internal' : undefined);
        const adminSession = [...server.broker.allSessions()].find((s) => s.permissions.user === 'admin')!;
        admin.send({ flag: Flag.Message, event: 'orders.once', data: '1' });
        admin.send({ flag: Flag.Message, event: 'orders.other', data: '2' });
        await eventually(() => adminSession.lastChecked === 'orders.other', 5000, 'both checked');
        assert.equal(adminSession.lastPublished, null, 'events that did not repeat are not remembered');
        admin.send({ flag: Flag.Message, event: 'orders.other', data: '3' });
        if (fastPaths === cases[0]![1]) {
          await eventually(() => adminSession.lastPublished?.event === 'orders.other', 5000, 'the repeat remembered');
        } else {
          await new Promise((resolve) => setTimeout(resolve, 100));
          assert.equal(adminSession.lastPublished, null, 'never, with the cache off');
        }
        // A control event after a remembered one is still a control event.
        const sub = orders.send({ flag: Flag.Request, event: '$sub', meta: 'event=orders.x.>' });
        assert.equal((await orders.nextFor(sub)).flag, Flag.ReplyEnd);
      } finally {
        admin.close();
        orders.close();
        await server.close();
      }
    });
  }
});

describe('limits (spec §8)', () => {
  test('connections in all: the one over the limit gets Close 2001 too_many_connections', async () => {
    const server = await startTestBroker({ limits: { maxConnections: 2 } });
    const p = ports(server);
    const a = await RawClient.connect('tcp', p.tcp);
    const b = await RawClient.connect('ws', p.ws);
    try {
      await refusedWith(RawClient.connect('tcp', p.tcp), 'too_many_connections');
      assert.equal(server.broker.stats.connectionsRefused.get('too_many_connections'), 1);
      assert.match(await server.metrics.text(), /^socketd_connections_refused_total\{reason="too_many_connections"\} 1$/m);
      a.close();
      await eventually(() => server.broker.connectionCount === 1, 2000, 'a gone');
      const c = await RawClient.connect('tcp', p.tcp);
      c.close();
    } finally {
      b.close();
      await server.close();
    }
  });

  test('connections per IP', async () => {
    const server = await startTestBroker({ limits: { maxConnectionsPerIp: 1 } });
    const p = ports(server);
    const a = await RawClient.connect('tcp', p.tcp);
    try {
      await refusedWith(RawClient.connect('udp', p.udp), 'too_many_connections_from_ip');
    } finally {
      a.close();
      await server.close();
    }
  });

  test('handshakes per second', async () => {
    const server = await startTestBroker({ limits: { handshakesPerSecond: 2 } });
    const p = ports(server);
    const clients: RawClient[] = [];
    try {
      clients.push(await RawClient.connect('tcp', p.tcp), await RawClient.connect('tcp', p.tcp));
      await refusedWith(RawClient.connect('tcp', p.tcp), 'handshake_rate_limited');
      await new Promise((r) => setTimeout(r, 1100));
      clients.push(await RawClient.connect('tcp', p.tcp));
    } finally {
      for (const c of clients) c.close();
      await server.close();
    }
  });

  test('frames per second per session: the excess gets Alarm 4029, the session stays', async () => {
    const server = await startTestBroker({ limits: { framesPerSecond: 5 } });
    const p = ports(server);
    const svc = await RawClient.connect('tcp', p.tcp, { name: 'svc' });
    const caller = await RawClient.connect('tcp', p.tcp);
    try {
      const sids = Array.from({ length: 10 }, (_, i) => caller.send({ flag: Flag.Message, event: 'm', meta: '@=svc', data: String(i) }));
      const alarms = await caller.collect(300, (f) => f.flag === Flag.Alarm);
      assert.equal(alarms.length, 5);
      assert.ok(alarms.every((a) => a.meta('code') === '4029' && sids.includes(a.sid)));
      assert.equal((await svc.collect(100, (f) => f.flag === Flag.Message)).length, 5);
      assert.equal(caller.closed, false);
    } finally {
      svc.close();
      caller.close();
      await server.close();
    }
  });
});

describe('memory budget (spec §7)', () => {
  test('above the budget every reader pauses and Requests get 4029; below the low-water mark reading resumes', async () => {
    const server = await startTestBroker({
      flow: { memoryBudgetBytes: 256 * 1024, memoryLowWaterBytes: 64 * 1024, outboundHighWaterBytes: 32 * 1024 * 1024, outboundLimitBytes: 64 * 1024 * 1024 },
    });
    const p = ports(server);
    // A consumer that handshakes and then stops reading.
    const socket = net.connect(p.tcp, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    const url = `tcp://127.0.0.1:${p.tcp}?@=sink`;
    socket.write(encodeFrame({ flag: Flag.Connect, sid: sid(), event: url, meta: 'Socket.D=1.0', data: url }));
    await new Promise<void>((resolve) => socket.once('data', () => resolve()));
    socket.pause();
    const ping = setInterval(() => socket.write(encodeBare(Flag.Ping)), 100);
    const producer = await RawClient.connect('tcp', p.tcp);
    const other = await RawClient.connect('ws', p.ws, { name: 'other' });
    try {
      // 16 MiB: more than loopback's kernel buffers can absorb under autotuning (4 MiB sometimes was not).
      const payload = Buffer.alloc(64 * 1024, 7);
      for (let i = 0; i < 256; i++) producer.send({ flag: Flag.Message, event: 'x', meta: '@=sink', data: payload });
      await eventually(() => server.broker.stats.overBudget, 5000, 'over budget');
      assert.ok(server.broker.stats.budgetPauses >= 1);
      assert.match(await server.metrics.text(), /^socketd_memory_budget_exceeded 1$/m);
      assert.ok([...server.broker.allSessions()].every((s) => s.readingPaused), 'every reader paused');
      // The other client's frames are not read while paused; after resume its Request is answered or alarmed.
      socket.resume();
      socket.on('data', () => undefined);
      await eventually(() => !server.broker.stats.overBudget, 10_000, 'back under the low-water mark');
      assert.ok([...server.broker.allSessions()].every((s) => !s.readingPaused), 'reading resumed everywhere');
      const s = producer.send({ flag: Flag.Request, event: 'q', meta: '@=other' });
      const fwd = await other.nextFlag(Flag.Request, 5000);
      other.send({ flag: Flag.ReplyEnd, sid: fwd.sid, event: 'q' });
      assert.equal((await producer.nextFor(s, 5000)).flag, Flag.ReplyEnd);
    } finally {
      clearInterval(ping);
      socket.destroy();
      producer.close();
      other.close();
      await server.close();
    }
  });

  test('a Request routed while over the budget gets Alarm 4029', async () => {
    const server = await startTestBroker();
    const p = ports(server);
    const svc = await RawClient.connect('tcp', p.tcp, { name: 'svc' });
    const caller = await RawClient.connect('tcp', p.tcp);
    try {
      server.broker.stats.overBudget = true; // as the budget check would set it
      const s = caller.send({ flag: Flag.Request, event: 'q', meta: '@=svc' });
      const alarm = await caller.nextFor(s);
      assert.equal(alarm.meta('code'), '4029');
      assert.equal(server.broker.stats.dropped.get('memory_budget'), 1);
    } finally {
      server.broker.stats.overBudget = false;
      svc.close();
      caller.close();
      await server.close();
    }
  });
});

describe('TLS listeners: sd:tcps and sd:wss', () => {
  test('a handshake and a request over tcps and wss, with a certificate generated here', async () => {
    const { key, cert } = selfSignedCert();
    const dir = mkdtempSync(join(tmpdir(), 'socketd-tls-'));
    writeFileSync(join(dir, 'key.pem'), key);
    writeFileSync(join(dir, 'cert.pem'), cert);
    const tlsFiles = { enabled: true, host: '127.0.0.1', port: 0, keyFile: join(dir, 'key.pem'), certFile: join(dir, 'cert.pem') };
    const server = await startTestBroker({ listeners: { tcps: tlsFiles, wss: tlsFiles } });
    try {
      const svc = await RawClient.connect('tcp', ports(server).tcp, { name: 'svc' });
      svc.frames.length = 0;
      const answer = (f: Frame): void => void svc.send({ flag: Flag.ReplyEnd, sid: f.sid, event: f.event, data: `re:${f.data}` });
      // tcps
      const socket = tls.connect({ host: '127.0.0.1', port: server.addresses.tcps!.port, ca: cert, servername: 'localhost' });
      await new Promise<void>((resolve, reject) => { socket.once('secureConnect', resolve); socket.once('error', reject); });
      const frames: Frame[] = [];
      const decoder = new FrameDecoder(DEFAULT_FRAME_LIMITS);
      socket.on('data', (c) => decoder.push(c, { onFrame: (f) => void frames.push(f), onFrameError: (e) => { throw e; } }));
      const url = `tcps://localhost:${server.addresses.tcps!.port}`;
      socket.write(encodeFrame({ flag: Flag.Connect, sid: sid(), event: url, meta: 'Socket.D=1.0', data: url }));
      await eventually(() => frames.some((f) => f.flag === Flag.Connack), 3000, 'Connack over tcps');
      const reqSid = sid();
      socket.write(encodeFrame({ flag: Flag.Request, sid: reqSid, event: 'hi', meta: '@=svc', data: 'tcps' }));
      answer(await svc.nextFlag(Flag.Request));
      await eventually(() => frames.some((f) => f.sid === reqSid && f.flag === Flag.ReplyEnd), 3000, 'reply over tcps');
      assert.equal(frames.find((f) => f.sid === reqSid)!.data.toString(), 're:tcps');
      socket.destroy();
      // wss
      const ws = new WebSocket(`wss://localhost:${server.addresses.wss!.port}/`, ['Socket.D'], { ca: cert });
      await new Promise<void>((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
      assert.equal(ws.protocol, 'Socket.D');
      const got: Buffer[] = [];
      ws.on('message', (d: Buffer) => void got.push(d));
      const wurl = `wss://localhost:${server.addresses.wss!.port}/`;
      ws.send(encodeFrame({ flag: Flag.Connect, sid: sid(), event: wurl, meta: 'Socket.D=1.0', data: wurl }));
      await eventually(() => got.length === 1, 3000, 'Connack over wss');
      const wsSid = sid();
      ws.send(encodeFrame({ flag: Flag.Request, sid: wsSid, event: 'hi', meta: '@=svc', data: 'wss' }));
      answer(await svc.nextFlag(Flag.Request));
      await eventually(() => got.length === 2, 3000, 'reply over wss');
      assert.match(got[1].toString('latin1'), /re:wss$/);
      ws.terminate();
      svc.close();
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a TLS listener enabled without its files is refused by validation; unreadable files stop the start', async () => {
    await assert.rejects(startTestBroker({ listeners: { tcps: { enabled: true } } }), /listeners\.tcps: enabled, so keyFile and certFile/);
    await assert.rejects(
      startTestBroker({ listeners: { wss: { enabled: true, keyFile: '/nonexistent/k.pem', certFile: '/nonexistent/c.pem' } } }),
      /listeners\.wss\.keyFile: cannot read \/nonexistent\/k\.pem: ENOENT/,
    );
  });
});
