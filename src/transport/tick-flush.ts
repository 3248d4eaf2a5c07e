/**
 * Flushes at the end of the tick (the event loop's check phase) every connection that queued frames in it, with
 * one setImmediate for all of them instead of one per connection. Each setImmediate allocates an Immediate and
 * its argument list: that was the broker's own largest allocation per heartbeat Ping (bench/results.md,
 * "Allocation per Ping"), and a fan-out to N sessions scheduled N of them.
 *
 * Order and timing are those of one setImmediate per connection: connections flush in the order they first
 * queued in the tick; one that queues while the flush runs (from a write callback, a drain) is flushed in the
 * next check phase, as a setImmediate scheduled from an immediate callback is.
 */
export interface TickFlushable {
  /** Writes what the connection queued in this tick. Called once per flushAtTickEnd(). */
  flushTick(): void;
}

let queue: TickFlushable[] = [];
let spare: TickFlushable[] = [];
let scheduled = false;

/** Flushes `connection` in this tick's check phase. The caller schedules each connection once per tick. */
export function flushAtTickEnd(connection: TickFlushable): void {
  queue.push(connection);
  if (!scheduled) {
    scheduled = true;
    setImmediate(runQueue);
  }
}

/** Flushes what is queued now, without waiting for the check phase (tests). */
export function runQueue(): void {
  const list = queue;
  queue = spare;
  scheduled = false;
  let i = 0;
  try {
    for (; i < list.length; i++) list[i]!.flushTick();
  } finally {
    // A throw (a bug, reported by the process) must not strand the others: they flush in the next check phase.
    for (let j = i + 1; j < list.length; j++) flushAtTickEnd(list[j]!);
    list.length = 0;
    spare = list;
  }
}
