/**
 * A session's outbound queue (spec §7, principle 3). The bytes themselves wait in the transport's buffer;
 * this is the cap in front of it: every frame the broker sends to a session passes here, is measured against
 * the high-water mark (congestion: feeders get Pressure and are paused) and the limit (the slow-consumer
 * policy), and is counted.
 */
import type { Connection } from '../transport/connection.js';
import type { QueuedBytes, TrackedQueue } from './queued-bytes.js';
import type { OutboundSettings } from './settings.js';
import { BrokerStats } from './stats.js';

export const enum Delivery {
  Queued = 0,
  /** `drop` policy: a Message to a full queue was dropped and counted. */
  Dropped = 1,
  /** The session is closed or was just closed as a slow consumer. */
  Closed = 2,
  /** The frame is larger than the target's transport can carry (udp datagrams). */
  TooLarge = 3,
}

/** What kind of frame is queued: only Messages may be dropped by the `drop` policy. */
export const enum OutboundKind {
  Message = 0,
  Stream = 1,
  Control = 2,
}

export interface OutboundOwner {
  /** The limit was reached and the policy says disconnect; the owner closes the session. */
  outboundOnOverflow(queuedBytes: number): void;
  /** The queue just became congested (at `since`, ms): the owner's congestion deadline starts. */
  outboundOnCongested(since: number): void;
}

export class OutboundQueue implements TrackedQueue {
  /** True between a write that crossed the high-water mark and the transport's drain. */
  congested = false;
  /** When the current congestion began (ms), for the congestion deadline. */
  congestedSince = 0;
  /** In the broker's running total of queued bytes (owned by QueuedBytes). */
  active = false;
  accounted = 0;

  /** `tracker` is the broker-wide running total (memory budget); null keeps this queue out of it. */
  constructor(
    private readonly connection: Connection,
    private readonly settings: OutboundSettings,
    private readonly stats: BrokerStats,
    private readonly owner: OutboundOwner,
    private readonly tracker: QueuedBytes | null = null,
  ) {}

  get queuedBytes(): number {
    return this.connection.bufferedBytes;
  }

  get liveBytes(): number {
    return this.connection.closed ? 0 : this.connection.bufferedBytes;
  }

  push(head: Buffer, body: Buffer | undefined, kind: OutboundKind): Delivery {
    const size = body === undefined ? head.length : head.length + body.length;
    const verdict = this.admit(size, kind);
    if (verdict !== Delivery.Queued) return verdict;
    // Every head starts with len and flag: the flag's last byte is the flag (all flags are < 64).
    this.accepted(this.connection.write(head, body), head[7], size);
    return Delivery.Queued;
  }

  /** As push(), for a whole frame held in `source[start, end)` (forwarded untouched). */
  pushRange(source: Buffer, start: number, end: number, kind: OutboundKind): Delivery {
    const size = end - start;
    const verdict = this.admit(size, kind);
    if (verdict !== Delivery.Queued) return verdict;
    const connection = this.connection;
    const belowHighWater = connection.writeRange !== undefined
      ? connection.writeRange(source, start, end)
      : connection.write(source.subarray(start, end));
    this.accepted(belowHighWater, source[start + 7], size);
    return Delivery.Queued;
  }

  /** As push(), for a frame given as `head[headStart, headEnd)` then `body[bodyStart, bodyEnd)` (re-headed). */
  pushRanges(head: Buffer, headStart: number, headEnd: number, body: Buffer, bodyStart: number, bodyEnd: number, kind: OutboundKind): Delivery {
    const size = headEnd - headStart + (bodyEnd - bodyStart);
    const verdict = this.admit(size, kind);
    if (verdict !== Delivery.Queued) return verdict;
    const connection = this.connection;
    const belowHighWater = connection.writeRanges !== undefined
      ? connection.writeRanges(head, headStart, headEnd, body, bodyStart, bodyEnd)
      : connection.write(head.subarray(headStart, headEnd), body.subarray(bodyStart, bodyEnd));
    this.accepted(belowHighWater, head[headStart + 7]!, size);
    return Delivery.Queued;
  }

  /** As push(), for a whole frame of `size` bytes given as consecutive parts (forwarded untouched). */
  pushParts(parts: readonly Buffer[], size: number, kind: OutboundKind): Delivery {
    const verdict = this.admit(size, kind);
    if (verdict !== Delivery.Queued) return verdict;
    const connection = this.connection;
    // A message transport carries a frame as one message: the parts are joined (only frames of 64 KiB and
    // more arrive in parts).
    const belowHighWater = connection.writeParts !== undefined ? connection.writeParts(parts, size) : connection.write(Buffer.concat(parts, size));
    this.accepted(belowHighWater, parts[0]![7]!, size);
    return Delivery.Queued;
  }

  /** Decides whether a frame of `size` bytes may be queued: Queued, or why not (applying the policy). */
  private admit(size: number, kind: OutboundKind): Delivery {
    const connection = this.connection;
    if (connection.closed) return Delivery.Closed;
    if (size > connection.maxOutboundFrame) return Delivery.TooLarge;
    const queued = connection.bufferedBytes;
    if (queued + size > this.settings.limitBytes) {
      if (this.settings.policy === 'drop' && kind === OutboundKind.Message) {
        BrokerStats.inc(this.stats.dropped, 'slow_consumer');
        return Delivery.Dropped;
      }
      this.owner.outboundOnOverflow(queued);
      return Delivery.Closed;
    }
    return Delivery.Queued;
  }

  /** Counts a queued frame; `belowHighWater` is what the transport's write returned. */
  private accepted(belowHighWater: boolean, flag: number, size: number): void {
    this.stats.framesOutByFlag[flag & 63]++;
    this.stats.bytesOut += size;
    // The running total reads this queue at its next check (see QueuedBytes).
    if (!this.active && this.tracker !== null) this.tracker.activate(this);
    // The transport's high-water mark is ours (the wiring point passes it); only its word counts, because
    // only it reports the drain that ends the congestion (udp never pushes back, so is never congested).
    if (!belowHighWater && !this.congested) {
      this.congested = true;
      this.congestedSince = Date.now();
      this.owner.outboundOnCongested(this.congestedSince);
    }
  }

  /** The transport drained: the queue is below its high-water mark again. */
  drained(): void {
    this.congested = false;
  }
}
