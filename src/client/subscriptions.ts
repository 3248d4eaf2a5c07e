/**
 * The client's local subscriptions (spec §4.2, docs/client.md "Subscribe and send"): the handlers registered
 * with on(), indexed for dispatch (exact patterns by event, wildcard patterns in a list) and by broker
 * subscription (`pattern \0 group`: several local handlers may share one `$sub`), and the `$sub` meta that
 * (re)creates one at the broker. Separate from client.ts: it is the state the client re-subscribes from after
 * a reconnect, and the index incoming frames are matched against.
 */
import { isExactPattern } from './pattern.js';
import type { MessageHandler, Subscription } from './options.js';

/** What a subscription needs from its client. */
export interface SubscriptionOwner {
  /** @internal Removes the handler; sends `$unsub` when it was the last one of its broker subscription. */
  _unsubscribe(sub: LocalSubscription): Promise<void>;
}

export class LocalSubscription implements Subscription {
  readonly tokens: readonly string[];
  readonly exact: boolean;
  readonly key: string;
  active = true;

  constructor(
    private readonly client: SubscriptionOwner,
    readonly pattern: string,
    readonly group: string | undefined,
    readonly presence: boolean,
    readonly handler: MessageHandler,
  ) {
    this.tokens = pattern.split('.');
    this.exact = isExactPattern(pattern);
    this.key = subscriptionKey(pattern, group);
  }

  off(): Promise<void> {
    return this.client._unsubscribe(this);
  }
}

/** The key of a broker subscription: its pattern, and its queue group when there is one. */
export function subscriptionKey(pattern: string, group: string | undefined): string {
  return group === undefined || group.length === 0 ? pattern : `${pattern}\u0000${group}`;
}

/** The meta of the `$sub` (or `$unsub`) control Request for a pattern (docs/protocol.md). */
export function subMeta(pattern: string, group: string | undefined, presence: boolean): string {
  let meta = `event=${pattern}`;
  if (group !== undefined && group.length > 0) meta += `&group=${group}`;
  if (presence) meta += '&presence=1';
  return meta;
}

/**
 * The handlers, copy-on-write: a handler may subscribe or unsubscribe while a frame is dispatched over the
 * lists it was read from.
 */
export class SubscriptionTable {
  /** Subscriptions by `pattern \0 group` (several local handlers may share one broker subscription). */
  private readonly byKey = new Map<string, LocalSubscription[]>();
  /** Exact patterns by event, wildcard patterns in a list; both copy-on-write (handlers may unsubscribe). */
  private readonly exact = new Map<string, LocalSubscription[]>();
  private wildList: LocalSubscription[] = [];

  /** The handlers sharing the broker subscription `key`. */
  get(key: string): readonly LocalSubscription[] | undefined {
    return this.byKey.get(key);
  }

  has(key: string): boolean {
    return this.byKey.has(key);
  }

  /** Every broker subscription, as the list of its local handlers (never empty). */
  groups(): IterableIterator<readonly LocalSubscription[]> {
    return this.byKey.values();
  }

  /** The handlers of exactly `event`. */
  exactOf(event: string): readonly LocalSubscription[] | undefined {
    return this.exact.get(event);
  }

  /** The handlers of wildcard patterns. */
  get wild(): readonly LocalSubscription[] {
    return this.wildList;
  }

  add(sub: LocalSubscription): void {
    const list = this.byKey.get(sub.key);
    this.byKey.set(sub.key, list === undefined ? [sub] : [...list, sub]);
    if (sub.exact) {
      const same = this.exact.get(sub.pattern);
      this.exact.set(sub.pattern, same === undefined ? [sub] : [...same, sub]);
    } else {
      this.wildList = [...this.wildList, sub];
    }
  }

  /** Removes `sub` once (it is then inactive). */
  remove(sub: LocalSubscription): void {
    if (!sub.active) return;
    sub.active = false;
    const list = this.byKey.get(sub.key)?.filter((s) => s !== sub) ?? [];
    if (list.length === 0) this.byKey.delete(sub.key);
    else this.byKey.set(sub.key, list);
    if (sub.exact) {
      const same = this.exact.get(sub.pattern)?.filter((s) => s !== sub) ?? [];
      if (same.length === 0) this.exact.delete(sub.pattern);
      else this.exact.set(sub.pattern, same);
    } else {
      this.wildList = this.wildList.filter((s) => s !== sub);
    }
  }
}
