/**
 * `socketd-broker --workers N` (docs/cluster.md): N node processes on one machine, forked with node:cluster.
 * They share the tcp and ws ports (the primary hands each new connection to a worker, round robin) and act as
 * one broker by joining each other over `cluster.redis`, as nodes on several machines do.
 *
 * udp: node:cluster shares one udp socket between workers by letting any of them read the next datagram, so
 * one peer's datagrams would be split over workers (sessions broken); SO_REUSEPORT, where the kernel keeps a
 * peer on one socket, is not available to dgram before Node 22.12. Worker 1 alone serves udp: every datagram
 * of a peer reaches the same node, and its sessions reach every other node through the cluster.
 *
 * /metrics: any worker may take the request (the http port is shared too); it asks the primary, which
 * aggregates every worker's registry with prom-client's AggregatorRegistry (counters summed).
 */
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { AggregatorRegistry, type Registry } from 'prom-client';
import type { BrokerConfig } from '../config/schema.js';

/** Not SOCKETD_*: those are settings (src/config/env.ts). */
const INDEX_VARIABLE = 'SD_BROKER_WORKER_INDEX';
/** The primary's request to stop gracefully (IPC, not a signal: a terminal's Ctrl-C already signals the group). */
export const STOP_MESSAGE = 'socketd:stop';
const METRICS_ASK = 'socketd:metrics?';
const METRICS_ANSWER = 'socketd:metrics';
/** A worker that dies is forked again after this long (not in a tight loop). */
const RESTART_DELAY_MS = 1_000;

export function isWorkerProcess(): boolean {
  return cluster.isWorker && process.env[INDEX_VARIABLE] !== undefined;
}

/** The worker's index (0-based), from the primary. */
export function workerIndex(): number {
  return Number(process.env[INDEX_VARIABLE] ?? '0');
}

/** A worker's config: its own node id (a configured one gets `-w<N>`) and udp on the first worker only. */
export function workerConfig(config: BrokerConfig, index: number): BrokerConfig {
  const nodeId = config.cluster.nodeId.length > 0 ? `${config.cluster.nodeId}-w${index + 1}` : '';
  return {
    ...config,
    listeners: { ...config.listeners, udp: { ...config.listeners.udp, enabled: config.listeners.udp.enabled && index === 0 } },
    cluster: { ...config.cluster, nodeId },
  };
}

/** In a worker: answers the primary's metric requests from `registry`, and reads /metrics from the primary. */
export function workerMetrics(registry: Registry): () => Promise<string> {
  // prom-client installs its answering listener when an AggregatorRegistry is made, in the worker too.
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([registry]);
  let next = 0;
  const waiting = new Map<number, (text: string) => void>();
  process.on('message', (message: { type?: string; id?: number; text?: string }) => {
    if (message?.type !== METRICS_ANSWER || message.id === undefined) return;
    waiting.get(message.id)?.(message.text ?? '');
    waiting.delete(message.id);
  });
  return () => new Promise((resolve, reject) => {
    const id = next++;
    const timer = setTimeout(() => {
      waiting.delete(id);
      reject(new Error('the primary did not answer the metrics request'));
    }, 5_000);
    waiting.set(id, (text) => {
      clearTimeout(timer);
      resolve(text);
    });
    process.send!({ type: METRICS_ASK, id });
  });
}

/**
 * The primary: forks `config.cluster.workers` workers, forks a dying one again, aggregates /metrics, and on
 * SIGTERM/SIGINT stops every worker (each shuts down gracefully) before exiting 0.
 */
export async function runPrimary(config: BrokerConfig, logger: Logger): Promise<void> {
  const count = config.cluster.workers;
  const aggregator = new AggregatorRegistry();
  let stopping = false;
  const fork = (index: number): Worker => {
    const worker = cluster.fork({ [INDEX_VARIABLE]: String(index) });
    worker.on('message', (message: { type?: string; id?: number }) => {
      if (message?.type !== METRICS_ASK) return;
      aggregator.clusterMetrics().then(
        (text) => worker.send({ type: METRICS_ANSWER, id: message.id, text }),
        (error: Error) => worker.send({ type: METRICS_ANSWER, id: message.id, text: `# aggregation failed: ${error.message}\n` }),
      );
    });
    worker.on('exit', (code, signal) => {
      if (stopping) return;
      logger.error({ event: 'worker_exit', worker: index + 1, code, signal }, 'worker exited: forking it again');
      setTimeout(() => {
        if (!stopping) fork(index);
      }, RESTART_DELAY_MS).unref();
    });
    return worker;
  };
  for (let i = 0; i < count; i++) fork(i);
  logger.info({ event: 'workers_started', workers: count }, 'workers forked');
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ event: 'shutdown', signal, drainMs: config.shutdown.drainMs }, 'stopping every worker');
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
    const exits = workers.map((w) => new Promise<void>((resolve) => {
      if (w.isDead()) resolve();
      else w.once('exit', () => resolve());
    }));
    for (const w of workers) if (!w.isDead()) w.send({ type: STOP_MESSAGE });
    const deadline = setTimeout(() => {
      for (const w of workers) if (!w.isDead()) w.process.kill('SIGKILL');
    }, config.shutdown.drainMs + 5_000);
    void Promise.all(exits).then(() => {
      clearTimeout(deadline);
      logger.info({ event: 'broker_stopped' }, 'every worker stopped');
      logger.flush();
      process.exit(0);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
