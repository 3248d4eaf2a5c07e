/**
 * The shared end-of-tick flush (src/transport/tick-flush.ts) keeps the order and timing of one setImmediate
 * per connection, with one setImmediate for all of them.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { flushAtTickEnd, runQueue, type TickFlushable } from '../../src/transport/tick-flush.js';

const nextCheckPhase = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('connections flush in the check phase, in the order they queued, once each', async () => {
  const order: string[] = [];
  const a: TickFlushable = { flushTick: () => order.push('a') };
  const b: TickFlushable = { flushTick: () => order.push('b') };
  flushAtTickEnd(a);
  flushAtTickEnd(b);
  assert.deepEqual(order, [], 'nothing is flushed synchronously');
  await Promise.resolve();
  assert.deepEqual(order, [], 'nor in a microtask');
  await nextCheckPhase();
  assert.deepEqual(order, ['a', 'b']);
  await nextCheckPhase();
  assert.deepEqual(order, ['a', 'b'], 'each flushed once');
});

test('one setImmediate for all the connections of a tick', async (t) => {
  const real = globalThis.setImmediate;
  let calls = 0;
  t.mock.method(globalThis, 'setImmediate', ((fn: (...args: unknown[]) => void, ...args: unknown[]) => {
    calls++;
    return real(fn, ...args);
  }) as typeof setImmediate);
  let flushed = 0;
  for (let i = 0; i < 50; i++) flushAtTickEnd({ flushTick: () => flushed++ });
  t.mock.restoreAll();
  assert.equal(calls, 1);
  await nextCheckPhase();
  assert.equal(flushed, 50);
});

test('a connection queued while the flush runs is flushed in the next check phase, as with setImmediate', async () => {
  const order: string[] = [];
  const late: TickFlushable = { flushTick: () => order.push('late') };
  flushAtTickEnd({
    flushTick: () => {
      order.push('first');
      flushAtTickEnd(late);
    },
  });
  // This immediate is scheduled after the queue's: it runs in the same check phase, before `late`.
  setImmediate(() => order.push('same phase'));
  await nextCheckPhase();
  await nextCheckPhase();
  assert.deepEqual(order, ['first', 'same phase', 'late']);
});

test('a flush that throws does not strand the others: they flush in the next check phase', async () => {
  const flushed: string[] = [];
  flushAtTickEnd({ flushTick: () => flushed.push('before') });
  flushAtTickEnd({
    flushTick: () => {
      throw new Error('a bug in a flush');
    },
  });
  flushAtTickEnd({ flushTick: () => flushed.push('after') });
  // Run the queue now (as its setImmediate would) to see the throw here rather than as an uncaught exception.
  assert.throws(() => runQueue(), /a bug in a flush/);
  assert.deepEqual(flushed, ['before']);
  await nextCheckPhase();
  assert.deepEqual(flushed, ['before', 'after']);
});
