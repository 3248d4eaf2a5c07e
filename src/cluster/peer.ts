/**
 * A peer node as the broker sees it (docs/cluster.md): one session whose connection does not write to a
 * socket but appends each frame, bytes untouched (principle 7), to this tick's batch for that node. The same
 * session is the sender of every frame that node forwards here, so streams, fragment routes and the
 * responder-loss path (5003) work across nodes as they do between local sessions.
 */
import type { Logger } from 'pino';
import { Flag } from '../protocol/flags.js';
import { AlarmCode } from '../protocol/codes.js';
import { decodeMessage, encodeFrame } from '../protocol/codec.js';
import { Frame } from '../protocol/frame.js';
import { ALL_PERMISSIONS, Permissions, type AccessPolicy } from '../broker/access.js';
import type { Broker } from '../broker/broker.js';
import type { Router } from '../broker/router.js';
import { Session, SessionState } from '../broker/session.js';
import { NO_DEADLINES, type SessionContext } from '../broker/session-context.js';
import type { BrokerSettings } from '../broker/settings.js';
import type { BrokerStats } from '../broker/stats.js';
import type { StreamTable } from '../broker/streams.js';
import type { Connection, ConnectionHandler } from '../transport/connection.js';
import type { FrameLimits } from '../protocol/limits.js';
import { batchHead, envelopeEntry } from './records.js';

/** What a peer connection needs from its cluster node. */
export interface PeerOwner {
  /** Whether `bytes` more may be queued towards the other nodes now (link up, backlog below its cap). */
  canSend(bytes: number): boolean;
  /** The connection has a batch to send: flush it at the end of this tick. */
  scheduleFlush(connection: PeerConnection): void;
  /** A batch reached its cap: send it now. */
  flushNow(connection: PeerConnection): void;
  /** A frame could not be queued (link down, backlog full): answer it. `frame` is its whole bytes. */
  refused(connection: PeerConnection, frame: Buffer): void;
  /** The `name!` key of the record being routed, else a label of the node (used as the sender's address). */
  incomingAddress(connection: PeerConnection): string;
}

export class PeerConnection implements Connection {
  readonly transport = 'cluster' as const;
  readonly framing = 'stream' as const;
  readonly remotePort = 0;
  readonly maxOutboundFrame = Infinity;
  /**
   * The queue groups the receiving node serves for the next frame written, and the `name!` key used for it:
   * the routing hooks set them for one frame (src/cluster/peer-routing.ts); null for none.
   */
  nextGroups: string | null = null;
  nextHashKey: string | null = null;
  /** The namespace the next frame written routes in on the receiving node (docs/namespaces.md); null: default. */
  nextNamespace: string | null = null;
  handler: ConnectionHandler | null = null;
  /** This tick's frames, back to back: consecutive ranges of one buffer are merged (as the tcp adapter does). */
  private chunks: Buffer[] = [];
  /** The envelope table of this tick's batch (see records.ts). */
  private table: Buffer[] = [];
  private tableBytes = 0;
  /** Frame bytes in this tick's batch. */
  bytes = 0;
  frames = 0;
  private lastSource: Buffer | null = null;
  private lastStart = 0;
  private lastEnd = 0;
  private isClosed = false;
  flushScheduled = false;

  constructor(
    private readonly owner: PeerOwner,
    readonly node: string,
    readonly incarnation: string,
    /** A batch above this many bytes is sent at once rather than at the end of the tick. */
    private readonly maxBatchBytes: number,
  ) {}

  get remoteAddress(): string {
    return this.owner.incomingAddress(this);
  }

  get bufferedBytes(): number {
    return this.bytes + this.tableBytes;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  start(handler: ConnectionHandler): void {
    this.handler = handler;
  }

  /** Takes this tick's batch body (the owner sends it): its chunks and their total size. */
  take(): { chunks: Buffer[]; bytes: number } {
    const chunks = [batchHead(this.frames, this.tableBytes), ...this.table, ...this.chunks];
    const bytes = 8 + this.tableBytes + this.bytes;
    this.chunks = [];
    this.table = [];
    this.tableBytes = 0;
    this.bytes = 0;
    this.frames = 0;
    this.lastSource = null;
    return { chunks, bytes };
  }

  write(head: Buffer, body?: Buffer): boolean {
    const size = body === undefined ? head.length : head.length + body.length;
    if (!this.admit(size, head[7])) {
      this.owner.refused(this, body === undefined ? head : Buffer.concat([head, body]));
      return true;
    }
    this.begin();
    this.append(head, 0, head.length);
    if (body !== undefined && body.length > 0) this.append(body, 0, body.length);
    this.queued(size);
    return true;
  }

  writeRange(source: Buffer, start: number, end: number): boolean {
    const size = end - start;
    if (!this.admit(size, source[start + 7])) {
      this.owner.refused(this, source.subarray(start, end));
      return true;
    }
    this.begin();
    this.append(source, start, end);
    this.queued(size);
    return true;
  }

  writeRanges(head: Buffer, headStart: number, headEnd: number, body: Buffer, bodyStart: number, bodyEnd: number): boolean {
    const size = headEnd - headStart + (bodyEnd - bodyStart);
    if (!this.admit(size, head[headStart + 7])) {
      this.owner.refused(this, Buffer.concat([head.subarray(headStart, headEnd), body.subarray(bodyStart, bodyEnd)]));
      return true;
    }
    this.begin();
    this.append(head, headStart, headEnd);
    if (bodyEnd > bodyStart) this.append(body, bodyStart, bodyEnd);
    this.queued(size);
    return true;
  }

  writeParts(parts: readonly Buffer[], size: number): boolean {
    if (!this.admit(size, parts[0][7])) {
      this.owner.refused(this, Buffer.concat(parts as Buffer[], size));
      return true;
    }
    this.begin();
    for (const part of parts) this.append(part, 0, part.length);
    this.queued(size);
    return true;
  }

  /** Pressure is between the broker and its own clients (spec §7): it never crosses to another node. */
  private admit(size: number, flag: number): boolean {
    if (this.isClosed || flag === Flag.Pressure) {
      this.nextGroups = null;
      this.nextHashKey = null;
      this.nextNamespace = null;
      return true;
    }
    return this.owner.canSend(size);
  }

  /** Starts a frame: its table entry when the routing hooks gave it an envelope. */
  private begin(): void {
    if (this.nextGroups === null && this.nextHashKey === null && this.nextNamespace === null) return;
    const entry = envelopeEntry(this.bytes, this.nextGroups, this.nextHashKey, this.nextNamespace);
    this.nextGroups = null;
    this.nextHashKey = null;
    this.nextNamespace = null;
    this.table.push(entry);
    this.tableBytes += entry.length;
  }

  /** Appends `source[start, end)`, extending the last chunk when it ends right there in the same buffer. */
  private append(source: Buffer, start: number, end: number): void {
    const chunks = this.chunks;
    if (source === this.lastSource && start === this.lastEnd) {
      chunks[chunks.length - 1] = source.subarray(this.lastStart, end);
    } else {
      chunks.push(start === 0 && end === source.length ? source : source.subarray(start, end));
      this.lastSource = source;
      this.lastStart = start;
    }
    this.lastEnd = end;
  }

  private queued(size: number): void {
    this.bytes += size;
    this.frames++;
    if (this.bytes >= this.maxBatchBytes) this.owner.flushNow(this);
    else this.owner.scheduleFlush(this);
  }

  pause(): void {
    // Frames from another node cannot be held back at the source; the receiving sessions' queues and their
    // slow-consumer policy bound what waits here (spec §7).
  }

  resume(): void {}

  end(reason: string): void {
    this.destroy(reason);
  }

  destroy(reason: string): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.take();
    setImmediate(() => this.handler?.connectionOnClose('local', reason));
  }
}

/** A peer session's context: the broker's router and stream table, its own limits, no handshake, no registry. */
class PeerContext implements SessionContext {
  readonly settings: BrokerSettings;
  readonly stats: BrokerStats;
  readonly logger: Logger;
  readonly router: Router;
  readonly streams: StreamTable;
  readonly access: AccessPolicy;
  /** A peer session lives as long as its node is a member (heartbeats), never by idle or handshake time. */
  readonly deadlines = NO_DEADLINES;
  /** Its batches are bounded by cluster.maxBacklogBytes, not by the clients' memory budget. */
  readonly queued = null;

  constructor(private readonly broker: Broker, peerStreams: number) {
    const s = broker.settings;
    // One peer session carries every stream and fragmented frame of a whole node: per-session limits of a
    // client would cap the node; the requesting clients' own limits were applied on their node.
    this.settings = {
      ...s,
      maxStreamsPerSession: peerStreams,
      maxFragmentRoutesPerSession: peerStreams,
      framesPerSecond: 0,
      outbound: { ...s.outbound, policy: 'drop', limitBytes: Number.MAX_SAFE_INTEGER, highWaterBytes: Number.MAX_SAFE_INTEGER },
    };
    this.stats = broker.stats;
    this.logger = broker.logger;
    this.router = broker.router;
    this.streams = broker.streams;
    this.access = broker.access;
  }

  admitHandshake(): boolean {
    return false;
  }

  sessionOnOpen(): void {}

  /** The node left: its streams fail or end exactly as a local session's do (spec §5). */
  sessionOnClose(session: Session, wasOpen: boolean): void {
    if (!wasOpen) return;
    this.broker.streams.requesterGone(session);
    this.broker.streams.responderGone(session);
    this.broker.router.releaseFragments(session);
  }

  sessionClosing(): void {}

  connectionClosed(): void {}
}

const PEER_PERMISSIONS_RULES = ALL_PERMISSIONS;

/** Builds the open session that stands for `connection`'s node. */
export function peerSession(broker: Broker, connection: PeerConnection, peerStreams: number): Session {
  const session = new Session(new PeerContext(broker, peerStreams), connection, `node:${connection.node}`);
  session.permissions = new Permissions(`node:${connection.node}`, PEER_PERMISSIONS_RULES);
  session.state = SessionState.Open;
  session.openedAt = Date.now();
  session.start();
  return session;
}

/**
 * The Alarm a peer node would have sent for a Request/Subscribe that never left this node (`frame`, as it
 * would have been sent: with its stream sid), or null for a frame nobody waits on.
 */
export function refusalAlarm(frame: Buffer, text: string, limits: FrameLimits): Buffer | null {
  const decoded = decodeMessage(frame, limits);
  if (!(decoded instanceof Frame)) return null;
  if (decoded.flag !== Flag.Request && decoded.flag !== Flag.Subscribe) return null;
  return encodeFrame({ flag: Flag.Alarm, sid: decoded.sid, event: decoded.event, meta: `code=${AlarmCode.ResponderGone}`, data: text });
}
