/**
 * Request and Subscribe streams relayed through the broker (spec §5).
 *
 * Each forwarded Request/Subscribe gets one fresh sid, this run's prefix and the decimal digits of its
 * `Stream.id`, used on every responder's connection, so fan-out writes its head once. Responders'
 * Reply/ReplyEnd frames are found by the id read from that sid's bytes (no string made) in the responder's
 * `legs` map and re-headed with the requester's original sid; event, meta and data bytes are relayed
 * untouched and in order.
 *
 * - Request: the first Reply or ReplyEnd (all its fragments) answers it, relayed as ReplyEnd; then the
 *   stream is forgotten and later replies are dropped and counted.
 * - Subscribe: Replies relayed as they come; open until ReplyEnd.
 * - Scatter-gather (`name*`, `*`): every target's replies are relayed as Reply, and the requester gets one
 *   ReplyEnd when the last target has ended, timed out or left.
 * - Timeout: Alarm 4008 (scatter-gather: the closing ReplyEnd). Responder gone: Alarm 5003 at once.
 */
import { Flag } from '../protocol/flags.js';
import { AlarmCode } from '../protocol/codes.js';
import { encodeFrame } from '../protocol/codec.js';
import { FRAME_PREFIX_BYTES } from '../protocol/limits.js';
import type { Frame } from '../protocol/frame.js';
import type { HeadSlab } from './head-slab.js';
import type { Session } from './session.js';
import type { Expirable, TimerWheel } from './timer-wheel.js';
import { Delivery, OutboundKind } from './outbound-queue.js';
import { RouteMeta, readRouteMeta } from './route-meta.js';
import type { BrokerStats } from './stats.js';

export class Stream implements Expirable {
  deadline = 0;
  wheelSlot = -1;
  wheelPrev: Expirable | null = null;
  wheelNext: Expirable | null = null;
  closed = false;
  /** Responders whose leg is still open. */
  readonly responders: Session[];
  readonly openedAt: number;

  constructor(
    private readonly table: StreamTable,
    /** This run's stream number; the responders' sid is StreamTable.sidOf(id). */
    readonly id: number,
    readonly requester: Session,
    readonly requesterSid: string,
    /** Flag.Request or Flag.Subscribe. */
    readonly flag: number,
    readonly event: string,
    readonly metaString: string,
    readonly scatter: boolean,
    responders: Session[],
    readonly timeoutMs: number,
  ) {
    this.responders = responders;
    this.openedAt = Date.now();
  }

  onExpire(): void {
    this.table.expire(this);
  }
}

export class StreamTable {
  private counter = 0;
  /** The start of every stream sid of this broker run (ASCII). */
  readonly prefix: Buffer;
  private readonly replyMeta = new RouteMeta();

  constructor(
    private readonly wheel: TimerWheel,
    private readonly heads: HeadSlab,
    private readonly stats: BrokerStats,
  ) {
    // A per-process prefix keeps sids from two broker runs apart in a client that outlived a restart.
    this.prefix = Buffer.from(`b${(Date.now() % 0x10000).toString(36)}.`, 'latin1');
  }

  /** A fresh stream id, unique in this broker run (its sid: sidOf(id)). */
  nextId(): number {
    return this.counter++;
  }

  /** The sid of stream `id` on the responders' connections. */
  sidOf(id: number): string {
    return this.prefix.toString('latin1') + id;
  }

  /**
   * The stream id in a responder's frame sid: this run's prefix, then decimal digits without a leading zero;
   * -1 for any other sid (not a stream of this run). Reads the sid's bytes; makes no string.
   */
  idIn(frame: Frame): number {
    const buf = frame.source;
    const from = frame.start + FRAME_PREFIX_BYTES;
    const to = frame.start + frame.sidEnd;
    const prefix = this.prefix;
    const p = prefix.length;
    const digits = to - from - p;
    if (digits < 1 || digits > 15) return -1;
    for (let i = 0; i < p; i++) if (buf[from + i] !== prefix[i]) return -1;
    if (digits > 1 && buf[from + p] === 48) return -1;
    let id = 0;
    for (let i = from + p; i < to; i++) {
      const d = buf[i]! - 48;
      if (d < 0 || d > 9) return -1;
      id = id * 10 + d;
    }
    return id;
  }

  /**
   * Opens a stream from `requester` (frame `frame`) to `responders` and registers its legs. The caller sends
   * the frame to the responders under sidOf(id) (id from nextId()). Precondition: responders is non-empty,
   * requester open.
   */
  open(id: number, requester: Session, frame: Frame, responders: Session[], scatter: boolean, timeoutMs: number): Stream {
    const stream = new Stream(
      this, id, requester, frame.sid, frame.flag, frame.event, frame.metaString, scatter, responders, timeoutMs,
    );
    for (const responder of responders) responder.legs.set(id, stream);
    requester.streams.set(frame.sid, stream);
    this.wheel.schedule(stream, timeoutMs);
    this.stats.streamsOpened++;
    this.stats.streamsOpen++;
    return stream;
  }

  /** A Reply or ReplyEnd from a responder (spec §5). */
  onReply(responder: Session, frame: Frame): void {
    const stream = responder.legCount === 0 ? undefined : responder.legs.get(this.idIn(frame));
    if (stream === undefined) {
      this.stats.lateReplies++;
      return;
    }
    const meta = this.replyMeta;
    readRouteMeta(frame.metaString, meta);
    // A fragmented reply ends only with its last fragment (spec §5: fragments are forwarded as they come).
    const lastFragment = meta.fragmentIdx === 0 || meta.fragmentIdx >= meta.fragmentTotal;
    if (stream.flag === Flag.Request) {
      this.relay(stream, frame, Flag.ReplyEnd);
      if (lastFragment) this.finish(stream);
      return;
    }
    if (frame.flag === Flag.Reply || !lastFragment) {
      this.relay(stream, frame, stream.scatter && frame.flag === Flag.ReplyEnd ? Flag.Reply : frame.flag);
      return;
    }
    // A ReplyEnd that ends this responder's leg.
    if (!stream.scatter || stream.responders.length <= 1) {
      this.relay(stream, frame, Flag.ReplyEnd);
      this.finish(stream);
      return;
    }
    this.relay(stream, frame, Flag.Reply);
    this.dropLeg(stream, responder);
  }

  /** An Alarm a responder sent for a stream: relayed to the requester, and the stream fails (spec §6). */
  onResponderAlarm(responder: Session, frame: Frame): boolean {
    const stream = responder.legCount === 0 ? undefined : responder.legs.get(this.idIn(frame));
    if (stream === undefined) return false;
    this.relay(stream, frame, Flag.Alarm);
    this.finish(stream);
    return true;
  }

  /** The requester left: forget its streams; replies still on their way are dropped as late. */
  requesterGone(requester: Session): void {
    if (requester.streamCount === 0) return;
    for (const stream of requester.streams.values()) this.finish(stream, false);
    requester.streams.clear();
  }

  /** A responder left: its open streams fail at once with 5003 (scatter-gather: its leg just ends). */
  responderGone(responder: Session): void {
    if (responder.legCount === 0) return;
    for (const stream of responder.legs.values()) {
      if (stream.closed) continue;
      if (stream.responders.length > 1) {
        // Others may still answer (scatter-gather, or a Request sent to `name*`).
        this.dropLeg(stream, responder);
        continue;
      }
      if (stream.scatter && stream.flag === Flag.Subscribe) {
        this.endScatter(stream);
        continue;
      }
      this.alarm(stream, AlarmCode.ResponderGone, `Responder '${responder.label}' left before answering`);
      this.finish(stream);
    }
    responder.legs.clear();
  }

  expire(stream: Stream): void {
    if (stream.closed) return;
    if (stream.scatter && stream.flag === Flag.Subscribe) this.endScatter(stream);
    else {
      const kind = stream.flag === Flag.Request ? 'Request' : 'Stream';
      this.alarm(stream, AlarmCode.Timeout, `${kind} timed out after ${stream.timeoutMs} ms`);
      this.finish(stream);
    }
  }

  /** Ends a scatter-gather stream whose remaining legs are gone: one empty ReplyEnd (spec §5). */
  private endScatter(stream: Stream): void {
    const end = encodeFrame({ flag: Flag.ReplyEnd, sid: stream.requesterSid, event: stream.event });
    stream.requester.sendControl(end);
    this.finish(stream);
  }

  private dropLeg(stream: Stream, responder: Session): void {
    responder.legs.delete(stream.id);
    const i = stream.responders.indexOf(responder);
    if (i !== -1) stream.responders.splice(i, 1);
  }

  /** Relays `frame` to the requester under its own sid; the head is written to the head slab (principle 7). */
  private relay(stream: Stream, frame: Frame, flag: number): void {
    const heads = this.heads;
    heads.rehead(frame, flag, stream.requesterSid);
    const size = heads.end - heads.start + (frame.bodyEnd - frame.bodyStart);
    const result = stream.requester.deliverRangesFrom(null, heads.buffer, heads.start, heads.end,
      frame.bodySource, frame.bodyStart, frame.bodyEnd, OutboundKind.Stream);
    if (result === Delivery.TooLarge) {
      // The requester's transport (a udp datagram) cannot carry the reply: fail its stream rather than
      // leave it waiting for an answer that was dropped (spec §6 4013, §7 nothing silently lost).
      const requester = stream.requester.connection;
      this.alarm(stream, AlarmCode.TooLarge,
        `Reply of ${size} bytes is larger than this ${requester.transport} connection can carry (${requester.maxOutboundFrame})`);
      this.finish(stream);
    }
  }

  private alarm(stream: Stream, code: number, text: string): void {
    stream.requester.sendAlarm(stream.requesterSid, stream.event, stream.metaString, code, text);
  }

  /** Forgets the stream everywhere. */
  private finish(stream: Stream, unlinkRequester = true): void {
    if (stream.closed) return;
    stream.closed = true;
    const seconds = (Date.now() - stream.openedAt) / 1000;
    if (stream.flag === Flag.Request) this.stats.requestLatency.observe(seconds);
    else this.stats.streamLatency.observe(seconds);
    this.wheel.cancel(stream);
    for (const responder of stream.responders) responder.legs.delete(stream.id);
    if (unlinkRequester && stream.requester.streams.get(stream.requesterSid) === stream) {
      stream.requester.streams.delete(stream.requesterSid);
    }
    this.stats.streamsOpen--;
  }
}
