/**
 * What /nodez and the admin page's nodes view show of the cluster (docs/cluster.md): every node with its
 * interest counts (every namespace summed) and the traffic exchanged with it, this node first.
 */
import type { PeerCounters } from './stats.js';

export interface NodeSummary {
  node: string;
  incarnation: string;
  self: boolean;
  since: string;
  patterns: number;
  subscriptions: number;
  names: number;
  named: number;
  framesOut: number;
  bytesOut: number;
  framesIn: number;
  bytesIn: number;
}

interface LinkView {
  readonly node: string;
  readonly incarnation: string;
  readonly since: number;
  readonly counters: PeerCounters;
}

type Counts = { patterns: number; subscriptions: number; names: number; named: number };

/**
 * `local`: this node's interest counts by key (any namespace, `s\0ns\0` prefixed or not); `remote(link)`:
 * a peer's counts.
 */
export function nodeSummaries<L extends LinkView>(self: { node: string; incarnation: string; since: number },
  local: ReadonlyMap<string, number>, links: Iterable<L>, remote: (link: L) => Counts): NodeSummary[] {
  let patterns = 0;
  let subscriptions = 0;
  let names = 0;
  let named = 0;
  for (const [fullKey, count] of local) {
    const key = fullKey.charCodeAt(0) === 115 /* s */ ? fullKey.slice(fullKey.indexOf('\u0000', 2) + 1) : fullKey;
    if (key.charCodeAt(0) === 101 /* e */) {
      patterns++;
      subscriptions += count;
    } else if (key.charCodeAt(0) === 110 /* n */) {
      names++;
      named += count;
    }
  }
  const out: NodeSummary[] = [{
    node: self.node, incarnation: self.incarnation, self: true, since: new Date(self.since).toISOString(),
    patterns, subscriptions, names, named, framesOut: 0, bytesOut: 0, framesIn: 0, bytesIn: 0,
  }];
  for (const link of links) {
    const c = link.counters;
    out.push({
      node: link.node, incarnation: link.incarnation, self: false, since: new Date(link.since).toISOString(),
      ...remote(link), framesOut: c.framesOut, bytesOut: c.bytesOut, framesIn: c.framesIn, bytesIn: c.bytesIn,
    });
  }
  return out;
}
