/**
 * Bounded logging of what happens before a handshake (docs/operations.md section 4): port scans, health
 * probes, stray udp datagrams, garbage, handshake timeouts and refusals. Each one is counted at once (metric
 * `socketd_pre_handshake_total{transport,reason}`) but logged only as one summary line per reason per
 * interval, e.g. "1,234 udp datagrams without a session in the last 10 s", at info, or at warn when the
 * reason's rate reached `warnPerSecond`. A flood of tiny packets thus costs a counter increment each, never a
 * log line each. Sessions that opened keep their own open and close lines (src/broker/broker.ts).
 *
 * One timer for the whole broker, armed by the first event of an interval and not re-armed while nothing
 * happens (no periodic work on an idle broker, none per session); it does not keep the process alive, and
 * stop() flushes what is counted and disarms it. Memory is bounded by the set of reason codes, which are
 * stable codes (close reasons, protocol error codes), never addresses.
 */
import type { Logger } from 'pino';
import { BrokerStats } from './stats.js';

export interface PreHandshakeLogSettings {
  /** Length of one summary interval. */
  intervalMs: number;
  /** A reason counted at least this often per second over an interval is logged at warn; 0 = never warn. */
  warnPerSecond: number;
}

export const DEFAULT_PRE_HANDSHAKE_LOG: Readonly<PreHandshakeLogSettings> = Object.freeze({ intervalMs: 10_000, warnPerSecond: 100 });

/** What a reason's count means, for the summary line ("N <phrase>"). Unknown reasons get a generic phrase. */
const PHRASES: Readonly<Record<string, string>> = {
  udp_no_session: 'udp datagrams without a session',
  peer_closed: 'connections closed before a Connect',
  transport_reset: 'connections reset before a Connect',
  transport_error: 'connections failed before a Connect',
  transport_local: 'connections ended locally before a Connect',
  transport_replaced: 'udp sessions replaced before their handshake',
  transport_listener_closed: 'connections closed with their listener before a Connect',
  handshake_timeout: 'connections without a Connect within the handshake timeout',
  first_frame_not_connect: 'connections whose first frame was not a Connect',
  too_many_connections: 'connections refused: the broker is at its connection limit',
  too_many_connections_from_ip: 'connections refused: their address is at its connection limit',
  handshake_rate_limited: 'handshakes refused by the handshake rate limit',
  shutdown: 'connections closed by the shutdown before a Connect',
};

/** The summary line's phrase for a reason; every phrase starts with its plural noun ("1 connection closed"). */
function phraseOf(reason: string, count: number): string {
  const phrase = PHRASES[reason] ?? `connections ended before the handshake (${reason})`;
  return count === 1 ? phrase.replace(/^(udp )?(\w+)s\b/, '$1$2') : phrase;
}

interface Tally {
  count: number;
  /** Count by transport (a handful of keys). */
  transports: Record<string, number>;
  /** The last peer seen for this reason (a claimed address for udp): a lead, not a list. */
  lastRemote: string;
}

export class PreHandshakeLog {
  private readonly tallies = new Map<string, Tally>();
  private timer: NodeJS.Timeout | null = null;
  private windowStart = 0;
  private stopped = false;
  private readonly flushBound = (): void => this.flush();

  constructor(
    private readonly logger: Logger,
    private readonly settings: PreHandshakeLogSettings,
    private readonly stats: BrokerStats,
    private readonly now: () => number = Date.now,
  ) {}

  /** True while an interval is open (counted events waiting for their summary line). */
  get pending(): boolean {
    return this.timer !== null;
  }

  /** Counts one connection or datagram that ended before a handshake, for `reason` (a stable code). */
  count(transport: string, reason: string, remote: string): void {
    BrokerStats.inc(this.stats.preHandshake, `${transport}|${reason}`);
    let tally = this.tallies.get(reason);
    if (tally === undefined) {
      tally = { count: 0, transports: {}, lastRemote: '' };
      this.tallies.set(reason, tally);
    }
    tally.count++;
    tally.transports[transport] = (tally.transports[transport] ?? 0) + 1;
    tally.lastRemote = remote;
    if (this.timer === null && !this.stopped) {
      this.windowStart = this.now();
      this.timer = setTimeout(this.flushBound, this.settings.intervalMs);
      this.timer.unref();
    }
  }

  /** Writes one line per reason counted since the last flush, then forgets them. */
  flush(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.tallies.size === 0) return;
    // An early flush (shutdown) divides by the whole interval: a short window must not look like a flood.
    const seconds = Math.max(this.now() - this.windowStart, this.settings.intervalMs) / 1000;
    const { warnPerSecond } = this.settings;
    for (const [reason, tally] of this.tallies) {
      const perSecond = tally.count / seconds;
      const fields = {
        event: 'pre_handshake', reason, count: tally.count, perSecond: Math.round(perSecond * 10) / 10,
        intervalMs: this.settings.intervalMs, transports: tally.transports, lastRemote: tally.lastRemote || undefined,
      };
      const text = `${tally.count.toLocaleString('en-US')} ${phraseOf(reason, tally.count)} in the last ${formatSeconds(seconds)}`;
      if (warnPerSecond > 0 && perSecond >= warnPerSecond) this.logger.warn(fields, text);
      else this.logger.info(fields, text);
    }
    this.tallies.clear();
  }

  /** Flushes and disarms the timer for good (shutdown): later events are still counted, no longer logged. */
  stop(): void {
    this.stopped = true;
    this.flush();
  }
}

function formatSeconds(seconds: number): string {
  return `${Number.isInteger(seconds) ? seconds : seconds.toFixed(1)} s`;
}
