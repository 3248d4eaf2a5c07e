/**
 * What a session needs from the broker. The Broker implements it; tests may provide their own.
 */
import type { Logger } from 'pino';
import type { AccessPolicy, HandshakeRefusal, Permissions } from './access.js';
import type { Namespace } from './namespace-table.js';
import type { Router } from './router.js';
import type { Session } from './session.js';
import type { BrokerSettings } from './settings.js';
import type { BrokerStats } from './stats.js';
import type { StreamTable } from './streams.js';
import type { QueuedBytes } from './queued-bytes.js';
import type { Expirable } from './timer-wheel.js';

/** Where a session keeps its one deadline: the broker's session wheel (TimerWheel), or nowhere. */
export interface SessionDeadlines {
  schedule(entry: Expirable, delayMs: number): void;
  cancel(entry: Expirable): void;
}

/** For sessions that no handshake, idle or congestion timeout may end (a peer node's session, docs/cluster.md). */
export const NO_DEADLINES: SessionDeadlines = { schedule: () => undefined, cancel: () => undefined };

export interface SessionContext {
  readonly settings: BrokerSettings;
  readonly stats: BrokerStats;
  readonly logger: Logger;
  readonly router: Router;
  readonly streams: StreamTable;
  readonly access: AccessPolicy;
  /** The sessions' deadlines (handshake, idle, congestion): one entry per session, re-armed at expiry. */
  readonly deadlines: SessionDeadlines;
  /** The running total of queued bytes for the memory budget (spec §7); null: queues are not tracked. */
  readonly queued: QueuedBytes | null;
  /** Takes a token from the broker-wide handshake rate limit; false refuses the handshake. */
  admitHandshake(now: number): boolean;
  /**
   * The namespace a handshake joins, from its URL's path (docs/namespaces.md): null for the default one, or
   * the refusal. Without it every session is in the default namespace.
   */
  enterNamespace?(path: string, permissions: Permissions): Namespace | null | HandshakeRefusal;
  /** The handshake succeeded: register the session. */
  sessionOnOpen(session: Session): void;
  /** The session ended (once): release what it held. `wasOpen` is false for a failed handshake. */
  sessionOnClose(session: Session, wasOpen: boolean, reason: string, detail: string): void;
  /** An open session's permissions were replaced by a fresh token (`$auth`): routing state follows. */
  sessionPermissionsChanged?(session: Session, previous: Permissions): void;
  /** The client announced its close (Close 1000): take it out of every routing table, keep its streams. */
  sessionClosing(session: Session): void;
  /** The session's connection is closed too (after its last bytes were flushed, or dropped). */
  connectionClosed(session: Session): void;
}
