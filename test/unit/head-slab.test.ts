/**
 * The head slab (src/broker/head-slab.ts) and the stream ids of the stream table (src/broker/streams.ts):
 * heads written into the slab are byte for byte those encodeReheaded makes, a head is never overwritten by
 * later ones, and a responder's sid maps back to its stream id only when it is exactly one this run made.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { decodeMessage, encodeFrame, encodeReheaded } from '../../src/protocol/codec.js';
import type { Frame } from '../../src/protocol/frame.js';
import { DEFAULT_FRAME_LIMITS } from '../../src/protocol/limits.js';
import { Flag } from '../../src/protocol/flags.js';
import { HeadSlab, decimalDigits } from '../../src/broker/head-slab.js';
import { StreamTable } from '../../src/broker/streams.js';
import { TimerWheel } from '../../src/broker/timer-wheel.js';
import { BrokerStats } from '../../src/broker/stats.js';

function frameOf(fields: Parameters<typeof encodeFrame>[0]): Frame {
  const frame = decodeMessage(encodeFrame(fields), DEFAULT_FRAME_LIMITS);
  if (!('flag' in frame) || frame instanceof Error) throw new Error('not a frame');
  return frame;
}

const lastHead = (slab: HeadSlab): Buffer => Buffer.from(slab.buffer.subarray(slab.start, slab.end));

test('rehead and reheadWithId write the heads encodeReheaded makes', () => {
  const frame = frameOf({ flag: Flag.Request, sid: 'client-sid-1', event: 'orders.new', meta: 'a=1', data: 'payload' });
  const slab = new HeadSlab();
  slab.rehead(frame, Flag.Request, 'b1x.42');
  assert.deepEqual(lastHead(slab), encodeReheaded(frame, Flag.Request, 'b1x.42'));
  slab.rehead(frame, Flag.ReplyEnd, 'sïd-ünicode');
  assert.deepEqual(lastHead(slab), encodeReheaded(frame, Flag.ReplyEnd, 'sïd-ünicode'));
  const prefix = Buffer.from('b1x.', 'latin1');
  for (const id of [0, 7, 10, 99, 100, 123456789, 2 ** 40 + 3, Number.MAX_SAFE_INTEGER]) {
    slab.reheadWithId(frame, Flag.Request, prefix, id);
    assert.deepEqual(lastHead(slab), encodeReheaded(frame, Flag.Request, `b1x.${id}`), `id ${id}`);
  }
});

test('heads already written stay intact while later ones fill and replace slabs', () => {
  const frame = frameOf({ flag: Flag.Reply, sid: 's', event: 'e', data: 'x' });
  const slab = new HeadSlab();
  const written: { buffer: Buffer; start: number; end: number; sid: string }[] = [];
  for (let i = 0; i < 3000; i++) {
    const sid = `sid-${i}-${'z'.repeat(i % 40)}`;
    slab.rehead(frame, Flag.Reply, sid);
    written.push({ buffer: slab.buffer, start: slab.start, end: slab.end, sid });
  }
  assert.ok(new Set(written.map((w) => w.buffer)).size > 1, 'several slabs were used');
  for (const w of written) assert.deepEqual(Buffer.from(w.buffer.subarray(w.start, w.end)), encodeReheaded(frame, Flag.Reply, w.sid));
});

test('a head larger than a quarter slab gets a buffer of its own, and the next head a new slab', () => {
  const frame = frameOf({ flag: Flag.Reply, sid: 's', event: 'e' });
  const slab = new HeadSlab();
  slab.rehead(frame, Flag.Reply, 'small');
  const first = slab.buffer;
  const long = 'L'.repeat(3000);
  slab.rehead(frame, Flag.Reply, long);
  assert.notEqual(slab.buffer, first);
  assert.deepEqual(lastHead(slab), encodeReheaded(frame, Flag.Reply, long));
  const own = slab.buffer;
  slab.rehead(frame, Flag.Reply, 'after');
  assert.notEqual(slab.buffer, own);
  assert.deepEqual(lastHead(slab), encodeReheaded(frame, Flag.Reply, 'after'));
});

test('decimalDigits', () => {
  for (const n of [0, 1, 9, 10, 99, 100, 999_999, 1_000_000, 2 ** 31, Number.MAX_SAFE_INTEGER]) {
    assert.equal(decimalDigits(n), String(n).length, `n = ${n}`);
  }
});

test('a reply sid maps back to its stream id only when it is a sid this run made', () => {
  const table = new StreamTable(new TimerWheel(10), new HeadSlab(), new BrokerStats());
  const reply = (sid: string): Frame => frameOf({ flag: Flag.Reply, sid, event: 'e' });
  for (const id of [0, 5, 10, 4096, 123456789012]) assert.equal(table.idIn(reply(table.sidOf(id))), id);
  const prefix = table.prefix.toString('latin1');
  for (const sid of ['', prefix, `${prefix}x`, `${prefix}1x`, `${prefix}-1`, `${prefix}01`, `${prefix}00`,
    `${prefix}1234567890123456`, `x${prefix.slice(1)}5`, 'client-sid', `${prefix.slice(0, -1)}5`]) {
    assert.equal(table.idIn(reply(sid)), -1, `sid '${sid}'`);
  }
  const ids = [table.nextId(), table.nextId(), table.nextId()];
  assert.deepEqual(ids, [ids[0], ids[0]! + 1, ids[0]! + 2]);
});

test('idIn maps a sid to an id only when sidOf(id) gives back that very sid (10,000 random sids)', () => {
  const table = new StreamTable(new TimerWheel(10), new HeadSlab(), new BrokerStats());
  const prefix = table.prefix.toString('latin1');
  // Sids built from pieces that come close: the prefix or a part of it, digits (leading zeros too), others.
  const pieces = [prefix, prefix.slice(0, -1), prefix.slice(1), '0', '1', '9', '00', '42', '-', '.', 'b', 'x', ' '];
  let seed = 12345;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  let matched = 0;
  for (let i = 0; i < 10_000; i++) {
    let sid = random(2) === 0 ? prefix : '';
    for (let k = random(5); k > 0; k--) sid += pieces[random(pieces.length)];
    if (sid.length === 0 || sid.length > 64) continue;
    const id = table.idIn(frameOf({ flag: Flag.Reply, sid, event: 'e' }));
    if (id === -1) continue;
    matched++;
    assert.equal(table.sidOf(id), sid, `sid '${sid}' read as ${id}`);
  }
  assert.ok(matched > 100, `some random sids were stream sids (${matched})`);
});
