/**
 * The admin page's time series: one timer for the whole broker takes a sample of the broker's counters every
 * SAMPLE_MS while the page is being looked at, and keeps the last HISTORY samples in a ring. The page's
 * requests call touch(); IDLE_STOP_MS after the last one the timer stops and the event-loop monitor is
 * switched off, so the broker pays nothing while nobody looks (docs/operations.md section 6).
 *
 * A sample reads counters only (BrokerStats, SessionCounts, the queued bytes the memory-budget check last
 * summed): it never visits the sessions.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { BrokerStats } from '../../broker/stats.js';
import type { SessionCounts } from '../../broker/session-counts.js';

export const SAMPLE_MS = 1000;
/** Five minutes of samples. */
export const HISTORY = 300;
export const IDLE_STOP_MS = 15_000;

export interface Sample {
  /** ms since the epoch. */
  t: number;
  /** Open sessions by transport. */
  sessions: Record<string, number>;
  /** Per second over the interval before t. */
  framesIn: number;
  framesOut: number;
  bytesIn: number;
  bytesOut: number;
  deliveries: number;
  dropped: number;
  pressure: number;
  slowConsumers: number;
  /** Levels at t. */
  streamsOpen: number;
  subscriptions: number;
  queuedBytes: number;
  overBudget: boolean;
  /** Event-loop delay over the interval, ms (max and p99). */
  lagMaxMs: number;
  lagP99Ms: number;
  heapUsedBytes: number;
  rssBytes: number;
}

export interface SamplerSources {
  stats: BrokerStats;
  counts: SessionCounts;
  subscriptionCount: () => number;
  now?: () => number;
}

/** The counters a sample turns into rates: their running totals at time t. */
type Totals = Pick<Sample, 't' | 'framesIn' | 'framesOut' | 'bytesIn' | 'bytesOut' | 'deliveries' | 'dropped' | 'pressure' | 'slowConsumers'>;

function sum(values: Float64Array | Iterable<number>): number {
  let total = 0;
  for (const v of values) total += v;
  return total;
}

export class AdminSampler {
  private readonly ring: (Sample | undefined)[] = new Array(HISTORY);
  private head = 0;
  private count = 0;
  private timer: NodeJS.Timeout | null = null;
  private lastTouch = 0;
  private previous: Totals | null = null;
  private lag: IntervalHistogram | null = null;
  private readonly now: () => number;
  private readonly tickBound = (): void => this.tick();

  constructor(private readonly sources: SamplerSources) {
    this.now = sources.now ?? Date.now;
  }

  /** True while the timer runs. */
  get running(): boolean {
    return this.timer !== null;
  }

  /** Someone is looking: start sampling (a fresh history when it had stopped), or keep it going. */
  touch(): void {
    this.lastTouch = this.now();
    if (this.timer !== null) return;
    this.head = 0;
    this.count = 0;
    this.ring.fill(undefined);
    this.lag = monitorEventLoopDelay({ resolution: 20 });
    this.lag.enable();
    this.previous = this.totals();
    this.timer = setInterval(this.tickBound, SAMPLE_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.lag?.disable();
    this.lag = null;
    this.previous = null;
  }

  /** The samples taken after `since` (ms since the epoch), oldest first. */
  samplesSince(since: number): Sample[] {
    const out: Sample[] = [];
    for (let i = 0; i < this.count; i++) {
      const s = this.ring[(this.head - this.count + i + HISTORY) % HISTORY]!;
      if (s.t > since) out.push(s);
    }
    return out;
  }

  /** Takes one sample (the timer's work; public for tests). */
  tick(): void {
    const now = this.now();
    if (now - this.lastTouch > IDLE_STOP_MS) {
      this.stop();
      return;
    }
    const current = this.totals();
    const before = this.previous ?? current;
    this.previous = current;
    const seconds = Math.max(0.001, (current.t - before.t) / 1000);
    const rate = (key: Exclude<keyof Totals, 't'>): number => Math.max(0, (current[key] - before[key]) / seconds);
    const { stats } = this.sources;
    const lag = this.lag;
    const memory = process.memoryUsage();
    const sample: Sample = {
      t: now,
      sessions: this.sources.counts.snapshot(),
      framesIn: rate('framesIn'),
      framesOut: rate('framesOut'),
      bytesIn: rate('bytesIn'),
      bytesOut: rate('bytesOut'),
      deliveries: rate('deliveries'),
      dropped: rate('dropped'),
      pressure: rate('pressure'),
      slowConsumers: rate('slowConsumers'),
      streamsOpen: stats.streamsOpen,
      subscriptions: this.sources.subscriptionCount(),
      queuedBytes: stats.queuedBytes,
      overBudget: stats.overBudget,
      lagMaxMs: lag !== null && lag.count > 0 ? lag.max / 1e6 : 0,
      lagP99Ms: lag !== null && lag.count > 0 ? lag.percentile(99) / 1e6 : 0,
      heapUsedBytes: memory.heapUsed,
      rssBytes: memory.rss,
    };
    lag?.reset();
    this.ring[this.head] = sample;
    this.head = (this.head + 1) % HISTORY;
    if (this.count < HISTORY) this.count++;
  }

  private totals(): Totals {
    const { stats } = this.sources;
    return {
      t: this.now(),
      framesIn: sum(stats.framesInByFlag),
      framesOut: sum(stats.framesOutByFlag),
      bytesIn: stats.bytesIn,
      bytesOut: stats.bytesOut,
      deliveries: stats.deliveries,
      dropped: sum(stats.dropped.values()),
      pressure: stats.pressureSent,
      slowConsumers: stats.slowConsumers,
    };
  }
}
