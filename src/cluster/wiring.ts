/**
 * Builds this node's cluster membership from the config (docs/cluster.md), for the wiring point
 * (src/server.ts): none in single-node mode, over Redis when `cluster.redis` is set, or over a bus the caller
 * gives (tests join several brokers of one process).
 */
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { BrokerConfig } from '../config/schema.js';
import type { ClusterBus } from './bus.js';
import { ClusterNode, DEFAULT_NODE_OPTIONS } from './node.js';
import { ClusterStats } from './stats.js';

/**
 * ioredis is imported only in cluster mode over Redis: a single node keeps that code out of its heap, which
 * every major GC walks (bench/results.md, "Heap at start").
 */
export async function clusterNodeFrom(config: BrokerConfig, bus: ClusterBus | undefined, logger: Logger): Promise<ClusterNode | null> {
  const section = config.cluster;
  if (bus === undefined && section.redis.length === 0) return null;
  const stats = new ClusterStats();
  const nodeId = section.nodeId.length > 0 ? section.nodeId : `${hostname()}-${process.pid}`;
  const chosen = bus ?? new (await import('./redis-bus.js')).RedisBus({
    url: section.redis,
    nodeId,
    prefix: section.prefix,
    heartbeatMs: section.heartbeatMs,
    nodeTimeoutMs: section.nodeTimeoutMs,
    maxBacklogBytes: section.maxBacklogBytes,
    connectTimeoutMs: section.connectTimeoutMs,
  }, stats, logger);
  return new ClusterNode(chosen, stats, logger, {
    ...DEFAULT_NODE_OPTIONS,
    maxBatchBytes: section.maxBatchBytes,
    matchCacheSize: config.fastPaths.matchCacheSize,
    presenceTimeoutMs: section.presenceTimeoutMs,
    presenceMembersMax: section.presenceMembersMax,
  });
}
