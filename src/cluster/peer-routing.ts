/**
 * Routing of frames to peer nodes (docs/cluster.md, "Routing across nodes"): the answers to the router's
 * questions (src/broker/cluster-seam.ts) about `@` names, events, queue groups and single picks, read from
 * every peer node's announced interest. It owns the per-frame scratch (which links a frame already targets,
 * the groups and envelope fields given to each) and the weighted round-robin cursors. It writes nothing to a
 * peer node itself: a peer node is a target session, and its connection (src/cluster/peer.ts) batches what
 * the router writes to it. (Its one write is the Alarm to a sender whose Message cannot cross, spec §6.)
 * PeerLink, the peer node as routing sees it, lives here too.
 */
import { AlarmCode } from '../protocol/codes.js';
import { Flag } from '../protocol/flags.js';
import type { Frame } from '../protocol/frame.js';
import { AtMode, type AtAddress } from '../broker/at-address.js';
import { rendezvousScore } from '../broker/rendezvous.js';
import type { NameGroup } from '../broker/session-registry.js';
import type { Session } from '../broker/session.js';
import type { QueueGroup } from '../broker/subscription-index.js';
import type { ClusterBus } from './bus.js';
import { weightedTurn, type NamespacedInterest, type RemoteEntry } from './interest.js';
import type { PeerConnection } from './peer.js';
import { ClusterStats, type PeerCounters } from './stats.js';

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

export class PeerRouting {
  private stamp = 0;
  /** Links given groups or an envelope for the current frame: reset at the next hook call. */
  private readonly touched: PeerLink[] = [];
  private readonly skip = new Set<string>();
  private readonly scratch: PeerLink[] = [];
  private readonly weights: number[] = [];
  private readonly cursors = new Map<string, number>();
  /** The queue groups the origin node chose this node to serve, for the record being routed (else null). */
  incomingGroups: string | null = null;

  constructor(
    private readonly bus: ClusterBus,
    /** Every peer node's interest, per namespace. */
    private readonly interest: NamespacedInterest<PeerLink>,
    /** The current link of each peer node (kept by the cluster node). */
    private readonly links: ReadonlyMap<string, PeerLink>,
    private readonly stats: ClusterStats,
  ) {}

  byName(sender: Session, frame: Frame, at: AtAddress, hashKey: string | undefined, local: NameGroup | undefined, targets: Session[]): boolean {
    if (isPeer(sender)) return false;
    this.resetTouched();
    const ns = sender.namespace;
    const remote = ns === null ? this.interest.defaultTable : this.interest.byNamespace.get(ns.name);
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
      let bestScore = members > 0 ? weightedScore(key, this.bus.nodeId, members) : -1;
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
    const remote = ns === null ? this.interest.defaultTable : this.interest.byNamespace.get(ns.name);
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
    const remote = ns === null ? this.interest.defaultTable : this.interest.byNamespace.get(ns.name);
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
    let remote = this.interest.defaultTable;
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

  /** Clears the per-frame tags (groups, `name!` key, namespace) given to links by the last route. */
  resetTouched(): void {
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
}

/** A round-robin cursor's key: the default namespace's keys are unprefixed. */
function cursorKey(ns: { name: string } | null, kind: string, name: string): string {
  return ns === null ? `${kind}\u0000${name}` : `${ns.name}\u0000${kind}\u0000${name}`;
}

/** True for a session that stands for a peer node. */
export function isPeer(session: Session): boolean {
  return session.connection.transport === 'cluster';
}

/** Weighted rendezvous score (-w / ln u): a node's chance to win a key is its share of the weights. */
function weightedScore(key: string, node: string, weight: number): number {
  const u = (rendezvousScore(key, node) + 0.5) / 4294967296;
  return -weight / Math.log(u);
}
