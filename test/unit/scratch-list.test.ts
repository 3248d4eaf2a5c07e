import { test } from 'node:test';
import assert from 'node:assert/strict';
import inspector from 'node:inspector/promises';
import { emptyScratch } from '../../src/broker/scratch-list.js';

test('emptyScratch empties lists of any size and they refill in order', () => {
  for (const size of [0, 1, 2, 50, 1000]) {
    const list = Array.from({ length: size }, (_, i) => i);
    emptyScratch(list);
    assert.equal(list.length, 0);
    list.push(7, 8);
    assert.deepEqual(list, [7, 8]);
  }
});

/** Bytes allocated per call of `refill`, from V8's sampling heap profiler (collected objects included). */
async function bytesPerCall(refill: (list: object[]) => void, calls: number): Promise<number> {
  const list: object[] = [{}];
  for (let i = 0; i < 10_000; i++) refill(list);
  const session = new inspector.Session();
  session.connect();
  try {
    await session.post('HeapProfiler.enable');
    await session.post('HeapProfiler.startSampling', {
      samplingInterval: 64, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true,
    });
    for (let i = 0; i < calls; i++) refill(list);
    const { profile } = await session.post('HeapProfiler.stopSampling');
    let total = 0;
    const walk = (node: inspector.HeapProfiler.SamplingHeapProfileNode): void => {
      total += node.selfSize;
      node.children.forEach(walk);
    };
    walk(profile.head);
    return total / calls;
  } finally {
    session.disconnect();
  }
}

test('a list emptied with emptyScratch is refilled without a new backing store (length = 0 drops it)', async () => {
  const target = {};
  const dropped = await bytesPerCall((list) => { list.length = 0; list.push(target); }, 100_000);
  const kept = await bytesPerCall((list) => { emptyScratch(list); list.push(target); }, 100_000);
  // length = 0 costs a fresh store per refill (152 B on Node 20); the scratch list should cost next to nothing.
  assert.ok(dropped > 64, `length = 0 allocated ${dropped.toFixed(1)} B per refill`);
  assert.ok(kept < dropped / 10, `emptyScratch allocated ${kept.toFixed(1)} B per refill, length = 0 ${dropped.toFixed(1)} B`);
});
