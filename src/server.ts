/**
 * The wiring point (principle 6): builds the logger, the broker and the listeners from a config, starts
 * them, and stops them in order. Tests start it on port 0; the CLI starts it from YAML and flags.
 */
import { hostname } from 'node:os';
import { readFileSync } from 'node:fs';
import pino, { type Logger } from 'pino';
import { Broker, type SessionObserver } from './broker/broker.js';
import { ALL_PERMISSIONS, ConfigAccessPolicy, type AccessPolicy, type PermissionRules } from './broker/access.js';
import { EventRouter } from './broker/event-router.js';
import { NamespaceTable } from './broker/namespace-table.js';
import { identityPolicyFrom } from './broker/auth/wiring.js';
import { BrokerStats } from './broker/stats.js';
import { BrokerHttpServer } from './http/http-server.js';
import { AdminSampler } from './http/admin/sampler.js';
import { SessionCounts } from './broker/session-counts.js';
import { HttpApi } from './http/api/http-api.js';
import { ApiStats } from './http/api/api-stats.js';
import { BrokerMetrics } from './metrics/metrics.js';
import { ConfigError, settingsFromConfig } from './config/load.js';
import type { AccessSection, BrokerConfig, TlsListenerConfig } from './config/schema.js';
import type { BoundAddress, Listener } from './transport/connection.js';
import { TcpListener, type TlsServerOptions } from './transport/tcp.js';
import { UdpListener } from './transport/udp.js';
import { connectOpener } from './protocol/session-start.js';
import { WsListener } from './transport/ws-listener.js';
import type { ClusterBus } from './cluster/bus.js';
import type { ClusterNode } from './cluster/node.js';
import { clusterNodeFrom } from './cluster/wiring.js';

export interface ServerOptions {
  logger?: Logger;
  access?: AccessPolicy;
  /** Joins this broker to a cluster over this bus (docs/cluster.md); tests pass an in-process one. */
  clusterBus?: ClusterBus;
}

export interface ServerAddresses {
  tcp?: BoundAddress;
  udp?: BoundAddress;
  ws?: BoundAddress;
  tcps?: BoundAddress;
  wss?: BoundAddress;
  http?: BoundAddress;
}

export interface RunningServer {
  readonly broker: Broker;
  readonly events: EventRouter;
  readonly metrics: BrokerMetrics;
  /** This node of a cluster, null in single-node mode (docs/cluster.md). */
  readonly cluster: ClusterNode | null;
  readonly addresses: ServerAddresses;
  readonly logger: Logger;
  /**
   * Stops accepting, closes every session (Close frames and queues flushed up to `deadlineMs`, by default the
   * config's shutdown.drainMs), closes the listeners.
   */
  close(deadlineMs?: number): Promise<void>;
}

/**
 * The process logger: JSON lines on stderr (fields: level, time, pid, hostname, service, event, msg, ...), or
 * pino-pretty's human-readable form when log.pretty is set.
 */
export function createLogger(config: BrokerConfig): Logger {
  const base = { service: 'socketd-broker', pid: process.pid, hostname: hostname() };
  if (config.log.pretty) {
    return pino({
      level: config.log.level,
      base,
      transport: { target: 'pino-pretty', options: { destination: 2, translateTime: 'SYS:standard', ignore: 'pid,hostname,service' } },
    });
  }
  return pino({ level: config.log.level, base }, pino.destination({ dest: 2, sync: true }));
}

export async function startServer(config: BrokerConfig, options: ServerOptions = {}): Promise<RunningServer> {
  const logger = options.logger ?? createLogger(config);
  const settings = settingsFromConfig(config);
  const stats = new BrokerStats();
  // Cluster mode (docs/cluster.md): the node answers the routers' questions about peer nodes.
  const cluster = await clusterNodeFrom(config, options.clusterBus, logger);
  const eventOptions = {
    maxSubscriptionsPerSession: config.limits.maxSubscriptionsPerSession,
    matchCacheSize: config.fastPaths.matchCacheSize,
    maxPatternBytes: settings.limits.maxEvent,
  };
  const events = new EventRouter(eventOptions, stats, cluster);
  // Each namespace routes with its own EventRouter; the table tells each session's router of its life. Its
  // interest is announced to peer nodes under that namespace's keys (docs/cluster.md, "Namespaces").
  const namespaces = new NamespaceTable(config.namespaces, events,
    (name) => new EventRouter(eventOptions, stats, cluster === null ? null : cluster.forNamespace(name)));
  // Per-user identities (JWT, connect hook) over the configured users, when configured (docs/security.md).
  const access = options.access ?? await identityPolicyFrom(config.access, accessPolicyFrom(config.access), stats);
  const sessionCounts = new SessionCounts();
  const observers: SessionObserver[] = [namespaces, sessionCounts];
  if (cluster !== null) observers.push(cluster);
  const broker = new Broker({ settings, logger, stats, access, events, observers, namespaces, cluster: cluster ?? undefined });
  const { tcp, udp, ws, tcps, wss } = config.listeners;
  const highWaterMark = settings.outbound.highWaterBytes;
  const listeners: [keyof ServerAddresses, Listener][] = [];
  const reporter = broker;
  const maxPayload = settings.limits.maxFrame;
  if (tcp.enabled) {
    // The Python client's length-prefixed framing (docs/clients.md): detected by the adapter, counted here.
    const onFraming = (transport: string, framing: string): void => BrokerStats.inc(stats.connectionsByFraming, `${transport}|${framing}`);
    const detectFraming = tcp.detectPythonFraming;
    listeners.push(['tcp', new TcpListener({ host: tcp.host, port: tcp.port, highWaterMark, detectFraming, onFraming, reporter }, broker.accept)]);
  }
  if (udp.enabled) {
    // A datagram opens a session only when it is a Connect the session's own decoder would accept (spec §2).
    const opensSession = connectOpener({ ...settings.limits, maxFrame: Math.min(settings.limits.maxFrame, settings.udpMaxDatagram) });
    const amplificationFactor = udp.amplificationFactor;
    listeners.push(['udp', new UdpListener({ host: udp.host, port: udp.port, maxDatagram: settings.udpMaxDatagram, reporter, opensSession, amplificationFactor }, broker.accept)]);
  }
  if (ws.enabled) listeners.push(['ws', new WsListener({ host: ws.host, port: ws.port, maxPayload, highWaterMark, reporter }, broker.accept)]);
  if (tcps.enabled) {
    const tls = readTls('tcps', tcps);
    listeners.push(['tcps', new TcpListener({ host: tcps.host, port: tcps.port, highWaterMark, tls, reporter }, broker.accept)]);
  }
  if (wss.enabled) {
    const tls = readTls('wss', wss);
    listeners.push(['wss', new WsListener({ host: wss.host, port: wss.port, maxPayload, highWaterMark, tls, reporter }, broker.accept)]);
  }
  const addresses: ServerAddresses = {};
  const started: Listener[] = [];
  let ready = false;
  const apiConfig = config.http.api;
  const apiStats = apiConfig.enabled ? new ApiStats() : undefined;
  const api = apiStats !== undefined
    ? new HttpApi(
      { ratePerSecond: apiConfig.ratePerSecond, burst: apiConfig.burst, sseKeepaliveMs: Math.min(apiConfig.sseKeepaliveMs, Math.floor(settings.idleTimeoutMs / 2)), adminToken: config.http.adminToken },
      { broker, stats: apiStats, logger },
    )
    : undefined;
  const metrics = new BrokerMetrics({ broker, events, api: apiStats, namespaces, cluster, sessionCounts });
  const httpServer = config.http.enabled
    ? new BrokerHttpServer(
      {
        host: config.http.host, port: config.http.port, adminToken: config.http.adminToken, serveExamples: config.http.serveExamples,
        adminTrusted: config.http.adminTrusted, protectMetrics: config.http.protectMetrics,
      },
      {
        broker, events, metrics, logger, isReady: () => ready, api, namespaces, cluster,
        admin: {
          sampler: new AdminSampler({ stats, counts: sessionCounts, subscriptionCount: () => metrics.subscriptionTotal() }),
          memoryBudgetBytes: config.flow.memoryBudgetBytes, memoryLowWaterBytes: config.flow.memoryLowWaterBytes,
          cluster: cluster === null ? undefined : {
            nodes: () => cluster.summary().map((n) => ({ id: n.node, state: n.self ? 'self' : 'up', ...n })),
          },
        },
      },
    )
    : null;
  try {
    if (cluster !== null) {
      cluster.attach(broker);
      await cluster.start();
    }
    for (const [name, listener] of listeners) {
      addresses[name] = await listener.listen();
      started.push(listener);
    }
    if (httpServer !== null) addresses.http = await httpServer.listen();
  } catch (error) {
    await Promise.allSettled(started.map((l) => l.close()));
    await cluster?.stop();
    throw error;
  }
  ready = true;
  logger.info({ event: 'broker_started', addresses }, 'socketd-broker listening');

  let closed: Promise<void> | null = null;
  const close = (deadlineMs = config.shutdown.drainMs): Promise<void> => {
    closed ??= (async () => {
      ready = false;
      // udp has no accept to stop, and closing its socket would end its sessions before their Close frames
      // go out: it closes after the sessions. The broker refuses new connections meanwhile.
      const [datagram, streams] = [started.filter((l) => l.transport === 'udp'), started.filter((l) => l.transport !== 'udp')];
      await Promise.allSettled(streams.map((l) => l.close()));
      await broker.shutdown(deadlineMs);
      await Promise.allSettled(datagram.map((l) => l.close()));
      await cluster?.stop();
      if (httpServer !== null) await httpServer.close();
      logger.info({ event: 'broker_stopped' }, 'socketd-broker stopped');
    })();
    return closed;
  };
  return { broker, events, metrics, cluster, addresses, logger, close };
}

/** The TLS key and certificate of a listener, read once at start; a missing file stops the start with its path. */
function readTls(name: string, listener: TlsListenerConfig): TlsServerOptions {
  const read = (key: 'keyFile' | 'certFile'): Buffer => {
    try {
      return readFileSync(listener[key]);
    } catch (error) {
      throw new ConfigError('listeners', [`listeners.${name}.${key}: cannot read ${listener[key]}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`]);
    }
  };
  return { key: read('keyFile'), cert: read('certFile') };
}

/** The access policy of the config's access section; unset permission lists allow everything. */
export function accessPolicyFrom(section: AccessSection): ConfigAccessPolicy {
  const complete = (rules: Partial<PermissionRules> | undefined): PermissionRules => {
    const out = { ...ALL_PERMISSIONS } as PermissionRules;
    for (const key of Object.keys(ALL_PERMISSIONS) as (keyof PermissionRules)[]) {
      const given = rules?.[key];
      if (given !== undefined) out[key] = { allow: given.allow ?? ALL_PERMISSIONS[key]!.allow, deny: given.deny ?? [] };
    }
    // Namespaces (docs/namespaces.md): unset allows every one, so it is not in ALL_PERMISSIONS.
    const namespaces = rules?.namespaces;
    if (namespaces !== undefined) out.namespaces = { allow: namespaces.allow ?? ['*'], deny: namespaces.deny ?? [] };
    return out;
  };
  return new ConfigAccessPolicy({
    anonymous: section.anonymous,
    anonymousPermissions: complete(section.anonymousPermissions),
    users: section.users.map((u) => ({ name: u.name, token: u.token, permissions: complete(u.permissions) })),
  });
}
