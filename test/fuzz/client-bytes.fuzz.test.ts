/**
 * Property tests of the client's readers of received frame bytes (fast-check): EventNames.of must equal the
 * decoder's `frame.event`, and answerHeadEnd must end where the decoder's event does, for any bytes the
 * decoder accepts: zeros and line feeds next to the separators, invalid UTF-8, events that are prefixes of
 * one another, more distinct events than the cache holds.
 */
import test, { describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FrameDecoder } from '../../src/protocol/codec.js';
import type { Frame } from '../../src/protocol/frame.js';
import { DEFAULT_FRAME_LIMITS } from '../../src/protocol/limits.js';
import { EventNames } from '../../src/client/event-names.js';
import { answerHeadEnd } from '../../src/client/frame-writer.js';

const SCALE = Math.max(1, Number(process.env.FUZZ_SCALE ?? 1) || 1);

/** Field bytes from a tiny alphabet, so separators and near-separators are frequent. */
const fieldBytes = fc.array(fc.constantFrom(0x00, 0x0a, 0x61, 0x62, 0xc3, 0xa9, 0xff), { maxLength: 12 });

/** A message frame from raw field bytes; the decoder decides where its fields really end. */
function rawFrame(sid: number[], event: number[], meta: number[], data: number[]): Buffer {
  const body = Buffer.from([...sid, 0, 10, ...event, 0, 10, ...meta, 0, 10, ...data]);
  const head = Buffer.alloc(8);
  head.writeInt32BE(8 + body.length, 0);
  head.writeInt32BE(40, 4);
  return Buffer.concat([head, body]);
}

function decode(bytes: Buffer): Frame[] {
  const frames: Frame[] = [];
  new FrameDecoder(DEFAULT_FRAME_LIMITS).push(bytes, { onFrame: (f) => void frames.push(f), onFrameError: () => {} });
  return frames;
}

describe('client: readers of received frame bytes', () => {
  test('EventNames.of equals frame.event, frame after frame', () => {
    const frameSpec = fc.tuple(fieldBytes, fieldBytes, fieldBytes, fieldBytes);
    fc.assert(
      fc.property(fc.array(frameSpec, { minLength: 1, maxLength: 30 }), (specs) => {
        const names = new EventNames();
        for (const [sid, event, meta, data] of specs) {
          for (const frame of decode(rawFrame(sid, event, meta, data))) {
            assert.equal(names.of(frame), frame.event);
            assert.equal(names.of(frame), frame.event, 'again, from the cache');
          }
        }
      }),
      { numRuns: 500 * SCALE },
    );
  });

  test('answerHeadEnd ends after the event the decoder sees', () => {
    fc.assert(
      fc.property(fieldBytes, fieldBytes, fieldBytes, fieldBytes, (sid, event, meta, data) => {
        for (const frame of decode(rawFrame(sid, event, meta, data))) {
          const end = answerHeadEnd(frame.raw);
          // The head an answer repeats decodes to the same sid and event.
          const head = frame.raw.subarray(8, end);
          const replay = Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 0, 0, 48]), head, Buffer.from([0, 10])]);
          replay.writeInt32BE(replay.length, 0);
          const [reply] = decode(replay);
          assert.ok(reply !== undefined);
          assert.equal(reply.sid, frame.sid);
          assert.equal(reply.event, frame.event);
          assert.equal(reply.metaString, '');
        }
      }),
      { numRuns: 1000 * SCALE },
    );
  });

  test('more distinct events than the cache holds, and events that are prefixes of one another', () => {
    const names = new EventNames();
    const events = ['a', 'ab', 'abc', 'a\u0000', 'b', 'ba', 'é', 'a.b.c', '', 'x'.repeat(70)];
    for (let round = 0; round < 5; round++) {
      for (const event of events) {
        const [frame] = decode(rawFrame([0x73], [...Buffer.from(event)], [], [0x64]));
        assert.equal(names.of(frame!), event);
      }
    }
  });
});
