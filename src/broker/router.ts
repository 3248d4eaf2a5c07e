/**
 * Routes Message, Request and Subscribe frames (spec §4, §5). Frames with `@` go to sessions by name
 * (§4.1); frames without it go by event subscription (§4.2, see EventRouting).
 *
 * Hot path rules (encode once, forward a frame's bytes untouched where possible; docs/protocol.md 4.2): metas
 * are read in one pass into a reusable object; a Message is forwarded as its original bytes when nothing
 * changes, otherwise re-headed once and the same buffers are written to every target; no closure or array is
 * made per frame for a single target.
 */
import { Flag } from '../protocol/flags.js';
import { AlarmCode } from '../protocol/codes.js';
import type { Frame } from '../protocol/frame.js';
import { AtMode, parseAt, type AtAddress } from './at-address.js';
import { AtRouteCache } from './at-route-cache.js';
import { rendezvousPick } from './rendezvous.js';
import { FragmentRoute } from './fragment-route.js';
import type { HeadSlab } from './head-slab.js';
import { emptyScratch } from './scratch-list.js';
import { Delivery, OutboundKind } from './outbound-queue.js';
import { RouteMeta, readRouteMeta } from './route-meta.js';
import type { SessionRegistry } from './session-registry.js';
import type { Session } from './session.js';
import type { BrokerSettings } from './settings.js';
import { BrokerStats } from './stats.js';
import type { ClusterRouting } from './cluster-seam.js';
import type { StreamTable } from './streams.js';
import type { TimerWheel } from './timer-wheel.js';

/**
 * Routing by event (spec §4.2). Given a frame without `@`, fills `targets` with the sessions to deliver to
 * (for Request/Subscribe: exactly one) and returns true, or returns false after answering the frame itself
 * (control events, denials). The default knows no subscriptions.
 */
export interface EventRouting {
  resolve(sender: Session, frame: Frame, targets: Session[]): boolean;
}

export const NO_EVENT_ROUTING: EventRouting = {
  resolve: () => true,
};

export class Router {
  private readonly meta = new RouteMeta();
  private readonly at: AtAddress = { mode: AtMode.One, name: '' };
  /** Scratch list of targets, refilled per frame; copied only when a route or stream keeps it. */
  private readonly targets: Session[] = [];
  private messageSids = 0;

  constructor(
    private readonly registry: SessionRegistry,
    private readonly streams: StreamTable,
    private readonly heads: HeadSlab,
    private readonly wheel: TimerWheel,
    private readonly settings: BrokerSettings,
    private readonly stats: BrokerStats,
    private readonly events: EventRouting = NO_EVENT_ROUTING,
    /** Peer nodes (docs/cluster.md); null in single-node mode. */
    private readonly cluster: ClusterRouting | null = null,
  ) {}

  route(sender: Session, frame: Frame): void {
    // A sender repeating its remembered `@` meta: parsed and checked already (see AtRouteCache).
    const cache = sender.atRoute;
    if (cache !== null && cache.metaBytes.length > 0 && frame.adoptMeta(cache.metaString, cache.metaBytes)) {
      this.routeByName(sender, frame, cache.meta, cache.at);
      return;
    }
    const meta = this.meta;
    readRouteMeta(frame.metaString, meta);
    if (meta.fragmentIdx > 1) {
      this.routeFragment(sender, frame, meta.fragmentIdx);
      return;
    }
    const targets = this.targets;
    emptyScratch(targets);
    let multi = false;
    // The sender's namespace routes (docs/namespaces.md); null: the default one, the broker's own tables.
    const ns = sender.namespace;
    if (meta.at === undefined) {
      if (!(ns === null ? this.events : ns.events).resolve(sender, frame, targets)) return;
      if (targets.length === 0) {
        if (frame.flag === Flag.Message) BrokerStats.inc(this.stats.dropped, 'no_subscriber');
        else sender.sendAlarm(frame.sid, frame.event, frame.metaString, AlarmCode.NoRoute, `No subscriber for event '${frame.event}'`);
        return;
      }
      this.stats.routedByEvent++;
      multi = frame.flag === Flag.Message && targets.length > 1;
    } else {
      const at = this.at;
      if (!parseAt(meta.at, at)) {
        sender.sendAlarm(frame.sid, frame.event, frame.metaString, AlarmCode.NoRoute, `Invalid '@' target '${meta.at}'`);
        return;
      }
      const permissions = sender.permissions;
      if (!permissions.unrestricted && !permissions.canAddress(at.mode === AtMode.Everyone ? '*' : at.name)) {
        BrokerStats.inc(this.stats.dropped, 'forbidden');
        sender.sendAlarm(frame.sid, frame.event, frame.metaString, AlarmCode.Forbidden,
          `User '${permissions.user}' may not address '@${meta.at}'`);
        return;
      }
      if (meta.fragmentIdx === 0 && this.settings.atRouteCache) this.considerCaching(sender, frame.metaString, meta, at);
      this.resolveAt(sender, frame, at, meta.hashKey, targets);
      if (targets.length === 0) {
        // The reference broker's wording (fixtures g2, g4).
        sender.sendAlarm(frame.sid, frame.event, frame.metaString, AlarmCode.NoRoute, `Broker don't have '@${meta.at}' session`);
        return;
      }
      this.stats.routedByName++;
      multi = at.mode === AtMode.All || at.mode === AtMode.Everyone;
    }
    // A fragmented frame needs a route for its later fragments: refuse it before fragment 1 goes anywhere.
    if (meta.fragmentIdx === 1 && meta.fragmentTotal > 1 && sender.fragmentCount >= this.settings.maxFragmentRoutesPerSession) {
      sender.sendAlarm(frame.sid, frame.event, frame.metaString, AlarmCode.Congested,
        `Too many fragmented frames in flight (limit ${this.settings.maxFragmentRoutesPerSession})`);
      return;
    }
    if (frame.flag === Flag.Message) this.sendMessage(sender, frame, targets, meta);
    else this.openStream(sender, frame, targets, multi, meta);
  }

  /**
   * The targets of an `@` address in the sender's namespace: peer nodes first when clustered (they answer for
   * the whole cluster, picking this node's members too), else this node's registry. Peer nodes' names are per
   * namespace too: the hook reads the sender's (docs/cluster.md, "Namespaces").
   */
  private resolveAt(sender: Session, frame: Frame, at: AtAddress, hashKey: string | undefined, targets: Session[]): void {
    const ns = sender.namespace;
    const registry = ns === null ? this.registry : ns.registry;
    const cluster = this.cluster;
    if (cluster === null || !cluster.byName(sender, frame, at, hashKey, at.mode === AtMode.Everyone ? undefined : registry.group(at.name), targets)) {
      this.resolveByName(sender, at, hashKey, targets, registry);
    }
  }

  /**
   * The `@` route of a remembered meta (no fragment metas, address valid and allowed): resolve and send, as
   * route() does after its checks.
   */
  private routeByName(sender: Session, frame: Frame, meta: RouteMeta, at: AtAddress): void {
    const targets = this.targets;
    emptyScratch(targets);
    this.resolveAt(sender, frame, at, meta.hashKey, targets);
    if (targets.length === 0) {
      sender.sendAlarm(frame.sid, frame.event, frame.metaString, AlarmCode.NoRoute, `Broker don't have '@${meta.at}' session`);
      return;
    }
    this.stats.routedByName++;
    if (frame.flag === Flag.Message) this.sendMessage(sender, frame, targets, meta);
    else this.openStream(sender, frame, targets, at.mode === AtMode.All || at.mode === AtMode.Everyone, meta);
  }

  /** Remembers a sender's `@` meta the second time in a row it is seen (see AtRouteCache). */
  private considerCaching(sender: Session, metaString: string, meta: RouteMeta, at: AtAddress): void {
    const cache = (sender.atRoute ??= new AtRouteCache());
    if (cache.candidate === metaString) cache.remember(metaString, meta, at);
    else cache.candidate = metaString;
  }

  /** Fills `targets` for an `@` address, never with the sender (spec §4.1). */
  private resolveByName(sender: Session, at: AtAddress, hashKey: string | undefined, targets: Session[], registry: SessionRegistry): void {
    if (at.mode === AtMode.Everyone) {
      for (const s of registry.allNamed()) if (s !== sender) targets.push(s);
      return;
    }
    const group = registry.group(at.name);
    if (group === undefined) return;
    const members = group.members;
    const n = members.length;
    if (at.mode === AtMode.All) {
      for (let i = 0; i < n; i++) if (members[i] !== sender) targets.push(members[i]);
      return;
    }
    if (at.mode === AtMode.Hash) {
      // An empty X-Hash counts as none, as in the reference (spec §4.1: else the sender's IP).
      const key = hashKey !== undefined && hashKey.length > 0 ? hashKey : sender.connection.remoteAddress;
      const i = rendezvousPick(key, members, sender);
      if (i !== -1) targets.push(members[i]);
      return;
    }
    // Round robin, skipping the sender.
    for (let tries = 0; tries < n; tries++) {
      const i = group.cursor % n;
      group.cursor = i + 1;
      if (members[i] !== sender) {
        targets.push(members[i]);
        return;
      }
    }
  }

  private sendMessage(sender: Session, frame: Frame, targets: Session[], meta: RouteMeta): void {
    let outSid: string;
    if (this.settings.forwardMessageBytes) {
      // The frame's own bytes go to every target; the sid is decoded only when a fragment route needs it.
      outSid = '';
      this.fanOutRange(sender, frame, targets);
    } else {
      outSid = this.freshMessageSid();
      this.fanOutReheaded(sender, frame, targets, Flag.Message, outSid, OutboundKind.Message);
    }
    if (meta.fragmentIdx === 1 && meta.fragmentTotal > 1) {
      this.keepFragmentRoute(sender, frame, targets.slice(), outSid || frame.sid, null, meta.fragmentTotal);
    }
  }

  private openStream(sender: Session, frame: Frame, targets: Session[], multi: boolean, meta: RouteMeta): void {
    if (this.stats.overBudget) {
      // Spec §7: over the memory budget a Request/Subscribe that cannot be delivered is refused, not lost.
      BrokerStats.inc(this.stats.dropped, 'memory_budget');
      sender.sendAlarm(frame.sid, frame.event, frame.metaString, AlarmCode.Congested, 'The broker is over its memory budget: try again later');
      return;
    }
    if (sender.streams.size >= this.settings.maxStreamsPerSession) {
      sender.sendAlarm(frame.sid, frame.event, frame.metaString, AlarmCode.Congested,
        `Too many open streams (limit ${this.settings.maxStreamsPerSession})`);
      return;
    }
    if (sender.streams.has(frame.sid)) {
      sender.sendAlarm(frame.sid, frame.event, frame.metaString, AlarmCode.BadRequest, `Stream '${frame.sid}' is already open`);
      return;
    }
    const limit = frame.flag === Flag.Request ? this.settings.requestTimeoutMs : this.settings.streamTimeoutMs;
    const timeoutMs = meta.timeoutMs > 0 && meta.timeoutMs < limit ? meta.timeoutMs : limit;
    const id = this.streams.nextId();
    const heads = this.heads;
    heads.reheadWithId(frame, frame.flag, this.streams.prefix, id);
    const head = heads.buffer;
    const headStart = heads.start;
    const headEnd = heads.end;
    // The frame as the responders get it.
    const size = headEnd - headStart + (frame.bodyEnd - frame.bodyStart);
    // Targets whose transport cannot carry the frame are refused before the stream opens.
    let responders: Session[];
    let tooLarge: Session | null = null;
    if (!multi) {
      // One responder, the common case: an array of exactly one.
      responders = size <= targets[0].connection.maxOutboundFrame ? [targets[0]] : [];
      if (responders.length === 0) tooLarge = targets[0];
    } else {
      responders = [];
      for (const target of targets) {
        if (size <= target.connection.maxOutboundFrame) responders.push(target);
        else tooLarge = target;
      }
    }
    if (tooLarge !== null) this.alarmTooLarge(sender, frame, tooLarge, size);
    if (responders.length === 0) return;
    const stream = this.streams.open(id, sender, frame, responders, multi, timeoutMs);
    this.fanOutHead(sender, frame, responders, head, headStart, headEnd, OutboundKind.Stream);
    if (meta.fragmentIdx === 1 && meta.fragmentTotal > 1 && !stream.closed) {
      this.keepFragmentRoute(sender, frame, responders, this.streams.sidOf(stream.id), stream, meta.fragmentTotal);
    }
  }

  /** Writes `frame` re-headed with `flag` and `sid` (spec §5) to every target (see fanOutHead). */
  private fanOutReheaded(sender: Session, frame: Frame, targets: readonly Session[], flag: number, sid: string, kind: OutboundKind): void {
    const heads = this.heads;
    heads.rehead(frame, flag, sid);
    this.fanOutHead(sender, frame, targets, heads.buffer, heads.start, heads.end, kind);
  }

  /**
   * Writes `frame` under the new head `head[headStart, headEnd)` (a head slab range) to every target: the
   * head once, for all of them, and the body as a range of the buffer it was read in (principle 7). Answers
   * the sender once if some target cannot carry it.
   */
  private fanOutHead(sender: Session, frame: Frame, targets: readonly Session[], head: Buffer, headStart: number, headEnd: number,
    kind: OutboundKind): void {
    const body = frame.bodySource;
    const bodyStart = frame.bodyStart;
    const bodyEnd = frame.bodyEnd;
    let tooLarge: Session | null = null;
    for (let i = 0; i < targets.length; i++) {
      const result = targets[i].deliverRangesFrom(sender, head, headStart, headEnd, body, bodyStart, bodyEnd, kind);
      if (result === Delivery.TooLarge) tooLarge = targets[i];
    }
    if (tooLarge !== null) this.alarmTooLarge(sender, frame, tooLarge, headEnd - headStart + (bodyEnd - bodyStart));
  }

  /**
   * Writes the frame's own bytes to every target (principle 7), as fanOut() does with new buffers: a range
   * of the chunk it was read in, or the chunks of a large frame that arrived in several (Frame.parts).
   */
  private fanOutRange(sender: Session, frame: Frame, targets: readonly Session[]): void {
    const parts = frame.parts;
    const source = frame.source;
    const start = frame.start;
    const size = frame.size;
    let tooLarge: Session | null = null;
    for (let i = 0; i < targets.length; i++) {
      const result = parts === null
        ? targets[i].deliverRangeFrom(sender, source, start, start + size, OutboundKind.Message)
        : targets[i].deliverPartsFrom(sender, parts, size, OutboundKind.Message);
      if (result === Delivery.TooLarge) tooLarge = targets[i];
    }
    if (tooLarge !== null) this.alarmTooLarge(sender, frame, tooLarge, frame.size);
  }

  private alarmTooLarge(sender: Session, frame: Frame, target: Session, size: number): void {
    sender.sendAlarm(frame.sid, frame.event, frame.metaString, AlarmCode.TooLarge,
      `Frame of ${size} bytes is larger than '${target.label}' (${target.connection.transport}) can carry (${target.connection.maxOutboundFrame})`);
  }

  /** Fragments 2..n (spec §5): follow the route fragment 1 took. */
  private routeFragment(sender: Session, frame: Frame, idx: number): void {
    const route = sender.fragments.get(frame.sid);
    if (route === undefined) {
      sender.sendAlarm(frame.sid, frame.event, frame.metaString, AlarmCode.NoRoute,
        `No route for fragment ${idx} of '${frame.sid}': its first fragment was not routed or the route expired`);
      return;
    }
    const last = idx >= route.total;
    if (last) this.dropFragmentRoute(route);
    if (route.stream !== null && route.stream.closed) {
      // The stream already ended (its requester got the Alarm or reply); the rest has nowhere to go.
      BrokerStats.inc(this.stats.dropped, 'stream_closed');
      return;
    }
    // Targets that closed since fragment 1 answer Delivery.Closed: nothing is written to them.
    if (route.stream === null && this.settings.forwardMessageBytes) this.fanOutRange(sender, frame, route.targets);
    else {
      const kind = route.stream === null ? OutboundKind.Message : OutboundKind.Stream;
      this.fanOutReheaded(sender, frame, route.targets, frame.flag, route.outSid, kind);
    }
  }

  /** Precondition: route() checked the per-session limit before fragment 1 was forwarded. */
  private keepFragmentRoute(sender: Session, frame: Frame, targets: Session[], outSid: string, stream: FragmentRoute['stream'], total: number): void {
    const route = new FragmentRoute(sender, frame.sid, targets, outSid, stream, total);
    const previous = sender.fragments.get(frame.sid);
    if (previous !== undefined) this.dropFragmentRoute(previous);
    sender.fragments.set(frame.sid, route);
    this.wheel.schedule(route, this.settings.requestTimeoutMs);
  }

  private dropFragmentRoute(route: FragmentRoute): void {
    this.wheel.cancel(route);
    if (route.owner.fragments.get(route.sid) === route) route.owner.fragments.delete(route.sid);
  }

  /** Drops a leaving session's fragment routes and their deadlines. */
  releaseFragments(session: Session): void {
    if (session.fragmentCount === 0) return;
    for (const route of session.fragments.values()) this.wheel.cancel(route);
    session.fragments.clear();
  }

  private freshMessageSid(): string {
    return `m${(this.messageSids++).toString(36)}`;
  }
}
