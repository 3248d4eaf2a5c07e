/**
 * Cluster mode over a real redis-server (docs/cluster.md) with three broker processes started through the
 * CLI: fan-out across nodes in order, `@name` and a queue group in fair shares, a stream crossing nodes, a
 * node killed with SIGKILL mid-stream (its requesters alarmed, its members told leaving to the other nodes'
 * presence watchers), and Redis stopped and restarted under traffic.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Flag, type Frame } from '../../src/protocol/index.js';
import { RawClient } from '../support/raw-client.js';
import { BrokerProcess, getJson, type ProcessPorts } from '../support/broker-process.js';
import { RedisServer, skipWithoutRedis } from '../support/redis.js';
import { eventually } from '../support/broker.js';
import { closeAll, metaOf, sleep } from '../support/integration.js';
import { assertAlarm, autoReply, isMessage, presenceOf, subscribe } from '../support/events.js';

const HEARTBEAT_MS = 200;
const NODE_TIMEOUT_MS = 1000;
const WAIT_MS = 15_000;

interface Node {
  id: string;
  process: BrokerProcess;
  ports: ProcessPorts;
}

async function startNode(redis: RedisServer, id: string): Promise<Node> {
  const process = new BrokerProcess({
    SOCKETD_CLUSTER__REDIS: redis.url,
    SOCKETD_CLUSTER__NODE_ID: id,
    SOCKETD_CLUSTER__HEARTBEAT_MS: String(HEARTBEAT_MS),
    SOCKETD_CLUSTER__NODE_TIMEOUT_MS: String(NODE_TIMEOUT_MS),
    SOCKETD_TIMEOUTS__REQUEST_MS: '8000',
  });
  return { id, process, ports: await process.ports() };
}

interface NodeView {
  node: string;
  subscriptions: number;
  named: number;
}

async function nodes(of: Node): Promise<NodeView[]> {
  const { body } = await getJson(of.ports.http, '/nodez');
  return body.nodes as NodeView[];
}

/** Waits until `of` sees each listed peer with at least these interest counts. */
async function sees(of: Node, expect: Record<string, { subscriptions?: number; named?: number }>): Promise<void> {
  const until = Date.now() + WAIT_MS;
  for (;;) {
    const view = await nodes(of);
    const ok = Object.entries(expect).every(([peer, want]) => {
      const v = view.find((n) => n.node === peer);
      return v !== undefined && v.subscriptions >= (want.subscriptions ?? 0) && v.named >= (want.named ?? 0);
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`${of.id} does not see ${JSON.stringify(expect)}: ${JSON.stringify(view)}`);
    await sleep(50);
  }
}

function dataOf(frames: readonly Frame[]): string[] {
  return frames.map((f) => f.data.toString());
}

describe('cluster over Redis: three broker processes', { skip: skipWithoutRedis }, () => {
  let redis: RedisServer;
  let a: Node;
  let b: Node;
  let c: Node;
  const clients: RawClient[] = [];
  const open = async (node: Node, name?: string): Promise<RawClient> => {
    const client = await RawClient.connect('tcp', node.ports.tcp, name === undefined ? {} : { name });
    clients.push(client);
    return client;
  };

  before(async () => {
    redis = await RedisServer.start();
    [a, b, c] = await Promise.all([startNode(redis, 'a'), startNode(redis, 'b'), startNode(redis, 'c')]);
    for (const n of [a, b, c]) {
      const until = Date.now() + WAIT_MS;
      while ((await nodes(n)).length < 3) {
        if (Date.now() > until) throw new Error(`${n.id} does not see the other nodes`);
        await sleep(50);
      }
    }
  });

  after(async () => {
    closeAll(...clients);
    await Promise.all([a, b, c].map((n) => n?.process.stop()));
    await redis?.stop();
  });

  it('fans Messages out across nodes, in order, once per subscriber', async () => {
    const pub = await open(a);
    const onB = await open(b);
    const onC = await open(c);
    await subscribe(onB, 'metrics.*');
    await subscribe(onB, 'metrics.>');
    await subscribe(onC, 'metrics.cpu');
    await sees(a, { b: { subscriptions: 2 }, c: { subscriptions: 1 } });
    const n = 300;
    for (let i = 0; i < n; i++) pub.send({ flag: Flag.Message, event: 'metrics.cpu', data: `v${i}` });
    const expected = Array.from({ length: n }, (_, i) => `v${i}`);
    for (const sub of [onB, onC]) {
      await eventually(() => sub.frames.filter(isMessage).length >= n, WAIT_MS, 'every message');
      await sleep(100);
      assert.deepEqual(dataOf(sub.frames.filter(isMessage)), expected);
    }
    assert.equal(pub.frames.filter(isMessage).length, 0, 'never back to the publisher');
  });

  it('round robins @name and a queue group across nodes in fair shares', async () => {
    const workers = [await open(a, 'worker'), await open(b, 'worker'), await open(c, 'worker'), await open(c, 'worker')];
    const served = workers.map(() => 0);
    workers.forEach((w, i) => autoReply(w, (f) => f.flag === Flag.Request, () => {
      served[i]++;
      return `by${i}`;
    }));
    const group = [await open(a), await open(b), await open(c)];
    for (const g of group) await subscribe(g, 'tasks.>', { group: 'pool' });
    const caller = await open(b);
    await sees(b, { a: { named: 1, subscriptions: 1 }, c: { named: 2, subscriptions: 1 } });
    await sees(a, { b: { named: 1, subscriptions: 1 }, c: { named: 2, subscriptions: 1 } });
    const n = 40;
    const sids = Array.from({ length: n }, (_, i) => caller.send({ flag: Flag.Request, event: 'work', meta: '@=worker', data: `${i}` }));
    for (const sid of sids) assert.equal((await caller.nextFor(sid, WAIT_MS)).flag, Flag.ReplyEnd);
    assert.deepEqual(served, [10, 10, 10, 10], 'each of the 4 workers, on 3 nodes, served a quarter');
    const publisher = await open(a);
    const m = 30;
    for (let i = 0; i < m; i++) publisher.send({ flag: Flag.Message, event: 'tasks.one', data: `t${i}` });
    await eventually(() => group.reduce((s, g) => s + g.frames.filter(isMessage).length, 0) >= m, WAIT_MS, 'every task');
    await sleep(200);
    assert.deepEqual(group.map((g) => g.frames.filter(isMessage).length), [10, 10, 10], 'each task once, a third each');
  });

  it('relays a Subscribe stream across nodes in order', async () => {
    const feed = await open(c);
    await subscribe(feed, 'feed.prices');
    const requester = await open(a);
    await sees(a, { c: { subscriptions: 1 } });
    const sid = requester.send({ flag: Flag.Subscribe, event: 'feed.prices' });
    const forwarded = await feed.next((f) => f.flag === Flag.Subscribe, WAIT_MS);
    for (let i = 0; i < 20; i++) feed.send({ flag: Flag.Reply, sid: forwarded.sid, event: 'feed.prices', data: `p${i}` });
    feed.send({ flag: Flag.ReplyEnd, sid: forwarded.sid, event: 'feed.prices', data: 'closed' });
    const got: string[] = [];
    for (;;) {
      const f = await requester.nextFor(sid, WAIT_MS);
      got.push(f.data.toString());
      if (f.flag === Flag.ReplyEnd) break;
    }
    assert.deepEqual(got, [...Array.from({ length: 20 }, (_, i) => `p${i}`), 'closed']);
  });

  it('carries namespaces across nodes: events, @name, a Request and presence stay inside their namespace (docs/namespaces.md)', async () => {
    const before = await nodes(a);
    const count = (view: NodeView[], id: string): { subscriptions: number; named: number } => {
      const v = view.find((n) => n.node === id)!;
      return { subscriptions: v.subscriptions, named: v.named };
    };
    const mine: RawClient[] = [];
    const openIn = async (node: Node, path: string, name?: string): Promise<RawClient> => {
      const client = await RawClient.connect('tcp', node.ports.tcp, name === undefined ? { path } : { path, name });
      mine.push(client);
      return client;
    };
    try {
      const subB = await openIn(b, 'tenant-r');
      const svcC = await openIn(c, 'tenant-r', 'svc');
      const otherB = await openIn(b, 'tenant-q', 'svc');
      await subscribe(subB, 'orders.*');
      await subscribe(otherB, 'orders.*');
      await subscribe(svcC, 'orders.audit'); // an exact event: svc is a member of it (presence)
      await subscribe(otherB, 'orders.audit');
      autoReply(svcC, (f) => f.flag === Flag.Request, (f) => `svc:${f.data.toString()}`);
      autoReply(otherB, (f) => f.flag === Flag.Request, () => 'wrong namespace');
      const bBefore = count(before, 'b');
      const cBefore = count(before, 'c');
      await sees(a, {
        b: { subscriptions: bBefore.subscriptions + 3, named: bBefore.named + 1 },
        c: { subscriptions: cBefore.subscriptions + 1, named: cBefore.named + 1 },
      });
      const pub = await openIn(a, 'tenant-r');
      const n = 50;
      for (let i = 0; i < n; i++) pub.send({ flag: Flag.Message, event: 'orders.new', data: `o${i}` });
      await eventually(() => subB.frames.filter(isMessage).length >= n, WAIT_MS, 'every message in the namespace');
      const sid = pub.send({ flag: Flag.Request, event: 'ask', meta: '@=svc', data: 'q' });
      const answer = await pub.nextFor(sid, WAIT_MS);
      assert.equal(answer.flag, Flag.ReplyEnd);
      assert.equal(answer.data.toString(), 'svc:q');
      await sleep(100);
      assert.deepEqual(dataOf(subB.frames.filter(isMessage)), Array.from({ length: n }, (_, i) => `o${i}`), 'in order, once');
      assert.deepEqual(otherB.frames.filter((f) => f.flag === Flag.Message || f.flag === Flag.Request).length, 0, 'nothing reaches another namespace');
      // $presence over Redis: the member on c, not the other namespace's on b (docs/cluster.md, "Presence").
      assert.deepEqual((await presenceOf(pub, 'orders.audit')).map((e) => e.name), ['svc']);
    } finally {
      closeAll(...mine);
    }
  });

  it('alarms the requesters of a node killed with SIGKILL mid-stream within the node timeout, tells its members leaving; the others keep serving', async () => {
    const doomed = await open(c, 'doomed');
    // Presence (docs/cluster.md, "Presence"): `doomed` joins before anyone watches (the watchers' nodes learn it
    // from c's snapshot), `late` after (from c's join notice, which also shows c has seen both watchers).
    await subscribe(doomed, 'room.k');
    const watchers = [await open(a, 'wa'), await open(b, 'wb')];
    for (const w of watchers) await subscribe(w, 'room.k', { presence: true });
    const late = await open(c, 'late');
    const heard = (w: RawClient): string[] => w.frames.filter((f) => f.flag === Flag.Message && f.event.startsWith('$presence.'))
      .map((f) => `${f.event}:${metaOf(f.metaString, 'name')}`);
    await subscribe(late, 'room.k');
    await eventually(() => watchers.every((w) => heard(w).includes('$presence.join:late')), WAIT_MS, 'a and b hear late join');
    const alive = await open(b, 'alive');
    autoReply(alive, (f) => f.flag === Flag.Request, () => 'still here');
    const requester = await open(a);
    await sees(a, { c: { named: 2 }, b: { named: 2 } });
    const sid = requester.send({ flag: Flag.Subscribe, event: 'watch', meta: '@=doomed' });
    const forwarded = await doomed.next((f) => f.flag === Flag.Subscribe, WAIT_MS);
    doomed.send({ flag: Flag.Reply, sid: forwarded.sid, event: 'watch', data: 'first' });
    assert.equal((await requester.nextFor(sid, WAIT_MS)).data.toString(), 'first');
    const killedAt = Date.now();
    c.process.kill('SIGKILL');
    const alarm = await requester.nextFor(sid, WAIT_MS);
    assertAlarm(alarm, 5003, sid);
    const took = Date.now() - killedAt;
    assert.ok(took <= NODE_TIMEOUT_MS + 3 * HEARTBEAT_MS + 1000, `alarmed after ${took} ms (node timeout ${NODE_TIMEOUT_MS} ms)`);
    const ask = requester.send({ flag: Flag.Request, event: 'q', meta: '@=alive' });
    assert.equal((await requester.nextFor(ask, WAIT_MS)).data.toString(), 'still here');
    const gone = requester.send({ flag: Flag.Request, event: 'q', meta: '@=doomed' });
    assertAlarm(await requester.nextFor(gone, WAIT_MS), 4004, gone);
    // Every watcher on the other nodes heard each of c's members leave, once.
    for (const w of watchers) {
      await eventually(() => heard(w).includes('$presence.leave:doomed') && heard(w).includes('$presence.leave:late'), WAIT_MS, 'c\'s members told leaving');
    }
    await sleep(200);
    for (const w of watchers) {
      assert.deepEqual(heard(w).filter((n) => n.startsWith('$presence.leave')).sort(), ['$presence.leave:doomed', '$presence.leave:late']);
    }
    assert.deepEqual((await presenceOf(requester, 'room.k')).map((e) => e.name).sort(), ['wa', 'wb']);
  });

  it('keeps local traffic flowing while Redis is down, answers or alarms every Request, and resumes cross-node traffic by itself', async () => {
    const pub = await open(a);
    const localSub = await open(a);
    const remoteSub = await open(b);
    const remoteSvc = await open(b, 'svc');
    autoReply(remoteSvc, (f) => f.flag === Flag.Request, (f) => `ok:${f.data.toString()}`);
    await subscribe(localSub, 'ticks.*');
    await subscribe(remoteSub, 'ticks.*');
    // Presence across the outage (docs/cluster.md, "Presence"): b's member is told leaving when a drops b, and
    // joining again when b is back.
    const watcher = await open(a);
    const aOnB = (await nodes(b)).find((n) => n.node === 'a')!.subscriptions;
    await subscribe(watcher, 'room.o', { presence: true });
    // b sees a's watcher (announced in the same delta as its subscription) before its member joins.
    await sees(b, { a: { subscriptions: aOnB + 1 } });
    await subscribe(remoteSub, 'room.o');
    const heard = (): string[] => watcher.frames.filter((f) => f.flag === Flag.Message && f.event.startsWith('$presence.'))
      .map((f) => `${f.event}:${metaOf(f.metaString, 'id')}`);
    await eventually(() => heard().length === 1, WAIT_MS, 'a hears b\'s member join');
    await sees(a, { b: { subscriptions: 1, named: 1 } });
    let sent = 0;
    const requests: string[] = [];
    const tick = (): void => {
      pub.send({ flag: Flag.Message, event: 'ticks.now', data: `t${sent++}` });
      requests.push(pub.send({ flag: Flag.Request, event: 'r', meta: '@=svc&timeout=3000', data: String(sent) }));
    };
    for (let i = 0; i < 10; i++) {
      tick();
      await sleep(20);
    }
    await redis.stop();
    const down = Date.now();
    while (Date.now() - down < NODE_TIMEOUT_MS + 500) {
      tick();
      await sleep(50);
    }
    const { body } = await getJson(a.ports.http, '/readyz');
    assert.equal(body.status, 'degraded', '/readyz reports the lost link');
    await redis.startAgain();
    const until = Date.now() + WAIT_MS;
    while ((await getJson(a.ports.http, '/readyz')).body.status !== 'ready' || (await nodes(a)).length < 2) {
      if (Date.now() > until) throw new Error('a did not rejoin');
      await sleep(100);
    }
    await sees(a, { b: { subscriptions: 1, named: 1 } });
    const before = remoteSub.frames.filter(isMessage).length;
    for (let i = 0; i < 10; i++) tick();
    // Local traffic never stopped: every tick reached the local subscriber, in order.
    await eventually(() => localSub.frames.filter(isMessage).length >= sent, WAIT_MS, 'every local message');
    assert.deepEqual(dataOf(localSub.frames.filter(isMessage)), Array.from({ length: sent }, (_, i) => `t${i}`));
    // Cross-node traffic resumed by itself.
    await eventually(() => remoteSub.frames.filter(isMessage).length >= before + 10, WAIT_MS, 'cross-node messages after the restart');
    // Every Request got its answer or an Alarm.
    let answered = 0;
    let alarmed = 0;
    for (const sid of requests) {
      const f = await pub.nextFor(sid, WAIT_MS);
      if (f.flag === Flag.ReplyEnd) answered++;
      else {
        assert.equal(f.flag, Flag.Alarm);
        assert.ok(['5003', '4004', '4008'].includes(metaOf(f.metaString, 'code') ?? ''), `Alarm ${f.metaString}`);
        alarmed++;
      }
    }
    assert.ok(answered >= 20, `requests before and after the outage answered (${answered} answered, ${alarmed} alarmed)`);
    assert.ok(alarmed >= 1, 'requests during the outage alarmed');
    await eventually(() => heard().length === 3, WAIT_MS, 'the member told leaving, then joining again');
    const id = heard()[0].split(':')[1];
    assert.deepEqual(heard(), [`$presence.join:${id}`, `$presence.leave:${id}`, `$presence.join:${id}`]);
  });
});
