/**
 * Flow control on the client's side (spec §6 Pressure, §7; docs/client.md "Flow control"): how long the
 * client stays `pressured` after the broker's Pressure frame, and the callers of waitForDrain() (and of
 * request(), which waits first) to wake once it is not. Separate from client.ts: it is a timer and a list of
 * waiters with rules of their own; whether the socket buffer is full is the link's, read through the owner.
 */
import type { ClientState } from './options.js';
import { unrefTimer } from './tick.js';

/** What the gate reads from its client. */
export interface PressureOwner {
  /** True while held here or while the link's socket buffer is full. */
  readonly pressured: boolean;
  readonly state: ClientState;
}

function release(gate: PressureGate): void {
  gate.release();
}

export class PressureGate {
  /** True for `hold` ms after the broker's last Pressure frame. */
  held = false;
  private timer: NodeJS.Timeout | null = null;
  private waiters: (() => void)[] = [];

  /**
   * `hold` (the `pressureHold` option) is short: the broker has already stopped reading from this client, so
   * writes back up in the socket by themselves; the hold only tells a publisher loop to yield.
   */
  constructor(private readonly owner: PressureOwner, private readonly hold: number) {}

  /** The broker sent Pressure: held from now until `hold` ms after the last one. */
  onPressure(): void {
    this.held = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(release, this.hold, this);
    unrefTimer(this.timer);
  }

  /** @internal The hold is over. */
  release(): void {
    this.timer = null;
    this.held = false;
    this.wake();
  }

  /** Resolves on a later wake() once the owner is not pressured or closed. Precondition: it is pressured now. */
  wait(): Promise<void> {
    return new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  /** Resolves every waiter when the owner is no longer pressured (its socket drained) or closed. */
  wake(): void {
    if (this.waiters.length === 0 || (this.owner.pressured && this.owner.state !== 'closed')) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }

  /** The client closed: no hold, no timer, every waiter resolved. */
  reset(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.held = false;
    this.wake();
  }
}
