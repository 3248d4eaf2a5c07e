/**
 * Routing by event (spec §4.2): subscriptions, queue groups, control events and presence.
 *
 * - Message: once to every session with a matching subscription (however many of its patterns match),
 *   never the sender, plus one member of each matching queue group, round robin.
 * - Request, Subscribe: exactly one matching session, round robin across all of them.
 * - `$sub`, `$unsub`, `$presence` control events: as Request acknowledged by ReplyEnd (or Alarm), as Message
 *   unanswered unless they fail. Other `$` events from clients are refused with Alarm 4003.
 * - Presence is tracked for exact patterns (no wildcard): a chat room is an event, its members are the
 *   sessions subscribed to exactly that event, and `presence=1` subscribers hear `$presence.join/leave`.
 */
import { randomUUID } from 'node:crypto';
import { Flag } from '../protocol/flags.js';
import { AlarmCode } from '../protocol/codes.js';
import { encodeFrame } from '../protocol/codec.js';
import type { Frame } from '../protocol/frame.js';
import type { EventRouting } from './router.js';
import type { SessionObserver } from './broker.js';
import type { Session } from './session.js';
import type { Permissions } from './access.js';
import { BrokerStats } from './stats.js';
import { isExactPattern, isPublishableEvent, patternProblem } from '../protocol/event-pattern.js';
import { SubscriptionIndex, type Subscription } from './subscription-index.js';
import { MAX_REMEMBERED_EVENT_BYTES, PublishedEvent } from './published-event.js';
import type { ClusterRouting } from './cluster-seam.js';

export interface EventRouterOptions {
  /** Subscriptions one session may hold (spec §8 limits). */
  maxSubscriptionsPerSession: number;
  /** Events whose matches are cached; 0 switches the cache off. */
  matchCacheSize: number;
  /** Longest pattern in bytes (the event limit). */
  maxPatternBytes: number;
}

/** One session's subscription. */
interface EventSubscription extends Subscription<Session> {
  presence: boolean;
  readonly since: number;
}

/** A session's membership of an exact event (a "room"). */
interface Member {
  since: number;
  /** How many of the session's subscriptions name exactly this event (groups differ). */
  count: number;
}

export interface PresenceEntry {
  id: string;
  name: string;
  transport: string;
  since: string;
}

export class EventRouter implements EventRouting, SessionObserver {
  readonly index: SubscriptionIndex<Session>;
  /** Each session's subscriptions by `pattern \0 group`. */
  private readonly bySession = new Map<Session, Map<string, EventSubscription>>();
  /** Exact events and their members, for presence. */
  private readonly rooms = new Map<string, Map<Session, Member>>();
  /** Sessions that asked for join/leave notices of an exact event. */
  private readonly watchers = new Map<string, Set<Session>>();
  /** Round-robin cursors of the queue groups (Messages), by group name. */
  private readonly groupCursors = new Map<string, number>();
  /** Subscribed sessions whose permissions filter deliveries (deny lists): 0 keeps the filter off the path. */
  private filtering = 0;
  /** Subscriptions in each queue group, so a group's cursor goes when its last subscription does. */
  private readonly groupSizes = new Map<string, number>();
  /**
   * Round-robin cursors of Request/Subscribe routing, by event: one shared cursor would let requests to
   * other events decide which worker gets the next one (alternating two events starved a worker). Bounded:
   * past REQUEST_CURSORS events the oldest cursor is forgotten (it restarts at 0).
   */
  private readonly requestCursors = new Map<string, number>();
  private readonly noticePrefix = randomUUID().slice(0, 8);
  private noticeCount = 0;

  constructor(
    private readonly options: EventRouterOptions,
    private readonly stats: BrokerStats,
    /** Peer nodes (docs/cluster.md); null in single-node mode. */
    private readonly cluster: ClusterRouting | null = null,
  ) {
    this.index = new SubscriptionIndex<Session>({ cacheSize: options.matchCacheSize });
  }

  get subscriptionCount(): number {
    return this.index.size;
  }

  /** Every subscription, session by session (for the admin API). */
  *allSubscriptions(): IterableIterator<EventSubscription> {
    for (const mine of this.bySession.values()) yield* mine.values();
  }

  subscriptionsOf(session: Session): readonly EventSubscription[] {
    return [...(this.bySession.get(session)?.values() ?? [])];
  }

  // ----- routing -----------------------------------------------------------------------------------------

  resolve(sender: Session, frame: Frame, targets: Session[]): boolean {
    const last = sender.lastPublished;
    const event = last !== null && frame.adoptEvent(last.event, last.bytes) ? last.event : this.checkedEvent(sender, frame);
    if (event === null) return false;
    const match = this.index.match(event);
    const cluster = this.cluster;
    if (frame.flag === Flag.Message) {
      for (const s of match.subscribers) if (s !== sender) targets.push(s);
      const elsewhere = cluster === null ? null : cluster.groupsElsewhere(sender, event, match.groups);
      for (const group of match.groups) {
        if (elsewhere !== null && elsewhere.has(group.name)) continue;
        const pick = this.pickInGroup(group.name, group.members, sender);
        if (pick !== null && !targets.includes(pick)) targets.push(pick);
      }
      if (this.filtering > 0) filterReceivers(targets, event);
      if (cluster !== null) cluster.addPeers(sender, frame, event, targets);
      return true;
    }
    // Request / Subscribe: exactly one, round robin over every distinct matching session.
    const candidates = match.groups.length === 0 ? match.subscribers : distinctCandidates(match.subscribers, match.groups);
    const n = candidates.length;
    if (cluster !== null && cluster.pickPeer(sender, event, n, targets)) return true;
    if (n === 0) return true;
    const cursors = this.requestCursors;
    let cursor = cursors.get(event);
    if (cursor === undefined) {
      cursor = 0;
      if (cursors.size >= REQUEST_CURSORS) cursors.delete(cursors.keys().next().value as string);
    }
    for (let tries = 0; tries < n; tries++) {
      const pick = candidates[cursor % n];
      cursor = (cursor + 1) % 0x40000000;
      if (pick !== sender && (this.filtering === 0 || pick.permissions.canReceive(event))) {
        targets.push(pick);
        break;
      }
    }
    cursors.set(event, cursor);
    return true;
  }

  /**
   * The frame's event when `sender` may publish to it, remembered for the sender's next frames (match cache
   * on) once it came twice in a row; null after answering the frame itself (control events, refusals).
   */
  private checkedEvent(sender: Session, frame: Frame): string | null {
    const event = frame.event;
    if (event.charCodeAt(0) === 36 /* $ */) {
      this.control(sender, frame);
      return null;
    }
    if (event.length === 0) {
      sender.sendAlarm(frame.sid, event, frame.metaString, AlarmCode.BadRequest, 'A frame without @ needs an event to route by');
      return null;
    }
    if (!isPublishableEvent(event)) {
      sender.sendAlarm(frame.sid, event, frame.metaString, AlarmCode.BadRequest,
        `Cannot publish to '${event}': events are tokens separated by single dots, without '*' or '>' tokens`);
      return null;
    }
    const permissions = sender.permissions;
    if (!permissions.unrestricted && !permissions.canPublish(event)) {
      BrokerStats.inc(this.stats.dropped, 'forbidden');
      sender.sendAlarm(frame.sid, event, frame.metaString, AlarmCode.Forbidden, `User '${permissions.user}' may not publish to '${event}'`);
      return null;
    }
    // Remembered only when it repeats: a sender cycling through many events would otherwise pay a copy and
    // an object on every frame for a cache that never hits.
    if (this.options.matchCacheSize > 0 && sender.lastChecked === event) {
      const bytes = frame.eventBytes();
      if (bytes.length <= MAX_REMEMBERED_EVENT_BYTES) sender.lastPublished = new PublishedEvent(event, Buffer.from(bytes));
    }
    sender.lastChecked = event;
    return event;
  }

  private pickInGroup(name: string, members: readonly Session[], sender: Session): Session | null {
    const n = members.length;
    let cursor = this.groupCursors.get(name) ?? 0;
    for (let tries = 0; tries < n; tries++) {
      const pick = members[cursor % n];
      cursor = (cursor + 1) % 0x40000000;
      if (pick !== sender) {
        this.groupCursors.set(name, cursor);
        return pick;
      }
    }
    this.groupCursors.set(name, cursor);
    return null;
  }

  // ----- control events ----------------------------------------------------------------------------------

  private control(sender: Session, frame: Frame): void {
    const isRequest = frame.flag === Flag.Request || frame.flag === Flag.Subscribe;
    if (this.cluster !== null && this.cluster.fromPeer(sender)) {
      this.peerControl(sender, frame);
      return;
    }
    switch (frame.event) {
      case '$sub': {
        const problem = this.subscribe(sender, frame.meta('event') ?? '', frame.meta('group') ?? '', frame.meta('presence') === '1');
        this.answer(sender, frame, isRequest, problem);
        return;
      }
      case '$unsub': {
        const problem = this.unsubscribe(sender, frame.meta('event') ?? '', frame.meta('group') ?? '');
        this.answer(sender, frame, isRequest, problem);
        return;
      }
      case '$presence': {
        const event = frame.meta('event') ?? '';
        if (event.length === 0 || !isExactPattern(event)) {
          this.answer(sender, frame, true, [AlarmCode.BadRequest, "$presence needs meta 'event' naming one exact event"]);
          return;
        }
        if (!isRequest) return;
        const local = this.presence(event);
        // Members on other nodes (docs/cluster.md, "Presence"): the answer waits for theirs, bounded.
        if (this.cluster !== null) {
          const sid = frame.sid;
          const controlEvent = frame.event;
          const metaString = frame.metaString;
          const asked = this.cluster.presenceQuery(sender, event, (remote) => {
            this.answerPresence(sender, sid, controlEvent, metaString, event, remote.length === 0 ? local : local.concat(remote));
          });
          if (asked) return;
        }
        this.answerPresence(sender, frame.sid, frame.event, frame.metaString, event, local);
        return;
      }
      case '$auth':
        // A fresh token for the session (docs/protocol.md, "Refreshing a token"; src/broker/auth/refresh.ts).
        sender.refreshToken(frame);
        return;
      default:
        BrokerStats.inc(this.stats.dropped, 'reserved_event');
        sender.sendAlarm(frame.sid, frame.event, frame.metaString, AlarmCode.Forbidden,
          `Events starting with '$' are reserved for the broker ('${frame.event}' is not one of $sub, $unsub, $presence)`);
    }
  }

  /** The `$presence` answer: the members' JSON, or an Alarm when it is larger than the sender's transport carries. */
  private answerPresence(sender: Session, sid: string, controlEvent: string, metaString: string, event: string, entries: PresenceEntry[]): void {
    const answer = encodeFrame({ flag: Flag.ReplyEnd, sid, event: controlEvent, meta: `event=${event}`, data: JSON.stringify(entries) });
    if (answer.length > sender.connection.maxOutboundFrame) {
      sender.sendAlarm(sid, controlEvent, metaString, AlarmCode.TooLarge,
        `The presence list of '${event}' (${answer.length} bytes) is larger than this ${sender.transport} connection carries`);
    } else {
      sender.sendControl(answer);
    }
  }

  /**
   * `$` events from a peer node (docs/cluster.md, "Presence"): join/leave notices of its sessions go to this
   * namespace's watchers of the event as they came (principle 7); lists and answers are the cluster's.
   */
  private peerControl(sender: Session, frame: Frame): void {
    switch (frame.event) {
      case '$presence.join':
      case '$presence.leave': {
        const event = frame.meta('event') ?? '';
        if (!this.watchers.has(event)) return;
        // The cluster remembers the peer's members, so that its watchers hear them leave if it is dropped.
        if (!this.cluster!.peerNotice(sender, frame)) return;
        this.deliverNotice(event, frame.parts === null ? frame.source.subarray(frame.start, frame.start + frame.size) : Buffer.concat(frame.parts, frame.size));
        return;
      }
      default:
        this.cluster!.presenceControl(sender, frame, (event) => this.presence(event));
    }
  }

  /**
   * A join/leave notice of a session on another node (its bytes) to this namespace's watchers of `event`:
   * as it came from that node, or made by the cluster for the sessions of a dropped node (docs/cluster.md).
   */
  deliverNotice(event: string, bytes: Buffer): void {
    const set = this.watchers.get(event);
    if (set === undefined) return;
    for (const watcher of set) watcher.sendControl(bytes);
  }

  /** Acknowledges a control Request with ReplyEnd, or answers a failure (Request or Message) with an Alarm. */
  private answer(sender: Session, frame: Frame, isRequest: boolean, problem: [number, string] | null): void {
    if (problem !== null) {
      sender.sendAlarm(frame.sid, frame.event, frame.metaString, problem[0], problem[1]);
      return;
    }
    if (isRequest) sender.sendControl(encodeFrame({ flag: Flag.ReplyEnd, sid: frame.sid, event: frame.event, meta: frame.metaString }));
  }

  /** Adds a subscription; returns the Alarm code and text when refused (nothing changed then). */
  subscribe(session: Session, pattern: string, group: string, presence: boolean): [number, string] | null {
    const problem = patternProblem(pattern, this.options.maxPatternBytes);
    if (problem !== null) return [AlarmCode.BadRequest, `Invalid pattern '${pattern}': ${problem}`];
    if (!session.permissions.canSubscribe(pattern)) {
      BrokerStats.inc(this.stats.dropped, 'forbidden');
      return [AlarmCode.Forbidden, `User '${session.permissions.user}' may not subscribe to '${pattern}'`];
    }
    if (group.length > 0 && !/^[^\s&=]{1,128}$/.test(group)) return [AlarmCode.BadRequest, `Invalid group '${group}'`];
    let mine = this.bySession.get(session);
    const key = `${pattern}\u0000${group}`;
    const existing = mine?.get(key);
    if (existing !== undefined) {
      // Idempotent; asking for presence later turns it on.
      if (presence && !existing.presence) {
        existing.presence = true;
        this.watch(session, pattern);
      }
      return null;
    }
    if ((mine?.size ?? 0) >= this.options.maxSubscriptionsPerSession) {
      BrokerStats.inc(this.stats.dropped, 'subscription_limit');
      return [AlarmCode.Congested, `Too many subscriptions (limit ${this.options.maxSubscriptionsPerSession})`];
    }
    const sub: EventSubscription = { subscriber: session, pattern, group, presence, since: Date.now() };
    if (mine === undefined) {
      mine = new Map();
      this.bySession.set(session, mine);
      if (session.permissions.filtersDeliveries) this.filtering++;
    }
    mine.set(key, sub);
    this.index.add(sub);
    this.cluster?.subscriptionChanged(pattern, group, 1);
    if (group.length > 0) this.groupSizes.set(group, (this.groupSizes.get(group) ?? 0) + 1);
    if (presence) this.watch(session, pattern);
    if (isExactPattern(pattern)) this.join(session, pattern);
    return null;
  }

  unsubscribe(session: Session, pattern: string, group: string): [number, string] | null {
    if (pattern.length === 0) return [AlarmCode.BadRequest, "$unsub needs meta 'event' with the pattern to remove"];
    const mine = this.bySession.get(session);
    const key = `${pattern}\u0000${group}`;
    const sub = mine?.get(key);
    if (sub === undefined) return null; // idempotent, as in NATS
    mine!.delete(key);
    if (mine!.size === 0) this.forget(session);
    this.drop(session, sub);
    return null;
  }

  /** Drops the session's subscription map (it holds none any more, or it is leaving). */
  private forget(session: Session): void {
    if (this.bySession.delete(session) && session.permissions.filtersDeliveries) this.filtering--;
  }

  private drop(session: Session, sub: EventSubscription): void {
    this.index.remove(sub);
    this.cluster?.subscriptionChanged(sub.pattern, sub.group, -1);
    if (sub.group.length > 0) {
      const left = (this.groupSizes.get(sub.group) ?? 1) - 1;
      if (left > 0) this.groupSizes.set(sub.group, left);
      else {
        this.groupSizes.delete(sub.group);
        this.groupCursors.delete(sub.group);
      }
    }
    if (isExactPattern(sub.pattern)) this.leave(session, sub.pattern);
    if (sub.presence) this.unwatch(session, sub.pattern);
  }

  // ----- presence ----------------------------------------------------------------------------------------

  presence(event: string): PresenceEntry[] {
    const room = this.rooms.get(event);
    if (room === undefined) return [];
    return [...room].map(([s, m]) => ({ id: s.id, name: s.name, transport: s.transport, since: new Date(m.since).toISOString() }));
  }

  private join(session: Session, event: string): void {
    let room = this.rooms.get(event);
    if (room === undefined) {
      room = new Map();
      this.rooms.set(event, room);
    }
    const member = room.get(session);
    if (member !== undefined) {
      member.count++;
      return;
    }
    room.set(session, { since: Date.now(), count: 1 });
    this.notify(event, session, '$presence.join');
  }

  private leave(session: Session, event: string): void {
    const room = this.rooms.get(event);
    const member = room?.get(session);
    if (room === undefined || member === undefined) return;
    if (--member.count > 0) return;
    room.delete(session);
    if (room.size === 0) this.rooms.delete(event);
    this.notify(event, session, '$presence.leave');
  }

  private watch(session: Session, event: string): void {
    if (!isExactPattern(event)) return;
    let set = this.watchers.get(event);
    if (set === undefined) {
      set = new Set();
      this.watchers.set(event, set);
    }
    if (set.has(session)) return;
    set.add(session);
    this.cluster?.watchersChanged(event, 1);
  }

  private unwatch(session: Session, event: string): void {
    const set = this.watchers.get(event);
    if (set === undefined) return;
    // Still watching through another subscription (another group) to the same event?
    const mine = this.bySession.get(session);
    if (mine !== undefined) for (const s of mine.values()) if (s.presence && s.pattern === event) return;
    if (!set.delete(session)) return;
    if (set.size === 0) this.watchers.delete(event);
    this.cluster?.watchersChanged(event, -1);
  }

  /** `$presence.join` / `$presence.leave` to the event's watchers, the subject excluded (spec §4.2). */
  private notify(event: string, subject: Session, kind: string): void {
    const set = this.watchers.get(event);
    let notice: Buffer | null = null;
    const make = (): Buffer => notice ??= encodeFrame({
      flag: Flag.Message,
      sid: `${this.noticePrefix}${(this.noticeCount++).toString(36)}`,
      event: kind,
      meta: `event=${event}&id=${subject.id}&name=${subject.name}`,
    });
    // Watchers on other nodes hear it too (docs/cluster.md, "Presence"); the same bytes go everywhere.
    this.cluster?.presenceNotice(subject, event, make);
    if (set === undefined || (set.size === 1 && set.has(subject))) return;
    make();
    for (const watcher of set) if (watcher !== subject) watcher.sendControl(notice!);
  }

  // ----- session life ------------------------------------------------------------------------------------

  /** Subscriptions named in the handshake: `sub=` comma-separated patterns (docs/event-routing.md). */
  sessionOpened(session: Session): void {
    const list = session.params.get('sub');
    if (list === undefined || list.length === 0) return;
    for (const pattern of list.split(',')) {
      if (pattern.length === 0) continue;
      const problem = this.subscribe(session, pattern, '', false);
      if (problem !== null) session.sendAlarm('', '$sub', `event=${pattern}`, problem[0], problem[1]);
    }
  }

  /** A session announcing its close (Close 1000) gets no new deliveries; its rooms hear it leave now. */
  sessionClosing(session: Session): void {
    this.sessionClosed(session, true);
  }

  /**
   * A session's permissions changed (a fresh token by `$auth`, docs/protocol.md 5.1): subscriptions the new
   * rules no longer allow are dropped now, and the count of sessions whose deliveries are filtered follows
   * the new rules (it was taken under the old ones).
   */
  sessionPermissionsChanged(session: Session, previous: Permissions): void {
    const mine = this.bySession.get(session);
    if (mine === undefined) return;
    if (previous.filtersDeliveries) this.filtering--;
    if (session.permissions.filtersDeliveries) this.filtering++;
    for (const [key, sub] of [...mine]) {
      if (session.permissions.canSubscribe(sub.pattern)) continue;
      mine.delete(key);
      this.drop(session, sub);
    }
    if (mine.size === 0) this.forget(session);
  }

  /** A session's subscriptions disappear with it, and its rooms hear it leave. */
  sessionClosed(session: Session, wasOpen: boolean): void {
    if (!wasOpen) return;
    const mine = this.bySession.get(session);
    if (mine === undefined) return;
    this.forget(session);
    for (const sub of mine.values()) this.drop(session, sub);
  }
}

/** Events whose Request/Subscribe round-robin cursor is kept. */
const REQUEST_CURSORS = 4096;

function distinctCandidates(subscribers: readonly Session[], groups: readonly { members: readonly Session[] }[]): Session[] {
  const out = subscribers.slice();
  for (const group of groups) for (const m of group.members) if (!out.includes(m)) out.push(m);
  return out;
}

/** Removes, in place, the targets whose permissions deny receiving `event` (spec §8, wildcard subscriptions). */
function filterReceivers(targets: Session[], event: string): void {
  let kept = 0;
  for (let i = 0; i < targets.length; i++) {
    const t = targets[i];
    if (!t.permissions.filtersDeliveries || t.permissions.canReceive(event)) targets[kept++] = t;
  }
  targets.length = kept;
}

