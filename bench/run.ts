/**
 * `npm run bench`: starts each system on loopback, runs every scenario against it with role processes
 * (bench/roles/*, one OS process per role), samples the server's CPU and memory from /proc, stops
 * everything, and writes bench/results.md (the `## Run ...` section) and bench/results.json.
 *
 *   node dist/bench/run.js [--systems=socketd-tcp,nats] [--scenarios=S1,S3] [--quick] [--timeout=60]
 *                          [--write | --no-write]
 *
 * A full run (no filter, not --quick) writes the files; a filtered or quick run only prints, unless --write.
 * See bench/README.md for what each scenario measures.
 */
import { writeFileSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CLK_TCK, DEFAULT_SYSTEMS, SYSTEM_NAMES, SYSTEM_SCENARIOS, now, procCpuMs, procMem, sleep, type SystemName, type Target } from './lib/common.js';
import { Role, type RoleResult } from './lib/roles.js';
import { replaceSections } from './lib/results-md.js';
import { clientPorts, serverHolds } from './lib/sockets.js';
import { ROOT, checkSystem, clientOf, startServer, type Availability, type ServerHandle } from './systems/servers.js';
import { renderRun } from './report.js';

// ----- options ---------------------------------------------------------------------------------------------

function arg(name: string): string | undefined {
  const prefix = `--${name}=`;
  const hit = process.argv.find((a) => a === `--${name}` || a.startsWith(prefix));
  if (hit === undefined) return undefined;
  return hit === `--${name}` ? '' : hit.slice(prefix.length);
}

const QUICK = arg('quick') !== undefined;
const SYSTEMS = (arg('systems')?.split(',').filter(Boolean) ?? [...DEFAULT_SYSTEMS]) as SystemName[];
for (const s of SYSTEMS) if (!SYSTEM_NAMES.includes(s)) throw new Error(`unknown system ${s} (known: ${SYSTEM_NAMES.join(', ')})`);
const SCENARIO_FILTER = arg('scenarios')?.split(',').filter(Boolean).map((s) => s.toUpperCase());
const TIMEOUT_MS = Number(arg('timeout') ?? (QUICK ? 30 : 60)) * 1000;
const FULL = !QUICK && arg('systems') === undefined && SCENARIO_FILTER === undefined;
const WRITE = arg('no-write') === undefined && (FULL || arg('write') !== undefined);

export const PAYLOAD = 128;
const MiB = 1024 * 1024;

/** Counts of a full run and of --quick. */
export const COUNTS = QUICK
  ? { s1: 20_000, s2: 2_000, s2Procs: 5, s2Conns: 10, s3: 2_000, inFlight: 64, s4Procs: 5, s4Conns: 200, s5: 32, s6Ms: 6_000, s6Cap: 3_000_000 }
  : { s1: 200_000, s2: 20_000, s2Procs: 5, s2Conns: 10, s3: 20_000, inFlight: 64, s4Procs: 5, s4Conns: 1_000, s5: 256, s6Ms: 20_000, s6Cap: 10_000_000 };
export type Counts = typeof COUNTS;
/** S6: the stalled subscriber stops reading at this fraction of the run; the "after" rate is the last quarter's. */
const STALL_AT = 0.15;

// ----- results -----------------------------------------------------------------------------------------------

export type Figures = Record<string, number | string | boolean>;

export interface ScenarioRecord {
  system: SystemName;
  scenario: string;
  status: 'ok' | 'failed' | 'timeout' | 'skipped';
  error?: string;
  figures: Figures;
  server: { cpuMs: number; peakRssBytes: number; rssStartBytes: number; rssEndBytes: number };
  roles: Record<string, RoleResult[]>;
  seconds: number;
  /** The warm-up before the measured pass: its first pass's figures, and what all its passes cost the server. */
  warmUp?: { figures: Figures; passes: number; serverCpuMs: number; seconds: number; status: string; error?: string };
}

export interface RunRecord {
  date: string;
  quick: boolean;
  full: boolean;
  command: string;
  machine: { nproc: number; cpu: string; memGiB: number; kernel: string; node: string; loadStart: number[]; loadEnd: number[] };
  counts: Counts;
  payloadBytes: number;
  systems: Record<string, Availability & { client: string }>;
  /** Settings that change what is measured (e.g. BENCH_PRESSURE_HOLD). */
  notes: string[];
  /** Whether S1-S3 ran a warm-up pass first (see WARM_UP). */
  warmUp: boolean;
  results: ScenarioRecord[];
  seconds: number;
}

// ----- scenarios -------------------------------------------------------------------------------------------

class TimeoutError extends Error {}

interface Ctx {
  system: SystemName;
  server: ServerHandle;
  target: Target;
  roles: Role[];
  spawn(name: string, script: string, config: object): Role;
  /** Server CPU ms so far. */
  cpu(): number;
  rss: { at: number; rss: number }[];
}

interface Scenario {
  id: string;
  title: string;
  /**
   * Counts of a warm-up pass run against the same server process before the measured one, with role
   * processes of its own (so every client starts cold in the measured pass, only the server is warm).
   * Absent: no warm-up.
   */
  warmUp?: (counts: Counts) => Counts;
  run(ctx: Ctx, record: ScenarioRecord, counts: Counts): Promise<void>;
}

/**
 * A broker runs for days: its CPU per message is that of a process past its first traffic. A fresh Node
 * process spends its first ~20k frames in the interpreter and the JIT compilers (about 150 ms of CPU for
 * the broker, measured with bench S1 and S3), which a 20k-round-trip scenario would count as per-message
 * cost. So the throughput scenarios first run a smaller pass of the same traffic, for every system alike,
 * and report what that pass cost the server apart (`warmUp` in results.json, "first traffic" in results.md).
 * `--no-warmup` measures from a cold server instead.
 */
const WARM_UP = arg('no-warmup') === undefined;
/**
 * Two warm-up passes, each with client processes of its own: when a Node server's first clients have left
 * and new ones connect, V8 drops the optimized code it built on the objects and paths it had seen (`--trace-deopt`:
 * "wrong map" in the codec and the tcp adapter, "insufficient type feedback" in the router and stream table),
 * and the next ~20k round trips pay for running it unoptimized and compiling it again (S3P broker CPU
 * 11-15 µs per round trip in the pass after the first reconnect, 5-8 µs in the passes after that; measured
 * 2026-12-02 with fresh clients per pass). A broker that runs for days has seen clients come and go.
 */
const WARM_UP_PASSES = 2;
const warmCounts = (counts: Counts): Counts => ({
  ...counts,
  s1: Math.ceil(counts.s1 / 4),
  s2: Math.ceil(counts.s2 / 4),
  s3: Math.ceil(counts.s3 / 4),
});

async function allReady(roles: Role[]): Promise<void> {
  await Promise.all(roles.map((r) => r.ready));
}

/** Waits for the subscribers' results; stops them once nothing arrived for `quietMs` after the publisher ended. */
async function collectSubscribers(subs: Role[], publisherDone: () => boolean, quietMs = 3000): Promise<RoleResult[]> {
  const all = Promise.all(subs.map((s) => s.result));
  let stopped = false;
  while (!subs.every((s) => s.finished)) {
    await Promise.race([all, sleep(100)]);
    const last = Math.max(...subs.map((s) => s.lastChangeAt));
    if (!stopped && publisherDone() && now() - last > quietMs) {
      stopped = true;
      for (const s of subs) s.send('stop');
    }
  }
  return all;
}

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
const num = (r: RoleResult, key: string): number => Number(r[key] ?? Number.NaN);

/** How long the publisher waited on its client's flow control, as a share of its sending time; Pressure frames. */
function flowFigures(pub: RoleResult): Figures {
  const out: Figures = { publisherWaitShare: num(pub, 'drainMs') / (num(pub, 'sentAt') - num(pub, 'startAt')) };
  if (typeof pub['pressureFrames'] === 'number') out['pressureFrames'] = pub['pressureFrames'];
  return out;
}

interface FanoutOptions {
  procs: number;
  connsPerProc: number;
  count: number;
  payload: number;
}

/** One publisher process to `procs × connsPerProc` subscribers; returns the publisher's and subscribers' results. */
async function fanout(ctx: Ctx, record: ScenarioRecord, o: FanoutOptions): Promise<{ pub: RoleResult; subs: RoleResult[]; cpuMs: number }> {
  const subject = `bench.${record.scenario.toLowerCase()}`;
  const subs: Role[] = [];
  for (let i = 0; i < o.procs; i++) {
    subs.push(ctx.spawn(`subscriber${i}`, 'subscriber', { target: ctx.target, subject, connections: o.connsPerProc, expected: o.count }));
  }
  await allReady(subs);
  const pub = ctx.spawn('publisher', 'publisher', { target: ctx.target, subject, count: o.count, payloadSize: o.payload, durationMs: 0 });
  await pub.ready;
  for (const s of subs) s.send('go');
  const cpu0 = ctx.cpu();
  pub.send('go');
  const pubResult = await pub.result;
  const subResults = await collectSubscribers(subs, () => pub.finished);
  const cpuMs = ctx.cpu() - cpu0;
  record.roles['publisher'] = [pubResult];
  record.roles['subscriber'] = subResults;
  return { pub: pubResult, subs: subResults, cpuMs };
}

const SCENARIOS: Scenario[] = [
  {
    id: 'S1',
    title: `S1: one publisher to one subscriber, ${PAYLOAD} B payloads`,
    warmUp: warmCounts,
    async run(ctx, record, counts) {
      const { pub, subs, cpuMs } = await fanout(ctx, record, { procs: 1, connsPerProc: 1, count: counts.s1, payload: PAYLOAD });
      const received = sum(subs.map((s) => num(s, 'received')));
      const seconds = (Math.max(...subs.map((s) => num(s, 'lastAt'))) - num(pub, 'startAt')) / 1000;
      Object.assign(record.figures, {
        sent: num(pub, 'sent'),
        received,
        lost: num(pub, 'sent') - received,
        seconds,
        rate: received / seconds,
        mbPerSecond: (received * PAYLOAD) / seconds / 1e6,
        cpuUsPerMsg: (cpuMs * 1000) / num(pub, 'sent'),
        publisherCpuMs: num(pub, 'cpuMs'),
        subscriberCpuMs: num(subs[0]!, 'cpuMs'),
        ...flowFigures(pub),
      });
    },
  },
  {
    id: 'S2',
    title: `S2: one publisher to ${COUNTS.s2Procs * COUNTS.s2Conns} subscribers (${COUNTS.s2Procs} processes × ${COUNTS.s2Conns} connections), ${PAYLOAD} B`,
    warmUp: warmCounts,
    async run(ctx, record, counts) {
      const { pub, subs, cpuMs } = await fanout(ctx, record, { procs: counts.s2Procs, connsPerProc: counts.s2Conns, count: counts.s2, payload: PAYLOAD });
      const received = sum(subs.map((s) => num(s, 'received')));
      const seconds = (Math.max(...subs.map((s) => num(s, 'lastAt'))) - num(pub, 'startAt')) / 1000;
      const expected = num(pub, 'sent') * counts.s2Procs * counts.s2Conns;
      Object.assign(record.figures, {
        sent: num(pub, 'sent'),
        deliveries: received,
        lost: expected - received,
        seconds,
        rate: received / seconds,
        publishedPerSecond: num(pub, 'sent') / seconds,
        cpuUsPerMsg: (cpuMs * 1000) / num(pub, 'sent'),
        cpuUsPerDelivery: (cpuMs * 1000) / received,
        publisherCpuMs: num(pub, 'cpuMs'),
        subscribersCpuMs: sum(subs.map((s) => num(s, 'cpuMs'))),
      });
    },
  },
  ...[1, COUNTS.inFlight].map(
    (inFlight): Scenario => ({
      id: inFlight === 1 ? 'S3S' : 'S3P',
      title:
        inFlight === 1
          ? `S3 sequential: request/reply through the broker, one at a time, ${PAYLOAD} B echoed`
          : `S3 ${inFlight} in flight: request/reply through the broker, ${inFlight} outstanding, ${PAYLOAD} B echoed`,
      warmUp: warmCounts,
    async run(ctx, record, counts) {
        const subject = 'bench.rpc';
        const responder = ctx.spawn('responder', 'responder', { target: ctx.target, subject });
        await responder.ready;
        responder.send('go');
        const requester = ctx.spawn('requester', 'requester', { target: ctx.target, subject, count: counts.s3, inFlight, payloadSize: PAYLOAD });
        await requester.ready;
        const cpu0 = ctx.cpu();
        requester.send('go');
        const r = await requester.result;
        const cpuMs = ctx.cpu() - cpu0;
        responder.send('stop');
        record.roles['requester'] = [r];
        record.roles['responder'] = [await responder.result.catch((e: Error) => ({ error: e.message }))];
        const seconds = (num(r, 'endAt') - num(r, 'startAt')) / 1000;
        const completed = num(r, 'completed');
        Object.assign(record.figures, {
          completed,
          errors: num(r, 'errors'),
          seconds,
          rate: completed / seconds,
          p50Ms: num(r, 'p50Ms'),
          p99Ms: num(r, 'p99Ms'),
          cpuUsPerMsg: (cpuMs * 1000) / completed,
          requesterCpuMs: num(r, 'cpuMs'),
        });
        if (num(r, 'errors') > 0) record.figures['firstError'] = String(r['firstError']);
      },
    }),
  ),
  {
    id: 'S4',
    title: `S4: ${COUNTS.s4Procs * COUNTS.s4Conns} idle connections (${COUNTS.s4Procs} processes × ${COUNTS.s4Conns}), broker RSS per connection`,
    async run(ctx, record) {
      await sleep(500);
      const base = procMem(ctx.server.pid).rss;
      const holders: Role[] = [];
      for (let i = 0; i < COUNTS.s4Procs; i++) {
        holders.push(ctx.spawn(`idle${i}`, 'idle', { target: ctx.target, connections: COUNTS.s4Conns, concurrency: 50 }));
      }
      const t0 = now();
      await allReady(holders);
      const openSeconds = (now() - t0) / 1000;
      await sleep(2000);
      const after = procMem(ctx.server.pid).rss;
      for (const h of holders) h.send('go');
      for (const h of holders) h.send('stop');
      const results = await Promise.all(holders.map((h) => h.result));
      record.roles['idle'] = results;
      const connections = COUNTS.s4Procs * COUNTS.s4Conns;
      Object.assign(record.figures, {
        connections,
        open: sum(results.map((r) => num(r, 'open'))),
        rssBeforeBytes: base,
        rssAfterBytes: after,
        bytesPerConnection: (after - base) / connections,
        openSeconds,
      });
    },
  },
  {
    id: 'S5',
    title: `S5: a stream of ${COUNTS.s5} × 1 MiB payloads, one publisher to one subscriber`,
    async run(ctx, record) {
      const { pub, subs, cpuMs } = await fanout(ctx, record, { procs: 1, connsPerProc: 1, count: COUNTS.s5, payload: MiB });
      const bytes = sum(subs.map((s) => num(s, 'bytes')));
      const seconds = (Math.max(...subs.map((s) => num(s, 'lastAt'))) - num(pub, 'startAt')) / 1000;
      Object.assign(record.figures, {
        sent: num(pub, 'sent'),
        received: sum(subs.map((s) => num(s, 'received'))),
        seconds,
        rate: bytes / seconds / 1e6,
        cpuMsPerMiB: cpuMs / (bytes / MiB),
        ...flowFigures(pub),
      });
    },
  },
  {
    id: 'S6',
    title: `S6: fan-out to 10 subscribers for ${COUNTS.s6Ms / 1000} s, one of which stops reading after ${(STALL_AT * COUNTS.s6Ms) / 1000} s (${PAYLOAD} B)`,
    async run(ctx, record) {
      const subject = 'bench.s6';
      const D = COUNTS.s6Ms;
      const subs: Role[] = [];
      for (let i = 0; i < 3; i++) subs.push(ctx.spawn(`subscriber${i}`, 'subscriber', { target: ctx.target, subject, connections: 3, expected: 0 }));
      const stalled = ctx.spawn('stalled', 'stalled', { target: ctx.target, subject });
      await allReady([...subs, stalled]);
      const stalledPorts = clientPorts(stalled.child.pid!, ctx.server.port);
      let cutAt = 0;
      const watch = (): void => {
        if (cutAt === 0 && stalledPorts.length > 0 && !stalledPorts.some((p) => serverHolds(ctx.server.pid, ctx.server.port, p))) cutAt = now();
      };
      const pub = ctx.spawn('publisher', 'publisher', { target: ctx.target, subject, count: COUNTS.s6Cap, payloadSize: PAYLOAD, durationMs: D });
      await pub.ready;
      for (const r of [...subs, stalled]) r.send('go');
      const cpu0 = ctx.cpu();
      const t0 = now();
      pub.send('go');
      await sleep(STALL_AT * D);
      stalled.send('stall');
      const tStall = now();
      const watcher = setInterval(watch, 250);
      const rssAtStall = procMem(ctx.server.pid).rss;
      const pubResult = await pub.result.finally(() => clearInterval(watcher));
      await sleep(300);
      watch();
      const cpuMs = ctx.cpu() - cpu0;
      const tEnd = t0 + D;
      for (const r of [...subs, stalled]) r.send('stop');
      const subResults = await Promise.all(subs.map((s) => s.result));
      const stalledResult = await stalled.result;
      record.roles['publisher'] = [pubResult];
      record.roles['subscriber'] = subResults;
      record.roles['stalled'] = [stalledResult];
      const C = (t: number): number => sum(subs.map((s) => s.countAt(t)));
      const before = C(tStall) / ((tStall - t0) / 1000);
      const lastQuarter = t0 + 0.75 * D;
      const after = (C(tEnd) - C(lastQuarter)) / ((tEnd - lastQuarter) / 1000);
      const overall = C(tEnd) / (D / 1000);
      const rssAfterStall = ctx.rss.filter((s) => s.at >= tStall && s.at < lastQuarter).map((s) => s.rss);
      const rssLastQuarter = ctx.rss.filter((s) => s.at >= lastQuarter).map((s) => s.rss);
      const rssMaxBefore = Math.max(rssAtStall, ...rssAfterStall);
      const rssMaxAfter = Math.max(rssMaxBefore, ...rssLastQuarter);
      const rssEnd = procMem(ctx.server.pid).rss;
      const rateHolds = after >= 0.5 * before;
      // Bounded: at most twice the 64 MiB per-consumer limit (ours and nats-server's default) + 32 MiB.
      const rssHolds = rssMaxAfter - rssAtStall <= 160 * MiB;
      Object.assign(record.figures, {
        sent: num(pubResult, 'sent'),
        rate: overall,
        rateBeforeStall: before,
        rateLastQuarter: after,
        rssAtStallBytes: rssAtStall,
        rssMaxAfterStallBytes: rssMaxAfter,
        rssEndBytes: rssEnd,
        rssGrowthBytes: rssMaxAfter - rssAtStall,
        stalledDisconnected: cutAt > 0,
        stalledCutAfterMs: cutAt > 0 ? cutAt - tStall : Number.NaN,
        stalledClientSawClose: Boolean(stalledResult['disconnected']),
        stalledPorts: stalledPorts.join(' '),
        rssLastQuarterGrowthBytes: rssMaxAfter - rssMaxBefore,
        cpuUsPerMsg: (cpuMs * 1000) / Math.max(1, num(pubResult, 'sent')),
        holds: rateHolds && rssHolds,
        rateHolds,
        rssHolds,
      });
    },
  },
];

// ----- running -----------------------------------------------------------------------------------------------

async function runScenario(system: SystemName, scenario: Scenario): Promise<ScenarioRecord> {
  const record: ScenarioRecord = {
    system,
    scenario: scenario.id,
    status: 'ok',
    figures: {},
    server: { cpuMs: 0, peakRssBytes: 0, rssStartBytes: 0, rssEndBytes: 0 },
    roles: {},
    seconds: 0,
  };
  const started = now();
  let server: ServerHandle;
  try {
    server = await startServer(system);
  } catch (error) {
    record.status = 'failed';
    record.error = error instanceof Error ? error.message : String(error);
    return record;
  }
  await sleep(300);
  const roles: Role[] = [];
  const rss: { at: number; rss: number }[] = [];
  const sampler = setInterval(() => rss.push({ at: now(), rss: procMem(server.pid).rss }), 100);
  const ctx: Ctx = {
    system,
    server,
    target: { system, host: '127.0.0.1', port: server.port },
    roles,
    spawn(name, script, config) {
      const role = new Role(name, script, config);
      roles.push(role);
      return role;
    },
    cpu: () => procCpuMs(server.pid),
    rss,
  };
  const cpuStart = ctx.cpu();
  record.server.rssStartBytes = procMem(server.pid).rss;
  let timer: NodeJS.Timeout | undefined;
  const limit = scenario.id === 'S6' ? TIMEOUT_MS + COUNTS.s6Ms : TIMEOUT_MS;
  try {
    if (WARM_UP && scenario.warmUp !== undefined) await warmUp(ctx, scenario, record, limit);
    await Promise.race([
      scenario.run(ctx, record, COUNTS),
      new Promise((_, reject) => (timer = setTimeout(() => reject(new TimeoutError(`no result within ${limit / 1000} s`)), limit))),
    ]);
    if (server.exited()) throw new Error(`the server exited: ${server.output().trim().split('\n').slice(-3).join(' | ')}`);
  } catch (error) {
    record.status = error instanceof TimeoutError ? 'timeout' : 'failed';
    record.error = error instanceof Error ? error.message : String(error);
  } finally {
    clearTimeout(timer);
    clearInterval(sampler);
    const mem = procMem(server.pid);
    record.server.cpuMs = ctx.cpu() - cpuStart;
    record.server.peakRssBytes = mem.hwm;
    record.server.rssEndBytes = mem.rss;
    record.figures['peakRssBytes'] = mem.hwm;
    for (const role of roles) role.send('stop');
    await Promise.race([Promise.all(roles.map((r) => r.result.catch(() => {}))), sleep(3000)]);
    for (const role of roles) role.kill();
    await server.stop();
  }
  record.seconds = (now() - started) / 1000;
  return record;
}

/**
 * Runs the scenario's warm-up (see WARM_UP): WARM_UP_PASSES passes, each with role processes of its own
 * that are stopped and removed before the next, so the server has also seen clients leave. Records the
 * first pass's figures (the server's first traffic) and what all passes cost the server.
 */
async function warmUp(ctx: Ctx, scenario: Scenario, record: ScenarioRecord, limit: number): Promise<void> {
  const cpu0 = ctx.cpu();
  const started = now();
  let first: ScenarioRecord | undefined;
  for (let pass = 0; pass < WARM_UP_PASSES; pass++) {
    const scratch: ScenarioRecord = { ...record, figures: {}, roles: {}, status: 'ok' };
    first ??= scratch;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        scenario.run(ctx, scratch, scenario.warmUp!(COUNTS)),
        new Promise((_, reject) => (timer = setTimeout(() => reject(new TimeoutError(`warm-up: no result within ${limit / 1000} s`)), limit))),
      ]);
    } catch (error) {
      scratch.status = error instanceof TimeoutError ? 'timeout' : 'failed';
      scratch.error = error instanceof Error ? error.message : String(error);
    } finally {
      clearTimeout(timer);
    }
    const roles = ctx.roles.splice(0);
    for (const role of roles) role.send('stop');
    await Promise.race([Promise.all(roles.map((r) => r.result.catch(() => {}))), sleep(3000)]);
    for (const role of roles) role.kill();
    if (scratch.status !== 'ok') {
      first = scratch;
      break;
    }
    await sleep(200);
  }
  record.warmUp = {
    figures: first!.figures, passes: WARM_UP_PASSES, serverCpuMs: ctx.cpu() - cpu0, seconds: (now() - started) / 1000, status: first!.status,
  };
  if (first!.error !== undefined) record.warmUp.error = first!.error;
  // A failed warm-up fails the scenario: the measured pass would not be on a warm server.
  if (first!.status !== 'ok') throw new Error(`warm-up ${first!.status}: ${first!.error ?? ''}`);
}

function machine(): RunRecord['machine'] {
  let cpu = os.cpus()[0]?.model ?? '?';
  try {
    cpu = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpu;
  } catch {
    /* keep os.cpus() */
  }
  return {
    nproc: os.availableParallelism(),
    cpu,
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    loadStart: os.loadavg().map((l) => Math.round(l * 100) / 100),
    loadEnd: [],
  };
}

async function main(): Promise<void> {
  const t0 = now();
  const scenarios = SCENARIOS.filter((s) => SCENARIO_FILTER === undefined || SCENARIO_FILTER.some((f) => s.id.startsWith(f)));
  const run: RunRecord = {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    quick: QUICK,
    full: FULL,
    command: `node dist/bench/run.js ${process.argv.slice(2).join(' ')}`.trim(),
    machine: machine(),
    counts: COUNTS,
    warmUp: WARM_UP,
    payloadBytes: PAYLOAD,
    systems: {},
    notes: process.env['BENCH_PRESSURE_HOLD'] ? [`BENCH_PRESSURE_HOLD=${process.env['BENCH_PRESSURE_HOLD']}: our SDK's pressureHold set to that many ms (default 10)`] : [],
    results: [],
    seconds: 0,
  };
  process.stdout.write(`bench: ${scenarios.map((s) => s.id).join(', ')} on ${SYSTEMS.join(', ')}${QUICK ? ' (quick)' : ''}; load ${run.machine.loadStart.join(' ')}; CLK_TCK ${CLK_TCK}\n`);
  for (const system of SYSTEMS) {
    const availability = checkSystem(system);
    run.systems[system] = { ...availability, client: clientOf(system) };
    if (!availability.available) process.stdout.write(`bench: ${system} skipped: ${availability.note}\n`);
    else if (availability.note) process.stdout.write(`bench: ${system}: ${availability.note}\n`);
  }
  for (const scenario of scenarios) {
    for (const system of SYSTEMS) {
      const only = SYSTEM_SCENARIOS[system];
      if (only !== undefined && !only.includes(scenario.id)) continue;
      if (!run.systems[system]!.available) {
        run.results.push({ system, scenario: scenario.id, status: 'skipped', error: run.systems[system]!.note, figures: {}, server: { cpuMs: 0, peakRssBytes: 0, rssStartBytes: 0, rssEndBytes: 0 }, roles: {}, seconds: 0 });
        continue;
      }
      const record = await runScenario(system, scenario);
      run.results.push(record);
      const f = record.figures;
      const main = typeof f['rate'] === 'number' ? `rate ${Math.round(f['rate'])}` : typeof f['bytesPerConnection'] === 'number' ? `${Math.round(f['bytesPerConnection'])} B/conn` : '';
      process.stdout.write(`  ${scenario.id.padEnd(4)} ${system.padEnd(12)} ${record.status.padEnd(7)} ${main} ${record.error ?? ''} (${record.seconds.toFixed(1)} s)\n`);
    }
  }
  run.machine.loadEnd = os.loadavg().map((l) => Math.round(l * 100) / 100);
  run.seconds = (now() - t0) / 1000;
  const markdown = renderRun(run, SCENARIOS.map((s) => ({ id: s.id, title: s.title })));
  process.stdout.write(`\n${markdown}\n`);
  if (WRITE) {
    replaceSections(path.join(ROOT, 'bench/results.md'), (h) => h.startsWith('## Run '), markdown, 'first');
    writeFileSync(path.join(ROOT, 'bench/results.json'), `${JSON.stringify(run, null, 1)}\n`);
    process.stdout.write('bench: wrote bench/results.md and bench/results.json\n');
  } else {
    const file = path.join(os.tmpdir(), 'socketd-bench-last.json');
    writeFileSync(file, `${JSON.stringify(run, null, 1)}\n`);
    process.stdout.write(`bench: not a full run: results.md left alone (use --write); raw figures in ${file}\n`);
  }
}

main().catch((error) => {
  process.stderr.write(`bench: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
