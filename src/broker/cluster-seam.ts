/**
 * What the router and the event router ask of a cluster (docs/cluster.md): which peer nodes a frame goes to.
 * A peer node is represented by one session (its "peer session"), so a frame for a node is a target like any
 * other; the router never learns how frames travel between nodes. Single-node mode passes null: one null
 * check per frame.
 */
import type { Frame } from '../protocol/frame.js';
import type { AtAddress } from './at-address.js';
import type { NameGroup } from './session-registry.js';
import type { Session } from './session.js';
import type { QueueGroup } from './subscription-index.js';
import type { PresenceEntry } from './event-router.js';

export interface ClusterRouting {
  /**
   * `@` addressing (spec §4.1). `name*` and `*`: appends the peer sessions of nodes holding the name (any
   * name) and returns false, the router adds the local members. `name` and `name!`: returns true after pushing
   * the peer session of the node that takes this frame's pick, false when the pick is local. A sender that is
   * a peer session gets false and nothing appended (its node already chose this one).
   */
  byName(sender: Session, frame: Frame, at: AtAddress, hashKey: string | undefined, local: NameGroup | undefined, targets: Session[]): boolean;

  /**
   * Message by event (spec §4.2), called before the local queue-group picks: the names of the matching groups
   * another node serves for this frame (skip them here), or null when every local group is served here.
   */
  groupsElsewhere(sender: Session, event: string, localGroups: readonly QueueGroup<Session>[]): ReadonlySet<string> | null;

  /** Message by event, after the local targets: appends the peer sessions of the nodes that get the frame. */
  addPeers(sender: Session, frame: Frame, event: string, targets: Session[]): void;

  /**
   * Request/Subscribe by event: true after pushing the peer session of the node that takes the single pick,
   * false when it is local (`localCandidates` sessions here match).
   */
  pickPeer(sender: Session, event: string, localCandidates: number, targets: Session[]): boolean;

  /** A local subscription was added (+1) or removed (-1): counted into this node's announced interest. */
  subscriptionChanged(pattern: string, group: string, delta: number): void;

  // ----- presence across nodes (docs/cluster.md, "Presence"; docs/event-routing.md, "Presence") -----------

  /** True for a session that stands for a peer node: its `$` events are the cluster's own. */
  fromPeer(session: Session): boolean;

  /**
   * A local session started (+1) or stopped (-1) watching exact `event` (`presence=1`): counted into this
   * node's interest, so that other nodes forward their join/leave notices of `event` here.
   */
  watchersChanged(event: string, delta: number): void;

  /**
   * `subject` (local) joined or left exact `event`: forwards `notice()` (the `$presence.join`/`.leave`
   * Message) to the nodes that announced watchers of `event` in the subject's namespace. Returns at once
   * when no node watches it (then notice() is not called).
   */
  presenceNotice(subject: Session, event: string, notice: () => Buffer): void;

  /**
   * A `$presence.join` / `$presence.leave` notice from the peer node `sender`, of an event watched here, before
   * it goes to the watchers: the cluster remembers that node's members, so that the watchers here hear them
   * leave when the node is dropped without a word (docs/cluster.md, "Presence"). False: not delivered (the
   * watchers were already told this session left, when its node was dropped).
   */
  peerNotice(sender: Session, frame: Frame): boolean;

  /**
   * A `$presence` list: asks the nodes that hold exact subscriptions to `event` (in the sender's namespace)
   * for their members, and calls `done` with their entries once every one answered or the wait ran out.
   * False (and `done` never called) when no other node holds any: the local list is the whole answer.
   */
  presenceQuery(sender: Session, event: string, done: (remote: PresenceEntry[]) => void): boolean;

  /**
   * A peer node's `$presence.list` (answered with `local(event)`, this namespace's members) or
   * `$presence.answer` (completes a query of this node).
   */
  presenceControl(sender: Session, frame: Frame, local: (event: string) => PresenceEntry[]): void;
}
