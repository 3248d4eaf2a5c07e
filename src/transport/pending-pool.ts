/**
 * The arrays in which the tcp and ws adapters queue a tick's output ranges (tcp.ts: source, start, end; ws.ts:
 * six slots per frame), pooled across connections. A connection takes one when it queues the first frame of a
 * tick and gives it back once its flush has written them. So an idle session holds no array (memory per idle
 * session, bench/scale.ts), and a busy one neither allocates nor grows an array per tick (allocation per
 * heartbeat Ping and per forwarded frame, bench/results.md). Bounded in count and in the length kept.
 */
export type PendingSlots = (Buffer | number | null)[];

const POOL: PendingSlots[] = [];
/**
 * Arrays kept at most: as many as the connections a fan-out flushes in one tick, so that it allocates none
 * (before the pool, each connection kept two arrays of its own). With MAX_POOLED_SLOTS this bounds what the
 * pool holds to about 3 MB, held only after such a burst.
 */
const POOL_MAX = 1024;
/** A longer array (more than 256 frames for one connection in one tick, amortized over them) is left to the GC. */
const MAX_POOLED_SLOTS = 3 * 256;
const EMPTY = Buffer.alloc(0);

/**
 * An empty array, from the pool when it has one. A new one starts in the elements kind it will hold (buffers,
 * numbers and null): a fresh `[]` starts as small integers and changes kind on its first buffer, and optimized
 * code built for one kind was thrown away when another connection's array had the other ("wrong map" in the
 * adapters' append, seen with --trace-deopt when the bench's second set of clients connected).
 */
export function takePending(): PendingSlots {
  const pooled = POOL.pop();
  if (pooled !== undefined) return pooled;
  const fresh: PendingSlots = [EMPTY, 0, null];
  fresh.length = 0;
  return fresh;
}

/**
 * Gives `pending` back with its first `slots` cleared (they may pin whole read chunks). The caller holds no
 * reference to it afterwards.
 */
export function releasePending(pending: PendingSlots, slots: number): void {
  if (pending.length > MAX_POOLED_SLOTS || POOL.length >= POOL_MAX) return;
  pending.fill(null, 0, slots);
  POOL.push(pending);
}
