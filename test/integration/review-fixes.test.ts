/**
 * Regression tests for defects found in review (docs/protocol.md's author and the integration suite).
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Flag } from '../../src/protocol/index.js';
import { RawClient } from '../support/raw-client.js';
import { startTestBroker, ports, eventually } from '../support/broker.js';
import { stalledConsumer } from '../support/integration.js';


test('udp sessions receive Close when the broker shuts down', async () => {
  const server = await startTestBroker();
  const client = await RawClient.connect('udp', ports(server).udp, { name: 'u' });
  const closing = client.nextFlag(Flag.Close);
  await server.close();
  const close = await closing;
  assert.equal(close.meta('code'), '1001');
  assert.equal(close.meta('reason'), 'shutdown');
  client.close();
});

test('an empty X-Hash routes like no X-Hash (by the sender IP)', async () => {
  const server = await startTestBroker();
  const p = ports(server);
  const members = await Promise.all([1, 2, 3, 4].map(() => RawClient.connect('tcp', p.tcp, { name: 'h' })));
  const sender = await RawClient.connect('tcp', p.tcp);
  try {
    const receivers = async (meta: string): Promise<number> => {
      sender.send({ flag: Flag.Message, event: 'e', meta, data: meta });
      const got = await Promise.all(members.map((m) => m.collect(150, (f) => f.data.toString() === meta)));
      const idx = got.findIndex((frames) => frames.length === 1);
      assert.equal(got.flat().length, 1, 'exactly one member gets it');
      return idx;
    };
    const byIp = await receivers('@=h!');
    assert.equal(await receivers('@=h!&X-Hash='), byIp);
  } finally {
    for (const c of [...members, sender]) c.close();
    await server.close();
  }
});

test('a fragmented frame over the fragment-route limit is refused before fragment 1 is forwarded', async () => {
  const server = await startTestBroker({ limits: { maxFragmentRoutesPerSession: 1 } });
  const p = ports(server);
  const target = await RawClient.connect('tcp', p.tcp, { name: 't' });
  const sender = await RawClient.connect('tcp', p.tcp);
  try {
    sender.send({ flag: Flag.Message, event: 'f', meta: '@=t&Data-Fragment-Idx=1&Data-Fragment-Total=2', data: 'a1' });
    await target.next((f) => f.data.toString() === 'a1');
    const second = sender.send({ flag: Flag.Message, event: 'f', meta: '@=t&Data-Fragment-Idx=1&Data-Fragment-Total=2', data: 'b1' });
    const alarm = await sender.nextFor(second);
    assert.equal(alarm.flag, Flag.Alarm);
    assert.equal(alarm.meta('code'), '4029');
    assert.deepEqual(await target.collect(150, (f) => f.data.toString() === 'b1'), [], 'the refused frame never reached the target');
  } finally {
    target.close();
    sender.close();
    await server.close();
  }
});

test('a sender paused by backpressure is not closed as idle, and resumes when the consumer drains', async () => {
  const server = await startTestBroker({
    timeouts: { idleMs: 400 },
    flow: { outboundHighWaterBytes: 4096, outboundLimitBytes: 32 * 1024 * 1024 },
  });
  const p = ports(server);
  const consumer = await stalledConsumer(p.tcp, 'slow');
  const producer = await RawClient.connect('tcp', p.tcp);
  try {
    const payload = Buffer.alloc(16 * 1024, 1);
    for (let i = 0; i < 400; i++) producer.send({ flag: Flag.Message, event: 'x', meta: '@=slow', data: payload });
    await producer.nextFlag(Flag.Pressure, 5000);
    const session = () => [...server.broker.allSessions()].find((s) => s.name === '' && s.state === 1);
    await eventually(() => session()?.readingPaused === true, 5000, 'the producer to be paused');
    await new Promise((r) => setTimeout(r, 1200)); // three idle timeouts
    assert.equal(producer.closed, false, 'the paused producer is still connected');
    assert.equal(session()?.readingPaused, true, 'and still paused: the consumer has not read');
    consumer.resume();
    await eventually(() => session()?.readingPaused === false, 5000, 'the producer to be resumed');
  } finally {
    consumer.destroy();
    producer.close();
    await server.close();
  }
});

test('a udp target never leaves its feeders paused (udp has no drain)', async () => {
  const server = await startTestBroker({ flow: { outboundHighWaterBytes: 1024, outboundLimitBytes: 32 * 1024 * 1024 } });
  const p = ports(server);
  const target = await RawClient.connect('udp', p.udp, { name: 'ut' });
  const feeder = await RawClient.connect('tcp', p.tcp);
  try {
    for (let i = 0; i < 300; i++) feeder.send({ flag: Flag.Message, event: 'x', meta: '@=ut', data: Buffer.alloc(1000, 2) });
    const probe = feeder.send({ flag: Flag.Request, event: 'x', meta: '@=nobody' });
    const answer = await feeder.nextFor(probe, 5000);
    assert.equal(answer.flag, Flag.Alarm, 'the feeder is still being read');
    assert.equal(await feeder.collect(100, (f) => f.flag === Flag.Pressure).then((f) => f.length), 0, 'no Pressure from a udp target');
  } finally {
    target.close();
    feeder.close();
    await server.close();
  }
});

test('Close 1000 (closing starting): nothing new is routed to the session, its open streams still finish', async () => {
  const server = await startTestBroker();
  const p = ports(server);
  const svc = await RawClient.connect('tcp', p.tcp, { name: 'svc' });
  const caller = await RawClient.connect('ws', p.ws);
  try {
    const subSid = svc.send({ flag: Flag.Request, event: '$sub', meta: 'event=jobs' });
    assert.equal((await svc.nextFor(subSid)).flag, Flag.ReplyEnd);
    const pending = caller.send({ flag: Flag.Request, event: 'work', meta: '@=svc', data: 'w1' });
    const forwarded = await svc.nextFlag(Flag.Request);
    svc.send({ flag: Flag.Close, sid: '', meta: 'code=1000' });
    await eventually(() => server.broker.registry.group('svc') === undefined, 2000, 'svc out of the name registry');
    const byName = caller.send({ flag: Flag.Request, event: 'work', meta: '@=svc', data: 'w2' });
    assert.equal((await caller.nextFor(byName)).meta('code'), '4004', 'no new request by name');
    const byEvent = caller.send({ flag: Flag.Request, event: 'jobs', data: 'j1' });
    assert.equal((await caller.nextFor(byEvent)).meta('code'), '4004', 'no new request by event');
    svc.send({ flag: Flag.ReplyEnd, sid: forwarded.sid, event: 'work', data: 'done' });
    const answer = await caller.nextFor(pending);
    assert.equal(answer.flag, Flag.ReplyEnd);
    assert.equal(answer.data.toString(), 'done', 'the stream opened before Close 1000 was answered');
    svc.send({ flag: Flag.Close, sid: '', meta: 'code=1001' });
    await eventually(() => server.broker.sessionCount === 1, 2000, 'svc released after Close 1001');
  } finally {
    svc.close();
    caller.close();
    await server.close();
  }
});

test('a consumer congested past flow.congestionTimeoutMs is closed as a slow consumer, releasing the senders it paused', async () => {
  const server = await startTestBroker({
    flow: { outboundHighWaterBytes: 4096, outboundLimitBytes: 32 * 1024 * 1024, congestionTimeoutMs: 500 },
  });
  const p = ports(server);
  const consumer = await stalledConsumer(p.tcp, 'stuck');
  const producer = await RawClient.connect('tcp', p.tcp);
  const healthy = await RawClient.connect('ws', p.ws, { name: 'healthy' });
  try {
    const payload = Buffer.alloc(16 * 1024, 1);
    for (let i = 0; i < 400; i++) producer.send({ flag: Flag.Message, event: 'x', meta: '@=stuck', data: payload });
    await producer.nextFlag(Flag.Pressure, 5000);
    await eventually(() => server.broker.stats.closes.get('slow_consumer') === 1, 5000, 'the stuck consumer closed as slow');
    assert.equal(server.broker.stats.slowConsumers, 1);
    // The producer is read again: its request to a healthy session is answered.
    const s = producer.send({ flag: Flag.Request, event: 'q', meta: '@=healthy' });
    const fwd = await healthy.nextFlag(Flag.Request, 5000);
    healthy.send({ flag: Flag.ReplyEnd, sid: fwd.sid, event: 'q', data: 'ok' });
    assert.equal((await producer.nextFor(s, 5000)).data.toString(), 'ok');
  } finally {
    consumer.destroy();
    producer.close();
    healthy.close();
    await server.close();
  }
});

test('an Alarm too large for a udp requester arrives compacted (sid, event, code), not dropped', async () => {
  const server = await startTestBroker();
  const p = ports(server);
  const client = await RawClient.connect('udp', p.udp);
  try {
    // The request fits one 2048-byte datagram; its Alarm, echoing the meta plus code and reason, would not.
    const meta = `@=nobody&pad=${'x'.repeat(1975)}`;
    const s = client.send({ flag: Flag.Request, event: 'hello', meta, data: '' });
    const alarm = await client.nextFor(s);
    assert.equal(alarm.flag, Flag.Alarm);
    assert.equal(alarm.metaString, 'code=4004');
    assert.equal(alarm.event, 'hello');
    assert.ok(alarm.raw.length <= 2048);
    assert.match(alarm.data.toString(), /^Broker don't have/);
  } finally {
    client.close();
    await server.close();
  }
});

test('a $presence list too large for a udp requester is answered with Alarm 4013', async () => {
  const server = await startTestBroker();
  const p = ports(server);
  const members = await Promise.all(Array.from({ length: 30 }, (_, i) => RawClient.connect('tcp', p.tcp, { name: `member-with-a-long-name-${i}`, query: 'sub=room.big' })));
  const asker = await RawClient.connect('udp', p.udp);
  try {
    await eventually(() => server.events.subscriptionCount === 30, 3000, '30 members');
    const s = asker.send({ flag: Flag.Request, event: '$presence', meta: 'event=room.big' });
    const answer = await asker.nextFor(s);
    assert.equal(answer.flag, Flag.Alarm);
    assert.equal(answer.meta('code'), '4013');
    const tcpAsker = members[0];
    const t = tcpAsker.send({ flag: Flag.Request, event: '$presence', meta: 'event=room.big' });
    assert.equal(JSON.parse((await tcpAsker.nextFor(t)).data.toString()).length, 30, 'over tcp the list arrives');
  } finally {
    for (const m of members) m.close();
    asker.close();
    await server.close();
  }
});
