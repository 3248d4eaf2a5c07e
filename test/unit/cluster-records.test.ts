/**
 * The records of a cluster batch (src/cluster/records.ts, docs/cluster.md): envelope then the frame's own
 * bytes; malformed input stops at the first bad record.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeFrame } from '../../src/protocol/codec.js';
import { Flag } from '../../src/protocol/flags.js';
import { PLAIN_ENVELOPE, envelope, readRecords } from '../../src/cluster/records.js';

interface Seen {
  groups: string | null;
  hashKey: string | null;
  frame: Buffer;
}

function read(batch: Buffer, offset = 0): { ok: boolean; seen: Seen[] } {
  const seen: Seen[] = [];
  const ok = readRecords(batch, offset, {
    record: (groups, hashKey, b, start, end) => seen.push({ groups, hashKey, frame: b.subarray(start, end) }),
  });
  return { ok, seen };
}

test('records carry each frame byte for byte with its envelope, in order', () => {
  const f1 = encodeFrame({ flag: Flag.Message, sid: 's1', event: 'a.b', data: 'one' });
  const f2 = encodeFrame({ flag: Flag.Request, sid: 's2', event: 'x', meta: '@=w!', data: 'two' });
  const f3 = encodeFrame({ flag: Flag.Message, sid: 's3', event: 'jobs.run', data: Buffer.alloc(70_000, 7) });
  const header = Buffer.from([1, 2, 3]);
  const batch = Buffer.concat([
    header,
    PLAIN_ENVELOPE, f1,
    envelope(null, '10.0.0.7'), f2,
    envelope('workers\nüßer', null), f3,
  ]);
  const { ok, seen } = read(batch, header.length);
  assert.equal(ok, true);
  assert.deepEqual(seen.map((s) => [s.groups, s.hashKey]), [[null, null], [null, '10.0.0.7'], ['workers\nüßer', null]]);
  assert.deepEqual(seen.map((s) => s.frame), [f1, f2, f3]);
});

test('a plain envelope is one shared byte; groups and a key together round-trip', () => {
  assert.equal(envelope(null, null), PLAIN_ENVELOPE);
  assert.equal(PLAIN_ENVELOPE.length, 1);
  const f = encodeFrame({ flag: Flag.Message, sid: 'z', event: 'e' });
  const { ok, seen } = read(Buffer.concat([envelope('g1\ng2', 'k'), f]));
  assert.equal(ok, true);
  assert.deepEqual(seen.map((s) => [s.groups, s.hashKey]), [['g1\ng2', 'k']]);
});

test('malformed batches stop at the first bad record and say so', () => {
  const f = encodeFrame({ flag: Flag.Message, sid: 's', event: 'e', data: 'd' });
  const good = Buffer.concat([PLAIN_ENVELOPE, f]);
  // Unknown envelope flags.
  assert.deepEqual(read(Buffer.concat([good, Buffer.from([0x80]), f])).seen.length, 1);
  assert.equal(read(Buffer.concat([good, Buffer.from([0x80]), f])).ok, false);
  // A frame cut short.
  const cut = read(Buffer.concat([good, PLAIN_ENVELOPE, f.subarray(0, f.length - 1)]));
  assert.deepEqual([cut.ok, cut.seen.length], [false, 1]);
  // An envelope field longer than the batch.
  const longField = Buffer.from([1, 0xff, 0xff, 65]);
  assert.deepEqual([read(longField).ok, read(longField).seen.length], [false, 0]);
  // A frame length below the prefix.
  const tiny = Buffer.from([0, 0, 0, 0, 4, 0, 0, 0, 40]);
  assert.equal(read(tiny).ok, false);
  // Empty: nothing, fine.
  assert.deepEqual(read(Buffer.alloc(0)), { ok: true, seen: [] });
});
