/**
 * Counters of one cluster node (docs/cluster.md), read by the metrics (src/metrics/metrics.ts) and /nodez.
 */
export class PeerCounters {
  framesOut = 0;
  bytesOut = 0;
  framesIn = 0;
  bytesIn = 0;
}

export class ClusterStats {
  /** By peer node id; kept after a peer leaves so counters never go backwards. */
  readonly peers = new Map<string, PeerCounters>();
  /** Alarms sent because a frame could not cross to another node, by reason. */
  readonly alarms = new Map<string, number>();
  /** Frames that could not cross to another node and could not be answered (Messages), by reason. */
  readonly dropped = new Map<string, number>();
  /** Presence notices this node made itself for sessions of other nodes (a node dropped or back), by kind. */
  readonly presenceNotices = new Map<string, number>();
  /** Remote memberships not remembered because cluster.presenceMembersMax was reached (their leaves go untold). */
  presenceMembersRefused = 0;
  /** Last Redis round trip (heartbeat publish) in seconds; -1 before the first. */
  redisRttSeconds = -1;
  /** Peer nodes up now. */
  peersUp = 0;
  linkUp = false;
  /** Times the link went down. */
  linkDowns = 0;
  /** Interest resynchronisations (a gap in a node's deltas, a new incarnation, a reconnect). */
  resyncs = 0;
  /** Batches from other nodes that could not be decoded. */
  badBatches = 0;

  peer(node: string): PeerCounters {
    let c = this.peers.get(node);
    if (c === undefined) {
      c = new PeerCounters();
      this.peers.set(node, c);
    }
    return c;
  }

  static inc(map: Map<string, number>, key: string, by = 1): void {
    map.set(key, (map.get(key) ?? 0) + by);
  }
}
