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
  onExpire(now: number): void;
}

export class TimerWheel {
  private readonly slots: Set<Expirable>[];
  private cursor: number;
  private count = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly tickBound = (): void => this.tick();

  constructor(
    private readonly resolutionMs: number,
    private readonly now: () => number = Date.now,
    slotCount = 1024,
  ) {
    this.slots = Array.from({ length: slotCount }, () => new Set<Expirable>());
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
    const slot = tickIndex % this.slots.length;
    this.slots[slot].add(entry);
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
    if (this.slots[entry.wheelSlot].delete(entry)) this.count--;
    entry.wheelSlot = -1;
  }

  /** True while the interval runs (it stops at the first tick that finds the wheel empty). */
  get ticking(): boolean {
    return this.timer !== null;
  }

  /** Fires every due entry; called by the interval, public for tests that drive time. */
  tick(): void {
    const now = this.now();
    const target = Math.floor(now / this.resolutionMs);
    // Bound the catch-up to one lap: every slot gets visited once.
    if (target - this.cursor > this.slots.length) this.cursor = target - this.slots.length;
    while (this.cursor < target) {
      this.cursor++;
      const slot = this.slots[this.cursor % this.slots.length];
      if (slot.size === 0) continue;
      for (const entry of slot) {
        if (entry.deadline > now) continue; // a later lap
        slot.delete(entry);
        entry.wheelSlot = -1;
        this.count--;
        entry.onExpire(now);
      }
    }
    if (this.count === 0) this.stopTimer();
  }

  /** Drops every entry without firing it. */
  clear(): void {
    for (const slot of this.slots) {
      for (const entry of slot) entry.wheelSlot = -1;
      slot.clear();
    }
    this.count = 0;
    this.stopTimer();
  }

  private stopTimer(): void {
    if (this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }
}
