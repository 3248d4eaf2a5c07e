import { DEFAULT_FRAME_LIMITS, DEFAULT_UDP_MAX_DATAGRAM, MiB, type FrameLimits } from '../protocol/limits.js';
import { DEFAULT_PRE_HANDSHAKE_LOG, type PreHandshakeLogSettings } from './pre-handshake-log.js';

/** What to do with a session whose outbound queue reaches its limit (spec §7). */
export type SlowConsumerPolicy = 'disconnect' | 'drop';

export interface OutboundSettings {
  /** Above this many queued bytes a session is congested: its feeders get Pressure (spec §7). */
  highWaterBytes: number;
  /** At this many queued bytes the slow-consumer policy applies. */
  limitBytes: number;
  /** `disconnect` closes the slow consumer; `drop` drops Messages to it (streams still disconnect). */
  policy: SlowConsumerPolicy;
  /**
   * A session congested (above high water, no drain) for this long is a slow consumer too: otherwise a
   * consumer that never reads would hold the senders it paused forever, below its limit.
   */
  congestionTimeoutMs: number;
}

/** Everything the broker core needs to know; src/config builds it from YAML, flags and env. */
export interface BrokerSettings {
  limits: FrameLimits;
  udpMaxDatagram: number;
  handshakeTimeoutMs: number;
  idleTimeoutMs: number;
  requestTimeoutMs: number;
  streamTimeoutMs: number;
  /**
   * Resolution of the sessions' handshake, idle and congestion deadlines (a timer wheel: each session holds
   * one entry, re-armed when it expires; nothing visits every session).
   */
  sweepIntervalMs: number;
  /** Resolution of request/stream/fragment deadlines. */
  timerResolutionMs: number;
  outbound: OutboundSettings;
  /**
   * Fast path (principle 8): forward a Message's bytes untouched, keeping the sender's sid, instead of
   * re-heading it with a fresh sid as the reference broker does. Safe because Message sids only matter for
   * reassembling fragments and reference clients use random 32-hex sids. Off: every forwarded Message gets a
   * broker-made sid.
   */
  forwardMessageBytes: boolean;
  /** Fragmented frames in flight per session (each holds a route until its last fragment, spec §5). */
  maxFragmentRoutesPerSession: number;
  /** Open Request/Subscribe streams per session as requester. */
  maxStreamsPerSession: number;
  /** Connections in all (handshakes in progress included); more are closed with reason too_many_connections. */
  maxConnections: number;
  /** Connections from one IP address. */
  maxConnectionsPerIp: number;
  /** Handshakes per second, broker-wide (burst: one second's worth); 0 = no limit. */
  handshakesPerSecond: number;
  /** Message/Request/Subscribe frames per second per session (burst: one second's worth); 0 = no limit. */
  framesPerSecond: number;
  /** Bytes queued to all sessions together; above it the broker stops reading from everyone (spec §7). */
  memoryBudgetBytes: number;
  /** Reading resumes once the queued bytes fall below this. */
  memoryLowWaterBytes: number;
  /**
   * How often the running total of queued bytes is brought up to date and held against the budget (only
   * the queues that took bytes since are read; no check runs while nothing is queued).
   */
  budgetCheckMs: number;
  /** Summary logging of what ends before a handshake (src/broker/pre-handshake-log.ts). */
  preHandshakeLog: PreHandshakeLogSettings;
  /**
   * Fast path (principle 8): an 8-byte Ping is answered, and an 8-byte Pong taken, without decoding it into
   * a Frame object (a heartbeat allocates nothing). Off: every frame is decoded into a Frame first.
   */
  bareControlFrames: boolean;
  /**
   * Fast path (principle 8): a sender's `@` meta, once it repeats, is remembered with its parsed address and
   * permission check (AtRouteCache): its next frames with the same meta bytes are routed without decoding or
   * checking the meta again. Off: every frame's meta is decoded and checked.
   */
  atRouteCache: boolean;
  /**
   * Fast path (principle 8): a large ws message (64 KiB and more) that arrived over several reads is decoded
   * and forwarded as those reads (Frame.parts), never joined into one buffer. Off: the parts are joined first.
   */
  largeMessageParts: boolean;
}

export const DEFAULT_SETTINGS: Readonly<BrokerSettings> = Object.freeze({
  limits: DEFAULT_FRAME_LIMITS,
  udpMaxDatagram: DEFAULT_UDP_MAX_DATAGRAM,
  handshakeTimeoutMs: 10_000,
  idleTimeoutMs: 60_000,
  requestTimeoutMs: 10_000,
  streamTimeoutMs: 2 * 60 * 60 * 1000,
  sweepIntervalMs: 1_000,
  timerResolutionMs: 50,
  outbound: Object.freeze({ highWaterBytes: 1 * MiB, limitBytes: 64 * MiB, policy: 'disconnect' as SlowConsumerPolicy, congestionTimeoutMs: 10_000 }),
  forwardMessageBytes: true,
  maxFragmentRoutesPerSession: 256,
  maxStreamsPerSession: 10_000,
  maxConnections: 100_000,
  maxConnectionsPerIp: 10_000,
  handshakesPerSecond: 2_000,
  framesPerSecond: 1_000_000,
  memoryBudgetBytes: 1024 * MiB,
  memoryLowWaterBytes: 768 * MiB,
  budgetCheckMs: 100,
  preHandshakeLog: DEFAULT_PRE_HANDSHAKE_LOG,
  bareControlFrames: true,
  atRouteCache: true,
  largeMessageParts: true,
});

/** Defaults overlaid with the given values (one level deep for `limits` and `outbound`). */
export function brokerSettings(overrides: Partial<BrokerSettings> = {}): BrokerSettings {
  return {
    ...DEFAULT_SETTINGS,
    ...overrides,
    limits: { ...DEFAULT_SETTINGS.limits, ...overrides.limits },
    outbound: { ...DEFAULT_SETTINGS.outbound, ...overrides.outbound },
  };
}
