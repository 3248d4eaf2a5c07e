/**
 * The body of a cluster batch (src/cluster/records.ts, docs/cluster.md): frames back to back, the few with an
 * envelope listed in a table; runs of plain frames come out as one chunk; malformed bodies are refused whole.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeFrame } from '../../src/protocol/codec.js';
import { Flag } from '../../src/protocol/flags.js';
import { batchHead, envelopeEntry, readRecords } from '../../src/cluster/records.js';

type Seen = ['run', Buffer] | ['record', string | null, string | null, Buffer];

function read(batch: Buffer, offset = 0): { frames: number; seen: Seen[] } {
  const seen: Seen[] = [];
  const frames = readRecords(batch, offset, {
    run: (b, start, end) => seen.push(['run', b.subarray(start, end)]),
    record: (groups, hashKey, b, start, end) => seen.push(['record', groups, hashKey, b.subarray(start, end)]),
  });
  return { frames, seen };
}

function body(frames: Buffer[], envelopes: Map<number, [string | null, string | null]>): Buffer {
  const table: Buffer[] = [];
  let offset = 0;
  frames.forEach((f, i) => {
    const e = envelopes.get(i);
    if (e !== undefined) table.push(envelopeEntry(offset, e[0], e[1]));
    offset += f.length;
  });
  const tableBytes = Buffer.concat(table);
  return Buffer.concat([batchHead(frames.length, tableBytes.length), tableBytes, ...frames]);
}

const m = (i: number): Buffer => encodeFrame({ flag: Flag.Message, sid: `s${i}`, event: 'a.b', data: `m${i}` });

test('plain frames come out as runs; frames with an envelope alone, with their fields, in order', () => {
  const frames = [m(0), m(1), m(2), m(3), m(4), encodeFrame({ flag: Flag.Message, sid: 'big', event: 'x', data: Buffer.alloc(70_000, 7) })];
  const prefix = Buffer.from([9, 9, 9]);
  const batch = Buffer.concat([prefix, body(frames, new Map([[2, ['workers\nüßer', null]], [3, [null, '10.0.0.7']], [5, ['g', 'k']]]))]);
  const { frames: count, seen } = read(batch, prefix.length);
  assert.equal(count, 6);
  assert.deepEqual(seen, [
    ['run', Buffer.concat([frames[0], frames[1]])],
    ['record', 'workers\nüßer', null, frames[2]],
    ['record', null, '10.0.0.7', frames[3]],
    ['run', frames[4]],
    ['record', 'g', 'k', frames[5]],
  ]);
});

test('a batch without envelopes is one run; an empty body is nothing', () => {
  const frames = [m(0), m(1), m(2)];
  assert.deepEqual(read(body(frames, new Map())).seen, [['run', Buffer.concat(frames)]]);
  assert.deepEqual(read(Buffer.alloc(0)), { frames: 0, seen: [] });
});

test('malformed bodies are refused before anything is visited', () => {
  const frames = [m(0), m(1)];
  const good = body(frames, new Map([[1, ['g', null]]]));
  const tableLen = good.readUInt32BE(4);
  const bad = (mutate: (b: Buffer) => void): Buffer => {
    const b = Buffer.from(good);
    mutate(b);
    return b;
  };
  const cases: [string, Buffer][] = [
    ['truncated head', good.subarray(0, 5)],
    ['table longer than the body', bad((b) => b.writeUInt32BE(1 << 20, 4))],
    ['unknown flags', bad((b) => (b[8 + 4] = 0x80))],
    ['offset past the end', bad((b) => b.writeUInt32BE(1 << 20, 8))],
    ['offset inside a frame', bad((b) => b.writeUInt32BE(3, 8))],
    ['group length past the table', bad((b) => b.writeUInt16BE(0xfff0, 8 + 5))],
    ['a listed frame cut short', good.subarray(0, good.length - 1)],
  ];
  for (const [what, batch] of cases) assert.deepEqual(read(batch), { frames: -1, seen: [] }, what);
  assert.ok(tableLen > 0);
});

test('envelope fields are bounded', () => {
  assert.throws(() => envelopeEntry(0, 'x'.repeat(70_000), null), RangeError);
});

test('a namespace rides in the envelope (bit 2); frames without one keep the exact bytes of before', () => {
  const frames = [m(0), m(1), m(2)];
  const table = [envelopeEntry(frames[0].length, null, null, 'tenant-a'), envelopeEntry(frames[0].length + frames[1].length, 'g', 'k', 'ns.2')];
  const tableBytes = Buffer.concat(table);
  const batch = Buffer.concat([batchHead(3, tableBytes.length), tableBytes, ...frames]);
  const seen: unknown[] = [];
  const count = readRecords(batch, 0, {
    run: (b, start, end) => seen.push(['run', b.subarray(start, end)]),
    record: (groups, hashKey, b, start, end, namespace) => seen.push(['record', groups, hashKey, namespace, b.subarray(start, end)]),
  });
  assert.equal(count, 3);
  assert.deepEqual(seen, [
    ['run', frames[0]],
    ['record', null, null, 'tenant-a', frames[1]],
    ['record', 'g', 'k', 'ns.2', frames[2]],
  ]);
  // Without a namespace the entry is byte for byte what nodes without namespaces write and read.
  assert.deepEqual(envelopeEntry(7, 'g', 'k'), envelopeEntry(7, 'g', 'k', null));
  assert.equal(envelopeEntry(7, 'g', null)[4], 1);
  // An empty namespace field is malformed: the default namespace is sent without one.
  const bad = Buffer.from(envelopeEntry(0, null, null, 'x'));
  bad.writeUInt16BE(0, 5);
  const badBody = Buffer.concat([batchHead(1, bad.length - 1), bad.subarray(0, bad.length - 1), m(0)]);
  assert.equal(readRecords(badBody, 0, { run: () => assert.fail('nothing routed'), record: () => assert.fail('nothing routed') }), -1);
});
