/**
 * `npm run bench:scale`: many idle sessions (an IM deployment's shape). The broker runs in its own process with
 * its default limits (handshakes 2,000/s) on loopback; `--workers` client processes open `--sessions`
 * sessions between them, half tcp and half ws, each named, each from its worker's own loopback source
 * address (127.0.0.2, .3, ...: ephemeral ports and per-IP limits are per address), with the bench's raw
 * client. Then every session pings every `--ping` s; after `--settle` s (one ping period by default: the
 * broker's collection of the heap the opening left behind, reported on its own) the heartbeats are measured
 * for `--hold` s, then nothing for `--quiet` s. Measured from /proc: the broker's RSS (before, all open, peak),
 * its CPU as % of one core while heartbeats run and while nothing does, and the time from the first
 * connection to the last Connack. Bounded: a phase that
 * overruns its limit fails the run, and every process is stopped at the end.
 *
 *   node dist/bench/scale.js [--sessions=19000] [--workers=4] [--settle=<ping>] [--hold=60] [--quiet=30] [--ping=20]
 *                            [--concurrency=64] [--ws-share=0.5] [--system=socketd|nats] [--snapshot] [--profile]
 *                            [--node-args=...]
 *
 * `--system=nats` runs the same sessions against nats-server (Debian package nats-server) for a side-by-side
 * figure: raw NATS connections (CONNECT, then PING every `--ping` s), all over tcp (`--ws-share` is 0 for it;
 * give `--ws-share=0` to the broker's run too for a like-for-like pair).
 *
 * `--snapshot` also has the broker write a V8 heap snapshot once all sessions are open (node
 * --heapsnapshot-signal), into the temporary directory printed at the end. Figures are printed and written to
 * $TMPDIR/socketd-scale-last.json; results.md is edited by hand (see bench/README.md). `--profile` runs the
 * broker with --cpu-prof (the profile lands in the same directory when it exits).
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { CLK_TCK, procCpuMs, procMem, sleep } from './lib/common.js';
import { canConnect, freePort, ROOT } from './systems/servers.js';
import type { WorkerConfig } from './scale/worker.js';

function arg(name: string, fallback: number): number {
  const hit = process.argv.find((a) => a.startsWith(`--${name}=`));
  return hit === undefined ? fallback : Number(hit.slice(name.length + 3));
}

const SESSIONS = arg('sessions', 19_000);
const WORKERS = arg('workers', 4);
const HOLD_S = arg('hold', 60);
const QUIET_S = arg('quiet', 30);
const PING_S = arg('ping', 20);
const SETTLE_S = arg('settle', PING_S);
const CONCURRENCY = arg('concurrency', 64);
const SYSTEM = (process.argv.find((a) => a.startsWith('--system='))?.slice('--system='.length) ?? 'socketd') as 'socketd' | 'nats';
if (SYSTEM !== 'socketd' && SYSTEM !== 'nats') throw new Error(`--system: socketd or nats, not ${SYSTEM}`);
/** The share of sessions over ws (the rest over tcp); nats-server's sessions are all tcp. */
const WS_SHARE = SYSTEM === 'nats' ? 0 : arg('ws-share', 0.5);
const SNAPSHOT = process.argv.includes('--snapshot');
const PROFILE = process.argv.includes('--profile');
/** Extra node flags for the broker, e.g. `--node-args=--max-semi-space-size=4` (see docs/operations.md). */
const NODE_ARGS = process.argv.find((a) => a.startsWith('--node-args='))?.slice('--node-args='.length) ?? '';
/** Opening all sessions must end within this (the target is 15 s). */
const OPEN_LIMIT_MS = 90_000;
const MiB = 1024 * 1024;
const WORKER = fileURLToPath(new URL('./scale/worker.js', import.meta.url));

interface WorkerHandle {
  child: ChildProcess;
  messages: { type: string; [key: string]: unknown }[];
  next(type: string, timeoutMs: number): Promise<Record<string, unknown>>;
}

function startWorker(config: WorkerConfig): WorkerHandle {
  const child = fork(WORKER, [JSON.stringify(config)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [] });
  const messages: WorkerHandle['messages'] = [];
  const waiters: { type: string; resolve: (m: Record<string, unknown>) => void }[] = [];
  child.on('message', (m: { type: string }) => {
    messages.push(m);
    for (let i = 0; i < waiters.length; i++) {
      if (waiters[i]!.type === m.type || m.type === 'error') {
        waiters[i]!.resolve(m);
        waiters.splice(i, 1);
        i--;
      }
    }
  });
  return {
    child,
    messages,
    next(type, timeoutMs) {
      const seen = messages.find((m) => m.type === type || m.type === 'error');
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`worker ${child.pid}: no '${type}' within ${timeoutMs / 1000} s`)), timeoutMs);
        waiters.push({ type, resolve: (m) => { clearTimeout(timer); resolve(m); } });
      });
    },
  };
}

/**
 * utime and stime of a process in ms. Apart, because stime also holds the kernel's loopback work, and on a
 * kernel without separate irq time accounting, softirq work done while the broker happened to run.
 */
function procTimes(pid: number): { user: number; system: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: (Number(fields[11]) * 1000) / CLK_TCK, system: (Number(fields[12]) * 1000) / CLK_TCK };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'socketd-scale-'));
  const tcpPort = await freePort();
  const wsPort = await freePort();
  const config = path.join(dir, 'broker.yaml');
  // Defaults (handshakesPerSecond 2,000, idle 60 s, ...) except loopback listeners, no udp/http, quiet logs.
  writeFileSync(config, `listeners:
  tcp: { enabled: true, host: 127.0.0.1, port: ${tcpPort} }
  udp: { enabled: false }
  ws: { enabled: true, host: 127.0.0.1, port: ${wsPort} }
http: { enabled: false }
log: { level: warn }
shutdown: { drainMs: 0 }
`);
  const nodeArgs = `${NODE_ARGS ? `${NODE_ARGS} ` : ''}${SNAPSHOT ? '--heapsnapshot-signal=SIGUSR2 ' : ''}${PROFILE ? `--cpu-prof --cpu-prof-dir="${dir}" ` : ''}`;
  const natsConfig = path.join(dir, 'nats.conf');
  writeFileSync(natsConfig, `listen: 127.0.0.1:${tcpPort}\nmax_connections: 100000\n`);
  const server = SYSTEM === 'nats'
    ? `nats-server -c "${natsConfig}"`
    : `"${process.execPath}" ${nodeArgs}"${path.join(ROOT, 'bin/socketd-broker.js')}" -c "${config}"`;
  // The server holds one fd per session: its soft limit is raised to 20,000 where the hard limit allows.
  const command = `ulimit -n 20000 2>/dev/null || ulimit -n $(ulimit -Hn); exec ${server}`;
  const broker = spawn('sh', ['-c', command], { cwd: dir, stdio: ['ignore', 'inherit', 'inherit'] });
  const workers: WorkerHandle[] = [];
  const stopAll = (): void => {
    for (const w of workers) if (w.child.exitCode === null) w.child.kill('SIGKILL');
    if (broker.exitCode === null) broker.kill('SIGKILL');
  };
  process.on('exit', stopAll);
  try {
    for (let i = 0; i < 100 && !(await canConnect(tcpPort)); i++) await sleep(100);
    await sleep(1000);
    const pid = broker.pid!;
    const rssBefore = procMem(pid).rss;
    const started = Date.now();
    const perWorker = Math.ceil(SESSIONS / WORKERS);
    let left = SESSIONS;
    for (let i = 0; i < WORKERS; i++) {
      const n = Math.min(perWorker, left);
      left -= n;
      workers.push(startWorker({
        host: '127.0.0.1', tcpPort, wsPort, localAddress: `127.0.0.${i + 2}`, system: SYSTEM,
        tcp: n - Math.round(n * WS_SHARE), ws: Math.round(n * WS_SHARE),
        concurrency: CONCURRENCY, pingMs: PING_S * 1000, prefix: `w${i}`,
      }));
    }
    await Promise.all(workers.map((w) => w.next('ready', 20_000)));
    const cpuOpen0 = procCpuMs(pid);
    const t0 = Date.now();
    for (const w of workers) w.child.send({ type: 'go' });
    const opened = await Promise.all(workers.map((w) => w.next('opened', OPEN_LIMIT_MS)));
    const failure = opened.find((m) => m['type'] === 'error');
    if (failure !== undefined) throw new Error(`a worker failed: ${String(failure['message'])}`);
    const openSeconds = (Math.max(...opened.map((m) => Number(m['at']))) - t0) / 1000;
    const openCpuMs = procCpuMs(pid) - cpuOpen0;
    const sessions = opened.reduce((a, m) => a + Number(m['sessions']), 0);
    const refused = opened.reduce((a, m) => a + Number(m['refused']), 0);
    process.stdout.write(`scale: ${sessions} sessions open in ${openSeconds.toFixed(1)} s (${refused} handshakes refused by the rate limit and retried)\n`);
    await sleep(2000);
    const rssOpen = procMem(pid).rss;
    if (SNAPSHOT) {
      process.kill(pid, 'SIGUSR2');
      await sleep(15_000);
    }
    // Heartbeats: every session pings every PING_S seconds. The first SETTLE_S seconds after the opening carry
    // its aftermath (V8 promotes and collects what 19,000 handshakes allocated, the memory reducer's full
    // GCs): measured apart, so that the heartbeat figure is the steady cost of heartbeats.
    let rssPeak = rssOpen;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, procMem(pid).rss)), 1000);
    const cpuSettle0 = procCpuMs(pid);
    const tSettle0 = Date.now();
    await sleep(SETTLE_S * 1000);
    const settleCpuPct = ((procCpuMs(pid) - cpuSettle0) / (Date.now() - tSettle0)) * 100;
    const cpuHold0 = procCpuMs(pid);
    const timesHold0 = procTimes(pid);
    const tHold0 = Date.now();
    await sleep(HOLD_S * 1000);
    const holdMs = Date.now() - tHold0;
    const holdCpuPct = ((procCpuMs(pid) - cpuHold0) / holdMs) * 100;
    const timesHold1 = procTimes(pid);
    const rssHold = procMem(pid).rss;
    // Nothing at all (shorter than the idle timeout minus a ping period, so no session times out).
    for (const w of workers) w.child.send({ type: 'quiet' });
    await Promise.all(workers.map((w) => w.next('quiet', 10_000)));
    await sleep(2000);
    const cpuQuiet0 = procCpuMs(pid);
    const timesQuiet0 = procTimes(pid);
    const tQuiet0 = Date.now();
    await sleep(QUIET_S * 1000);
    const quietMs = Date.now() - tQuiet0;
    const quietCpuPct = ((procCpuMs(pid) - cpuQuiet0) / quietMs) * 100;
    const timesQuiet1 = procTimes(pid);
    const pct = (a: number, b: number, ms: number): number => ((b - a) / ms) * 100;
    clearInterval(sampler);
    const rssEnd = procMem(pid).rss;
    for (const w of workers) w.child.send({ type: 'stop' });
    const results = await Promise.all(workers.map((w) => w.next('result', 20_000)));
    const closedByServer: Record<string, number> = {};
    for (const r of results) {
      for (const [reason, n] of Object.entries(r['closedByServer'] as Record<string, number>)) closedByServer[reason] = (closedByServer[reason] ?? 0) + n;
    }
    const figures = {
      date: new Date(started).toISOString().replace(/\.\d+Z$/, 'Z'),
      command: `node dist/bench/scale.js ${process.argv.slice(2).join(' ')}`.trim(),
      load: os.loadavg().map((l) => Math.round(l * 100) / 100),
      node: process.version,
      system: SYSTEM,
      wsShare: WS_SHARE,
      sessions,
      workers: WORKERS,
      openSeconds,
      openCpuMs,
      handshakesRefused: refused,
      rssBeforeMiB: rssBefore / MiB,
      rssOpenMiB: rssOpen / MiB,
      rssPeakMiB: rssPeak / MiB,
      rssHoldEndMiB: rssHold / MiB,
      rssEndMiB: rssEnd / MiB,
      bytesPerSession: (rssOpen - rssBefore) / sessions,
      pingSeconds: PING_S,
      settleSeconds: SETTLE_S,
      settleCpuPct,
      holdSeconds: HOLD_S,
      heartbeatCpuPct: holdCpuPct,
      heartbeatUserPct: pct(timesHold0.user, timesHold1.user, holdMs),
      heartbeatSystemPct: pct(timesHold0.system, timesHold1.system, holdMs),
      quietSeconds: QUIET_S,
      quietCpuPct,
      quietUserPct: pct(timesQuiet0.user, timesQuiet1.user, quietMs),
      quietSystemPct: pct(timesQuiet0.system, timesQuiet1.system, quietMs),
      brokerNodeArgs: NODE_ARGS,
      pongs: results.reduce((a, r) => a + Number(r['pongs']), 0),
      closedByServer,
      workersCpuMs: results.map((r) => Math.round(Number(r['cpuMs']))),
      snapshotDir: SNAPSHOT ? dir : '',
      snapshots: SNAPSHOT ? readdirSync(dir).filter((f) => f.endsWith('.heapsnapshot')) : [],
    };
    const file = path.join(os.tmpdir(), 'socketd-scale-last.json');
    writeFileSync(file, `${JSON.stringify(figures, null, 1)}\n`);
    const rows: [string, string, string][] = [
      [`sessions open (${SYSTEM === 'nats' ? 'nats-server, raw NATS connections over tcp' : `${Math.round(WS_SHARE * 100)} % over ws, the rest tcp, each named`})`, String(sessions), ''],
      [`time to open all (${SYSTEM === 'nats' ? 'nats-server: no handshake limit' : 'default handshake limit 2,000/s'})`, `${openSeconds.toFixed(1)} s`, '≤ 15 s'],
      ['server RSS before / all open / peak', `${(rssBefore / MiB).toFixed(1)} / ${(rssOpen / MiB).toFixed(1)} / ${(rssPeak / MiB).toFixed(1)} MiB`, '≤ 150 MB all open'],
      ['server RSS per session (all open − before)', `${Math.round((rssOpen - rssBefore) / sessions)} B`, ''],
      [`server CPU, the first ${SETTLE_S} s after the opening (heartbeats and the opening's GC)`, `${settleCpuPct.toFixed(2)} % of a core`, ''],
      [`server CPU, heartbeats every ${PING_S} s (${HOLD_S} s, after those)`, `${holdCpuPct.toFixed(2)} % of a core (user ${figures.heartbeatUserPct.toFixed(2)}, system ${figures.heartbeatSystemPct.toFixed(2)})`, '≤ 5 %'],
      [`server CPU, no traffic (${QUIET_S} s)`, `${quietCpuPct.toFixed(2)} % of a core (user ${figures.quietUserPct.toFixed(2)}, system ${figures.quietSystemPct.toFixed(2)})`, '≤ 1 %'],
      ['Pongs received / sessions closed by the broker', `${figures.pongs} / ${JSON.stringify(closedByServer)}`, ''],
    ];
    process.stdout.write(`\n| figure | measured | target |\n|---|---:|---|\n${rows.map((r) => `| ${r.join(' | ')} |`).join('\n')}\n\n`);
    process.stdout.write(`scale: figures in ${file}${SNAPSHOT || PROFILE ? `; heap snapshot / profile in ${dir}` : ''}\n`);
  } finally {
    for (const w of workers) w.child.kill('SIGTERM');
    broker.kill('SIGTERM');
    // A profile is written when the broker exits: give it time.
    await (PROFILE ? new Promise((resolve) => { broker.once('exit', resolve); setTimeout(resolve, 30_000); }) : sleep(500));
    stopAll();
  }
}

main().catch((error) => {
  process.stderr.write(`scale: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exitCode = 1;
});
