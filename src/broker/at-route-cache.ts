/**
 * A sender's last `@` route (spec §4.1), remembered once its meta repeats: a plain client (the reference
 * clients' shape) sends the same `@=name` meta on every Message, and the router then neither decodes the
 * meta, nor parses the address, nor checks the address permission again; the name string it looks up is
 * the same object each time, so its hash is computed once. Only the resolution of targets runs per frame
 * (round robin and group membership change). Switched off with `fastPaths.atRouteCache: false`.
 *
 * Preconditions for an entry: the meta holds `@` and no fragment metas (those differ per fragment), the
 * address parsed and the sender's permissions allowed it (permissions are fixed for a session's life).
 */
import type { AtAddress } from './at-address.js';
import { RouteMeta } from './route-meta.js';

export class AtRouteCache {
  /** The last `@` meta seen from this sender, not yet remembered ('' none). */
  candidate = '';
  /** The remembered meta, its UTF-8 bytes, what it parsed to. Empty until a meta repeats. */
  metaString = '';
  metaBytes: Buffer = Buffer.alloc(0);
  readonly meta = new RouteMeta();
  readonly at: AtAddress = { mode: 0, name: '' };

  /** Remembers `metaString` with its parsed `meta` and `at` (copied). */
  remember(metaString: string, meta: RouteMeta, at: AtAddress): void {
    this.candidate = '';
    this.metaString = metaString;
    this.metaBytes = Buffer.from(metaString, 'utf8');
    const mine = this.meta;
    mine.at = meta.at;
    mine.fragmentIdx = meta.fragmentIdx;
    mine.fragmentTotal = meta.fragmentTotal;
    mine.timeoutMs = meta.timeoutMs;
    mine.hashKey = meta.hashKey;
    this.at.mode = at.mode;
    this.at.name = at.name;
  }
}
