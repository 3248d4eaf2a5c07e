/**
 * Property tests of the frame codec (fast-check). fast-check prints the seed and the shrunk counterexample on
 * failure; replay with `fc.assert(..., { seed, path })`.
 *
 *  (a) valid frames, encoded, concatenated and fed in any chunking, decode back to the same frames;
 *  (b) mutated input never makes a decoder throw, hang or buffer more than maxFrame + one chunk, and ends in
 *      frames and/or errors, at most one fatal error and nothing after it;
 *  (c) mutated input decodes the same however it is chunked, and a single whole frame decodes the same with
 *      the stream and the message decoders.
 */
import test, { describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FrameDecoder, MessageDecoder, encodeBare, encodeFrame } from '../../src/protocol/codec.js';
import { FrameError } from '../../src/protocol/errors.js';
import { Flag, isKnownFlag } from '../../src/protocol/flags.js';
import { Frame } from '../../src/protocol/frame.js';
import { DEFAULT_FRAME_LIMITS, type FrameLimits } from '../../src/protocol/limits.js';
import {
  RecordingSink,
  bytewise,
  decodeOneMessage,
  decodeStream,
  type DecodeEvent,
  type FrameEvent,
} from '../support/fixtures.js';

/** FUZZ_SCALE=20 multiplies every numRuns, for a longer campaign than the default ~3 s. */
const SCALE = Math.max(1, Number(process.env.FUZZ_SCALE ?? 1) || 1);
const runs = (n: number) => ({ numRuns: n * SCALE });

const FLAGS = Object.values(Flag) as number[];
const BARE_FLAGS = [Flag.Ping, Flag.Pong, Flag.Close] as number[];

interface Spec {
  flag: number;
  bare: boolean;
  sid: string;
  event: string;
  meta: string;
  data: Uint8Array;
}

function encodeSpec(s: Spec): Buffer {
  return s.bare ? encodeBare(s.flag) : encodeFrame({ flag: s.flag, sid: s.sid, event: s.event, meta: s.meta, data: s.data });
}

/** Splits `buf` into chunks whose sizes cycle through `sizes`. Chunks are copies. */
function chunked(buf: Buffer, sizes: readonly number[]): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  for (let i = 0; at < buf.length; i++) {
    const n = sizes[i % sizes.length];
    out.push(Buffer.from(buf.subarray(at, at + n)));
    at += n;
  }
  return out;
}

const chunkSizes = fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 12 });

/** A field that cannot contain the separator, of at most `maxBytes` UTF-8 bytes, unicode included. */
function field(maxChars: number, maxBytes: number): fc.Arbitrary<string> {
  return fc
    .oneof(
      fc.string({ unit: 'binary', maxLength: maxChars }),
      fc.string({ unit: 'grapheme', maxLength: maxChars }),
      fc.string({ unit: fc.constantFrom('a', '=', '&', '\u0000', '\n', 'é', '🙂'), maxLength: maxChars }),
    )
    .filter((s) => !s.includes('\u0000\n') && Buffer.byteLength(s) <= maxBytes);
}

const validSpec: fc.Arbitrary<Spec> = fc
  .record({
    flag: fc.constantFrom(...FLAGS),
    bareChoice: fc.boolean(),
    sid: field(20, DEFAULT_FRAME_LIMITS.maxSid),
    event: field(40, DEFAULT_FRAME_LIMITS.maxEvent),
    meta: field(60, DEFAULT_FRAME_LIMITS.maxMeta),
    data: fc.uint8Array({ maxLength: 200 }),
  })
  .map(({ flag, bareChoice, ...rest }) => ({ flag, bare: bareChoice && BARE_FLAGS.includes(flag), ...rest }));

function assertMatchesSpecs(frames: FrameEvent[], specs: Spec[], encoded: Buffer[]): void {
  assert.equal(frames.length, specs.length);
  specs.forEach((s, i) => {
    const f = frames[i];
    assert.equal(f.flag, s.flag);
    assert.equal(f.raw, encoded[i].toString('hex'));
    if (s.bare) {
      assert.deepEqual([f.sid, f.event, f.meta, f.data], ['', '', '', '']);
    } else {
      assert.equal(f.sid, s.sid);
      assert.equal(f.event, s.event);
      assert.equal(f.meta, s.meta);
      assert.equal(f.data, Buffer.from(s.data).toString('hex'));
    }
  });
}

describe('fuzz: valid frames', () => {
  test('(a) encoded, concatenated and chunked at random, they decode back to the same frames', () => {
    fc.assert(
      fc.property(fc.array(validSpec, { maxLength: 8 }), chunkSizes, (specs, sizes) => {
        const encoded = specs.map(encodeSpec);
        const stream = Buffer.concat(encoded);
        const single = decodeStream([stream], DEFAULT_FRAME_LIMITS);
        assert.ok(single.events.every((e) => e.kind === 'frame'), JSON.stringify(single.events.filter((e) => e.kind === 'error')));
        assertMatchesSpecs(single.events as FrameEvent[], specs, encoded);
        const pieces = decodeStream(chunked(stream, sizes), DEFAULT_FRAME_LIMITS);
        assert.deepEqual(pieces.events, single.events);
        assert.equal(pieces.decoder.bufferedBytes, 0, 'nothing left over');
        // Each frame on its own as a message.
        encoded.forEach((buf, i) => assert.deepEqual(decodeOneMessage(buf, DEFAULT_FRAME_LIMITS), single.events[i]));
      }),
      runs(400),
    );
  });

  test('(a) one byte at a time gives the same frames', () => {
    fc.assert(
      fc.property(fc.array(validSpec, { maxLength: 4 }), (specs) => {
        const encoded = specs.map(encodeSpec);
        const stream = Buffer.concat(encoded);
        const { events } = decodeStream(bytewise(stream), DEFAULT_FRAME_LIMITS);
        assertMatchesSpecs(events as FrameEvent[], specs, encoded);
      }),
      runs(150),
    );
  });
});

// -----------------------------------------------------------------------------------------------------------

/** Small limits, so the generated frames run into them often. */
const SMALL: FrameLimits = { maxSid: 8, maxEvent: 12, maxMeta: 16, maxData: 48, maxFrame: 110 };

/** A string of a uniformly chosen length (fast-check favours short ones), so lengths near the limits are common. */
function sized(units: string[], maxLength: number): fc.Arbitrary<string> {
  return fc.integer({ min: 0, max: maxLength }).chain((n) => fc.string({ unit: fc.constantFrom(...units), minLength: n, maxLength: n }));
}

/** Frames around the small limits (some over them). */
const nearLimitSpec: fc.Arbitrary<Spec> = fc
  .record({
    flag: fc.constantFrom(...FLAGS),
    bareChoice: fc.boolean(),
    sid: sized(['s', 's', 's', 'é', '\u0000'], 9),
    event: sized(['e', 'e', '\n', 'é', '会'], 13),
    meta: sized(['k', '=', '&', 'é'], 18),
    data: fc.integer({ min: 0, max: 56 }).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
  })
  .filter((s) => !s.sid.includes('\u0000\n'))
  .map(({ flag, bareChoice, ...rest }) => ({ flag, bare: bareChoice && BARE_FLAGS.includes(flag), ...rest }));

const interestingLength = fc.oneof(
  fc.constantFrom(-1, 0, 1, 4, 7, 8, 9, 13, 14, 15, 20, SMALL.maxFrame, SMALL.maxFrame + 1, 0x7fffffff, -0x80000000),
  fc.integer({ min: -0x80000000, max: 0x7fffffff }),
  fc.integer({ min: 0, max: 200 }),
);

type Mutation =
  | { op: 'flip'; at: number; value: number }
  | { op: 'delete'; at: number; count: number }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'truncate'; at: number }
  | { op: 'append'; bytes: Uint8Array }
  | { op: 'length'; frame: number; value: number }
  | { op: 'flag'; frame: number; value: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), value: fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(0, 10)) }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 6 }) }),
  fc.record({
    op: fc.constant('insert' as const),
    at: fc.nat(),
    bytes: fc.oneof(fc.uint8Array({ minLength: 1, maxLength: 6 }), fc.constant(Uint8Array.of(0, 10))),
  }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('append' as const), bytes: fc.uint8Array({ maxLength: 40 }) }),
  fc.record({ op: fc.constant('length' as const), frame: fc.nat(), value: interestingLength }),
  fc.record({
    op: fc.constant('flag' as const),
    frame: fc.nat(),
    value: fc.oneof(fc.constantFrom(...FLAGS), fc.integer({ min: -1, max: 60 }), fc.integer({ min: -0x80000000, max: 0x7fffffff })),
  }),
);

function mutate(frames: Buffer[], mutations: Mutation[]): Buffer {
  const parts = frames.map((f) => Buffer.from(f));
  // Header mutations first, at real frame boundaries.
  for (const m of mutations) {
    if (parts.length === 0) break;
    if (m.op === 'length') parts[m.frame % parts.length].writeInt32BE(m.value, 0);
    if (m.op === 'flag') parts[m.frame % parts.length].writeInt32BE(m.value, 4);
  }
  let buf = Buffer.concat(parts);
  for (const m of mutations) {
    switch (m.op) {
      case 'flip':
        if (buf.length > 0) buf[m.at % buf.length] = m.value;
        break;
      case 'delete': {
        const at = m.at % (buf.length + 1);
        buf = Buffer.concat([buf.subarray(0, at), buf.subarray(at + m.count)]);
        break;
      }
      case 'insert': {
        const at = m.at % (buf.length + 1);
        buf = Buffer.concat([buf.subarray(0, at), m.bytes, buf.subarray(at)]);
        break;
      }
      case 'truncate':
        buf = buf.subarray(0, m.at % (buf.length + 1));
        break;
      case 'append':
        buf = Buffer.concat([buf, m.bytes]);
        break;
      default:
        break;
    }
  }
  return buf;
}

/** Mutated streams, plus pure garbage and garbage behind a plausible prefix. */
const mutatedInput: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(fc.array(nearLimitSpec, { maxLength: 6 }), fc.array(mutation, { maxLength: 4 })).map(([specs, ms]) => mutate(specs.map(encodeSpec), ms)) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.integer({ min: 8, max: 120 }), fc.constantFrom(...FLAGS), fc.uint8Array({ maxLength: 150 }))
      .map(([len, flag, rest]) => {
        const head = Buffer.alloc(8);
        head.writeInt32BE(len, 0);
        head.writeInt32BE(flag, 4);
        return Buffer.concat([head, rest]);
      }),
  },
);

/** Shape checks on what a stream decoder produced from `input`. */
function assertWellFormed(events: DecodeEvent[], input: Buffer, limits: FrameLimits): void {
  const fatal = events.findIndex((e) => e.kind === 'error' && e.fatal);
  if (fatal !== -1) assert.equal(fatal, events.length - 1, 'nothing follows a fatal error');
  let from = 0;
  for (const e of events) {
    if (e.kind === 'error') continue;
    assert.ok(isKnownFlag(e.flag), `flag ${e.flag}`);
    const raw = Buffer.from(e.raw, 'hex');
    assert.equal(raw.readInt32BE(0), raw.length, 'a frame is as long as its prefix says');
    assert.ok(raw.length <= limits.maxFrame);
    assert.ok(Buffer.from(e.data, 'hex').length <= limits.maxData);
    assert.ok(raw.subarray(raw.length - e.data.length / 2).toString('hex') === e.data, 'data is the tail of raw');
    // Frames are taken from the input in order, without overlap.
    const at = input.indexOf(raw, from);
    assert.ok(at >= from, 'the frame occurs in the input after the previous one');
    from = at + raw.length;
  }
}

describe('fuzz: mutated input', () => {
  test('(b)+(c) FrameDecoder: no throw, bounded buffer, same result in any chunking', () => {
    fc.assert(
      fc.property(mutatedInput, chunkSizes, (input, sizes) => {
        const single = decodeStream([input], SMALL);
        assertWellFormed(single.events, input, SMALL);
        assert.ok(single.maxBuffered <= SMALL.maxFrame + single.maxChunk);
        const chunks = chunked(input, sizes);
        const pieces = decodeStream(chunks, SMALL);
        assert.ok(
          pieces.maxBuffered <= SMALL.maxFrame + pieces.maxChunk,
          `buffered ${pieces.maxBuffered} > ${SMALL.maxFrame} + ${pieces.maxChunk}`,
        );
        assert.deepEqual(pieces.events, single.events);
        assert.equal(pieces.decoder.isFailed, single.decoder.isFailed);
        assert.equal(pieces.decoder.bufferedBytes, single.decoder.bufferedBytes, 'same bytes left over');
      }),
      runs(1000),
    );
  });

  test('(b)+(c) FrameDecoder one byte at a time equals one chunk, buffer stays below maxFrame', () => {
    fc.assert(
      fc.property(mutatedInput, (input) => {
        const single = decodeStream([input], SMALL);
        const bytes = decodeStream(bytewise(input), SMALL);
        assert.deepEqual(bytes.events, single.events);
        assert.ok(bytes.maxBuffered < SMALL.maxFrame, `buffered ${bytes.maxBuffered}`);
      }),
      runs(300),
    );
  });

  test('(b) the same with the default limits', () => {
    fc.assert(
      fc.property(mutatedInput, chunkSizes, (input, sizes) => {
        const single = decodeStream([input], DEFAULT_FRAME_LIMITS);
        assertWellFormed(single.events, input, DEFAULT_FRAME_LIMITS);
        assert.deepEqual(decodeStream(chunked(input, sizes), DEFAULT_FRAME_LIMITS).events, single.events);
      }),
      runs(300),
    );
  });

  test('(b) MessageDecoder returns a Frame or a FrameError for any message, never throws', () => {
    fc.assert(
      fc.property(mutatedInput, fc.nat(), (input, cut) => {
        const decoder = new MessageDecoder(SMALL);
        for (const message of [input, input.subarray(0, cut % (input.length + 1)), input.subarray(cut % (input.length + 1))]) {
          const out = decoder.decode(message);
          assert.ok(out instanceof Frame || out instanceof FrameError);
          if (out instanceof Frame) {
            assert.equal(out.raw.length, message.length);
            assert.equal(message.readInt32BE(0), message.length);
            assert.ok(out.data.length <= SMALL.maxData && message.length <= SMALL.maxFrame);
          }
        }
      }),
      runs(1000),
    );
  });

  test('(c) a single whole frame decodes the same with the stream and the message decoder', () => {
    // Mutations that keep the length prefix equal to the size: flips after the prefix, flag changes.
    const single = fc
      .tuple(nearLimitSpec, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }), fc.option(fc.integer({ min: -1, max: 60 })))
      .map(([spec, flips, flag]) => {
        const buf = Buffer.from(encodeSpec(spec));
        for (const [at, value] of flips) if (buf.length > 4) buf[4 + (at % (buf.length - 4))] = value;
        if (flag !== null) buf.writeInt32BE(flag, 4);
        buf.writeInt32BE(buf.length, 0);
        return buf;
      });
    fc.assert(
      fc.property(single, (buf) => {
        fc.pre(buf.length <= SMALL.maxFrame); // above it the stream refuses at byte 4, the message decoder reads on
        const stream = decodeStream([buf], SMALL).events;
        assert.equal(stream.length, 1);
        assert.deepEqual(decodeOneMessage(buf, SMALL), stream[0]);
      }),
      runs(1000),
    );
  });

  test('(b) a decoder keeps going after recoverable errors and stops for good after a fatal one', () => {
    fc.assert(
      fc.property(mutatedInput, chunkSizes, (input, sizes) => {
        const decoder = new FrameDecoder(SMALL);
        const sink = new RecordingSink();
        for (const chunk of chunked(input, sizes)) decoder.push(chunk, sink);
        const before = sink.events.length;
        const failed = decoder.isFailed;
        assert.equal(failed, sink.errors.some((e) => e.fatal), 'failed exactly when a fatal error was reported');
        decoder.push(encodeBare(Flag.Ping), sink);
        if (failed) {
          assert.equal(sink.events.length, before, 'nothing after a fatal error');
          assert.equal(decoder.bufferedBytes, 0);
        } else if (!decoder.isFailed) {
          // Whatever the Ping completed, it is what a fresh decoder makes of input + Ping.
          assert.deepEqual(sink.events, decodeStream([Buffer.concat([input, encodeBare(Flag.Ping)])], SMALL).events);
        }
      }),
      runs(300),
    );
  });
});
