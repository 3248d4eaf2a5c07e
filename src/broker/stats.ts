/**
 * The broker's counters. Plain numbers and small maps incremented on the hot path; src/metrics reads them
 * when Prometheus scrapes, so counting costs no allocation per frame (docs/operations.md section 5).
 */

/** Request/stream durations in seconds. */
export const LATENCY_BOUNDS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * Fixed-bucket histogram. Observing is two array writes; src/metrics exposes it as a Prometheus histogram
 * at scrape time.
 */
export class BucketHistogram {
  /** counts[i] = observations <= bounds[i] but > bounds[i-1]; the last slot is +Inf. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]) i++;
    this.counts[i]++;
    this.sum += value;
    this.count++;
  }

  /** `n` observations of 0 at once (they land in the first bucket: every bound is >= 0). */
  observeZeros(n: number): void {
    if (n <= 0) return;
    this.counts[0] += n;
    this.count += n;
  }
}

export class BrokerStats {
  sessionsOpen = 0;
  bytesIn = 0;
  bytesOut = 0;
  /** Frames in and out by flag (index = flag value, spec §1). */
  readonly framesInByFlag = new Float64Array(64);
  readonly framesOutByFlag = new Float64Array(64);
  readonly connectionsByTransport = new Map<string, number>();

  /** Connections accepted, all transports (derived: one count per accept, kept by transport). */
  get connectionsTotal(): number {
    let total = 0;
    for (const n of this.connectionsByTransport.values()) total += n;
    return total;
  }
  /** Time from a forwarded Request to its answer, and from a Subscribe to its ReplyEnd. */
  readonly requestLatency = new BucketHistogram(LATENCY_BOUNDS);
  readonly streamLatency = new BucketHistogram(LATENCY_BOUNDS);
  /** Routed Message/Request/Subscribe frames by addressing mode. */
  routedByName = 0;
  routedByEvent = 0;
  /** Frames handed to a target's outbound queue. */
  deliveries = 0;
  /** Replies that arrived for a stream already ended (timed out, requester gone). */
  lateReplies = 0;
  streamsOpened = 0;
  streamsOpen = 0;
  slowConsumers = 0;
  /** Times the broker-wide memory budget paused every reader (spec §7). */
  budgetPauses = 0;
  /** True while over the memory budget. */
  overBudget = false;
  /** Bytes queued to all sessions as the last memory-budget check summed them (every budgetCheckMs). */
  queuedBytes = 0;
  /**
   * Sessions (open or in their handshake) whose reading is paused now (spec §7): kept by Session where its
   * reading stops and restarts, and on release, so the metrics read it without visiting every session.
   */
  pausedReaders = 0;
  pressureSent = 0;
  /** Keyed by a stable reason code. */
  readonly dropped = new Map<string, number>();
  readonly alarms = new Map<number, number>();
  readonly protocolErrors = new Map<string, number>();
  readonly closes = new Map<string, number>();
  readonly handshakesRefused = new Map<string, number>();
  /** Listener errors after binding, keyed `transport|code` (e.g. `tcp|EMFILE`). */
  readonly transportErrors = new Map<string, number>();
  /**
   * tcp connections by the framing their first bytes showed, keyed `transport|framing` (`tcp|standard`,
   * `tcp|length_prefixed`): counted by the tcp adapter through the wiring point (docs/clients.md).
   */
  readonly connectionsByFraming = new Map<string, number>();
  /** Connections refused before their handshake by a limit, by reason. */
  readonly connectionsRefused = new Map<string, number>();

  /**
   * Close frames to peers not validated yet (udp before its Connect is accepted) that did not fit the
   * anti-amplification allowance, by action: `trimmed` (sent shorter) or `not_sent` (docs/security.md).
   */
  readonly amplificationLimited = new Map<string, number>();
  /** Connections and datagrams that ended before a handshake, keyed `transport|reason` (docs/operations.md section 4). */
  readonly preHandshake = new Map<string, number>();
  // ----- per-user identities (src/broker/auth, docs/security.md) -----
  /** Token and hook checks by `source|outcome` (e.g. `jwt|admitted`, `jwt|token_expired`, `hook|timeout`). */
  readonly authChecks = new Map<string, number>();
  /** Connect hook calls in flight now. */
  hookInFlight = 0;
  /** Time the connect hook took to answer (or to time out), seconds. */
  readonly hookLatency = new BucketHistogram(LATENCY_BOUNDS);
  /** Open sessions closed because their token expired without a fresh one (`$auth`). */
  tokensExpired = 0;

  static inc<K>(map: Map<K, number>, key: K, by = 1): void {
    map.set(key, (map.get(key) ?? 0) + by);
  }
}
