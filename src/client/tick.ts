/**
 * Per-tick helpers of the client's hot paths: a clock read once per tick, and a callback deferred to the end
 * of the current tick (where the client hands its batched frames to the transport); and unref for timers.
 */

/** Runs `fn(arg)` later, once the current task's synchronous code is done. */
export type Deferral = <T>(fn: (arg: T) => void, arg: T) => void;

function deferToMicrotask<T>(fn: (arg: T) => void, arg: T): void {
  queueMicrotask(() => fn(arg));
}

let deferral: Deferral = deferToMicrotask;

/**
 * Installs how {@link defer} runs its callbacks. The Node entry (index.ts) installs process.nextTick, which
 * runs only once every pending promise continuation has run, so all the frames one read leads to (the
 * answers of its requests, the requests their continuations make) go out as one batch. The default, also
 * the browser's, is a microtask: later continuations may then make a batch of their own.
 */
export function setDeferral(next: Deferral): void {
  deferral = next;
}

/** Runs `fn(arg)` at the end of the current tick (see {@link setDeferral}). */
export function defer<T>(fn: (arg: T) => void, arg: T): void {
  deferral(fn, arg);
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

/** Node timers can be unref'd (they must not keep a process alive); browser timers are plain numbers. */
export function unrefTimer(timer: NodeJS.Timeout | null): void {
  if (timer !== null && typeof timer === 'object' && typeof timer.unref === 'function') timer.unref();
}
