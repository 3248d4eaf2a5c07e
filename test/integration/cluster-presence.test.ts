/**
 * Presence across nodes over the in-process bus (docs/cluster.md, "Presence"; docs/event-routing.md,
 * "Presence"): `$presence` lists every node's members of an exact event, `presence=1` watchers hear the joins
 * and leaves of sessions on other nodes, namespaces stay apart, and a node that does not answer costs the
 * list no more than `cluster.presenceTimeoutMs`.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Flag, type Frame } from '../../src/protocol/index.js';
import { MemoryHub } from '../../src/cluster/memory-bus.js';
import type { RunningServer } from '../../src/server.js';
import { eventually, startTestBroker } from '../support/broker.js';
import { closeAll, connect, metaOf, sleep } from '../support/integration.js';
import type { RawClient, RawConnectOptions } from '../support/raw-client.js';
import { WAIT_MS, presenceOf, subscribe, unsubscribe } from '../support/events.js';

const PRESENCE_TIMEOUT_MS = 400;

interface Cluster {
  hub: MemoryHub;
  nodes: RunningServer[];
  clients: RawClient[];
}

async function startCluster(names: string[]): Promise<Cluster> {
  const hub = new MemoryHub();
  const nodes: RunningServer[] = [];
  for (const name of names) {
    nodes.push(await startTestBroker({ cluster: { presenceTimeoutMs: PRESENCE_TIMEOUT_MS } }, { clusterBus: hub.bus(name) }));
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
});
