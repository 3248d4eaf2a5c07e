/**
 * Presence across nodes (docs/cluster.md, "Presence"): join/leave notices sent to the nodes that announced
 * watchers of the event, `$presence` lists scattered to the nodes holding exact subscriptions to it and
 * gathered with a bounded wait (PresenceQueries), and the leaves of a dropped node's sessions, told to this
 * node's watchers from what its notices and snapshots said (RemoteMembers). No periodic work: everything
 * happens on a join, a leave, a query, a change of a node's watchers or a node dropped.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { encodeFrame } from '../protocol/codec.js';
import { Flag } from '../protocol/flags.js';
import type { Frame } from '../protocol/frame.js';
import type { PresenceEntry } from '../broker/event-router.js';
import type { Session } from '../broker/session.js';
import type { NamespacedInterest } from './interest.js';
import type { PeerLink } from './peer-routing.js';
import { PresenceQueries } from './presence.js';
import { RemoteMembers, roomKey, splitRoomKey, type RemoteMember } from './remote-members.js';
import { ClusterStats } from './stats.js';

/** What presence needs of its cluster node. */
export interface PresenceHost {
  /** Every peer node's interest, per namespace. */
  readonly interest: NamespacedInterest<PeerLink>;
  linkUp(): boolean;
  /** The current link whose peer session `session` is, else undefined. */
  linkOf(session: Session): PeerLink | undefined;
  /** Largest frame a node accepts (limits.maxFrame): a peer's list above it is left out. */
  maxFrame(): number;
  /** Largest data a frame may carry (limits.maxData): each frame of a snapshot stays below it. */
  maxData(): number;
  /** The presence rooms of namespace `ns` ('' : the default one) on this node; undefined when not in use. */
  rooms(ns: string): PresenceRooms | undefined;
  /** Whether a local session watches the exact `event` of namespace `ns` (`presence=1`). */
  watching(ns: string, event: string): boolean;
}

/** What presence needs of one namespace's event router. */
export interface PresenceRooms {
  /** The local members of exact `event`. */
  presence(event: string): PresenceEntry[];
  /** Hands a join/leave notice (whole frame bytes) to the local watchers of `event`. */
  deliverNotice(event: string, bytes: Buffer): void;
}

/** Nodes whose members' leaves were told here and that may come back (then their members are told joining). */
const GONE_NODES = 256;
/** Bytes of a `$presence.sync` frame besides its data and its event name in meta: head, sid, event, flags. */
const SYNC_OVERHEAD = 64;

export class ClusterPresence {
  private readonly queries: PresenceQueries<PeerLink>;
  /** The members of the events watched here, node by node: the leaves told when a node is dropped. */
  readonly members: RemoteMembers<PeerLink>;
  /**
   * Node id -> rooms whose watchers here heard that node's members leave when it was dropped: if it comes
   * back (link healed, or restarted), its first snapshot of such a room is told as joins. At most GONE_NODES.
   */
  private readonly goneRooms = new Map<string, Set<string>>();
  /**
   * Rooms whose snapshot from a link is being told as joins (between its first and its last frame), with the
   * ids already told joining by that link's notices since it came back (not told twice).
   */
  private readonly healing = new Map<PeerLink, Map<string, ReadonlySet<string>>>();
  private readonly noticePrefix = randomBytes(4).toString('hex');
  private noticeCount = 0;
  private syncCount = 0;

  constructor(
    private readonly host: PresenceHost,
    private readonly stats: ClusterStats,
    private readonly logger: Logger,
    timeoutMs: number,
    maxQueries: number,
    /** Remote (session, event) memberships remembered at most (cluster.presenceMembersMax). */
    maxMembers: number,
  ) {
    this.queries = new PresenceQueries<PeerLink>(timeoutMs, maxQueries);
    this.members = new RemoteMembers<PeerLink>(maxMembers);
  }

  /**
   * `link` was dropped: lists waiting on it answer without its members, and the local watchers hear each of
   * its sessions that was a member of their event leave, once (`tell` false: this node is stopping).
   */
  gone(link: PeerLink, tell = true): void {
    this.queries.gone(link);
    this.healing.delete(link);
    const rooms = this.members.take(link);
    if (rooms === undefined || !tell) return;
    let told = 0;
    const gone = new Set<string>();
    for (const [room, members] of rooms) {
      const [ns, event] = splitRoomKey(room);
      const target = this.host.rooms(ns);
      if (target === undefined || !this.host.watching(ns, event)) continue;
      gone.add(room);
      for (const m of members.values()) {
        target.deliverNotice(event, this.localNotice('$presence.leave', event, m));
        told++;
      }
    }
    if (gone.size > 0) {
      const before = this.goneRooms.get(link.node);
      if (before !== undefined) for (const room of before) gone.add(room);
      this.goneRooms.delete(link.node);
      if (this.goneRooms.size >= GONE_NODES) this.goneRooms.delete(this.goneRooms.keys().next().value as string);
      this.goneRooms.set(link.node, gone);
    }
    if (told > 0) {
      ClusterStats.inc(this.stats.presenceNotices, 'dropped_node_leave', told);
      this.logger.info({ event: 'cluster_presence_node_left', node: link.node, leaves: told }, "a dropped node's members told leaving");
    }
  }

  /** No local session watches `event` of `ns` any more: what was kept of its members goes (notices stop). */
  unwatched(ns: string, event: string): void {
    const room = roomKey(ns, event);
    this.members.forgetRoom(room);
    for (const rooms of this.goneRooms.values()) rooms.delete(room);
  }

  /**
   * `link` started watching `event` of `ns` (its announced watchers went from none to some): it gets this
   * node's members of it, so that it knows whom to tell leaving if this node is dropped. Sent before any
   * notice of the event to that node (one ordered stream), so snapshot and notices compose exactly.
   */
  sync(link: PeerLink, ns: string, event: string): void {
    if (!this.host.linkUp()) return;
    const entries = this.host.rooms(ns)?.presence(event) ?? [];
    const room = `event=${event}`;
    // Every frame within the limits every node shares (docs/cluster.md, "Known limits"): nodes refuse more.
    const budget = Math.min(this.host.maxData(), this.host.maxFrame() - SYNC_OVERHEAD - Buffer.byteLength(event));
    let part: string[] = [];
    let bytes = 2;
    let first = true;
    const flush = (last: boolean): void => {
      const meta = `${room}${first ? '&reset=1' : ''}${last ? '&last=1' : ''}`;
      const frame = encodeFrame({ flag: Flag.Message, sid: `ps${(this.syncCount++).toString(36)}`, event: '$presence.sync', meta, data: `[${part.join(',')}]` });
      sendTagged(link, ns.length === 0 ? null : ns, frame);
      first = false;
      part = [];
      bytes = 2;
    };
    for (const e of entries) {
      const item = JSON.stringify([e.id, e.name]);
      const size = Buffer.byteLength(item) + 1;
      if (size + 2 > budget) continue; // alone above the limits (a tiny limits.maxFrame): left out
      if (bytes + size > budget && part.length > 0) flush(false);
      part.push(item);
      bytes += size;
    }
    flush(true);
  }

  /**
   * ClusterRouting.peerNotice: a peer's join/leave notice of an event watched here, remembered. False for the
   * leave of a session this node already told leaving when the peer was dropped (the peer came back, its
   * snapshot is not in yet): not told twice.
   */
  noticeFrom(sender: Session, frame: Frame): boolean {
    const link = this.host.linkOf(sender);
    const id = frame.meta('id');
    if (link === undefined || id === undefined) return true;
    const room = roomKey(sender.namespace?.name ?? '', frame.meta('event') ?? '');
    if (frame.event !== '$presence.leave') {
      this.remember(link, room, id, frame.meta('name') ?? '');
      return true;
    }
    return this.members.left(link, room, id) || this.goneRooms.get(link.node)?.has(room) !== true;
  }

  private remember(link: PeerLink, room: string, id: string, name: string): boolean {
    if (this.members.joined(link, room, id, name)) return true;
    if (this.members.limit === 0) return false; // switched off: nothing to count
    if (this.stats.presenceMembersRefused++ === 0) {
      this.logger.warn({ event: 'cluster_presence_members_limit', limit: this.members.limit },
        'cluster.presenceMembersMax reached: further members of other nodes are not remembered (no leave told if their node is dropped)');
    }
    return false;
  }

  /** A peer's `$presence.sync` frame: its members of a room watched here (the first frame replaces them). */
  private synced(sender: Session, frame: Frame): void {
    const link = this.host.linkOf(sender);
    if (link === undefined) return;
    const ns = sender.namespace?.name ?? '';
    const event = frame.meta('event') ?? '';
    const room = roomKey(ns, event);
    const watched = this.host.watching(ns, event);
    let healing = this.healing.get(link);
    if (frame.meta('reset') !== undefined) {
      healing?.delete(room);
      // A node whose members were told leaving is back: those still there are told joining (but those its
      // notices told joining since it came back).
      const gone = this.goneRooms.get(link.node);
      if (watched && gone !== undefined && gone.delete(room)) {
        if (gone.size === 0) this.goneRooms.delete(link.node);
        if (healing === undefined) {
          healing = new Map();
          this.healing.set(link, healing);
        }
        healing.set(room, this.members.ids(link, room));
      }
      this.members.reset(link, room);
    }
    if (watched) {
      let entries: unknown = [];
      try {
        entries = JSON.parse(frame.data.toString('utf8'));
      } catch {
        this.logger.warn({ event: 'cluster_bad_presence', node: link.node }, 'undecodable presence snapshot from a peer node');
      }
      const told = healing?.get(room);
      const target = told !== undefined ? this.host.rooms(ns) : undefined;
      if (Array.isArray(entries)) {
        for (const e of entries) {
          if (!Array.isArray(e) || typeof e[0] !== 'string' || typeof e[1] !== 'string') continue;
          if (this.remember(link, room, e[0], e[1]) && target !== undefined && !told!.has(e[0])) {
            target.deliverNotice(event, this.localNotice('$presence.join', event, { id: e[0], name: e[1] }));
            ClusterStats.inc(this.stats.presenceNotices, 'returned_node_join');
          }
        }
      }
    }
    if (frame.meta('last') !== undefined && healing !== undefined && healing.delete(room) && healing.size === 0) this.healing.delete(link);
  }

  /** A join/leave notice made here for a session of another node: the shape its own node sends (spec §4.2). */
  private localNotice(kind: string, event: string, member: RemoteMember): Buffer {
    return encodeFrame({
      flag: Flag.Message,
      sid: `${this.noticePrefix}${(this.noticeCount++).toString(36)}`,
      event: kind,
      meta: `event=${event}&id=${member.id}&name=${member.name}`,
    });
  }

  /** The node stops: every waiting list answers with what arrived. */
  close(): void {
    this.queries.close();
  }

  /** ClusterRouting.presenceNotice: to every node watching `event` in the subject's namespace, once each. */
  notice(subject: Session, event: string, notice: () => Buffer): void {
    const ns = subject.namespace;
    const remote = ns === null ? this.host.interest.defaultTable : this.host.interest.byNamespace.get(ns.name);
    const holders = remote?.watchers.get(event);
    if (holders === undefined || holders.size === 0) return;
    if (!this.host.linkUp()) {
      ClusterStats.inc(this.stats.dropped, 'link_down_presence');
      return;
    }
    const bytes = notice();
    for (const link of holders.keys()) sendTagged(link, ns === null ? null : ns.name, bytes);
  }

  /** ClusterRouting.presenceQuery: the scatter; false when no capable node holds an exact subscription. */
  query(sender: Session, event: string, done: (remote: PresenceEntry[]) => void): boolean {
    const ns = sender.namespace;
    const remote = ns === null ? this.host.interest.defaultTable : this.host.interest.byNamespace.get(ns.name);
    if (remote === undefined) return false;
    // The nodes holding an exact subscription to the event: only they can have members of it.
    const match = remote.index.match(event);
    const asked = new Set<PeerLink>();
    // Nodes of a version without cross-node presence do not answer: they are not asked (their members are
    // left out rather than waited for).
    const capable = this.host.interest.presenceCapable;
    for (const entry of match.subscribers) if (entry.pattern === event && capable.has(entry.link)) asked.add(entry.link);
    for (const group of match.groups) {
      for (const entry of group.members) if (entry.pattern === event && capable.has(entry.link)) asked.add(entry.link);
    }
    if (asked.size === 0) return false;
    if (!this.host.linkUp()) {
      ClusterStats.inc(this.stats.dropped, 'link_down_presence');
      return false;
    }
    const id = this.queries.open(asked, done);
    if (id === null) {
      ClusterStats.inc(this.stats.dropped, 'presence_queries_limit');
      return false;
    }
    const ask = encodeFrame({ flag: Flag.Message, sid: `pq${id}`, event: '$presence.list', meta: `event=${event}&q=${id}` });
    for (const link of asked) sendTagged(link, ns === null ? null : ns.name, ask);
    return true;
  }

  /** ClusterRouting.presenceControl: answers a peer's list query, or takes a peer's answer to one of ours. */
  control(sender: Session, frame: Frame, local: (event: string) => PresenceEntry[]): void {
    const q = frame.meta('q') ?? '';
    if (frame.event === '$presence.list') {
      const entries = local(frame.meta('event') ?? '');
      let answer = encodeFrame({ flag: Flag.Message, sid: `pa${q}`, event: '$presence.answer', meta: `q=${q}`, data: JSON.stringify(entries) });
      if (answer.length > this.host.maxFrame()) {
        // Larger than a frame may be: the origin answers with the members it has, and says so in its log.
        ClusterStats.inc(this.stats.dropped, 'presence_too_large');
        answer = encodeFrame({ flag: Flag.Message, sid: `pa${q}`, event: '$presence.answer', meta: `q=${q}&error=too_large`, data: '[]' });
      }
      const link = this.host.linkOf(sender);
      if (link !== undefined) sendTagged(link, null, answer);
      return;
    }
    if (frame.event === '$presence.answer') {
      const link = this.host.linkOf(sender);
      if (link === undefined) return;
      let entries: PresenceEntry[] = [];
      try {
        const parsed: unknown = JSON.parse(frame.data.toString('utf8'));
        if (Array.isArray(parsed)) entries = parsed as PresenceEntry[];
      } catch {
        this.logger.warn({ event: 'cluster_bad_presence', node: link.node }, 'undecodable presence answer from a peer node');
      }
      if (frame.meta('error') !== undefined) {
        this.logger.warn({ event: 'cluster_presence_too_large', node: link.node }, "a peer node's presence list is larger than a frame: left out");
      }
      this.queries.answered(Number(q), link, entries);
      return;
    }
    if (frame.event === '$presence.sync') {
      this.synced(sender, frame);
      return;
    }
    ClusterStats.inc(this.stats.dropped, 'peer_control_unknown');
  }
}

/**
 * Writes a frame of the cluster's own (presence) to `link`, routed in namespace `ns` there. It can be written
 * in the middle of a route (a session closing during a fan-out leaves its rooms): the tags that route set
 * for its own frame are kept aside and put back.
 */
function sendTagged(link: PeerLink, ns: string | null, frame: Buffer): void {
  const c = link.connection;
  const groups = c.nextGroups;
  const hashKey = c.nextHashKey;
  const namespace = c.nextNamespace;
  c.nextGroups = null;
  c.nextHashKey = null;
  c.nextNamespace = ns;
  link.session.sendControl(frame);
  c.nextGroups = groups;
  c.nextHashKey = hashKey;
  c.nextNamespace = namespace;
}

