/**
 * Two connected in-memory Connections for unit tests: what one side writes reaches the other side's handler
 * on a later tick, in order, with the same contract as the socket adapters (batching, pause, drain, close).
 */
import type { Connection, ConnectionHandler, Framing, TransportCloseCode } from './connection.js';
import { DEFAULT_HIGH_WATER_MARK } from './tcp.js';

export interface MemoryPairOptions {
  /** Bytes not yet delivered above which write() returns false (default 1 MiB). */
  highWaterMark?: number;
}

class MemoryConnection implements Connection {
  readonly transport = 'memory' as const;
  readonly framing: Framing;
  readonly remoteAddress = 'memory';
  readonly remotePort: number;
  readonly maxOutboundFrame = Infinity;

  peer!: MemoryConnection;
  private readonly highWaterMark: number;
  private handler: ConnectionHandler | null = null;
  /** Written and not yet delivered to the peer (whole frames with `message` framing, chunks with `stream`). */
  private outbox: Buffer[] = [];
  private outboxBytes = 0;
  private flushScheduled = false;
  private needDrain = false;
  private paused = false;
  private ending = false;
  private endReason = '';
  private isClosed = false;
  private closeCode: TransportCloseCode = 'local';
  private closeDetail = '';

  constructor(framing: Framing, remotePort: number, highWaterMark: number) {
    this.framing = framing;
    this.remotePort = remotePort;
    this.highWaterMark = highWaterMark;
    this.flush = this.flush.bind(this);
    this.emitClose = this.emitClose.bind(this);
  }

  get bufferedBytes(): number {
    return this.outboxBytes;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  start(handler: ConnectionHandler): void {
    if (this.handler !== null) throw new Error('MemoryConnection.start called twice');
    this.handler = handler;
    if (this.isClosed) process.nextTick(this.emitClose);
    // Anything the peer wrote before we had a handler can go now.
    else this.peer.scheduleFlush();
  }

  write(head: Buffer, body?: Buffer): boolean {
    if (this.isClosed || this.ending) return true;
    if (this.framing === 'message') {
      const frame = body === undefined || body.length === 0 ? head : Buffer.concat([head, body]);
      this.outbox.push(frame);
      this.outboxBytes += frame.length;
    } else {
      this.outbox.push(head);
      this.outboxBytes += head.length;
      if (body !== undefined && body.length > 0) {
        this.outbox.push(body);
        this.outboxBytes += body.length;
      }
    }
    this.scheduleFlush();
    if (this.outboxBytes > this.highWaterMark) {
      this.needDrain = true;
      return false;
    }
    return true;
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.peer.scheduleFlush();
  }

  /** Delivers what is queued (once the peer reads it), then closes both sides. */
  end(reason: string): void {
    if (this.isClosed || this.ending) return;
    this.ending = true;
    this.endReason = reason;
    this.scheduleFlush();
  }

  destroy(reason: string): void {
    if (this.isClosed) return;
    this.closeBoth(reason);
  }

  scheduleFlush(): void {
    if (this.flushScheduled || this.isClosed) return;
    this.flushScheduled = true;
    setImmediate(this.flush);
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.isClosed) return;
    const peer = this.peer;
    const target = peer.handler;
    if (target !== null && !peer.paused && this.outbox.length > 0) {
      if (this.framing === 'stream') {
        const chunk = this.outbox.length === 1 ? this.outbox[0]! : Buffer.concat(this.outbox, this.outboxBytes);
        this.outbox = [];
        this.outboxBytes = 0;
        target.connectionOnData(chunk);
      } else {
        // One call per frame; the peer may pause or close from inside its handler, which stops delivery.
        let delivered = 0;
        while (delivered < this.outbox.length && !peer.paused && !this.isClosed) {
          const frame = this.outbox[delivered++]!;
          this.outboxBytes -= frame.length;
          target.connectionOnData(frame);
        }
        this.outbox = this.isClosed ? [] : this.outbox.slice(delivered);
      }
      if (this.needDrain && !this.isClosed && this.outboxBytes <= this.highWaterMark) {
        this.needDrain = false;
        this.handler?.connectionOnDrain();
      }
    }
    if (this.ending && !this.isClosed && this.outbox.length === 0) this.closeBoth(this.endReason);
  }

  private closeBoth(reason: string): void {
    this.finish('local', reason);
    this.peer.finish('peer_closed', 'peer closed the connection');
  }

  private finish(code: TransportCloseCode, detail: string): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.closeCode = code;
    this.closeDetail = detail;
    this.outbox = [];
    this.outboxBytes = 0;
    // Next tick, so that end()/destroy() never re-enter the handler.
    if (this.handler !== null) process.nextTick(this.emitClose);
  }

  private emitClose(): void {
    this.handler?.connectionOnClose(this.closeCode, this.closeDetail);
  }
}

/** Returns two connected in-memory connections (remotePort 1 and 2 tell them apart in logs). */
export function createMemoryPair(framing: Framing = 'stream', options: MemoryPairOptions = {}): [Connection, Connection] {
  const highWaterMark = options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK;
  const a = new MemoryConnection(framing, 2, highWaterMark);
  const b = new MemoryConnection(framing, 1, highWaterMark);
  a.peer = b;
  b.peer = a;
  return [a, b];
}
