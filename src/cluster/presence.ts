/**
 * `$presence` lists across nodes (docs/cluster.md, "Presence"): the queries this node scattered to the nodes
 * holding exact subscriptions to an event, each waiting for those nodes' members. A query ends when every node
 * asked has answered or left, or when its wait runs out (then it answers with what arrived). One timer per
 * query, never per session; the number of queries waiting at once is bounded.
 */
import type { PresenceEntry } from '../broker/event-router.js';

interface Query<L> {
  waiting: Set<L>;
  entries: PresenceEntry[];
  done: (remote: PresenceEntry[]) => void;
  timer: NodeJS.Timeout;
}

export class PresenceQueries<L> {
  private readonly open_ = new Map<number, Query<L>>();
  private nextId = 1;

  constructor(
    /** How long a query waits for the nodes asked. */
    private readonly timeoutMs: number,
    /** Queries waiting at once at most: past it open() refuses (the caller answers with local members). */
    private readonly limit: number,
  ) {}

  get size(): number {
    return this.open_.size;
  }

  /** Starts a query waiting on `asked` (not empty); its id, or null at the limit. */
  open(asked: Set<L>, done: (remote: PresenceEntry[]) => void): number | null {
    if (this.open_.size >= this.limit) return null;
    const id = this.nextId;
    this.nextId = this.nextId >= 0x7fffffff ? 1 : this.nextId + 1;
    const timer = setTimeout(() => this.finish(id), this.timeoutMs);
    timer.unref();
    this.open_.set(id, { waiting: asked, entries: [], done, timer });
    return id;
  }

  /** `from` answered query `id` with `entries`; an answer for nothing waiting (late, or not asked) is ignored. */
  answered(id: number, from: L, entries: readonly PresenceEntry[]): void {
    const query = this.open_.get(id);
    if (query === undefined || !query.waiting.delete(from)) return;
    for (const e of entries) {
      if (e !== null && typeof e === 'object' && typeof e.id === 'string') {
        query.entries.push({ id: e.id, name: String(e.name ?? ''), transport: String(e.transport ?? ''), since: String(e.since ?? '') });
      }
    }
    if (query.waiting.size === 0) this.finish(id);
  }

  /** `link` left: the queries waiting on it stop waiting for it. */
  gone(link: L): void {
    for (const [id, query] of this.open_) {
      if (query.waiting.delete(link) && query.waiting.size === 0) this.finish(id);
    }
  }

  /** The node stops: every query answers with what arrived. */
  close(): void {
    for (const id of [...this.open_.keys()]) this.finish(id);
  }

  private finish(id: number): void {
    const query = this.open_.get(id);
    if (query === undefined) return;
    this.open_.delete(id);
    clearTimeout(query.timer);
    query.done(query.entries);
  }
}
