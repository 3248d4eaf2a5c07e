/**
 * A soak client process (forked by bench/soak.ts): holds its share of the connections (about 1,000), runs
 * their roles and churn, and reports its statistics over IPC.
 *
 *   parent → 'plan'   connect every connection (bounded concurrency), run the role setups → 'ready'
 *   parent → 'go'     start traffic and churn
 *   parent → 'stop'   no new Requests/Streams/Messages/churn; wait for everything in flight → 'drained'
 *   parent → 'report' → 'stats'
 *   parent → 'exit'   close the connections and exit (also when the IPC channel goes away)
 */
import type { Client } from '../../src/client/index.js';
import { Histogram, newOutcomes, prng, sleep, type FromWorker, type ToWorker, type WorkerPlan, type WorkerStats } from './common.js';
import { Conn, type Ctx, type Setup } from './conn.js';
import { Publishers, subscriberSetup } from './pubsub.js';
import { responderSetup } from './responders.js';
import { Traffic } from './traffic.js';

function tell(m: FromWorker): void {
  process.send?.(m);
}

let plan: WorkerPlan | null = null;
let ctx: Ctx | null = null;
let conns: Conn[] = [];
let traffic: Traffic | null = null;
let publishers: Publishers | null = null;
let maxRss = 0;

function newStats(label: string): WorkerStats {
  return {
    label,
    pid: process.pid,
    conns: {
      planned: 0, connected: 0, connectFailures: {}, gracefulChurns: 0, abruptChurns: 0, reconnects: 0,
      unplannedDisconnects: 0, unplannedSamples: [], midStreamKills: 0, reconnectStalls: 0, byTransport: {},
    },
    requests: newOutcomes(),
    requestsByKind: {},
    byTransport: {},
    streams: newOutcomes(),
    streamItems: 0,
    latencyAll: new Histogram().data(),
    latencyDirect: new Histogram().data(),
    latencyStream: new Histogram().data(),
    messages: { sentByEvent: {}, sentDirect: 0, sendRefused: {}, alarms: {} },
    subscribers: [],
    responders: { requests: 0, streams: 0, replies: 0, replyFailed: 0, delayedPastTimeout: 0, stalledStreams: 0 },
    lostSamples: [],
    clientErrors: {},
    cpuSeconds: 0,
    maxRssBytes: 0,
  };
}

async function start(p: WorkerPlan): Promise<void> {
  plan = p;
  const t0 = performance.now();
  const c: Ctx = { stats: newStats(p.label), timing: p.timing, rand: prng(p.seed), stopping: false, goAt: t0, urls: p.urls };
  ctx = c;
  const responders = responderSetup(c);
  const subscribers = subscriberSetup(c);
  const pubConns: Conn[] = [];
  publishers = new Publishers(c, p, pubConns);
  const setupFor = (role: string): Setup => {
    switch (role) {
      case 'echo':
      case 'slow':
      case 'feeder':
      case 'victim':
        return responders;
      case 'subscriber':
        return subscribers;
      case 'publisher':
        return publishers!.setup;
      default:
        return async (_conn: Conn, _client: Client) => undefined;
    }
  };
  conns = p.conns.map((spec) => new Conn(spec, c, setupFor(spec.role)));
  for (const conn of conns) if (conn.spec.role === 'publisher') pubConns.push(conn);
  traffic = new Traffic(c, conns.filter((x) => x.spec.role === 'requester'), conns.filter((x) => x.spec.role === 'streamer'));
  c.stats.conns.planned = conns.length;

  // Connect with bounded concurrency.
  let next = 0;
  let failed = 0;
  const lane = async (): Promise<void> => {
    while (next < conns.length) {
      const conn = conns[next++]!;
      if (await conn.open()) {
        c.stats.conns.connected++;
        c.stats.conns.byTransport[conn.spec.transport] = (c.stats.conns.byTransport[conn.spec.transport] ?? 0) + 1;
      } else failed++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(p.timing.connectConcurrency, conns.length) }, lane));
  tell({ type: 'ready', connected: c.stats.conns.connected, failed, ms: Math.round(performance.now() - t0) });
}

function go(): void {
  if (ctx === null) return;
  ctx.goAt = performance.now();
  traffic?.start();
  publishers?.start();
  for (const conn of conns) conn.scheduleChurn();
}

async function stop(): Promise<void> {
  if (ctx === null) return;
  const t0 = performance.now();
  ctx.stopping = true;
  traffic?.stop();
  publishers?.stop();
  for (const conn of conns) conn.stopChurn();
  // Everything in flight ends by itself: the client timers are bounded (clientStreamMs at most).
  const limit = t0 + ctx.timing.clientStreamMs + 2_000;
  while ((traffic?.pendingTotal ?? 0) > 0 && performance.now() < limit) await sleep(100);
  // Churns in progress finish too (a reconnect takes a moment).
  while (conns.some((x) => x.churning) && performance.now() < limit) await sleep(100);
  tell({ type: 'drained', pending: traffic?.pendingTotal ?? 0, ms: Math.round(performance.now() - t0) });
}

function report(): void {
  if (ctx === null || traffic === null) return;
  const s = ctx.stats;
  // What is still pending counts as neither answered nor alarmed, i.e. LOST (shown apart as `pending`).
  s.requestsByKind = traffic.byKind;
  s.byTransport = traffic.byTransport;
  s.latencyAll = traffic.latencyAll.data();
  s.latencyDirect = traffic.latencyDirect.data();
  s.latencyStream = traffic.latencyStream.data();
  s.requests.pending = traffic.pending.request;
  s.streams.pending = traffic.pending.stream;
  const cpu = process.cpuUsage();
  s.cpuSeconds = (cpu.user + cpu.system) / 1e6;
  s.maxRssBytes = maxRss;
  tell({ type: 'stats', stats: s });
}

async function exit(): Promise<void> {
  const closing = Promise.allSettled(conns.map((c) => c.close()));
  await Promise.race([closing, sleep(3_000)]);
  process.exit(0);
}

setInterval(() => {
  maxRss = Math.max(maxRss, process.memoryUsage.rss());
}, 1_000).unref();

process.on('disconnect', () => process.exit(0));
process.on('message', (m: ToWorker) => {
  switch (m.type) {
    case 'plan':
      start(m.plan).catch((e: Error) => {
        tell({ type: 'fatal', message: `${plan?.label ?? 'worker'}: ${e.stack ?? e.message}` });
        process.exit(1);
      });
      break;
    case 'go':
      go();
      break;
    case 'stop':
      void stop();
      break;
    case 'report':
      report();
      break;
    case 'exit':
      void exit();
      break;
  }
});
