/**
 * Shared by the soak orchestrator (bench/soak.ts) and its client processes (bench/soak/worker.ts): the plan
 * a process gets, the statistics it sends back, the IPC messages, a log-bucket latency histogram and a
 * seeded PRNG. Nothing here is shared with the benchmark runner (bench/run.ts, bench/lib/).
 */

export type Transport = 'tcp' | 'ws' | 'udp';

/** What one connection does. */
export type Role =
  | 'echo' // responder `@echo` + `work.>` in queue group `workers`: echoes Requests at once
  | 'slow' // responder `@slow`: answers after 20-300 ms; 1% after the broker's request timeout (Alarm 4008)
  | 'feeder' // responder `@feeder` + `feed.*` in group `feeders`: 3-5 Replies then ReplyEnd per Subscribe
  | 'victim' // a feeder that sometimes destroys its socket mid-stream (Alarm 5003); its process is SIGKILLed too
  | 'requester' // Requests with up to N in flight
  | 'streamer' // Subscribes (reply streams) with up to N in flight
  | 'publisher' // Messages by event and by `@`
  | 'subscriber' // event subscriptions with wildcards; some hold an `@inbox-<k>` name
  | 'idle'; // heartbeat only

/** How a churning connection leaves: Close frame + new client, or its socket destroyed (auto-reconnect). */
export type ChurnMode = 'none' | 'graceful' | 'abrupt';

export interface ConnSpec {
  /** Unique over the run, e.g. `w2.c17`. */
  id: string;
  role: Role;
  transport: Transport;
  churn: ChurnMode;
  /** The `@` name, if any. */
  name?: string;
  /** subscriber: event patterns. */
  patterns?: string[];
}

export interface Timing {
  /** The broker's timeouts.requestMs and timeouts.streamMs. */
  brokerRequestMs: number;
  brokerStreamMs: number;
  /** The clients' timeouts: a few seconds above the broker's, so the broker's Alarm 4008 comes first. */
  clientRequestMs: number;
  clientStreamMs: number;
  /** A churning connection leaves every churnMinMs..churnMaxMs. */
  churnMinMs: number;
  churnMaxMs: number;
  /** Per requester connection: most Requests in flight and Requests per second. */
  requestsInFlight: number;
  requestsPerSecond: number;
  /** Per streamer connection. */
  streamsInFlight: number;
  streamsPerSecond: number;
  /** Per publisher connection. */
  messagesPerSecond: number;
  /** Handshakes in progress at once per process while connecting. */
  connectConcurrency: number;
  /** victim: probability that a stream is cut by destroying the socket mid-stream. */
  victimKillProbability: number;
}

export interface WorkerPlan {
  label: string;
  seed: number;
  urls: Record<Transport, string>;
  conns: ConnSpec[];
  timing: Timing;
  /** Rooms (`chat.room.<r>`) and metric hosts (`metrics.<h>.<kind>`) publishers pick from. */
  rooms: number;
  hosts: number;
  /** Inbox names `inbox-<k>`, k < inboxes, held by subscribers. */
  inboxes: number;
}

export const METRIC_KINDS = ['cpu', 'mem', 'disk'] as const;

// ----- statistics ----------------------------------------------------------------------------------------

/** How issued Requests/Subscribes ended. */
export interface Outcomes {
  issued: number;
  answered: number;
  /** SocketdError 'alarm' by alarmCode. */
  alarmed: Record<string, number>;
  /** 'connection_lost'/'closed' while the requester's own connection was being churned by the soak. */
  churnedPlanned: number;
  /** 'connection_lost' without a churn of ours (the broker closed it, heartbeat timeout, ...). */
  churnedUnplanned: number;
  /** The local timer fired: no answer from the broker at all. LOST. */
  timeout: number;
  /** Any other error code after sending. LOST. */
  other: Record<string, number>;
  /** Refused by the SDK before sending (congested, not connected, ...): not issued. */
  notSent: Record<string, number>;
  /** Answered with the wrong data (requests) or a stream whose items were wrong or missing. */
  wrong: number;
  /** Still pending when the process reported (should be 0 after the drain). */
  pending: number;
}

export function newOutcomes(): Outcomes {
  return { issued: 0, answered: 0, alarmed: {}, churnedPlanned: 0, churnedUnplanned: 0, timeout: 0, other: {}, notSent: {}, wrong: 0, pending: 0 };
}

export function inc(map: Record<string, number>, key: string | number, by = 1): void {
  map[String(key)] = (map[String(key)] ?? 0) + by;
}

export function sumValues(map: Record<string, number>): number {
  let n = 0;
  for (const v of Object.values(map)) n += v;
  return n;
}

/** Lost = issued − (answered + alarmed + requester churned): timeouts, other errors, still pending. */
export function lostOf(o: Outcomes): number {
  return o.issued - (o.answered + sumValues(o.alarmed) + o.churnedPlanned + o.churnedUnplanned);
}

export function mergeOutcomes(into: Outcomes, from: Outcomes): void {
  into.issued += from.issued;
  into.answered += from.answered;
  into.churnedPlanned += from.churnedPlanned;
  into.churnedUnplanned += from.churnedUnplanned;
  into.timeout += from.timeout;
  into.wrong += from.wrong;
  into.pending += from.pending;
  for (const [k, v] of Object.entries(from.alarmed)) inc(into.alarmed, k, v);
  for (const [k, v] of Object.entries(from.other)) inc(into.other, k, v);
  for (const [k, v] of Object.entries(from.notSent)) inc(into.notSent, k, v);
}

/** A Request or stream that ended as LOST, kept for the report (the first few per process). */
export interface LostSample {
  what: 'request' | 'stream';
  kind: string;
  conn: string;
  transport: Transport;
  code: string;
  message: string;
  /** ms since the process got 'go'. */
  issuedAt: number;
  endedAt: number;
  /** stream: items received before the end. */
  items?: number;
}

export interface ConnStats {
  planned: number;
  connected: number;
  connectFailures: Record<string, number>;
  gracefulChurns: number;
  abruptChurns: number;
  /** Reconnects done by the SDK (after abrupt churns or unplanned drops). */
  reconnects: number;
  /** 'disconnect' events we did not cause. */
  unplannedDisconnects: number;
  unplannedSamples: string[];
  /** victim: sockets destroyed mid-stream. */
  midStreamKills: number;
  /** Reconnects that did not come back within 15 s (then a fresh client was made). */
  reconnectStalls: number;
  byTransport: Record<string, number>;
}

export interface MessageStats {
  /** Messages sent by subscription, by event, and whether the publisher is stable (never churns). */
  sentByEvent: Record<string, { stable: number; churn: number }>;
  /** Messages sent to `@inbox-<k>`. */
  sentDirect: number;
  /** send() threw (congested, connection_lost, ...): not sent. */
  sendRefused: Record<string, number>;
  /** Alarms received by publishers for Messages (4004: nobody holds the name). */
  alarms: Record<string, number>;
}

/** One subscriber connection's receipts (over its whole life, reconnects included). */
export interface SubscriberStats {
  id: string;
  transport: Transport;
  stable: boolean;
  patterns: string[];
  inbox: string | null;
  /** By subscription, from stable / churning publishers. */
  fromStable: number;
  fromChurn: number;
  direct: number;
}

export interface ResponderStats {
  requests: number;
  streams: number;
  replies: number;
  /** reply()/replyEnd() threw because the connection was gone. */
  replyFailed: number;
  delayedPastTimeout: number;
  stalledStreams: number;
}

export interface WorkerStats {
  label: string;
  pid: number;
  conns: ConnStats;
  requests: Outcomes;
  requestsByKind: Record<string, Outcomes>;
  /** `request:tcp`, `stream:udp`, ...: by the requester's transport. */
  byTransport: Record<string, Outcomes>;
  streams: Outcomes;
  streamItems: number;
  /** Histograms (see Histogram) of answered round trips: all, and the ones without a designed delay. */
  latencyAll: HistogramData;
  latencyDirect: HistogramData;
  /** Whole streams, Subscribe to ReplyEnd. */
  latencyStream: HistogramData;
  messages: MessageStats;
  subscribers: SubscriberStats[];
  responders: ResponderStats;
  lostSamples: LostSample[];
  /** Client events 'error' by code (handler errors, refused restored $sub, ...). */
  clientErrors: Record<string, number>;
  cpuSeconds: number;
  maxRssBytes: number;
}

// ----- IPC -----------------------------------------------------------------------------------------------

export type ToWorker =
  | { type: 'plan'; plan: WorkerPlan }
  | { type: 'go' }
  | { type: 'stop' }
  | { type: 'report' }
  | { type: 'exit' };

export type FromWorker =
  | { type: 'ready'; connected: number; failed: number; ms: number }
  | { type: 'drained'; pending: number; ms: number }
  | { type: 'stats'; stats: WorkerStats }
  /** victim: a socket destroyed mid-stream (sent at once, as the process may be SIGKILLed before it reports). */
  | { type: 'midStreamKill' }
  | { type: 'fatal'; message: string };

// ----- latency histogram ---------------------------------------------------------------------------------

const H_BASE_MS = 0.01;
const H_FACTOR = 1.02;
const H_BUCKETS = 900; // up to 0.01 ms × 1.02^900 ≈ 5.5e5 s

export interface HistogramData {
  counts: number[];
  count: number;
  sum: number;
  max: number;
}

/** Log buckets of 2% width from 0.01 ms: percentiles within 2%, mergeable across processes. */
export class Histogram {
  readonly counts = new Array<number>(H_BUCKETS).fill(0);
  count = 0;
  sum = 0;
  max = 0;

  record(ms: number): void {
    const v = ms <= H_BASE_MS ? 0 : Math.min(H_BUCKETS - 1, Math.ceil(Math.log(ms / H_BASE_MS) / Math.log(H_FACTOR)));
    this.counts[v]!++;
    this.count++;
    this.sum += ms;
    if (ms > this.max) this.max = ms;
  }

  data(): HistogramData {
    return { counts: this.counts.slice(), count: this.count, sum: this.sum, max: this.max };
  }

  static merge(list: HistogramData[]): HistogramData {
    const out: HistogramData = { counts: new Array<number>(H_BUCKETS).fill(0), count: 0, sum: 0, max: 0 };
    for (const h of list) {
      for (let i = 0; i < H_BUCKETS; i++) out.counts[i]! += h.counts[i] ?? 0;
      out.count += h.count;
      out.sum += h.sum;
      out.max = Math.max(out.max, h.max);
    }
    return out;
  }

  /** The q-quantile (0..1) in ms: the upper edge of its bucket, at most the max. */
  static quantile(h: HistogramData, q: number): number {
    if (h.count === 0) return 0;
    const rank = Math.ceil(q * h.count);
    let seen = 0;
    for (let i = 0; i < h.counts.length; i++) {
      seen += h.counts[i]!;
      if (seen >= rank) return Math.min(h.max, H_BASE_MS * Math.pow(H_FACTOR, i));
    }
    return h.max;
  }
}

// ----- misc ----------------------------------------------------------------------------------------------

/** mulberry32: a small seeded PRNG, so a run's plan and choices can be repeated. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
