/**
 * A hashed timer wheel for the many short deadlines of streams and fragment routes (spec §5): O(1) add and
 * remove, one interval timer for all of them, no closure or Timeout object per request. Deadlines fire up to
 * one resolution late.
 */
export interface Expirable {
  /** Absolute deadline in ms (set by the wheel). */
  deadline: number;
  /** Slot index while scheduled, -1 otherwise (owned by the wheel). */
  wheelSlot: number;
  /** Neighbours in the slot's list while scheduled (owned by the wheel). */
  wheelPrev: Expirable | null;
  wheelNext: Expirable | null;
  onExpire(now: number): void;
}

/**
 * Each slot is an intrusive doubly linked list through the entries' wheelPrev/wheelNext: adding and removing
 * allocate nothing and hash nothing (a Set per slot did both, once per request, bench S3).
 */
export class TimerWheel {
  private readonly heads: (Expirable | null)[];
  private cursor: number;
  private count = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly tickBound = (): void => this.tick();

  constructor(
    private readonly resolutionMs: number,
    private readonly now: () => number = Date.now,
    slotCount = 1024,
  ) {
    this.heads = new Array<Expirable | null>(slotCount).fill(null);
    this.cursor = Math.floor(this.now() / resolutionMs);
  }

  get size(): number {
    return this.count;
  }

  /** Schedules `entry` at `now + delayMs` (rescheduling it if already scheduled). */
  schedule(entry: Expirable, delayMs: number): void {
    if (entry.wheelSlot !== -1) this.cancel(entry);
    entry.deadline = this.now() + delayMs;
    // Never into a slot the cursor has passed: at the earliest, the next tick's.
    const tickIndex = Math.max(Math.ceil(entry.deadline / this.resolutionMs), this.cursor + 1);
    const slot = tickIndex % this.heads.length;
    const head = this.heads[slot]!;
    entry.wheelPrev = null;
    entry.wheelNext = head;
    if (head !== null) head.wheelPrev = entry;
    this.heads[slot] = entry;
    entry.wheelSlot = slot;
    this.count++;
    if (this.timer === null) {
      this.timer = setInterval(this.tickBound, this.resolutionMs);
      this.timer.unref();
    }
  }

  /**
   * Unschedules `entry`. The interval is not stopped here even when this was the last entry: the next tick
   * stops it. A request answered before the next one arrives (bench S3 sequential) would otherwise clear and
   * re-create the interval once per request.
   */
  cancel(entry: Expirable): void {
    if (entry.wheelSlot === -1) return;
    this.unlink(entry);
    this.count--;
  }

  /** True while the interval runs (it stops at the first tick that finds the wheel empty). */
  get ticking(): boolean {
    return this.timer !== null;
  }

  /** Fires every due entry; called by the interval, public for tests that drive time. */
  tick(): void {
    const now = this.now();
    const target = Math.floor(now / this.resolutionMs);
    const slots = this.heads.length;
    // Bound the catch-up to one lap: every slot gets visited once.
    if (target - this.cursor > slots) this.cursor = target - slots;
    while (this.cursor < target) {
      this.cursor++;
      const slot = this.cursor % slots;
      let entry = this.heads[slot]!;
      while (entry !== null) {
        let next: Expirable | null = entry.wheelNext;
        if (entry.deadline <= now) {
          this.unlink(entry);
          this.count--;
          entry.onExpire(now);
          // onExpire may have cancelled other entries, `next` among them: then start the slot over (the
          // entries left in it before `next` are not due, so they are only looked at again).
          if (next !== null && next.wheelSlot !== slot) next = this.heads[slot]!;
        }
        entry = next!;
      }
    }
    if (this.count === 0) this.stopTimer();
  }

  /** Drops every entry without firing it. */
  clear(): void {
    for (let i = 0; i < this.heads.length; i++) {
      let entry = this.heads[i]!;
      while (entry !== null) {
        const next: Expirable | null = entry.wheelNext;
        entry.wheelSlot = -1;
        entry.wheelPrev = null;
        entry.wheelNext = null;
        entry = next!;
      }
      this.heads[i] = null;
    }
    this.count = 0;
    this.stopTimer();
  }

  private unlink(entry: Expirable): void {
    const prev = entry.wheelPrev;
    const next = entry.wheelNext;
    if (prev !== null) prev.wheelNext = next;
    else this.heads[entry.wheelSlot] = next;
    if (next !== null) next.wheelPrev = prev;
    entry.wheelPrev = null;
    entry.wheelNext = null;
    entry.wheelSlot = -1;
  }

  private stopTimer(): void {
    if (this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }
}
