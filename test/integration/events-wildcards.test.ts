/**
 * Event patterns and control events on the real broker (spec §4.2): `*` and `>`, one copy per session,
 * reserved `$` events, invalid patterns, the subscription limit, `$unsub`, no-subscriber handling, and
 * `$sub` sent as a Message.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Flag } from '../../src/protocol/index.js';
import { AlarmCode } from '../../src/protocol/codes.js';
import { RawClient } from '../support/raw-client.js';
import { startTestBroker, eventually, ports, type TestBrokerConfig } from '../support/broker.js';
import { connect } from '../support/integration.js';
import {
  WAIT_MS, assertAlarm, assertNothing, control, expectControlAlarm, presenceOf, subscribe, unsubscribe, withEventBroker, isMessage,
} from '../support/events.js';

const withBroker = (body: Parameters<typeof withEventBroker>[0], overrides: TestBrokerConfig = {}): Promise<void> =>
  withEventBroker(body, { ...overrides, timeouts: { requestMs: 3000, ...overrides.timeouts } });


/** Publishes one Message per event, then returns the events each client got (sorted), after a settle. */
async function deliveries(publisher: RawClient, events: string[], subscribers: RawClient[], expected: number, settleMs = 200): Promise<string[][]> {
  for (const event of events) publisher.send({ flag: Flag.Message, event, data: event });
  await eventually(() => subscribers.reduce((n, c) => n + c.frames.filter(isMessage).length, 0) >= expected, WAIT_MS, `${expected} deliveries`);
  const got = await Promise.all(subscribers.map((c) => c.collect(settleMs, isMessage)));
  return got.map((frames) => frames.map((f) => f.event).sort());
}

test('a.* gets a.b but not a.b.c or a; a.> gets a.b and a.b.c but not a; three matching patterns give one copy', async () => {
  await withBroker(async (server, clients) => {
    const star = await connect(server, 'tcp');
    const tail = await connect(server, 'ws');
    const many = await connect(server, 'udp');
    const publisher = await connect(server, 'tcp');
    clients.push(star, tail, many, publisher);
    await subscribe(star, 'a.*');
    await subscribe(tail, 'a.>');
    for (const p of ['a.*', 'a.>', 'a.b']) await subscribe(many, p);
    await subscribe(many, '*.*.c');
    const got = await deliveries(publisher, ['a.b', 'a.b.c', 'a', 'x.b', 'b.a'], [star, tail, many], 1 + 2 + 2);
    assert.deepEqual(got[0], ['a.b']);
    assert.deepEqual(got[1], ['a.b', 'a.b.c']);
    assert.deepEqual(got[2], ['a.b', 'a.b.c'], 'one copy however many patterns match');
    // Events matching nobody were dropped and counted.
    assert.equal(server.broker.stats.dropped.get('no_subscriber'), 3);
    assert.equal(publisher.frames.length, 0, 'dropped Messages are not answered');
  });
});

test("a client's $ event (Message $foo) gets Alarm 4003 and never reaches a '>' subscriber", async () => {
  await withBroker(async (server, clients) => {
    const everything = await connect(server, 'udp');
    const publisher = await connect(server, 'ws');
    clients.push(everything, publisher);
    await subscribe(everything, '>');
    const fooSid = publisher.send({ flag: Flag.Message, event: '$foo', meta: 'k=v', data: 'x' });
    const alarm = await publisher.nextFor(fooSid, WAIT_MS);
    assertAlarm(alarm, AlarmCode.Forbidden, fooSid);
    assert.equal(alarm.event, '$foo');
    assert.equal(alarm.metaString, 'k=v&code=4003', 'the Alarm carries the meta of the frame it answers, code added');
    const reqSid = publisher.send({ flag: Flag.Request, event: '$presence.join', meta: 'event=x&id=y&name=z' });
    assertAlarm(await publisher.nextFor(reqSid, WAIT_MS), AlarmCode.Forbidden, reqSid);
    publisher.send({ flag: Flag.Message, event: 'plain.event', data: 'y' });
    const got = await everything.nextFlag(Flag.Message, WAIT_MS);
    assert.equal(got.event, 'plain.event', "'>' matches ordinary events");
    await assertNothing([everything], 150, (f) => f.event.startsWith('$'), '$ event');
    // '$' patterns are refused too.
    await expectControlAlarm(everything, '$sub', 'event=$foo', AlarmCode.BadRequest);
  });
});

test('invalid patterns (a..b, a.>.c, a*, empty, missing) get Alarm 4000 and change nothing', async () => {
  await withBroker(async (server, clients) => {
    const sub = await connect(server, 'ws');
    const publisher = await connect(server, 'tcp');
    clients.push(sub, publisher);
    await subscribe(sub, 'a.b');
    assert.equal(server.events.subscriptionCount, 1);
    for (const meta of ['event=a..b', 'event=a.>.c', 'event=a*', 'event=.a', 'event=a.', 'event=', '', 'event=a b', 'event=a.b&group=bad=group']) {
      const alarm = await expectControlAlarm(sub, '$sub', meta, AlarmCode.BadRequest);
      assert.ok(alarm.data.length > 0, 'with a reason');
    }
    for (const meta of ['event=', '']) await expectControlAlarm(sub, '$unsub', meta, AlarmCode.BadRequest);
    for (const meta of ['event=a.*', 'event=', '']) await expectControlAlarm(sub, '$presence', meta, AlarmCode.BadRequest);
    // As a Message, a bad $sub is still answered (there is nothing else to tell the client).
    const msgSid = sub.send({ flag: Flag.Message, event: '$sub', meta: 'event=a..b' });
    assertAlarm(await sub.nextFor(msgSid, WAIT_MS), AlarmCode.BadRequest, msgSid);
    assert.equal(server.events.subscriptionCount, 1, 'nothing was added');
    const got = await deliveries(publisher, ['a.b', 'a.c'], [sub], 1);
    assert.deepEqual(got[0], ['a.b'], 'the earlier subscription behaves as before');
  });
});

test('limits.maxSubscriptionsPerSession=3: the 4th $sub gets Alarm 4029, the first 3 still work', async () => {
  await withBroker(async (server, clients) => {
    const sub = await connect(server, 'udp');
    const publisher = await connect(server, 'ws');
    clients.push(sub, publisher);
    await subscribe(sub, 'x.one');
    await subscribe(sub, 'x.two', { group: 'g' });
    await subscribe(sub, 'y.>');
    const alarm = await expectControlAlarm(sub, '$sub', 'event=x.four', AlarmCode.Congested);
    assert.match(alarm.data.toString(), /limit 3/);
    // Subscribing again to one it holds is not a new subscription.
    await subscribe(sub, 'x.one');
    // A group subscription counts apart from the plain one with the same pattern.
    await expectControlAlarm(sub, '$sub', 'event=x.one&group=g', AlarmCode.Congested);
    assert.equal(server.events.subscriptionCount, 3);
    assert.equal(server.broker.stats.dropped.get('subscription_limit'), 2);
    const got = await deliveries(publisher, ['x.one', 'x.two', 'y.z', 'x.four'], [sub], 3);
    assert.deepEqual(got[0], ['x.one', 'x.two', 'y.z']);
    // Another session has its own budget.
    const other = await connect(server, 'tcp');
    clients.push(other);
    for (const p of ['p.1', 'p.2', 'p.3']) await subscribe(other, p);
    await expectControlAlarm(other, '$sub', 'event=p.4', AlarmCode.Congested);
    // Freeing one makes room again.
    await unsubscribe(sub, 'y.>');
    await subscribe(sub, 'x.four');
    assert.deepEqual((await deliveries(publisher, ['x.four', 'y.z'], [sub], 1))[0], ['x.four']);
  }, { limits: { maxSubscriptionsPerSession: 3 } });
});

test('$unsub removes a subscription; $unsub of an unknown one is acknowledged', async () => {
  await withBroker(async (server, clients) => {
    const sub = await connect(server, 'tcp');
    const publisher = await connect(server, 'udp');
    clients.push(sub, publisher);
    await subscribe(sub, 'news.*');
    await subscribe(sub, 'news.*', { group: 'g' });
    assert.deepEqual((await deliveries(publisher, ['news.a'], [sub], 1))[0], ['news.a']);
    await unsubscribe(sub, 'news.*');
    assert.equal(server.events.subscriptionCount, 1, 'the group subscription is apart and stays');
    await unsubscribe(sub, 'news.*', { group: 'g' });
    assert.equal(server.events.subscriptionCount, 0);
    publisher.send({ flag: Flag.Message, event: 'news.b', data: 'b' });
    await eventually(() => server.broker.stats.dropped.get('no_subscriber') === 1, WAIT_MS, 'dropped news.b');
    await assertNothing([sub], 150, isMessage, 'Message after $unsub');
    // Idempotent, like NATS: unknown pattern, one held by another session, a second $unsub.
    const ack = await unsubscribe(sub, 'never.subscribed');
    assert.equal(ack.event, '$unsub');
    assert.equal(ack.metaString, 'event=never.subscribed', 'the ack echoes the meta');
    await unsubscribe(sub, 'news.*');
    await unsubscribe(sub, 'news.*', { group: 'unknown' });
  });
});

test('no subscriber: a Message is dropped and counted without an answer, a Request gets Alarm 4004', async () => {
  await withBroker(async (server, clients) => {
    const client = await connect(server, 'ws');
    const requester = await connect(server, 'udp');
    clients.push(client, requester);
    const before = server.broker.stats.dropped.get('no_subscriber') ?? 0;
    client.send({ flag: Flag.Message, event: 'nobody.here', data: 'x' });
    client.send({ flag: Flag.Message, event: 'nobody.there', data: 'y' });
    await eventually(() => server.broker.stats.dropped.get('no_subscriber') === before + 2, WAIT_MS, 'two drops counted');
    await assertNothing([client], 150, () => true, 'answer to a dropped Message');
    const reqSid = requester.send({ flag: Flag.Request, event: 'nobody.here', meta: 'm=1', data: 'q' });
    const alarm = await requester.nextFor(reqSid, WAIT_MS);
    assertAlarm(alarm, AlarmCode.NoRoute, reqSid);
    assert.equal(alarm.event, 'nobody.here');
    const subSid = requester.send({ flag: Flag.Subscribe, event: 'nobody.here' });
    assertAlarm(await requester.nextFor(subSid, WAIT_MS), AlarmCode.NoRoute, subSid);
    // The only subscriber is the requester itself: it is never its own target.
    await subscribe(requester, 'self.only');
    const selfSid = requester.send({ flag: Flag.Request, event: 'self.only' });
    assertAlarm(await requester.nextFor(selfSid, WAIT_MS), AlarmCode.NoRoute, selfSid);
    requester.send({ flag: Flag.Message, event: 'self.only' });
    await eventually(() => server.broker.stats.dropped.get('no_subscriber') === before + 3, WAIT_MS, 'self-only Message dropped');
    // A frame without @ needs an event.
    const emptySid = client.send({ flag: Flag.Message, event: '', data: 'z' });
    assertAlarm(await client.nextFor(emptySid, WAIT_MS), AlarmCode.BadRequest, emptySid);
    assert.equal(server.broker.stats.streamsOpen, 0);
  });
});

test('$sub, $unsub and $presence sent as Messages work without acknowledgement', async () => {
  await withBroker(async (server, clients) => {
    const sub = await connect(server, 'udp');
    const publisher = await connect(server, 'tcp');
    clients.push(sub, publisher);
    sub.send({ flag: Flag.Message, event: '$sub', meta: 'event=m.*' });
    await eventually(() => server.events.subscriptionCount === 1, WAIT_MS, 'the subscription');
    assert.deepEqual((await deliveries(publisher, ['m.x'], [sub], 1))[0], ['m.x']);
    sub.send({ flag: Flag.Message, event: '$presence', meta: 'event=m.x' });
    sub.send({ flag: Flag.Message, event: '$unsub', meta: 'event=m.*' });
    await eventually(() => server.events.subscriptionCount === 0, WAIT_MS, 'no subscription');
    await assertNothing([sub], 150, () => true, 'acknowledgement of a control Message');
    // The control Request, for contrast: answered.
    const ack = await control(sub, '$sub', 'event=m.*');
    assert.equal(ack.flag, Flag.ReplyEnd);
    assert.equal(ack.metaString, 'event=m.*');
    assert.deepEqual(await presenceOf(publisher, 'm.x'), [], 'a wildcard subscription makes no room member');
  });
});

test('sub= in the handshake: valid patterns are subscribed, an invalid one or one past the limit gets an Alarm after Connack', async () => {
  await withBroker(async (server, clients) => {
    const client = await connect(server, 'tcp', { query: 'sub=ok.one,a..b,,ok.*,ok.>' });
    const publisher = await connect(server, 'udp');
    clients.push(client, publisher);
    const bad = await client.next((f) => f.flag === Flag.Alarm && f.metaString.startsWith('event=a..b'), WAIT_MS);
    assertAlarm(bad, AlarmCode.BadRequest, '');
    assert.equal(bad.event, '$sub');
    assert.equal(bad.metaString, 'event=a..b&code=4000');
    const over = await client.next((f) => f.flag === Flag.Alarm && f.metaString.startsWith('event=ok.>'), WAIT_MS);
    assertAlarm(over, AlarmCode.Congested, '');
    assert.equal(server.events.subscriptionCount, 2);
    assert.deepEqual((await deliveries(publisher, ['ok.one', 'ok.two', 'ok.two.three'], [client], 2))[0], ['ok.one', 'ok.two']);
  }, { limits: { maxSubscriptionsPerSession: 2 } });
});

test('published events with wildcard or empty tokens are refused with Alarm 4000 and reach nobody', async () => {
  const server = await startTestBroker();
  const p = ports(server);
  const sub = await RawClient.connect('tcp', p.tcp, { query: 'sub=a.>' });
  const pub = await RawClient.connect('tcp', p.tcp);
  try {
    await eventually(() => server.events.subscriptionCount === 1, 2000, 'subscribed');
    for (const event of ['a.*', 'a.>', 'a..b', '.a', 'a.']) {
      const s = pub.send({ flag: Flag.Message, event, data: event });
      const alarm = await pub.nextFor(s);
      assert.equal(alarm.flag, Flag.Alarm, event);
      assert.equal(alarm.meta('code'), '4000', event);
    }
    pub.send({ flag: Flag.Message, event: 'a.b*c', data: 'literal' });
    assert.equal((await sub.nextFlag(Flag.Message)).data.toString(), 'literal', "a '*' inside a token is just a character");
    assert.deepEqual(await sub.collect(100), [], 'none of the refused events was delivered');
  } finally {
    sub.close();
    pub.close();
    await server.close();
  }
});
