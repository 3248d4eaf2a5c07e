/**
 * Presence across nodes over the in-process bus (docs/cluster.md, "Presence"; docs/event-routing.md,
 * "Presence"): `$presence` lists every node's members of an exact event, `presence=1` watchers hear the joins
 * and leaves of sessions on other nodes, namespaces stay apart, and a node that does not answer costs the
 * list no more than `cluster.presenceTimeoutMs`; when a node is dropped without a word, the watchers of the
 * other nodes hear each of its members leave once (and join again if it comes back), within
 * `cluster.presenceMembersMax`.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Flag, type Frame } from '../../src/protocol/index.js';
import { MemoryHub } from '../../src/cluster/memory-bus.js';
import type { RunningServer } from '../../src/server.js';
import { eventually, startTestBroker, type TestBrokerConfig } from '../support/broker.js';
import { closeAll, connect, metaOf, sleep } from '../support/integration.js';
import type { RawClient, RawConnectOptions } from '../support/raw-client.js';
import { WAIT_MS, presenceOf, subscribe, unsubscribe } from '../support/events.js';

const PRESENCE_TIMEOUT_MS = 400;

interface Cluster {
  hub: MemoryHub;
  nodes: RunningServer[];
  clients: RawClient[];
}

async function startCluster(names: string[], overrides: TestBrokerConfig = {}): Promise<Cluster> {
  const hub = new MemoryHub();
  const nodes: RunningServer[] = [];
  const config = { ...overrides, cluster: { presenceTimeoutMs: PRESENCE_TIMEOUT_MS, ...overrides.cluster } };
  for (const name of names) {
    nodes.push(await startTestBroker(config, { clusterBus: hub.bus(name) }));
  }
  await eventually(() => nodes.every((n) => n.cluster!.peerCount === names.length - 1), WAIT_MS, 'every node sees the others');
  return { hub, nodes, clients: [] };
}

async function stopCluster(c: Cluster): Promise<void> {
  closeAll(...c.clients);
  await Promise.all(c.nodes.map((n) => n.close()));
}

async function client(c: Cluster, node: number, options: RawConnectOptions = {}): Promise<RawClient> {
  const cl = await connect(c.nodes[node], 'tcp', options);
  c.clients.push(cl);
  return cl;
}

async function settled(c: Cluster): Promise<void> {
  await eventually(() => c.nodes.every((n) => n.cluster!.local.pending === 0), WAIT_MS, 'interest announced');
  await sleep(30);
}

const isNotice = (f: Frame): boolean => f.flag === Flag.Message && f.event.startsWith('$presence.');
const notices = (cl: RawClient): string[] =>
  cl.frames.filter(isNotice).map((f) => `${f.event.slice('$presence.'.length)}:${metaOf(f.metaString, 'event')}:${metaOf(f.metaString, 'name')}`);

describe('cluster presence over the in-process bus', () => {
  let c: Cluster;
  before(async () => {
    c = await startCluster(['a', 'b', 'c']);
  });
  after(async () => stopCluster(c));

  it('lists the members of an exact event on every node, once each, and only of the asker\'s namespace', async () => {
    const members = [await client(c, 0, { name: 'u0' }), await client(c, 1, { name: 'u1' }), await client(c, 2, { name: 'u2' })];
    for (const m of members) await subscribe(m, 'room.list');
    await subscribe(members[1], 'room.list', { group: 'g' }); // a second subscription: still one member
    const wildcard = await client(c, 2, { name: 'wild' });
    await subscribe(wildcard, 'room.*'); // not a member: presence is about exact events
    const tenant = await client(c, 1, { name: 't1', path: 'tenant-p' });
    await subscribe(tenant, 'room.list');
    await settled(c);
    for (const asker of [0, 1, 2]) {
      const list = await presenceOf(await client(c, asker), 'room.list');
      assert.deepEqual(list.map((e) => e.name).sort(), ['u0', 'u1', 'u2'], `asked on node ${asker}`);
      for (const e of list) {
        assert.equal(e.transport, 'tcp');
        assert.match(e.id, /\S/);
        assert.ok(!Number.isNaN(Date.parse(e.since)));
      }
      assert.equal(new Set(list.map((e) => e.id)).size, 3);
    }
    const tenantAsker = await client(c, 0, { path: 'tenant-p' });
    assert.deepEqual((await presenceOf(tenantAsker, 'room.list')).map((e) => e.name), ['t1']);
    assert.deepEqual(await presenceOf(tenantAsker, 'room.none'), []);
    // A member leaving another node leaves the list.
    await unsubscribe(members[2], 'room.list');
    await settled(c);
    assert.deepEqual((await presenceOf(members[0], 'room.list')).map((e) => e.name).sort(), ['u0', 'u1']);
  });

  it('tells presence=1 watchers of joins and leaves on other nodes, the subject excluded, per namespace', async () => {
    const watcherA = await client(c, 0, { name: 'wa' });
    const watcherC = await client(c, 2, { name: 'wc' });
    await subscribe(watcherA, 'room.live', { presence: true });
    await subscribe(watcherC, 'room.live', { presence: true });
    const tenantWatcher = await client(c, 0, { name: 'tw', path: 'tenant-w' });
    await subscribe(tenantWatcher, 'room.live', { presence: true });
    await settled(c);
    const joiner = await client(c, 1, { name: 'j1' });
    await subscribe(joiner, 'room.live');
    await eventually(() => notices(watcherA).includes('join:room.live:j1'), WAIT_MS, 'a hears b\'s join');
    await eventually(() => notices(watcherC).includes('join:room.live:j1'), WAIT_MS, 'c hears b\'s join');
    // watcherC joined the room itself on c: a heard it (subscribing with presence=1 makes a member).
    assert.ok(notices(watcherA).includes('join:room.live:wc'), `a heard c's watcher join: ${notices(watcherA)}`);
    const tenantJoiner = await client(c, 2, { name: 'tj', path: 'tenant-w' });
    await subscribe(tenantJoiner, 'room.live');
    await eventually(() => notices(tenantWatcher).includes('join:room.live:tj'), WAIT_MS, 'the tenant watcher hears its namespace');
    joiner.close();
    await eventually(() => notices(watcherA).includes('leave:room.live:j1'), WAIT_MS, 'a hears b\'s session leave');
    await eventually(() => notices(watcherC).includes('leave:room.live:j1'), WAIT_MS, 'c hears it');
    await sleep(50);
    assert.ok(!notices(watcherA).some((n) => n.endsWith(':tj')), 'a tenant\'s join stays in its namespace');
    assert.ok(!notices(tenantWatcher).some((n) => n.endsWith(':j1')), 'the default namespace stays out of the tenant');
    assert.equal(notices(watcherA).filter((n) => n === 'join:room.live:j1').length, 1, 'once');
    const id = watcherA.frames.find((f) => isNotice(f) && metaOf(f.metaString, 'name') === 'j1')!;
    assert.match(metaOf(id.metaString, 'id') ?? '', /\S/);
  });

  it('answers a $presence list with what arrived when a node does not answer within cluster.presenceTimeoutMs', async () => {
    const c2 = await startCluster(['x', 'y', 'z']);
    try {
      const members = [await client(c2, 0, { name: 'mx' }), await client(c2, 1, { name: 'my' }), await client(c2, 2, { name: 'mz' })];
      for (const m of members) await subscribe(m, 'room.t');
      await settled(c2);
      // z stops answering without leaving (frozen before its heartbeat times out).
      c2.hub.get('z')!.dead = true;
      const started = Date.now();
      const list = await presenceOf(members[0], 'room.t');
      const took = Date.now() - started;
      assert.deepEqual(list.map((e) => e.name).sort(), ['mx', 'my']);
      assert.ok(took >= PRESENCE_TIMEOUT_MS - 20 && took < PRESENCE_TIMEOUT_MS + 2000, `answered after the wait: ${took} ms`);
      // The node is dropped: the next list does not wait for it.
      c2.hub.kill('z');
      await eventually(() => c2.nodes[0].cluster!.peerCount === 1, WAIT_MS, 'z dropped');
      const again = Date.now();
      assert.deepEqual((await presenceOf(members[0], 'room.t')).map((e) => e.name).sort(), ['mx', 'my']);
      assert.ok(Date.now() - again < PRESENCE_TIMEOUT_MS, 'no wait for a node that is gone');
    } finally {
      closeAll(...c2.clients);
      await Promise.all(c2.nodes.map((n) => n.close()));
    }
  });

  it('tells watchers every member of a node dropped without a word leaving, once per member and event', async () => {
    const d = await startCluster(['p', 'q', 'r']);
    try {
      // On q: early joined before anyone watched (known from q's snapshot), the others after (from notices).
      const early = await client(d, 1, { name: 'early' });
      await subscribe(early, 'room.drop');
      await subscribe(early, 'room.drop', { group: 'g' }); // two subscriptions to one event: one member
      await subscribe(early, 'room.two');
      await settled(d);
      const watcher = await client(d, 0, { name: 'wp' });
      await subscribe(watcher, 'room.drop', { presence: true });
      await subscribe(watcher, 'room.two', { presence: true });
      const watcherR = await client(d, 2, { name: 'wr' });
      await subscribe(watcherR, 'room.drop', { presence: true });
      const tenantWatcher = await client(d, 0, { name: 'tw', path: 'tenant-d' });
      await subscribe(tenantWatcher, 'room.drop', { presence: true });
      await settled(d);
      const late = await client(d, 1, { name: 'late' });
      await subscribe(late, 'room.drop');
      const gone = await client(d, 1, { name: 'gone' });
      await subscribe(gone, 'room.drop');
      const tenantMember = await client(d, 1, { name: 'tm', path: 'tenant-d' });
      await subscribe(tenantMember, 'room.drop');
      await eventually(() => notices(watcher).includes('join:room.drop:gone'), WAIT_MS, 'p hears q\'s joins');
      await eventually(() => notices(tenantWatcher).includes('join:room.drop:tm'), WAIT_MS, 'the tenant hears its join');
      await unsubscribe(gone, 'room.drop'); // left for real before the drop: not told again
      await eventually(() => notices(watcher).includes('leave:room.drop:gone'), WAIT_MS, 'p hears gone leave');
      await settled(d);
      const listed = await presenceOf(watcher, 'room.drop');
      const earlyId = listed.find((e) => e.name === 'early')?.id;
      assert.ok(earlyId !== undefined, `early listed: ${JSON.stringify(listed)}`);
      // early (room.drop, room.two), late, tm of q, and r's watcher wr (subscribing makes it a member).
      assert.equal(d.nodes[0].cluster!.presenceMembers, 5, 'p remembers the members of the events it watches');

      d.hub.kill('q');
      await eventually(() => d.nodes[0].cluster!.peerCount === 1 && d.nodes[2].cluster!.peerCount === 1, WAIT_MS, 'q dropped');
      await eventually(() => notices(watcher).includes('leave:room.drop:late') && notices(watcher).includes('leave:room.two:early'),
        WAIT_MS, 'p\'s watcher hears q\'s members leave');
      await eventually(() => notices(watcherR).includes('leave:room.drop:early'), WAIT_MS, 'r\'s watcher too');
      await eventually(() => notices(tenantWatcher).includes('leave:room.drop:tm'), WAIT_MS, 'and the tenant\'s, in its namespace');
      await sleep(100);
      const count = (cl: RawClient, n: string): number => notices(cl).filter((x) => x === n).length;
      for (const n of ['leave:room.drop:early', 'leave:room.drop:late', 'leave:room.two:early', 'leave:room.drop:gone']) {
        assert.equal(count(watcher, n), 1, `${n} once: ${notices(watcher)}`);
      }
      assert.equal(count(watcherR, 'leave:room.drop:late'), 1);
      assert.ok(!notices(watcher).some((n) => n.endsWith(':tm')), 'a tenant\'s leave stays in its namespace');
      assert.ok(!notices(tenantWatcher).some((n) => n.endsWith(':early') || n.endsWith(':late')), 'and the default one\'s out of it');
      // The same shape as the node's own notice: a Message naming the event, the session's id and name.
      const leave = watcher.frames.find((f) => isNotice(f) && f.event === '$presence.leave' && metaOf(f.metaString, 'name') === 'early'
        && metaOf(f.metaString, 'event') === 'room.drop')!;
      assert.equal(metaOf(leave.metaString, 'id'), earlyId);
      assert.match(leave.sid, /\S/);
      assert.deepEqual((await presenceOf(watcher, 'room.drop')).map((e) => e.name).sort(), ['wp', 'wr'], 'lists leave them out');
      assert.equal(d.nodes[0].cluster!.presenceMembers, 1, 'nothing kept of q (r\'s wr stays)');
      const metrics = await d.nodes[0].metrics.text();
      assert.match(metrics, /socketd_cluster_presence_notices_total\{kind="dropped_node_leave"\} 4/);
    } finally {
      await stopCluster(d);
    }
  });

  it('tells the leaves of a node cut off, and the joins of its members still there when it is back', async () => {
    const d = await startCluster(['u', 'v']);
    try {
      const watcher = await client(d, 0, { name: 'wu' });
      await subscribe(watcher, 'room.cut', { presence: true });
      const member = await client(d, 1, { name: 'mv' });
      await subscribe(member, 'room.cut');
      await eventually(() => notices(watcher).includes('join:room.cut:mv'), WAIT_MS, 'u hears v\'s join');
      d.hub.cut('v');
      await eventually(() => notices(watcher).includes('leave:room.cut:mv'), WAIT_MS, 'u hears mv leave with its node');
      d.hub.heal('v');
      await eventually(() => notices(watcher).filter((n) => n === 'join:room.cut:mv').length === 2, WAIT_MS, 'and join again when it is back');
      await sleep(100);
      assert.deepEqual(notices(watcher).filter((n) => n.endsWith(':mv')), ['join:room.cut:mv', 'leave:room.cut:mv', 'join:room.cut:mv']);
      // Remembered again: a later drop is told once more.
      d.hub.kill('v');
      await eventually(() => notices(watcher).filter((n) => n === 'leave:room.cut:mv').length === 2, WAIT_MS, 'told leaving again');
    } finally {
      await stopCluster(d);
    }
  });

  it('tells nothing twice when a node dropped on one side only sends notices before its snapshot', async () => {
    const d = await startCluster(['u', 'v']);
    try {
      const [u, v] = d.nodes.map((n) => n.cluster!);
      const watcher = await client(d, 0, { name: 'wu' });
      await subscribe(watcher, 'room.half', { presence: true });
      const stays = await client(d, 1, { name: 'stays' });
      const goes = await client(d, 1, { name: 'goes' });
      await subscribe(stays, 'room.half');
      await subscribe(goes, 'room.half');
      await eventually(() => notices(watcher).includes('join:room.half:goes'), WAIT_MS, 'u hears v\'s joins');
      // u drops v (as after a node timeout seen by u only); v still has u's watcher and keeps sending notices.
      u.peerDown('v', 'node timeout');
      await eventually(() => notices(watcher).includes('leave:room.half:goes') && notices(watcher).includes('leave:room.half:stays'),
        WAIT_MS, 'v\'s members told leaving');
      const comes = await client(d, 1, { name: 'comes' });
      await subscribe(comes, 'room.half'); // a join notice from v: told, and remembered
      await eventually(() => notices(watcher).includes('join:room.half:comes'), WAIT_MS, 'a new member of v told joining');
      await unsubscribe(goes, 'room.half'); // its leave was told when v was dropped: not again
      await sleep(100);
      // v re-reads u's interest (as after u's hello): its snapshot tells who is still there, once each.
      v.peerInterest('u', d.hub.get('u')!.incarnation, [...u.localInterest()], true);
      await eventually(() => notices(watcher).filter((n) => n === 'join:room.half:stays').length === 2, WAIT_MS, 'stays told joining again');
      await sleep(100);
      // In order: the joins, the leaves at the drop (as remembered), comes by notice, stays by the snapshot.
      assert.deepEqual(notices(watcher).filter((n) => n.includes(':room.half:')), [
        'join:room.half:stays', 'join:room.half:goes', 'leave:room.half:stays', 'leave:room.half:goes',
        'join:room.half:comes', 'join:room.half:stays',
      ]);
      assert.equal(u.presenceMembers, 2, 'u remembers v\'s stays and comes');
    } finally {
      await stopCluster(d);
    }
  });

  it('tells no second leave of the members of a node that stops cleanly, and forgets an event nobody watches', async () => {
    const d = await startCluster(['s', 't']);
    try {
      const watcher = await client(d, 0, { name: 'ws' });
      await subscribe(watcher, 'room.clean', { presence: true });
      const other = await client(d, 0, { name: 'ws2' });
      await subscribe(other, 'room.other', { presence: true });
      const member = await client(d, 1, { name: 'mt' });
      await subscribe(member, 'room.clean');
      await subscribe(member, 'room.other');
      await eventually(() => d.nodes[0].cluster!.presenceMembers === 2, WAIT_MS, 's remembers mt twice');
      // Nobody on s watches room.other any more: what s kept of it goes, and no leave of it is told later.
      await unsubscribe(other, 'room.other');
      await eventually(() => d.nodes[0].cluster!.presenceMembers === 1, WAIT_MS, 'room.other forgotten');
      // t stops: its session leaves (told by t), then t leaves the cluster: no second leave.
      d.clients.splice(d.clients.indexOf(member), 1);
      member.close();
      await eventually(() => notices(watcher).includes('leave:room.clean:mt'), WAIT_MS, 'mt told leaving by t');
      await d.nodes[1].close();
      await eventually(() => d.nodes[0].cluster!.peerCount === 0, WAIT_MS, 't gone');
      await sleep(100);
      assert.deepEqual(notices(watcher).filter((n) => n.startsWith('leave:')), ['leave:room.clean:mt']);
      assert.equal(d.nodes[0].cluster!.presenceMembers, 0);
    } finally {
      await stopCluster(d);
    }
  });

  it('remembers at most cluster.presenceMembersMax members of other nodes, and counts the others', async () => {
    const d = await startCluster(['k', 'l'], { cluster: { presenceMembersMax: 1 } });
    try {
      const watcher = await client(d, 0, { name: 'wk' });
      await subscribe(watcher, 'room.cap', { presence: true });
      await settled(d);
      const first = await client(d, 1, { name: 'm1' });
      await subscribe(first, 'room.cap');
      await eventually(() => notices(watcher).includes('join:room.cap:m1'), WAIT_MS, 'm1 joins');
      const second = await client(d, 1, { name: 'm2' });
      await subscribe(second, 'room.cap');
      await eventually(() => notices(watcher).includes('join:room.cap:m2'), WAIT_MS, 'm2 joins (told, not remembered)');
      assert.equal(d.nodes[0].cluster!.presenceMembers, 1);
      assert.match(await d.nodes[0].metrics.text(), /socketd_cluster_presence_members_refused_total 1/);
      d.hub.kill('l');
      await eventually(() => notices(watcher).includes('leave:room.cap:m1'), WAIT_MS, 'the remembered one is told leaving');
      await sleep(100);
      assert.ok(!notices(watcher).includes('leave:room.cap:m2'), 'the one past the cap is not');
    } finally {
      await stopCluster(d);
    }
  });

  it('sends a snapshot larger than limits.maxData in several frames, every member in one of them', async () => {
    const d = await startCluster(['g', 'h'], { limits: { maxData: 256 } });
    try {
      const members: RawClient[] = [];
      for (let i = 0; i < 12; i++) {
        const m = await client(d, 1, { name: `member-${String(i).padStart(2, '0')}` });
        await subscribe(m, 'room.big');
        members.push(m);
      }
      await settled(d);
      const watcher = await client(d, 0, { name: 'wg' });
      await subscribe(watcher, 'room.big', { presence: true });
      await eventually(() => d.nodes[0].cluster!.presenceMembers === 12, WAIT_MS, 'g knows h\'s 12 members from its snapshot');
      d.hub.kill('h');
      await eventually(() => notices(watcher).filter((n) => n.startsWith('leave:room.big:')).length === 12, WAIT_MS, 'each told leaving');
      assert.deepEqual(notices(watcher).map((n) => n.slice('leave:room.big:'.length)).sort(),
        Array.from({ length: 12 }, (_, i) => `member-${String(i).padStart(2, '0')}`));
    } finally {
      await stopCluster(d);
    }
  });
});
