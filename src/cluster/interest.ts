/**
 * Interest (docs/cluster.md): what a node's sessions hold, counted under keys, announced to the other nodes,
 * and the copy of every other node's table that routing consults.
 *
 *   e \0 pattern \0 group   subscriptions to a pattern ('' group: plain)
 *   n \0 name               sessions named `name`
 *   p \0 event              sessions watching the exact `event` (`presence=1`): where join/leave notices go
 *   c \0 presence           (always 1) the node answers `$presence.list` queries; nodes before it do not
 *   s \0 ns \0 key           the same keys of the namespace `ns` (docs/namespaces.md); the default
 *                          namespace's keys carry no prefix, so they are what nodes without namespaces send
 *
 * NUL cannot occur in a pattern, group or name (each is checked at the earliest byte, spec §4), so keys split
 * without escaping.
 */
import { SubscriptionIndex, type Subscription } from '../broker/subscription-index.js';

export function eventKey(pattern: string, group: string): string {
  return `e\u0000${pattern}\u0000${group}`;
}

export function nameKey(name: string): string {
  return `n\u0000${name}`;
}

/** Announced by every node that answers `$presence.list` (docs/cluster.md, "Presence"): a capability. */
export const PRESENCE_CAPABILITY = 'c\u0000presence';

export function watchKey(event: string): string {
  return `p\u0000${event}`;
}

/** `key` qualified by the namespace `ns` ('' : the default one, whose keys stay unprefixed on the wire). */
export function namespacedKey(ns: string, key: string): string {
  return ns.length === 0 ? key : `s\u0000${ns}\u0000${key}`;
}

/** Splits a namespaced key into [namespace, key], or null for a key of the default namespace or a bad one. */
export function splitNamespacedKey(key: string): [string, string] | null {
  if (!key.startsWith('s\u0000')) return null;
  const sep = key.indexOf('\u0000', 2);
  if (sep <= 2) return null;
  return [key.slice(2, sep), key.slice(sep + 1)];
}

/** This node's counts; changes are collected until the node announces them (once per tick). */
export class LocalInterest {
  readonly counts = new Map<string, number>();
  private dirty = new Map<string, number>();

  /** @param changed called on the first change after the last takeChanges() */
  constructor(private readonly changed: () => void) {}

  change(key: string, delta: number): void {
    const count = Math.max(0, (this.counts.get(key) ?? 0) + delta);
    if (count === 0) this.counts.delete(key);
    else this.counts.set(key, count);
    const first = this.dirty.size === 0;
    this.dirty.set(key, count);
    if (first) this.changed();
  }

  get pending(): number {
    return this.dirty.size;
  }

  takeChanges(): Map<string, number> {
    const out = this.dirty;
    this.dirty = new Map();
    return out;
  }
}

/** One node's subscriptions to one (pattern, group), as an entry of the remote trie. */
export class RemoteEntry<L> implements Subscription<RemoteEntry<L>> {
  readonly subscriber: RemoteEntry<L> = this;
  constructor(
    readonly link: L,
    readonly pattern: string,
    readonly group: string,
    public count: number,
  ) {}
}

/** Every peer node's interest. Generic over the peer's representation so it is testable on its own. */
export class RemoteInterest<L> {
  /** Every node's event subscriptions: one entry per (node, pattern, group), each a distinct subscriber. */
  readonly index: SubscriptionIndex<RemoteEntry<L>>;
  private readonly events = new Map<L, Map<string, RemoteEntry<L>>>();
  /** Name -> node -> sessions of that name there. */
  readonly names = new Map<string, Map<L, number>>();
  /** Node -> named sessions there (for `@*`). */
  readonly named = new Map<L, number>();
  /** Exact event -> node -> sessions watching it there (presence notices). */
  readonly watchers = new Map<string, Map<L, number>>();
  /** Node -> events it watches (so that forgetting a node visits only its own). */
  private readonly watching = new Map<L, Set<string>>();

  constructor(cacheSize: number) {
    this.index = new SubscriptionIndex<RemoteEntry<L>>({ cacheSize });
  }

  /** Sets `link`'s count under `key` (0 removes it); returns false for a key this version does not know. */
  apply(link: L, key: string, count: number): boolean {
    if (key.startsWith('e\u0000')) {
      const sep = key.indexOf('\u0000', 2);
      if (sep === -1) return false;
      let mine = this.events.get(link);
      const entry = mine?.get(key);
      if (count > 0) {
        if (entry !== undefined) {
          entry.count = count;
          return true;
        }
        const added = new RemoteEntry(link, key.slice(2, sep), key.slice(sep + 1), count);
        if (mine === undefined) {
          mine = new Map();
          this.events.set(link, mine);
        }
        mine.set(key, added);
        this.index.add(added);
      } else if (entry !== undefined) {
        mine!.delete(key);
        if (mine!.size === 0) this.events.delete(link);
        this.index.remove(entry);
      }
      return true;
    }
    if (key.startsWith('n\u0000')) {
      const name = key.slice(2);
      let holders = this.names.get(name);
      const before = holders?.get(link) ?? 0;
      if (count > 0) {
        if (holders === undefined) {
          holders = new Map();
          this.names.set(name, holders);
        }
        holders.set(link, count);
      } else if (holders !== undefined) {
        holders.delete(link);
        if (holders.size === 0) this.names.delete(name);
      }
      const total = (this.named.get(link) ?? 0) + count - before;
      if (total > 0) this.named.set(link, total);
      else this.named.delete(link);
      return true;
    }
    if (key.startsWith('p\u0000')) {
      const event = key.slice(2);
      let holders = this.watchers.get(event);
      let mine = this.watching.get(link);
      if (count > 0) {
        if (holders === undefined) {
          holders = new Map();
          this.watchers.set(event, holders);
        }
        holders.set(link, count);
        if (mine === undefined) {
          mine = new Set();
          this.watching.set(link, mine);
        }
        mine.add(event);
      } else {
        if (holders !== undefined && holders.delete(link) && holders.size === 0) this.watchers.delete(event);
        if (mine !== undefined && mine.delete(event) && mine.size === 0) this.watching.delete(link);
      }
      return true;
    }
    return false;
  }

  /** Forgets everything `link` announced. */
  clear(link: L): void {
    const mine = this.events.get(link);
    if (mine !== undefined) {
      for (const entry of mine.values()) this.index.remove(entry);
      this.events.delete(link);
    }
    if (this.named.delete(link)) {
      for (const [name, holders] of this.names) {
        if (holders.delete(link) && holders.size === 0) this.names.delete(name);
      }
    }
    const watched = this.watching.get(link);
    if (watched !== undefined) {
      this.watching.delete(link);
      for (const event of watched) {
        const holders = this.watchers.get(event);
        if (holders !== undefined && holders.delete(link) && holders.size === 0) this.watchers.delete(event);
      }
    }
  }

  /** Nothing announced by any node. */
  get empty(): boolean {
    return this.events.size === 0 && this.named.size === 0 && this.watching.size === 0;
  }

  /** Counts of `link`'s table (for /nodez). */
  summary(link: L): { patterns: number; subscriptions: number; names: number; named: number } {
    let subscriptions = 0;
    const mine = this.events.get(link);
    if (mine !== undefined) for (const e of mine.values()) subscriptions += e.count;
    let names = 0;
    for (const holders of this.names.values()) if (holders.has(link)) names++;
    return { patterns: mine?.size ?? 0, subscriptions, names, named: this.named.get(link) ?? 0 };
  }
}

/**
 * Every peer node's interest, namespace by namespace: the default namespace's table (always there) and one
 * table per other namespace some node announced, made on its first key and dropped when it empties.
 */
export class NamespacedInterest<L> {
  readonly byNamespace = new Map<string, RemoteInterest<L>>();
  /** Nodes that announced PRESENCE_CAPABILITY: the only ones a `$presence` list asks. */
  readonly presenceCapable = new Set<L>();

  constructor(
    readonly defaultTable: RemoteInterest<L>,
    /** Match cache size of a namespace's table (each is bounded by it). */
    private readonly cacheSize: number,
  ) {}

  /** The table of namespace `ns` ('' : the default one); undefined when no node announced anything in it. */
  of(ns: string): RemoteInterest<L> | undefined {
    return ns.length === 0 ? this.defaultTable : this.byNamespace.get(ns);
  }

  /** As RemoteInterest.apply, for a key of any namespace. */
  apply(link: L, key: string, count: number): boolean {
    if (key === PRESENCE_CAPABILITY) {
      if (count > 0) this.presenceCapable.add(link);
      else this.presenceCapable.delete(link);
      return true;
    }
    const split = splitNamespacedKey(key);
    if (split === null) return key.startsWith('s\u0000') ? false : this.defaultTable.apply(link, key, count);
    const [ns, inner] = split;
    let table = this.byNamespace.get(ns);
    if (table === undefined) {
      if (count <= 0) return true;
      table = new RemoteInterest<L>(this.cacheSize);
      this.byNamespace.set(ns, table);
    }
    const known = table.apply(link, inner, count);
    if (table.empty) this.byNamespace.delete(ns);
    return known;
  }

  clear(link: L): void {
    this.presenceCapable.delete(link);
    this.defaultTable.clear(link);
    for (const [ns, table] of this.byNamespace) {
      table.clear(link);
      if (table.empty) this.byNamespace.delete(ns);
    }
  }

  /** Counts of `link`'s tables in every namespace (for /nodez). */
  summary(link: L): { patterns: number; subscriptions: number; names: number; named: number } {
    const out = this.defaultTable.summary(link);
    for (const table of this.byNamespace.values()) {
      const s = table.summary(link);
      out.patterns += s.patterns;
      out.subscriptions += s.subscriptions;
      out.names += s.names;
      out.named += s.named;
    }
    return out;
  }
}

/**
 * Weighted round robin: position `cursor` in the sequence where choice i takes weights[i] consecutive turns;
 * returns the index of the choice. Precondition: total is the sum of weights and > 0.
 */
export function weightedTurn(cursor: number, weights: readonly number[], total: number): number {
  let pos = cursor % total;
  for (let i = 0; i < weights.length; i++) {
    if (pos < weights[i]) return i;
    pos -= weights[i];
  }
  return weights.length - 1;
}
