/**
 * The broker's counters. Plain numbers and small maps incremented on the hot path; src/metrics reads them
 * when Prometheus scrapes, so counting costs no allocation per frame (issue #6).
 */
export class BrokerStats {
  connectionsOpen = 0;
  connectionsTotal = 0;
  sessionsOpen = 0;
  framesIn = 0;
  bytesIn = 0;
  framesOut = 0;
  bytesOut = 0;
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
  pressureSent = 0;
  /** Keyed by a stable reason code. */
  readonly dropped = new Map<string, number>();
  readonly alarms = new Map<number, number>();
  readonly protocolErrors = new Map<string, number>();
  readonly closes = new Map<string, number>();
  readonly handshakesRefused = new Map<string, number>();

  static inc<K>(map: Map<K, number>, key: K, by = 1): void {
    map.set(key, (map.get(key) ?? 0) + by);
  }
}
