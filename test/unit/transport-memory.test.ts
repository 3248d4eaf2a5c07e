import test from 'node:test';
import assert from 'node:assert/strict';
import { createMemoryPair } from '../../src/transport/index.js';
import { RecordingHandler, frame, nextTicks, waitFor } from '../support/transport-helpers.js';

function startedPair(framing: 'stream' | 'message', highWaterMark?: number) {
  const [a, b] = createMemoryPair(framing, highWaterMark === undefined ? {} : { highWaterMark });
  const ha = new RecordingHandler();
  const hb = new RecordingHandler();
  a.start(ha);
  b.start(hb);
  return { a, b, ha, hb };
}

test('memory: stream framing delivers one tick of writes later, in order, possibly concatenated', async () => {
  const { a, b, ha, hb } = startedPair('stream');
  assert.equal(a.transport, 'memory');
  assert.equal(a.framing, 'stream');
  const frames = [frame(40, 'one'), frame(40, 'two'), frame(40, 'three')];
  a.write(frames[0]!);
  a.write(frames[1]!.subarray(0, 8), frames[1]!.subarray(8));
  a.write(frames[2]!);
  assert.equal(hb.chunks.length, 0, 'nothing is delivered synchronously');
  assert.equal(a.bufferedBytes, Buffer.concat(frames).length);
  await waitFor(() => a.bufferedBytes === 0, 'delivery');
  assert.deepEqual(hb.bytes, Buffer.concat(frames));
  assert.equal(hb.chunks.length, 1, 'one tick of writes arrives as one chunk');

  b.write(frame(21));
  await waitFor(() => ha.chunks.length === 1, 'reverse direction');
  assert.deepEqual(ha.chunks[0], frame(21));
  a.destroy('done');
  await Promise.all([ha.closed, hb.closed]);
});

test('memory: message framing delivers one call per frame', async () => {
  const { a, b, hb } = startedPair('message');
  a.write(frame(40, 'x'), Buffer.from('y'));
  a.write(frame(41, 'z'));
  await waitFor(() => hb.chunks.length === 2, 'two frames');
  assert.deepEqual(hb.chunks, [Buffer.concat([frame(40, 'x'), Buffer.from('y')]), frame(41, 'z')]);
  b.end('bye');
  assert.equal((await hb.closed).code, 'local');
});

test('memory: pause holds deliveries and resume releases them', async () => {
  const { a, b, hb } = startedPair('message');
  b.pause();
  a.write(frame(40, '1'));
  a.write(frame(40, '2'));
  await nextTicks();
  assert.equal(hb.chunks.length, 0);
  assert.ok(a.bufferedBytes > 0);
  b.resume();
  await waitFor(() => hb.chunks.length === 2, 'held frames');
  assert.equal(a.bufferedBytes, 0);
  a.destroy('done');
  await hb.closed;
});

test('memory: write returns false above the high-water mark; drain follows delivery', async () => {
  const { a, b, ha, hb } = startedPair('message', 100);
  b.pause();
  assert.equal(a.write(Buffer.alloc(60)), true);
  assert.equal(a.write(Buffer.alloc(60)), false);
  await nextTicks();
  assert.equal(ha.drains, 0, 'no drain while the peer is paused');
  b.resume();
  await waitFor(() => ha.drains === 1, 'drain');
  assert.equal(hb.chunks.length, 2);
  a.end('done');
  await Promise.all([ha.closed, hb.closed]);
});

test('memory: end flushes, then both sides close once: local and peer_closed', async () => {
  const { a, b, ha, hb } = startedPair('stream');
  a.write(frame(30, 'last'));
  a.end('bye');
  assert.equal(a.write(frame(40)), true, 'writes after end are ignored');
  assert.deepEqual(await ha.closed, { code: 'local', detail: 'bye' });
  assert.equal((await hb.closed).code, 'peer_closed');
  assert.deepEqual(hb.bytes, frame(30, 'last'));
  assert.equal(a.closed, true);
  assert.equal(b.closed, true);
  b.destroy('late');
  a.end('late');
  await nextTicks();
  assert.equal(ha.closes.length, 1);
  assert.equal(hb.closes.length, 1);
});

test('memory: destroy drops what is queued', async () => {
  const { a, ha, hb } = startedPair('stream');
  a.write(frame(40, 'dropped'));
  a.destroy('gone');
  assert.equal(a.bufferedBytes, 0);
  assert.deepEqual(await ha.closed, { code: 'local', detail: 'gone' });
  assert.equal((await hb.closed).code, 'peer_closed');
  await nextTicks();
  assert.equal(hb.chunks.length, 0);
});
