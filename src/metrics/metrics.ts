/**
 * Prometheus metrics, all named `socketd_*`. The broker counts in plain numbers (BrokerStats);
 * this module reads them only when Prometheus scrapes, so no metric update allocates on the frame path.
 */
import { Registry, collectDefaultMetrics, type MetricValue } from 'prom-client';
import { flagLabel } from '../protocol/flags.js';
import type { Broker } from '../broker/broker.js';
import type { EventRouter } from '../broker/event-router.js';
import { BucketHistogram, type BrokerStats } from '../broker/stats.js';
import type { ApiStats } from '../http/api/api-stats.js';
import type { NamespaceTable } from '../broker/namespace-table.js';
import type { ClusterNode } from '../cluster/node.js';
import type { SessionCounts } from '../broker/session-counts.js';

type Labels = Record<string, string | number>;
type Values = MetricValue<string>[];
type MetricType = 'counter' | 'gauge' | 'histogram';

/** A metric whose values are computed at scrape time. */
class ComputedMetric {
  readonly aggregator = 'sum' as const;

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: MetricType,
    private readonly compute: () => Values,
  ) {}

  /** The shape prom-client's Registry reads from a metric (name, help, type, values). */
  async get(): Promise<{ name: string; help: string; type: MetricType; aggregator: 'sum'; values: Values }> {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.compute() };
  }

  reset(): void {
    // Values come from the broker's counters; nothing to reset here.
  }
}

function one(value: number, labels: Labels = {}): Values {
  return [{ value, labels }];
}

function fromMap(map: ReadonlyMap<string | number, number>, label: string): Values {
  return [...map].map(([key, value]) => ({ value, labels: { [label]: String(key) } }));
}

function byFlag(counts: Float64Array): Values {
  const out: Values = [];
  for (let flag = 0; flag < counts.length; flag++) if (counts[flag] > 0) out.push({ value: counts[flag], labels: { flag: flagLabel(flag) } });
  return out;
}

function histogram(name: string, hist: BucketHistogram, labels: Labels): Values {
  const out: Values = [];
  let cumulative = 0;
  hist.bounds.forEach((le, i) => {
    cumulative += hist.counts[i];
    out.push({ metricName: `${name}_bucket`, value: cumulative, labels: { ...labels, le } } as MetricValue<string>);
  });
  cumulative += hist.counts[hist.bounds.length];
  out.push({ metricName: `${name}_bucket`, value: cumulative, labels: { ...labels, le: '+Inf' } } as MetricValue<string>);
  out.push({ metricName: `${name}_sum`, value: hist.sum, labels } as MetricValue<string>);
  out.push({ metricName: `${name}_count`, value: hist.count, labels } as MetricValue<string>);
  return out;
}

/** Queue-size buckets (bytes) for the per-session outbound queue snapshot. */
const QUEUE_BUCKETS = [0, 1024, 16 * 1024, 64 * 1024, 256 * 1024, 1024 * 1024, 4 * 1024 * 1024, 16 * 1024 * 1024, 64 * 1024 * 1024];

export interface MetricsSources {
  broker: Broker;
  events: EventRouter;
  /** The HTTP API's counters, when it is enabled. */
  api?: ApiStats;
  /** Namespaces besides the default one (docs/namespaces.md). */
  namespaces?: NamespaceTable;
  /** This node of a cluster (docs/cluster.md); absent or null in single-node mode. */
  cluster?: ClusterNode | null;
  /** Sessions by transport, kept as they come and go (an observer of `broker`). */
  sessionCounts: SessionCounts;
}

export class BrokerMetrics {
  readonly registry = new Registry();

  constructor(private readonly sources: MetricsSources) {
    collectDefaultMetrics({ register: this.registry, prefix: 'socketd_' });
    const stats: BrokerStats = sources.broker.stats;
    const add = (name: string, help: string, type: MetricType, compute: () => Values): void => {
      this.registry.registerMetric(new ComputedMetric(name, help, type, compute) as never);
    };
    add('socketd_connections_open', 'Connections open now, by transport.', 'gauge', () => this.openByTransport());
    add('socketd_connections_total', 'Connections accepted, by transport.', 'counter', () => fromMap(stats.connectionsByTransport, 'transport'));
    add('socketd_connections_by_framing_total', 'tcp connections by the framing their first bytes showed: standard, or length_prefixed (the Python client).', 'counter', () =>
      [...stats.connectionsByFraming].map(([key, value]) => {
        const [transport, framing] = key.split('|');
        return { value, labels: { transport, framing } };
      }));
    add('socketd_sessions_open', 'Sessions past their handshake.', 'gauge', () => one(stats.sessionsOpen));
    add('socketd_handshakes_refused_total', 'Handshakes refused, by reason.', 'counter', () => fromMap(stats.handshakesRefused, 'reason'));
    add('socketd_transport_errors_total', 'Listener errors after binding (failed accepts, udp send errors), by transport and code.', 'counter', () =>
      [...stats.transportErrors].map(([key, value]) => {
        const [transport, code] = key.split('|');
        return { value, labels: { transport, code } };
      }));
    add('socketd_connections_refused_total', 'Connections refused by a limit before their handshake, by reason.', 'counter', () => fromMap(stats.connectionsRefused, 'reason'));
    add('socketd_memory_budget_exceeded', '1 while the queued bytes are over flow.memoryBudgetBytes (every reader paused).', 'gauge', () => one(stats.overBudget ? 1 : 0));
    add('socketd_memory_budget_pauses_total', 'Times the memory budget paused every reader.', 'counter', () => one(stats.budgetPauses));
    add('socketd_session_closes_total', 'Sessions ended, by reason.', 'counter', () => fromMap(stats.closes, 'reason'));
    add('socketd_protocol_errors_total', 'Protocol violations and refused frames, by code.', 'counter', () => fromMap(stats.protocolErrors, 'code'));
    add('socketd_frames_in_total', 'Frames received, by flag.', 'counter', () => byFlag(stats.framesInByFlag));
    add('socketd_frames_out_total', 'Frames queued to clients, by flag.', 'counter', () => byFlag(stats.framesOutByFlag));
    add('socketd_bytes_in_total', 'Bytes received from clients.', 'counter', () => one(stats.bytesIn));
    add('socketd_bytes_out_total', 'Bytes queued to clients.', 'counter', () => one(stats.bytesOut));
    add('socketd_routed_total', 'Message/Request/Subscribe frames routed, by addressing mode.', 'counter', () => [
      { value: stats.routedByName, labels: { mode: 'name' } },
      { value: stats.routedByEvent, labels: { mode: 'event' } },
    ]);
    add('socketd_deliveries_total', 'Frames delivered to a target session.', 'counter', () => one(stats.deliveries));
    add('socketd_dropped_total', 'Frames dropped, by reason.', 'counter', () => fromMap(stats.dropped, 'reason'));
    add('socketd_alarms_total', 'Alarm frames sent, by code.', 'counter', () => fromMap(stats.alarms, 'code'));
    add('socketd_pressure_sent_total', 'Pressure frames sent to senders feeding a congested session.', 'counter', () => one(stats.pressureSent));
    add('socketd_slow_consumers_total', 'Sessions closed because their outbound queue reached its limit.', 'counter', () => one(stats.slowConsumers));
    add('socketd_late_replies_total', 'Replies for streams already ended.', 'counter', () => one(stats.lateReplies));
    add('socketd_streams_open', 'Request/Subscribe streams open.', 'gauge', () => one(stats.streamsOpen));
    add('socketd_streams_total', 'Request/Subscribe streams opened.', 'counter', () => one(stats.streamsOpened));
    add('socketd_subscriptions', 'Event subscriptions held.', 'gauge', () => one(this.subscriptionTotal()));
    add('socketd_outbound_queue_bytes', 'Bytes queued to all sessions.', 'gauge', () => one(this.queueTotal()));
    add('socketd_paused_readers', 'Sessions whose reading is paused by backpressure.', 'gauge', () => one(this.pausedReaders()));
    add('socketd_session_outbound_queue_bytes', 'Snapshot of the sessions by outbound queue size (a gauge histogram).', 'histogram', () => this.queueHistogram());
    add('socketd_amplification_limited_total', 'Close frames to unvalidated udp peers cut to the anti-amplification allowance (trimmed) or not sent (not_sent).', 'counter', () => fromMap(stats.amplificationLimited, 'action'));
    add('socketd_pre_handshake_total', 'Connections and datagrams that ended before a handshake, by transport and reason (bare connects, strays, timeouts, refusals).', 'counter', () =>
      [...stats.preHandshake].map(([key, value]) => {
        const [transport, reason] = key.split('|');
        return { value, labels: { transport, reason } };
      }));
    add('socketd_stream_duration_seconds', 'Time from a forwarded Request or Subscribe to its end (answer, timeout or failure).', 'histogram', () => [
      ...histogram('socketd_stream_duration_seconds', stats.requestLatency, { kind: 'request' }),
      ...histogram('socketd_stream_duration_seconds', stats.streamLatency, { kind: 'subscribe' }),
    ]);
    const namespaces = sources.namespaces;
    if (namespaces !== undefined) {
      // Bounded cardinality: a label per declared namespace, `/` for the default one, every other as `other`.
      add('socketd_namespaces', 'Namespaces in use besides the default one.', 'gauge', () => one(namespaces.size));
      add('socketd_namespace_sessions', 'Open sessions by namespace (declared ones, / the default, other the rest).', 'gauge', () =>
        this.byNamespace(namespaces, (ns) => ns.sessions, stats.sessionsOpen));
      add('socketd_namespace_subscriptions', 'Event subscriptions by namespace (declared ones, / the default, other the rest).', 'gauge', () =>
        this.byNamespace(namespaces, (ns) => ns.events.subscriptionCount, this.subscriptionTotal()));
    }
    const api = sources.api;
    if (api !== undefined) {
      // The HTTP API (docs/http-api.md); its sessions also count in every metric above as transport "http".
      add('socketd_http_api_requests_total', 'HTTP API calls answered, by endpoint and status.', 'counter', () =>
        [...api.requests].map(([key, value]) => {
          const [endpoint, status] = key.split('|');
          return { value, labels: { endpoint, status } };
        }));
      add('socketd_http_api_sse_streams', 'HTTP API event streams open.', 'gauge', () => one(api.sseOpen));
      add('socketd_http_api_sse_events_total', 'Messages written to HTTP API event streams.', 'counter', () => one(api.sseEvents));
      add('socketd_http_api_sse_closed_total', 'HTTP API event streams ended, by reason.', 'counter', () => fromMap(api.sseClosed, 'reason'));
    }
    // Per-user identities (docs/security.md): JWT and connect hook checks.
    add('socketd_auth_checks_total', 'JWT verifications and connect hook calls, by source (jwt, hook) and outcome.', 'counter', () =>
      [...stats.authChecks].map(([key, value]) => {
        const [source, outcome] = key.split('|');
        return { value, labels: { source, outcome } };
      }));
    add('socketd_connect_hook_in_flight', 'Connect hook calls waiting for an answer.', 'gauge', () => one(stats.hookInFlight));
    add('socketd_connect_hook_duration_seconds', 'Time the connect hook took to answer or time out.', 'histogram', () =>
      histogram('socketd_connect_hook_duration_seconds', stats.hookLatency, {}));
    add('socketd_tokens_expired_total', 'Sessions closed because their token expired (token_expired).', 'counter', () => one(stats.tokensExpired));
    if (sources.cluster) this.addClusterMetrics(add, sources.cluster);
  }

  /** Cluster mode (docs/cluster.md): traffic per peer node, membership, the Redis round trip. */
  private addClusterMetrics(add: (name: string, help: string, type: MetricType, compute: () => Values) => void, cluster: ClusterNode): void {
    const stats = cluster.stats;
    const perPeer = (pick: (c: { framesOut: number; bytesOut: number; framesIn: number; bytesIn: number }) => [number, number]): Values => {
      const out: Values = [];
      for (const [peer, c] of stats.peers) {
        const [sent, received] = pick(c);
        out.push({ value: sent, labels: { peer, direction: 'out' } }, { value: received, labels: { peer, direction: 'in' } });
      }
      return out;
    };
    add('socketd_cluster_frames_forwarded_total', 'Frames forwarded to (out) and from (in) each peer node.', 'counter', () => perPeer((c) => [c.framesOut, c.framesIn]));
    add('socketd_cluster_bytes_forwarded_total', 'Bytes forwarded to (out) and from (in) each peer node, envelopes included.', 'counter', () => perPeer((c) => [c.bytesOut, c.bytesIn]));
    add('socketd_cluster_peers_up', 'Peer nodes this node sees now.', 'gauge', () => one(stats.peersUp));
    add('socketd_cluster_link_up', '1 while Redis (the link to the other nodes) is reachable.', 'gauge', () => one(cluster.linkUp ? 1 : 0));
    add('socketd_cluster_link_downs_total', 'Times the link to the other nodes was lost.', 'counter', () => one(stats.linkDowns));
    add('socketd_cluster_redis_rtt_seconds', 'Round trip of the last heartbeat publish to Redis.', 'gauge', () => (stats.redisRttSeconds < 0 ? [] : one(stats.redisRttSeconds)));
    add('socketd_cluster_alarms_total', 'Alarms sent because a frame could not cross to another node, by reason.', 'counter', () => fromMap(stats.alarms, 'reason'));
    add('socketd_cluster_dropped_total', 'Frames that could not cross to another node, by reason.', 'counter', () => fromMap(stats.dropped, 'reason'));
    add('socketd_cluster_resyncs_total', 'Full re-reads of a peer node\'s interest (a missed delta, a new incarnation, a reconnect).', 'counter', () => one(stats.resyncs));
    add('socketd_cluster_bad_batches_total', 'Messages from peer nodes that could not be decoded.', 'counter', () => one(stats.badBatches));
    // Presence of a dropped node's sessions (docs/cluster.md, "Presence").
    add('socketd_cluster_presence_members', 'Memberships of sessions on other nodes remembered, so that watchers hear them leave if their node is dropped.', 'gauge', () => one(cluster.presenceMembers));
    add('socketd_cluster_presence_members_refused_total', 'Memberships of sessions on other nodes not remembered (cluster.presenceMembersMax reached).', 'counter', () => one(stats.presenceMembersRefused));
    add('socketd_cluster_presence_notices_total', 'Presence notices a node made for sessions of other nodes: leaves of a dropped node, joins of a node back.', 'counter', () => fromMap(stats.presenceNotices, 'kind'));
  }

  /**
   * Where text() reads from instead of this registry, when set: with `--workers`, the primary's aggregate of
   * every worker's registry (src/cluster/workers.ts).
   */
  textSource: (() => Promise<string>) | null = null;

  async text(): Promise<string> {
    return this.textSource !== null ? this.textSource() : this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Event subscriptions in every namespace. */
  subscriptionTotal(): number {
    let total = this.sources.events.subscriptionCount;
    for (const ns of this.sources.namespaces?.all() ?? []) total += ns.events.subscriptionCount;
    return total;
  }

  /** `value` per namespace label; the default namespace gets what the others leave of `total`. */
  private byNamespace(table: NamespaceTable, value: (ns: { sessions: number; events: { subscriptionCount: number } }) => number, total: number): Values {
    const counts = new Map<string, number>([['/', total], ['other', 0]]);
    for (const d of table.options.declared) counts.set(d, 0);
    for (const ns of table.all()) {
      const n = value(ns);
      const label = table.isDeclared(ns.name) ? ns.name : 'other';
      counts.set(label, counts.get(label)! + n);
      counts.set('/', counts.get('/')! - n);
    }
    return fromMap(counts, 'namespace');
  }

  // The four below read state kept up to date where it changes, never every session: a scrape every 15 s
  // that visited 19,000 idle sessions would be periodic per-session work (no idle session may cost anything).

  /** Sessions in their handshake or open, by transport (SessionCounts). */
  private openByTransport(): Values {
    return fromMap(this.sources.sessionCounts.connected(), 'transport');
  }

  /** The running total as of the last memory-budget check: at most budgetCheckMs (100 ms) old (QueuedBytes). */
  private queueTotal(): number {
    return this.sources.broker.queuedBytes;
  }

  /** Kept by each session where its reading stops and restarts (BrokerStats.pausedReaders). */
  private pausedReaders(): number {
    return this.sources.broker.stats.pausedReaders;
  }

  /**
   * A snapshot: the sessions by queue size now (a gauge histogram, rebuilt per scrape). Only the queues in
   * QueuedBytes' active list can hold bytes (its precondition), so those are read and every other session is
   * a 0-byte observation. An active queue that emptied counts as 0 too; one whose session ended since the
   * last check (still flushing its Close) may stand in for a 0 until that check drops it, and the count stays
   * the number of sessions.
   */
  private queueHistogram(): Values {
    const snapshot = new BucketHistogram(QUEUE_BUCKETS);
    const sessions = this.sources.broker.sessionCount;
    let observed = 0;
    this.sources.broker.queued.forEachActive((bytes) => {
      if (bytes > 0 && observed < sessions) {
        snapshot.observe(bytes);
        observed++;
      }
    });
    snapshot.observeZeros(sessions - observed);
    return histogram('socketd_session_outbound_queue_bytes', snapshot, {});
  }
}
