/**
 * `npm run bench:cluster`: cluster mode (docs/cluster.md) against a single node, in one run on the same
 * machine, with the bench's own role processes (bench/roles) and a real redis-server:
 *
 * - S1 single node: one publisher and one subscriber on one broker (no cluster).
 * - S1 cross-node: the publisher on node A, the subscriber on node B, A and B joined over Redis.
 * - S2 single node: one publisher to 50 subscribers on one broker.
 * - S2 --workers 2: the same against `socketd-broker --workers 2` (connections spread over both workers).
 *
 * Writes the `## Cluster` section of bench/results.md (--no-write: print only). Loopback only, bounded counts.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { writeFileSync, mkdtempSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { now, procCpuMs, sleep, type Target } from './lib/common.js';
import { Role, type RoleResult } from './lib/roles.js';
import { replaceSections } from './lib/results-md.js';
import { ROOT, benchYaml, freePort } from './systems/servers.js';

const QUICK = process.argv.includes('--quick');
const WRITE = !process.argv.includes('--no-write') && !QUICK;
const PAYLOAD = 128;
const S1_COUNT = QUICK ? 20_000 : 200_000;
const S2_COUNT = QUICK ? 2_000 : 20_000;
const S2_PROCS = 5;
const S2_CONNS = 10;
const REDIS = process.env.REDIS_SERVER ?? '/usr/bin/redis-server';

interface Proc {
  child: ChildProcess;
  /** Every pid whose CPU counts as the broker's (the primary and its workers with --workers). */
  pids(): number[];
  stop(): Promise<void>;
}

function startProcess(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  child.on('exit', (code) => {
    if (code !== 0 && code !== null) process.stderr.write(`${cmd} exited ${code}: ${err}\n`);
  });
  return {
    child,
    pids: () => [child.pid!, ...childPids(child.pid!)],
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(8000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}

/** The children of `pid` (node:cluster workers), from /proc. */
function childPids(pid: number): number[] {
  try {
    const text = spawnText('sh', ['-c', `cat /proc/${pid}/task/*/children 2>/dev/null`]);
    return text.split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Synchronous and tiny: only at the start and end of a measurement. */
function spawnText(cmd: string, args: string[]): string {
  return spawnSync(cmd, args, { encoding: 'utf8' }).stdout;
}

function cpuOf(proc: Proc): number {
  return proc.pids().reduce((s, pid) => {
    try {
      return s + procCpuMs(pid);
    } catch {
      return s;
    }
  }, 0);
}

async function waitPort(port: number): Promise<void> {
  const until = now() + 30_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (now() > until) throw new Error(`nothing listens on ${port}`);
    await sleep(100);
  }
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'socketd-cluster-bench-'));

async function startBroker(extraEnv: Record<string, string>, args: string[] = []): Promise<{ proc: Proc; target: Target }> {
  const tcp = await freePort();
  const ws = await freePort();
  const file = path.join(dir, `broker-${tcp}.yaml`);
  writeFileSync(file, benchYaml(tcp, ws));
  const proc = startProcess(process.execPath, [path.join(ROOT, 'bin/socketd-broker.js'), '-c', file, '--log-level', 'warn', ...args], extraEnv);
  await waitPort(tcp);
  return { proc, target: { system: 'socketd-tcp', host: '127.0.0.1', port: tcp } };
}

function num(r: RoleResult, key: string): number {
  return Number(r[key] ?? 0);
}

interface Measured {
  rate: number;
  lost: number;
  cpuUsPerMsg: number;
  seconds: number;
}

/** One publisher to `procs × conns` subscribers; returns deliveries per second. */
async function fanout(pubTarget: Target, subTarget: Target, procs: number, conns: number, count: number, brokers: Proc[]): Promise<Measured> {
  const subject = `bench.cluster.${Math.random().toString(36).slice(2, 8)}`;
  const subs: Role[] = [];
  for (let i = 0; i < procs; i++) subs.push(new Role(`sub${i}`, 'subscriber', { target: subTarget, subject, connections: conns, expected: count }));
  await Promise.all(subs.map((s) => s.ready));
  // Interest crosses to the other nodes (a tick and a Redis round trip; generous).
  await sleep(1000);
  const pub = new Role('pub', 'publisher', { target: pubTarget, subject, count, payloadSize: PAYLOAD, durationMs: 0 });
  await pub.ready;
  for (const s of subs) s.send('go');
  const cpu0 = brokers.reduce((s, b) => s + cpuOf(b), 0);
  pub.send('go');
  const p = await pub.result;
  const results = await Promise.race([
    Promise.all(subs.map((s) => s.result)),
    sleep(60_000).then(() => {
      for (const s of subs) s.send('stop');
      return Promise.all(subs.map((s) => s.result));
    }),
  ]);
  const cpuMs = brokers.reduce((s, b) => s + cpuOf(b), 0) - cpu0;
  const received = results.reduce((s, r) => s + num(r, 'received'), 0);
  const seconds = (Math.max(...results.map((r) => num(r, 'lastAt'))) - num(p, 'startAt')) / 1000;
  for (const role of [pub, ...subs]) role.kill();
  return { rate: received / seconds, lost: count * procs * conns - received, cpuUsPerMsg: (cpuMs * 1000) / count, seconds };
}

async function main(): Promise<void> {
  const started = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const rows: string[][] = [];
  const load0 = os.loadavg().map((l) => l.toFixed(2)).join(' ');
  const redisPort = await freePort();
  const redis = startProcess(REDIS, ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
  await waitPort(redisPort);
  const clusterEnv = (id: string): Record<string, string> => ({ SOCKETD_CLUSTER__REDIS: `redis://127.0.0.1:${redisPort}`, SOCKETD_CLUSTER__NODE_ID: id });
  try {
    const single = await startBroker({});
    const s1Single = await fanout(single.target, single.target, 1, 1, S1_COUNT, [single.proc]);
    const s2Single = await fanout(single.target, single.target, S2_PROCS, S2_CONNS, S2_COUNT, [single.proc]);
    await single.proc.stop();
    const a = await startBroker(clusterEnv('a'));
    const b = await startBroker(clusterEnv('b'));
    await sleep(1500);
    const s1Cross = await fanout(a.target, b.target, 1, 1, S1_COUNT, [a.proc, b.proc]);
    await a.proc.stop();
    await b.proc.stop();
    const workers = await startBroker(clusterEnv('w'), ['--workers', '2']);
    await sleep(3000);
    const s2Workers = await fanout(workers.target, workers.target, S2_PROCS, S2_CONNS, S2_COUNT, [workers.proc]);
    await workers.proc.stop();
    const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
    rows.push(
      ['S1 single node', fmt(s1Single.rate), String(s1Single.lost), s1Single.cpuUsPerMsg.toFixed(2), '1.00x'],
      ['S1 cross-node (publisher on A, subscriber on B)', fmt(s1Cross.rate), String(s1Cross.lost), s1Cross.cpuUsPerMsg.toFixed(2), `${(s1Cross.rate / s1Single.rate).toFixed(2)}x`],
      [`S2 single node (${S2_PROCS * S2_CONNS} subscribers)`, fmt(s2Single.rate), String(s2Single.lost), s2Single.cpuUsPerMsg.toFixed(2), '1.00x'],
      ['S2 --workers 2', fmt(s2Workers.rate), String(s2Workers.lost), s2Workers.cpuUsPerMsg.toFixed(2), `${(s2Workers.rate / s2Single.rate).toFixed(2)}x`],
    );
  } finally {
    await redis.stop();
  }
  const load1 = os.loadavg().map((l) => l.toFixed(2)).join(' ');
  const text = [
    `## Cluster (${started})`,
    '',
    `\`node dist/bench/cluster.bench.js${QUICK ? ' --quick' : ''}\` on ${os.cpus().length} cores (load ${load0} at the start, ${load1} at the end);`,
    `S1 ${S1_COUNT.toLocaleString('en-US')} messages, S2 ${S2_COUNT.toLocaleString('en-US')} messages to ${S2_PROCS * S2_CONNS} subscribers, ${PAYLOAD} B payloads, over tcp.`,
    'Rates are deliveries per second; broker CPU counts every broker process of the setup (both nodes; the primary and its workers) and Redis is not counted.',
    'Target: cross-node S1 at least 0.3x single-node S1 in the same run.',
    '',
    '| setup | deliveries/s | lost | broker CPU µs per published message | vs single node |',
    '|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.join(' | ')} |`),
    '',
  ].join('\n');
  process.stdout.write(`${text}\n`);
  if (WRITE) replaceSections(path.join(ROOT, 'bench/results.md'), (h) => h.startsWith('## Cluster'), text, 'last');
}

main().then(() => process.exit(0), (error: Error) => {
  process.stderr.write(`${error.stack ?? error.message}\n`);
  process.exit(1);
});
