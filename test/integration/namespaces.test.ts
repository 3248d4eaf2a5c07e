/**
 * Namespaces (docs/namespaces.md) on tcp, ws and udp: the handshake URL's path names the namespace, and
 * names, event subscriptions, queue groups, presence and `$` control events never cross one; access by
 * namespace, declared namespaces, the admin endpoints, metrics, and the HTTP API's `namespace`.
 */
import test, { after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Flag } from '../../src/protocol/index.js';
import { connect as sdkConnect } from '../../src/client/index.js';
import type { RunningServer } from '../../src/server.js';
import type { RawClient } from '../support/raw-client.js';
import { eventually, ports, startTestBroker } from '../support/broker.js';
import { TRANSPORTS, assertBrokerEmpty, closeAll, connect } from '../support/integration.js';
import { assertAlarm, assertNothing, autoReply, messagesOf, presenceOf, subscribe } from '../support/events.js';

const QUIET_MS = 300;

describe('namespaces: isolation on every transport', () => {
  let server: RunningServer;
  before(async () => {
    server = await startTestBroker();
  });
  after(async () => {
    await server.close();
  });

  for (const transport of TRANSPORTS) {
    const other = transport === 'tcp' ? 'ws' : 'tcp';

    test(`${transport}: two sessions named svc in two namespaces never see each other's traffic`, async () => {
      const svcA = await connect(server, transport, { name: 'svc', path: 'tenant-a' });
      const svcB = await connect(server, other, { name: 'svc', path: 'tenant-b' });
      const svcDefault = await connect(server, other, { name: 'svc' });
      const callerA = await connect(server, transport, { path: 'tenant-a' });
      try {
        autoReply(svcA, (f) => f.flag === Flag.Request, () => 'from-a');
        autoReply(svcB, (f) => f.flag === Flag.Request, () => 'from-b');
        autoReply(svcDefault, (f) => f.flag === Flag.Request, () => 'from-default');
        for (let i = 0; i < 3; i++) {
          const rid = callerA.send({ flag: Flag.Request, event: 'who', meta: '@=svc' });
          const answer = await callerA.nextFor(rid);
          assert.equal(answer.flag, Flag.ReplyEnd);
          assert.equal(answer.data.toString(), 'from-a');
        }
        // @* (every named session) stays inside the namespace too.
        callerA.send({ flag: Flag.Message, event: 'hello', meta: '@=*' });
        await svcA.next(messagesOf('hello'));
        await assertNothing([svcB, svcDefault], QUIET_MS, messagesOf('hello'), 'message from another namespace');
        // A name only another namespace holds is no route.
        const lonely = await connect(server, transport, { path: 'tenant-c' });
        try {
          const rid = lonely.send({ flag: Flag.Request, event: 'who', meta: '@=svc' });
          assertAlarm(await lonely.nextFor(rid), 4004, rid);
        } finally {
          closeAll(lonely);
        }
      } finally {
        closeAll(svcA, svcB, svcDefault, callerA);
      }
    });

    test(`${transport}: event subscriptions and wildcards do not reach across namespaces`, async () => {
      const subA = await connect(server, transport, { path: 'tenant-a' });
      const subB = await connect(server, other, { path: 'tenant-b' });
      const subDefault = await connect(server, other);
      const pubA = await connect(server, transport, { path: 'tenant-a' });
      try {
        await subscribe(subA, 'chat.>');
        await subscribe(subB, 'chat.>');
        await subscribe(subDefault, '>');
        pubA.send({ flag: Flag.Message, event: 'chat.lobby', data: 'hi a' });
        const got = await subA.next(messagesOf('chat.lobby'));
        assert.equal(got.data.toString(), 'hi a');
        await assertNothing([subB, subDefault], QUIET_MS, messagesOf('chat.lobby'), 'message from tenant-a');
        // A Request by event finds no subscriber outside its namespace.
        const lonely = await connect(server, transport, { path: 'tenant-z' });
        try {
          const rid = lonely.send({ flag: Flag.Request, event: 'chat.lobby' });
          assertAlarm(await lonely.nextFor(rid), 4004, rid);
        } finally {
          closeAll(lonely);
        }
      } finally {
        closeAll(subA, subB, subDefault, pubA);
      }
    });

    test(`${transport}: presence and $presence notices are per namespace`, async () => {
      const watcherA = await connect(server, transport, { path: 'tenant-a' });
      const watcherB = await connect(server, other, { path: 'tenant-b' });
      try {
        await subscribe(watcherA, 'room.1', { presence: true });
        await subscribe(watcherB, 'room.1', { presence: true });
        const member = await connect(server, transport, { name: 'alice', path: 'tenant-a' });
        try {
          await subscribe(member, 'room.1');
          const join = await watcherA.next(messagesOf('$presence.join'));
          assert.match(join.metaString, /name=alice/);
          await assertNothing([watcherB], QUIET_MS, messagesOf('$presence.join'), 'join notice from tenant-a');
          const inA = await presenceOf(watcherA, 'room.1');
          assert.deepEqual(inA.map((m) => m.name).sort(), ['', 'alice']);
          const inB = await presenceOf(watcherB, 'room.1');
          assert.equal(inB.length, 1, 'only the watcher itself in tenant-b');
        } finally {
          closeAll(member);
        }
      } finally {
        closeAll(watcherA, watcherB);
      }
    });

    test(`${transport}: a queue group of the same name in two namespaces is two groups`, async () => {
      const workerA = await connect(server, transport, { path: 'tenant-a' });
      const workerB = await connect(server, other, { path: 'tenant-b' });
      const pubA = await connect(server, transport, { path: 'tenant-a' });
      try {
        await subscribe(workerA, 'jobs.run', { group: 'workers' });
        await subscribe(workerB, 'jobs.run', { group: 'workers' });
        for (let i = 0; i < 4; i++) pubA.send({ flag: Flag.Message, event: 'jobs.run', data: String(i) });
        await eventually(() => workerA.frames.filter(messagesOf('jobs.run')).length === 4, 5000, 'all four jobs to tenant-a');
        await assertNothing([workerB], QUIET_MS, messagesOf('jobs.run'), 'jobs from tenant-a');
      } finally {
        closeAll(workerA, workerB, pubA);
      }
    });
  }

  test('the SDK connects to a namespace by its URL path; no path or / is the default namespace', async () => {
    const p = ports(server);
    const inA = await sdkConnect(`sd:ws://127.0.0.1:${p.ws}/tenant-a`, { reconnect: false });
    const inDefault = await sdkConnect(`sd:ws://127.0.0.1:${p.ws}/`, { reconnect: false });
    const tcpDefault = await sdkConnect(`sd:tcp://127.0.0.1:${p.tcp}`, { reconnect: false });
    try {
      const seen: string[] = [];
      await inDefault.on('x.y', (m) => void seen.push(`ws:${m.text()}`));
      await inA.on('x.y', (m) => void seen.push(`a:${m.text()}`));
      tcpDefault.send('x.y', 'one');
      await eventually(() => seen.length === 1, 5000, 'the default namespace delivery');
      await new Promise((r) => setTimeout(r, QUIET_MS));
      assert.deepEqual(seen, ['ws:one']);
    } finally {
      await Promise.all([inA.close(), inDefault.close(), tcpDefault.close()]);
    }
  });

  test('/connz, /subsz and /namez show the namespace; an empty namespace is dropped', async () => {
    const a = await connect(server, 'tcp', { name: 'shown', path: 'tenant-a' });
    try {
      await subscribe(a, 'seen.here');
      const base = `http://127.0.0.1:${ports(server).http}`;
      const connz = (await (await fetch(`${base}/connz`)).json()) as { connections: { name: string; namespace: string }[] };
      assert.equal(connz.connections.find((c) => c.name === 'shown')?.namespace, 'tenant-a');
      const subsz = (await (await fetch(`${base}/subsz`)).json()) as { subscriptions: { pattern: string; namespace: string }[] };
      assert.equal(subsz.subscriptions.find((s) => s.pattern === 'seen.here')?.namespace, 'tenant-a');
      const namez = (await (await fetch(`${base}/namez`)).json()) as { names: { name: string; namespace: string }[] };
      assert.equal(namez.names.find((n) => n.name === 'shown')?.namespace, 'tenant-a');
      assert.ok(server.broker.namespaces!.get('tenant-a') !== undefined);
    } finally {
      closeAll(a);
    }
    await assertBrokerEmpty(server);
    await eventually(() => server.broker.namespaces!.size === 0, 3000, 'every namespace dropped');
  });
});

describe('namespaces: access, declared namespaces, metrics and the HTTP API', () => {
  let server: RunningServer;
  before(async () => {
    server = await startTestBroker({
      namespaces: { declared: ['tenant-a'], requireDeclared: false },
      access: {
        anonymous: true,
        users: [
          { name: 'tenant', token: 'tenant-token', permissions: { namespaces: { allow: ['tenant-*'], deny: ['tenant-secret'] } } },
          { name: 'root', token: 'root-token' },
        ],
      },
    });
  });
  after(async () => {
    await server.close();
  });

  for (const transport of TRANSPORTS) {
    test(`${transport}: a handshake to a namespace the user may not use is refused with Close namespace_forbidden`, async () => {
      const ok = await connect(server, transport, { path: 'tenant-x', query: 'token=tenant-token' });
      closeAll(ok);
      for (const path of [undefined, 'billing', 'tenant-secret']) {
        const refused = await connect(server, transport, { path, query: 'token=tenant-token', awaitConnack: false });
        try {
          const close = await refused.nextFlag(Flag.Close);
          assert.match(close.metaString, /reason=namespace_forbidden/, `path ${path}`);
          assert.match(close.data.toString(), /may not use the namespace/);
        } finally {
          closeAll(refused);
        }
      }
      const invalid = await connect(server, transport, { path: 'a/b', awaitConnack: false });
      try {
        assert.match((await invalid.nextFlag(Flag.Close)).metaString, /reason=namespace_invalid/);
      } finally {
        closeAll(invalid);
      }
    });
  }

  test('metrics: a namespace label for declared namespaces, the rest summed as other', async () => {
    const clients: RawClient[] = [];
    try {
      clients.push(await connect(server, 'tcp', { path: 'tenant-a' }));
      clients.push(await connect(server, 'ws', { path: 'tenant-q' }));
      clients.push(await connect(server, 'udp', { path: 'tenant-r' }));
      clients.push(await connect(server, 'tcp'));
      await subscribe(clients[1], 'a.b');
      const text = await (await fetch(`http://127.0.0.1:${ports(server).http}/metrics`)).text();
      assert.match(text, /socketd_namespace_sessions\{namespace="tenant-a"\} 1/);
      assert.match(text, /socketd_namespace_sessions\{namespace="other"\} 2/);
      assert.match(text, /socketd_namespace_sessions\{namespace="\/"\} 1/);
      assert.match(text, /socketd_namespace_subscriptions\{namespace="other"\} 1/);
      assert.doesNotMatch(text, /tenant-q/);
      assert.match(text, /socketd_namespaces 3/);
    } finally {
      closeAll(...clients);
    }
  });

  test('the HTTP API takes a namespace: publish, SSE and presence stay inside it; a forbidden one is 403', async () => {
    const inA = await connect(server, 'udp', { path: 'tenant-a' });
    const inDefault = await connect(server, 'ws');
    try {
      await subscribe(inA, 'orders.new');
      await subscribe(inDefault, 'orders.new');
      const base = `http://127.0.0.1:${ports(server).http}`;
      const post = (body: unknown, token?: string): Promise<Response> => fetch(`${base}/api/publish`, {
        method: 'POST', body: JSON.stringify(body),
        headers: { 'content-type': 'application/json', ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
      });
      const res = await post({ event: 'orders.new', data: 'a', namespace: 'tenant-a' });
      assert.deepEqual(await res.json(), { delivered: 1 });
      await inA.next(messagesOf('orders.new'));
      await assertNothing([inDefault], QUIET_MS, messagesOf('orders.new'), 'a publish to tenant-a');
      const forbidden = await post({ event: 'orders.new', data: 'a' }, 'tenant-token');
      assert.equal(forbidden.status, 403);
      assert.equal(((await forbidden.json()) as { error: string }).error, 'namespace_forbidden');
      const presence = (await (await fetch(`${base}/api/presence?event=orders.new&namespace=tenant-a`)).json()) as { members: unknown[] };
      assert.equal(presence.members.length, 1);
      const bad = await post({ event: 'orders.new', namespace: 'a/b' });
      assert.equal(bad.status, 400);
      // A request and an event stream in tenant-a see only tenant-a.
      const responder = await connect(server, 'ws', { path: 'tenant-a' });
      try {
        await subscribe(responder, 'price.get');
        autoReply(responder, (f) => f.flag === Flag.Request, () => 'tenant-a price');
        const asked = await fetch(`${base}/api/request`, { method: 'POST', body: JSON.stringify({ event: 'price.get', namespace: 'tenant-a' }) });
        assert.equal(((await asked.json()) as { data: string }).data, 'tenant-a price');
        const elsewhere = await fetch(`${base}/api/request`, { method: 'POST', body: JSON.stringify({ event: 'price.get' }) });
        assert.equal(elsewhere.status, 404);
      } finally {
        closeAll(responder);
      }
      const controller = new AbortController();
      const stream = await fetch(`${base}/api/subscribe?event=news.>&namespace=tenant-a`, { signal: controller.signal });
      assert.equal(stream.status, 200);
      const reader = stream.body!.getReader();
      let text = '';
      await eventually(() => [...server.broker.namespaces!.get('tenant-a')!.events.allSubscriptions()].some((x) => x.pattern === 'news.>'), 5000, 'the stream');
      const pubDefault = await connect(server, 'tcp');
      const pubA = await connect(server, 'tcp', { path: 'tenant-a' });
      try {
        pubDefault.send({ flag: Flag.Message, event: 'news.x', data: 'from-default' });
        pubA.send({ flag: Flag.Message, event: 'news.x', data: 'from-a' });
        while (!text.includes('from-a')) text += new TextDecoder().decode((await reader.read()).value);
        assert.ok(!text.includes('from-default'), text);
      } finally {
        controller.abort();
        closeAll(pubDefault, pubA);
      }
    } finally {
      closeAll(inA, inDefault);
    }
  });
});

describe('namespaces: requireDeclared', () => {
  let server: RunningServer;
  before(async () => {
    server = await startTestBroker({ namespaces: { declared: ['tenant-a'], requireDeclared: true } });
  });
  after(async () => {
    await server.close();
  });

  test('a namespace not declared is refused with Close namespace_unknown; declared and default ones open', async () => {
    for (const transport of TRANSPORTS) {
      const ok = await connect(server, transport, { path: 'tenant-a' });
      const plain = await connect(server, transport);
      closeAll(ok, plain);
      const refused = await connect(server, transport, { path: 'tenant-b', awaitConnack: false });
      try {
        const close = await refused.nextFlag(Flag.Close);
        assert.match(close.metaString, /reason=namespace_unknown/);
      } finally {
        closeAll(refused);
      }
    }
    const res = await fetch(`http://127.0.0.1:${ports(server).http}/api/publish`, { method: 'POST', body: JSON.stringify({ event: 'a.b', namespace: 'tenant-b' }) });
    assert.equal(res.status, 404);
    assert.equal(((await res.json()) as { error: string }).error, 'namespace_unknown');
  });
});

describe('namespaces: fromPath off', () => {
  test('the path is ignored: every session is in the default namespace, as before namespaces', async () => {
    const server = await startTestBroker({ namespaces: { fromPath: false } });
    const sub = await connect(server, 'tcp', { path: 'tenant-a' });
    const pub = await connect(server, 'udp', { path: 'tenant-b' });
    try {
      await subscribe(sub, 'x.y');
      pub.send({ flag: Flag.Message, event: 'x.y' });
      await sub.next(messagesOf('x.y'));
      assert.equal(server.broker.namespaces!.size, 0);
    } finally {
      closeAll(sub, pub);
      await server.close();
    }
  });
});
