/**
 * Per-tick helpers of the client's hot paths: a clock read once per tick, and a callback deferred to the end
 * of the current tick (where the client hands its batched frames to the transport).
 */

const hasNextTick = typeof process === 'object' && process !== null && typeof process.nextTick === 'function';

/**
 * Runs `fn(arg)` once the current task and its microtasks are done: process.nextTick in Node, so a batch
 * built by one read (and the promise continuations it resolves) goes out as one write. Browsers have no
 * nextTick; a microtask is the closest there.
 */
export function defer<T>(fn: (arg: T) => void, arg: T): void {
  if (hasNextTick) process.nextTick(fn, arg);
  else queueMicrotask(() => fn(arg));
}

/**
 * A monotonic clock in ms (performance.now), read at most once per tick: everything done in one tick shares
 * the first reading, as Node timers share libuv's loop time. A clock read costs about as much as the rest
 * of a small request, so once per request is too often.
 */
export class TickClock {
  private cached = -1;

  now(): number {
    if (this.cached < 0) {
      this.cached = performance.now();
      defer(clockTickOver, this);
    }
    return this.cached;
  }

  /** @internal */
  _tickOver(): void {
    this.cached = -1;
  }
}

function clockTickOver(clock: TickClock): void {
  clock._tickOver();
}
