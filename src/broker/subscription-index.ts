/**
 * Event subscriptions (spec §4.2): a token trie over `.`-separated events, where a pattern token `*` matches
 * exactly one token and a last token `>` matches one or more trailing tokens.
 *
 * A match returns the distinct plain subscribers and the queue groups. Groups are keyed by name across
 * patterns (as in NATS): `orders.*` and `orders.>` subscribers in group `w` share one group.
 *
 * Matches are cached per event in a bounded map that every change clears (a fast path that can be switched
 * off with cacheSize 0, principle 8). Generic over the subscriber type so it is testable on its own.
 */
import { emptyScratch } from './scratch-list.js';

export interface Subscription<T> {
  readonly subscriber: T;
  readonly pattern: string;
  /** Queue group name, '' for none. */
  readonly group: string;
}

export interface QueueGroup<T> {
  readonly name: string;
  /** Distinct members whose subscriptions in this group match. */
  readonly members: readonly T[];
}

export interface MatchResult<T> {
  /** Distinct subscribers through non-group subscriptions. */
  readonly subscribers: readonly T[];
  readonly groups: readonly QueueGroup<T>[];
}

const EMPTY_RESULT: MatchResult<never> = Object.freeze({ subscribers: Object.freeze([]), groups: Object.freeze([]) });

class TrieNode<T> {
  literal: Map<string, TrieNode<T>> | null = null;
  star: TrieNode<T> | null = null;
  /** Subscriptions whose pattern ends at this node. */
  subs: Subscription<T>[] | null = null;
  /** Subscriptions whose pattern ends with `>` right after this node. */
  tail: Subscription<T>[] | null = null;

  isEmpty(): boolean {
    return this.literal === null && this.star === null && this.subs === null && this.tail === null;
  }
}

// The grammar lives in src/protocol so the client applies the same rules.
export { patternProblem, isExactPattern } from '../protocol/event-pattern.js';

export interface SubscriptionIndexOptions {
  /** Events whose match results are cached; 0 switches the cache off. */
  cacheSize: number;
}

export class SubscriptionIndex<T> {
  private readonly root = new TrieNode<T>();
  private readonly cache = new Map<string, MatchResult<T>>();
  private readonly cacheSize: number;
  private count = 0;
  /** Scratch state for one match (the index is used from one thread). */
  private readonly found: Subscription<T>[] = [];

  constructor(options: SubscriptionIndexOptions = { cacheSize: 4096 }) {
    this.cacheSize = options.cacheSize;
  }

  get size(): number {
    return this.count;
  }

  get cachedEvents(): number {
    return this.cache.size;
  }

  /**
   * Adds a subscription. Precondition: patternProblem(sub.pattern) === null and the same
   * (subscriber, pattern, group) is not already present (the caller keeps per-subscriber bookkeeping).
   */
  add(sub: Subscription<T>): void {
    let node = this.root;
    const tokens = sub.pattern.split('.');
    const last = tokens.length - 1;
    for (let i = 0; i <= last; i++) {
      const token = tokens[i];
      if (i === last && token === '>') {
        (node.tail ??= []).push(sub);
        this.changed(1);
        return;
      }
      if (token === '*') node = node.star ??= new TrieNode<T>();
      else {
        const literal = (node.literal ??= new Map());
        let child = literal.get(token);
        if (child === undefined) {
          child = new TrieNode<T>();
          literal.set(token, child);
        }
        node = child;
      }
    }
    (node.subs ??= []).push(sub);
    this.changed(1);
  }

  /** Removes a subscription added before (by identity); returns false if it was not there. */
  remove(sub: Subscription<T>): boolean {
    const tokens = sub.pattern.split('.');
    const path: TrieNode<T>[] = [this.root];
    let node = this.root;
    const last = tokens.length - 1;
    let list: Subscription<T>[] | null = null;
    let inTail = false;
    for (let i = 0; i <= last; i++) {
      const token = tokens[i];
      if (i === last && token === '>') {
        list = node.tail;
        inTail = true;
        break;
      }
      const next: TrieNode<T> | null | undefined = token === '*' ? node.star : node.literal?.get(token);
      if (next === null || next === undefined) return false;
      node = next;
      path.push(node);
    }
    if (!inTail) list = node.subs;
    if (list === null) return false;
    const at = list.indexOf(sub);
    if (at === -1) return false;
    list.splice(at, 1);
    if (list.length === 0) {
      if (inTail) node.tail = null;
      else node.subs = null;
    }
    this.prune(path, tokens);
    this.changed(-1);
    return true;
  }

  /** The subscribers of `event`. Precondition: `event` is a concrete event (no wildcards). */
  match(event: string): MatchResult<T> {
    if (this.cacheSize > 0) {
      const hit = this.cache.get(event);
      if (hit !== undefined) return hit;
    }
    const found = this.found;
    emptyScratch(found);
    collect(this.root, event, 0, found);
    const result = found.length === 0 ? (EMPTY_RESULT as MatchResult<T>) : summarize(found);
    emptyScratch(found);
    if (this.cacheSize > 0) {
      // Full: start over. (Evicting the oldest entry via cache.keys().next() costs O(deleted slots) per miss in
      // V8, which made a miss-heavy stream several times slower with the cache on than off.)
      if (this.cache.size >= this.cacheSize) this.cache.clear();
      this.cache.set(event, result);
    }
    return result;
  }

  /** Every change invalidates every cached match. */
  private changed(delta: number): void {
    this.count += delta;
    if (this.cache.size > 0) this.cache.clear();
  }

  /** Removes nodes left empty along a removed subscription's path, deepest first. */
  private prune(path: TrieNode<T>[], tokens: string[]): void {
    for (let i = path.length - 1; i > 0; i--) {
      const node = path[i];
      if (!node.isEmpty()) return;
      const parent = path[i - 1];
      const token = tokens[i - 1];
      if (token === '*') parent.star = null;
      else if (parent.literal !== null) {
        parent.literal.delete(token);
        if (parent.literal.size === 0) parent.literal = null;
      }
    }
  }
}

/**
 * Walks the trie for `event` from `start` (a char offset at a token boundary), pushing every matching
 * subscription. Tokens are sliced as needed; no array of tokens is built.
 */
function collect<T>(node: TrieNode<T>, event: string, start: number, out: Subscription<T>[]): void {
  if (start > event.length) {
    if (node.subs !== null) for (const s of node.subs) out.push(s);
    return;
  }
  // `>` needs at least one more token: there is one, since start <= length.
  if (node.tail !== null) for (const s of node.tail) out.push(s);
  let end = event.indexOf('.', start);
  if (end === -1) end = event.length;
  if (node.literal !== null) {
    const child = node.literal.get(event.slice(start, end));
    if (child !== undefined) collect(child, event, end + 1, out);
  }
  if (node.star !== null) collect(node.star, event, end + 1, out);
}

function summarize<T>(found: readonly Subscription<T>[]): MatchResult<T> {
  const subscribers: T[] = [];
  let groups: { name: string; members: T[] }[] | null = null;
  let seen: Set<T> | null = null;
  for (const sub of found) {
    if (sub.group.length === 0) {
      if (found.length > 1) {
        seen ??= new Set();
        if (seen.has(sub.subscriber)) continue;
        seen.add(sub.subscriber);
      }
      subscribers.push(sub.subscriber);
      continue;
    }
    groups ??= [];
    let group = groups.find((g) => g.name === sub.group);
    if (group === undefined) {
      group = { name: sub.group, members: [] };
      groups.push(group);
    }
    if (!group.members.includes(sub.subscriber)) group.members.push(sub.subscriber);
  }
  return { subscribers, groups: groups ?? [] };
}
