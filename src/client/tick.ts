/**
 * Per-tick helper of the client's hot paths: a callback deferred to the end of the current tick (where the
 * client hands its batched frames to the transport).
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
