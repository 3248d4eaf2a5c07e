/**
 * The client's request timeouts on one timer (Deadlines) and its per-tick clock (TickClock).
 */
import test, { describe } from 'node:test';
import assert from 'node:assert/strict';
import { Deadlines, type DeadlineList, type DeadlineOwner, type Timed } from '../../src/client/deadlines.js';
import { TickClock } from '../../src/client/tick.js';

class Entry implements Timed {
  deadline = 0;
  deadlineList: DeadlineList | null = null;
  prevTimed: Timed | null = null;
  nextTimed: Timed | null = null;
  addedAt = 0;
  constructor(readonly name: string) {}
}

class Recorder implements DeadlineOwner {
  expired: { name: string; after: number }[] = [];
  onExpire: ((entry: Entry) => void) | null = null;
  deadlineExpired(entry: Timed): void {
    const e = entry as Entry;
    this.expired.push({ name: e.name, after: performance.now() - e.addedAt });
    this.onExpire?.(e);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function add(deadlines: Deadlines, entry: Entry, timeout: number): Entry {
  entry.addedAt = performance.now();
  deadlines.add(entry, timeout);
  return entry;
}

function timers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

describe('client: Deadlines', () => {
  test('entries expire once their timeout has passed, in deadline order across timeout values', async () => {
    const owner = new Recorder();
    const deadlines = new Deadlines(owner, new TickClock());
    add(deadlines, new Entry('a60'), 60);
    add(deadlines, new Entry('b20'), 20);
    add(deadlines, new Entry('c40'), 40);
    add(deadlines, new Entry('d20'), 20);
    assert.equal(deadlines.size, 4);
    await sleep(120);
    assert.deepEqual(owner.expired.map((e) => e.name), ['b20', 'd20', 'c40', 'a60']);
    const timeouts: Record<string, number> = { a60: 60, b20: 20, c40: 40, d20: 20 };
    for (const e of owner.expired) assert.ok(e.after >= timeouts[e.name]! - 1, `${e.name} expired after ${e.after} ms`);
    assert.equal(deadlines.size, 0);
  });

  test('removed entries never expire; the others still do', async () => {
    const owner = new Recorder();
    const deadlines = new Deadlines(owner, new TickClock());
    const entries = Array.from({ length: 6 }, (_, i) => add(deadlines, new Entry(`e${i}`), 30));
    for (const i of [0, 2, 3, 5]) deadlines.remove(entries[i]!);
    deadlines.remove(entries[0]!); // twice: nothing
    assert.equal(deadlines.size, 2);
    await sleep(70);
    assert.deepEqual(owner.expired.map((e) => e.name), ['e1', 'e4']);
  });

  test('an entry added after the others with a shorter timeout re-arms the timer earlier', async () => {
    const owner = new Recorder();
    const deadlines = new Deadlines(owner, new TickClock());
    add(deadlines, new Entry('long'), 1000);
    await sleep(5);
    add(deadlines, new Entry('short'), 20);
    await sleep(80);
    assert.deepEqual(owner.expired.map((e) => e.name), ['short']);
    deadlines.clear();
  });

  test('entries added while expiring are scheduled', async () => {
    const owner = new Recorder();
    const deadlines = new Deadlines(owner, new TickClock());
    owner.onExpire = (e) => {
      if (e.name === 'first') add(deadlines, new Entry('second'), 20);
    };
    add(deadlines, new Entry('first'), 20);
    await sleep(100);
    assert.deepEqual(owner.expired.map((e) => e.name), ['first', 'second']);
  });

  test('the timer keeps the process alive only while something is scheduled; clear() stops it', async () => {
    const before = timers();
    const owner = new Recorder();
    const deadlines = new Deadlines(owner, new TickClock());
    const a = add(deadlines, new Entry('a'), 5000);
    assert.equal(timers(), before + 1);
    deadlines.remove(a);
    assert.equal(timers(), before, 'unref\'d while empty');
    const b = add(deadlines, new Entry('b'), 5000);
    assert.equal(timers(), before + 1, 'ref\'d again');
    deadlines.clear();
    assert.equal(timers(), before);
    assert.equal(deadlines.size, 0);
    assert.equal(b.deadlineList, null);
    await sleep(20);
    assert.deepEqual(owner.expired, []);
  });
});

describe('client: TickClock', () => {
  test('one reading per tick, a fresh one on the next tick', async () => {
    const clock = new TickClock();
    const first = clock.now();
    const spin = performance.now() + 5;
    while (performance.now() < spin) {
      // the tick goes on
    }
    assert.equal(clock.now(), first);
    await new Promise((resolve) => setTimeout(resolve, 2));
    assert.ok(clock.now() > first);
  });
});
