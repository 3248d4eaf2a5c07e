/**
 * The state the session gauges of /metrics read instead of visiting every session: SessionCounts' sessions
 * in their handshake or open, QueuedBytes' active queues, and the histogram's 0-byte observations.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { SessionCounts } from '../../src/broker/session-counts.js';
import { QueuedBytes, type TrackedQueue } from '../../src/broker/queued-bytes.js';
import { BucketHistogram } from '../../src/broker/stats.js';

test('SessionCounts: connected() counts sessions from accept to close, handshakes included; snapshot() the open ones', () => {
  const counts = new SessionCounts();
  const tcp = { transport: 'tcp' } as never;
  const udp = { transport: 'udp' } as never;
  counts.sessionAccepted(tcp);
  counts.sessionAccepted(tcp);
  counts.sessionAccepted(udp);
  counts.sessionOpened(tcp);
  assert.deepEqual([...counts.connected()], [['tcp', 2], ['udp', 1]]);
  assert.deepEqual(counts.snapshot(), { tcp: 1 });
  counts.sessionClosed(udp, false); // refused in its handshake
  counts.sessionClosed(tcp, true);
  assert.deepEqual([...counts.connected()], [['tcp', 1], ['udp', 0]]);
  assert.deepEqual(counts.snapshot(), { tcp: 0 });
  counts.sessionClosed(tcp, false);
  assert.deepEqual([...counts.connected()], [['tcp', 0], ['udp', 0]]);
});

test('QueuedBytes.forEachActive reads only the active queues, as they are now', () => {
  const queued = new QueuedBytes(60_000, () => {});
  const queue = (bytes: number): TrackedQueue & { bytes: number } => ({ active: false, accounted: 0, bytes, get liveBytes() { return this.bytes; } });
  const a = queue(100);
  const b = queue(7);
  const idle = queue(0);
  queued.activate(a);
  queued.activate(b);
  const seen: number[] = [];
  queued.forEachActive((bytes) => seen.push(bytes));
  assert.deepEqual(seen, [100, 7]);
  b.bytes = 0;
  queued.check();
  seen.length = 0;
  queued.forEachActive((bytes) => seen.push(bytes));
  assert.deepEqual(seen, [100], 'the emptied queue left the list; the idle one never joined');
  assert.equal(idle.active, false);
  queued.clear();
});

test('BucketHistogram.observeZeros adds n observations of 0 to the first bucket', () => {
  const h = new BucketHistogram([0, 1024]);
  h.observe(5000);
  h.observeZeros(3);
  h.observeZeros(-1);
  assert.deepEqual([...h.counts], [3, 0, 1]);
  assert.equal(h.count, 4);
  assert.equal(h.sum, 5000);
});
