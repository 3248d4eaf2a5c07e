/**
 * Which sessions of each peer node are members of the exact events this node watches (docs/cluster.md,
 * "Presence"): learnt from the `$presence.join` / `$presence.leave` notices the peer sends here and from the
 * `$presence.sync` snapshot it sends when this node starts watching an event. When the peer is dropped, the
 * entries kept of it are what this node's watchers hear leave (src/cluster/cluster-presence.ts).
 *
 * Bounded: at most `limit` (session, event) entries over every peer and event (`cluster.presenceMembersMax`).
 * Past it a join is not remembered (the caller counts it): if its node is dropped, that session's leave is not
 * heard here. Nothing here is visited periodically: entries change on a notice, a sync, an unwatch or a drop.
 */

/** One remembered membership: the session's id and name, as its node's notices carry them. */
export interface RemoteMember {
  readonly id: string;
  readonly name: string;
}

/** A (namespace, event) pair as one map key: NUL cannot occur in either (spec §4). */
export function roomKey(ns: string, event: string): string {
  return `${ns}\u0000${event}`;
}

/** Splits a roomKey() back into [namespace, event]. */
export function splitRoomKey(key: string): [string, string] {
  const sep = key.indexOf('\u0000');
  return [key.slice(0, sep), key.slice(sep + 1)];
}

export class RemoteMembers<L> {
  /** Peer -> room -> session id -> member. */
  private readonly byLink = new Map<L, Map<string, Map<string, RemoteMember>>>();
  /** Room -> peers with entries in it: forgetting a room visits only those peers. */
  private readonly byRoom = new Map<string, Set<L>>();
  private count = 0;

  constructor(
    /** (session, event) entries kept at most over every peer; 0 keeps none. */
    readonly limit: number,
  ) {}

  /** Entries kept now (a gauge). */
  get size(): number {
    return this.count;
  }

  /** `link`'s session `id` joined `room`; false when it could not be remembered (the cap is reached). */
  joined(link: L, room: string, id: string, name: string): boolean {
    let rooms = this.byLink.get(link);
    let members = rooms?.get(room);
    if (members?.has(id) === true) return true;
    if (this.count >= this.limit) return false;
    if (rooms === undefined) {
      rooms = new Map();
      this.byLink.set(link, rooms);
    }
    if (members === undefined) {
      members = new Map();
      rooms.set(room, members);
      let links = this.byRoom.get(room);
      if (links === undefined) {
        links = new Set();
        this.byRoom.set(room, links);
      }
      links.add(link);
    }
    members.set(id, { id, name });
    this.count++;
    return true;
  }

  /** `link`'s session `id` left `room` (a leave notice): false when it was not kept. */
  left(link: L, room: string, id: string): boolean {
    const rooms = this.byLink.get(link);
    const members = rooms?.get(room);
    if (members === undefined || !members.delete(id)) return false;
    this.count--;
    if (members.size === 0) this.dropRoom(link, rooms!, room);
    return true;
  }

  /** The ids of `link`'s sessions kept as members of `room`. */
  ids(link: L, room: string): Set<string> {
    return new Set(this.byLink.get(link)?.get(room)?.keys());
  }

  /** Forgets what `link` held in `room` (a fresh snapshot of it follows). */
  reset(link: L, room: string): void {
    const rooms = this.byLink.get(link);
    const members = rooms?.get(room);
    if (members === undefined) return;
    this.count -= members.size;
    this.dropRoom(link, rooms!, room);
  }

  /** Nobody here watches `room` any more: its notices stop coming, so what is kept of it would go stale. */
  forgetRoom(room: string): void {
    const links = this.byRoom.get(room);
    if (links === undefined) return;
    for (const link of [...links]) this.reset(link, room);
  }

  /** Removes and returns everything kept of `link` (it was dropped), room by room. */
  take(link: L): Map<string, Map<string, RemoteMember>> | undefined {
    const rooms = this.byLink.get(link);
    if (rooms === undefined) return undefined;
    this.byLink.delete(link);
    for (const [room, members] of rooms) {
      this.count -= members.size;
      const links = this.byRoom.get(room);
      if (links !== undefined && links.delete(link) && links.size === 0) this.byRoom.delete(room);
    }
    return rooms;
  }

  private dropRoom(link: L, rooms: Map<string, Map<string, RemoteMember>>, room: string): void {
    rooms.delete(room);
    if (rooms.size === 0) this.byLink.delete(link);
    const links = this.byRoom.get(room);
    if (links !== undefined && links.delete(link) && links.size === 0) this.byRoom.delete(room);
  }
}
