/**
 * Frame codec (spec §1): the reference frames, chunking independence, every limit at its boundary, zero copy
 * and the encoders.
 */
import test, { describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  FrameDecoder,
  MessageDecoder,
  bodyAfterSid,
  decodeMessage,
  encodeBare,
  encodeFrame,
  encodeHead,
  encodeReheaded,
  sharedMessageDecoder,
  type FrameSink,
} from '../../src/protocol/codec.js';
import { FrameError } from '../../src/protocol/errors.js';
import { Flag } from '../../src/protocol/flags.js';
import { Frame } from '../../src/protocol/frame.js';
import { DEFAULT_FRAME_LIMITS, MiB, type FrameLimits } from '../../src/protocol/limits.js';
import {
  RecordingSink,
  bytewise,
  decodeOneMessage,
  decodeStream,
  loadReferenceFrames,
  prng,
  randomChunks,
  splitAt,
  type DecodeEvent,
  type ErrorEvent,
  type FrameEvent,
} from '../support/fixtures.js';

const FRAMES = loadReferenceFrames();
const byName = (name: string) => {
  const f = FRAMES.find((x) => x.name === name);
  assert.ok(f, `fixture ${name} exists`);
  return f;
};

/** Decodes a buffer with a MessageDecoder and insists on a frame. */
function messageFrame(buf: Buffer, limits: FrameLimits = DEFAULT_FRAME_LIMITS): Frame {
  const out = new MessageDecoder(limits).decode(buf);
  if (out instanceof FrameError) assert.fail(`unexpected ${out.code}: ${out.message}`);
  return out;
}

/** Decodes a single frame from one chunk with a FrameDecoder and insists on exactly one frame. */
function streamFrame(buf: Buffer, limits: FrameLimits = DEFAULT_FRAME_LIMITS): Frame {
  const { sink } = decodeStream([buf], limits);
  assert.deepEqual(sink.errors.map((e) => e.code), []);
  assert.equal(sink.frames.length, 1);
  return sink.frames[0];
}

/** A frame with an arbitrary length prefix and body (for malformed input). */
function rawFrame(len: number, flag: number, body: Buffer | string = Buffer.alloc(0)): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body, 'latin1') : body;
  const head = Buffer.alloc(8);
  head.writeInt32BE(len, 0);
  head.writeInt32BE(flag, 4);
  return Buffer.concat([head, b]);
}

const msg = (sid: string, event = 'ev', meta = 'k=v', data: string | Buffer = 'data', flag: number = Flag.Message) =>
  encodeFrame({ flag, sid, event, meta, data });

function onlyFrames(events: DecodeEvent[]): FrameEvent[] {
  return events.filter((e): e is FrameEvent => e.kind === 'frame');
}

function codes(events: DecodeEvent[]): string[] {
  return events.map((e) => (e.kind === 'frame' ? `frame:${e.sid}` : `error:${e.code}`));
}

/** Asserts every way of chunking `buf` yields `expected` (or the single-chunk result when omitted). */
function assertChunkingIndependent(buf: Buffer, limits: FrameLimits, label: string, seed = 1): DecodeEvent[] {
  const single = decodeStream([buf], limits).events;
  for (let cut = 1; cut < buf.length; cut++) {
    assert.deepEqual(decodeStream(splitAt(buf, [cut]), limits).events, single, `${label}: split at ${cut}`);
  }
  assert.deepEqual(decodeStream(bytewise(buf), limits).events, single, `${label}: one byte at a time`);
  const random = prng(seed);
  for (let round = 0; round < 30; round++) {
    const maxChunk = 1 + Math.floor(random() * 64);
    assert.deepEqual(
      decodeStream(randomChunks(buf, random, maxChunk), limits).events,
      single,
      `${label}: random chunks (seed ${seed}, round ${round}, max ${maxChunk})`,
    );
  }
  return single;
}

// -----------------------------------------------------------------------------------------------------------

describe('reference frames (reference-frames.txt)', () => {
  test('the fixture file is found and parsed', () => {
    assert.ok(FRAMES.length >= 26, `expected at least 26 frames, got ${FRAMES.length}`);
    assert.equal(new Set(FRAMES.map((f) => f.name)).size, FRAMES.length, 'frame names are unique');
    for (const f of FRAMES) {
      assert.ok(f.kind in Flag, `${f.name}: kind ${f.kind} is a flag name`);
      assert.equal(f.bytes.readInt32BE(0), f.bytes.length, `${f.name}: length prefix equals the hex length`);
    }
    // All but the last JS-client Close carry a decoding comment.
    assert.deepEqual(FRAMES.filter((f) => f.expected === null).map((f) => f.name), ['h3']);
  });

  for (const f of FRAMES) {
    test(`${f.name} ${f.kind}: decodes as the comment says, raw is the input, re-encodes byte for byte`, () => {
      const flag = Flag[f.kind as keyof typeof Flag];
      const fromStream = streamFrame(f.bytes);
      const fromMessage = messageFrame(f.bytes);
      for (const [how, frame] of [['FrameDecoder', fromStream], ['MessageDecoder', fromMessage]] as const) {
        const at = `${f.name} via ${how}`;
        assert.equal(frame.flag, flag, `${at}: flag`);
        assert.ok(frame.raw !== null && frame.raw.equals(f.bytes), `${at}: raw equals the input`);
        assert.equal(frame.size, f.bytes.length, `${at}: size`);
        assert.ok(frame.raw.buffer === f.bytes.buffer && frame.raw.byteOffset === f.bytes.byteOffset, `${at}: raw is a view of the input`);
        if (f.bytes.length > 8) assert.ok(frame.data.buffer === f.bytes.buffer, `${at}: data is a view of the input`);
        const e = f.expected;
        if (e !== null) {
          assert.equal(frame.flag, e.flag, `${at}: flag number in the comment`);
          assert.equal(Flag[e.flagName as keyof typeof Flag], e.flag, `${at}: comment's flag name matches its number`);
          if (e.len !== undefined) assert.equal(f.bytes.length, e.len, `${at}: len`);
          // h1's comment has a stray space inside its 32-hex sid; sids never contain spaces.
          if (e.sid !== undefined) assert.equal(frame.sid, e.sid.replace(/\s+/g, ''), `${at}: sid`);
          if (e.event !== undefined) assert.equal(frame.event, e.event, `${at}: event`);
          if (e.meta !== undefined) assert.equal(frame.metaString, e.meta, `${at}: meta`);
          if (e.datalen !== undefined) assert.equal(frame.data.length, e.datalen, `${at}: datalen`);
          if (e.data !== undefined) assert.equal(frame.data.toString('utf8'), e.data, `${at}: data`);
          if (e.len !== 8) {
            assert.ok(e.sid !== undefined && e.event !== undefined && e.meta !== undefined && e.data !== undefined,
              `${at}: the comment names sid, event, meta and data`);
          }
        }
      }
      // Both decoders agree on everything.
      assert.deepEqual(decodeOneMessage(f.bytes, DEFAULT_FRAME_LIMITS), decodeStream([f.bytes], DEFAULT_FRAME_LIMITS).events[0]);
      // Re-encoding gives the identical bytes.
      const again = f.bytes.length === 8
        ? encodeBare(fromStream.flag)
        : encodeFrame({ flag: fromStream.flag, sid: fromStream.sid, event: fromStream.event, meta: fromStream.metaString, data: fromStream.data });
      assert.equal(again.toString('hex'), f.hex, `${f.name}: re-encoded`);
    });
  }

  test('h3 (JS client Close, no decoding comment): meta code=1000, empty sid/event/data', () => {
    const frame = streamFrame(byName('h3').bytes);
    assert.equal(frame.flag, Flag.Close);
    assert.equal(frame.sid, '');
    assert.equal(frame.event, '');
    assert.equal(frame.metaString, 'code=1000');
    assert.equal(frame.meta('code'), '1000');
    assert.equal(frame.data.length, 0);
  });

  test('Ping and Pong are bare 8-byte frames: empty sid/event/meta/data', () => {
    for (const name of ['e1', 'e2']) {
      const frame = streamFrame(byName(name).bytes);
      assert.deepEqual([frame.sid, frame.event, frame.metaString, frame.data.length], ['', '', '', 0]);
    }
  });

  test('Connect metas and the Alarm data read through Frame.meta()/metas()', () => {
    const connect = streamFrame(byName('a1').bytes);
    assert.equal(connect.meta('Socket.D'), '1.0');
    assert.deepEqual([...connect.metas()], [['Socket.D', '1.0']]);
    const alarm = streamFrame(byName('g2').bytes);
    assert.equal(alarm.meta('@'), 'nobody');
    assert.equal(alarm.meta('code'), undefined);
  });

  // The broker's forwarding hops, as captured: each pair differs only in flag and/or sid.
  for (const [from, to] of [['c1', 'c2'], ['d1', 'd2'], ['d3', 'd4'], ['d5', 'd6'], ['d7', 'd9'], ['d8', 'd10']] as const) {
    test(`forwarding ${from} -> ${to}: encodeReheaded + bodyAfterSid reproduce the captured bytes`, () => {
      const source = streamFrame(byName(from).bytes);
      const target = streamFrame(byName(to).bytes);
      assert.notEqual(source.sid, target.sid);
      const out = Buffer.concat([encodeReheaded(source, target.flag, target.sid), bodyAfterSid(source)]);
      assert.equal(out.toString('hex'), byName(to).hex);
    });
  }
});

// -----------------------------------------------------------------------------------------------------------

describe('chunking independence', () => {
  for (const f of FRAMES) {
    test(`${f.name}: every split point, byte by byte and random chunks decode the same frame`, () => {
      const single = assertChunkingIndependent(f.bytes, DEFAULT_FRAME_LIMITS, f.name, f.bytes.length);
      assert.equal(single.length, 1);
      assert.equal(single[0].kind, 'frame');
      assert.equal((single[0] as FrameEvent).raw, f.hex);
    });
  }

  test('all reference frames concatenated: every split point, byte by byte and random chunks', () => {
    const all = Buffer.concat(FRAMES.map((f) => f.bytes));
    const single = assertChunkingIndependent(all, DEFAULT_FRAME_LIMITS, 'concatenation', 42);
    assert.deepEqual(single.map((e) => (e as FrameEvent).raw), FRAMES.map((f) => f.hex));
  });

  test('all reference frames concatenated, in three chunks at many pairs of split points', () => {
    const all = Buffer.concat(FRAMES.map((f) => f.bytes));
    const single = decodeStream([all], DEFAULT_FRAME_LIMITS).events;
    for (let a = 1; a < all.length; a += 7) {
      for (let b = a + 1; b < all.length; b += 53) {
        assert.deepEqual(decodeStream(splitAt(all, [a, b]), DEFAULT_FRAME_LIMITS).events, single, `split at ${a}, ${b}`);
      }
    }
  });

  const L: FrameLimits = { maxSid: 8, maxEvent: 16, maxMeta: 24, maxData: 32, maxFrame: 200 };

  test('recoverable errors are reported between the frames around them, however chunked', () => {
    const stream = Buffer.concat([
      msg('s1'),
      msg('s2', 'e'.repeat(17)), // event_too_long
      msg('s3'),
      msg('s4', 'ev', 'm'.repeat(25)), // meta_too_long
      encodeBare(Flag.Ping),
      msg('s5', 'ev5', 'a=1', Buffer.alloc(33, 7)), // data_too_large
      msg('s6', 'ev6', '', ''),
    ]);
    const single = assertChunkingIndependent(stream, L, 'recoverable');
    assert.deepEqual(codes(single), [
      'frame:s1', 'error:event_too_long', 'frame:s3', 'error:meta_too_long', 'frame:', 'error:data_too_large', 'frame:s6',
    ]);
    const errors = single.filter((e): e is ErrorEvent => e.kind === 'error');
    assert.ok(errors.every((e) => !e.fatal));
    assert.deepEqual(errors.map((e) => [e.flag, e.sid, e.event, e.meta]), [
      [Flag.Message, 's2', '', ''],
      [Flag.Message, 's4', 'ev', ''],
      [Flag.Message, 's5', 'ev5', 'a=1'],
    ]);
  });

  test('a fatal error ends decoding at the same frame, however chunked', () => {
    const stream = Buffer.concat([
      msg('s1'),
      msg('s2', 'e'.repeat(17)),
      rawFrame(20, 77, 'abcdefghijkl'), // flag_unknown
      msg('s3'),
    ]);
    const single = assertChunkingIndependent(stream, L, 'fatal');
    assert.deepEqual(codes(single), ['frame:s1', 'error:event_too_long', 'error:flag_unknown']);
    assert.equal((single[2] as ErrorEvent).fatal, true);
    assert.equal((single[2] as ErrorEvent).flag, 77);
  });

  for (const [label, bad, code] of [
    ['sid_too_long', msg('s'.repeat(9)), 'sid_too_long'],
    ['frame_malformed', rawFrame(20, Flag.Message, 'abc\x00\ndefghi'), 'frame_malformed'],
    ['frame_length_invalid', rawFrame(12, Flag.Message, 'abcd'), 'frame_length_invalid'],
    ['frame_too_large', rawFrame(201, Flag.Message, 'x'), 'frame_too_large'],
    ['8-byte Message', encodeBare(Flag.Message), 'frame_length_invalid'],
  ] as const) {
    test(`fatal ${label} after valid frames: same position however chunked`, () => {
      const stream = Buffer.concat([msg('s1'), encodeBare(Flag.Pong), bad, msg('s2')]);
      const single = assertChunkingIndependent(stream, L, label);
      assert.deepEqual(codes(single), ['frame:s1', 'frame:', `error:${code}`]);
      assert.equal((single[2] as ErrorEvent).fatal, true);
    });
  }
});

// -----------------------------------------------------------------------------------------------------------

describe('limits', () => {
  const L: FrameLimits = { maxSid: 8, maxEvent: 16, maxMeta: 24, maxData: 32, maxFrame: 1000 };

  /** Streams `buf` then a valid frame in one chunk and byte by byte; both must agree. Returns the events. */
  function stream(buf: Buffer, limits: FrameLimits = L): DecodeEvent[] {
    const input = Buffer.concat([buf, msg('next')]);
    const single = decodeStream([input], limits).events;
    assert.deepEqual(decodeStream(bytewise(input), limits).events, single, 'byte by byte equals one chunk');
    return single;
  }

  function assertRecoverable(events: DecodeEvent[], code: string, header: [string, string, string]): void {
    assert.equal(events.length, 2, JSON.stringify(events));
    const [error, next] = events;
    assert.equal(error.kind, 'error');
    assert.equal((error as ErrorEvent).code, code);
    assert.equal((error as ErrorEvent).fatal, false);
    assert.deepEqual([(error as ErrorEvent).sid, (error as ErrorEvent).event, (error as ErrorEvent).meta], header);
    assert.equal(next.kind, 'frame');
    assert.equal((next as FrameEvent).sid, 'next', 'the next frame still decodes');
  }

  function assertFatal(events: DecodeEvent[], code: string): ErrorEvent {
    assert.equal(events.length, 1, JSON.stringify(events));
    assert.equal(events[0].kind, 'error');
    const error = events[0] as ErrorEvent;
    assert.equal(error.code, code);
    assert.equal(error.fatal, true);
    return error;
  }

  function messageError(buf: Buffer, limits: FrameLimits = L): FrameError {
    const out = new MessageDecoder(limits).decode(buf);
    assert.ok(out instanceof FrameError, `expected a FrameError, got a frame`);
    return out;
  }

  test('maxSid: at the limit decodes, one byte past is fatal sid_too_long (bytes, not characters)', () => {
    for (const sid of ['s'.repeat(8), 'éééé', '会话é']) {
      assert.equal(Buffer.byteLength(sid), 8);
      assert.equal(onlyFrames(stream(msg(sid))).map((f) => f.sid).join(), `${sid},next`);
      assert.equal(messageFrame(msg(sid), L).sid, sid);
    }
    for (const sid of ['s'.repeat(9), 'éééés', '会话会']) {
      assert.ok(Buffer.byteLength(sid) > 8);
      assertFatal(stream(msg(sid)), 'sid_too_long');
      const error = messageError(msg(sid));
      assert.equal(error.code, 'sid_too_long');
      assert.equal(error.fatal, true);
    }
  });

  test('maxSid: detected while the sid streams in, before the frame is complete', () => {
    const decoder = new FrameDecoder(L);
    const sink = new RecordingSink();
    const frame = msg('s'.repeat(9), 'ev', '', Buffer.alloc(30));
    decoder.push(frame.subarray(0, 8 + 8), sink);
    assert.equal(sink.events.length, 0, 'a sid of 8 bytes so far is fine');
    decoder.push(frame.subarray(16, 17), sink);
    assert.deepEqual(sink.errors.map((e) => e.code), ['sid_too_long']);
    assert.equal(decoder.isFailed, true);
  });

  test('maxEvent: at the limit decodes, one past is recoverable event_too_long with the sid', () => {
    assert.equal(onlyFrames(stream(msg('a', 'e'.repeat(16))))[0].event, 'e'.repeat(16));
    assert.equal(messageFrame(msg('a', 'é'.repeat(8)), L).event, 'é'.repeat(8));
    assertRecoverable(stream(msg('sid1', 'e'.repeat(17))), 'event_too_long', ['sid1', '', '']);
    assertRecoverable(stream(msg('sid1', 'é'.repeat(8) + 'x')), 'event_too_long', ['sid1', '', '']);
    const error = messageError(msg('sid1', 'e'.repeat(17)));
    assert.deepEqual([error.code, error.fatal, error.sid, error.flag], ['event_too_long', false, 'sid1', Flag.Message]);
  });

  test('maxMeta: at the limit decodes, one past is recoverable meta_too_long with sid and event', () => {
    assert.equal(onlyFrames(stream(msg('a', 'ev', 'm'.repeat(24))))[0].meta, 'm'.repeat(24));
    assert.equal(messageFrame(msg('a', 'ev', 'm'.repeat(24)), L).metaString, 'm'.repeat(24));
    assertRecoverable(stream(msg('sid1', 'ev1', 'm'.repeat(25), 'x', Flag.Request)), 'meta_too_long', ['sid1', 'ev1', '']);
    const error = messageError(msg('sid1', 'ev1', 'm'.repeat(25), 'x', Flag.Request));
    assert.deepEqual([error.code, error.fatal, error.sid, error.event, error.flag], ['meta_too_long', false, 'sid1', 'ev1', Flag.Request]);
  });

  test('maxData: at the limit decodes, one past is recoverable data_too_large with sid, event and meta', () => {
    assert.equal(onlyFrames(stream(msg('a', 'ev', 'k=v', Buffer.alloc(32, 1))))[0].data, '01'.repeat(32));
    assert.equal(messageFrame(msg('a', 'ev', 'k=v', Buffer.alloc(32, 1)), L).data.length, 32);
    assertRecoverable(stream(msg('sid1', 'ev1', '@=svc', Buffer.alloc(33))), 'data_too_large', ['sid1', 'ev1', '@=svc']);
    const error = messageError(msg('sid1', 'ev1', '@=svc', Buffer.alloc(33)));
    assert.deepEqual([error.code, error.fatal, error.sid, error.event, error.metaString], ['data_too_large', false, 'sid1', 'ev1', '@=svc']);
  });

  test('maxData: refused as soon as the meta separator arrives, before any data', () => {
    const decoder = new FrameDecoder(L);
    const sink = new RecordingSink();
    const frame = msg('sid1', 'ev1', 'm=1', Buffer.alloc(500));
    const headLen = frame.length - 500;
    decoder.push(frame.subarray(0, headLen - 1), sink);
    assert.equal(sink.events.length, 0);
    decoder.push(frame.subarray(headLen - 1, headLen), sink);
    assert.deepEqual(sink.errors.map((e) => [e.code, e.sid, e.event, e.metaString]), [['data_too_large', 'sid1', 'ev1', 'm=1']]);
    assert.equal(decoder.bufferedBytes, 0, 'the refused header is not kept');
    decoder.push(Buffer.concat([frame.subarray(headLen), msg('after')]), sink);
    assert.deepEqual(sink.frames.map((f) => f.sid), ['after']);
  });

  test('maxFrame: at the limit decodes; one past is fatal for the stream after only 4 bytes', () => {
    const limits: FrameLimits = { ...L, maxData: 10_000, maxFrame: 64 };
    const atLimit = msg('s', 'e', 'm', Buffer.alloc(64 - msg('s', 'e', 'm', '').length));
    assert.equal(atLimit.length, 64);
    assert.equal(onlyFrames(stream(atLimit, limits))[0].sid, 's');
    assert.equal(messageFrame(atLimit, limits).data.length, atLimit.length - 17);

    const over = msg('big', 'e', 'm', Buffer.alloc(65 - msg('big', 'e', 'm', '').length));
    assert.equal(over.length, 65);
    const decoder = new FrameDecoder(limits);
    const sink = new RecordingSink();
    decoder.push(over.subarray(0, 3), sink);
    assert.equal(sink.events.length, 0);
    decoder.push(over.subarray(3, 4), sink);
    assert.deepEqual(sink.errors.map((e) => [e.code, e.fatal]), [['frame_too_large', true]]);
    assertFatal(stream(over, limits), 'frame_too_large');
  });

  test('maxFrame: recoverable for the MessageDecoder, which reports the header', () => {
    const limits: FrameLimits = { ...L, maxData: 10_000, maxFrame: 64 };
    const over = msg('big', 'ev', 'm=1', Buffer.alloc(65 - msg('big', 'ev', 'm=1', '').length), Flag.Subscribe);
    const error = messageError(over, limits);
    assert.deepEqual(
      [error.code, error.fatal, error.flag, error.sid, error.event, error.metaString],
      ['frame_too_large', false, Flag.Subscribe, 'big', 'ev', 'm=1'],
    );
    // The decoder is not spoiled: the next message decodes.
    const decoder = new MessageDecoder(limits);
    assert.ok(decoder.decode(over) instanceof FrameError);
    const next = decoder.decode(msg('ok'));
    assert.ok(next instanceof Frame);
    assert.equal(next.sid, 'ok');
  });

  test('a length below 8 or between 9 and 13 is fatal frame_length_invalid, after 4 bytes', () => {
    for (const len of [-1, 0, 1, 7, 9, 10, 13, -0x80000000]) {
      const buf = rawFrame(len, Flag.Message, Buffer.from('\x00\n\x00\n\x00\n', 'latin1'));
      const decoder = new FrameDecoder(L);
      const sink = new RecordingSink();
      decoder.push(buf.subarray(0, 4), sink);
      assert.deepEqual(sink.errors.map((e) => [e.code, e.fatal]), [['frame_length_invalid', true]], `len ${len}`);
      assertFatal(stream(buf), 'frame_length_invalid');
    }
    for (const len of [9, 10, 13]) {
      const error = messageError(rawFrame(len, Flag.Message, Buffer.alloc(len - 8)));
      assert.deepEqual([error.code, error.fatal], ['frame_length_invalid', true], `message len ${len}`);
    }
    for (const size of [0, 1, 4, 7]) {
      const error = messageError(Buffer.alloc(size));
      assert.deepEqual([error.code, error.fatal], ['frame_length_invalid', true], `message of ${size} bytes`);
    }
  });

  test('the smallest message frame (14 bytes: three separators) decodes with everything empty', () => {
    const smallest = encodeFrame({ flag: Flag.Message });
    assert.equal(smallest.length, 14);
    const [frame] = onlyFrames(stream(smallest));
    assert.deepEqual([frame.sid, frame.event, frame.meta, frame.data], ['', '', '', '']);
    assert.equal(messageFrame(smallest).eventOffset, 10);
  });

  test('an unknown flag is fatal flag_unknown, detected at byte 8', () => {
    for (const flag of [0, 1, 12, 22, 33, 43, 47, 50, 255, -1, 0x7fffffff]) {
      const buf = rawFrame(20, flag, 'ab\x00\ncd\x00\nef\x00\n');
      const decoder = new FrameDecoder(L);
      const sink = new RecordingSink();
      decoder.push(buf.subarray(0, 7), sink);
      assert.equal(sink.events.length, 0);
      decoder.push(buf.subarray(7, 8), sink);
      assert.deepEqual(sink.errors.map((e) => [e.code, e.fatal, e.flag]), [['flag_unknown', true, flag]], `flag ${flag}`);
      assertFatal(stream(buf), 'flag_unknown');
      const error = messageError(buf);
      assert.deepEqual([error.code, error.fatal, error.flag], ['flag_unknown', true, flag]);
    }
  });

  test('8-byte frames: Ping, Pong and Close decode; any other flag is fatal', () => {
    for (const flag of [Flag.Ping, Flag.Pong, Flag.Close]) {
      assert.equal(onlyFrames(stream(encodeBare(flag)))[0].flag, flag);
      assert.equal(messageFrame(encodeBare(flag)).flag, flag);
    }
    for (const flag of [Flag.Message, Flag.Request, Flag.Connect, Flag.Reply, Flag.Alarm]) {
      const error = assertFatal(stream(encodeBare(flag)), 'frame_length_invalid');
      assert.equal(error.flag, flag);
      assert.deepEqual([messageError(encodeBare(flag)).code, messageError(encodeBare(flag)).fatal], ['frame_length_invalid', true]);
    }
  });

  test('a frame missing separators is fatal frame_malformed', () => {
    const bodies = [
      'abcdefghijkl', // none
      'ab\x00\ncdefgh', // one
      'ab\x00\ncd\x00\nef', // two
      'ab\x00\ncd\x00\nef\x00', // the third cut in half by the frame's end
      '\x00\n\x00\n\x0a\x00', // 0a before 00 is no separator
    ];
    for (const body of bodies) {
      const buf = rawFrame(8 + body.length, Flag.Message, body);
      assertFatal(stream(buf, DEFAULT_FRAME_LIMITS), 'frame_malformed');
      const error = messageError(buf, DEFAULT_FRAME_LIMITS);
      assert.deepEqual([error.code, error.fatal], ['frame_malformed', true], JSON.stringify(body));
    }
  });

  test('MessageDecoder: the length prefix must equal the message size', () => {
    const good = msg('s');
    const mismatch = [
      good.subarray(0, good.length - 1),
      Buffer.concat([good, Buffer.from([0])]),
      Buffer.concat([good, good]), // two frames in one message
      rawFrame(-1, Flag.Message, '\x00\n\x00\n\x00\n'),
    ];
    for (const buf of mismatch) {
      const error = messageError(buf);
      assert.deepEqual([error.code, error.fatal], ['datagram_length_mismatch', true]);
    }
    assert.equal(decodeMessage(good, L) instanceof Frame, true);
  });

  test('a 2 GB length prefix is refused after 4 bytes without allocating', () => {
    const before = process.memoryUsage().arrayBuffers;
    const decoder = new FrameDecoder(DEFAULT_FRAME_LIMITS);
    const sink = new RecordingSink();
    decoder.push(Buffer.from([0x7f, 0xff, 0xff, 0xff]), sink);
    assert.deepEqual(sink.errors.map((e) => [e.code, e.fatal]), [['frame_too_large', true]]);
    assert.equal(decoder.bufferedBytes, 0);
    const grown = process.memoryUsage().arrayBuffers - before;
    assert.ok(grown < 4 * MiB, `arrayBuffers grew by ${grown} bytes`);
    // Also when the prefix arrives together with more bytes.
    const again = decodeStream([rawFrame(0x7fffffff, Flag.Message, 'sid\x00\nev\x00\n')], DEFAULT_FRAME_LIMITS);
    assert.deepEqual(codes(again.events), ['error:frame_too_large']);
    assert.ok(process.memoryUsage().arrayBuffers - before < 4 * MiB);
  });

  test('a frame within maxFrame is buffered only as far as it has arrived', () => {
    const decoder = new FrameDecoder(DEFAULT_FRAME_LIMITS);
    const sink = new RecordingSink();
    const head = encodeHead(Flag.Message, 'sid', 'ev', '', 16 * MiB);
    decoder.push(head, sink);
    assert.equal(decoder.bufferedBytes, head.length);
    decoder.push(Buffer.alloc(1000), sink);
    assert.equal(decoder.bufferedBytes, head.length + 1000);
    assert.equal(sink.events.length, 0);
  });

  test('after a fatal error further pushes yield nothing', () => {
    for (const bad of [encodeBare(Flag.Message), rawFrame(3, 0), msg('s'.repeat(9)), rawFrame(20, 99, 'x'.repeat(12))]) {
      const decoder = new FrameDecoder(L);
      const sink = new RecordingSink();
      decoder.push(bad, sink);
      assert.equal(sink.errors.length, 1);
      assert.equal(decoder.isFailed, true);
      decoder.push(msg('later'), sink);
      decoder.push(encodeBare(Flag.Ping), sink);
      decoder.push(rawFrame(5, 99), sink);
      assert.equal(sink.events.length, 1, 'nothing after the fatal error');
      assert.equal(decoder.bufferedBytes, 0);
    }
  });

  test('a refused frame of ~16 MiB is skipped without buffering its remaining bytes', () => {
    const limits: FrameLimits = { maxSid: 64, maxEvent: 512, maxMeta: 4096, maxData: 1000, maxFrame: 17 * MiB };
    const dataLen = 16 * MiB + 12_345;
    for (const [label, head, code] of [
      ['data_too_large', encodeHead(Flag.Message, 'big', 'ev', 'm=1', dataLen), 'data_too_large'],
      ['event_too_long', encodeHead(Flag.Message, 'big', 'e'.repeat(513), 'm=1', dataLen), 'event_too_long'],
    ] as const) {
      const decoder = new FrameDecoder(limits);
      const sink = new RecordingSink();
      decoder.push(head, sink);
      assert.deepEqual(sink.errors.map((e) => [e.code, e.fatal, e.sid]), [[code, false, 'big']], label);
      const piece = Buffer.alloc(64 * 1024, 0x41);
      let left = dataLen;
      let maxBuffered = 0;
      while (left > piece.length) {
        decoder.push(piece, sink);
        maxBuffered = Math.max(maxBuffered, decoder.bufferedBytes);
        left -= piece.length;
      }
      assert.equal(maxBuffered, 0, `${label}: nothing of the refused frame is buffered`);
      // The last bytes of the refused frame arrive together with the next frame.
      decoder.push(Buffer.concat([Buffer.alloc(left, 0x41), msg('next', 'ev', '', 'after')]), sink);
      assert.deepEqual(sink.frames.map((f) => [f.sid, f.data.toString()]), [['next', 'after']], label);
      assert.equal(sink.errors.length, 1);
      assert.equal(decoder.bufferedBytes, 0);
    }
  });
});

// -----------------------------------------------------------------------------------------------------------

describe('zero copy and encoders', () => {
  test('frames decoded from one chunk are views of that chunk', () => {
    const chunk = Buffer.concat([msg('a', 'e1', 'k=1', 'one'), encodeBare(Flag.Ping), msg('b', 'e2', '', 'two')]);
    const { sink } = decodeStream([chunk], DEFAULT_FRAME_LIMITS);
    assert.equal(sink.frames.length, 3);
    let offset = 0;
    for (const frame of sink.frames) {
      assert.ok(frame.raw !== null);
      assert.ok(frame.raw.buffer === chunk.buffer, 'raw is a view');
      // (an 8-byte frame has no data section to view)
      if (frame.raw.length > 8) assert.ok(frame.data.buffer === chunk.buffer, 'data is a view');
      assert.equal(frame.raw.byteOffset, chunk.byteOffset + offset);
      offset += frame.raw.length;
    }
    const fromMessage = messageFrame(msg('a', 'e', 'm', 'payload'));
    assert.ok(fromMessage.raw !== null);
    assert.ok(fromMessage.data.buffer === fromMessage.raw.buffer);
  });

  test('frames decoded from one chunk refer to it by offset: source, start, size and end', () => {
    const parts = [msg('a', 'e1', 'k=1', 'one'), encodeBare(Flag.Ping), msg('bb', 'évé', '', 'two')];
    const chunk = Buffer.concat(parts);
    const { sink } = decodeStream([chunk], DEFAULT_FRAME_LIMITS);
    let offset = 0;
    sink.frames.forEach((frame, i) => {
      assert.ok(frame.source === chunk, 'no view is made per frame');
      assert.equal(frame.start, offset);
      assert.equal(frame.size, parts[i]!.length);
      assert.equal(frame.end, offset + parts[i]!.length);
      assert.ok(chunk.subarray(frame.start, frame.end).equals(parts[i]!));
      offset = frame.end;
    });
    assert.equal(sink.frames[2]!.eventBytes().toString(), 'évé');
    // A frame that is a whole buffer is its own raw.
    const whole = msg('s', 'e', '', 'x');
    assert.ok(messageFrame(whole).raw === whole);
  });

  test('a large frame over several chunks is kept as those chunks (parts), not copied; small ones are joined', () => {
    const data = Buffer.alloc(200 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 255;
    const big = msg('s1', 'big.event', 'k=v', data);
    const small = msg('s2', 'e', '', 'tail');
    const stream = Buffer.concat([small, big, small]);
    // Cut so that the big frame starts inside the first chunk, with its header whole there.
    const cuts = [small.length + 40, small.length + 70_000, small.length + 140_000, stream.length];
    const chunks = cuts.map((end, i) => stream.subarray(i === 0 ? 0 : cuts[i - 1], end));
    const frames = decodeStream(chunks, DEFAULT_FRAME_LIMITS).sink.frames;
    assert.equal(frames.length, 3);
    const f = frames[1]!;
    assert.ok(f.parts !== null, 'kept in parts');
    assert.equal(f.parts.length, 4);
    f.parts.forEach((part, i) => assert.ok(part.buffer === chunks[i]!.buffer, `part ${i} is a view of chunk ${i}`));
    assert.equal(f.parts.reduce((n, p) => n + p.length, 0), big.length);
    assert.equal(f.size, big.length);
    assert.deepEqual([f.sid, f.event, f.metaString], ['s1', 'big.event', 'k=v']);
    assert.ok(f.raw.equals(big), 'raw joins the parts');
    assert.ok(f.data.equals(data));
    assert.ok(Buffer.concat([encodeReheaded(f, Flag.Reply, 'x'), bodyAfterSid(f)]).equals(encodeFrame({ flag: Flag.Reply, sid: 'x', event: 'big.event', meta: 'k=v', data })));
    assert.equal(frames[0]!.parts, null);
    assert.equal(frames[2]!.parts, null);
    assert.equal(frames[2]!.data.toString(), 'tail');
    // The header split over two chunks: joined into one buffer instead.
    const split = decodeStream([stream.subarray(0, small.length + 9), stream.subarray(small.length + 9)], DEFAULT_FRAME_LIMITS).sink.frames;
    assert.equal(split[1]!.parts, null);
    assert.ok(split[1]!.raw.equals(big));
    // Below PARTS_MIN_BYTES: joined too.
    const medium = msg('m', 'e', '', Buffer.alloc(10_000, 1));
    const joined = decodeStream([medium.subarray(0, 5000), medium.subarray(5000)], DEFAULT_FRAME_LIMITS).sink.frames;
    assert.equal(joined[0]!.parts, null);
    assert.ok(joined[0]!.raw.equals(medium));
  });

  test('MessageDecoder.decodeParts: a message in parts keeps them when the first holds the header; decode() otherwise', () => {
    const data = Buffer.alloc(150 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 13) & 255;
    const big = msg('s9', 'ws.big', 'a=b', data);
    const decoder = new MessageDecoder(DEFAULT_FRAME_LIMITS);
    const parts = [big.subarray(0, 30_000), big.subarray(30_000, 100_000), big.subarray(100_000)];
    const f = decoder.decodeParts(parts, big.length);
    if (f instanceof FrameError) assert.fail(f.message);
    assert.ok(f.parts !== null && f.parts.length === 3, 'kept in parts');
    f.parts.forEach((part, i) => assert.equal(part, parts[i], `part ${i} is the buffer given`));
    assert.deepEqual([f.sid, f.event, f.metaString, f.size], ['s9', 'ws.big', 'a=b', big.length]);
    assert.ok(f.data.equals(data));
    // The header split between the first two parts: joined, the same frame.
    const split = decoder.decodeParts([big.subarray(0, 12), big.subarray(12)], big.length);
    if (split instanceof FrameError) assert.fail(split.message);
    assert.equal(split.parts, null);
    assert.ok(split.raw.equals(big));
    // The checks are decode()'s: the size against the prefix, and the limits (recoverable, with the header).
    const mismatch = decoder.decodeParts(parts, big.length + 1);
    assert.ok(mismatch instanceof FrameError && mismatch.code === 'datagram_length_mismatch' && mismatch.fatal);
    const tight = new MessageDecoder({ ...DEFAULT_FRAME_LIMITS, maxData: 100_000 }).decodeParts(parts, big.length);
    assert.ok(tight instanceof FrameError && tight.code === 'data_too_large' && !tight.fatal);
    assert.equal(tight.sid, 's9');
  });

  test('sharedMessageDecoder: one per limits object, and decoding for many connections in turn leaks nothing', () => {
    const limits = { ...DEFAULT_FRAME_LIMITS };
    const shared = sharedMessageDecoder(limits);
    assert.equal(sharedMessageDecoder(limits), shared);
    assert.notEqual(sharedMessageDecoder({ ...limits }), shared, 'other limits, another decoder');
    // A refused frame (its header read into the scanner) between two good ones of other connections.
    const a = msg('a1', 'ev.a', 'x=1', 'alpha');
    const bad = msg('b1', 'e'.repeat(limits.maxEvent + 1), '', 'beta');
    const c = msg('c1', 'ev.c', '', 'gamma');
    const first = shared.decode(a);
    const refused = shared.decode(bad);
    const third = shared.decode(c);
    assert.ok(first instanceof Frame && third instanceof Frame);
    assert.ok(refused instanceof FrameError && refused.code === 'event_too_long');
    assert.deepEqual([first.sid, first.event, first.metaString, first.data.toString()], ['a1', 'ev.a', 'x=1', 'alpha']);
    assert.deepEqual([third.sid, third.event, third.metaString, third.data.toString()], ['c1', 'ev.c', '', 'gamma']);
  });

  test('adoptEvent takes a known event without decoding only when the bytes are equal', () => {
    const chunk = Buffer.concat([msg('a', 'orders.eu', '', '1'), msg('b', 'orders.us', '', '2'), msg('c', 'orders.eu.x', '', '3'), msg('d', 'orders.eu', '', '4')]);
    const frames = decodeStream([chunk], DEFAULT_FRAME_LIMITS).sink.frames;
    const known = 'orders.eu';
    const bytes = Buffer.from(known);
    assert.equal(frames[0]!.adoptEvent(known, bytes), true);
    assert.ok(frames[0]!.event === known, 'the adopted string itself');
    assert.equal(frames[1]!.adoptEvent(known, bytes), false, 'same length, other bytes');
    assert.equal(frames[1]!.event, 'orders.us', 'a refused adoption changes nothing');
    assert.equal(frames[2]!.adoptEvent(known, bytes), false, 'a longer event with the same prefix');
    assert.equal(frames[2]!.event, 'orders.eu.x');
    // Once decoded, the event is compared as a string.
    assert.equal(frames[3]!.event, 'orders.eu');
    assert.equal(frames[3]!.adoptEvent(known, bytes), true);
    assert.equal(frames[3]!.adoptEvent('other', Buffer.from('other')), false);
    // Multi-byte events compare by their UTF-8 bytes.
    const accented = messageFrame(msg('s', 'café.menu', '', ''));
    assert.equal(accented.adoptEvent('café.menu', Buffer.from('café.menu')), true);
  });

  test('frames after a frame that completes a partial one are still decoded correctly', () => {
    const a = msg('a', 'e', '', 'A'.repeat(20));
    const b = msg('b', 'e', '', 'B');
    const c = msg('c', 'e', '', 'C');
    const second = Buffer.concat([a.subarray(10), b, c]);
    const { sink } = decodeStream([a.subarray(0, 10), second], DEFAULT_FRAME_LIMITS);
    assert.deepEqual(sink.frames.map((f) => [f.sid, f.data.toString()]), [['a', 'A'.repeat(20)], ['b', 'B'], ['c', 'C']]);
    // b and c were whole in the second chunk: still views of it.
    assert.ok(sink.frames[1].data.buffer === second.buffer);
    assert.ok(sink.frames[2].data.buffer === second.buffer);
  });

  const cases: [string, string, string, Buffer][] = [
    ['', '', '', Buffer.alloc(0)],
    ['sid', 'event', 'a=1&b=2', Buffer.from('hello')],
    ['会话', 'événement/✓', '@=svc&名=值', Buffer.from([0, 10, 0, 10, 255])],
    ['x'.repeat(64), 'e'.repeat(512), 'm'.repeat(100), Buffer.alloc(3000, 9)],
    ['🙂', '\u0000x', 'k=\n', Buffer.from('\u0000\n')],
  ];

  test('encodeHead + data gives the same bytes as encodeFrame', () => {
    for (const [sid, event, meta, data] of cases) {
      for (const flag of [Flag.Message, Flag.Reply, Flag.Connect]) {
        const head = encodeHead(flag, sid, event, meta, data.length);
        const whole = encodeFrame({ flag, sid, event, meta, data });
        assert.ok(Buffer.concat([head, data]).equals(whole), JSON.stringify([sid, event, meta]));
        assert.equal(whole.readInt32BE(0), whole.length);
        const back = messageFrame(whole);
        assert.deepEqual([back.flag, back.sid, back.event, back.metaString, back.data.toString('hex')], [flag, sid, event, meta, data.toString('hex')]);
      }
    }
  });

  test('encodeFrame takes data as Buffer, Uint8Array view, string or nothing', () => {
    const bytes = Buffer.from('payload');
    const backing = new Uint8Array([9, 9, ...bytes, 9]);
    const view = new Uint8Array(backing.buffer, 2, bytes.length);
    const expected = encodeFrame({ flag: Flag.Message, sid: 's', event: 'e', meta: 'm', data: bytes }).toString('hex');
    assert.equal(encodeFrame({ flag: Flag.Message, sid: 's', event: 'e', meta: 'm', data: view }).toString('hex'), expected);
    assert.equal(encodeFrame({ flag: Flag.Message, sid: 's', event: 'e', meta: 'm', data: 'payload' }).toString('hex'), expected);
    assert.equal(
      encodeFrame({ flag: Flag.Close, meta: 'code=1001' }).toString('hex'),
      byName('f1').hex,
      'a Close with only meta matches the reference',
    );
  });

  test('encodeBare gives the reference Ping and Pong', () => {
    assert.equal(encodeBare(Flag.Ping).toString('hex'), byName('e1').hex);
    assert.equal(encodeBare(Flag.Pong).toString('hex'), byName('e2').hex);
  });

  test('encodeReheaded + bodyAfterSid = encodeFrame with the new flag/sid and the old event/meta/data', () => {
    const sids = ['', 'a', '0123456789abcdef0123456789abcdef', 'x'.repeat(64), '会话-é', '🙂🙂'];
    for (const [oldSid, event, meta, data] of cases) {
      for (const source of [oldSid, ...sids]) {
        const original = encodeFrame({ flag: Flag.Request, sid: source, event, meta, data });
        // From a stream chunk and from a message, so raw is a view with an offset in both cases.
        const framed = decodeStream([Buffer.concat([encodeBare(Flag.Ping), original])], DEFAULT_FRAME_LIMITS).sink.frames[1];
        assert.equal(framed.eventOffset, 8 + Buffer.byteLength(source) + 2);
        for (const newSid of sids) {
          for (const newFlag of [Flag.Request, Flag.Reply, Flag.ReplyEnd]) {
            const out = Buffer.concat([encodeReheaded(framed, newFlag, newSid), bodyAfterSid(framed)]);
            const expected = encodeFrame({ flag: newFlag, sid: newSid, event, meta, data });
            assert.equal(out.toString('hex'), expected.toString('hex'), JSON.stringify([source, newSid, event]));
          }
        }
        assert.ok(bodyAfterSid(framed).buffer === framed.raw!.buffer, 'the body is a view, not a copy');
      }
    }
  });
});

// -----------------------------------------------------------------------------------------------------------

describe('sink interaction', () => {
  class StoppingSink implements FrameSink {
    readonly seen: string[] = [];
    constructor(private readonly decoder: () => FrameDecoder, private readonly stopAfter: number) {}
    onFrame(frame: Frame): void {
      this.seen.push(`frame:${frame.flag}:${frame.sid}`);
      if (this.seen.length === this.stopAfter) this.decoder().stop();
    }
    onFrameError(error: FrameError): void {
      this.seen.push(`error:${error.code}`);
      if (this.seen.length === this.stopAfter) this.decoder().stop();
    }
  }

  const chunk = Buffer.concat([msg('a'), encodeBare(Flag.Ping), msg('b', 'e'.repeat(600)), msg('c'), msg('d').subarray(0, 20)]);

  for (let stopAfter = 1; stopAfter <= 4; stopAfter++) {
    test(`stop() from inside the sink (after event ${stopAfter}) ends decoding of the current chunk`, () => {
      let decoder!: FrameDecoder;
      const sink = new StoppingSink(() => decoder, stopAfter);
      decoder = new FrameDecoder(DEFAULT_FRAME_LIMITS);
      decoder.push(chunk, sink);
      const all = ['frame:40:a', 'frame:20:', 'error:event_too_long', 'frame:40:c'];
      assert.deepEqual(sink.seen, all.slice(0, stopAfter));
      assert.equal(decoder.isFailed, true);
      assert.equal(decoder.bufferedBytes, 0);
      decoder.push(msg('later'), sink);
      assert.deepEqual(sink.seen, all.slice(0, stopAfter));
    });
  }
});
