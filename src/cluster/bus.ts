/**
 * The seam between a cluster node and whatever carries its traffic to the other nodes (docs/cluster.md): a
 * few methods in the spirit of Socket.IO's adapter. MemoryBus joins Broker instances of one process (tests);
 * RedisBus joins processes over Redis. Everything above it is the same code for both.
 */

/** What a bus tells its node. Calls come from the bus's own callbacks, never from inside a bus method. */
export interface ClusterBusEvents {
  /** A node appeared, or reappeared under a new incarnation (the old one is gone: peerDown came first). */
  peerUp(node: string, incarnation: string): void;
  /** A node left, was silent past the node timeout, or this node lost its link to every other. */
  peerDown(node: string, reason: string): void;
  /**
   * A node's interest: counts by interest key (0 = gone). `full`: the node's whole table, replacing what was
   * known of it.
   */
  peerInterest(node: string, incarnation: string, entries: Iterable<[string, number]>, full: boolean): void;
  /** A batch of frame records a node sent to this one (see src/cluster/records.ts). */
  frames(node: string, incarnation: string, batch: Buffer, offset: number): void;
  /** The link to the other nodes came up or went down (Redis reachable or not). */
  link(up: boolean): void;
  /** This node's whole interest table, for a full re-announce (after a reconnect). */
  localInterest(): ReadonlyMap<string, number>;
}

export interface ClusterBus {
  readonly nodeId: string;
  /** A random id of this process run: a node restarted under the same nodeId is a new peer. */
  readonly incarnation: string;
  /** True while frames can reach the other nodes. */
  readonly linkUp: boolean;
  /** Joins the cluster; resolves once this node can send and receive (or, for Redis, keeps trying). */
  start(events: ClusterBusEvents): Promise<void>;
  /** Interest keys whose count changed since the last call (absolute counts, 0 = gone); called once per tick. */
  announce(changes: ReadonlyMap<string, number>): void;
  /**
   * Whether a frame of `bytes` may be queued for `node` now: the link is up and the backlog towards the other
   * nodes is below its cap (principle 3). A frame refused here is answered by the caller, never queued.
   */
  canSend(bytes: number): boolean;
  /** Sends one batch of frame records (`chunks`, `bytes` in all) to `node`; called at most once per tick per node. */
  send(node: string, chunks: readonly Buffer[], bytes: number): void;
  /** Leaves the cluster: the other nodes drop this one at once. */
  stop(): Promise<void>;
}
