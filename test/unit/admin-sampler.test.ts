/**
 * The admin page's sampler (src/http/admin/sampler.ts): it runs only while the page asks (touch), stops by
 * itself IDLE_STOP_MS after the last request, keeps at most HISTORY samples, and turns counters into rates.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AdminSampler, HISTORY, IDLE_STOP_MS } from '../../src/http/admin/sampler.js';
import { SessionCounts } from '../../src/broker/session-counts.js';
import { BrokerStats } from '../../src/broker/stats.js';

function setup(): { sampler: AdminSampler; stats: BrokerStats; clock: { now: number } } {
  const clock = { now: 1_000_000 };
  const stats = new BrokerStats();
  const sampler = new AdminSampler({ stats, counts: new SessionCounts(), subscriptionCount: () => 7, now: () => clock.now });
  return { sampler, stats, clock };
}

test('nothing runs until the page asks; then one timer, stopped after IDLE_STOP_MS without a request', () => {
  const { sampler, clock } = setup();
  assert.equal(sampler.running, false, 'idle at start: no cost while nobody looks');
  sampler.touch();
  assert.equal(sampler.running, true);
  clock.now += 1000;
  sampler.tick();
  assert.equal(sampler.running, true);
  assert.equal(sampler.samplesSince(0).length, 1);
  clock.now += IDLE_STOP_MS + 1;
  sampler.tick();
  assert.equal(sampler.running, false, 'stopped once nobody asked for IDLE_STOP_MS');
  // A new look starts a fresh history.
  sampler.touch();
  assert.equal(sampler.samplesSince(0).length, 0);
  sampler.stop();
});

test('rates per second from the counters, levels as they are, samplesSince filters by time', () => {
  const { sampler, stats, clock } = setup();
  try {
    sampler.touch();
    stats.framesInByFlag[16] += 300; // Message (any flag counts)
    stats.framesOutByFlag[16] += 600;
    stats.bytesIn += 3000;
    stats.deliveries += 600;
    stats.pressureSent += 2;
    stats.streamsOpen = 4;
    stats.queuedBytes = 12345;
    BrokerStats.inc(stats.dropped, 'no_subscriber', 6);
    clock.now += 2000;
    sampler.tick();
    const [first] = sampler.samplesSince(0);
    assert.equal(first.framesIn, 150);
    assert.equal(first.framesOut, 300);
    assert.equal(first.bytesIn, 1500);
    assert.equal(first.deliveries, 300);
    assert.equal(first.pressure, 1);
    assert.equal(first.dropped, 3);
    assert.equal(first.streamsOpen, 4);
    assert.equal(first.queuedBytes, 12345);
    assert.equal(first.subscriptions, 7);
    clock.now += 1000;
    sampler.tick();
    const second = sampler.samplesSince(first.t);
    assert.equal(second.length, 1);
    assert.equal(second[0].framesIn, 0, 'no new frames: rate 0');
  } finally {
    sampler.stop();
  }
});

test('the history is bounded: HISTORY samples, oldest dropped', () => {
  const { sampler, clock } = setup();
  try {
    sampler.touch();
    for (let i = 0; i < HISTORY + 25; i++) {
      clock.now += 1000;
      sampler.touch();
      sampler.tick();
    }
    const all = sampler.samplesSince(0);
    assert.equal(all.length, HISTORY);
    assert.equal(all[all.length - 1].t, clock.now);
    assert.equal(all[0].t, clock.now - (HISTORY - 1) * 1000);
    for (let i = 1; i < all.length; i++) assert.ok(all[i].t > all[i - 1].t, 'oldest first');
  } finally {
    sampler.stop();
  }
});

test('SessionCounts: open sessions by transport from the open and close notices', () => {
  const counts = new SessionCounts();
  const tcp = { transport: 'tcp' } as never;
  const udp = { transport: 'udp' } as never;
  counts.sessionOpened(tcp);
  counts.sessionOpened(tcp);
  counts.sessionOpened(udp);
  counts.sessionClosed(tcp, true);
  counts.sessionClosed(udp, false); // never opened: not counted down
  assert.deepEqual(counts.snapshot(), { tcp: 1, udp: 1 });
});
