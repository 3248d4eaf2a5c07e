/**
 * The client SDK (src/client, docs/client.md) against the real broker over tcp, ws and udp: handshake,
 * send/on, request/reply, streams, groups, presence, off, limits and close.
 */
import test, { after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { connect, json, SocketdError, type Client, type IncomingMessage } from '../../src/client/index.js';
import type { RunningServer } from '../../src/server.js';
import { eventually, ports, startTestBroker } from '../support/broker.js';

type T = 'tcp' | 'ws' | 'udp';
const TRANSPORTS: readonly T[] = ['tcp', 'ws', 'udp'];
const WAIT = 5000;

function urlOf(server: RunningServer, transport: T, query = ''): string {
  const p = ports(server);
  const q = query.length > 0 ? `?${query}` : '';
  return transport === 'ws' ? `sd:ws://127.0.0.1:${p.ws}/${q}` : `sd:${transport}://127.0.0.1:${p[transport]}${q}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function rejectsWith(promise: Promise<unknown>, code: string, alarmCode?: number): Promise<SocketdError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof SocketdError, `expected a SocketdError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (alarmCode !== undefined) assert.equal(error.alarmCode, alarmCode, error.message);
    return error;
  }
  assert.fail(`expected a rejection with ${code}`);
}

/** Collects what a handler receives. */
function collector(): { handler: (m: IncomingMessage) => void; got: IncomingMessage[] } {
  const got: IncomingMessage[] = [];
  return { got, handler: (m) => void got.push(m) };
}

describe('client: handshake', () => {
  let server: RunningServer;
  before(async () => {
    server = await startTestBroker({ timeouts: { requestMs: 2000 } });
  });
  after(async () => {
    await server.close();
  });

  for (const transport of TRANSPORTS) {
    test(`${transport}: connect resolves on Connack; name, token, metas and the url query reach the broker`, async () => {
      const client = await connect(urlOf(server, transport, 'region=eu'), { name: 'orders', token: 'abc', metas: { 'x-app': 'demo' } });
      try {
        assert.equal(client.connected, true);
        assert.equal(client.state, 'open');
        assert.equal(client.transport, transport);
        const session = [...server.broker.registry.sessions()].find((s) => s.name === 'orders');
        assert.ok(session, 'the session is registered under its name');
        assert.equal(session.transport, transport);
        assert.equal(session.params.get('region'), 'eu');
        assert.equal(session.params.get('token'), 'abc');
        assert.equal(session.params.get('x-app'), 'demo');
        assert.equal(session.params.get('Socket.D'), '1.0');
      } finally {
        await client.close();
      }
    });

    test(`${transport}: a refused handshake rejects with handshake_refused and the broker's Close reason`, async () => {
      const error = await rejectsWith(connect(urlOf(server, transport), { name: 'bad*', reconnect: true }), 'handshake_refused');
      assert.equal(error.closeCode, 2001);
      assert.equal(error.reason, 'invalid_name');
      assert.match(error.message, /'bad\*' is not valid/);
    });
  }

  test('the url may omit sd: and carry @ in its query', async () => {
    const client = await connect(`tcp://127.0.0.1:${ports(server).tcp}?@=plain`);
    try {
      await eventually(() => [...server.broker.registry.sessions()].some((s) => s.name === 'plain'), WAIT, 'the named session');
    } finally {
      await client.close();
    }
  });

  test('connect_timeout when the server never answers the Connect', async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((s) => void sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const port = (silent.address() as net.AddressInfo).port;
      const started = Date.now();
      const error = await rejectsWith(connect(`sd:tcp://127.0.0.1:${port}`, { connectTimeout: 300 }), 'connect_timeout');
      assert.ok(Date.now() - started >= 250, 'waited for the timeout');
      assert.match(error.message, /300 ms/);
      assert.equal(sockets.length, 1, 'the server saw the connection (and the Connect) but never answered');
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });

  test('connect_failed when nothing listens', async () => {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    await rejectsWith(connect(`sd:tcp://127.0.0.1:${port}`, { connectTimeout: 3000 }), 'connect_failed');
  });

  test('a bad url is refused before dialing', async () => {
    await rejectsWith(connect('http://127.0.0.1:1'), 'invalid_argument');
  });
});

describe('client: messaging', () => {
  let server: RunningServer;
  before(async () => {
    server = await startTestBroker({ timeouts: { requestMs: 3000 } });
  });
  after(async () => {
    await server.close();
  });

  for (const transport of TRANSPORTS) {
    test(`${transport}: send by event reaches matching subscriptions (exact, * and >), never the sender`, async () => {
      const sub = await connect(urlOf(server, transport));
      const pub = await connect(urlOf(server, 'tcp'));
      try {
        const exact = collector();
        const star = collector();
        const tail = collector();
        await sub.on('orders.created', exact.handler);
        await sub.on('orders.*', star.handler);
        await sub.on('orders.>', tail.handler);
        const own = collector();
        await pub.on('orders.>', own.handler);
        pub.send('orders.created', json({ id: 1 }), { meta: { trace: 'abc' } });
        pub.send('orders.eu.created', 'deep');
        await eventually(() => exact.got.length === 1 && star.got.length === 1 && tail.got.length === 2, WAIT, 'deliveries');
        const m = exact.got[0]!;
        assert.deepEqual(m.json(), { id: 1 });
        assert.equal(m.meta.trace, 'abc');
        assert.equal(m.isRequest, false);
        assert.equal(m.to, undefined);
        assert.equal(m.sid.length, 32, 'the sender sid is forwarded: 32 hex');
        assert.match(m.sid, /^[0-9a-f]{32}$/);
        assert.equal(tail.got[1]!.text(), 'deep');
        await sleep(100);
        assert.equal(own.got.length, 0, 'the sender does not get its own message');
        assert.equal(star.got.length, 1, 'orders.* does not match orders.eu.created');
      } finally {
        await Promise.all([sub.close(), pub.close()]);
      }
    });

    test(`${transport}: send with to reaches the named client (onDirect, else matching handlers)`, async () => {
      const svc = await connect(urlOf(server, transport), { name: `direct-${transport}` });
      const pub = await connect(urlOf(server, 'ws'));
      try {
        const viaPattern = collector();
        await svc.on('hello', viaPattern.handler);
        pub.send('hello', 'one', { to: `direct-${transport}` });
        await eventually(() => viaPattern.got.length === 1, WAIT, 'direct message through the pattern handler');
        assert.equal(viaPattern.got[0]!.to, `direct-${transport}`);
        const direct = collector();
        svc.onDirect(direct.handler);
        pub.send('anything.at.all', 'two', { to: `direct-${transport}*` });
        await eventually(() => direct.got.length === 1, WAIT, 'direct message through onDirect');
        assert.equal(direct.got[0]!.text(), 'two');
        assert.equal(viaPattern.got.length, 1);
      } finally {
        await Promise.all([svc.close(), pub.close()]);
      }
    });
  }

  test('a Message to a name nobody has comes back as an alarm event (4004)', async () => {
    const pub = await connect(urlOf(server, 'tcp'));
    try {
      const alarm = pub.events.next('alarm');
      pub.send('x', 'y', { to: 'nobody-here' });
      const error = await alarm;
      assert.equal(error.code, 'alarm');
      assert.equal(error.alarmCode, 4004);
    } finally {
      await pub.close();
    }
  });

  const pairs: [T, T][] = [['tcp', 'ws'], ['udp', 'tcp'], ['ws', 'udp'], ['udp', 'udp']];
  for (const [callerT, responderT] of pairs) {
    test(`request/reply: ${callerT} caller, ${responderT} responder, by event and by name`, async () => {
      const responder = await connect(urlOf(server, responderT), { name: `calc-${callerT}-${responderT}` });
      const caller = await connect(urlOf(server, callerT));
      try {
        await responder.on('math.add', (m) => {
          const { a, b } = m.json<{ a: number; b: number }>();
          m.reply(json(a + b), { by: responderT });
        });
        const reply = await caller.request('math.add', json({ a: 2, b: 3 }));
        assert.equal(reply.json(), 5);
        assert.equal(reply.meta.by, responderT);
        assert.equal(reply.end, true, 'the broker relays the answer to a Request as ReplyEnd');
        const byName = await caller.request('math.add', json({ a: 1, b: 1 }), { to: `calc-${callerT}-${responderT}` });
        assert.equal(byName.text(), '2');
        assert.equal(caller.pendingCount, 0);
      } finally {
        await Promise.all([responder.close(), caller.close()]);
      }
    });
  }

  for (const transport of TRANSPORTS) {
    test(`${transport}: request to nobody rejects with alarm 4004; to a missing name too`, async () => {
      const caller = await connect(urlOf(server, transport));
      try {
        const e1 = await rejectsWith(caller.request('nobody.listens', 'x'), 'alarm', 4004);
        assert.match(e1.message, /No subscriber/);
        await rejectsWith(caller.request('x', 'y', { to: 'ghost' }), 'alarm', 4004);
        assert.equal(caller.pendingCount, 0);
      } finally {
        await caller.close();
      }
    });
  }

  test('request timeout: a responder that never answers gives timeout or Alarm 4008, whichever first', async () => {
    const responder = await connect(urlOf(server, 'ws'));
    const caller = await connect(urlOf(server, 'tcp'));
    try {
      await responder.on('slow', () => {
        /* never answers */
      });
      const started = Date.now();
      const error = await caller.request('slow', 'x', { timeout: 300 }).then(
        () => assert.fail('resolved'),
        (e: SocketdError) => e,
      );
      const elapsed = Date.now() - started;
      assert.ok(error.code === 'timeout' || (error.code === 'alarm' && error.alarmCode === 4008), `${error.code} ${error.alarmCode}`);
      assert.ok(elapsed >= 250 && elapsed < 3000, `gave up after ${elapsed} ms`);
      assert.equal(caller.pendingCount, 0);
    } finally {
      await Promise.all([responder.close(), caller.close()]);
    }
  });

  test('a handler that throws fails the request with Alarm 5000 and its message; abort rejects with aborted', async () => {
    const responder = await connect(urlOf(server, 'tcp'));
    const caller = await connect(urlOf(server, 'udp'));
    try {
      const errors: SocketdError[] = [];
      responder.events.on('error', (e) => void errors.push(e));
      await responder.on('boom', async () => {
        throw new Error('kaput');
      });
      await responder.on('never', () => {});
      const error = await rejectsWith(caller.request('boom'), 'alarm', 5000);
      assert.equal(error.message, 'kaput');
      assert.equal(errors[0]?.code, 'handler_error');
      const ac = new AbortController();
      const pending = caller.request('never', undefined, { signal: ac.signal });
      setTimeout(() => ac.abort(), 50);
      await rejectsWith(pending, 'aborted');
      assert.equal(caller.pendingCount, 0);
    } finally {
      await Promise.all([responder.close(), caller.close()]);
    }
  });

  for (const transport of TRANSPORTS) {
    test(`${transport}: stream yields each reply, then ends after ReplyEnd (yielded when it has data)`, async () => {
      const responder = await connect(urlOf(server, transport));
      const caller = await connect(urlOf(server, transport === 'tcp' ? 'ws' : 'tcp'));
      try {
        await responder.on('count', (m) => {
          const n = Number(m.text());
          for (let i = 1; i <= n; i++) m.reply(String(i));
          if (m.meta.last === 'data') m.replyEnd('done');
          else m.replyEnd();
        });
        const seen: string[] = [];
        for await (const reply of caller.stream('count', '3')) seen.push(`${reply.text()}${reply.end ? '!' : ''}`);
        assert.deepEqual(seen, ['1', '2', '3']);
        const all = await caller.stream('count', '2', { meta: { last: 'data' } }).toArray();
        assert.deepEqual(all.map((r) => r.text()), ['1', '2', 'done']);
        assert.equal(all[2]!.end, true);
        assert.equal(caller.pendingCount, 0);
      } finally {
        await Promise.all([responder.close(), caller.close()]);
      }
    });
  }

  test('early return from a stream releases it; later replies are ignored', async () => {
    const responder = await connect(urlOf(server, 'tcp'));
    const caller = await connect(urlOf(server, 'ws'));
    try {
      let answer: IncomingMessage | null = null;
      await responder.on('ticks', (m) => {
        answer = m;
        m.reply('first');
      });
      const stream = caller.stream('ticks');
      for await (const reply of stream) {
        assert.equal(reply.text(), 'first');
        break;
      }
      assert.equal(stream.done, true);
      assert.equal(caller.pendingCount, 0);
      answer!.reply('late');
      answer!.replyEnd('later');
      const next = await caller.request('nobody.here').catch((e: SocketdError) => e.alarmCode);
      assert.equal(next, 4004, 'the client keeps working');
    } finally {
      await Promise.all([responder.close(), caller.close()]);
    }
  });

  test('a stream to nobody throws the Alarm from the iterator', async () => {
    const caller = await connect(urlOf(server, 'udp'));
    try {
      await rejectsWith(caller.stream('void.stream').toArray(), 'alarm', 4004);
    } finally {
      await caller.close();
    }
  });

  test('queue group: each Message goes to one member of the group; plain subscribers get all', async () => {
    const w1 = await connect(urlOf(server, 'tcp'));
    const w2 = await connect(urlOf(server, 'udp'));
    const audit = await connect(urlOf(server, 'ws'));
    const pub = await connect(urlOf(server, 'tcp'));
    try {
      const a = collector();
      const b = collector();
      const all = collector();
      await w1.on('jobs.*', a.handler, { group: 'workers' });
      await w2.on('jobs.*', b.handler, { group: 'workers' });
      await audit.on('jobs.>', all.handler);
      for (let i = 0; i < 10; i++) pub.send('jobs.run', String(i));
      await eventually(() => a.got.length + b.got.length === 10 && all.got.length === 10, WAIT, 'deliveries');
      assert.ok(a.got.length > 0 && b.got.length > 0, `shared: ${a.got.length}/${b.got.length}`);
      await sleep(100);
      assert.equal(a.got.length + b.got.length, 10, 'each message once in the group');
    } finally {
      await Promise.all([w1.close(), w2.close(), audit.close(), pub.close()]);
    }
  });

  test('presence(): the members of a room; presence notices through onPresence', async () => {
    const alice = await connect(urlOf(server, 'tcp'), { name: 'alice' });
    const bob = await connect(urlOf(server, 'ws'), { name: 'bob' });
    try {
      const notices: string[] = [];
      alice.onPresence((n) => void notices.push(`${n.kind}:${n.event}:${n.name}`));
      await alice.on('room.42', () => {}, { presence: true });
      await bob.on('room.42', () => {});
      const members = await alice.presence('room.42');
      assert.deepEqual(members.map((m) => m.name).sort(), ['alice', 'bob']);
      assert.deepEqual(members.map((m) => m.transport).sort(), ['tcp', 'ws']);
      await eventually(() => notices.includes('join:room.42:bob'), WAIT, 'the join notice');
      await bob.close();
      await eventually(() => notices.includes('leave:room.42:bob'), WAIT, 'the leave notice');
      assert.deepEqual((await alice.presence('room.42')).map((m) => m.name), ['alice']);
      assert.deepEqual(await alice.presence('room.empty'), []);
    } finally {
      await Promise.all([alice.close(), bob.close()]);
    }
  });

  test('off(): sub.off() and client.off() send $unsub and stop local delivery', async () => {
    const sub = await connect(urlOf(server, 'ws'));
    const pub = await connect(urlOf(server, 'tcp'));
    try {
      const before = server.events.subscriptionCount;
      const a = collector();
      const b = collector();
      const s1 = await sub.on('news.*', a.handler);
      const s2 = await sub.on('news.*', b.handler);
      await sub.on('sport.*', a.handler, { group: 'g' });
      assert.equal(server.events.subscriptionCount, before + 2, 'one broker subscription per pattern and group');
      pub.send('news.today', '1');
      await eventually(() => a.got.length === 1 && b.got.length === 1, WAIT, 'both handlers');
      await s1.off();
      assert.equal(server.events.subscriptionCount, before + 2, 'still used by the second handler');
      pub.send('news.today', '2');
      await eventually(() => b.got.length === 2, WAIT, 'the remaining handler');
      assert.equal(a.got.length, 1);
      await s2.off();
      await sub.off('sport.*', { group: 'g' });
      assert.equal(server.events.subscriptionCount, before);
      await rejectsWith(pub.request('news.today'), 'alarm', 4004);
    } finally {
      await Promise.all([sub.close(), pub.close()]);
    }
  });

  test('on() with an invalid pattern is refused locally; a refused $sub rejects with its Alarm', async () => {
    const client = await connect(urlOf(server, 'tcp'));
    const strict = await startTestBroker({ limits: { maxSubscriptionsPerSession: 1 } });
    const limited = await connect(urlOf(strict, 'ws'));
    try {
      await rejectsWith(client.on('a..b', () => {}), 'invalid_argument');
      await rejectsWith(client.on('a.>.b', () => {}), 'invalid_argument');
      await rejectsWith(client.on('$sys', () => {}), 'invalid_argument');
      await limited.on('one', () => {});
      const refused = collector();
      const error = await rejectsWith(limited.on('two', refused.handler), 'alarm', 4029);
      assert.match(error.message, /Too many subscriptions/);
      // The refused handler was removed: a Request to 'two' finds no handler here (the broker has no route).
      await rejectsWith(limited.request('two'), 'alarm', 4004);
    } finally {
      await Promise.all([client.close(), limited.close()]);
      await strict.close();
    }
  });

  test('limits: too_large over udp and above maxData; congested above maxOutboundBytes', async () => {
    const udp = await connect(urlOf(server, 'udp'));
    const tcp = await connect(urlOf(server, 'tcp'), { maxData: 1000, maxOutboundBytes: 4096 });
    try {
      assert.throws(() => udp.send('big', Buffer.alloc(3000)), (e: SocketdError) => e.code === 'too_large');
      await rejectsWith(udp.request('big', Buffer.alloc(3000)), 'too_large');
      // A stream refused before it was sent fails from its first next(), and still has a sid of its own.
      const refused = [udp.stream('big', Buffer.alloc(3000)), udp.stream('big', 'x', { timeout: -1 })];
      await rejectsWith(refused[0]!.next(), 'too_large');
      await rejectsWith(refused[1]!.next(), 'invalid_argument');
      assert.equal(new Set(refused.map((r) => r.sid)).size, 2);
      for (const r of refused) assert.match(r.sid, /^[0-9a-f]{32}$/);
      assert.equal(udp.pendingCount, 0);
      assert.throws(() => tcp.send('big', Buffer.alloc(1001)), (e: SocketdError) => e.code === 'too_large');
      tcp.send('ok', Buffer.alloc(1000));
      tcp.send('ok', Buffer.alloc(1000));
      tcp.send('ok', Buffer.alloc(1000));
      // The three frames are still queued in this tick: a fourth would exceed 4096 bytes.
      assert.throws(() => tcp.send('ok', Buffer.alloc(1000)), (e: SocketdError) => e.code === 'congested');
      assert.throws(() => tcp.send('x', 'y', { meta: { 'a&b': '1' } }), (e: SocketdError) => e.code === 'invalid_argument');
      await sleep(50);
      tcp.send('ok', Buffer.alloc(1000));
    } finally {
      await Promise.all([udp.close(), tcp.close()]);
    }
  });

  for (const transport of TRANSPORTS) {
    test(`${transport}: the heartbeat keeps a quiet connection past the broker's idle timeout`, async () => {
      const quiet = await startTestBroker({ timeouts: { idleMs: 500 } });
      const client = await connect(urlOf(quiet, transport), { heartbeatInterval: 150 });
      try {
        const lost: SocketdError[] = [];
        client.events.on('disconnect', (e) => void lost.push(e));
        await sleep(1300);
        assert.equal(lost.length, 0, lost.map((e) => e.message).join());
        assert.equal(client.connected, true);
        assert.equal(quiet.broker.sessionCount, 1);
      } finally {
        await client.close();
        await quiet.close();
      }
    });
  }
});

describe('client: close', () => {
  let server: RunningServer;
  before(async () => {
    server = await startTestBroker();
  });
  after(async () => {
    await server.close();
  });

  function resources(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of process.getActiveResourcesInfo()) out[r] = (out[r] ?? 0) + 1;
    return out;
  }

  for (const transport of TRANSPORTS) {
    test(`${transport}: close() rejects pending with closed, sends Close, and leaves no socket or timer`, async () => {
      const baseline = resources();
      const responder = await connect(urlOf(server, 'tcp'), { heartbeatInterval: 1000 });
      const client: Client = await connect(urlOf(server, transport), { heartbeatInterval: 1000 });
      await responder.on('hang', () => {});
      await client.on('anything', () => {});
      const pending = client.request('hang', 'x', { timeout: 5000 });
      const stream = client.stream('hang');
      await sleep(50);
      const closing = client.close();
      await rejectsWith(pending, 'closed');
      await rejectsWith(stream.next(), 'closed');
      await closing;
      assert.equal(client.state, 'closed');
      assert.throws(() => client.send('x'), (e: SocketdError) => e.code === 'closed');
      await rejectsWith(client.request('x'), 'closed');
      await client.close(); // idempotent
      await responder.close();
      await eventually(() => server.broker.sessionCount === 0, WAIT, 'the broker released both sessions');
      await sleep(50);
      const now = resources();
      for (const [kind, count] of Object.entries(now)) {
        assert.ok(count <= (baseline[kind] ?? 0), `${kind}: ${baseline[kind] ?? 0} before, ${count} after`);
      }
    });
  }
});
