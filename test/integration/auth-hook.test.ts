/**
 * The connect hook (docs/security.md, "Connect hook") against a real HTTP endpoint the test serves on
 * loopback: admitting with the app's name and permissions, refusing with its reason, timing out without
 * stalling open sessions, the concurrency bound, the answer cache and an expiry the app sets.
 */
import test, { describe } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { Flag } from '../../src/protocol/index.js';
import type { RunningServer } from '../../src/server.js';
import { RawClient } from '../support/raw-client.js';
import { startTestBroker, ports, eventually } from '../support/broker.js';
import { TRANSPORTS, closeAll, connect, metaOf, portOf } from '../support/integration.js';

interface HookCall {
  transport: string;
  remoteAddress: string;
  name: string;
  token: string;
  params: Record<string, string>;
}

/** A loopback HTTP endpoint answering with `answer(call)`; `delayMs` holds every answer. */
async function hookServer(answer: (call: HookCall) => unknown, delayMs = 0): Promise<{ url: string; calls: HookCall[]; close(): Promise<void> }> {
  const calls: HookCall[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const call = JSON.parse(body) as HookCall;
      calls.push(call);
      const reply = (): void => {
        if (res.destroyed) return;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(answer(call)));
      };
      if (delayMs > 0) setTimeout(reply, delayMs).unref();
      else reply();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/socketd/connect`,
    calls,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

async function refusedWith(server: RunningServer, transport: (typeof TRANSPORTS)[number], query: string, reason: string): Promise<{ text: string; ms: number }> {
  const client = await RawClient.open(transport, portOf(server, transport));
  const started = Date.now();
  try {
    await client.handshake(portOf(server, transport), { query, awaitConnack: false });
    const close = await client.next((f) => f.flag === Flag.Close || f.flag === Flag.Connack, 5000);
    assert.equal(close.flag, Flag.Close);
    assert.equal(metaOf(close.metaString, 'reason'), reason, close.data.toString());
    return { text: close.data.toString(), ms: Date.now() - started };
  } finally {
    closeAll(client);
  }
}

const app = (call: HookCall): unknown => {
  if (call.token === 'alice-session') {
    return { allow: true, user: 'alice', name: 'alice', permissions: { publish: { allow: ['chat.>'] }, subscribe: { allow: ['chat.>'] } } };
  }
  return { allow: false, reason: 'Unknown session: log in again' };
};

describe('connect hook', () => {
  for (const transport of TRANSPORTS) {
    test(`${transport}: admits with the app's name and permissions, refuses with the app's reason`, async () => {
      const hook = await hookServer(app);
      const server = await startTestBroker({ access: { anonymous: false, connectHook: { url: hook.url } } });
      let alice: RawClient | undefined;
      try {
        alice = await connect(server, transport, { query: 'token=alice-session&room=team1', meta: 'device=phone' });
        const session = [...server.broker.allSessions()][0];
        assert.equal(session.name, 'alice', 'the name the app assigned');
        assert.equal(session.permissions.user, 'alice');
        const call = hook.calls[0];
        assert.equal(call.transport, transport);
        assert.equal(call.remoteAddress, '127.0.0.1');
        assert.equal(call.token, 'alice-session');
        assert.equal(call.params.room, 'team1');
        assert.equal(call.params.device, 'phone', 'Connect metas are sent too');
        const denied = alice.send({ flag: Flag.Request, event: 'admin.reset' });
        assert.equal(metaOf((await alice.nextFor(denied)).metaString, 'code'), '4003');
        const { text } = await refusedWith(server, transport, 'token=stolen', 'hook_refused');
        assert.equal(text, 'Unknown session: log in again');
        assert.equal(server.broker.stats.authChecks.get('hook|admitted'), 1);
        assert.equal(server.broker.stats.authChecks.get('hook|refused'), 1);
      } finally {
        closeAll(alice);
        await server.close();
        await hook.close();
      }
    });
  }

  test('$auth on a hook session asks the hook again: new permissions at once; another user is refused', async () => {
    const hook = await hookServer((call) => {
      if (call.token === 'alice-session') return { allow: true, user: 'alice', permissions: { publish: { allow: ['a.>'] } } };
      if (call.token === 'alice-session-2') return { allow: true, user: 'alice', permissions: { publish: { allow: ['b.>'] } } };
      if (call.token === 'bob-session') return { allow: true, user: 'bob' };
      return { allow: false, reason: 'no' };
    });
    const server = await startTestBroker({ access: { anonymous: false, connectHook: { url: hook.url } } });
    let alice: RawClient | undefined;
    try {
      alice = await connect(server, 'tcp', { query: 'token=alice-session' });
      const ok = alice.send({ flag: Flag.Request, event: '$auth', data: 'alice-session-2' });
      const ack = await alice.nextFor(ok);
      assert.equal(ack.flag, Flag.ReplyEnd);
      assert.equal(metaOf(ack.metaString, 'user'), 'alice');
      assert.equal(hook.calls[1].token, 'alice-session-2', 'the hook saw the new token');
      const denied = alice.send({ flag: Flag.Request, event: 'a.x' });
      assert.equal(metaOf((await alice.nextFor(denied)).metaString, 'code'), '4003', 'the new rules apply');
      for (const [token, reason] of [['bob-session', 'token_user_mismatch'], ['junk', 'hook_refused']]) {
        const s = alice.send({ flag: Flag.Request, event: '$auth', meta: `token=${token}` });
        const alarm = await alice.nextFor(s);
        assert.equal(alarm.flag, Flag.Alarm);
        assert.equal(metaOf(alarm.metaString, 'reason'), reason);
      }
    } finally {
      closeAll(alice);
      await server.close();
      await hook.close();
    }
  });

  test('a slow hook refuses new sessions after timeoutMs (hook_unavailable) and never stalls open ones', async () => {
    const hook = await hookServer(app, 5_000);
    const server = await startTestBroker({
      access: { anonymous: false, users: [{ name: 'svc', token: 'service-token-1' }], connectHook: { url: hook.url, timeoutMs: 400 } },
    });
    let svc: RawClient | undefined;
    try {
      svc = await connect(server, 'tcp', { name: 'svc', query: 'token=service-token-1' });
      const pending = refusedWith(server, 'ws', 'token=alice-session', 'hook_unavailable');
      // While the hook hangs, the open session is served.
      for (let i = 0; i < 5; i++) {
        const t = Date.now();
        svc.ping();
        await svc.nextFlag(Flag.Pong);
        assert.ok(Date.now() - t < 200, 'a ping answered at once');
      }
      const { ms, text } = await pending;
      assert.ok(ms >= 350 && ms < 3000, `refused after the timeout (${ms} ms)`);
      assert.match(text, /did not answer within 400 ms/);
      assert.equal(server.broker.stats.authChecks.get('hook|timeout'), 1);
      const metrics = await (await fetch(`http://127.0.0.1:${ports(server).http}/metrics`)).text();
      assert.match(metrics, /socketd_handshakes_refused_total\{reason="hook_unavailable"\} 1/);
      assert.match(metrics, /socketd_connect_hook_duration_seconds_count 1/);
    } finally {
      closeAll(svc);
      await server.close();
      await hook.close();
    }
  });

  test('a dead hook refuses with hook_unavailable; calls over maxConcurrent are refused at once (hook_busy)', async () => {
    const dead = await hookServer(app);
    const deadUrl = dead.url;
    await dead.close();
    const server = await startTestBroker({ access: { anonymous: false, connectHook: { url: deadUrl } } });
    try {
      const { text } = await refusedWith(server, 'tcp', 'token=alice-session', 'hook_unavailable');
      assert.match(text, /cannot be reached/);
    } finally {
      await server.close();
    }
    const slow = await hookServer(app, 600);
    const busy = await startTestBroker({ access: { anonymous: false, connectHook: { url: slow.url, maxConcurrent: 1 } } });
    try {
      const first = connect(busy, 'tcp', { query: 'token=alice-session' });
      await eventually(() => busy.broker.stats.hookInFlight === 1, 2000, 'the first call in flight');
      const { ms } = await refusedWith(busy, 'udp', 'token=alice-session', 'hook_busy');
      assert.ok(ms < 400, `refused at once (${ms} ms)`);
      closeAll(await first);
      assert.equal(busy.broker.stats.authChecks.get('hook|busy'), 1);
    } finally {
      await busy.close();
      await slow.close();
    }
  });

  test('an answer larger than maxAnswerBytes is not read: hook_unavailable', async () => {
    const hook = await hookServer(() => ({ allow: true, user: 'alice', padding: 'x'.repeat(200_000) }));
    const server = await startTestBroker({ access: { anonymous: false, connectHook: { url: hook.url } } });
    try {
      const { text } = await refusedWith(server, 'ws', 'token=alice-session', 'hook_unavailable');
      assert.match(text, /larger than 65536 bytes/);
    } finally {
      await server.close();
      await hook.close();
    }
  });

  test('cacheMs reuses an answer; an expiresAt from the app closes the session (token_expired)', { timeout: 15_000 }, async () => {
    const hook = await hookServer((call) => (call.token === 'short'
      ? { allow: true, user: 'bob', expiresAt: Date.now() / 1000 + 1.5 }
      : app(call)));
    const server = await startTestBroker({ access: { anonymous: false, connectHook: { url: hook.url, cacheMs: 60_000 } } });
    const clients: RawClient[] = [];
    try {
      clients.push(await connect(server, 'tcp', { query: 'token=alice-session' }));
      clients.push(await connect(server, 'tcp', { query: 'token=alice-session' }));
      assert.equal(hook.calls.length, 1, 'the second handshake used the cached answer');
      assert.equal(server.broker.stats.authChecks.get('hook|cached'), 1);
      const bob = await connect(server, 'ws', { query: 'token=short' });
      clients.push(bob);
      const close = await bob.nextFlag(Flag.Close, 5000);
      assert.equal(metaOf(close.metaString, 'reason'), 'token_expired');
    } finally {
      closeAll(...clients);
      await server.close();
      await hook.close();
    }
  });
});
