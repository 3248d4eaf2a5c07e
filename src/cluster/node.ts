/**
 * One node of a cluster (docs/cluster.md): the ClusterRouting the router consults (its routing questions are
 * answered by PeerRouting, src/cluster/peer-routing.ts; presence by ClusterPresence), counts and announces
 * this node's interest, keeps a peer session per other node (membership), and moves frame batches through
 * the ClusterBus in both directions. The router never learns what the bus is.
 */
import type { Logger } from 'pino';
import { AlarmCode } from '../protocol/codes.js';
import { Flag } from '../protocol/flags.js';
import { Frame } from '../protocol/frame.js';
import type { AtAddress } from '../broker/at-address.js';
import type { Broker, SessionObserver } from '../broker/broker.js';
import type { ClusterRouting } from '../broker/cluster-seam.js';
import type { NameGroup } from '../broker/session-registry.js';
import { SessionState, type Session } from '../broker/session.js';
import type { QueueGroup } from '../broker/subscription-index.js';
import type { ClusterBus, ClusterBusEvents } from './bus.js';
import { LocalInterest, NamespacedInterest, RemoteInterest, eventKey, nameKey, namespacedKey, splitNamespacedKey, watchKey, PRESENCE_CAPABILITY } from './interest.js';
import type { PresenceEntry } from '../broker/event-router.js';
import { ClusterPresence } from './cluster-presence.js';
import { PeerConnection, peerSession, refusalAlarm, type PeerOwner } from './peer.js';
import { readRecords, type RecordVisitor } from './records.js';
import { decodeMessage } from '../protocol/codec.js';
import { ClusterStats } from './stats.js';
import { nodeSummaries, type NodeSummary } from './summary.js';
import { PeerLink, PeerRouting, isPeer } from './peer-routing.js';

export type { NodeSummary } from './summary.js';
export { PeerLink } from './peer-routing.js';

export interface ClusterNodeOptions {
  /** A batch for one node above this many bytes is sent at once rather than at the end of the tick. */
  maxBatchBytes: number;
  /** Open streams and fragmented frames one peer node may have through this node. */
  peerStreams: number;
  /** Events whose remote matches are cached (as fastPaths.matchCacheSize); 0 switches the cache off. */
  matchCacheSize: number;
  /** How long a `$presence` list waits for the other nodes' members; past it, it answers what arrived. */
  presenceTimeoutMs: number;
  /** Remote (session, event) memberships remembered, so that a dropped node's members are told leaving. */
  presenceMembersMax: number;
}

export const DEFAULT_NODE_OPTIONS: Readonly<ClusterNodeOptions> = Object.freeze({
  maxBatchBytes: 256 * 1024,
  peerStreams: 1_000_000,
  matchCacheSize: 4096,
  presenceTimeoutMs: 1000,
  presenceMembersMax: 100_000,
});

/** Match cache size of a namespace's remote table (the default namespace's uses options.matchCacheSize). */
const NAMESPACE_CACHE = 256;

export class ClusterNode implements ClusterRouting, SessionObserver, PeerOwner, ClusterBusEvents, RecordVisitor {
  readonly local: LocalInterest;
  /** Every peer node's interest in the default namespace. */
  readonly remote: RemoteInterest<PeerLink>;
  /** Every peer node's interest, namespace by namespace (the default one is `remote`). */
  readonly interest: NamespacedInterest<PeerLink>;
  private broker: Broker | null = null;
  private readonly links = new Map<string, PeerLink>();
  /** Nodes dropped while the link was down, whose last interest is kept until the link is back. */
  private readonly orphans: PeerLink[] = [];
  /** Named local sessions counted into the interest (a session is uncounted once, closing or closed). */
  private readonly named = new Set<Session>();
  private readonly flushQueue: PeerConnection[] = [];
  private flushPending = false;
  private announcePending = false;
  // The record being routed (frames from a peer node).
  private incomingLink: PeerLink | null = null;
  private incomingHash: string | null = null;
  private readonly startedAt = Date.now();
  /** Presence across nodes: notices out, `$presence` lists scattered and gathered. */
  private readonly presence: ClusterPresence;
  /** stop() began: dropping the links tells no local watcher of leaves (they are gone or going too). */
  private stopping = false;
  /** The router's questions about peer nodes: names, events, queue groups, single picks. */
  private readonly routing: PeerRouting;

  constructor(
    readonly bus: ClusterBus,
    readonly stats: ClusterStats,
    private readonly logger: Logger,
    private readonly options: ClusterNodeOptions = DEFAULT_NODE_OPTIONS,
  ) {
    this.local = new LocalInterest(() => this.scheduleAnnounce());
    // Part of the whole table every node reads of this one (never a change to announce on its own).
    this.local.counts.set(PRESENCE_CAPABILITY, 1);
    this.remote = new RemoteInterest<PeerLink>(options.matchCacheSize);
    // Each other namespace's table has its own, smaller match cache: their number is not bounded here.
    this.interest = new NamespacedInterest<PeerLink>(this.remote, Math.min(options.matchCacheSize, NAMESPACE_CACHE));
    this.routing = new PeerRouting(bus, this.interest, this.links, stats);
    this.presence = new ClusterPresence({
      interest: this.interest,
      linkUp: () => this.bus.linkUp,
      linkOf: (session) => {
        const link = this.links.get((session.connection as PeerConnection).node);
        return link !== undefined && link.session === session ? link : undefined;
      },
      maxFrame: () => this.broker!.settings.limits.maxFrame,
      maxData: () => this.broker!.settings.limits.maxData,
      rooms: (ns) => this.broker!.namespaces?.eventsOf(ns),
      watching: (ns, event) => this.local.counts.has(namespacedKey(ns, watchKey(event))),
    }, stats, logger, options.presenceTimeoutMs, options.peerStreams, options.presenceMembersMax);
  }

  get nodeId(): string {
    return this.bus.nodeId;
  }

  /** The broker whose router consults this node. Precondition: called once, before start(). */
  attach(broker: Broker): void {
    this.broker = broker;
  }

  async start(): Promise<void> {
    if (this.broker === null) throw new Error('ClusterNode.start before attach');
    await this.bus.start(this);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.presence.close();
    await this.bus.stop();
    for (const link of [...this.links.values()]) this.dropLink(link, 'node stopped');
  }

  /** True while peer nodes can be reached: /readyz reports degraded otherwise. */
  get linkUp(): boolean {
    return this.bus.linkUp;
  }

  get peerCount(): number {
    return this.links.size;
  }

  /** Peer nodes whose stand-in session is open (every one, while the node is up: only membership ends one). */
  get peerSessionsOpen(): number {
    let open = 0;
    for (const link of this.links.values()) if (link.session.state === SessionState.Open) open++;
    return open;
  }

  // ----- ClusterRouting: the router's questions (answered by PeerRouting) -----------------------------------

  byName(sender: Session, frame: Frame, at: AtAddress, hashKey: string | undefined, local: NameGroup | undefined, targets: Session[]): boolean {
    return this.routing.byName(sender, frame, at, hashKey, local, targets);
  }

  groupsElsewhere(sender: Session, event: string, localGroups: readonly QueueGroup<Session>[]): ReadonlySet<string> | null {
    return this.routing.groupsElsewhere(sender, event, localGroups);
  }

  addPeers(sender: Session, frame: Frame, event: string, targets: Session[]): void {
    this.routing.addPeers(sender, frame, event, targets);
  }

  pickPeer(sender: Session, event: string, localCandidates: number, targets: Session[]): boolean {
    return this.routing.pickPeer(sender, event, localCandidates, targets);
  }

  subscriptionChanged(pattern: string, group: string, delta: number): void {
    this.local.change(eventKey(pattern, group), delta);
  }

  /**
   * The routing hooks of namespace `ns`'s event router (docs/namespaces.md): the same questions (each reads
   * the sender's namespace), and its subscriptions counted under that namespace's interest keys.
   */
  forNamespace(ns: string): ClusterRouting {
    if (ns.length === 0) return this;
    return {
      byName: (sender, frame, at, hashKey, local, targets) => this.byName(sender, frame, at, hashKey, local, targets),
      groupsElsewhere: (sender, event, localGroups) => this.groupsElsewhere(sender, event, localGroups),
      addPeers: (sender, frame, event, targets) => this.addPeers(sender, frame, event, targets),
      pickPeer: (sender, event, localCandidates, targets) => this.pickPeer(sender, event, localCandidates, targets),
      subscriptionChanged: (pattern, group, delta) => this.local.change(namespacedKey(ns, eventKey(pattern, group)), delta),
      fromPeer: isPeer,
      watchersChanged: (event, delta) => this.watchersIn(ns, event, delta),
      peerNotice: (sender, frame) => this.presence.noticeFrom(sender, frame),
      presenceNotice: (subject, event, notice) => this.presenceNotice(subject, event, notice),
      presenceQuery: (sender, event, done) => this.presenceQuery(sender, event, done),
      presenceControl: (sender, frame, local) => this.presenceControl(sender, frame, local),
    };
  }

  // ----- presence across nodes (docs/cluster.md, "Presence") ---------------------------------------------

  fromPeer(session: Session): boolean {
    return isPeer(session);
  }

  watchersChanged(event: string, delta: number): void {
    this.watchersIn('', event, delta);
  }

  /** Local watchers of `event` in `ns` changed: counted into the interest (see scheduleAnnounce). */
  private watchersIn(ns: string, event: string, delta: number): void {
    this.local.change(namespacedKey(ns, watchKey(event)), delta);
  }

  peerNotice(sender: Session, frame: Frame): boolean {
    return this.presence.noticeFrom(sender, frame);
  }

  /** Remote (session, event) memberships remembered now (the gauge socketd_cluster_presence_members). */
  get presenceMembers(): number {
    return this.presence.members.size;
  }

  presenceNotice(subject: Session, event: string, notice: () => Buffer): void {
    this.presence.notice(subject, event, notice);
  }

  presenceQuery(sender: Session, event: string, done: (remote: PresenceEntry[]) => void): boolean {
    return this.presence.query(sender, event, done);
  }

  presenceControl(sender: Session, frame: Frame, local: (event: string) => PresenceEntry[]): void {
    this.presence.control(sender, frame, local);
  }

  // ----- local interest ----------------------------------------------------------------------------------

  sessionOpened(session: Session): void {
    if (session.name.length === 0 || isPeer(session)) return;
    this.named.add(session);
    this.local.change(sessionNameKey(session), 1);
  }

  sessionClosing(session: Session): void {
    if (this.named.delete(session)) this.local.change(sessionNameKey(session), -1);
  }

  sessionClosed(session: Session, wasOpen: boolean): void {
    if (wasOpen) this.sessionClosing(session);
  }

  private scheduleAnnounce(): void {
    if (this.announcePending) return;
    this.announcePending = true;
    setImmediate(() => {
      this.announcePending = false;
      if (this.local.pending === 0) return;
      const changes = this.local.takeChanges();
      // An event no local session watches any more, as announced: the other nodes stop sending its notices, so
      // what is kept of their members of it goes. Not earlier: watched again within the tick, the other nodes
      // see no change (and send no new snapshot), so what is kept must stay.
      for (const [key, count] of changes) {
        if (count !== 0) continue;
        const split = splitNamespacedKey(key);
        const inner = split === null ? key : split[1];
        if (inner.startsWith('p\u0000')) this.presence.unwatched(split === null ? '' : split[0], inner.slice(2));
      }
      this.bus.announce(changes);
    });
  }

  localInterest(): ReadonlyMap<string, number> {
    return this.local.counts;
  }

  // ----- PeerOwner: batches out --------------------------------------------------------------------------

  canSend(bytes: number): boolean {
    return this.bus.canSend(bytes);
  }

  scheduleFlush(connection: PeerConnection): void {
    if (connection.flushScheduled) return;
    connection.flushScheduled = true;
    this.flushQueue.push(connection);
    if (this.flushPending) return;
    this.flushPending = true;
    setImmediate(() => this.flushAll());
  }

  flushNow(connection: PeerConnection): void {
    this.send(connection);
  }

  private flushAll(): void {
    this.flushPending = false;
    const queue = this.flushQueue;
    for (let i = 0; i < queue.length; i++) {
      queue[i].flushScheduled = false;
      this.send(queue[i]);
    }
    queue.length = 0;
  }

  private send(connection: PeerConnection): void {
    if (connection.frames === 0 || connection.closed) return;
    const frames = connection.frames;
    const { chunks, bytes } = connection.take();
    this.bus.send(connection.node, chunks, bytes);
    const counters = this.stats.peer(connection.node);
    counters.framesOut += frames;
    counters.bytesOut += bytes;
  }

  refused(connection: PeerConnection, frame: Buffer): void {
    const link = this.links.get(connection.node);
    const alarm = link === undefined ? null
      : refusalAlarm(frame, `The cluster link to node '${connection.node}' is down or over its backlog`, this.broker!.settings.limits);
    if (alarm === null) {
      ClusterStats.inc(this.stats.dropped, 'link_down');
      return;
    }
    ClusterStats.inc(this.stats.alarms, 'link_down');
    // As if the node had answered: the stream fails through the usual path (spec §5), after this route.
    setImmediate(() => {
      if (!link!.session.closed) link!.session.connectionOnData(alarm);
    });
  }

  incomingAddress(connection: PeerConnection): string {
    const link = this.incomingLink;
    if (link !== null && link.connection === connection && this.incomingHash !== null) return this.incomingHash;
    return `node:${connection.node}`;
  }

  // ----- ClusterBusEvents --------------------------------------------------------------------------------

  peerUp(node: string, incarnation: string): void {
    this.ensureLink(node, incarnation);
  }

  peerDown(node: string, reason: string): void {
    const link = this.links.get(node);
    // Dropped because this node lost its link: the node's last known interest stays, so that sends it would
    // have wanted get an Alarm rather than silence, until the link is back and the node announces again.
    if (link !== undefined) this.dropLink(link, reason, !this.bus.linkUp);
  }

  peerInterest(node: string, incarnation: string, entries: Iterable<[string, number]>, full: boolean): void {
    const link = this.ensureLink(node, incarnation);
    if (link === null) return;
    if (full) this.interest.clear(link);
    for (const [key, count] of entries) {
      const split = splitNamespacedKey(key);
      const inner = split === null ? key : split[1];
      if (!inner.startsWith('p\u0000')) {
        this.interest.apply(link, key, count);
        continue;
      }
      // The node starts watching an event (none of its sessions did): it gets this node's members of it.
      const ns = split === null ? '' : split[0];
      const event = inner.slice(2);
      const before = this.interest.of(ns)?.watchers.get(event)?.get(link) ?? 0;
      this.interest.apply(link, key, count);
      if (before === 0 && count > 0) this.presence.sync(link, ns, event);
    }
  }

  frames(node: string, incarnation: string, batch: Buffer, offset: number): void {
    const link = this.ensureLink(node, incarnation);
    if (link === null) return;
    this.incomingLink = link;
    let frames: number;
    try {
      frames = readRecords(batch, offset, this);
    } finally {
      this.incomingLink = null;
      this.routing.incomingGroups = null;
      this.incomingHash = null;
    }
    if (frames < 0) {
      this.stats.badBatches++;
      this.logger.warn({ event: 'cluster_bad_batch', node, bytes: batch.length - offset }, 'undecodable batch from a peer node: dropped');
      return;
    }
    link.counters.framesIn += frames;
    link.counters.bytesIn += batch.length - offset;
  }

  run(batch: Buffer, start: number, end: number): void {
    this.routing.incomingGroups = null;
    this.incomingHash = null;
    this.incomingLink!.session.connectionOnData(start === 0 && end === batch.length ? batch : batch.subarray(start, end));
  }

  record(groups: string | null, hashKey: string | null, batch: Buffer, start: number, end: number, namespace: string | null): void {
    this.routing.incomingGroups = groups;
    this.incomingHash = hashKey;
    const session = this.incomingLink!.session;
    // Only a frame that opens a route reads the namespace: replies and alarms follow their stream (spec §5).
    const flag = batch[start + 7];
    if (namespace === null || (flag !== Flag.Message && flag !== Flag.Request && flag !== Flag.Subscribe)) {
      session.connectionOnData(batch.subarray(start, end));
      return;
    }
    // The frame routes in its namespace here (docs/namespaces.md): the peer session stands in it for this one
    // frame (routing is synchronous), so names, subscriptions and queue groups are that namespace's.
    const ns = this.broker!.namespaces?.get(namespace);
    if (ns === undefined) {
      this.absentNamespace(session, batch.subarray(start, end), namespace);
      return;
    }
    session.namespace = ns;
    try {
      session.connectionOnData(batch.subarray(start, end));
    } finally {
      session.namespace = null;
    }
  }

  /**
   * A frame for a namespace this node no longer has (its last session left after the origin chose this node):
   * it goes nowhere and is counted; a Request/Subscribe is answered 4004 as a local miss would be (spec §6).
   */
  private absentNamespace(session: Session, bytes: Buffer, namespace: string): void {
    ClusterStats.inc(this.stats.dropped, 'namespace_absent');
    const frame = decodeMessage(bytes, this.broker!.settings.limits);
    if (!(frame instanceof Frame) || (frame.flag !== Flag.Request && frame.flag !== Flag.Subscribe)) return;
    session.sendAlarm(frame.sid, frame.event, frame.metaString, AlarmCode.NoRoute,
      `No namespace '${namespace}' on node '${this.nodeId}' any more`);
  }

  /** Forgets the interest kept of nodes dropped while the link was down (of `node` only, when given). */
  private clearOrphans(node?: string): void {
    if (this.orphans.length === 0) return;
    let kept = 0;
    for (const orphan of this.orphans) {
      if (node === undefined || orphan.node === node) this.interest.clear(orphan);
      else this.orphans[kept++] = orphan;
    }
    this.orphans.length = kept;
  }

  link(up: boolean): void {
    if (up) this.clearOrphans();
    if (up === this.stats.linkUp) return;
    this.stats.linkUp = up;
    if (!up) this.stats.linkDowns++;
    if (up) this.logger.info({ event: 'cluster_link_up', node: this.nodeId }, 'cluster link up');
    else this.logger.warn({ event: 'cluster_link_down', node: this.nodeId }, 'cluster link down: routing among local sessions only');
  }

  // ----- peers -------------------------------------------------------------------------------------------

  /** The link of `node`'s current incarnation, made on first sight; a new incarnation replaces the old. */
  private ensureLink(node: string, incarnation: string): PeerLink | null {
    if (node === this.nodeId) return null;
    let link = this.links.get(node);
    if (link !== undefined && (link.incarnation !== incarnation || link.session.closed)) {
      this.dropLink(link, link.session.closed ? 'peer session closed' : 'restarted (new incarnation)');
      link = undefined;
    }
    if (link !== undefined) return link;
    this.clearOrphans(node);
    const connection = new PeerConnection(this, node, incarnation, this.options.maxBatchBytes);
    const session = peerSession(this.broker!, connection, this.options.peerStreams);
    link = new PeerLink(node, incarnation, connection, session, this.stats.peer(node));
    this.links.set(node, link);
    this.stats.peersUp = this.links.size;
    this.logger.info({ event: 'cluster_peer_up', node, incarnation }, 'peer node up');
    return link;
  }

  private dropLink(link: PeerLink, reason: string, keepInterest = false): void {
    if (this.links.get(link.node) !== link) return;
    this.links.delete(link.node);
    // `$presence` lists waiting on it answer without its members; the watchers here hear its members leave.
    this.presence.gone(link, !this.stopping);
    if (keepInterest) this.orphans.push(link);
    else this.interest.clear(link);
    this.stats.peersUp = this.links.size;
    // Streams waiting on the node fail with 5003, its own requests are forgotten (spec §5).
    link.session.close('peer_down', null, reason, true);
    this.logger.warn({ event: 'cluster_peer_down', node: link.node, reason }, 'peer node down');
  }

  /** Every node with its interest counts and traffic (for /nodez), this one first. */
  summary(): NodeSummary[] {
    const self = { node: this.nodeId, incarnation: this.bus.incarnation, since: this.startedAt };
    return nodeSummaries(self, this.local.counts, this.links.values(), (link) => this.interest.summary(link));
  }
}

/** A named session's interest key, in its own namespace. */
function sessionNameKey(session: Session): string {
  return session.namespace === null ? nameKey(session.name) : namespacedKey(session.namespace.name, nameKey(session.name));
}
