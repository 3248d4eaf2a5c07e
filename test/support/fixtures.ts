/**
 * Loader for the frames captured from the reference implementation, kept in this repository at
 * `test/fixtures/reference-frames.txt` (Socket.D 2.5.20; the file's header says how they were captured).
 *
 * File format: `#` comment lines and blank lines; each frame is one lowercase hex line, preceded by a title
 * comment (`# c1 Message  caller -> broker, meta @=svc`) and usually a decoding comment
 * (`#   flag=Message(40) len=61 sid=... event=hello meta=@=svc datalen=5 data=msg-1`).
 *
 * The tests run from `dist/test/support`, so the file is found by walking up from this module's directory to
 * the first folder that holds `test/fixtures/reference-frames.txt` (the repository root).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FrameDecoder, MessageDecoder, type FrameSink } from '../../src/protocol/codec.js';
import { FrameError } from '../../src/protocol/errors.js';
import type { Frame } from '../../src/protocol/frame.js';
import type { FrameLimits } from '../../src/protocol/limits.js';

/** What a decoding comment line says about a frame; fields the line omits are undefined. */
export interface ExpectedFields {
  flagName: string;
  flag: number;
  len?: number;
  sid?: string;
  event?: string;
  meta?: string;
  datalen?: number;
  data?: string;
}

export interface ReferenceFrame {
  /** Short id from the title comment, e.g. `c1`. */
  name: string;
  /** The rest of the title comment, e.g. `Message  caller -> broker, meta @=svc`. */
  description: string;
  /** First word of the description: the frame kind, e.g. `Message`. */
  kind: string;
  /** The decoding comment line (without `#`), or null when the frame has none. */
  decoded: string | null;
  /** The decoding comment parsed, or null when the frame has none. */
  expected: ExpectedFields | null;
  hex: string;
  bytes: Buffer;
}

const RELATIVE = join('test', 'fixtures', 'reference-frames.txt');

/** Absolute path of the repository's reference-frames.txt; throws naming the folder it searched from. */
export function referenceFramesPath(): string {
  const moduleDir = dirname(fileURLToPath(import.meta.url));
  for (let dir = resolve(moduleDir); ; dir = dirname(dir)) {
    const candidate = join(dir, RELATIVE);
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) break;
  }
  throw new Error(`${RELATIVE} not found in any folder above ${moduleDir}`);
}

const KEYS = ['len', 'sid', 'event', 'meta', 'datalen', 'data'] as const;

/**
 * Parses `flag=Name(n) len=.. sid=.. event=.. meta=.. datalen=.. data=..`. Values are taken verbatim up to the
 * next ` key=` (so `meta=@=svc` and `data=Broker don't have '@nobody' session` come out whole).
 */
export function parseDecodedLine(line: string): ExpectedFields | null {
  const head = /^flag=([A-Za-z]+)\((\d+)\)/.exec(line);
  if (head === null) return null;
  const out: ExpectedFields = { flagName: head[1], flag: Number(head[2]) };
  const rest = line.slice(head[0].length);
  // Positions of each ` key=` in the order given by the line.
  const marks: { key: (typeof KEYS)[number]; at: number; valueAt: number }[] = [];
  const re = new RegExp(`\\s(${KEYS.join('|')})=`, 'g');
  for (let m = re.exec(rest); m !== null; m = re.exec(rest)) {
    const key = m[1] as (typeof KEYS)[number];
    // A key already seen (or out of order) is part of a value, e.g. `data=... data=...` inside a text.
    if (marks.length > 0 && KEYS.indexOf(key) <= KEYS.indexOf(marks[marks.length - 1].key)) continue;
    marks.push({ key, at: m.index, valueAt: m.index + m[0].length });
  }
  for (let i = 0; i < marks.length; i++) {
    const end = i + 1 < marks.length ? marks[i + 1].at : rest.length;
    let value = rest.slice(marks[i].valueAt, end);
    const key = marks[i].key;
    if (key === 'len' || key === 'datalen') {
      // `len=8 (no body)`
      out[key] = Number(/^\d+/.exec(value)?.[0] ?? NaN);
      continue;
    }
    // Only data may legitimately end in spaces; the comment lines have none.
    if (key !== 'data') value = value.trimEnd();
    out[key] = value;
  }
  return out;
}

let cache: ReferenceFrame[] | null = null;

export function parseReferenceFrames(text: string): ReferenceFrame[] {
  const frames: ReferenceFrame[] = [];
  let comments: string[] = [];
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.trimEnd();
    if (line === '') {
      comments = [];
      continue;
    }
    if (line.startsWith('#')) {
      comments.push(line.replace(/^#\s?/, ''));
      continue;
    }
    if (!/^([0-9a-f]{2})+$/.test(line)) throw new Error(`reference-frames.txt: not a hex line: ${line.slice(0, 40)}`);
    const titleIndex = comments.findIndex((c) => /^[a-z]+\d+\s/.test(c));
    if (titleIndex === -1) throw new Error(`reference-frames.txt: frame without a title comment: ${line.slice(0, 40)}`);
    const title = comments[titleIndex];
    const sp = title.search(/\s/);
    const name = title.slice(0, sp);
    const description = title.slice(sp).trim();
    const decodedLine = comments.slice(titleIndex + 1).map((c) => c.trim()).find((c) => c.startsWith('flag=')) ?? null;
    frames.push({
      name,
      description,
      kind: description.split(/\s+/)[0],
      decoded: decodedLine,
      expected: decodedLine === null ? null : parseDecodedLine(decodedLine),
      hex: line,
      bytes: Buffer.from(line, 'hex'),
    });
    comments = [];
  }
  return frames;
}

/** All frames of reference-frames.txt, in file order. Each call returns fresh Buffers. */
export function loadReferenceFrames(): ReferenceFrame[] {
  if (cache === null) cache = parseReferenceFrames(readFileSync(referenceFramesPath(), 'utf8'));
  return cache.map((f) => ({ ...f, bytes: Buffer.from(f.hex, 'hex') }));
}

// ---------------------------------------------------------------------------------------------------------
// Decoding helpers shared by the codec unit and fuzz tests: what a decoder produced, as comparable plain data.

export interface FrameEvent {
  kind: 'frame';
  flag: number;
  sid: string;
  event: string;
  meta: string;
  /** Hex of the data bytes. */
  data: string;
  /** Hex of the whole frame. */
  raw: string;
  eventOffset: number;
}

export interface ErrorEvent {
  kind: 'error';
  code: string;
  fatal: boolean;
  flag: number;
  sid: string;
  event: string;
  meta: string;
}

export type DecodeEvent = FrameEvent | ErrorEvent;

export function frameEvent(f: Frame): FrameEvent {
  return {
    kind: 'frame',
    flag: f.flag,
    sid: f.sid,
    event: f.event,
    meta: f.metaString,
    data: f.data.toString('hex'),
    raw: f.raw === null ? '<null>' : f.raw.toString('hex'),
    eventOffset: f.eventOffset,
  };
}

export function errorEvent(e: FrameError): ErrorEvent {
  return { kind: 'error', code: e.code, fatal: e.fatal, flag: e.flag, sid: e.sid, event: e.event, meta: e.metaString };
}

/** A sink that records everything it receives, in order. */
export class RecordingSink implements FrameSink {
  readonly events: DecodeEvent[] = [];
  readonly frames: Frame[] = [];
  readonly errors: FrameError[] = [];

  onFrame(frame: Frame): void {
    this.frames.push(frame);
    this.events.push(frameEvent(frame));
  }

  onFrameError(error: FrameError): void {
    this.errors.push(error);
    this.events.push(errorEvent(error));
  }
}

export interface StreamResult {
  events: DecodeEvent[];
  sink: RecordingSink;
  decoder: FrameDecoder;
  /** Largest `bufferedBytes` seen after any push. */
  maxBuffered: number;
  /** Largest chunk pushed. */
  maxChunk: number;
}

/** Feeds `chunks` to a fresh FrameDecoder, one push each. */
export function decodeStream(chunks: readonly Buffer[], limits: FrameLimits): StreamResult {
  const decoder = new FrameDecoder(limits);
  const sink = new RecordingSink();
  let maxBuffered = 0;
  let maxChunk = 0;
  for (const chunk of chunks) {
    decoder.push(chunk, sink);
    maxBuffered = Math.max(maxBuffered, decoder.bufferedBytes);
    maxChunk = Math.max(maxChunk, chunk.length);
  }
  return { events: sink.events, sink, decoder, maxBuffered, maxChunk };
}

/** Decodes one message with a fresh MessageDecoder, as a comparable event. */
export function decodeOneMessage(buf: Buffer, limits: FrameLimits): DecodeEvent {
  const out = new MessageDecoder(limits).decode(buf);
  return out instanceof FrameError ? errorEvent(out) : frameEvent(out);
}

/** Splits `buf` at the given ascending offsets (copies, so no chunk shares memory with another). */
export function splitAt(buf: Buffer, points: readonly number[]): Buffer[] {
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of [...points, buf.length]) {
    out.push(Buffer.from(buf.subarray(prev, p)));
    prev = p;
  }
  return out;
}

/** One chunk per byte. */
export function bytewise(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i++) out.push(Buffer.from([buf[i]]));
  return out;
}

/** Small deterministic PRNG (mulberry32) so random chunkings are reproducible from a printed seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Splits `buf` into chunks of random sizes in [1, maxChunk]. */
export function randomChunks(buf: Buffer, random: () => number, maxChunk: number): Buffer[] {
  const points: number[] = [];
  let at = 0;
  for (;;) {
    at += 1 + Math.floor(random() * maxChunk);
    if (at >= buf.length) break;
    points.push(at);
  }
  return splitAt(buf, points);
}
