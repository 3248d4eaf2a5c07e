/**
 * Open sessions by id and by `@` name (spec §3, §4.1). Name groups keep their members in an array for fast
 * round robin and fan-out; removal is O(group size), which stays small for names in practice.
 */
import type { Session } from './session.js';

export class NameGroup {
  readonly members: Session[] = [];
  /** Next round-robin position (spec §4.1 `name`). */
  cursor = 0;
  constructor(readonly name: string) {}
}

export class SessionRegistry {
  private readonly byId = new Map<string, Session>();
  private readonly groups = new Map<string, NameGroup>();
  /** Every named session, for `@=*` (spec §4.1). */
  private readonly named: Session[] = [];

  get size(): number {
    return this.byId.size;
  }

  get namedCount(): number {
    return this.named.length;
  }

  get nameCount(): number {
    return this.groups.size;
  }

  add(session: Session): void {
    this.byId.set(session.id, session);
    const name = session.name;
    if (name.length === 0) return;
    let group = this.groups.get(name);
    if (group === undefined) {
      group = new NameGroup(name);
      this.groups.set(name, group);
    }
    group.members.push(session);
    this.named.push(session);
  }

  /** Removes the session; safe to call for a session never added or already removed. */
  remove(session: Session): void {
    if (this.byId.get(session.id) !== session) return;
    this.byId.delete(session.id);
    const name = session.name;
    if (name.length === 0) return;
    const group = this.groups.get(name);
    if (group !== undefined) {
      removeFrom(group.members, session);
      if (group.members.length === 0) this.groups.delete(name);
      else if (group.cursor >= group.members.length) group.cursor = 0;
    }
    removeFrom(this.named, session);
  }

  get(id: string): Session | undefined {
    return this.byId.get(id);
  }

  group(name: string): NameGroup | undefined {
    return this.groups.get(name);
  }

  /** Every named session (do not modify). */
  allNamed(): readonly Session[] {
    return this.named;
  }

  sessions(): IterableIterator<Session> {
    return this.byId.values();
  }

  names(): IterableIterator<NameGroup> {
    return this.groups.values();
  }
}

function removeFrom<T>(list: T[], item: T): void {
  const i = list.indexOf(item);
  if (i === -1) return;
  const last = list.length - 1;
  // Order matters for round robin fairness only loosely; keep it stable anyway.
  if (i === last) list.pop();
  else list.splice(i, 1);
}
