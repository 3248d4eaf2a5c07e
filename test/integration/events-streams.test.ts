/**
 * Streams routed by event (spec §4.2, §5): Subscribe to a worker with several Replies relayed in order,
 * a worker leaving mid-stream, reconnect-and-resubscribe, nothing left after every client leaves, and the
 * match cache (fastPaths.matchCacheSize) on and off.
 */
import test, { describe } from 'node:test';
import assert from 'node:assert/strict';
import { Flag, type Frame } from '../../src/protocol/index.js';
import { AlarmCode } from '../../src/protocol/codes.js';
import type { RawClient } from '../support/raw-client.js';
import { startTestBroker, eventually, type TestBrokerConfig } from '../support/broker.js';
import { assertBrokerEmpty, closeAll, connect, metaOf } from '../support/integration.js';
import { WAIT_MS, assertAlarm, assertNothing, messagesOf, presenceOf, subscribe, unsubscribe, withEventBroker, isMessage } from '../support/events.js';

const withBroker = withEventBroker;


test('Subscribe by event to a worker: Replies and the ReplyEnd are relayed back in order under the requester sid', async () => {
  await withBroker(async (server, clients) => {
    const worker = await connect(server, 'ws');
    const requester = await connect(server, 'udp');
    clients.push(worker, requester);
    await subscribe(worker, 'prices.*');
    const subSid = requester.send({ flag: Flag.Subscribe, event: 'prices.eur', meta: 'depth=5', data: 'start' });
    const forwarded = await worker.nextFlag(Flag.Subscribe, WAIT_MS);
    assert.equal(forwarded.event, 'prices.eur');
    assert.equal(forwarded.metaString, 'depth=5');
    assert.equal(forwarded.data.toString(), 'start');
    assert.notEqual(forwarded.sid, subSid, 'a fresh sid on the worker connection');
    for (let i = 0; i < 5; i++) worker.send({ flag: Flag.Reply, sid: forwarded.sid, event: 'prices.eur', data: `tick${i}` });
    worker.send({ flag: Flag.ReplyEnd, sid: forwarded.sid, event: 'prices.eur', data: 'end' });
    const got: Frame[] = [];
    for (let i = 0; i < 6; i++) got.push(await requester.nextFor(subSid, WAIT_MS));
    assert.deepEqual(got.map((f) => f.flag), [Flag.Reply, Flag.Reply, Flag.Reply, Flag.Reply, Flag.Reply, Flag.ReplyEnd]);
    assert.deepEqual(got.map((f) => f.data.toString()), ['tick0', 'tick1', 'tick2', 'tick3', 'tick4', 'end']);
    await eventually(() => server.broker.stats.streamsOpen === 0 && server.broker.pendingTimers === 0, WAIT_MS, 'stream closed');
    // A late Reply on the ended stream goes nowhere.
    worker.send({ flag: Flag.Reply, sid: forwarded.sid, event: 'prices.eur', data: 'late' });
    await assertNothing([requester], 150, () => true, 'frame after ReplyEnd');
  });
});

describe('a worker leaving mid-stream: Alarm 5003 to the requester at once', () => {
  for (const transport of ['tcp', 'udp'] as const) {
    test(`Subscribe, worker on ${transport}`, async () => {
      await withBroker(async (server, clients) => {
        const worker = await connect(server, transport);
        const requester = await connect(server, 'ws');
        clients.push(worker, requester);
        await subscribe(worker, 'feed.live');
        const subSid = requester.send({ flag: Flag.Subscribe, event: 'feed.live' });
        const forwarded = await worker.nextFlag(Flag.Subscribe, WAIT_MS);
        worker.send({ flag: Flag.Reply, sid: forwarded.sid, event: 'feed.live', data: 'first' });
        const first = await requester.nextFor(subSid, WAIT_MS);
        assert.equal(first.flag, Flag.Reply);
        assert.equal(first.data.toString(), 'first');
        const left = Date.now();
        closeAll(worker);
        const alarm = await requester.nextFor(subSid, WAIT_MS);
        assertAlarm(alarm, AlarmCode.ResponderGone, subSid);
        assert.ok(Date.now() - left < 3000, `at once, not at a timeout (${Date.now() - left} ms)`);
        await eventually(() => server.broker.stats.streamsOpen === 0 && server.events.subscriptionCount === 0, WAIT_MS, 'released');
        // With the worker gone, the event has no route.
        const again = requester.send({ flag: Flag.Request, event: 'feed.live' });
        assertAlarm(await requester.nextFor(again, WAIT_MS), AlarmCode.NoRoute, again);
      });
    });
  }

  test('Request, the worker leaves before answering; the next Request goes to the worker still there', async () => {
    await withBroker(async (server, clients) => {
      const leaving = await connect(server, 'ws');
      const staying = await connect(server, 'tcp');
      const requester = await connect(server, 'udp');
      clients.push(leaving, staying, requester);
      await subscribe(leaving, 'rpc.call', { group: 'rpc' });
      await subscribe(staying, 'rpc.call', { group: 'rpc' });
      const sids = [requester.send({ flag: Flag.Request, event: 'rpc.call', data: 'a' }), requester.send({ flag: Flag.Request, event: 'rpc.call', data: 'b' })];
      const toLeaving = await leaving.nextFlag(Flag.Request, WAIT_MS);
      const toStaying = await staying.nextFlag(Flag.Request, WAIT_MS);
      const leavingSid = sids[toLeaving.data.toString() === 'a' ? 0 : 1];
      const stayingSid = sids[toStaying.data.toString() === 'a' ? 0 : 1];
      assert.notEqual(leavingSid, stayingSid, 'one Request each');
      closeAll(leaving);
      assertAlarm(await requester.nextFor(leavingSid, WAIT_MS), AlarmCode.ResponderGone, leavingSid);
      staying.send({ flag: Flag.ReplyEnd, sid: toStaying.sid, event: 'rpc.call', data: 're' });
      const ok = await requester.nextFor(stayingSid, WAIT_MS);
      assert.equal(ok.flag, Flag.ReplyEnd);
      assert.equal(ok.data.toString(), 're');
      await eventually(() => server.events.subscriptionCount === 1, WAIT_MS, 'the leaver unsubscribed');
      const next = requester.send({ flag: Flag.Request, event: 'rpc.call', data: 'c' });
      const toStaying2 = await staying.nextFlag(Flag.Request, WAIT_MS);
      staying.send({ flag: Flag.ReplyEnd, sid: toStaying2.sid, event: 'rpc.call', data: 're-c' });
      assert.equal((await requester.nextFor(next, WAIT_MS)).data.toString(), 're-c');
    });
  });
});

test('reconnect and resubscribe: a new session gets new Messages, the old subscriptions are gone', async () => {
  await withBroker(async (server, clients) => {
    const publisher = await connect(server, 'tcp');
    const bystander = await connect(server, 'ws');
    clients.push(publisher, bystander);
    await subscribe(bystander, 'feed.room', { presence: true });
    const first = await connect(server, 'udp', { name: 'reader' });
    clients.push(first);
    await subscribe(first, 'feed.>');
    await subscribe(first, 'feed.room', { presence: true });
    assert.equal(server.events.subscriptionCount, 3);
    const oldId = (await presenceOf(publisher, 'feed.room')).find((e) => e.name === 'reader')!.id;
    publisher.send({ flag: Flag.Message, event: 'feed.room', data: 'before' });
    assert.equal((await first.nextFlag(Flag.Message, WAIT_MS)).data.toString(), 'before');

    closeAll(first);
    await eventually(() => server.events.subscriptionCount === 1, WAIT_MS, 'the old subscriptions gone');
    const left = await bystander.next((f) => messagesOf('$presence.leave')(f), WAIT_MS);
    assert.equal(metaOf(left.metaString, 'id'), oldId);

    const second = await connect(server, 'udp', { name: 'reader' });
    clients.push(second);
    await subscribe(second, 'feed.>');
    await subscribe(second, 'feed.room', { presence: true });
    assert.equal(server.events.subscriptionCount, 3);
    const members = await presenceOf(publisher, 'feed.room');
    const newId = members.find((e) => e.name === 'reader')!.id;
    assert.notEqual(newId, oldId, 'a new session');
    assert.deepEqual(members.map((e) => e.name).sort(), ['', 'reader'], 'the bystander and the new session only');
    publisher.send({ flag: Flag.Message, event: 'feed.room', data: 'after' });
    publisher.send({ flag: Flag.Message, event: 'feed.other.x', data: 'after2' });
    await eventually(() => second.frames.filter(isMessage).length >= 2, WAIT_MS, 'two Messages');
    const got = await second.collect(150, isMessage);
    assert.deepEqual(got.map((f) => f.data.toString()), ['after', 'after2'], 'once each');
    assert.equal(first.frames.filter(isMessage).length, 0, 'nothing for the old client');
  });
});

test('a new Connect from the same udp address replaces the session and drops its subscriptions', async () => {
  await withBroker(async (server, clients) => {
    const publisher = await connect(server, 'ws');
    const reader = await connect(server, 'udp', { name: 'reader' });
    clients.push(publisher, reader);
    await subscribe(reader, 'feed.a');
    await subscribe(reader, 'feed.*');
    assert.equal(server.events.subscriptionCount, 2);
    await reader.handshake(server.addresses.udp!.port, { name: 'reader' });
    await eventually(() => server.events.subscriptionCount === 0, WAIT_MS, 'the old session subscriptions gone');
    await subscribe(reader, 'feed.a');
    assert.equal(server.events.subscriptionCount, 1);
    publisher.send({ flag: Flag.Message, event: 'feed.a', data: 'x' });
    await eventually(() => reader.frames.filter(isMessage).length >= 1, WAIT_MS, 'the Message');
    assert.deepEqual((await reader.collect(150, isMessage)).map((f) => f.data.toString()), ['x'], 'once');
  });
});

test('after every client leaves, no subscription, room or cached match is left', async () => {
  const server = await startTestBroker({ timeouts: { requestMs: 8000, idleMs: 20_000, handshakeMs: 5000 } });
  const clients: RawClient[] = [];
  try {
    const transports = ['tcp', 'ws', 'udp'] as const;
    for (let i = 0; i < 6; i++) clients.push(await connect(server, transports[i % 3], { name: `c${i}`, query: i % 2 === 0 ? 'sub=hello.world' : '' }));
    for (const [i, c] of clients.entries()) {
      await subscribe(c, 'room.x', { presence: true });
      await subscribe(c, 'work.*', { group: 'g' });
      await subscribe(c, `own.${i}.>`);
    }
    assert.equal(server.events.subscriptionCount, 3 + 6 * 3);
    clients[0].send({ flag: Flag.Message, event: 'work.a', data: 'w' });
    clients[1].send({ flag: Flag.Message, event: 'room.x', data: 'r' });
    const chat = (f: Frame): boolean => isMessage(f) && !f.event.startsWith('$');
    await eventually(() => clients.reduce((n, c) => n + c.frames.filter(chat).length, 0) >= 6, WAIT_MS, 'deliveries');
    closeAll(...clients);
    await eventually(() => server.events.subscriptionCount === 0, WAIT_MS, `no subscription (${server.events.subscriptionCount} left)`);
    assert.equal(server.events.index.cachedEvents, 0);
    assert.deepEqual(server.events.presence('room.x'), []);
    assert.deepEqual(server.events.presence('hello.world'), []);
    // The router's private bookkeeping is empty too (bracket access reaches private fields in tests).
    const router = server.events;
    assert.equal(router['bySession'].size, 0, 'per-session subscriptions');
    assert.equal(router['rooms'].size, 0, 'rooms');
    assert.equal(router['watchers'].size, 0, 'presence watchers');
    assert.equal(router['groupCursors'].size, 0, 'queue group cursors');
    await assertBrokerEmpty(server, WAIT_MS);
  } finally {
    closeAll(...clients);
    await server.close();
  }
});

describe('the match cache (fastPaths.matchCacheSize) on and off', () => {
  const cases: [string, TestBrokerConfig][] = [['cache off (matchCacheSize 0)', { fastPaths: { matchCacheSize: 0 } }], ['cache on (default)', {}]];
  for (const [label, overrides] of cases) {
    test(`${label}: deliveries follow every subscription change`, async () => {
      await withBroker(async (server, clients) => {
        const a = await connect(server, 'tcp');
        const b = await connect(server, 'ws');
        const c = await connect(server, 'udp');
        const publisher = await connect(server, 'tcp');
        clients.push(a, b, c, publisher);
        const subs = [a, b, c];
        const round = async (events: string[], expected: number): Promise<string[][]> => {
          for (const e of events) publisher.send({ flag: Flag.Message, event: e, data: e });
          await eventually(() => subs.reduce((n, s) => n + s.frames.filter(isMessage).length, 0) >= expected, WAIT_MS, `${expected} deliveries`);
          const got = await Promise.all(subs.map((s) => s.collect(150, isMessage)));
          return got.map((g) => g.map((f) => f.event).sort());
        };
        await subscribe(a, 'm.*');
        await subscribe(b, 'm.>');
        await subscribe(c, 'm.x', { group: 'g' });
        await subscribe(b, 'm.x', { group: 'g' });
        const events = ['m.x', 'm.x', 'm.y.z', 'm.y'];
        // a (m.*) 3, b (m.>) 4; group g [c, b] picks c then b, and b already has its copy: one per session.
        const r1 = await round(events, 3 + 4 + 1);
        assert.deepEqual(r1[0], ['m.x', 'm.x', 'm.y']);
        assert.deepEqual(r1[1], ['m.x', 'm.x', 'm.y', 'm.y.z']);
        assert.deepEqual(r1[2], ['m.x']);
        if (overrides.fastPaths !== undefined) assert.equal(server.events.index.cachedEvents, 0, 'no cache');
        else assert.ok(server.events.index.cachedEvents >= 3, `cached ${server.events.index.cachedEvents}`);
        // Change the subscriptions: the cached matches must not be used any more.
        await unsubscribe(b, 'm.>');
        await unsubscribe(a, 'm.*');
        await subscribe(a, 'm.y.>');
        const r2 = await round(events, 2 + 1);
        assert.deepEqual(r2[0], ['m.y.z']);
        assert.deepEqual(r2[1].length + r2[2].length, 2, 'the group g shares m.x');
        assert.deepEqual([...r2[1], ...r2[2]], ['m.x', 'm.x']);
        await unsubscribe(c, 'm.x', { group: 'g' });
        const r3 = await round(['m.x', 'm.x'], 2);
        assert.deepEqual(r3, [[], ['m.x', 'm.x'], []]);
        assert.equal(server.broker.stats.dropped.get('no_subscriber'), 1, 'm.y after the change');
      }, overrides);
    });
  }
});
