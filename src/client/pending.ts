/**
 * Requests and reply streams in flight (spec §5): the per-request objects (PendingRequest, the public
 * ReplyStream) and the PendingTable that matches the broker's Reply, ReplyEnd and Alarm frames to them by the
 * number of their sid, times them out on one shared timer (Deadlines) and detaches their abort signals.
 * Separate from client.ts because it is the request side's whole state; the client only writes the frames.
 *
 * Per-request objects hold their own state (no closure per request). Sids are never reused, so whatever the
 * table holds under a sid's number is the exchange that sid was sent with.
 */
import { Flag } from '../protocol/flags.js';
import type { Frame } from '../protocol/frame.js';
import { FRAME_PREFIX_BYTES } from '../protocol/limits.js';
import type { Client } from './client.js';
import { Deadlines, type DeadlineList, type DeadlineOwner, type Timed } from './deadlines.js';
import { SocketdError } from './errors.js';
import { Reply } from './message.js';
import { SID_BYTES, type SidSource } from './sids.js';
import type { TickClock } from './tick.js';

/** The error an Alarm frame stands for (spec §6): its `code` meta, text and sid. */
export function alarmError(frame: Frame): SocketdError {
  const code = Number(frame.meta('code') ?? '0');
  return new SocketdError('alarm', frame.data.toString('utf8') || `Alarm ${code}`, {
    alarmCode: Number.isInteger(code) ? code : 0,
    sid: frame.sid,
    event: frame.event,
  });
}

export abstract class Pending implements Timed {
  signal: AbortSignal | null = null;
  abortListener: (() => void) | null = null;
  /** @internal Timed, owned by the client's Deadlines. */
  deadline = 0;
  /** @internal */
  deadlineList: DeadlineList | null = null;
  /** @internal */
  prevTimed: Timed | null = null;
  /** @internal */
  nextTimed: Timed | null = null;

  constructor(
    readonly client: Client,
    /** @internal the number of the sid (SidSource): answers are matched by it */ readonly id: number,
    readonly event: string,
  ) {}

  /** The sid the Request or Subscribe was sent with. */
  get sid(): string {
    return this.client._sidText(this.id);
  }

  /** A Reply/ReplyEnd arrived; returns true when this ends the exchange. */
  abstract onAnswer(frame: Frame): boolean;
  abstract fail(error: SocketdError): void;
}

/**
 * `new Promise(captureSettlers)` hands the settlers over here, so a request needs no executor closure of its
 * own: the executor runs synchronously, and they are taken right after.
 */
let capturedResolve: ((reply: Reply) => void) | null = null;
let capturedReject: ((error: unknown) => void) | null = null;
function captureSettlers(resolve: (reply: Reply) => void, reject: (error: unknown) => void): void {
  capturedResolve = resolve;
  capturedReject = reject;
}

export class PendingRequest extends Pending {
  constructor(
    client: Client,
    id: number,
    event: string,
    private readonly resolve: (reply: Reply) => void,
    private readonly reject: (error: unknown) => void,
  ) {
    super(client, id, event);
  }

  onAnswer(frame: Frame): boolean {
    this.resolve(new Reply(frame));
    return true;
  }

  fail(error: SocketdError): void {
    this.reject(error);
  }
}

interface Waiter {
  resolve(result: IteratorResult<Reply>): void;
  reject(error: SocketdError): void;
}

const DONE: IteratorResult<Reply> = Object.freeze({ value: undefined, done: true }) as IteratorResult<Reply>;

/**
 * A Subscribe stream (spec §5): an async iterator over its replies. It ends after the ReplyEnd (yielded too
 * when it carries data), throws the Alarm that fails it, and `return()` (a `break` out of for-await) forgets
 * it locally: later replies are ignored.
 */
export class ReplyStream extends Pending implements AsyncIterableIterator<Reply> {
  private queue: Reply[] = [];
  private head = 0;
  private waiter: Waiter | null = null;
  private error: SocketdError | null = null;
  private finished = false;

  /** @internal */
  constructor(client: Client, id: number, event: string) {
    super(client, id, event);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<Reply>> {
    if (this.head < this.queue.length) {
      const value = this.queue[this.head++]!;
      if (this.head === this.queue.length) {
        this.queue = [];
        this.head = 0;
      }
      return Promise.resolve({ value, done: false });
    }
    if (this.error !== null) {
      const error = this.error;
      this.error = null;
      return Promise.reject(error);
    }
    if (this.finished) return Promise.resolve(DONE);
    return new Promise<IteratorResult<Reply>>((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  /** Stops the stream locally (nothing is sent: the broker drops late replies). */
  return(): Promise<IteratorResult<Reply>> {
    if (!this.finished) {
      this.finished = true;
      this.client._forget(this);
    }
    this.queue = [];
    this.head = 0;
    this.error = null;
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.resolve(DONE);
    return Promise.resolve(DONE);
  }

  /** True once ended, failed or returned. */
  get done(): boolean {
    return this.finished;
  }

  /** Collects every reply (handy for small streams). */
  async toArray(): Promise<Reply[]> {
    const out: Reply[] = [];
    for await (const reply of this) out.push(reply);
    return out;
  }

  /** @internal */
  onAnswer(frame: Frame): boolean {
    const end = frame.flag === Flag.ReplyEnd;
    if (end) this.finished = true;
    if (!end || frame.data.length > 0) {
      const reply = new Reply(frame);
      const waiter = this.waiter;
      if (waiter !== null) {
        this.waiter = null;
        waiter.resolve({ value: reply, done: false });
      } else {
        this.queue.push(reply);
      }
    } else if (this.waiter !== null) {
      const waiter = this.waiter;
      this.waiter = null;
      waiter.resolve(DONE);
    }
    return end;
  }

  /** @internal */
  fail(error: SocketdError): void {
    if (this.finished) return;
    this.finished = true;
    const waiter = this.waiter;
    if (waiter !== null) {
      this.waiter = null;
      waiter.reject(error);
    } else {
      this.error = error;
    }
  }
}

/** The requests and streams of one client waiting for an answer, by the number of their sid. */
export class PendingTable implements DeadlineOwner {
  private readonly byId = new Map<number, Pending>();
  private readonly deadlines: Deadlines;

  constructor(private readonly sids: SidSource, clock: TickClock) {
    this.deadlines = new Deadlines(this, clock);
  }

  get size(): number {
    return this.byId.size;
  }

  /** The request or stream a Reply, ReplyEnd or Alarm answers: its sid is one of ours, read as a number. */
  of(frame: Frame): Pending | undefined {
    if (this.byId.size === 0) return undefined;
    // Read in the frame's source at its offset (its header is always there): no view of the frame is made.
    const source = frame.source;
    const base = frame.start;
    const sidEnd = base + FRAME_PREFIX_BYTES + SID_BYTES;
    // Our sids are 32 bytes without a zero, so the separator right after them is the first one.
    if (frame.size < FRAME_PREFIX_BYTES + SID_BYTES + 2 || source[sidEnd] !== 0x00 || source[sidEnd + 1] !== 0x0a) return undefined;
    const id = this.sids.parse(source, base + FRAME_PREFIX_BYTES, sidEnd);
    return id < 0 ? undefined : this.byId.get(id);
  }

  /** Writes a Request through `client` and tracks it; the promise rejects with the write's error. */
  request(client: Client, event: string, data: Buffer, meta: string, timeout: number, signal: AbortSignal | undefined): Promise<Reply> {
    if (signal?.aborted === true) return Promise.reject(new SocketdError('aborted', 'The request was aborted', { event }));
    const promise = new Promise<Reply>(captureSettlers);
    const resolve = capturedResolve!;
    const reject = capturedReject!;
    capturedResolve = null;
    capturedReject = null;
    let id: number;
    try {
      id = client._write(Flag.Request, event, meta, data);
    } catch (error) {
      reject(error);
      return promise;
    }
    this.track(new PendingRequest(client, id, event, resolve, reject), timeout, signal);
    return promise;
  }

  track(pending: Pending, timeout: number, signal: AbortSignal | undefined): void {
    this.byId.set(pending.id, pending);
    if (timeout > 0) this.deadlines.add(pending, timeout);
    if (signal !== undefined) {
      pending.signal = signal;
      pending.abortListener = () => {
        this.forget(pending);
        pending.fail(new SocketdError('aborted', 'The request was aborted', { sid: pending.sid, event: pending.event }));
      };
      signal.addEventListener('abort', pending.abortListener, { once: true });
    }
  }

  /** Forgets a request or stream: later answers are ignored. */
  forget(pending: Pending): void {
    // Sids are never reused, so whatever the map holds under this number is this one.
    this.byId.delete(pending.id);
    this.deadlines.remove(pending);
    if (pending.signal !== null) {
      if (pending.abortListener !== null) pending.signal.removeEventListener('abort', pending.abortListener);
      pending.signal = null;
      pending.abortListener = null;
    }
  }

  /** @internal DeadlineOwner: a request or stream timed out. */
  deadlineExpired(entry: Timed): void {
    const pending = entry as Pending;
    this.forget(pending);
    pending.fail(new SocketdError('timeout', `No answer to '${pending.event}' within the timeout`, { sid: pending.sid, event: pending.event }));
  }

  /** Fails every request and stream with `error` (the connection is gone or the client closed). */
  failAll(error: SocketdError): void {
    if (this.byId.size === 0) return;
    const all = [...this.byId.values()];
    this.byId.clear();
    for (const pending of all) {
      this.forget(pending);
      pending.fail(error);
    }
  }

  /** Releases the timer (the client closed). */
  clear(): void {
    this.deadlines.clear();
  }
}

