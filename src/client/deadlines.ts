/**
 * The request and stream timeouts of one client, on one timer. A setTimeout per request costs a Timeout
 * object, a clock read and a timer-list insertion, then a clearTimeout, for what almost always ends as an
 * answer. Here an entry is linked into the list of its timeout value (O(1) in and out); the lists are in
 * deadline order because every entry of a list was added with the same timeout, so only their heads are
 * ever compared. One timer is armed for the earliest head and re-armed when it fires.
 *
 * Precision is a setTimeout's: an entry expires once `timeout` ms have passed since it was added, measured
 * on the client's TickClock, which is read at most once per tick, as libuv reads the loop time for timers.
 */
import type { TickClock } from './tick.js';

export interface Timed {
  /** When it expires, on the TickClock (set by Deadlines). */
  deadline: number;
  /** Owned by Deadlines: the list it is linked into, null when not scheduled. */
  deadlineList: DeadlineList | null;
  prevTimed: Timed | null;
  nextTimed: Timed | null;
}

export interface DeadlineOwner {
  /** An entry's time is up; it is already unlinked. */
  deadlineExpired(entry: Timed): void;
}

/** Entries that share one timeout value, oldest (earliest deadline) first. */
export class DeadlineList {
  head: Timed | null = null;
  tail: Timed | null = null;
  constructor(readonly timeout: number) {}
}

/** Node timers can be ref'd and unref'd; browser timers are plain numbers and keep nothing alive. */
function refTimer(timer: ReturnType<typeof setTimeout>, ref: boolean): void {
  if (typeof timer !== 'object' || timer === null) return;
  if (ref) timer.ref();
  else timer.unref();
}

function deadlinesOnTimer(deadlines: Deadlines): void {
  deadlines._fire();
}

export class Deadlines {
  private readonly lists = new Map<number, DeadlineList>();
  private count = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  /** The deadline the timer is armed for (Infinity when not armed). */
  private timerAt = Infinity;

  constructor(
    private readonly owner: DeadlineOwner,
    private readonly clock: TickClock,
  ) {}

  /** Entries scheduled. */
  get size(): number {
    return this.count;
  }

  /** Schedules `entry` to expire `timeout` ms (> 0) from now. The entry must not be scheduled already. */
  add(entry: Timed, timeout: number): void {
    let list = this.lists.get(timeout);
    if (list === undefined) {
      list = new DeadlineList(timeout);
      this.lists.set(timeout, list);
    }
    const deadline = this.clock.now() + timeout;
    entry.deadline = deadline;
    entry.deadlineList = list;
    entry.nextTimed = null;
    entry.prevTimed = list.tail;
    if (list.tail === null) list.head = entry;
    else list.tail.nextTimed = entry;
    list.tail = entry;
    if (this.count++ === 0 && this.timer !== null) refTimer(this.timer, true);
    if (deadline < this.timerAt) this.arm(deadline);
  }

  /** Unschedules `entry`; nothing when it is not scheduled. */
  remove(entry: Timed): void {
    const list = entry.deadlineList;
    if (list === null) return;
    const prev = entry.prevTimed;
    const next = entry.nextTimed;
    if (prev === null) list.head = next;
    else prev.nextTimed = next;
    if (next === null) list.tail = prev;
    else next.prevTimed = prev;
    entry.deadlineList = null;
    entry.prevTimed = null;
    entry.nextTimed = null;
    // The timer stays armed: it finds nothing due and re-arms for the new earliest head, at most once per
    // timeout, rather than being cleared and set again for every answer. With nothing scheduled it must not
    // keep the process alive (a setTimeout per request would be gone by then).
    if (--this.count === 0 && this.timer !== null) refTimer(this.timer, false);
  }

  /** Unschedules everything (the client closed). */
  clear(): void {
    for (const list of this.lists.values()) {
      for (let e = list.head; e !== null; ) {
        const next = e.nextTimed;
        e.deadlineList = null;
        e.prevTimed = null;
        e.nextTimed = null;
        e = next;
      }
    }
    this.lists.clear();
    this.count = 0;
    this.disarm();
  }

  /** @internal The timer fired: expires every entry that is due, then re-arms for the earliest left. */
  _fire(): void {
    this.timer = null;
    this.timerAt = Infinity;
    const now = performance.now();
    let earliest = Infinity;
    for (const list of this.lists.values()) {
      let head = list.head;
      while (head !== null && head.deadline <= now) {
        this.remove(head);
        this.owner.deadlineExpired(head);
        head = list.head;
      }
      if (head === null) this.lists.delete(list.timeout);
      else if (head.deadline < earliest) earliest = head.deadline;
    }
    // deadlineExpired may have added entries (and armed the timer) meanwhile.
    if (earliest < this.timerAt) this.arm(earliest);
  }

  private arm(deadline: number): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timerAt = deadline;
    // A timer may fire a little early against this clock; _fire then re-arms for what is not due yet.
    this.timer = setTimeout(deadlinesOnTimer, Math.max(1, Math.ceil(deadline - this.clock.now())), this);
    if (this.count === 0) refTimer(this.timer, false);
  }

  private disarm(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = Infinity;
  }
}
