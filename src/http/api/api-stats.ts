/**
 * Counters of the HTTP API, read by src/metrics at scrape time (docs/operations.md, metrics): plain numbers
 * and small maps with bounded keys (endpoints and status codes are fixed sets).
 */
import { BrokerStats } from '../../broker/stats.js';

export class ApiStats {
  /** Answered calls by `endpoint|status` (e.g. `publish|200`). */
  readonly requests = new Map<string, number>();
  /** Event streams open now. */
  sseOpen = 0;
  /** Event streams ended, by the session's close reason (slow_consumer, client_gone, shutdown, ...). */
  readonly sseClosed = new Map<string, number>();
  /** Messages written to event streams. */
  sseEvents = 0;

  answered(endpoint: string, status: number): void {
    BrokerStats.inc(this.requests, `${endpoint}|${status}`);
  }
}
