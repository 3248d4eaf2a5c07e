/**
 * One node of a cluster (docs/cluster.md): answers the router's questions about peer nodes (ClusterRouting),
 * counts and announces this node's interest, keeps a peer session per other node, and moves frame batches
 * through the ClusterBus. The router never learns what the bus is.
 */
import type { Logger } from 'pino';
import { AlarmCode } from '../protocol/codes.js';
import { Flag } from '../protocol/flags.js';
import { Frame } from '../protocol/frame.js';
import { AtMode, type AtAddress } from '../broker/at-address.js';
import type { Broker, SessionObserver } from '../broker/broker.js';
import type { ClusterRouting } from '../broker/cluster-seam.js';
import { rendezvousScore } from '../broker/rendezvous.js';
import type { NameGroup } from '../broker/session-registry.js';
import { SessionState, type Session } from '../broker/session.js';
import type { QueueGroup } from '../broker/subscription-index.js';
import type { ClusterBus, ClusterBusEvents } from './bus.js';
import { LocalInterest, NamespacedInterest, RemoteInterest, eventKey, nameKey, namespacedKey, splitNamespacedKey, watchKey, weightedTurn, PRESENCE_CAPABILITY, type RemoteEntry } from './interest.js';
import type { PresenceEntry } from '../broker/event-router.js';
import { ClusterPresence } from './cluster-presence.js';
import { PeerConnection, peerSession, refusalAlarm, type PeerOwner } from './peer.js';
import { readRecords, type RecordVisitor } from './records.js';
import { decodeMessage } from '../protocol/codec.js';
import { ClusterStats, type PeerCounters } from './stats.js';
import { nodeSummaries, type NodeSummary } from './summary.js';

export type { NodeSummary } from './summary.js';

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

/** A peer node: its session and connection here, its counters and the routing scratch of the current frame. */
export class PeerLink {
  /** Routing stamp: the link was already made a target of the current frame. */
  mark = 0;
  /** Queue groups this node serves for the current Message (groupsElsewhere -> addPeers). */
  groups: string[] | null = null;
  /** Weight scratch of the current pick. */
  weight = 0;
  readonly since = Date.now();

  constructor(
    readonly node: string,
    readonly incarnation: string,
    readonly connection: PeerConnection,
    readonly session: Session,
    readonly counters: PeerCounters,
  ) {}
}

/** Round-robin cursors kept per name, event or group: past this many the oldest is forgotten. */
const CURSORS = 4096;
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
  private stamp = 0;
  /** Links given groups or an envelope for the current frame: reset at the next hook call. */
  private readonly touched: PeerLink[] = [];
  private readonly skip = new Set<string>();
  private readonly scratch: PeerLink[] = [];
  private readonly weights: number[] = [];
  private readonly cursors = new Map<string, number>();
  // The record being routed (frames from a peer node).
  private incomingLink: PeerLink | null = null;
  private incomingGroups: string | null = null;
  private incomingHash: string | null = null;
  private readonly startedAt = Date.now();
  /** Presence across nodes: notices out, `$presence` lists scattered and gathered. */
  private readonly presence: ClusterPresence;
  /** stop() began: dropping the links tells no local watcher of leaves (they are gone or going too). */
  private stopping = false;

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
    this.presence = new ClusterPresence({
      interest: this.interest,
      linkUp: () => this.bus.linkUp,
      linkOf: (session) => {
        const link = this.links.get((session.connection as PeerConnection).node);
        return link !== undefined && link.session === session ? link : undefined;
      },
      maxFrame: () => this.broker!.settings.limits.maxFrame,
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

  // ----- ClusterRouting: the router's questions ----------------------------------------------------------

  byName(sender: Session, frame: Frame, at: AtAddress, hashKey: string | undefined, local: NameGroup | undefined, targets: Session[]): boolean {
    if (isPeer(sender)) return false;
    this.resetTouched();
    const ns = sender.namespace;
    const remote = ns === null ? this.remote : this.interest.byNamespace.get(ns.name);
    if (remote === undefined) return false;
    if (at.mode === AtMode.Everyone || at.mode === AtMode.All) {
      const holders = at.mode === AtMode.Everyone ? remote.named : remote.names.get(at.name);
      if (holders === undefined || holders.size === 0) return false;
      if (!this.bus.linkUp) {
        this.linkDownAlarm(sender, frame, holders.size);
        return false;
      }
      for (const link of holders.keys()) {
        if (ns !== null) this.tagNamespace(link, ns.name);
        targets.push(link.session);
      }
      return false;
    }
    const holders = remote.names.get(at.name);
    // Link down: only local members are reachable (none: the router answers 4004).
    if (holders === undefined || holders.size === 0 || !this.bus.linkUp) {
      if (holders !== undefined && holders.size > 0) ClusterStats.inc(this.stats.dropped, 'link_down_name');
      return false;
    }
    const members = local === undefined ? 0 : local.members.length - (sender.name === at.name ? 1 : 0);
    if (at.mode === AtMode.Hash) {
      // Weighted rendezvous over the nodes (docs/cluster.md), then the node's own rendezvous over its members.
      const key = hashKey !== undefined && hashKey.length > 0 ? hashKey : sender.connection.remoteAddress;
      let best: PeerLink | null = null;
      let bestScore = members > 0 ? weightedScore(key, this.nodeId, members) : -1;
      for (const [link, count] of holders) {
        const score = weightedScore(key, link.node, count);
        if (score > bestScore) {
          best = link;
          bestScore = score;
        }
      }
      if (best === null) return false;
      if (hashKey === undefined || hashKey.length === 0) {
        best.connection.nextHashKey = key;
        this.touched.push(best);
      }
      if (ns !== null) this.tagNamespace(best, ns.name);
      targets.push(best.session);
      return true;
    }
    // Round robin with fair shares: the local node and each peer node take turns by their member counts.
    const links = this.scratch;
    const weights = this.weights;
    links.length = 0;
    weights.length = 0;
    weights.push(members);
    let total = members;
    for (const [link, count] of holders) {
      links.push(link);
      weights.push(count);
      total += count;
    }
    const choice = weightedTurn(this.nextCursor(cursorKey(ns, 'n', at.name)), weights, total);
    if (choice === 0) return false;
    if (ns !== null) this.tagNamespace(links[choice - 1], ns.name);
    targets.push(links[choice - 1].session);
    return true;
  }

  groupsElsewhere(sender: Session, event: string, localGroups: readonly QueueGroup<Session>[]): ReadonlySet<string> | null {
    this.resetTouched();
    const skip = this.skip;
    skip.clear();
    if (isPeer(sender)) {
      // The origin chose which node serves each group; this node serves the ones it was given.
      if (localGroups.length === 0) return null;
      const served = this.incomingGroups === null ? null : this.incomingGroups.split('\n');
      for (const g of localGroups) if (served === null || !served.includes(g.name)) skip.add(g.name);
      return skip.size === 0 ? null : skip;
    }
    if (!this.bus.linkUp) return null;
    const ns = sender.namespace;
    const remote = ns === null ? this.remote : this.interest.byNamespace.get(ns.name);
    if (remote === undefined) return null;
    const match = remote.index.match(event);
    if (match.groups.length === 0) return null;
    const links = this.scratch;
    const weights = this.weights;
    for (const group of match.groups) {
      const localGroup = localGroups.find((g) => g.name === group.name);
      const members = localGroup === undefined ? 0 : localGroup.members.length - (localGroup.members.includes(sender) ? 1 : 0);
      const total = this.weigh(group.members, members);
      if (total === 0) continue;
      const choice = weightedTurn(this.nextCursor(cursorKey(ns, 'g', group.name)), weights, total);
      if (choice === 0) continue;
      const link = links[choice - 1];
      skip.add(group.name);
      if (link.groups === null) {
        link.groups = [];
        this.touched.push(link);
      }
      link.groups.push(group.name);
    }
    return skip.size === 0 ? null : skip;
  }

  addPeers(sender: Session, frame: Frame, event: string, targets: Session[]): void {
    if (isPeer(sender)) return;
    const ns = sender.namespace;
    const remote = ns === null ? this.remote : this.interest.byNamespace.get(ns.name);
    if (remote === undefined) return;
    const match = remote.index.match(event);
    if (match.subscribers.length === 0 && this.touched.length === 0) {
      if (match.groups.length > 0 && !this.bus.linkUp) this.linkDownAlarm(sender, frame, match.groups.length);
      return;
    }
    if (!this.bus.linkUp) {
      this.linkDownAlarm(sender, frame, match.subscribers.length + match.groups.length);
      return;
    }
    const stamp = ++this.stamp;
    const touched = this.touched;
    const grouped = touched.length;
    for (let i = 0; i < grouped; i++) {
      const link = touched[i];
      if (link.groups === null) continue;
      link.connection.nextGroups = link.groups.join('\n');
    }
    for (const entry of match.subscribers) {
      const link = entry.link;
      if (link.mark === stamp) continue;
      link.mark = stamp;
      if (ns !== null) this.tagNamespace(link, ns.name);
      targets.push(link.session);
    }
    for (let i = 0; i < grouped; i++) {
      const link = touched[i];
      if (link.groups === null || link.mark === stamp) continue;
      link.mark = stamp;
      if (ns !== null) this.tagNamespace(link, ns.name);
      targets.push(link.session);
    }
  }

  pickPeer(sender: Session, event: string, localCandidates: number, targets: Session[]): boolean {
    if (isPeer(sender)) return false;
    const ns = sender.namespace;
    // A tag left by a route whose frame was never written (a refused stream) must not reach this one.
    this.resetTouched();
    let remote = this.remote;
    if (ns !== null) {
      const table = this.interest.byNamespace.get(ns.name);
      if (table === undefined) return false;
      remote = table;
    }
    const match = remote.index.match(event);
    if (match.subscribers.length === 0 && match.groups.length === 0) return false;
    // Link down: local candidates only (none: the router answers 4004).
    if (!this.bus.linkUp) {
      ClusterStats.inc(this.stats.dropped, 'link_down_request');
      return false;
    }
    const weights = this.weights;
    let total = this.weigh(match.subscribers, localCandidates);
    for (const group of match.groups) total += this.weighMore(group.members);
    if (total === localCandidates) return false;
    const choice = weightedTurn(this.nextCursor(cursorKey(ns, 'r', event)), weights, total);
    if (choice === 0) return false;
    if (ns !== null) this.tagNamespace(this.scratch[choice - 1], ns.name);
    targets.push(this.scratch[choice - 1].session);
    return true;
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

  peerNotice(sender: Session, frame: Frame): void {
    this.presence.noticeFrom(sender, frame);
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

  /** The next frame written to `link` routes in namespace `ns` there; reset with the other per-frame fields. */
  private tagNamespace(link: PeerLink, ns: string): void {
    link.connection.nextNamespace = ns;
    this.touched.push(link);
  }

  /** Fills scratch/weights with [local, ...links] from `entries` (counts summed per node); returns the total. */
  private weigh(entries: readonly RemoteEntry<PeerLink>[], local: number): number {
    const links = this.scratch;
    const weights = this.weights;
    links.length = 0;
    weights.length = 0;
    weights.push(local);
    const stamp = ++this.stamp;
    for (const link of this.links.values()) link.weight = 0;
    let total = local;
    for (const entry of entries) {
      const link = entry.link;
      if (link.mark !== stamp) {
        link.mark = stamp;
        links.push(link);
      }
      link.weight += entry.count;
      total += entry.count;
    }
    for (let i = 0; i < links.length; i++) weights.push(links[i].weight);
    return total;
  }

  /** Adds `entries` to the weights weigh() started (same stamp); returns the count added. */
  private weighMore(entries: readonly RemoteEntry<PeerLink>[]): number {
    const links = this.scratch;
    const weights = this.weights;
    const stamp = this.stamp;
    let added = 0;
    for (const entry of entries) {
      const link = entry.link;
      if (link.mark !== stamp) {
        link.mark = stamp;
        link.weight = 0;
        links.push(link);
        weights.push(0);
      }
      weights[links.indexOf(link) + 1] += entry.count;
      added += entry.count;
    }
    return added;
  }

  private nextCursor(key: string): number {
    const cursors = this.cursors;
    let cursor = cursors.get(key);
    if (cursor === undefined) {
      cursor = 0;
      if (cursors.size >= CURSORS) cursors.delete(cursors.keys().next().value as string);
    }
    cursors.set(key, (cursor + 1) % 0x40000000);
    return cursor;
  }

  private resetTouched(): void {
    const touched = this.touched;
    if (touched.length === 0) return;
    for (const link of touched) {
      link.groups = null;
      link.connection.nextGroups = null;
      link.connection.nextHashKey = null;
      link.connection.nextNamespace = null;
    }
    touched.length = 0;
  }

  /** A Message some peer nodes wanted could not cross (the link is down): the sender is told (spec §6). */
  private linkDownAlarm(sender: Session, frame: Frame, nodes: number): void {
    ClusterStats.inc(this.stats.alarms, 'link_down');
    if (frame.flag !== Flag.Message) return; // Requests are answered by the router (4004) or their stream
    sender.sendAlarm(frame.sid, frame.event, frame.metaString, AlarmCode.ResponderGone,
      `Not delivered to other nodes (${nodes} interested): the cluster link is down`);
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
      this.incomingGroups = null;
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
    this.incomingGroups = null;
    this.incomingHash = null;
    this.incomingLink!.session.connectionOnData(start === 0 && end === batch.length ? batch : batch.subarray(start, end));
  }

  record(groups: string | null, hashKey: string | null, batch: Buffer, start: number, end: number, namespace: string | null): void {
    this.incomingGroups = groups;
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

/** A round-robin cursor's key: the default namespace's keys are unprefixed. */
function cursorKey(ns: { name: string } | null, kind: string, name: string): string {
  return ns === null ? `${kind}\u0000${name}` : `${ns.name}\u0000${kind}\u0000${name}`;
}

/** A named session's interest key, in its own namespace. */
function sessionNameKey(session: Session): string {
  return session.namespace === null ? nameKey(session.name) : namespacedKey(session.namespace.name, nameKey(session.name));
}

function isPeer(session: Session): boolean {
  return session.connection.transport === 'cluster';
}

/** Weighted rendezvous score (-w / ln u): a node's chance to win a key is its share of the weights. */
function weightedScore(key: string, node: string, weight: number): number {
  const u = (rendezvousScore(key, node) + 0.5) / 4294967296;
  return -weight / Math.log(u);
}
