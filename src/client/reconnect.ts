/**
 * When the client tries again after losing its connection (docs/client.md "Life: heartbeat, reconnect,
 * close"): an exponential backoff with jitter, capped, from the `reconnect` option, and the one timer of the
 * next attempt. Separate from client.ts: the delay rule and the attempt count are the whole of its state.
 */
import type { ReconnectOptions } from './options.js';

/** What the backoff calls when an attempt is due. */
export interface ReconnectOwner {
  /** @internal */
  _reconnectNow(): Promise<void>;
}

function due(owner: ReconnectOwner): void {
  void owner._reconnectNow();
}

export class Backoff {
  private timer: NodeJS.Timeout | null = null;
  /** Attempts since the last connection that succeeded. */
  private attempts = 0;

  constructor(private readonly owner: ReconnectOwner, private readonly options: Required<ReconnectOptions>) {}

  get enabled(): boolean {
    return this.options.enabled;
  }

  /** Arms the timer of the next attempt; returns its number (from 1) and delay in ms, for the event. */
  schedule(): { attempt: number; delay: number } {
    const r = this.options;
    const base = Math.min(r.maxDelay, r.initialDelay * Math.pow(r.factor, this.attempts));
    const delay = Math.max(0, Math.round(base * (1 + r.jitter * (2 * Math.random() - 1))));
    this.attempts++;
    this.timer = setTimeout(due, delay, this.owner);
    return { attempt: this.attempts, delay };
  }

  /** The attempt is running: its timer has fired. */
  fired(): void {
    this.timer = null;
  }

  /** A connection is up: returns how many attempts it took and starts over. */
  succeeded(): number {
    const attempts = this.attempts;
    this.attempts = 0;
    return attempts;
  }

  cancel(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}
