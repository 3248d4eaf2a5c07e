/**
 * The timer wheel of stream and fragment deadlines (src/broker/timer-wheel.ts), driven by a fake clock:
 * deadlines fire once and at most one resolution late, cancelled entries never fire, and the interval runs
 * only while something is scheduled (stopped by the first tick that finds the wheel empty, not by cancel).
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { TimerWheel, type Expirable } from '../../src/broker/timer-wheel.js';

class Entry implements Expirable {
  deadline = 0;
  wheelSlot = -1;
  wheelPrev: Expirable | null = null;
  wheelNext: Expirable | null = null;
  fired: number[] = [];
  /** Run when this entry fires (e.g. to cancel others, as a closing session does). */
  then: (() => void) | null = null;
  constructor(readonly name: string) {}
  onExpire(now: number): void {
    this.fired.push(now);
    this.then?.();
  }
}

test('timer wheel: deadlines fire once, within one resolution; cancelled ones never', () => {
  let now = 1_000_000;
  const wheel = new TimerWheel(10, () => now, 64);
  const a = new Entry('a');
  const b = new Entry('b');
  const c = new Entry('c');
  wheel.schedule(a, 25);
  wheel.schedule(b, 1000); // more than one lap of 64 × 10 ms
  wheel.schedule(c, 25);
  assert.equal(wheel.size, 3);
  wheel.cancel(c);
  assert.equal(wheel.size, 2);
  assert.equal(c.wheelSlot, -1);
  now += 20;
  wheel.tick();
  assert.deepEqual(a.fired, [], 'not before its deadline');
  now += 15;
  wheel.tick();
  assert.equal(a.fired.length, 1);
  assert.ok(a.fired[0]! - (1_000_000 + 25) <= 10, 'at most one resolution late');
  for (let i = 0; i < 200; i++) {
    now += 10;
    wheel.tick();
  }
  assert.equal(a.fired.length, 1, 'once');
  assert.equal(b.fired.length, 1, 'a deadline past one lap fires on its own lap');
  assert.ok(b.fired[0]! >= 1_000_000 + 1000);
  assert.deepEqual(c.fired, []);
  assert.equal(wheel.size, 0);
});

test('timer wheel: rescheduling moves the deadline; the interval stops at the first tick with nothing left', () => {
  let now = 5_000;
  const wheel = new TimerWheel(10, () => now, 16);
  const a = new Entry('a');
  assert.equal(wheel.ticking, false);
  wheel.schedule(a, 50);
  assert.equal(wheel.ticking, true);
  wheel.schedule(a, 500);
  assert.equal(wheel.size, 1, 'rescheduled, not added twice');
  now += 60;
  wheel.tick();
  assert.deepEqual(a.fired, [], 'the old deadline is gone');
  // Cancelling the last entry leaves the interval to the next tick (no clear/re-create per request).
  wheel.cancel(a);
  assert.equal(wheel.size, 0);
  assert.equal(wheel.ticking, true);
  wheel.schedule(a, 30);
  wheel.cancel(a);
  now += 10;
  wheel.tick();
  assert.equal(wheel.ticking, false, 'the tick that finds the wheel empty stops the interval');
  wheel.schedule(a, 20);
  assert.equal(wheel.ticking, true, 'and the next schedule starts it again');
  wheel.clear();
  assert.equal(wheel.ticking, false);
  assert.equal(a.wheelSlot, -1);
});

test('timer wheel: an entry that cancels others of its slot when it fires; many entries in one slot', () => {
  let now = 0;
  const wheel = new TimerWheel(10, () => now, 8);
  const entries = Array.from({ length: 50 }, (_, i) => new Entry(`e${i}`));
  for (const e of entries) wheel.schedule(e, 15); // all in one slot
  const late = new Entry('late');
  wheel.schedule(late, 15 + 8 * 10); // the same slot, one lap later
  // The most recently added is first in the slot: e49 fires first and cancels e48 and e0.
  entries[49]!.then = () => {
    wheel.cancel(entries[48]!);
    wheel.cancel(entries[0]!);
  };
  // The slot runs from the newest entry to the oldest: e10 moves e9, still ahead of it, out of the slot.
  entries[10]!.then = () => wheel.schedule(entries[9]!, 200);
  assert.equal(wheel.size, 51);
  now = 20;
  wheel.tick();
  const fired = entries.filter((e) => e.fired.length > 0).map((e) => e.name);
  assert.equal(fired.length, 47, 'all but the two cancelled and the one moved');
  assert.ok(!fired.includes('e48') && !fired.includes('e0') && !fired.includes('e9'));
  assert.deepEqual(late.fired, [], 'a later lap stays');
  assert.equal(wheel.size, 2, 'late and the moved one');
  now = 300;
  wheel.tick();
  assert.equal(entries[9]!.fired.length, 1);
  assert.equal(late.fired.length, 1);
  assert.equal(wheel.size, 0);
  assert.ok(entries.every((e) => e.fired.length <= 1), 'none twice');
});
