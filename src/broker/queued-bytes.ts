/**
 * The running total of bytes queued to all sessions, for the broker-wide memory budget (spec §7), kept
 * without visiting every session: a queue that takes a frame marks itself active (a flag test per frame);
 * every `checkMs` only the active queues are read, the total moves by each one's change since its last
 * reading, and a queue found empty leaves the active list. An idle session is in no list and costs nothing;
 * the timer runs only while some queue is active.
 *
 * Precondition: a queue's bytes only grow through a push that marks it (the transports' buffers fill from
 * the queue alone), so a queue outside the list holds 0 bytes, and the total is exact at every check.
 */
export interface TrackedQueue {
  /** True while in the active list (owned by QueuedBytes). */
  active: boolean;
  /** Bytes this queue held at its last reading (owned by QueuedBytes). */
  accounted: number;
  /** Bytes it holds now; 0 once its connection is closed. */
  readonly liveBytes: number;
}

export class QueuedBytes {
  private total = 0;
  private list: TrackedQueue[] = [];
  private timer: NodeJS.Timeout | null = null;
  private readonly checkBound = (): void => this.check();
  /** Queue readings made so far (tests: an idle broker makes none). */
  readings = 0;

  /**
   * @param checkMs how often the active queues are read.
   * @param onCheck told the total after every check (the broker applies the budget there).
   */
  constructor(
    private readonly checkMs: number,
    private readonly onCheck: (total: number) => void,
  ) {}

  /** Bytes queued to all sessions at the last check. */
  get bytes(): number {
    return this.total;
  }

  /** Queues read at the next check. */
  get activeCount(): number {
    return this.list.length;
  }

  /**
   * Calls `visit` with the bytes each active queue holds now. Every queue outside the list holds 0 bytes
   * (the precondition above), so this reads every non-empty queue without visiting idle sessions. The list
   * may still hold queues that emptied, or whose session ended, since the last check (at most checkMs old).
   */
  forEachActive(visit: (bytes: number) => void): void {
    for (const queue of this.list) visit(queue.liveBytes);
  }

  /** True while the check timer runs (only while some queue is active). */
  get ticking(): boolean {
    return this.timer !== null;
  }

  /** A queue took bytes: it is read at the next check. Call only when `queue.active` is false. */
  activate(queue: TrackedQueue): void {
    queue.active = true;
    this.list.push(queue);
    if (this.timer === null) {
      this.timer = setInterval(this.checkBound, this.checkMs);
      this.timer.unref();
    }
  }

  /** Reads the active queues, updates the total, drops the empty ones; returns the total. */
  reconcile(): number {
    const list = this.list;
    let kept = 0;
    let total = this.total;
    for (let i = 0; i < list.length; i++) {
      const queue = list[i]!;
      const now = queue.liveBytes;
      total += now - queue.accounted;
      queue.accounted = now;
      this.readings++;
      if (now > 0) list[kept++] = queue;
      else queue.active = false;
    }
    list.length = kept;
    this.total = total;
    return total;
  }

  check(): void {
    const total = this.reconcile();
    if (this.list.length === 0) this.stop();
    this.onCheck(total);
  }

  /** Forgets every queue (the broker has no session left, or shuts down). */
  clear(): void {
    for (const queue of this.list) {
      queue.active = false;
      queue.accounted = 0;
    }
    this.list = [];
    this.total = 0;
    this.stop();
  }

  private stop(): void {
    if (this.timer !== null) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }
}
