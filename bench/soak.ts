/**
 * Soak test of the broker: `npm run soak` (= build, then `node dist/bench/soak.js`).
 *
 *   node dist/bench/soak.js [--minutes=3] [--connections=5000] [--quick] [--write | --no-write] [--seed=N]
 *
 * Starts the broker as its own process (bin/socketd-broker.js with a temporary YAML config, tcp + ws + udp
 * on free loopback ports), forks client processes (bench/soak/worker.ts, about 1,000 connections each,
 * spread over tcp/ws/udp about 50/35/15) plus one small "victim" process of stream responders that is
 * SIGKILLed and restarted during the run, runs mixed send/request/stream traffic with churn, samples the
 * broker's RSS and CPU every second, and reports how every Request and Subscribe ended. LOST (neither
 * answered, nor alarmed, nor failed because the requester's own connection was churned) must be 0: the exit
 * code is 1 otherwise, 2 when the harness itself failed (broker did not start, hard deadline).
 *
 * A full run (not --quick) writes the `## Soak` section of bench/results.md and bench/soak-results.json;
 * --quick (30 s, 500 connections) only prints, and leaves the JSON in $TMPDIR/socketd-soak-last.json.
 * Hard deadline: minutes + 60 s from start; every child process is killed on exit, SIGINT and SIGTERM.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, closeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { matchPattern } from '../src/client/index.js';
import {
  Histogram,
  lostOf,
  mergeOutcomes,
  newOutcomes,
  sleep,
  sumValues,
  type ConnSpec,
  type FromWorker,
  type Outcomes,
  type Role,
  type Timing,
  type ToWorker,
  type Transport,
  type WorkerPlan,
  type WorkerStats,
} from './soak/common.js';
import { renderSection, renderSummary, replaceSection } from './soak/report.js';

const here = path.dirname(fileURLToPath(import.meta.url)); // dist/bench
const root = path.resolve(here, '..', '..');
const WORKER = path.join(here, 'soak', 'worker.js');
const CONNS_PER_PROCESS = 1_000;

// ----- options -------------------------------------------------------------------------------------------

interface Options {
  minutes: number;
  connections: number;
  quick: boolean;
  write: boolean;
  seed: number;
}

function parseArgs(argv: string[]): Options {
  const get = (name: string): string | undefined => {
    const a = argv.find((x) => x === `--${name}` || x.startsWith(`--${name}=`));
    if (a === undefined) return undefined;
    return a.includes('=') ? a.slice(a.indexOf('=') + 1) : 'true';
  };
  for (const a of argv) {
    if (!/^--(minutes|connections|quick|write|no-write|seed|help)(=|$)/.test(a)) throw new Error(`unknown option ${a}`);
  }
  if (get('help') !== undefined) {
    process.stdout.write('usage: node dist/bench/soak.js [--minutes=3] [--connections=5000] [--quick] [--write|--no-write] [--seed=N]\n');
    process.exit(0);
  }
  const quick = get('quick') !== undefined;
  const minutes = Number(get('minutes') ?? (quick ? 0.5 : 3));
  const connections = Number(get('connections') ?? (quick ? 500 : 5_000));
  if (!(minutes > 0 && minutes <= 60)) throw new Error('--minutes must be in (0, 60]');
  if (!(Number.isInteger(connections) && connections >= 100 && connections <= 15_000)) throw new Error('--connections must be an integer in 100..15000');
  const write = get('no-write') !== undefined ? false : get('write') !== undefined ? true : !quick;
  return { minutes, connections, quick, write, seed: Number(get('seed') ?? Date.now() % 1_000_000) };
}

// ----- the plan ------------------------------------------------------------------------------------------

/** 20 slots: 10 tcp, 7 ws, 3 udp (50/35/15), interleaved. */
const TRANSPORT_CYCLE: Transport[] = [
  'tcp', 'ws', 'tcp', 'udp', 'ws', 'tcp', 'ws', 'tcp', 'tcp', 'ws',
  'tcp', 'udp', 'ws', 'tcp', 'ws', 'tcp', 'tcp', 'ws', 'udp', 'tcp',
];

interface Plan {
  workers: WorkerPlan[];
  victim: WorkerPlan;
  roles: Record<string, number>;
  byTransport: Record<Transport, number>;
  timing: Timing;
}

function buildPlan(opts: Options, urls: Record<Transport, string>, timing: Timing): Plan {
  const n = opts.connections;
  const s = n / 5_000;
  const victims = opts.quick ? 3 : 6;
  const counts: [Role, number][] = [
    ['echo', Math.max(3, Math.round(12 * s))],
    ['slow', Math.max(2, Math.round(6 * s))],
    ['feeder', Math.max(2, Math.round(8 * s))],
    ['requester', Math.max(10, Math.round(150 * s))],
    ['streamer', Math.max(6, Math.round(60 * s))],
    ['publisher', Math.max(4, Math.round(20 * s))],
    ['subscriber', Math.max(20, Math.round(300 * s))],
  ];
  const used = counts.reduce((a, [, c]) => a + c, 0) + victims;
  counts.push(['idle', Math.max(0, n - used)]);
  const rooms = Math.max(4, Math.round(20 * s));
  const hosts = 10;
  let inboxes = 0;
  const specs: ConnSpec[] = [];
  for (const [role, count] of counts) {
    for (let j = 0; j < count; j++) {
      const transport = TRANSPORT_CYCLE[j % TRANSPORT_CYCLE.length]!;
      const alt = Math.floor(j / 5) % 2 === 0 ? 'graceful' : 'abrupt';
      const spec: ConnSpec = { id: '', role, transport, churn: 'none' };
      switch (role) {
        case 'echo':
        case 'slow':
        case 'feeder':
          spec.name = role;
          if (j % 4 === 1) spec.churn = 'graceful';
          break;
        case 'idle':
          if (j % 10 === 3) spec.churn = Math.floor(j / 10) % 2 === 0 ? 'graceful' : 'abrupt';
          break;
        case 'subscriber': {
          if (j % 5 === 2) spec.churn = alt;
          const k = j % 10;
          if (k <= 3) spec.patterns = [`chat.room.${j % rooms}`];
          else if (k === 4) spec.patterns = ['chat.room.*'];
          else if (k <= 6) spec.patterns = ['metrics.>'];
          else if (k === 7) spec.patterns = ['metrics.*.cpu'];
          else spec.name = `inbox-${inboxes++}`;
          break;
        }
        default:
          if (j % 5 === 2) spec.churn = alt;
      }
      specs.push(spec);
    }
  }
  // Interleave the roles over the processes: process i gets every W-th spec.
  const w = Math.max(2, Math.round(specs.length / CONNS_PER_PROCESS));
  const order = specs.map((x, i) => ({ x, k: (i * 7919) % specs.length })).sort((a, b) => a.k - b.k).map((e) => e.x);
  const workers: WorkerPlan[] = [];
  for (let i = 0; i < w; i++) {
    const conns = order.filter((_, k) => k % w === i).map((spec, k) => ({ ...spec, id: `w${i}.c${k}` }));
    workers.push({ label: `w${i}`, seed: opts.seed * 31 + i, urls, conns, timing, rooms, hosts, inboxes });
  }
  const victimConns: ConnSpec[] = Array.from({ length: victims }, (_, k) => ({
    id: `victim.c${k}`, role: 'victim' as Role, transport: (k % 2 === 0 ? 'tcp' : 'ws') as Transport, churn: 'none' as const, name: 'feeder',
  }));
  const victim: WorkerPlan = { label: 'victim', seed: opts.seed * 31 + 99, urls, conns: victimConns, timing, rooms, hosts, inboxes };
  const roles: Record<string, number> = { victim: victims };
  const byTransport: Record<Transport, number> = { tcp: 0, ws: 0, udp: 0 };
  for (const p of [...workers, victim]) {
    for (const c of p.conns) {
      roles[c.role] = (roles[c.role] ?? 0) + (c.role === 'victim' ? 0 : 1);
      byTransport[c.transport]++;
    }
  }
  return { workers, victim, roles, byTransport, timing };
}

// ----- child processes -----------------------------------------------------------------------------------

const children = new Set<ChildProcess>();
/** Victim sockets destroyed mid-stream, over every victim process (killed ones included). */
let midStreamKills = 0;

function killAll(signal: NodeJS.Signals = 'SIGKILL'): void {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        c.kill(signal);
      } catch {
        /* gone */
      }
    }
  }
}

process.on('exit', () => killAll('SIGKILL'));
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    process.stderr.write(`\nsoak: ${sig}, stopping every process\n`);
    killAll('SIGKILL');
    process.exit(130);
  });
}

class Worker {
  readonly proc: ChildProcess;
  private waiters: { type: string; resolve: (m: FromWorker) => void }[] = [];
  exited = false;
  stats: WorkerStats | null = null;

  constructor(readonly plan: WorkerPlan) {
    this.proc = fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: ['--max-old-space-size=1024'] });
    children.add(this.proc);
    this.proc.on('message', (m: FromWorker) => {
      if (m.type === 'fatal') process.stderr.write(`soak: ${m.message}\n`);
      if (m.type === 'stats') this.stats = m.stats;
      if (m.type === 'midStreamKill') midStreamKills++;
      const i = this.waiters.findIndex((w) => w.type === m.type);
      if (i !== -1) this.waiters.splice(i, 1)[0]!.resolve(m);
    });
    this.proc.on('exit', () => {
      this.exited = true;
      children.delete(this.proc);
    });
    this.send({ type: 'plan', plan });
  }

  send(m: ToWorker): void {
    if (!this.exited && this.proc.connected) this.proc.send(m);
  }

  next<T extends FromWorker['type']>(type: T, timeoutMs: number): Promise<Extract<FromWorker, { type: T }> | null> {
    return new Promise((resolve) => {
      const w = { type, resolve: (m: FromWorker) => resolve(m as Extract<FromWorker, { type: T }>) };
      this.waiters.push(w);
      setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i !== -1) {
          this.waiters.splice(i, 1);
          resolve(null);
        }
      }, timeoutMs).unref();
    });
  }
}

// ----- /proc and /metrics --------------------------------------------------------------------------------

const CLK_TCK = 100;

function procSample(pid: number): { rss: number; cpu: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cpu = (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime, stime (fields 14, 15)
    return { rss, cpu };
  } catch {
    return null;
  }
}

async function scrape(port: number): Promise<Map<string, number> | null> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(3_000) });
    const text = await res.text();
    const out = new Map<string, number>();
    for (const line of text.split('\n')) {
      if (line.length === 0 || line.startsWith('#')) continue;
      const sp = line.lastIndexOf(' ');
      out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
    }
    return out;
  } catch {
    return null;
  }
}

function metricsBy(m: Map<string, number> | null, name: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  if (m === null) return out;
  const re = new RegExp(`^${name}\\{.*${label}="([^"]*)".*\\}$`);
  for (const [k, v] of m) {
    const r = re.exec(k);
    if (r !== null) out[r[1]!] = v;
  }
  return out;
}

// ----- main ----------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const opts = parseArgs(process.argv.slice(2));
  const startedAt = Date.now();
  const nominalTrafficMs = Math.round(opts.minutes * 60_000);
  const deadlineMs = nominalTrafficMs + 60_000;
  const deadline = setTimeout(() => {
    process.stderr.write(`soak: hard deadline (${Math.round(deadlineMs / 1000)} s) reached, killing everything\n`);
    killAll('SIGKILL');
    process.exit(2);
  }, deadlineMs);
  deadline.unref();
  const loadStart = os.loadavg();

  const timing: Timing = {
    brokerRequestMs: 5_000,
    brokerStreamMs: 10_000,
    clientRequestMs: 8_000,
    clientStreamMs: 13_000,
    churnMinMs: opts.quick ? 2_000 : 3_000,
    churnMaxMs: opts.quick ? 8_000 : 12_000,
    requestsInFlight: 2,
    requestsPerSecond: 5,
    streamsInFlight: 2,
    streamsPerSecond: 1,
    messagesPerSecond: 5,
    connectConcurrency: 40,
    victimKillProbability: 0.05,
  };

  // --- the broker
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'socketd-soak-'));
  const raised: string[] = [`limits.handshakesPerSecond: 2000 → 10000 (the initial ${opts.connections} connects and the churn's reconnects come in bursts)`];
  const perIp = Math.max(10_000, opts.connections * 2);
  if (perIp > 10_000) raised.push(`limits.maxConnectionsPerIp: 10000 → ${perIp} (every connection comes from 127.0.0.1)`);
  const yaml = [
    '# socketd-broker soak configuration (written by bench/soak.ts)',
    'listeners:',
    '  tcp: { enabled: true, host: 127.0.0.1, port: 0 }',
    '  udp: { enabled: true, host: 127.0.0.1, port: 0 }',
    '  ws:  { enabled: true, host: 127.0.0.1, port: 0 }',
    'http: { enabled: true, host: 127.0.0.1, port: 0, serveExamples: false }',
    'limits:',
    '  handshakesPerSecond: 10000',
    ...(perIp > 10_000 ? [`  maxConnectionsPerIp: ${perIp}`] : []),
    'timeouts:',
    `  requestMs: ${timing.brokerRequestMs}`,
    `  streamMs: ${timing.brokerStreamMs}`,
    'log: { level: info }',
    'shutdown: { drainMs: 2000 }',
    '',
  ].join('\n');
  const configFile = path.join(tmp, 'broker.yaml');
  const logFile = path.join(tmp, 'broker.log');
  writeFileSync(configFile, yaml);
  const logFd = openSync(logFile, 'w');
  const broker = spawn(process.execPath, [path.join(root, 'bin', 'socketd-broker.js'), '--config', configFile], {
    stdio: ['ignore', logFd, logFd],
    cwd: root,
  });
  closeSync(logFd);
  children.add(broker);
  let brokerExit: { code: number | null; signal: string | null } | null = null;
  broker.on('exit', (code, signal) => {
    brokerExit = { code, signal };
    children.delete(broker);
  });

  let addresses: Record<string, { port: number }> | null = null;
  for (let i = 0; i < 150 && addresses === null && brokerExit === null; i++) {
    await sleep(100);
    for (const line of readFileSync(logFile, 'utf8').split('\n')) {
      if (!line.includes('broker_started')) continue;
      try {
        addresses = (JSON.parse(line) as { addresses: Record<string, { port: number }> }).addresses;
      } catch {
        /* partial line */
      }
    }
  }
  if (addresses === null) {
    process.stderr.write(`soak: the broker did not start:\n${readFileSync(logFile, 'utf8').slice(-2000)}\n`);
    killAll();
    return 2;
  }
  const httpPort = addresses['http']!.port;
  const urls: Record<Transport, string> = {
    tcp: `sd:tcp://127.0.0.1:${addresses['tcp']!.port}`,
    ws: `sd:ws://127.0.0.1:${addresses['ws']!.port}/`,
    udp: `sd:udp://127.0.0.1:${addresses['udp']!.port}`,
  };
  const brokerPid = broker.pid!;
  const plan = buildPlan(opts, urls, timing);
  const log = (s: string): void => {
    process.stdout.write(`[${((Date.now() - startedAt) / 1000).toFixed(1).padStart(6)} s] ${s}\n`);
  };
  log(`broker pid ${brokerPid}: tcp ${addresses['tcp']!.port}, ws ${addresses['ws']!.port}, udp ${addresses['udp']!.port}, http ${httpPort}; log ${logFile}`);
  log(`${opts.connections} connections (tcp ${plan.byTransport.tcp}, ws ${plan.byTransport.ws}, udp ${plan.byTransport.udp}) in ${plan.workers.length} processes + victim; traffic ${nominalTrafficMs / 1000} s; seed ${opts.seed}`);

  // --- sampling
  const all: Worker[] = [];
  const t0 = Date.now();
  const samples: { t: number; rss: number; cpu: number }[] = [];
  const metricSeries: { t: number; sessions: number; streams: number; connections: Record<string, number> }[] = [];
  const workerSamples = new Map<number, number>(); // pid → peak rss
  const sampler = setInterval(() => {
    const s = procSample(brokerPid);
    if (s !== null) samples.push({ t: (Date.now() - t0) / 1000, ...s });
    for (const w of all) {
      const p = w.proc.pid;
      if (p === undefined || w.exited) continue;
      const ws = procSample(p);
      if (ws !== null) workerSamples.set(p, Math.max(workerSamples.get(p) ?? 0, ws.rss));
    }
  }, 1_000);
  let scraping = false;
  const scraper = setInterval(() => {
    if (scraping) return;
    scraping = true;
    void scrape(httpPort).then((m) => {
      scraping = false;
      if (m === null) return;
      metricSeries.push({
        t: (Date.now() - t0) / 1000,
        sessions: m.get('socketd_sessions_open') ?? 0,
        streams: m.get('socketd_streams_open') ?? 0,
        connections: metricsBy(m, 'socketd_connections_open', 'transport'),
      });
    });
  }, 5_000);
  const metricsBefore = await scrape(httpPort);

  // --- connect
  const workers = plan.workers.map((p) => new Worker(p));
  all.push(...workers);
  let victim = new Worker(plan.victim);
  all.push(victim);
  const connectLimit = 60_000;
  const readies = await Promise.all([...workers, victim].map((w) => w.next('ready', connectLimit)));
  const connectMs = Date.now() - t0;
  let connected = 0;
  let connectFailed = 0;
  for (const r of readies) {
    connected += r?.connected ?? 0;
    connectFailed += r?.failed ?? 0;
  }
  if (readies.some((r) => r === null)) {
    process.stderr.write(`soak: not every process connected within ${connectLimit / 1000} s\n`);
    killAll();
    return 2;
  }
  log(`connected ${connected} of ${opts.connections} in ${(connectMs / 1000).toFixed(1)} s (${connectFailed} gave up)`);
  const rssAtGo = procSample(brokerPid);

  // --- traffic: as long as asked, but leave 45 s of the hard deadline for the drain, the report and the stops
  const trafficMs = Math.min(nominalTrafficMs, deadlineMs - (Date.now() - startedAt) - 45_000);
  if (trafficMs < nominalTrafficMs) log(`traffic shortened to ${(trafficMs / 1000).toFixed(0)} s to stay within the hard deadline`);
  const goAt = Date.now();
  for (const w of [...workers, victim]) w.send({ type: 'go' });
  const kills: { at: number; pid: number | undefined }[] = [];
  const killTimes = opts.quick ? [0.5] : [0.35, 0.7];
  const progress = setInterval(() => {
    const last = samples[samples.length - 1];
    const m = metricSeries[metricSeries.length - 1];
    log(`traffic ${Math.round((Date.now() - goAt) / 1000)} s: broker RSS ${last ? (last.rss / 2 ** 20).toFixed(0) : '?'} MiB, sessions ${m?.sessions ?? '?'}, streams open ${m?.streams ?? '?'}`);
  }, opts.quick ? 10_000 : 20_000);
  let killIdx = 0;
  while (Date.now() - goAt < trafficMs) {
    await sleep(200);
    if (brokerExit !== null) break;
    if (killIdx < killTimes.length && Date.now() - goAt >= killTimes[killIdx]! * trafficMs) {
      killIdx++;
      kills.push({ at: (Date.now() - goAt) / 1000, pid: victim.proc.pid });
      log(`SIGKILL the victim responder process (pid ${victim.proc.pid}, ${plan.victim.conns.length} stream responders) and start a new one`);
      victim.proc.kill('SIGKILL');
      const fresh = new Worker(plan.victim);
      victim = fresh;
      all.push(fresh);
      void fresh.next('ready', 30_000).then(() => fresh.send({ type: 'go' }));
    }
  }
  clearInterval(progress);
  const trafficS = (Date.now() - goAt) / 1000;
  if (brokerExit !== null) {
    process.stderr.write(`soak: the broker exited during the run: ${JSON.stringify(brokerExit)}\n${readFileSync(logFile, 'utf8').slice(-3000)}\n`);
    killAll();
    return 2;
  }

  // --- drain and collect
  log('stop: no new traffic; waiting for everything in flight');
  const live = [...workers, victim];
  for (const w of live) w.send({ type: 'stop' });
  const drained = await Promise.all(live.map((w) => w.next('drained', timing.clientStreamMs + 6_000)));
  const drainMs = Date.now() - goAt - trafficS * 1000;
  await sleep(1_000);
  const metricsAfter = await scrape(httpPort);
  for (const w of live) w.send({ type: 'report' });
  await Promise.all(live.map((w) => w.next('stats', 10_000)));
  const rssEndTraffic = procSample(brokerPid);
  log(`drained in ${(drainMs / 1000).toFixed(1)} s${drained.some((d) => d === null || d.pending > 0) ? ' (some still pending!)' : ''}; closing the clients`);
  for (const w of live) w.send({ type: 'exit' });
  await Promise.race([Promise.all(live.map((w) => new Promise<void>((r) => (w.exited ? r() : w.proc.on('exit', () => r()))))), sleep(6_000)]);
  for (const w of all) if (!w.exited) w.proc.kill('SIGKILL');
  await sleep(1_500);
  const metricsClosed = await scrape(httpPort);
  const rssEnd = procSample(brokerPid);
  clearInterval(sampler);
  clearInterval(scraper);

  // --- stop the broker
  broker.kill('SIGTERM');
  for (let i = 0; i < 80 && brokerExit === null; i++) await sleep(100);
  if (brokerExit === null) broker.kill('SIGKILL');
  for (let i = 0; i < 20 && brokerExit === null; i++) await sleep(100);
  const brokerLog = readFileSync(logFile, 'utf8');

  // --- the figures
  const stats = live.map((w) => w.stats).filter((s): s is WorkerStats => s !== null);
  const result = summarize({
    opts, plan, stats, samples, metricSeries, metricsBefore, metricsAfter, metricsClosed, brokerLog, raised, yaml,
    connectMs, trafficS, drainMs, kills, startedAt, goAt, t0, rssAtGo, rssEndTraffic, rssEnd, loadStart,
    workerPeakRss: [...workerSamples.values()], collected: stats.length, expectedReports: live.length,
    brokerExit,
  });
  process.stdout.write(renderSummary(result));

  const json = JSON.stringify(result, null, 2);
  if (opts.write) {
    writeFileSync(path.join(root, 'bench', 'soak-results.json'), json + '\n');
    // Read-modify-write at the last moment: other sections of results.md belong to other benchmarks.
    const mdPath = path.join(root, 'bench', 'results.md');
    let md = '';
    try {
      md = readFileSync(mdPath, 'utf8');
    } catch {
      md = '# Benchmark results\n';
    }
    writeFileSync(mdPath, replaceSection(md, renderSection(result)));
    log('wrote bench/results.md (## Soak) and bench/soak-results.json');
  } else {
    const out = path.join(os.tmpdir(), 'socketd-soak-last.json');
    writeFileSync(out, json + '\n');
    log(`figures in ${out} (not written to bench/results.md: use --write)`);
  }
  const keepLog = result.verdict.lostRequests > 0 || result.verdict.lostStreams > 0;
  if (keepLog) log(`broker log kept for inspection: ${logFile}`);
  else rmSync(tmp, { recursive: true, force: true });
  clearTimeout(deadline);
  return result.verdict.pass ? 0 : 1;
}

// ----- summarizing ---------------------------------------------------------------------------------------

interface Collected {
  opts: Options;
  plan: Plan;
  stats: WorkerStats[];
  samples: { t: number; rss: number; cpu: number }[];
  metricSeries: { t: number; sessions: number; streams: number; connections: Record<string, number> }[];
  metricsBefore: Map<string, number> | null;
  metricsAfter: Map<string, number> | null;
  metricsClosed: Map<string, number> | null;
  brokerLog: string;
  raised: string[];
  yaml: string;
  connectMs: number;
  trafficS: number;
  drainMs: number;
  kills: { at: number; pid: number | undefined }[];
  startedAt: number;
  goAt: number;
  t0: number;
  rssAtGo: { rss: number; cpu: number } | null;
  rssEndTraffic: { rss: number; cpu: number } | null;
  rssEnd: { rss: number; cpu: number } | null;
  loadStart: number[];
  workerPeakRss: number[];
  collected: number;
  expectedReports: number;
  brokerExit: { code: number | null; signal: string | null } | null;
}

function outcomeSummary(o: Outcomes) {
  return {
    issued: o.issued,
    answered: o.answered,
    alarmed: sumValues(o.alarmed),
    alarmedByCode: o.alarmed,
    requesterChurned: o.churnedPlanned + o.churnedUnplanned,
    requesterChurnedPlanned: o.churnedPlanned,
    requesterChurnedUnplanned: o.churnedUnplanned,
    timeout: o.timeout,
    other: o.other,
    pending: o.pending,
    wrong: o.wrong,
    notSent: o.notSent,
    lost: lostOf(o),
  };
}

function quant(h: ReturnType<typeof Histogram.merge>) {
  return {
    count: h.count,
    p50: Histogram.quantile(h, 0.5),
    p99: Histogram.quantile(h, 0.99),
    p999: Histogram.quantile(h, 0.999),
    max: h.max,
    mean: h.count === 0 ? 0 : h.sum / h.count,
  };
}

/** The figures of a run, as written to soak-results.json. */
export type SoakResult = ReturnType<typeof summarize>;

function summarize(c: Collected) {
  const req = newOutcomes();
  const str = newOutcomes();
  const byKind: Record<string, Outcomes> = {};
  const byTransportOutcomes: Record<string, Outcomes> = {};
  let streamItems = 0;
  const conns = {
    connected: 0, gracefulChurns: 0, abruptChurns: 0, midStreamKills: 0, reconnects: 0, unplannedDisconnects: 0,
    reconnectStalls: 0, connectFailures: {} as Record<string, number>, unplannedSamples: [] as string[],
  };
  const sentByEvent: Record<string, { stable: number; churn: number }> = {};
  let sentDirect = 0;
  const sendRefused: Record<string, number> = {};
  const msgAlarms: Record<string, number> = {};
  const responders = { requests: 0, streams: 0, replies: 0, replyFailed: 0, delayedPastTimeout: 0, stalledStreams: 0 };
  const clientErrors: Record<string, number> = {};
  let clientCpu = 0;
  for (const s of c.stats) {
    mergeOutcomes(req, s.requests);
    mergeOutcomes(str, s.streams);
    for (const [k, o] of Object.entries(s.requestsByKind)) mergeOutcomes((byKind[k] ??= newOutcomes()), o);
    for (const [k, o] of Object.entries(s.byTransport)) mergeOutcomes((byTransportOutcomes[k] ??= newOutcomes()), o);
    streamItems += s.streamItems;
    conns.connected += s.conns.connected;
    conns.gracefulChurns += s.conns.gracefulChurns;
    conns.abruptChurns += s.conns.abruptChurns;
    conns.midStreamKills += s.conns.midStreamKills;
    conns.reconnects += s.conns.reconnects;
    conns.unplannedDisconnects += s.conns.unplannedDisconnects;
    conns.reconnectStalls += s.conns.reconnectStalls;
    for (const [k, v] of Object.entries(s.conns.connectFailures)) conns.connectFailures[k] = (conns.connectFailures[k] ?? 0) + v;
    conns.unplannedSamples.push(...s.conns.unplannedSamples.slice(0, 5));
    for (const [ev, v] of Object.entries(s.messages.sentByEvent)) {
      const e = (sentByEvent[ev] ??= { stable: 0, churn: 0 });
      e.stable += v.stable;
      e.churn += v.churn;
    }
    sentDirect += s.messages.sentDirect;
    for (const [k, v] of Object.entries(s.messages.sendRefused)) sendRefused[k] = (sendRefused[k] ?? 0) + v;
    for (const [k, v] of Object.entries(s.messages.alarms)) msgAlarms[k] = (msgAlarms[k] ?? 0) + v;
    for (const k of Object.keys(responders) as (keyof typeof responders)[]) responders[k] += s.responders[k];
    for (const [k, v] of Object.entries(s.clientErrors)) clientErrors[k] = (clientErrors[k] ?? 0) + v;
    clientCpu += s.cpuSeconds;
  }

  // Messages: expected deliveries from the static subscription plan and what was sent per event.
  const subs = c.stats.flatMap((s) => s.subscribers);
  let sentByEventTotal = 0;
  for (const v of Object.values(sentByEvent)) sentByEventTotal += v.stable + v.churn;
  let expectedAll = 0;
  let deliveredAll = 0;
  let expectedStable = 0;
  let deliveredStable = 0;
  let directDelivered = 0;
  const byTransport: Record<string, { expected: number; delivered: number; stableExpected: number; stableDelivered: number }> = {};
  for (const sub of subs) {
    let exp = 0;
    let expS = 0;
    for (const [ev, v] of Object.entries(sentByEvent)) {
      if (sub.patterns.some((p) => matchPattern(p, ev))) {
        exp += v.stable + v.churn;
        expS += v.stable;
      }
    }
    const t = (byTransport[sub.transport] ??= { expected: 0, delivered: 0, stableExpected: 0, stableDelivered: 0 });
    expectedAll += exp;
    deliveredAll += sub.fromStable + sub.fromChurn;
    t.expected += exp;
    t.delivered += sub.fromStable + sub.fromChurn;
    if (sub.stable) {
      expectedStable += expS;
      deliveredStable += sub.fromStable;
      t.stableExpected += expS;
      t.stableDelivered += sub.fromStable;
    }
    directDelivered += sub.direct;
  }

  const brokerCpu = c.samples.length > 0 ? c.samples[c.samples.length - 1]!.cpu : 0;
  const goT = (c.goAt - c.t0) / 1000;
  const endT = goT + c.trafficS;
  const inTraffic = c.samples.filter((s) => s.t >= goT && s.t <= endT);
  const cpuTraffic = inTraffic.length >= 2 ? inTraffic[inTraffic.length - 1]!.cpu - inTraffic[0]!.cpu : 0;
  const spanTraffic = inTraffic.length >= 2 ? inTraffic[inTraffic.length - 1]!.t - inTraffic[0]!.t : 1;
  // Peak CPU over 10-second windows.
  let cpuPeak = 0;
  for (let i = 0; i < c.samples.length; i++) {
    const j = c.samples.findIndex((s) => s.t >= c.samples[i]!.t + 10);
    if (j === -1) break;
    cpuPeak = Math.max(cpuPeak, (c.samples[j]!.cpu - c.samples[i]!.cpu) / (c.samples[j]!.t - c.samples[i]!.t));
  }
  const step = c.opts.quick ? 5 : 15;
  const series: { t: number; phase: string; rssMiB: number; cpuPct: number; sessions: number | null; streams: number | null }[] = [];
  let lastT = -Infinity;
  let prev: { t: number; cpu: number } | null = null;
  for (const s of c.samples) {
    if (s.t - lastT < step && s !== c.samples[c.samples.length - 1]) continue;
    const m = [...c.metricSeries].reverse().find((x) => x.t <= s.t + 2.5);
    series.push({
      t: Math.round(s.t),
      phase: s.t < goT ? 'connect' : s.t <= endT ? 'traffic' : 'drain/close',
      rssMiB: s.rss / 2 ** 20,
      cpuPct: prev === null ? 0 : (100 * (s.cpu - prev.cpu)) / Math.max(0.001, s.t - prev.t),
      sessions: m?.sessions ?? null,
      streams: m?.streams ?? null,
    });
    lastT = s.t;
    prev = s;
  }
  const rssValues = c.samples.map((s) => s.rss);
  const rssPeak = rssValues.length > 0 ? Math.max(...rssValues) : 0;
  const rssPeakAt = c.samples.find((s) => s.rss === rssPeak)?.t ?? 0;
  const rssStart = c.samples[0]?.rss ?? 0;

  // Broker log: warnings and errors by event; session closes by reason come from /metrics.
  const warnings: Record<string, number> = {};
  const warnSamples: string[] = [];
  for (const line of c.brokerLog.split('\n')) {
    if (line.length === 0) continue;
    try {
      const r = JSON.parse(line) as { level: number; event?: string; reason?: string; msg?: string };
      if (r.level >= 40 && !(r.event === 'session_close' && (r.reason === 'peer_closed' || r.reason === 'client_close'))) {
        const key = `${r.event ?? '?'}${r.reason ? ` (${r.reason})` : ''}`;
        warnings[key] = (warnings[key] ?? 0) + 1;
        if (warnSamples.length < 10) warnSamples.push(line.slice(0, 400));
      }
    } catch {
      warnings['unparsed line'] = (warnings['unparsed line'] ?? 0) + 1;
    }
  }
  const delta = (name: string, label: string) => {
    const a = metricsBy(c.metricsAfter, name, label);
    const b = metricsBy(c.metricsBefore, name, label);
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(a)) out[k] = v - (b[k] ?? 0);
    return out;
  };

  const requests = outcomeSummary(req);
  const streams = outcomeSummary(str);
  const streamsOpenAfterDrain = c.metricsAfter?.get('socketd_streams_open') ?? null;
  const verdict = {
    lostRequests: requests.lost,
    lostStreams: streams.lost,
    wrongAnswers: requests.wrong,
    missingReports: c.expectedReports - c.collected,
    brokerStreamsOpenAfterDrain: streamsOpenAfterDrain,
    pass: requests.lost === 0 && streams.lost === 0 && c.collected === c.expectedReports,
  };

  const cpus = os.cpus();
  return {
    date: new Date(c.startedAt).toISOString().replace(/\.\d+Z$/, 'Z'),
    command: `node dist/bench/soak.js ${process.argv.slice(2).join(' ')}`.trim(),
    machine: `${cpus.length} CPUs (${cpus[0]?.model.trim() ?? '?'}), ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, ${os.type()} ${os.release()}; Node ${process.version}`,
    loadAverage: { start: c.loadStart, end: os.loadavg() },
    options: c.opts,
    timing: c.plan.timing,
    configRaised: c.raised,
    config: c.yaml,
    phases: { connectS: c.connectMs / 1000, trafficS: c.trafficS, drainS: c.drainMs / 1000, totalS: (Date.now() - c.startedAt) / 1000 },
    connections: {
      planned: c.opts.connections,
      connected: conns.connected,
      byTransport: c.plan.byTransport,
      roles: c.plan.roles,
      processes: c.plan.workers.length + 1,
      connectFailures: conns.connectFailures,
      gracefulChurns: conns.gracefulChurns,
      abruptChurns: conns.abruptChurns,
      midStreamKills: Math.max(midStreamKills, conns.midStreamKills),
      processKills: c.kills,
      sdkReconnects: conns.reconnects,
      reconnectStalls: conns.reconnectStalls,
      unplannedDisconnects: conns.unplannedDisconnects,
      unplannedSamples: conns.unplannedSamples.slice(0, 10),
    },
    requests,
    requestsByKind: Object.fromEntries(Object.entries(byKind).sort().map(([k, o]) => [k, outcomeSummary(o)])),
    streams: { ...streams, items: streamItems },
    byRequesterTransport: Object.fromEntries(Object.entries(byTransportOutcomes).sort().map(([k, o]) => [k, outcomeSummary(o)])),
    latency: {
      requestAll: quant(Histogram.merge(c.stats.map((s) => s.latencyAll))),
      requestDirect: quant(Histogram.merge(c.stats.map((s) => s.latencyDirect))),
      stream: quant(Histogram.merge(c.stats.map((s) => s.latencyStream))),
    },
    messages: {
      sentByEvent: sentByEventTotal,
      events: Object.keys(sentByEvent).length,
      sentDirect,
      sendRefused,
      expected: expectedAll,
      delivered: deliveredAll,
      ratio: expectedAll === 0 ? 1 : deliveredAll / expectedAll,
      stableExpected: expectedStable,
      stableDelivered: deliveredStable,
      stableRatio: expectedStable === 0 ? 1 : deliveredStable / expectedStable,
      byTransport,
      directDelivered,
      directAlarms: msgAlarms,
      subscribers: subs.length,
    },
    responders,
    clientErrors,
    broker: {
      rssStartMiB: rssStart / 2 ** 20,
      rssAtGoMiB: (c.rssAtGo?.rss ?? 0) / 2 ** 20,
      rssPeakMiB: rssPeak / 2 ** 20,
      rssPeakAtS: rssPeakAt,
      rssEndTrafficMiB: (c.rssEndTraffic?.rss ?? 0) / 2 ** 20,
      rssEndMiB: (c.rssEnd?.rss ?? 0) / 2 ** 20,
      cpuSeconds: brokerCpu,
      cpuTrafficAvgPct: (100 * cpuTraffic) / Math.max(0.001, spanTraffic),
      cpuPeak10sPct: 100 * cpuPeak,
      series,
      alarms: delta('socketd_alarms_total', 'code'),
      sessionCloses: delta('socketd_session_closes_total', 'reason'),
      handshakesRefused: delta('socketd_handshakes_refused_total', 'reason'),
      dropped: delta('socketd_dropped_total', 'reason'),
      lateReplies: (c.metricsAfter?.get('socketd_late_replies_total') ?? 0) - (c.metricsBefore?.get('socketd_late_replies_total') ?? 0),
      streamsOpenAfterDrain,
      sessionsOpenAfterDrain: c.metricsAfter?.get('socketd_sessions_open') ?? null,
      sessionsOpenAfterClose: c.metricsClosed?.get('socketd_sessions_open') ?? null,
      connectionsOpenAfterClose: metricsBy(c.metricsClosed, 'socketd_connections_open', 'transport'),
      exitOnSigterm: c.brokerExit,
      logWarnings: warnings,
      logWarningSamples: warnSamples,
    },
    clients: { cpuSeconds: clientCpu, peakRssMiB: c.workerPeakRss.map((r) => r / 2 ** 20) },
    lostSamples: c.stats.flatMap((s) => s.lostSamples.map((x) => ({ process: s.label, ...x }))).slice(0, 40),
    verdict,
  };
}

main().then(
  (code) => process.exit(code),
  (error: Error) => {
    process.stderr.write(`soak: ${error.stack ?? error.message}\n`);
    killAll();
    process.exit(2);
  },
);
