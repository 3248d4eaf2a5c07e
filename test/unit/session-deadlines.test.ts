/**
 * The sessions' deadlines on the session wheel (handshake, idle, congestion: spec §3, §7), the running total
 * of queued bytes behind the memory budget, and the heartbeat fast path: a Broker on in-memory connections.
 * What they replaced visited every session every 100 ms and every second; these check that the timeouts
 * still fire when they should, and that an idle broker does no work per session.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { Broker } from '../../src/broker/broker.js';
import { brokerSettings, type BrokerSettings } from '../../src/broker/settings.js';
import { Session } from '../../src/broker/session.js';
import { encodeBare, encodeFrame } from '../../src/protocol/codec.js';
import { Flag } from '../../src/protocol/flags.js';
import { createMemoryPair, type Connection, type Framing } from '../../src/transport/index.js';
import { RecordingHandler, delay, waitFor } from '../support/transport-helpers.js';

const PING = encodeBare(Flag.Ping);

// The broker's timers are unref'd (a server's listeners keep its process alive); here nothing else would.
const keepAlive = setInterval(() => {}, 1000);
test.after(() => clearInterval(keepAlive));

function newBroker(overrides: Partial<BrokerSettings>): Broker {
  return new Broker({ settings: brokerSettings(overrides), logger: pino({ level: 'silent' }) });
}

interface Client {
  connection: Connection;
  handler: RecordingHandler;
  session: Session;
}

/** A client connection to `broker`; with `name`, Connect is sent (claiming `@` name `name` unless ''). */
function dial(broker: Broker, name?: string, framing: Framing = 'stream', highWaterMark?: number): Client {
  const [connection, server] = createMemoryPair(framing, highWaterMark === undefined ? {} : { highWaterMark });
  const handler = new RecordingHandler();
  connection.start(handler);
  broker.accept(server);
  let session: Session | undefined;
  for (const s of broker.allSessions()) session = s;
  if (name !== undefined) {
    const url = `sd:tcp://127.0.0.1:1/${name ? `?@=${name}` : ''}`;
    connection.write(encodeFrame({ flag: Flag.Connect, sid: 'c', event: url, meta: 'Socket.D=1.0', data: url }));
  }
  return { connection, handler, session: session! };
}

/** Flags of the whole frames received so far. */
function flagsOf(handler: RecordingHandler): number[] {
  const bytes = handler.bytes;
  const flags: number[] = [];
  for (let at = 0; at + 8 <= bytes.length; at += bytes.readInt32BE(at)) flags.push(bytes.readInt32BE(at + 4));
  return flags;
}

function count(flags: number[], flag: number): number {
  return flags.filter((f) => f === flag).length;
}

async function open(client: Client): Promise<void> {
  await waitFor(() => flagsOf(client.handler).includes(Flag.Connack), 'Connack');
}

test('idle timeout: a session silent for idleTimeoutMs is closed then, not before; traffic does not reschedule its deadline', async () => {
  const broker = newBroker({ idleTimeoutMs: 400, handshakeTimeoutMs: 5000, sweepIntervalMs: 20 });
  const client = dial(broker, 'idle');
  await open(client);
  let scheduled = 0;
  const schedule = broker.deadlines.schedule.bind(broker.deadlines);
  broker.deadlines.schedule = (entry, delayMs) => {
    scheduled++;
    schedule(entry, delayMs);
  };
  // Pings every 100 ms keep it alive well past one idle period.
  for (let i = 0; i < 6; i++) {
    client.connection.write(PING);
    await delay(100);
  }
  assert.equal(client.session.closed, false, 'alive while it pings');
  const lastActivity = client.session.lastSeen;
  assert.equal(count(flagsOf(client.handler), Flag.Pong), 6, 'every Ping answered');
  // 6 Pings in 600 ms: the 400 ms deadline re-armed at most twice, never once per Ping.
  assert.ok(scheduled <= 2, `re-armed ${scheduled} times`);
  const closed = await client.handler.closed;
  const silentFor = Date.now() - lastActivity;
  assert.equal(client.session.closeReason, 'idle_timeout');
  assert.ok(silentFor >= 400, `closed after ${silentFor} ms of silence`);
  assert.ok(silentFor < 400 + 300, `closed ${silentFor} ms after the last frame (resolution 20 ms)`);
  assert.equal(closed.code, 'peer_closed');
  assert.ok(flagsOf(client.handler).includes(Flag.Close), 'told with Close');
  assert.equal(broker.deadlines.size, 0, 'nothing left on the wheel');
});

test('idle timeout shorter than the handshake timeout: the open session is closed at its idle time', async () => {
  const broker = newBroker({ idleTimeoutMs: 200, handshakeTimeoutMs: 3000, sweepIntervalMs: 20 });
  const client = dial(broker, '');
  await open(client);
  const openedAt = client.session.openedAt;
  await client.handler.closed;
  const after = Date.now() - openedAt;
  assert.equal(client.session.closeReason, 'idle_timeout');
  assert.ok(after >= 200 && after < 1000, `closed ${after} ms after the handshake`);
});

test('handshake timeout: no Connect within handshakeTimeoutMs closes the connection then, not before', async () => {
  const broker = newBroker({ idleTimeoutMs: 60_000, handshakeTimeoutMs: 250, sweepIntervalMs: 20 });
  const client = dial(broker);
  const started = Date.now();
  await delay(150);
  assert.equal(client.session.closed, false, 'still waiting for its Connect');
  await client.handler.closed;
  const after = Date.now() - started;
  assert.equal(client.session.closeReason, 'handshake_timeout');
  assert.ok(after >= 250 && after < 800, `closed after ${after} ms`);
  assert.ok(flagsOf(client.handler).includes(Flag.Close));
  assert.equal(broker.sessionCount, 0);
});

test('congestion timeout: a consumer that stops reading is cut off at congestionTimeoutMs, before its idle deadline', async () => {
  const broker = newBroker({
    idleTimeoutMs: 60_000, handshakeTimeoutMs: 60_000, sweepIntervalMs: 20,
    outbound: { highWaterBytes: 4096, limitBytes: 64 * 1024 * 1024, policy: 'disconnect', congestionTimeoutMs: 300 },
  });
  const consumer = dial(broker, 'slow', 'stream', 4096);
  const producer = dial(broker, 'fast', 'stream', 4096);
  await open(consumer);
  await open(producer);
  consumer.connection.pause();
  const data = Buffer.alloc(1000);
  for (let i = 0; i < 20; i++) producer.connection.write(encodeFrame({ flag: Flag.Message, sid: `m${i}`, event: 'e', meta: '@=slow', data }));
  await waitFor(() => consumer.session.outbound.congested, 'congestion');
  const since = consumer.session.outbound.congestedSince;
  await waitFor(() => consumer.session.closed, 'the slow consumer closed', 3000);
  const after = Date.now() - since;
  assert.equal(consumer.session.closeReason, 'slow_consumer');
  assert.ok(after >= 300 && after < 1500, `cut off ${after} ms after its congestion began`);
  assert.equal(producer.session.closed, false);
});

test('memory budget: above it every reader pauses, below the low-water mark reading resumes; the total is kept without visiting idle sessions', async () => {
  const broker = newBroker({
    idleTimeoutMs: 60_000, handshakeTimeoutMs: 60_000, budgetCheckMs: 20,
    memoryBudgetBytes: 16 * 1024, memoryLowWaterBytes: 4 * 1024,
    outbound: { highWaterBytes: 1024 * 1024, limitBytes: 64 * 1024 * 1024, policy: 'disconnect', congestionTimeoutMs: 60_000 },
  });
  const consumer = dial(broker, 'reader');
  const producer = dial(broker, 'writer');
  const bystanders = Array.from({ length: 20 }, (_, i) => dial(broker, `b${i}`));
  await open(consumer);
  await open(producer);
  for (const b of bystanders) await open(b);
  await waitFor(() => !broker.queued.ticking, 'Connacks flushed and counted');
  assert.equal(broker.queued.bytes, 0);
  consumer.connection.pause();
  const data = Buffer.alloc(1000);
  for (let i = 0; i < 40; i++) producer.connection.write(encodeFrame({ flag: Flag.Message, sid: `m${i}`, event: 'e', meta: '@=reader', data }));
  await waitFor(() => broker.stats.overBudget, 'over budget');
  assert.ok(broker.queued.bytes > 16 * 1024, `${broker.queued.bytes} bytes counted`);
  assert.equal(broker.queued.bytes, consumer.session.outbound.queuedBytes, 'the total is the one full queue');
  assert.equal(broker.stats.budgetPauses, 1);
  for (const b of [producer, ...bystanders]) assert.equal(b.session.readingPaused, true, 'every reader paused');
  // Only the full queue is read while it stays full.
  const readings = broker.queued.readings;
  await delay(100);
  const perCheck = (broker.queued.readings - readings) / (100 / 20);
  assert.ok(perCheck <= 2, `${perCheck} queues read per check`);
  consumer.connection.resume();
  await waitFor(() => !broker.stats.overBudget, 'back under the low-water mark');
  assert.equal(producer.session.readingPaused, false, 'reading resumed');
  await waitFor(() => !broker.queued.ticking, 'the check stops once nothing is queued');
  assert.equal(broker.queued.bytes, 0);
  for (const c of [consumer, producer, ...bystanders]) c.connection.destroy('done');
});

test('an idle broker with many sessions does no periodic work per session', async () => {
  const broker = newBroker({ idleTimeoutMs: 30_000, handshakeTimeoutMs: 30_000, sweepIntervalMs: 20, budgetCheckMs: 20 });
  const clients = Array.from({ length: 300 }, (_, i) => dial(broker, `s${i}`));
  for (const c of clients) await open(c);
  await waitFor(() => !broker.queued.ticking, 'the budget check stopped');
  let expired = 0;
  const onExpire = Session.prototype.onExpire;
  Session.prototype.onExpire = function (this: Session, now: number) {
    expired++;
    onExpire.call(this, now);
  };
  try {
    const readings = broker.queued.readings;
    await delay(300);
    assert.equal(expired, 0, 'no session deadline visited before it is due');
    assert.equal(broker.queued.readings, readings, 'no queue read while nothing is queued');
    assert.equal(broker.queued.ticking, false);
    assert.equal(broker.deadlines.size, 300, 'one deadline per session');
    // A heartbeat from each: answered, and each Pong's queue read once, not every session every check.
    for (const c of clients) c.connection.write(PING);
    await waitFor(() => clients.every((c) => count(flagsOf(c.handler), Flag.Pong) === 1), 'Pongs');
    await waitFor(() => !broker.queued.ticking, 'the budget check stopped again');
    assert.ok(broker.queued.readings - readings <= 300 * 2, `${broker.queued.readings - readings} readings for 300 Pongs`);
    assert.equal(expired, 0, 'traffic moved no deadline');
  } finally {
    Session.prototype.onExpire = onExpire;
  }
  for (const c of clients) c.connection.destroy('done');
  await waitFor(() => broker.sessionCount === 0, 'all closed');
  assert.equal(broker.deadlines.size, 0);
});

for (const bareControlFrames of [true, false]) {
  for (const framing of ['stream', 'message'] as const) {
    test(`heartbeat (fastPaths.bareControlFrames ${bareControlFrames}, ${framing} framing): Ping gets Pong, Pong is taken, ${bareControlFrames ? 'no Frame made' : 'through onFrame'}`, async () => {
      const broker = newBroker({ bareControlFrames, idleTimeoutMs: 30_000 });
      const client = dial(broker, 'hb', framing);
      await open(client);
      let framesBuilt = 0;
      const onFrame = client.session.onFrame.bind(client.session);
      client.session.onFrame = (frame) => {
        framesBuilt++;
        onFrame(frame);
      };
      for (let i = 0; i < 5; i++) client.connection.write(PING);
      client.connection.write(encodeBare(Flag.Pong));
      await waitFor(() => count(flagsOf(client.handler), Flag.Pong) === 5, 'five Pongs');
      assert.equal(framesBuilt, bareControlFrames ? 0 : 6);
      assert.equal(broker.stats.framesInByFlag[Flag.Ping], 5);
      assert.equal(broker.stats.framesInByFlag[Flag.Pong], 1);
      assert.equal(client.session.closed, false);
      // Before the handshake a bare Ping is still a protocol error (the first frame must be Connect).
      const early = dial(broker);
      early.connection.write(PING);
      await early.handler.closed;
      assert.equal(early.session.closeReason, 'first_frame_not_connect');
      client.connection.destroy('done');
    });
  }
}
