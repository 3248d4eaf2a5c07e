/**
 * The session gauges of /metrics (`socketd_connections_open`, `socketd_outbound_queue_bytes`,
 * `socketd_paused_readers`, `socketd_session_outbound_queue_bytes`) read state kept where it changes, never
 * every session: a scrape with many idle sessions visits none (no periodic work that visits every session),
 * and each gauge still matches the sessions themselves under traffic with a slow consumer, back to 0 after.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Flag } from '../../src/protocol/index.js';
import type { RunningServer } from '../../src/server.js';
import { RawClient } from '../support/raw-client.js';
import { startTestBroker, ports, eventually } from '../support/broker.js';
import { stalledConsumer } from '../support/integration.js';

const WAIT_MS = 10_000;

/** name{labels} -> value, from the Prometheus text format. */
async function scrape(server: RunningServer): Promise<Map<string, number>> {
  const res = await fetch(`http://127.0.0.1:${ports(server).http}/metrics`);
  assert.equal(res.status, 200);
  const out = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

function value(samples: Map<string, number>, key: string): number {
  return samples.get(key) ?? 0;
}

/** What the gauges used to compute by visiting every session: the ground truth to compare with. */
function visited(server: RunningServer): { tcp: number; paused: number; queued: number; sessions: number } {
  let tcp = 0;
  let paused = 0;
  let queued = 0;
  let sessions = 0;
  for (const s of server.broker.allSessions()) {
    sessions++;
    if (s.transport === 'tcp') tcp++;
    if (s.readingPaused) paused++;
    queued += s.outbound.queuedBytes;
  }
  return { tcp, paused, queued, sessions };
}


test('a scrape with many idle sessions visits no session, and the gauges count them (handshakes included)', { timeout: 60_000 }, async () => {
  const server = await startTestBroker();
  const p = ports(server);
  const N = 150;
  const clients: RawClient[] = [];
  // A connection still in its handshake: socketd_connections_open counts it (docs/operations.md, section 5).
  const pending = net.connect(p.tcp, '127.0.0.1');
  const connected = new Promise<void>((resolve) => pending.once('connect', resolve));
  try {
    await connected;
    for (let i = 0; i < N; i++) clients.push(await RawClient.connect('tcp', p.tcp, { name: `idle${i}` }));
    await eventually(() => server.broker.sessionCount === N + 1, WAIT_MS, 'every connection held');
    await eventually(() => !server.broker.queued.ticking, WAIT_MS, 'the Connacks flushed and counted');

    const broker = server.broker;
    const original = broker.allSessions.bind(broker);
    let visits = 0;
    broker.allSessions = () => {
      visits++;
      return original();
    };
    const readings = broker.queued.readings;
    let samples: Map<string, number>;
    try {
      samples = await scrape(server);
      await scrape(server);
    } finally {
      broker.allSessions = original;
    }
    assert.equal(visits, 0, 'the scrape never asked for every session');
    assert.equal(broker.queued.readings, readings, 'and read no queue: none holds bytes');

    assert.equal(value(samples, 'socketd_connections_open{transport="tcp"}'), N + 1);
    assert.equal(value(samples, 'socketd_sessions_open'), N);
    assert.equal(value(samples, 'socketd_outbound_queue_bytes'), 0);
    assert.equal(value(samples, 'socketd_paused_readers'), 0);
    assert.equal(value(samples, 'socketd_session_outbound_queue_bytes_count'), N + 1);
    assert.equal(value(samples, 'socketd_session_outbound_queue_bytes_bucket{le="0"}'), N + 1);
    assert.equal(value(samples, 'socketd_session_outbound_queue_bytes_sum'), 0);

    // Ten leave (one before its handshake): the gauges follow without a visit.
    pending.destroy();
    for (const c of clients.splice(0, 9)) c.close();
    await eventually(() => server.broker.sessionCount === N - 9, WAIT_MS, 'the ten gone');
    const after = await scrape(server);
    assert.equal(value(after, 'socketd_connections_open{transport="tcp"}'), N - 9);
    assert.equal(value(after, 'socketd_session_outbound_queue_bytes_count'), N - 9);
    assert.equal(value(after, 'socketd_connections_open{transport="tcp"}'), visited(server).tcp);
  } finally {
    pending.destroy();
    for (const c of clients) c.close();
    await server.close();
  }
});

test('under a slow consumer the gauges match the sessions: paused readers and queued bytes rise, then return to 0, also when a paused session closes', { timeout: 60_000 }, async () => {
  const server = await startTestBroker({ flow: { outboundHighWaterBytes: 4096, outboundLimitBytes: 32 * 1024 * 1024 } });
  const p = ports(server);
  const idle: RawClient[] = [];
  const consumer = await stalledConsumer(p.tcp, 'slow');
  const producer = await RawClient.connect('tcp', p.tcp);
  try {
    for (let i = 0; i < 20; i++) idle.push(await RawClient.connect('tcp', p.tcp, { name: `idle${i}` }));
    const payload = Buffer.alloc(16 * 1024, 1);
    // More than the loopback socket buffers absorb, so the broker's queue for the consumer fills.
    const flood = (from: RawClient, count: number): void => {
      for (let i = 0; i < count; i++) from.send({ flag: Flag.Message, event: 'x', meta: '@=slow', data: payload });
    };

    // Congested: the producer is paused, the consumer's queue holds bytes.
    const deliveredBefore = server.broker.stats.deliveries;
    flood(producer, 400);
    await producer.nextFlag(Flag.Pressure, WAIT_MS);
    await eventually(() => visited(server).paused === 1 && server.broker.queuedBytes > 0, WAIT_MS, 'the producer paused, the bytes counted');
    const congested = await scrape(server);
    const sessions = server.broker.sessionCount;
    assert.equal(value(congested, 'socketd_paused_readers'), 1);
    assert.equal(server.broker.stats.pausedReaders, visited(server).paused);
    assert.ok(value(congested, 'socketd_outbound_queue_bytes') > 0, 'queued bytes reported');
    assert.equal(value(congested, 'socketd_session_outbound_queue_bytes_count'), sessions);
    assert.ok(value(congested, 'socketd_session_outbound_queue_bytes_bucket{le="0"}') <= sessions - 1, 'the slow queue is observed with its bytes');
    assert.ok(value(congested, 'socketd_session_outbound_queue_bytes_sum') > 0);
    assert.equal(value(congested, 'socketd_connections_open{transport="tcp"}'), visited(server).tcp);

    // The consumer reads: everything drains and the producer resumes.
    consumer.resume();
    // All 400 routed first: the queue also empties between two reads of the producer's backlog, and a scrape
    // there would see the next frames queued.
    await eventually(() => server.broker.stats.deliveries - deliveredBefore === 400, WAIT_MS, 'the whole flood routed');
    await eventually(() => visited(server).paused === 0 && visited(server).queued === 0, WAIT_MS, 'drained and resumed');
    await eventually(() => !server.broker.queued.ticking, WAIT_MS, 'the last budget check');
    const drained = await scrape(server);
    assert.equal(value(drained, 'socketd_paused_readers'), 0);
    assert.equal(value(drained, 'socketd_outbound_queue_bytes'), 0);
    // The consumer pings every 100 ms (stalledConsumer): its 8-byte Pong may be queued at the scrape's moment.
    const pongQueued = value(drained, 'socketd_session_outbound_queue_bytes_sum');
    assert.ok(pongQueued === 0 || pongQueued === 8, `nothing but a heartbeat Pong queued (${pongQueued} B)`);
    assert.equal(value(drained, 'socketd_session_outbound_queue_bytes_bucket{le="0"}'), server.broker.sessionCount - (pongQueued > 0 ? 1 : 0));

    // Paused again, then the paused producer goes away while paused: the counter must not keep it.
    consumer.pause();
    flood(producer, 1200);
    await eventually(() => server.broker.stats.pausedReaders === 1, WAIT_MS, 'the producer paused again');
    assert.equal(visited(server).paused, 1);
    producer.close();
    await eventually(() => server.broker.sessionCount === sessions - 1, WAIT_MS, 'the paused producer closed');
    assert.equal(server.broker.stats.pausedReaders, 0, 'closed while paused: no longer counted');
    assert.equal(value(await scrape(server), 'socketd_paused_readers'), 0);

    // And the consumer, closed with bytes queued: the total returns to 0.
    consumer.destroy();
    await eventually(() => server.broker.sessionCount === sessions - 2, WAIT_MS, 'the consumer gone');
    await eventually(() => server.broker.queuedBytes === 0, WAIT_MS, 'its bytes forgotten');
    const end = await scrape(server);
    assert.equal(value(end, 'socketd_outbound_queue_bytes'), 0);
    assert.equal(value(end, 'socketd_paused_readers'), 0);
    assert.equal(value(end, 'socketd_session_outbound_queue_bytes_count'), sessions - 2);
    assert.equal(value(end, 'socketd_session_outbound_queue_bytes_bucket{le="0"}'), sessions - 2);
  } finally {
    consumer.destroy();
    producer.close();
    for (const c of idle) c.close();
    await server.close();
  }
});

test('the memory budget pauses every reader (handshakes included): the counter follows, closes while paused included, and returns to 0', { timeout: 60_000 }, async () => {
  const server = await startTestBroker({
    flow: { memoryBudgetBytes: 64 * 1024, memoryLowWaterBytes: 16 * 1024, outboundHighWaterBytes: 16 * 1024 * 1024, outboundLimitBytes: 32 * 1024 * 1024 },
  });
  const p = ports(server);
  const idle: RawClient[] = [];
  const consumer = await stalledConsumer(p.tcp, 'slow');
  const producer = await RawClient.connect('tcp', p.tcp);
  const pending = net.connect(p.tcp, '127.0.0.1');
  const connected = new Promise<void>((resolve) => pending.once('connect', resolve));
  try {
    await connected;
    for (let i = 0; i < 10; i++) idle.push(await RawClient.connect('tcp', p.tcp, { name: `idle${i}` }));
    await eventually(() => server.broker.sessionCount === 13, WAIT_MS, 'every connection held');
    const payload = Buffer.alloc(16 * 1024, 1);
    for (let i = 0; i < 600; i++) producer.send({ flag: Flag.Message, event: 'x', meta: '@=slow', data: payload });
    await eventually(() => server.broker.stats.overBudget, WAIT_MS, 'over the memory budget');
    assert.equal(server.broker.stats.pausedReaders, 13, 'every session paused, the one in its handshake too');
    assert.equal(value(await scrape(server), 'socketd_paused_readers'), visited(server).paused);

    // Closed while paused: three idle sessions and the one in its handshake.
    for (const c of idle.splice(0, 3)) c.close();
    pending.destroy();
    await eventually(() => server.broker.sessionCount === 9, WAIT_MS, 'four gone');
    assert.equal(server.broker.stats.pausedReaders, 9);
    assert.equal(value(await scrape(server), 'socketd_paused_readers'), visited(server).paused);

    consumer.resume();
    await eventually(() => !server.broker.stats.overBudget, WAIT_MS, 'back under the low-water mark');
    assert.equal(server.broker.stats.pausedReaders, 0);
    assert.equal(visited(server).paused, 0);
    assert.equal(value(await scrape(server), 'socketd_paused_readers'), 0);
  } finally {
    pending.destroy();
    consumer.destroy();
    producer.close();
    for (const c of idle) c.close();
    await server.close();
  }
});
