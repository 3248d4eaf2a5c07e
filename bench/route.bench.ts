/**
 * Router micro-benchmark: the S1 hot path inside one process, without sockets, so it can be compared between
 * two builds on a shared machine. One publisher session feeds chunks of 1000 Message frames (128 B data) by
 * event to one subscriber (and, with --by-name, by `@` name); the frames are decoded, routed and queued to a
 * connection that accepts every write. Reports CPU ns per routed frame: the best of --runs runs of
 * --seconds of CPU each (the minimum is the least disturbed by other processes).
 *
 *   node dist/bench/route.bench.js [--seconds=1] [--runs=5]
 */
import pino from 'pino';
import { Broker } from '../src/broker/broker.js';
import { EventRouter } from '../src/broker/event-router.js';
import { brokerSettings } from '../src/broker/settings.js';
import { BrokerStats } from '../src/broker/stats.js';
import { encodeFrame } from '../src/protocol/codec.js';
import { Flag } from '../src/protocol/flags.js';
import type { Connection, ConnectionHandler } from '../src/transport/connection.js';

const arg = (name: string): string | undefined => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const SECONDS = Number(arg('seconds') ?? 1);
const RUNS = Number(arg('runs') ?? 5);
const FRAMES = 1000;

/** A connection that takes every write at once (the kernel's part of S1 is not measured here). */
class SinkConnection implements Connection {
  readonly transport = 'tcp' as const;
  readonly framing = 'stream' as const;
  readonly remoteAddress = '127.0.0.1';
  readonly remotePort: number;
  readonly maxOutboundFrame = Infinity;
  readonly bufferedBytes = 0;
  readonly closed = false;
  handler: ConnectionHandler | null = null;
  written = 0;
  constructor(port: number) {
    this.remotePort = port;
  }
  start(handler: ConnectionHandler): void {
    this.handler = handler;
  }
  write(): boolean {
    this.written++;
    return true;
  }
  writeRange(): boolean {
    this.written++;
    return true;
  }
  pause(): void {}
  resume(): void {}
  end(): void {}
  destroy(): void {}
}

function cpuNs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}

function run(label: string, meta: string, subscriberMeta: string): void {
  const settings = brokerSettings({ framesPerSecond: 0 });
  const stats = new BrokerStats();
  const events = new EventRouter({ maxSubscriptionsPerSession: 100, matchCacheSize: 4096, maxPatternBytes: 512 }, stats);
  const broker = new Broker({ settings, logger: pino({ level: 'silent' }), stats, events, observers: [events] });
  const sub = new SinkConnection(2);
  const pub = new SinkConnection(1);
  broker.accept(sub);
  broker.accept(pub);
  sub.handler!.connectionOnData(encodeFrame({ flag: Flag.Connect, sid: 'c1', event: 'tcp://127.0.0.1:8602?@=bench-sub', meta: subscriberMeta }));
  pub.handler!.connectionOnData(encodeFrame({ flag: Flag.Connect, sid: 'c2', event: 'tcp://127.0.0.1:8602' }));
  const data = Buffer.alloc(128, 0x61);
  const chunk = Buffer.concat(Array.from({ length: FRAMES }, (_, i) =>
    encodeFrame({ flag: Flag.Message, sid: `0123456789abcdef${String(i).padStart(16, '0')}`, event: 'bench.s1', meta, data })));
  const once = (): void => pub.handler!.connectionOnData(chunk);
  for (let i = 0; i < 50; i++) once();
  const before = sub.written;
  once();
  if (sub.written - before !== FRAMES) throw new Error(`${label}: ${sub.written - before} of ${FRAMES} frames delivered`);
  const results: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const start = cpuNs();
    let rounds = 0;
    while (cpuNs() - start < SECONDS * 1e9) {
      once();
      rounds++;
    }
    results.push((cpuNs() - start) / (rounds * FRAMES));
  }
  const best = Math.min(...results);
  process.stdout.write(`${label}: best ${best.toFixed(1)} ns/frame (runs: ${results.map((n) => n.toFixed(0)).join(', ')})\n`);
  void broker.shutdown(0);
}

run('by event', '', 'sub=bench.s1');
run('by @ name', '@=bench-sub', '');
