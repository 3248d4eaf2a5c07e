/**
 * The broker core: accepts connections from any transport, keeps the sessions, and wires the router, the
 * stream table and the timers together. It builds no listeners and reads no config: src/server.ts does that
 * and hands the results in (principle 6).
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { CloseCode } from '../protocol/codes.js';
import type { Connection, ListenerReporter, TransportName } from '../transport/connection.js';
import { OPEN_ACCESS, type AccessPolicy, type HandshakeRefusal, type Permissions } from './access.js';
import type { Namespace, NamespaceTable } from './namespace-table.js';
import { NO_EVENT_ROUTING, Router, type EventRouting } from './router.js';
import { Session } from './session.js';
import type { SessionContext } from './session-context.js';
import { SessionRegistry } from './session-registry.js';
import type { BrokerSettings } from './settings.js';
import { BrokerStats } from './stats.js';
import { StreamTable } from './streams.js';
import { HeadSlab } from './head-slab.js';
import { PreHandshakeLog } from './pre-handshake-log.js';
import { QueuedBytes } from './queued-bytes.js';
import { TimerWheel } from './timer-wheel.js';
import { TokenBucket } from './token-bucket.js';
import type { ClusterRouting } from './cluster-seam.js';

export interface BrokerDeps {
  settings: BrokerSettings;
  logger: Logger;
  stats?: BrokerStats;
  access?: AccessPolicy;
  /** Routing of frames without `@` (spec §4.2); built by the wiring point. */
  events?: EventRouting;
  /** Told when a session opens or ends (subscriptions, presence, metrics). */
  observers?: SessionObserver[];
  /** Namespaces other than the default one (docs/namespaces.md); without it every session is in the default. */
  namespaces?: NamespaceTable;
  /** Counts and summarizes what ends before a handshake; by default one built from settings.preHandshakeLog. */
  preHandshake?: PreHandshakeLog;
  /** Peer nodes (docs/cluster.md); absent in single-node mode. */
  cluster?: ClusterRouting;
}

export interface SessionObserver {
  /** A connection became a session (in its handshake); sessionClosed follows for every one, open or not. */
  sessionAccepted?(session: Session): void;
  sessionOpened?(session: Session): void;
  /** The client announced its close: it must stop being a routing target. */
  sessionClosing?(session: Session): void;
  sessionClosed?(session: Session, wasOpen: boolean, reason: string): void;
  /** An open session's permissions were replaced (`$auth`); `previous` were in force until now. */
  sessionPermissionsChanged?(session: Session, previous: Permissions): void;
}

export class Broker implements SessionContext, ListenerReporter {
  readonly settings: BrokerSettings;
  readonly logger: Logger;
  readonly stats: BrokerStats;
  readonly access: AccessPolicy;
  readonly registry = new SessionRegistry();
  readonly wheel: TimerWheel;
  /**
   * The sessions' own deadlines (handshake, idle, congestion), at the coarser sweepIntervalMs resolution:
   * nothing visits every session periodically (an idle session costs one wheel entry, re-armed at expiry).
   */
  readonly deadlines: TimerWheel;
  /** Bytes queued to all sessions, read only from the queues that took bytes (memory budget, spec §7). */
  readonly queued: QueuedBytes;
  readonly streams: StreamTable;
  readonly router: Router;
  /** Bare connects, strays and failed handshakes: counted each, logged as one summary line per reason per interval. */
  readonly preHandshake: PreHandshakeLog;
  /** Every session, open or still in its handshake. */
  private readonly sessions = new Set<Session>();
  /** Sessions whose connection has not closed yet (a released session may still be flushing its Close). */
  private readonly connections = new Set<Session>();
  private readonly observers: SessionObserver[];
  private readonly idPrefix = randomBytes(3).toString('hex');
  private nextId = 0;
  private closing = false;
  private drainWaiter: (() => void) | null = null;
  /** Open connections per remote IP (spec §8 limits). */
  private readonly perIp = new Map<string, number>();
  private readonly handshakeBucket: TokenBucket | null;
  readonly namespaces: NamespaceTable | null;

  constructor(deps: BrokerDeps) {
    this.namespaces = deps.namespaces ?? null;
    this.settings = deps.settings;
    this.logger = deps.logger;
    this.stats = deps.stats ?? new BrokerStats();
    this.access = deps.access ?? OPEN_ACCESS;
    this.observers = deps.observers ?? [];
    this.preHandshake = deps.preHandshake ?? new PreHandshakeLog(this.logger, this.settings.preHandshakeLog, this.stats);
    this.wheel = new TimerWheel(this.settings.timerResolutionMs);
    this.deadlines = new TimerWheel(this.settings.sweepIntervalMs);
    this.queued = new QueuedBytes(this.settings.budgetCheckMs, (queued) => this.applyBudget(queued));
    // One slab for the heads of re-headed frames, shared by requests (router) and replies (stream table).
    const heads = new HeadSlab();
    this.streams = new StreamTable(this.wheel, heads, this.stats);
    this.router = new Router(this.registry, this.streams, heads, this.wheel, this.settings, this.stats, deps.events ?? NO_EVENT_ROUTING,
      deps.cluster ?? null);
    const hps = this.settings.handshakesPerSecond;
    this.handshakeBucket = hps > 0 ? new TokenBucket(hps, hps, Date.now()) : null;
  }

  /** Sessions open or in their handshake. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Timers pending in the wheel (streams, fragment routes): back to 0 when nothing is in flight. */
  get pendingTimers(): number {
    return this.wheel.size;
  }

  allSessions(): IterableIterator<Session> {
    return this.sessions.values();
  }

  /** The ConnectionAcceptor given to every listener. */
  readonly accept = (connection: Connection): void => {
    if (this.closing) {
      connection.destroy('shutting_down');
      return;
    }
    const session = new Session(this, connection, `${this.idPrefix}${(this.nextId++).toString(36)}`);
    const ip = connection.remoteAddress;
    const fromIp = (this.perIp.get(ip) ?? 0) + 1;
    this.perIp.set(ip, fromIp);
    this.sessions.add(session);
    this.connections.add(session);
    BrokerStats.inc(this.stats.connectionsByTransport, connection.transport);
    for (const o of this.observers) o.sessionAccepted?.(session);
    session.start();
    // Limits are checked once the session can answer: the refused client gets a Close with the reason.
    if (this.connections.size > this.settings.maxConnections) {
      this.refuseConnection(session, 'too_many_connections', `The broker holds its limit of ${this.settings.maxConnections} connections`);
    } else if (fromIp > this.settings.maxConnectionsPerIp) {
      this.refuseConnection(session, 'too_many_connections_from_ip', `${ip} holds its limit of ${this.settings.maxConnectionsPerIp} connections`);
    } else if (this.stats.overBudget) {
      session.setBudgetPause(true);
    }
  };

  listenerOnError(transport: TransportName, error: Error): void {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    BrokerStats.inc(this.stats.transportErrors, `${transport}|${code}`);
    this.logger.warn({ event: 'listener_error', transport, code, err: error.message }, 'listener error');
  }

  /** Per dropped datagram: counted, not logged (a flood would flood the log). */
  listenerOnDrop(_transport: TransportName, reason: string): void {
    BrokerStats.inc(this.stats.dropped, reason);
  }

  /** A datagram without a session, dropped unanswered: counted, and summarized with what fails before a handshake. */
  listenerOnStray(transport: TransportName, reason: string, remote: string): void {
    BrokerStats.inc(this.stats.dropped, reason);
    this.preHandshake.count(transport, reason, remote);
  }

  admitHandshake(now: number): boolean {
    return this.handshakeBucket === null || this.handshakeBucket.take(now);
  }

  private refuseConnection(session: Session, reason: string, text: string): void {
    BrokerStats.inc(this.stats.connectionsRefused, reason);
    session.close(reason, CloseCode.Error, text);
  }

  /** Bytes queued to all sessions at the last budget check. */
  get queuedBytes(): number {
    return this.queued.bytes;
  }

  /**
   * The broker-wide memory budget (spec §7): above it, reading stops on every connection until the queued
   * bytes fall below the low-water mark. Told the running total every budgetCheckMs while any queue holds
   * bytes (QueuedBytes); only crossing the budget or the low-water mark visits the sessions.
   */
  private applyBudget(queued: number): void {
    // The admin page's budget chart reads the last total (src/http/admin/sampler.ts).
    this.stats.queuedBytes = queued;
    const { memoryBudgetBytes, memoryLowWaterBytes } = this.settings;
    if (!this.stats.overBudget && queued > memoryBudgetBytes) {
      this.stats.overBudget = true;
      this.stats.budgetPauses++;
      this.logger.warn({ event: 'memory_budget_exceeded', queuedBytes: queued, budgetBytes: memoryBudgetBytes }, 'memory budget exceeded: reading paused on every connection');
      for (const session of this.sessions) session.setBudgetPause(true);
    } else if (this.stats.overBudget && queued < memoryLowWaterBytes) {
      this.stats.overBudget = false;
      this.logger.info({ event: 'memory_budget_recovered', queuedBytes: queued }, 'queued bytes below the low-water mark: reading resumed');
      for (const session of this.sessions) session.setBudgetPause(false);
    }
  }

  enterNamespace(path: string, permissions: Permissions): Namespace | null | HandshakeRefusal {
    return this.namespaces === null ? null : this.namespaces.enter(path, permissions);
  }

  /** The registry of the session's namespace (docs/namespaces.md). */
  private registryOf(session: Session): SessionRegistry {
    return session.namespace === null ? this.registry : session.namespace.registry;
  }

  sessionOnOpen(session: Session): void {
    this.registryOf(session).add(session);
    this.stats.sessionsOpen++;
    // An HTTP API call is a session per request: its line goes at debug (the API counts its calls in metrics).
    this.logger[session.connection.requestScoped === true ? 'debug' : 'info'](
      { event: 'session_open', id: session.id, name: session.name || undefined, transport: session.transport, remote: remoteOf(session) },
      'session open',
    );
    for (const o of this.observers) o.sessionOpened?.(session);
  }

  sessionOnClose(session: Session, wasOpen: boolean, reason: string, detail: string): void {
    this.sessions.delete(session);
    BrokerStats.inc(this.stats.closes, reason);
    if (wasOpen) {
      this.stats.sessionsOpen--;
      this.registryOf(session).remove(session);
      this.streams.requesterGone(session);
      this.streams.responderGone(session);
      this.router.releaseFragments(session);
    }
    const fields = {
      event: 'session_close', id: session.id, name: session.name || undefined, transport: session.transport,
      remote: remoteOf(session), reason, detail: detail || undefined, durationMs: Date.now() - session.createdAt,
    };
    if (wasOpen) {
      this.logger[session.connection.requestScoped === true ? 'debug' : 'info'](fields, 'session closed');
    } else {
      // One line per connection only at debug: a scan or a flood of probes must not become a flood of lines.
      this.logger.debug(fields, 'connection closed before the handshake completed');
      this.preHandshake.count(session.transport, reason, fields.remote);
    }
    for (const o of this.observers) o.sessionClosed?.(session, wasOpen, reason);
    if (this.sessions.size === 0) this.noSessionLeft();
  }

  sessionPermissionsChanged(session: Session, previous: Permissions): void {
    for (const o of this.observers) o.sessionPermissionsChanged?.(session, previous);
  }

  sessionClosing(session: Session): void {
    this.registryOf(session).remove(session);
    this.logger[session.connection.requestScoped === true ? 'debug' : 'info']({ event: 'session_closing', id: session.id, name: session.name || undefined }, 'session announced its close');
    for (const o of this.observers) o.sessionClosing?.(session);
  }

  connectionClosed(session: Session): void {
    if (!this.connections.delete(session)) return;
    const ip = session.connection.remoteAddress;
    const fromIp = (this.perIp.get(ip) ?? 1) - 1;
    if (fromIp <= 0) this.perIp.delete(ip);
    else this.perIp.set(ip, fromIp);
    if (this.connections.size === 0 && this.drainWaiter !== null) this.drainWaiter();
  }

  /** Connections not yet closed (sessions flushing their Close included). */
  get connectionCount(): number {
    return this.connections.size;
  }

  /**
   * Graceful shutdown: refuse new connections, send Close to every session and let their queues flush;
   * sessions still open at the deadline are destroyed. Resolves once every session is gone.
   */
  async shutdown(deadlineMs = 5_000): Promise<void> {
    this.closing = true;
    const drained = new Promise<void>((resolve) => {
      this.drainWaiter = resolve;
      if (this.connections.size === 0) resolve();
    });
    for (const session of [...this.sessions]) session.close('shutdown', CloseCode.ProtocolClose, 'broker shutting down');
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'deadline'>((resolve) => {
      timer = setTimeout(resolve, deadlineMs, 'deadline');
    });
    const outcome = await Promise.race([drained, deadline]);
    clearTimeout(timer);
    if (outcome === 'deadline') {
      for (const session of [...this.connections]) session.connection.destroy('shutdown_deadline');
    }
    this.noSessionLeft();
    this.wheel.clear();
    this.preHandshake.stop();
    this.deadlines.clear();
  }

  private noSessionLeft(): void {
    // No session left: nothing is queued, and the next connections must not start paused.
    this.queued.clear();
    this.stats.overBudget = false;
    this.stats.queuedBytes = 0;
  }
}

function remoteOf(session: Session): string {
  const c = session.connection;
  return c.remotePort > 0 ? `${c.remoteAddress}:${c.remotePort}` : c.remoteAddress;
}
