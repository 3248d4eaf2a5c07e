/**
 * Cluster mode over the in-process bus (docs/cluster.md): three brokers, each on its own real sockets, joined
 * by a MemoryHub. Everything that works on one node works across nodes, with the same Alarms (spec §4, §5, §6).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Flag, type Frame } from '../../src/protocol/index.js';
import { MemoryHub } from '../../src/cluster/memory-bus.js';
import { batchHead, envelopeEntry } from '../../src/cluster/records.js';
import { encodeFrame } from '../../src/protocol/codec.js';
import type { RunningServer } from '../../src/server.js';
import { readFileSync } from 'node:fs';
import { eventually, ports, startTestBroker, type TestBrokerConfig } from '../support/broker.js';
import { getJson } from '../support/broker-process.js';
import { closeAll, connect, metaOf, sleep } from '../support/integration.js';
import type { RawClient, RawConnectOptions } from '../support/raw-client.js';
import { WAIT_MS, assertAlarm, assertNothing, autoReply, isMessage, subscribe } from '../support/events.js';

const TIMEOUTS = { requestMs: 8000, idleMs: 20_000, handshakeMs: 5000 };

interface Cluster {
  hub: MemoryHub;
  nodes: RunningServer[];
  clients: RawClient[];
}

async function startCluster(names: string[], overrides: TestBrokerConfig = {}): Promise<Cluster> {
  const hub = new MemoryHub();
  const nodes: RunningServer[] = [];
  for (const name of names) nodes.push(await startTestBroker({ ...overrides, timeouts: TIMEOUTS }, { clusterBus: hub.bus(name) }));
  await eventually(() => nodes.every((n) => n.cluster!.peerCount === names.length - 1), WAIT_MS, 'every node sees the others');
  return { hub, nodes, clients: [] };
}

async function stopCluster(c: Cluster): Promise<void> {
  closeAll(...c.clients);
  await Promise.all(c.nodes.map((n) => eventually(() => n.broker.sessionCount === 0, WAIT_MS, 'sessions gone').catch(() => undefined)));
  await Promise.all(c.nodes.map((n) => n.close()));
}

async function client(c: Cluster, node: number, options: RawConnectOptions = {}): Promise<RawClient> {
  const cl = await connect(c.nodes[node], 'tcp', options);
  c.clients.push(cl);
  return cl;
}

/** Waits until every node knows `count` remote interest entries under keys starting with `prefix` from others. */
async function interestSettled(c: Cluster): Promise<void> {
  // Announcements go once per tick and take one hub round: a few ticks settle them.
  await eventually(() => c.nodes.every((n) => n.cluster!.local.pending === 0), WAIT_MS, 'interest announced');
  await sleep(30);
}

function dataOf(frames: readonly Frame[]): string[] {
  return frames.map((f) => f.data.toString());
}

describe('cluster over the in-process bus: event routing', () => {
  let c: Cluster;
  before(async () => {
    c = await startCluster(['a', 'b', 'c']);
  });
  after(async () => stopCluster(c));

  it('fans a Message out to wildcard subscribers on every node, in order, once per session, never back to the sender', async () => {
    const pub = await client(c, 0);
    const localSub = await client(c, 0);
    const twoPatterns = await client(c, 1);
    const exact = await client(c, 2);
    await subscribe(localSub, 'chat.>');
    await subscribe(twoPatterns, 'chat.*');
    await subscribe(twoPatterns, 'chat.>');
    await subscribe(exact, 'chat.room');
    await subscribe(pub, 'chat.room'); // the sender's own subscription: it never hears itself
    await interestSettled(c);
    const before = c.nodes[1].cluster!.stats.peer('a').framesIn;
    const n = 50;
    for (let i = 0; i < n; i++) pub.send({ flag: Flag.Message, event: 'chat.room', data: `m${i}` });
    const expected = Array.from({ length: n }, (_, i) => `m${i}`);
    for (const sub of [localSub, twoPatterns, exact]) {
      await eventually(() => sub.frames.filter(isMessage).length >= n, WAIT_MS, 'every message');
      await sleep(50);
      assert.deepEqual(dataOf(sub.frames.filter(isMessage)), expected, 'all of them, in order, once');
      sub.frames.length = 0;
    }
    // Once per node: node b got each frame once although two of its patterns match.
    assert.equal(c.nodes[1].cluster!.stats.peer('a').framesIn - before, n);
    await assertNothing([pub], 100, isMessage, 'echo of its own messages');
  });

  it('serves a queue group once among all nodes, in fair shares by member count', async () => {
    const pub = await client(c, 0);
    const members = [await client(c, 0), await client(c, 1), await client(c, 1), await client(c, 2)];
    const plain = await client(c, 2);
    for (const m of members) await subscribe(m, 'jobs.*', { group: 'workers' });
    await subscribe(plain, 'jobs.>');
    await interestSettled(c);
    const n = 40;
    for (let i = 0; i < n; i++) pub.send({ flag: Flag.Message, event: 'jobs.run', data: `j${i}` });
    await eventually(() => members.reduce((s, m) => s + m.frames.filter(isMessage).length, 0) >= n, WAIT_MS, 'every job');
    await eventually(() => plain.frames.filter(isMessage).length >= n, WAIT_MS, 'the plain subscriber hears all');
    await sleep(100);
    const counts = members.map((m) => m.frames.filter(isMessage).length);
    assert.equal(counts.reduce((a, b) => a + b, 0), n, `each job served once: ${counts}`);
    for (const count of counts) assert.ok(count >= 8 && count <= 12, `fair shares of ${n} over 4 members: ${counts}`);
    assert.deepEqual(dataOf(plain.frames.filter(isMessage)), Array.from({ length: n }, (_, i) => `j${i}`));
  });

  it('relays Request replies and Subscribe streams across nodes, in order', async () => {
    const responder = await client(c, 1);
    const requester = await client(c, 0);
    await subscribe(responder, 'svc.echo');
    await subscribe(responder, 'svc.feed');
    await interestSettled(c);
    autoReply(responder, (f) => f.flag === Flag.Request && f.event === 'svc.echo', (f) => `echo:${f.data.toString()}`);
    const sids = Array.from({ length: 20 }, (_, i) => requester.send({ flag: Flag.Request, event: 'svc.echo', data: `q${i}` }));
    for (let i = 0; i < sids.length; i++) {
      const answer = await requester.nextFor(sids[i], WAIT_MS);
      assert.equal(answer.flag, Flag.ReplyEnd);
      assert.equal(answer.data.toString(), `echo:q${i}`);
    }
    const sub = requester.send({ flag: Flag.Subscribe, event: 'svc.feed' });
    const forwarded = await responder.next((f) => f.flag === Flag.Subscribe, WAIT_MS);
    for (let i = 0; i < 5; i++) responder.send({ flag: Flag.Reply, sid: forwarded.sid, event: 'svc.feed', data: `r${i}` });
    responder.send({ flag: Flag.ReplyEnd, sid: forwarded.sid, event: 'svc.feed', data: 'end' });
    const got: string[] = [];
    for (;;) {
      const f = await requester.nextFor(sub, WAIT_MS);
      got.push(`${f.flag === Flag.ReplyEnd ? 'end' : 'reply'}:${f.data.toString()}`);
      if (f.flag !== Flag.Reply) break;
    }
    assert.deepEqual(got, ['reply:r0', 'reply:r1', 'reply:r2', 'reply:r3', 'reply:r4', 'end:end']);
  });

  it('times out a Request a responder on another node never answers (4008)', async () => {
    const responder = await client(c, 2);
    const requester = await client(c, 0);
    await subscribe(responder, 'svc.silent');
    await interestSettled(c);
    const started = Date.now();
    const sid = requester.send({ flag: Flag.Request, event: 'svc.silent', meta: 'timeout=300' });
    await responder.next((f) => f.flag === Flag.Request, WAIT_MS);
    assertAlarm(await requester.nextFor(sid, WAIT_MS), 4008, sid);
    assert.ok(Date.now() - started < 2000);
    await sleep(200);
    assert.equal(requester.frames.filter((f) => f.sid === sid).length, 0, 'one answer only');
  });
});

describe('cluster over the in-process bus: @ addressing', () => {
  let c: Cluster;
  before(async () => {
    c = await startCluster(['a', 'b', 'c']);
  });
  after(async () => stopCluster(c));

  it('round robins @name over every node in fair shares, and answers each Request', async () => {
    const workers = [await client(c, 0, { name: 'w' }), await client(c, 1, { name: 'w' }), await client(c, 1, { name: 'w' }), await client(c, 2, { name: 'w' })];
    const seen = workers.map(() => 0);
    workers.forEach((w, i) => autoReply(w, (f) => f.flag === Flag.Request, (f) => {
      seen[i]++;
      return `w${i}:${f.data.toString()}`;
    }));
    const caller = await client(c, 0);
    await interestSettled(c);
    const n = 40;
    const sids = Array.from({ length: n }, (_, i) => caller.send({ flag: Flag.Request, event: 'job', meta: '@=w', data: `${i}` }));
    for (let i = 0; i < n; i++) {
      const answer = await caller.nextFor(sids[i], WAIT_MS);
      assert.equal(answer.flag, Flag.ReplyEnd);
      assert.match(answer.data.toString(), new RegExp(`^w\\d:${i}$`));
    }
    assert.deepEqual(seen, [10, 10, 10, 10], 'fair shares across nodes');
  });

  it('delivers @name* to every member on every node and @* to every named session', async () => {
    const a = await client(c, 0, { name: 'room' });
    const b = await client(c, 1, { name: 'room' });
    const other = await client(c, 2, { name: 'other' });
    const caller = await client(c, 0, { name: 'caller' });
    await interestSettled(c);
    caller.send({ flag: Flag.Message, event: 'hello', meta: '@=room*', data: 'all-room' });
    caller.send({ flag: Flag.Message, event: 'hello', meta: '@=*', data: 'everyone' });
    for (const m of [a, b]) {
      await eventually(() => m.frames.filter(isMessage).length >= 2, WAIT_MS, 'both messages');
      assert.deepEqual(dataOf(m.frames.filter(isMessage)), ['all-room', 'everyone']);
    }
    await eventually(() => other.frames.filter(isMessage).length >= 1, WAIT_MS, '@* reaches other');
    assert.deepEqual(dataOf(other.frames.filter(isMessage)), ['everyone']);
    await assertNothing([caller], 100, isMessage, 'its own @*');
  });

  it('gathers @name* Subscribe replies from every node and ends once (scatter-gather, spec §5)', async () => {
    const ws = [await client(c, 0, { name: 'sg' }), await client(c, 1, { name: 'sg' }), await client(c, 2, { name: 'sg' })];
    ws.forEach((w, i) => autoReply(w, (f) => f.flag === Flag.Subscribe, () => `n${i}`));
    const caller = await client(c, 1);
    await interestSettled(c);
    const sid = caller.send({ flag: Flag.Subscribe, event: 'ask', meta: '@=sg*' });
    const got: string[] = [];
    for (;;) {
      const f = await caller.nextFor(sid, WAIT_MS);
      if (f.data.length > 0) got.push(f.data.toString());
      if (f.flag === Flag.ReplyEnd) break;
      assert.equal(f.flag, Flag.Reply);
    }
    assert.deepEqual(got.sort(), ['n0', 'n1', 'n2'], 'every node answered, then one ReplyEnd');
    await sleep(100);
    assert.equal(caller.frames.filter((f) => f.sid === sid).length, 0, 'nothing after the ReplyEnd');
  });

  it('sends @name! with the same key to the same member, whichever node it is on', async () => {
    const ws = [await client(c, 0, { name: 'h' }), await client(c, 1, { name: 'h' }), await client(c, 2, { name: 'h' })];
    const caller = await client(c, 0);
    await interestSettled(c);
    const keys = Array.from({ length: 12 }, (_, i) => `user-${i}`);
    for (const key of keys) for (let r = 0; r < 3; r++) caller.send({ flag: Flag.Message, event: 'e', meta: `@=h!&X-Hash=${key}`, data: key });
    await eventually(() => ws.reduce((s, w) => s + w.frames.filter(isMessage).length, 0) >= keys.length * 3, WAIT_MS, 'every message');
    const owner = new Map<string, number>();
    ws.forEach((w, i) => {
      for (const f of w.frames.filter(isMessage)) {
        const key = f.data.toString();
        assert.ok(!owner.has(key) || owner.get(key) === i, `key ${key} stays on one member`);
        owner.set(key, i);
      }
    });
    assert.ok(new Set(owner.values()).size >= 2, 'keys spread over members');
  });

  it('answers a Request to a name nobody holds with 4004', async () => {
    const caller = await client(c, 2);
    const sid = caller.send({ flag: Flag.Request, event: 'x', meta: '@=nobody' });
    assertAlarm(await caller.nextFor(sid, WAIT_MS), 4004, sid);
  });
});

describe('cluster over the in-process bus: node loss and link loss', () => {
  it('fails streams waiting on a node that dies with 5003, and the others keep serving', async () => {
    const c = await startCluster(['a', 'b', 'c']);
    try {
      const doomed = await client(c, 1, { name: 'svc' });
      const survivor = await client(c, 2, { name: 'svc2' });
      autoReply(survivor, (f) => f.flag === Flag.Request, () => 'alive');
      const caller = await client(c, 0);
      await interestSettled(c);
      const sid = caller.send({ flag: Flag.Request, event: 'slow', meta: '@=svc' });
      await doomed.next((f) => f.flag === Flag.Request, WAIT_MS);
      c.hub.kill('b');
      assertAlarm(await caller.nextFor(sid, WAIT_MS), 5003, sid);
      const again = caller.send({ flag: Flag.Request, event: 'x', meta: '@=svc2' });
      assert.equal((await caller.nextFor(again, WAIT_MS)).data.toString(), 'alive');
      // The dead node's interest is gone: @svc has no route now.
      const gone = caller.send({ flag: Flag.Request, event: 'x', meta: '@=svc' });
      assertAlarm(await caller.nextFor(gone, WAIT_MS), 4004, gone);
      await eventually(() => c.nodes[0].broker.stats.streamsOpen === 0, WAIT_MS, 'no stream left on a');
    } finally {
      c.nodes.splice(1, 1)[0].close().catch(() => undefined);
      await stopCluster(c);
    }
  });

  it('keeps local routing while the link is down, alarms cross-node sends, and resumes by itself', async () => {
    const c = await startCluster(['a', 'b']);
    try {
      const pub = await client(c, 0);
      const localSub = await client(c, 0);
      const remoteSub = await client(c, 1);
      const remoteSvc = await client(c, 1, { name: 'far' });
      await subscribe(localSub, 'news.*');
      await subscribe(remoteSub, 'news.*');
      await interestSettled(c);
      c.hub.cut('a');
      await eventually(() => !c.nodes[0].cluster!.linkUp && c.nodes[0].cluster!.peerCount === 0, WAIT_MS, 'a cut off');
      const sid = pub.send({ flag: Flag.Message, event: 'news.today', data: 'during' });
      await eventually(() => localSub.frames.filter(isMessage).length === 1, WAIT_MS, 'local delivery goes on');
      const alarm = await pub.nextFor(sid, WAIT_MS);
      assertAlarm(alarm, 5003, sid);
      const req = pub.send({ flag: Flag.Request, event: 'x', meta: '@=far' });
      assertAlarm(await pub.nextFor(req, WAIT_MS), 4004, req);
      assert.ok((c.nodes[0].cluster!.stats.alarms.get('link_down') ?? 0) >= 1, 'counted');
      c.hub.heal('a');
      await eventually(() => c.nodes[0].cluster!.linkUp && c.nodes[0].cluster!.peerCount === 1, WAIT_MS, 'a back');
      await interestSettled(c);
      pub.send({ flag: Flag.Message, event: 'news.today', data: 'after' });
      await eventually(() => remoteSub.frames.filter(isMessage).length === 1, WAIT_MS, 'cross-node delivery resumed');
      assert.deepEqual(dataOf(remoteSub.frames.filter(isMessage)), ['after']);
      autoReply(remoteSvc, (f) => f.flag === Flag.Request, () => 'back');
      const again = pub.send({ flag: Flag.Request, event: 'x', meta: '@=far' });
      assert.equal((await pub.nextFor(again, WAIT_MS)).data.toString(), 'back');
      assert.equal(metaOf(alarm.metaString, 'code'), '5003');
    } finally {
      await stopCluster(c);
    }
  });
});

describe('cluster over the in-process bus: the backlog cap', () => {
  it('refuses frames above the backlog: Requests get Alarm 5003 at once, Messages are counted, nothing waits', async () => {
    const hub = new MemoryHub();
    const busA = hub.bus('a');
    const nodes = [await startTestBroker({ timeouts: TIMEOUTS }, { clusterBus: busA }), await startTestBroker({ timeouts: TIMEOUTS }, { clusterBus: hub.bus('b') })];
    const c: Cluster = { hub, nodes, clients: [] };
    try {
      await eventually(() => nodes.every((n) => n.cluster!.peerCount === 1), WAIT_MS, 'peers');
      const svc = await client(c, 1, { name: 'svc' });
      const sub = await client(c, 1);
      await subscribe(sub, 'cap.*');
      const caller = await client(c, 0);
      await interestSettled(c);
      busA.maxBacklogBytes = 10; // every frame is larger
      const sid = caller.send({ flag: Flag.Request, event: 'x', meta: '@=svc', data: 'too much' });
      const alarm = await caller.nextFor(sid, WAIT_MS);
      assertAlarm(alarm, 5003, sid);
      assert.match(alarm.data.toString(), /backlog/);
      caller.send({ flag: Flag.Message, event: 'cap.x', data: 'dropped' });
      await eventually(() => (nodes[0].cluster!.stats.dropped.get('link_down') ?? 0) >= 1, WAIT_MS, 'the dropped Message counted');
      assert.equal(nodes[0].broker.stats.streamsOpen, 0, 'the refused stream is closed');
      await assertNothing([svc, sub], 100, (f) => f.flag === Flag.Request || f.flag === Flag.Message, 'refused frames');
      busA.maxBacklogBytes = Infinity;
      const ok = caller.send({ flag: Flag.Request, event: 'x', meta: '@=svc', data: 'fits' });
      const forwarded = await svc.next((f) => f.flag === Flag.Request, WAIT_MS);
      svc.send({ flag: Flag.ReplyEnd, sid: forwarded.sid, event: 'x', data: 'done' });
      assert.equal((await caller.nextFor(ok, WAIT_MS)).data.toString(), 'done');
    } finally {
      await stopCluster(c);
    }
  });
});

describe('cluster over the in-process bus: fragments and fast paths off', () => {
  for (const fastPaths of [{ forwardMessageBytes: true, matchCacheSize: 4096 }, { forwardMessageBytes: false, matchCacheSize: 0 }]) {
    it(`carries fragmented Messages and Requests across nodes (fast paths ${fastPaths.forwardMessageBytes ? 'on' : 'off'})`, async () => {
      const c = await startCluster(['a', 'b'], { fastPaths });
      try {
        const pub = await client(c, 0);
        const sub = await client(c, 1);
        const svc = await client(c, 1, { name: 'asm' });
        await subscribe(sub, 'big.*');
        await interestSettled(c);
        const total = 3;
        const sid = 'f'.repeat(32);
        for (let i = 1; i <= total; i++) {
          const meta = i === 1 ? `Data-Fragment-Idx=1&Data-Fragment-Total=${total}` : `Data-Fragment-Idx=${i}&Data-Fragment-Total=${total}`;
          pub.send({ flag: Flag.Message, sid, event: 'big.blob', meta, data: `part${i}` });
        }
        await eventually(() => sub.frames.filter(isMessage).length >= total, WAIT_MS, 'every fragment');
        const got = sub.frames.filter(isMessage);
        assert.deepEqual(dataOf(got), ['part1', 'part2', 'part3']);
        assert.equal(new Set(got.map((f) => f.sid)).size, 1, 'one sid for all fragments');
        if (fastPaths.forwardMessageBytes) assert.equal(got[0].sid, sid, 'bytes forwarded untouched: the sender\'s sid');
        // A fragmented Request to @asm on the other node: the fragments follow fragment 1 there.
        const rsid = 'r'.repeat(32);
        for (let i = 1; i <= total; i++) {
          const meta = i === 1 ? `@=asm&Data-Fragment-Idx=1&Data-Fragment-Total=${total}` : `Data-Fragment-Idx=${i}&Data-Fragment-Total=${total}`;
          pub.send({ flag: Flag.Request, sid: rsid, event: 'asm', meta, data: `q${i}` });
        }
        const parts: Frame[] = [];
        for (let i = 0; i < total; i++) parts.push(await svc.next((f) => f.flag === Flag.Request, WAIT_MS));
        assert.deepEqual(dataOf(parts), ['q1', 'q2', 'q3']);
        svc.send({ flag: Flag.ReplyEnd, sid: parts[0].sid, event: 'asm', data: 'assembled' });
        const answer = await pub.nextFor(rsid, WAIT_MS);
        assert.equal(answer.flag, Flag.ReplyEnd);
        assert.equal(answer.data.toString(), 'assembled');
      } finally {
        await stopCluster(c);
      }
    });
  }
});

describe('cluster over the in-process bus: admin endpoints and metrics', () => {
  it('lists the nodes on /nodez, reports a lost link on /readyz, and exports the documented cluster metrics', async () => {
    const c = await startCluster(['a', 'b']);
    try {
      const sub = await client(c, 1, { name: 'n1' });
      await subscribe(sub, 'm.*');
      await subscribe(sub, 'm.x', { group: 'g' });
      const pub = await client(c, 0);
      await interestSettled(c);
      for (let i = 0; i < 5; i++) pub.send({ flag: Flag.Message, event: 'm.x', data: String(i) });
      await eventually(() => sub.frames.filter(isMessage).length >= 5, WAIT_MS, 'every message, once (plain and group match the same session)');
      const http = ports(c.nodes[0]).http;
      const nodez = (await getJson(http, '/nodez')).body as { cluster: boolean; node: string; linkUp: boolean; nodes: Record<string, unknown>[] };
      assert.equal(nodez.cluster, true);
      assert.equal(nodez.node, 'a');
      assert.equal(nodez.linkUp, true);
      const peer = nodez.nodes.find((n) => n.node === 'b')!;
      assert.deepEqual([peer.self, peer.patterns, peer.subscriptions, peer.names, peer.named, peer.framesOut], [false, 2, 2, 1, 1, 5]);
      assert.equal(nodez.nodes.find((n) => n.node === 'a')!.self, true);
      assert.equal((await getJson(http, '/readyz')).body.status, 'ready');
      // The documented cluster metrics (docs/operations.md 5.4) are exactly the registered ones.
      const text = await c.nodes[0].metrics.text();
      const registered = new Set([...text.matchAll(/^# TYPE (socketd_cluster_[a-z_]+) (\w+)$/gm)].map((m) => `${m[1]} ${m[2]}`));
      const doc = readFileSync(new URL('../../../docs/operations.md', import.meta.url), 'utf8');
      const section = doc.slice(doc.indexOf('### 5.4 Cluster metrics'), doc.indexOf('## 6.'));
      const documented = new Set([...section.matchAll(/^\| `(socketd_cluster_[a-z_]+)` \| (\w+) \|/gm)].map((m) => `${m[1]} ${m[2]}`));
      assert.deepEqual([...registered].sort(), [...documented].sort());
      assert.match(text, /socketd_cluster_frames_forwarded_total\{peer="b",direction="out"\} 5/);
      assert.match(text, /socketd_cluster_peers_up 1/);
      c.hub.cut('a');
      await eventually(() => !c.nodes[0].cluster!.linkUp, WAIT_MS, 'link down');
      const degraded = await getJson(http, '/readyz');
      assert.deepEqual([degraded.status, degraded.body.status], [200, 'degraded']);
      assert.match(await c.nodes[0].metrics.text(), /socketd_cluster_link_up 0/);
      c.hub.heal('a');
      await eventually(() => c.nodes[0].cluster!.linkUp, WAIT_MS, 'link back');
      assert.equal((await getJson(http, '/readyz')).body.status, 'ready');
    } finally {
      await stopCluster(c);
    }
  });

  it('answers /nodez on a single node too', async () => {
    const server = await startTestBroker();
    try {
      assert.deepEqual((await getJson(ports(server).http, '/nodez')).body, { cluster: false, nodes: [] });
    } finally {
      await server.close();
    }
  });
});

describe('cluster over the in-process bus: namespaces across nodes (docs/cluster.md, "Namespaces")', () => {
  let c: Cluster;
  before(async () => {
    c = await startCluster(['a', 'b', 'c']);
  });
  after(async () => stopCluster(c));

  const texts = (cl: RawClient): string[] => cl.frames.filter(isMessage).map((f) => f.data.toString());

  it('fans a namespace\'s events out to its subscribers on every node, in order, and to no other namespace', async () => {
    const tenantB = await client(c, 1, { path: 'tenant-a' });
    const tenantC = await client(c, 2, { path: 'tenant-a' });
    const otherNs = await client(c, 1, { path: 'tenant-b' });
    const defaultSub = await client(c, 2);
    await subscribe(tenantB, 'chat.>');
    await subscribe(tenantC, 'chat.room');
    await subscribe(otherNs, 'chat.>');
    await subscribe(defaultSub, 'chat.>');
    const pub = await client(c, 0, { path: 'tenant-a' });
    await interestSettled(c);
    const n = 20;
    for (let i = 0; i < n; i++) pub.send({ flag: Flag.Message, event: 'chat.room', data: `t${i}` });
    const expected = Array.from({ length: n }, (_, i) => `t${i}`);
    for (const sub of [tenantB, tenantC]) {
      await eventually(() => texts(sub).length >= n, WAIT_MS, 'every message in the namespace');
      await sleep(30);
      assert.deepEqual(texts(sub), expected, 'in order, once');
    }
    await assertNothing([otherNs, defaultSub], 100, isMessage, 'another namespace');
    // The default namespace still crosses nodes, and stays out of the tenants.
    const defaultPub = await client(c, 0);
    defaultPub.send({ flag: Flag.Message, event: 'chat.room', data: 'from-default' });
    await eventually(() => texts(defaultSub).length === 1, WAIT_MS, 'the default namespace crosses');
    await sleep(100);
    for (const sub of [tenantB, tenantC]) assert.deepEqual(texts(sub), expected, 'no default-namespace message');
    assert.deepEqual(texts(otherNs), []);
  });

  it('routes @name, @name!, @name* and @* per namespace across nodes', async () => {
    const svcB = await client(c, 1, { name: 'svc', path: 'ns-at' });
    const svcC = await client(c, 2, { name: 'svc', path: 'ns-at' });
    const otherB = await client(c, 1, { name: 'other', path: 'ns-at' });
    // Sessions of the same name elsewhere: another namespace on each node and the default one.
    const strangers = [await client(c, 1, { name: 'svc', path: 'ns-else' }), await client(c, 2, { name: 'svc' }), await client(c, 0, { name: 'svc' })];
    for (const [i, w] of [svcB, svcC].entries()) autoReply(w, (f) => f.flag === Flag.Request, (f) => `svc${i}:${f.data.toString()}`);
    for (const s of strangers) autoReply(s, (f) => f.flag === Flag.Request, () => 'stranger');
    const caller = await client(c, 0, { path: 'ns-at' });
    await interestSettled(c);
    const sids = Array.from({ length: 8 }, (_, i) => caller.send({ flag: Flag.Request, event: 'job', meta: '@=svc', data: `${i}` }));
    const answers: string[] = [];
    for (const sid of sids) answers.push((await caller.nextFor(sid, WAIT_MS)).data.toString());
    assert.equal(answers.filter((a) => a.startsWith('svc0:')).length, 4, `fair shares: ${answers}`);
    assert.equal(answers.filter((a) => a.startsWith('svc1:')).length, 4, `fair shares: ${answers}`);
    caller.send({ flag: Flag.Message, event: 'all', meta: '@=svc*', data: 'svc-all' });
    caller.send({ flag: Flag.Message, event: 'all', meta: '@=*', data: 'everyone' });
    for (const key of ['k1', 'k2', 'k3', 'k4']) for (let r = 0; r < 2; r++) caller.send({ flag: Flag.Message, event: 'h', meta: `@=svc!&X-Hash=${key}`, data: key });
    for (const m of [svcB, svcC]) {
      await eventually(() => texts(m).includes('everyone'), WAIT_MS, '@* reaches every named session of the namespace');
      assert.deepEqual(texts(m).slice(0, 2).sort(), ['everyone', 'svc-all'].sort());
    }
    await eventually(() => texts(otherB).length === 1, WAIT_MS, '@* reaches other');
    assert.deepEqual(texts(otherB), ['everyone']);
    await eventually(() => texts(svcB).length + texts(svcC).length === 4 + 8, WAIT_MS, 'every hashed message');
    for (const key of ['k1', 'k2', 'k3', 'k4']) {
      const owners = [svcB, svcC].filter((m) => texts(m).includes(key));
      assert.equal(owners.length, 1, `key ${key} stays on one member`);
      assert.equal(texts(owners[0]).filter((t) => t === key).length, 2);
    }
    await assertNothing(strangers, 100, isMessage, 'a name of another namespace');
    // A name held only in another namespace has no route from this one.
    const r = caller.send({ flag: Flag.Request, event: 'x', meta: '@=nobody-here' });
    assertAlarm(await caller.nextFor(r, WAIT_MS), 4004, r);
  });

  it('serves a namespace\'s queue group once among all nodes in fair shares, apart from the same group elsewhere', async () => {
    const members = [await client(c, 0, { path: 'ns-q' }), await client(c, 1, { path: 'ns-q' }), await client(c, 2, { path: 'ns-q' })];
    for (const m of members) await subscribe(m, 'jobs.*', { group: 'workers' });
    const sameGroupElsewhere = await client(c, 1, { path: 'ns-q2' });
    await subscribe(sameGroupElsewhere, 'jobs.*', { group: 'workers' });
    const defaultMember = await client(c, 2);
    await subscribe(defaultMember, 'jobs.*', { group: 'workers' });
    const pub = await client(c, 1, { path: 'ns-q' });
    await interestSettled(c);
    const n = 30;
    for (let i = 0; i < n; i++) pub.send({ flag: Flag.Message, event: 'jobs.x', data: `j${i}` });
    await eventually(() => members.reduce((s, m) => s + texts(m).length, 0) >= n, WAIT_MS, 'every job');
    await sleep(50);
    assert.deepEqual(members.map((m) => texts(m).length), [10, 10, 10], 'fair shares, each job once');
    assert.deepEqual(members.flatMap(texts).sort(), Array.from({ length: n }, (_, i) => `j${i}`).sort());
    await assertNothing([sameGroupElsewhere, defaultMember], 100, isMessage, 'the same group in another namespace');
  });

  it('carries a Subscribe stream of a namespace across nodes, in order, and answers 4004 where the namespace has no subscriber', async () => {
    const responder = await client(c, 2, { path: 'ns-s' });
    await subscribe(responder, 'feed');
    const decoy = await client(c, 1, { path: 'ns-s2' });
    await subscribe(decoy, 'feed');
    const original = responder.onFrame.bind(responder);
    responder.onFrame = (f) => {
      if (f.flag !== Flag.Subscribe) return original(f);
      for (let i = 0; i < 5; i++) responder.send({ flag: Flag.Reply, sid: f.sid, event: f.event, data: `r${i}` });
      responder.send({ flag: Flag.ReplyEnd, sid: f.sid, event: f.event, data: 'end' });
    };
    const caller = await client(c, 0, { path: 'ns-s' });
    await interestSettled(c);
    const sid = caller.send({ flag: Flag.Subscribe, event: 'feed' });
    const got: string[] = [];
    for (;;) {
      const f = await caller.nextFor(sid, WAIT_MS);
      got.push(f.data.toString());
      if (f.flag === Flag.ReplyEnd) break;
    }
    assert.deepEqual(got, ['r0', 'r1', 'r2', 'r3', 'r4', 'end']);
    await assertNothing([decoy], 100, (f) => f.flag === Flag.Subscribe, 'a stream of another namespace');
    const elsewhere = await client(c, 0, { path: 'ns-none' });
    const miss = elsewhere.send({ flag: Flag.Request, event: 'feed' });
    assertAlarm(await elsewhere.nextFor(miss, WAIT_MS), 4004, miss);
  });

  it('drops a frame for a namespace this node no longer has, counts it, and answers a Request with 4004', async () => {
    const a = c.nodes[0].cluster!;
    const b = c.nodes[1].cluster!;
    const batchFor = (frame: Buffer): Buffer => {
      const entry = envelopeEntry(0, null, null, 'ns-gone');
      return Buffer.concat([batchHead(1, entry.length), entry, frame]);
    };
    const dropped = (): number => b.stats.dropped.get('namespace_absent') ?? 0;
    const out = b.stats.peer('a').framesOut;
    const before = dropped();
    b.frames('a', a.bus.incarnation, batchFor(encodeFrame({ flag: Flag.Message, sid: 'm1', event: 'x' })), 0);
    assert.equal(dropped(), before + 1);
    await sleep(30);
    assert.equal(b.stats.peer('a').framesOut, out, 'a Message goes nowhere');
    b.frames('a', a.bus.incarnation, batchFor(encodeFrame({ flag: Flag.Request, sid: 'r1', event: 'x' })), 0);
    assert.equal(dropped(), before + 2);
    await eventually(() => b.stats.peer('a').framesOut === out + 1, WAIT_MS, 'the 4004 Alarm goes back to the origin');
  });
});

describe('cluster over the in-process bus: peer sessions are not clients', () => {
  it('a quiet link to a peer node outlives timeouts.idleMs (membership, not idle time, ends it)', async () => {
    const hub = new MemoryHub();
    const short = { requestMs: 2000, idleMs: 300, handshakeMs: 250 };
    const nodes = [
      await startTestBroker({ timeouts: short }, { clusterBus: hub.bus('a') }),
      await startTestBroker({ timeouts: short }, { clusterBus: hub.bus('b') }),
    ];
    const c: Cluster = { hub, nodes, clients: [] };
    try {
      await eventually(() => nodes.every((n) => n.cluster!.peerCount === 1), WAIT_MS, 'the nodes see each other');
      await sleep(1200);
      assert.ok(nodes.every((n) => n.cluster!.peerCount === 1), 'still peers after four idle timeouts');
      assert.deepEqual(nodes.map((n) => n.cluster!.peerSessionsOpen), [1, 1], 'the peer sessions are still open');
      const sub = await client(c, 1);
      await subscribe(sub, 'quiet.>');
      await interestSettled(c);
      const pub = await client(c, 0);
      pub.send({ flag: Flag.Message, event: 'quiet.x', data: 'after-silence' });
      await eventually(() => sub.frames.filter(isMessage).length === 1, WAIT_MS, 'the message crosses');
      // A stream needs the peer session open on both sides: it is the requester and the responder's stand-in.
      const svc = await client(c, 1, { name: 'svc' });
      autoReply(svc, (f) => f.flag === Flag.Request, (f) => `re:${f.data.toString()}`);
      await interestSettled(c);
      const sid = pub.send({ flag: Flag.Request, event: 'ask', meta: '@=svc', data: 'q' });
      const answer = await pub.nextFor(sid);
      assert.equal(answer.flag, Flag.ReplyEnd, `${answer.flag} ${answer.metaString} ${answer.data.toString()}`);
      assert.equal(answer.data.toString(), 're:q');
    } finally {
      await stopCluster(c);
    }
  });
});
