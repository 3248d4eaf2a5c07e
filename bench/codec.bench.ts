/**
 * Codec micro-benchmark (src/protocol/codec.ts): decode MB/s and frames/s for 128 B and 16 KiB Message frames,
 * whole and chunked; encode frames/s (encodeFrame, and encodeHead as the SDK uses it); encodeReheaded
 * frames/s (the broker's re-head of a forwarded frame). Writes the `## Codec` section of bench/results.md.
 *
 *   node dist/bench/codec.bench.js [--seconds=1] [--no-write]
 */
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { FrameDecoder, MessageDecoder, encodeFrame, encodeHead, encodeReheaded, type FrameSink } from '../src/protocol/codec.js';
import type { Frame } from '../src/protocol/frame.js';
import { Flag } from '../src/protocol/flags.js';
import { DEFAULT_FRAME_LIMITS } from '../src/protocol/limits.js';
import { replaceSections } from './lib/results-md.js';

const RESULTS = fileURLToPath(new URL('../../bench/results.md', import.meta.url));
const arg = (name: string): string | undefined => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const SECONDS = Number(arg('seconds') ?? 1);
const WRITE = !process.argv.includes('--no-write');

const SID = '0123456789abcdef0000000000000001';
const EVENT = 'bench.codec.event';
const META = 'trace=t-1';

function cpuNs(): bigint {
  const u = process.cpuUsage();
  return BigInt(u.user + u.system) * 1000n;
}

/** Runs `once` (which handles `units` frames and `bytes` bytes) until SECONDS of CPU time have passed. */
function measure(once: () => void, frames: number, bytes: number): { framesPerSecond: number; mbPerSecond: number } {
  for (let i = 0; i < 3; i++) once(); // warm-up
  const start = cpuNs();
  const limit = BigInt(Math.round(SECONDS * 1e9));
  let rounds = 0;
  let elapsed = 0n;
  do {
    once();
    rounds++;
    elapsed = cpuNs() - start;
  } while (elapsed < limit);
  const s = Number(elapsed) / 1e9;
  return { framesPerSecond: (rounds * frames) / s, mbPerSecond: (rounds * bytes) / s / 1e6 };
}

/** Counts frames and reads each one's event, as the broker's router does (sid, event, meta are decoded lazily). */
class CountingSink implements FrameSink {
  frames = 0;
  eventBytes = 0;
  onFrame(frame: Frame): void {
    this.frames++;
    this.eventBytes += frame.event.length;
  }
  onFrameError(error: Error): void {
    throw error;
  }
}

interface Row {
  case: string;
  size: string;
  framesPerSecond: number;
  mbPerSecond: number;
}

const rows: Row[] = [];

for (const [label, size] of [['128 B', 128], ['16 KiB', 16 * 1024]] as const) {
  const data = Buffer.alloc(size, 0x61);
  const frame = encodeFrame({ flag: Flag.Message, sid: SID, event: EVENT, meta: META, data });
  // A stream of ~4 MiB of frames, as a socket delivers it.
  const count = Math.max(16, Math.ceil((4 * 1024 * 1024) / frame.length));
  const stream = Buffer.concat(Array.from({ length: count }, () => frame));
  const bytes = stream.length;
  const sink = new CountingSink();

  // Whole: 64 KiB socket reads cut at frame boundaries (every frame inside one chunk: no copy).
  const perRead = Math.max(1, Math.floor((64 * 1024) / frame.length));
  const whole: Buffer[] = [];
  for (let i = 0; i < count; i += perRead) whole.push(stream.subarray(i * frame.length, Math.min(count, i + perRead) * frame.length));
  rows.push({ case: 'decode, whole (64 KiB reads of whole frames)', size: label, ...measure(() => {
    const d = new FrameDecoder(DEFAULT_FRAME_LIMITS);
    for (const c of whole) d.push(c, sink);
  }, count, bytes) });

  // Chunked: the stream cut into 1,000 B pieces, so most frames straddle chunks (reassembled with a copy).
  const chunked: Buffer[] = [];
  for (let o = 0; o < stream.length; o += 1000) chunked.push(stream.subarray(o, Math.min(stream.length, o + 1000)));
  rows.push({ case: 'decode, chunked (1,000 B pieces)', size: label, ...measure(() => {
    const d = new FrameDecoder(DEFAULT_FRAME_LIMITS);
    for (const c of chunked) d.push(c, sink);
  }, count, bytes) });

  // One frame per message (ws, udp): MessageDecoder.
  const md = new MessageDecoder(DEFAULT_FRAME_LIMITS);
  rows.push({ case: 'decode, one frame per message (ws)', size: label, ...measure(() => {
    for (let i = 0; i < count; i++) sink.onFrame(md.decode(frame) as Frame);
  }, count, bytes) });

  rows.push({ case: 'encode, encodeFrame (head + data copied)', size: label, ...measure(() => {
    for (let i = 0; i < count; i++) encodeFrame({ flag: Flag.Message, sid: SID, event: EVENT, meta: META, data });
  }, count, bytes) });

  rows.push({ case: 'encode, encodeHead (data not copied, as the SDK sends)', size: label, ...measure(() => {
    for (let i = 0; i < count; i++) encodeHead(Flag.Message, SID, EVENT, META, data.length);
  }, count, bytes), mbPerSecond: Number.NaN });

  const decoded = md.decode(frame) as Frame;
  rows.push({ case: 'encodeReheaded (broker re-head of a routed frame)', size: label, ...measure(() => {
    for (let i = 0; i < count; i++) encodeReheaded(decoded, Flag.Reply, SID);
  }, count, bytes), mbPerSecond: Number.NaN });
  if (sink.frames === 0) throw new Error('decoder produced no frames');
}

const f0 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const table = [
  '| case | frame data | frames/s | MB/s |',
  '|---|---:|---:|---:|',
  ...rows.map((r) => `| ${r.case} | ${r.size} | ${f0.format(r.framesPerSecond)} | ${Number.isFinite(r.mbPerSecond) ? f0.format(r.mbPerSecond) : '–'} |`),
].join('\n');

const section = `## Codec

\`bench/codec.bench.ts\` (\`npm run bench:codec\`): the frame codec of src/protocol/codec.ts on Message frames with a
32-hex sid, a 17-byte event, a 9-byte meta and 128 B or 16 KiB of data. MB/s counts whole frame bytes (10^6 B).
Decoding includes reading each frame's event string (the Frame class decodes sid, event and meta lazily; the
router needs the event). Decode "whole" feeds a FrameDecoder 64 KiB reads cut at frame boundaries (frames refer to the read by offset: no copy, no view per frame); "chunked"
feeds 1,000 B pieces, so most frames straddle reads and are reassembled with one copy. encodeHead and
encodeReheaded write only a head (the data is not touched), so only frames/s is given for them. Rates are per CPU
second of the process (${SECONDS} s per case after a warm-up).

- Date: ${new Date().toISOString().slice(0, 10)}; Node ${process.version}; ${os.availableParallelism()} CPUs (${os.cpus()[0]?.model ?? '?'}); load average ${os.loadavg().map((l) => l.toFixed(2)).join(' / ')}

${table}
`;

process.stdout.write(`${table}\n`);
if (WRITE) {
  replaceSections(RESULTS, (h) => h.trim() === '## Codec', section, 'last');
  process.stdout.write('codec bench: wrote the ## Codec section of bench/results.md\n');
}
