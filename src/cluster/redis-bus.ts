/**
 * The ClusterBus over Redis (docs/cluster.md), with ioredis.
 *
 * - Frames: one channel per node, `<prefix>:node:<id>`; a batch is published as one binary message, a small
 *   header (origin node, incarnation) then the records (src/cluster/records.ts). Publishes issued in one
 *   tick go to Redis in one write (ioredis auto-pipelining).
 * - Interest: a hash per node, `<prefix>:interest:<id>` (the whole table, `~seq` and `~inc` included), and
 *   deltas on `<prefix>:interest` with a sequence number. A receiver that misses a delta (a gap, seen in a
 *   later delta or heartbeat), meets a new incarnation, or hears a node's hello re-reads the hash.
 * - Membership: heartbeats on `<prefix>:hb` every heartbeatMs; a node silent for nodeTimeoutMs is dropped.
 * - Redis unreachable: commands fail at once (no offline queue: nothing piles up, principle 3), canSend()
 *   answers false, the client reconnects by itself, and on reconnect this node rewrites its hash and says
 *   hello so the others re-read it.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { Redis, type RedisOptions } from 'ioredis';
import type { ClusterBus, ClusterBusEvents } from './bus.js';
import { ClusterStats } from './stats.js';

export interface RedisBusOptions {
  /** redis://[user:password@]host:port[/db] */
  url: string;
  nodeId: string;
  /** Prefix of every key and channel, so several clusters can share one Redis. */
  prefix: string;
  heartbeatMs: number;
  nodeTimeoutMs: number;
  /** Bytes published and not yet acknowledged by Redis above which canSend() refuses (principle 3). */
  maxBacklogBytes: number;
  /** How long a connection attempt may take. */
  connectTimeoutMs: number;
}

const VERSION = 1;
const SEQ_FIELD = '~seq';
const INC_FIELD = '~inc';

interface Peer {
  incarnation: string;
  lastSeen: number;
  /** Last interest sequence applied; -1 before the first full read. */
  seq: number;
  syncing: boolean;
  /** Deltas that arrived while the hash was being read. */
  buffered: Delta[];
}

interface Delta {
  n: string;
  i: string;
  s: number;
  e: [string, number][];
}

interface Beat {
  t: 'hello' | 'hb' | 'bye';
  n: string;
  i: string;
  s: number;
}

export class RedisBus implements ClusterBus {
  readonly incarnation = randomBytes(6).toString('hex');
  private readonly pub: Redis;
  private readonly sub: Redis;
  private events: ClusterBusEvents | null = null;
  private pubReady = false;
  private subReady = false;
  private up = false;
  private seq = 0;
  private backlog = 0;
  private readonly peers = new Map<string, Peer>();
  private timer: NodeJS.Timeout | null = null;
  private readonly header: Buffer;
  private readonly hbChannel: string;
  private readonly interestChannel: string;
  private readonly ownChannel: string;
  private lastHelloAnswer = 0;
  private stopped = false;
  private duplicateWarned = false;

  constructor(
    private readonly options: RedisBusOptions,
    private readonly stats: ClusterStats,
    private readonly logger: Logger,
  ) {
    const p = options.prefix;
    this.hbChannel = `${p}:hb`;
    this.interestChannel = `${p}:interest`;
    this.ownChannel = `${p}:node:${options.nodeId}`;
    const id = Buffer.from(options.nodeId, 'utf8');
    const inc = Buffer.from(this.incarnation, 'latin1');
    this.header = Buffer.concat([Buffer.from([VERSION, id.length]), id, Buffer.from([inc.length]), inc]);
    const common: RedisOptions = {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: options.connectTimeoutMs,
      // Forever, backing off to one attempt per heartbeat: local routing never depends on it.
      retryStrategy: (times) => Math.min(50 * times, Math.max(100, options.heartbeatMs)),
    };
    this.pub = new Redis(options.url, { ...common, enableAutoPipelining: true, connectionName: `socketd:${options.nodeId}:pub` });
    this.sub = new Redis(options.url, { ...common, autoResubscribe: true, connectionName: `socketd:${options.nodeId}:sub` });
  }

  get nodeId(): string {
    return this.options.nodeId;
  }

  get linkUp(): boolean {
    return this.up;
  }

  /** Joins: connects both clients; resolves once connected or after the first failed attempt (it keeps trying). */
  async start(events: ClusterBusEvents): Promise<void> {
    this.events = events;
    this.pub.on('ready', () => {
      this.pubReady = true;
      this.linkChanged();
    });
    // Subscribed on every 'ready': a client whose first connection failed has no subscriptions for
    // autoResubscribe to restore (SUBSCRIBE is idempotent, so a restored one is not doubled).
    this.sub.on('ready', () => {
      this.sub.subscribe(this.hbChannel, this.interestChannel, this.ownChannel).then(() => {
        this.subReady = true;
        this.linkChanged();
      }, (error: Error) => this.failed('subscribe', error));
    });
    for (const [client, which] of [[this.pub, 'pub'], [this.sub, 'sub']] as const) {
      client.on('close', () => {
        if (which === 'pub') this.pubReady = false;
        else this.subReady = false;
        this.linkChanged();
      });
      client.on('error', (error: Error) => {
        this.logger.debug({ event: 'cluster_redis_error', client: which, err: error.message }, 'redis client error');
      });
    }
    this.sub.on('messageBuffer', (channel: Buffer, message: Buffer) => this.onMessage(channel.toString('utf8'), message));
    this.timer = setInterval(() => this.beat(), this.options.heartbeatMs);
    this.timer.unref();
    const connected = Promise.all([this.sub.connect(), this.pub.connect()]);
    try {
      await connected;
    } catch (error) {
      this.logger.warn({ event: 'cluster_redis_unreachable', url: redact(this.options.url), err: (error as Error).message },
        'redis unreachable at start: routing among local sessions until it is back');
    }
  }

  private linkChanged(): void {
    const up = this.pubReady && this.subReady && !this.stopped;
    if (up === this.up) return;
    this.up = up;
    this.events?.link(up);
    if (up) this.reannounce();
  }

  /** After (re)connecting: the whole table under a new sequence number, then hello (the others re-read it). */
  private reannounce(): void {
    const events = this.events!;
    this.seq++;
    const key = this.hashKey(this.nodeId);
    const fields: (string | number)[] = [SEQ_FIELD, this.seq, INC_FIELD, this.incarnation];
    for (const [k, count] of events.localInterest()) fields.push(k, count);
    const multi = this.pub.multi();
    multi.del(key);
    multi.hset(key, ...(fields as [string, string | number]));
    multi.publish(this.hbChannel, JSON.stringify({ t: 'hello', n: this.nodeId, i: this.incarnation, s: this.seq } satisfies Beat));
    multi.exec().catch((error: Error) => this.failed('reannounce', error));
  }

  announce(changes: ReadonlyMap<string, number>): void {
    // While down, the changes are in the local table: the reannounce on reconnect carries them.
    if (!this.up || changes.size === 0) return;
    this.seq++;
    const key = this.hashKey(this.nodeId);
    const set: (string | number)[] = [SEQ_FIELD, this.seq];
    const del: string[] = [];
    const entries: [string, number][] = [];
    for (const [k, count] of changes) {
      entries.push([k, count]);
      if (count > 0) set.push(k, count);
      else del.push(k);
    }
    const multi = this.pub.multi();
    if (del.length > 0) multi.hdel(key, ...del);
    multi.hset(key, ...(set as [string, string | number]));
    multi.publish(this.interestChannel, JSON.stringify({ n: this.nodeId, i: this.incarnation, s: this.seq, e: entries } satisfies Delta));
    multi.exec().catch((error: Error) => this.failed('announce', error));
  }

  canSend(bytes: number): boolean {
    return this.up && this.backlog + bytes <= this.options.maxBacklogBytes;
  }

  send(node: string, chunks: readonly Buffer[], bytes: number): void {
    const payload = Buffer.concat([this.header, ...chunks], this.header.length + bytes);
    const size = payload.length;
    this.backlog += size;
    this.pub.publish(`${this.options.prefix}:node:${node}`, payload).then(
      () => {
        this.backlog -= size;
      },
      (error: Error) => {
        this.backlog -= size;
        ClusterStats.inc(this.stats.dropped, 'publish_failed');
        this.failed('publish', error);
      },
    );
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    if (this.up) {
      await this.pub.publish(this.hbChannel, JSON.stringify({ t: 'bye', n: this.nodeId, i: this.incarnation, s: this.seq } satisfies Beat))
        .catch(() => undefined);
      await this.pub.del(this.hashKey(this.nodeId)).catch(() => undefined);
    }
    this.up = false;
    await Promise.allSettled([quit(this.pub), quit(this.sub)]);
  }

  // ----- heartbeats and membership -----------------------------------------------------------------------

  private beat(): void {
    const now = Date.now();
    for (const [node, peer] of this.peers) {
      if (now - peer.lastSeen > this.options.nodeTimeoutMs) {
        this.peers.delete(node);
        this.events!.peerDown(node, `silent for more than ${this.options.nodeTimeoutMs} ms`);
      }
    }
    if (!this.up) return;
    const started = process.hrtime.bigint();
    this.pub.publish(this.hbChannel, JSON.stringify({ t: 'hb', n: this.nodeId, i: this.incarnation, s: this.seq } satisfies Beat)).then(
      () => {
        this.stats.redisRttSeconds = Number(process.hrtime.bigint() - started) / 1e9;
      },
      (error: Error) => this.failed('heartbeat', error),
    );
  }

  private onMessage(channel: string, message: Buffer): void {
    try {
      if (channel === this.ownChannel) this.onFrames(message);
      else if (channel === this.hbChannel) this.onBeat(JSON.parse(message.toString('utf8')) as Beat);
      else if (channel === this.interestChannel) this.onDelta(JSON.parse(message.toString('utf8')) as Delta);
    } catch (error) {
      this.stats.badBatches++;
      this.logger.warn({ event: 'cluster_bad_message', channel, err: (error as Error).message }, 'undecodable cluster message dropped');
    }
  }

  private onFrames(message: Buffer): void {
    if (message.length < 3 || message[0] !== VERSION) throw new Error('unknown batch version');
    const idLen = message[1];
    const node = message.toString('utf8', 2, 2 + idLen);
    const incLen = message[2 + idLen];
    const incarnation = message.toString('latin1', 3 + idLen, 3 + idLen + incLen);
    const offset = 3 + idLen + incLen;
    if (offset > message.length) throw new Error('truncated batch header');
    this.seen(node, incarnation, -1);
    this.events!.frames(node, incarnation, message, offset);
  }

  private onBeat(beat: Beat): void {
    if (beat.n === this.nodeId) {
      if (beat.i !== this.incarnation && !this.duplicateWarned) {
        this.duplicateWarned = true;
        this.logger.error({ event: 'cluster_duplicate_node_id', node: this.nodeId }, 'another process uses this cluster.nodeId: give each node its own');
      }
      return;
    }
    if (beat.t === 'bye') {
      const peer = this.peers.get(beat.n);
      if (peer !== undefined && peer.incarnation === beat.i) {
        this.peers.delete(beat.n);
        this.events!.peerDown(beat.n, 'left');
      }
      return;
    }
    const peer = this.seen(beat.n, beat.i, beat.s);
    if (beat.t === 'hello') {
      // A node (re)joined: its table was just rewritten; and it should learn this node without waiting a beat.
      this.resync(beat.n, peer);
      const now = Date.now();
      if (now - this.lastHelloAnswer > 100) {
        this.lastHelloAnswer = now;
        this.beat();
      }
    }
  }

  /**
   * Notes life from `node`; a new node or incarnation is announced (peerUp) and read in full. `seq` >= 0 is
   * the node's current sequence (heartbeats): ahead of what was applied means a delta was missed.
   */
  private seen(node: string, incarnation: string, seq: number): Peer {
    let peer = this.peers.get(node);
    if (peer !== undefined && peer.incarnation !== incarnation) {
      this.peers.delete(node);
      this.events!.peerDown(node, 'restarted (new incarnation)');
      peer = undefined;
    }
    if (peer === undefined) {
      peer = { incarnation, lastSeen: Date.now(), seq: -1, syncing: false, buffered: [] };
      this.peers.set(node, peer);
      this.events!.peerUp(node, incarnation);
      this.resync(node, peer);
      return peer;
    }
    peer.lastSeen = Date.now();
    if (seq > peer.seq && !peer.syncing) this.resync(node, peer);
    return peer;
  }

  private onDelta(delta: Delta): void {
    if (delta.n === this.nodeId) return;
    const peer = this.seen(delta.n, delta.i, -1);
    if (peer.syncing) {
      peer.buffered.push(delta);
      return;
    }
    this.applyDelta(delta.n, peer, delta);
  }

  private applyDelta(node: string, peer: Peer, delta: Delta): void {
    if (delta.s <= peer.seq) return;
    if (delta.s !== peer.seq + 1) {
      this.resync(node, peer);
      return;
    }
    peer.seq = delta.s;
    this.events!.peerInterest(node, peer.incarnation, delta.e, false);
  }

  /** Reads `node`'s whole table; deltas arriving meanwhile are applied after it. */
  private resync(node: string, peer: Peer): void {
    if (peer.syncing || !this.up) return;
    peer.syncing = true;
    this.stats.resyncs++;
    this.pub.hgetall(this.hashKey(node)).then(
      (table) => {
        if (this.peers.get(node) !== peer) return;
        peer.syncing = false;
        const buffered = peer.buffered;
        peer.buffered = [];
        if (table[INC_FIELD] !== peer.incarnation) {
          // Not written yet by this incarnation (it reconnects, or its hash was lost): its hello will come.
          return;
        }
        peer.seq = Number(table[SEQ_FIELD]);
        const entries: [string, number][] = [];
        for (const [k, v] of Object.entries(table)) if (k !== SEQ_FIELD && k !== INC_FIELD) entries.push([k, Number(v)]);
        this.events!.peerInterest(node, peer.incarnation, entries, true);
        for (const delta of buffered) this.applyDelta(node, peer, delta);
      },
      (error: Error) => {
        peer.syncing = false;
        this.failed('resync', error);
      },
    );
  }

  private hashKey(node: string): string {
    return `${this.options.prefix}:interest:${node}`;
  }

  private failed(what: string, error: Error): void {
    this.logger.debug({ event: 'cluster_redis_command_failed', what, err: error.message }, 'redis command failed');
  }
}

async function quit(client: Redis): Promise<void> {
  try {
    await Promise.race([client.quit(), new Promise((_, reject) => setTimeout(reject, 1000).unref())]);
  } catch {
    client.disconnect();
  }
}

/** The URL without its password, for logs. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password.length > 0) u.password = '***';
    return u.toString();
  } catch {
    return '(invalid url)';
  }
}
