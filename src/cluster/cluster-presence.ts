/**
 * Presence across nodes (docs/cluster.md, "Presence"): join/leave notices sent to the nodes that announced
 * watchers of the event, and `$presence` lists scattered to the nodes holding exact subscriptions to it and
 * gathered with a bounded wait (PresenceQueries). No periodic work: everything happens on a join, a leave or a
 * query.
 */
import type { Logger } from 'pino';
import { encodeFrame } from '../protocol/codec.js';
import { Flag } from '../protocol/flags.js';
import type { Frame } from '../protocol/frame.js';
import type { PresenceEntry } from '../broker/event-router.js';
import type { Session } from '../broker/session.js';
import type { NamespacedInterest } from './interest.js';
import type { PeerLink } from './node.js';
import { PresenceQueries } from './presence.js';
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
}

export class ClusterPresence {
  private readonly queries: PresenceQueries<PeerLink>;

  constructor(
    private readonly host: PresenceHost,
    private readonly stats: ClusterStats,
    private readonly logger: Logger,
    timeoutMs: number,
    maxQueries: number,
  ) {
    this.queries = new PresenceQueries<PeerLink>(timeoutMs, maxQueries);
  }

  /** `link` was dropped: lists waiting on it answer without its members. */
  gone(link: PeerLink): void {
    this.queries.gone(link);
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

