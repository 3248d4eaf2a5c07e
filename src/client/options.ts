/**
 * The client's options (docs/client.md): the public option types the SDK's users pass to connect(), send(),
 * request(), stream() and on(), the types of their handlers, and how options become settings (defaults,
 * checks) and metas. Separate from client.ts so the option surface can be read in one place and the checks
 * run before any connection exists.
 */
import type tls from 'node:tls';
import { DEFAULT_FRAME_LIMITS, DEFAULT_UDP_MAX_DATAGRAM, type FrameLimits } from '../protocol/limits.js';
import { SocketdError } from './errors.js';
import type { TokenProvider } from './token.js';
import type { IncomingMessage, Metas, PresenceNotice } from './message.js';

export interface ReconnectOptions {
  /** Default true. */
  enabled?: boolean;
  /** First delay in ms (default 100). */
  initialDelay?: number;
  /** Cap of the delay in ms (default 10 000). */
  maxDelay?: number;
  /** Growth per attempt (default 2). */
  factor?: number;
  /** Random spread, 0..1: each delay is multiplied by 1 ± jitter (default 0.2). */
  jitter?: number;
}

export interface ClientOptions {
  /** The session's `@` name: adds `@=name` to the url query (spec §4.1). */
  name?: string;
  /**
   * Sent as Connect meta `token` (spec §8). A function is called for a fresh token on connect, on every
   * reconnect, and `tokenRefreshMargin` before the current one expires (a JWT's `exp`): the fresh token is
   * then sent as `$auth` and the session stays open (docs/client.md, "Tokens").
   */
  token?: string | TokenProvider;
  /** With a token function: refresh this many ms before expiry, at most half the token's life (default 30 000). */
  tokenRefreshMargin?: number;
  /** Extra Connect metas (spec §3: they overlay the url query as handshake params). */
  metas?: Metas;
  /** ms to get the Connack, dial included (default 10 000). */
  connectTimeout?: number;
  /** Default request timeout in ms (default 10 000); also sent to the broker as meta `timeout`. */
  requestTimeout?: number;
  /** ms between Pings (default 20 000; 0 = no heartbeat). */
  heartbeatInterval?: number;
  /** Automatic reconnect; `false` turns it off. */
  reconnect?: boolean | ReconnectOptions;
  /** Most bytes the connection may hold unsent before send() throws `congested` (default 8 MiB). */
  maxOutboundBytes?: number;
  /** Largest data accepted by send/request (default 16 MiB, the broker's default maxData). */
  maxData?: number;
  /** TLS options for tcps and wss (ca, rejectUnauthorized, servername, cert, key, ...). */
  tls?: tls.ConnectionOptions;
  /** udp: largest datagram (default 2048, the broker's default). */
  maxDatagram?: number;
  /**
   * How long `pressured` stays true after the broker's last Pressure frame, in ms (default 2). The broker has
   * already stopped reading from this client (spec §7), so writes back up in the socket by themselves; the hold
   * only tells a publisher loop to yield. Longer holds left the connection idle: with 1 MiB messages, 10 ms
   * cost a third of the throughput (bench/results.md, "Pressure hold").
   */
  pressureHold?: number;
  /**
   * Handler for frames addressed to this client by `@` (as `onDirect`), installed before the handshake so a
   * Request that arrives right behind the Connack is not answered with 4004 (a named service that just
   * (re)connected can be picked at once).
   */
  onDirect?: MessageHandler;
}

export interface SendOptions {
  /** Extra metas. */
  meta?: Metas;
  /** The `@` target (spec §4.1): `svc`, `svc!`, `svc*` or `*`. Without it the event routes by subscription. */
  to?: string;
}

export interface RequestOptions extends SendOptions {
  /** ms (default: the client's requestTimeout); sent as meta `timeout` so the broker gives up at the same time. */
  timeout?: number;
  /** Aborting rejects with `aborted` and forgets the request. */
  signal?: AbortSignal;
}

export type StreamOptions = RequestOptions;

export interface SubscribeOptions {
  /** Queue group (spec §4.2): each Message goes to one member of the group. */
  group?: string;
  /** Also receive `$presence.join/leave` notices for this (exact) event, through client.onPresence. */
  presence?: boolean;
}

export type MessageHandler = (message: IncomingMessage) => void | Promise<void>;
export type PresenceHandler = (notice: PresenceNotice) => void;

export type ClientState = 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface Subscription {
  readonly pattern: string;
  readonly group: string | undefined;
  readonly presence: boolean;
  /** Removes this handler; sends `$unsub` when it was the last one for its pattern and group. */
  off(): Promise<void>;
}

/** A duration option in ms: `fallback` when absent; throws `invalid_argument` when negative or not finite. */
export function ms(value: number | undefined, fallback: number, what: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0) throw new SocketdError('invalid_argument', `${what} must be a non-negative number of ms`);
  return value;
}

/** `k=v&k=v` from metas, plus `@` and `timeout` (spec §1: never encoded, so separators are refused). */
export function formatMetas(meta: Metas | undefined, to: string | undefined, timeout: number): string {
  let out = '';
  if (meta !== undefined) {
    for (const key in meta) {
      const value = String(meta[key]);
      if (key.length === 0 || key.includes('&') || key.includes('=') || value.includes('&')) {
        throw new SocketdError('invalid_argument', `Meta '${key}=${value}': keys may not hold '&' or '=', values not '&'`);
      }
      out += out.length === 0 ? `${key}=${value}` : `&${key}=${value}`;
    }
  }
  if (to !== undefined) {
    if (to.length === 0 || to.includes('&')) throw new SocketdError('invalid_argument', `Invalid target '${to}'`);
    out += out.length === 0 ? `@=${to}` : `&@=${to}`;
  }
  if (timeout > 0) out += out.length === 0 ? `timeout=${timeout}` : `&timeout=${timeout}`;
  return out;
}

/** The options of one client with their defaults applied and checked (the constructor's argument errors). */
export interface ClientSettings {
  readonly connectTimeout: number;
  readonly requestTimeout: number;
  /** The meta of a request with no options: `timeout=<requestTimeout>` (or none). */
  readonly defaultRequestMeta: string;
  readonly heartbeatInterval: number;
  readonly reconnect: Required<ReconnectOptions>;
  readonly maxOutboundBytes: number;
  readonly maxData: number;
  readonly pressureHold: number;
  readonly limits: FrameLimits;
  readonly tls: tls.ConnectionOptions | undefined;
  readonly maxDatagram: number;
  readonly tokenRefreshMargin: number;
  /** The Connect frame's meta: `Socket.D=1.0`, the extra metas and a fixed token. */
  readonly connectMeta: string;
}

/** Applies the defaults and checks every option; throws SocketdError `invalid_argument`. */
export function resolveOptions(options: ClientOptions): ClientSettings {
  const connectTimeout = ms(options.connectTimeout, 10_000, 'connectTimeout');
  const requestTimeout = ms(options.requestTimeout, 10_000, 'requestTimeout');
  const defaultRequestMeta = formatMetas(undefined, undefined, requestTimeout);
  const heartbeatInterval = ms(options.heartbeatInterval, 20_000, 'heartbeatInterval');
  const r = options.reconnect;
  const ro: ReconnectOptions = typeof r === 'object' ? r : { enabled: r !== false };
  const reconnect = {
    enabled: ro.enabled !== false,
    initialDelay: ms(ro.initialDelay, 100, 'reconnect.initialDelay'),
    maxDelay: ms(ro.maxDelay, 10_000, 'reconnect.maxDelay'),
    factor: ro.factor ?? 2,
    jitter: Math.min(1, Math.max(0, ro.jitter ?? 0.2)),
  };
  const maxOutboundBytes = options.maxOutboundBytes ?? 8 * 1024 * 1024;
  const maxData = options.maxData ?? DEFAULT_FRAME_LIMITS.maxData;
  // Short: the broker already stops reading from us while the target is congested, so TCP pushes back by
  // itself; the hold only keeps a burst from outrunning that signal.
  const pressureHold = ms(options.pressureHold, 2, 'pressureHold');
  const metas: Metas = { ...(options.metas ?? {}) };
  if (typeof options.token === 'string') metas['token'] = options.token;
  const tokenRefreshMargin = ms(options.tokenRefreshMargin, 30_000, 'tokenRefreshMargin');
  const extra = formatMetas(metas, undefined, 0);
  return {
    connectTimeout,
    requestTimeout,
    defaultRequestMeta,
    heartbeatInterval,
    reconnect,
    maxOutboundBytes,
    maxData,
    pressureHold,
    limits: DEFAULT_FRAME_LIMITS,
    tls: options.tls,
    maxDatagram: options.maxDatagram ?? DEFAULT_UDP_MAX_DATAGRAM,
    tokenRefreshMargin,
    connectMeta: extra.length === 0 ? 'Socket.D=1.0' : `Socket.D=1.0&${extra}`,
  };
}
