/**
 * One client session (spec §3): owns a Connection, decodes its bytes, runs the handshake, dispatches frames to
 * the router and the stream table, and releases everything it held when it ends, however it ends.
 */
import { Flag, flagLabel } from '../protocol/flags.js';
import { AlarmCode, CloseCode, PRESSURE_CODE } from '../protocol/codes.js';
import { FrameDecoder, MessageDecoder, encodeBare, encodeFrame, sharedMessageDecoder, type FrameSink } from '../protocol/codec.js';
import { FrameError } from '../protocol/errors.js';
import { Frame } from '../protocol/frame.js';
import { metaAppend } from '../protocol/meta.js';
import { handshakeParams, urlPath } from '../protocol/url.js';
import type { FrameLimits } from '../protocol/limits.js';
import type { Connection, ConnectionHandler, TransportCloseCode } from '../transport/connection.js';
import { ALL_PERMISSIONS, Permissions, type HandshakeRefusal } from './access.js';
import { ExpiryTimer } from './auth/expiry.js';
import { TokenPermissions } from './auth/identity.js';
import { refreshSessionToken } from './auth/refresh.js';
import { isValidSessionName } from './at-address.js';
import { PendingAdmission, grantedName } from './admission.js';
import { leaveFlow, pauseFeeder, releaseFeeders, type FlowParty } from './flow-pairs.js';
import { encodeClose, fitClose } from './close-fit.js';
import type { AtRouteCache } from './at-route-cache.js';
import type { FragmentRoute } from './fragment-route.js';
import type { Namespace } from './namespace-table.js';
import { Delivery, OutboundKind, OutboundQueue, type OutboundOwner } from './outbound-queue.js';
import type { PublishedEvent } from './published-event.js';
import type { SessionContext } from './session-context.js';
import { BrokerStats } from './stats.js';
import { TokenBucket } from './token-bucket.js';
import type { Stream } from './streams.js';
import type { Expirable } from './timer-wheel.js';

export const enum SessionState {
  AwaitConnect = 0,
  Open = 1,
  Closed = 2,
}

/** Pong is the same 8 bytes for everyone: one buffer, written as often as needed. */
const PONG = encodeBare(Flag.Pong);
export const PROTOCOL_META = 'Socket.D=1.0';
/** Before the handshake nothing is routed, so the placeholder's rules are never consulted. */
const NO_PERMISSIONS = new Permissions('', ALL_PERMISSIONS);

export class Session implements ConnectionHandler, FrameSink, OutboundOwner, Expirable, FlowParty {
  state = SessionState.AwaitConnect;
  /** The `@` name claimed in the handshake ('' when none). */
  name = '';
  /**
   * The handshake's URL and metas, kept as the two strings they arrived as: a Map of params per session
   * was about 250 B of every idle session, for a value read once (see params).
   */
  private connectUrl = '';
  private connectMeta = '';
  readonly createdAt = Date.now();
  openedAt = 0;
  lastSeen = this.createdAt;
  /** Why the session ended (a stable code), '' while open. */
  closeReason = '';
  /** What this session may do (spec §8), set by the handshake. */
  permissions: Permissions = NO_PERMISSIONS;
  /** The client announced it is closing (Close 1000): no longer a target of new frames. */
  closing = false;
  /**
   * The last event this session published that passed every check (EventRouter's sender cache), null until
   * then or with the cache off. Belongs to the event router.
   */
  lastPublished: PublishedEvent | null = null;
  /** The last event checked for this session (EventRouter): an event is remembered once it repeats. */
  lastChecked = '';
  /** Its namespace (the handshake URL's path, docs/namespaces.md); null for the default one. */
  namespace: Namespace | null = null;
  /** True while a `$auth` of this session is being checked (auth/refresh.ts). */
  authChecking = false;
  /** The Connect and the frames after it while an asynchronous admission (JWT, connect hook) is pending. */
  private pending: PendingAdmission | null = null;
  /** Ends the session when its identity expires; null for sessions without an expiry (auth/expiry.ts). */
  private expiry: ExpiryTimer | null = null;
  /** This sender's remembered `@` route (Router), made on its first `@` frame; null until then. */
  atRoute: AtRouteCache | null = null;

  // The session's one deadline on the broker's session wheel (handshake, idle, congestion: spec §3, §7),
  // owned by the wheel. Traffic never touches it: it only moves lastSeen, and the deadline, when it comes,
  // checks lastSeen and re-arms for the time left (see onExpire).
  deadline = 0;
  wheelSlot = -1;
  wheelPrev: Expirable | null = null;
  wheelNext: Expirable | null = null;

  // The three maps below are made on first use: most sessions never open, answer or fragment a stream, and
  // an empty Map is about 100 B per idle connection (bench S4).
  private legsMap: Map<number, Stream> | null = null;
  private streamsMap: Map<string, Stream> | null = null;
  private fragmentsMap: Map<string, FragmentRoute> | null = null;
  readonly outbound: OutboundQueue;

  /** Sessions whose congested queues this one fed: it stays paused until all have drained (flow-pairs.ts). */
  pausedOn: Set<FlowParty> | null = null;
  /** Sessions paused because they fed this one's congested queue (flow-pairs.ts). */
  feeders: Set<FlowParty> | null = null;
  /** Frames-per-second limit (spec §8), null when off. */
  private frameBucket: TokenBucket | null = null;
  /** True while the broker-wide memory budget holds every reader (spec §7). */
  private budgetPaused = false;
  private readingStopped = false;
  private readonly decoder: FrameDecoder | null;
  private readonly messageDecoder: MessageDecoder | null;
  /** fastPaths.bareControlFrames (see onBare). */
  private readonly bareFrames: boolean;

  constructor(
    private readonly ctx: SessionContext,
    readonly connection: Connection,
    readonly id: string,
  ) {
    this.outbound = new OutboundQueue(connection, ctx.settings.outbound, ctx.stats, this, ctx.queued);
    const limits = sessionLimits(ctx.settings.limits, connection, ctx.settings.udpMaxDatagram);
    this.bareFrames = ctx.settings.bareControlFrames;
    if (connection.framing === 'stream') {
      this.decoder = new FrameDecoder(limits);
      this.messageDecoder = null;
    } else {
      this.decoder = null;
      this.messageDecoder = sharedMessageDecoder(limits);
    }
  }

  /** The name when it has one, else the id: for messages and logs. */
  get label(): string {
    return this.name.length > 0 ? this.name : this.id;
  }

  get closed(): boolean {
    return this.state === SessionState.Closed;
  }

  /** True while reading from this session is paused because a queue it feeds is congested (spec §7). */
  get readingPaused(): boolean {
    return this.readingStopped;
  }

  /** Streams this session answers, by stream id (the number in the broker-made sid, spec §5). */
  get legs(): Map<number, Stream> {
    return (this.legsMap ??= new Map());
  }

  /** Streams this session opened, by its own sid. */
  get streams(): Map<string, Stream> {
    return (this.streamsMap ??= new Map());
  }

  /** Routes of its fragmented frames in flight, by its sid. */
  get fragments(): Map<string, FragmentRoute> {
    return (this.fragmentsMap ??= new Map());
  }

  // Counts that do not make the maps: for the close paths and the admin API, which visit every session.

  get legCount(): number {
    return this.legsMap?.size ?? 0;
  }

  get streamCount(): number {
    return this.streamsMap?.size ?? 0;
  }

  get fragmentCount(): number {
    return this.fragmentsMap?.size ?? 0;
  }

  /**
   * Handshake params: URL query overlaid by Connect metas, values verbatim (spec §3); empty before the
   * handshake. Parsed anew on every call (read it once): nothing but the two strings is kept per session.
   */
  get params(): ReadonlyMap<string, string> {
    return this.state === SessionState.AwaitConnect ? NO_PARAMS : handshakeParams(this.connectUrl, this.connectMeta);
  }

  /** Frames-per-second limit (spec §8); the bucket is made on the first routed frame, full. */
  private takeFrameToken(): boolean {
    const fps = this.ctx.settings.framesPerSecond;
    return (this.frameBucket ??= new TokenBucket(fps, fps, this.lastSeen)).take(this.lastSeen);
  }

  get transport(): string {
    return this.connection.transport;
  }

  start(): void {
    this.connection.start(this);
    if (this.state !== SessionState.Closed) this.ctx.deadlines.schedule(this, this.ctx.settings.handshakeTimeoutMs);
  }

  /**
   * The session's deadline came (the session wheel): closes it past the handshake timeout (1002), congested
   * past the congestion timeout (a slow consumer, spec §7) or silent past the idle timeout (1001, spec §3);
   * otherwise re-arms for the nearest of these still ahead. A session whose reading we paused is not
   * silent by its own doing: its idle clock restarts when reading resumes.
   */
  onExpire(now: number): void {
    if (this.state === SessionState.Closed) return;
    const settings = this.ctx.settings;
    if (this.state === SessionState.AwaitConnect) {
      const left = this.createdAt + settings.handshakeTimeoutMs - now;
      if (left > 0) this.ctx.deadlines.schedule(this, left);
      else this.close('handshake_timeout', CloseCode.ProtocolIllegal, `no Connect within ${settings.handshakeTimeoutMs} ms`);
      return;
    }
    let next = settings.idleTimeoutMs;
    const outbound = this.outbound;
    if (outbound.congested) {
      const left = outbound.congestedSince + settings.outbound.congestionTimeoutMs - now;
      if (left <= 0) {
        this.congestionExpired(now);
        return;
      }
      next = left;
    }
    if (!this.readingStopped) {
      const left = this.lastSeen + settings.idleTimeoutMs - now;
      if (left <= 0) {
        this.close('idle_timeout', CloseCode.ProtocolClose, `silent for ${settings.idleTimeoutMs} ms`);
        return;
      }
      if (left < next) next = left;
    }
    this.ctx.deadlines.schedule(this, next);
  }

  /** The outbound queue became congested: the deadline moves up to the congestion timeout if later. */
  outboundOnCongested(since: number): void {
    if (this.state === SessionState.Closed) return;
    const due = since + this.ctx.settings.outbound.congestionTimeoutMs;
    if (this.wheelSlot === -1 || this.deadline > due) this.ctx.deadlines.schedule(this, Math.max(0, due - Date.now()));
  }

  // ----- connection events -------------------------------------------------------------------------------

  connectionOnData(data: Buffer): void {
    if (this.state === SessionState.Closed) return;
    this.lastSeen = Date.now();
    this.ctx.stats.bytesIn += data.length;
    if (this.decoder !== null) {
      this.decoder.push(data, this);
      return;
    }
    // A bare Ping or Pong over a message transport: 8 bytes whose length prefix says 8 (spec §1).
    if (data.length === 8 && data.readInt32BE(0) === 8 && this.onBare(data.readInt32BE(4))) return;
    const result = this.messageDecoder!.decode(data);
    if (result instanceof Frame) this.onFrame(result);
    else this.onFrameError(result);
  }

  connectionOnParts(parts: readonly Buffer[], size: number): void {
    if (this.state === SessionState.Closed) return;
    if (this.decoder !== null) {
      // Only message transports deliver parts; a stream decoder takes them as the chunks they are.
      for (const part of parts) this.connectionOnData(part);
      return;
    }
    if (!this.ctx.settings.largeMessageParts) {
      this.connectionOnData(Buffer.concat(parts, size));
      return;
    }
    this.lastSeen = Date.now();
    this.ctx.stats.bytesIn += size;
    const result = this.messageDecoder!.decodeParts(parts, size);
    if (result instanceof Frame) this.onFrame(result);
    else this.onFrameError(result);
  }

  connectionOnDrain(): void {
    this.outbound.drained();
    releaseFeeders(this);
  }

  connectionOnInvalid(code: string, detail: string): void {
    this.protocolError(code, detail);
  }

  connectionOnClose(code: TransportCloseCode, detail: string): void {
    if (this.state !== SessionState.Closed) {
      this.release(code === 'peer_closed' ? 'peer_closed' : `transport_${code}`, detail);
    }
    this.ctx.connectionClosed(this);
  }

  // ----- frames ------------------------------------------------------------------------------------------

  /**
   * Heartbeats without a Frame (fastPaths.bareControlFrames): an open session's 8-byte Ping is answered with
   * the shared Pong buffer, its Pong taken. Anything else is left to onFrame (returns false).
   */
  onBare(flag: number): boolean {
    if (!this.bareFrames || this.state !== SessionState.Open || (flag !== Flag.Ping && flag !== Flag.Pong)) return false;
    this.ctx.stats.framesInByFlag[flag]++;
    if (flag === Flag.Ping) this.sendControl(PONG);
    return true;
  }

  onFrame(frame: Frame): void {
    this.ctx.stats.framesInByFlag[frame.flag & 63]++;
    this.dispatch(frame);
  }

  private dispatch(frame: Frame): void {
    if (this.state === SessionState.Open) {
      switch (frame.flag) {
        case Flag.Message:
        case Flag.Request:
        case Flag.Subscribe:
          if (this.ctx.settings.framesPerSecond > 0 && !this.takeFrameToken()) {
            BrokerStats.inc(this.ctx.stats.dropped, 'rate_limited');
            this.sendAlarm(frame.sid, frame.event, frame.metaString, AlarmCode.Congested,
              `Rate limited: more than ${this.ctx.settings.framesPerSecond} frames per second`);
            return;
          }
          this.ctx.router.route(this, frame);
          return;
        case Flag.Reply:
        case Flag.ReplyEnd:
          this.ctx.streams.onReply(this, frame);
          return;
        case Flag.Ping:
          this.sendControl(PONG);
          return;
        case Flag.Pong:
        case Flag.Pressure:
          return;
        case Flag.Alarm:
          // A responder failing a stream it was given; an Alarm for nothing open is only counted.
          if (!this.ctx.streams.onResponderAlarm(this, frame)) BrokerStats.inc(this.ctx.stats.dropped, 'alarm_without_stream');
          return;
        case Flag.Close:
          if (frame.meta('code') === String(CloseCode.Closing)) {
            // "Closing starting" (the reference JS client's closeStarting(), fixture h3): route nothing new to
            // this session, but keep it open so it can finish the streams it answers (spec §3).
            if (!this.closing) {
              this.closing = true;
              this.ctx.sessionClosing(this);
            }
            return;
          }
          this.close('client_close', null, `client sent Close ${frame.meta('code') ?? ''}`.trim());
          return;
        default:
          this.protocolError('unexpected_frame', `${flagLabel(frame.flag)} frame after the handshake`);
          return;
      }
    }
    if (this.state === SessionState.AwaitConnect) {
      if (this.pending !== null) this.hold(this.pending, frame);
      else if (frame.flag === Flag.Connect) this.handshake(frame);
      else this.protocolError('first_frame_not_connect', `first frame must be Connect, got ${flagLabel(frame.flag)}`);
    }
  }

  onFrameError(error: FrameError): void {
    if (this.state === SessionState.Closed) return;
    if (error.fatal || this.state !== SessionState.Open) {
      this.protocolError(error.code, error.message);
      return;
    }
    // The frame was skipped whole; the stream goes on (spec §6: 4013 too large).
    BrokerStats.inc(this.ctx.stats.protocolErrors, error.code);
    this.sendAlarm(error.sid, error.event, error.metaString, AlarmCode.TooLarge, error.message);
  }

  private handshake(frame: Frame): void {
    const url = frame.event.length > 0 ? frame.event : frame.data.toString('utf8');
    const params = handshakeParams(url, frame.metaString);
    const name = params.get('@') ?? '';
    if (name.length > 0 && !isValidSessionName(name)) {
      this.refuse('invalid_name', `'@' name '${name}' is not valid: no spaces, '&', '=', ',' or trailing '*' / '!'`);
      return;
    }
    if (this.connection.requestScoped !== true && !this.ctx.admitHandshake(this.lastSeen)) {
      this.refuse('handshake_rate_limited', `More than ${this.ctx.settings.handshakesPerSecond} handshakes per second: try again later`);
      return;
    }
    const admitted = this.ctx.access.authenticate(params, this.connection.remoteAddress, this.connection.transport);
    if (admitted instanceof Promise) {
      this.awaitAdmission(new PendingAdmission(frame, name), admitted);
      return;
    }
    this.admit(frame, name, admitted);
  }

  /**
   * An admission decided later (a JWT verified, the connect hook answering): the session stays in its
   * handshake, other sessions go on, and the frames that come meanwhile are kept, in order, up to the
   * policy's bound (docs/security.md). The handshake timeout still applies.
   */
  private awaitAdmission(pending: PendingAdmission, decision: Promise<Permissions | HandshakeRefusal>): void {
    this.pending = pending;
    decision.then(
      (admitted) => this.admissionDecided(pending, admitted),
      () => this.admissionDecided(pending, { code: 'auth_error', text: 'The access check failed' }),
    );
  }

  private admissionDecided(pending: PendingAdmission, admitted: Permissions | HandshakeRefusal): void {
    this.pending = null;
    // Closed meanwhile (handshake timeout, the peer gone, too many frames): nothing to admit.
    if (this.state !== SessionState.AwaitConnect) return;
    this.admit(pending.connect, pending.requested, admitted);
    for (const f of pending.frames) {
      if ((this.state as SessionState) !== SessionState.Open) return;
      this.dispatch(f);
    }
  }

  private hold(pending: PendingAdmission, frame: Frame): void {
    if (frame.flag === Flag.Close) {
      // The client gave up waiting (udp has no connection to drop): end now, the admission is dropped.
      this.close('client_close', null, `client sent Close ${frame.meta('code') ?? ''} while its admission was pending`.trim());
      return;
    }
    const max = this.ctx.access.pendingFramesMax ?? 16;
    const maxBytes = this.ctx.access.pendingBytesMax ?? 65_536;
    if (!pending.hold(frame, max, maxBytes)) {
      this.protocolError('too_many_frames_before_connack', `more than ${max} frames or ${maxBytes} bytes sent before the Connack`);
    }
  }

  private admit(frame: Frame, requested: string, admitted: Permissions | HandshakeRefusal): void {
    if (!(admitted instanceof Permissions)) {
      this.refuse(admitted.code, admitted.text);
      return;
    }
    const name = grantedName(requested, admitted);
    if (typeof name !== 'string') {
      this.refuse(name.code, name.text);
      return;
    }
    // The Connect's URL (event, else data; spec §3) names the namespace by its path.
    const url = frame.event.length > 0 ? frame.event : frame.data.toString('utf8');
    const namespace = this.ctx.enterNamespace?.(urlPath(url), admitted) ?? null;
    if (namespace !== null && 'code' in namespace) {
      this.refuse(namespace.code, namespace.text);
      return;
    }
    this.namespace = namespace;
    this.permissions = admitted;
    this.name = name;
    this.connectUrl = url;
    // The reference clients' metas are just the protocol version: one shared string, not one per session.
    this.connectMeta = frame.metaString === PROTOCOL_META ? PROTOCOL_META : frame.metaString;
    this.state = SessionState.Open;
    this.openedAt = Date.now();
    // The Connect is accepted: a transport that limits what it sends an unvalidated address lifts the limit.
    this.connection.peerValidated?.();
    // The deadline armed for the handshake may lie beyond the idle one (handshake timeout > idle timeout).
    const idleMs = this.ctx.settings.idleTimeoutMs;
    if (this.deadline > this.openedAt + idleMs) this.ctx.deadlines.schedule(this, idleMs);
    // Connack echoes the Connect's sid, event and data (spec §3, fixtures b1/b2).
    this.sendControl(encodeFrame({ flag: Flag.Connack, sid: frame.sid, event: frame.event, meta: PROTOCOL_META, data: frame.data }));
    this.ctx.sessionOnOpen(this);
    this.armExpiry();
  }

  // ----- identity expiry and refresh (src/broker/auth, docs/security.md) ---------------------------------

  /** A `$auth` control event (auth/refresh.ts); called by the event router. */
  refreshToken(frame: Frame): void {
    refreshSessionToken(this, frame, this.ctx.access, this.ctx.stats);
  }

  /** New permissions from a fresh token: they apply to the next frame, the expiry moves with them. */
  applyPermissions(permissions: Permissions): void {
    const previous = this.permissions;
    this.permissions = permissions;
    // A remembered `@` route holds the old permission check (AtRouteCache): the next `@` frame is checked anew.
    this.atRoute = null;
    this.armExpiry();
    this.ctx.sessionPermissionsChanged?.(this, previous);
  }

  /** Epoch ms the session's identity expires at, 0 for never. */
  get expiresAt(): number {
    return this.expiry?.expiresAt ?? 0;
  }

  private armExpiry(): void {
    const p = this.permissions;
    const at = p instanceof TokenPermissions ? p.expiresAt : 0;
    if (at === 0) this.expiry?.cancel();
    else if (this.state === SessionState.Open) (this.expiry ??= new ExpiryTimer(this)).arm(at);
  }

  /** The identity expired without a fresh token (`$auth`): Close 2001, reason `token_expired`. */
  tokenExpired(): void {
    if (this.state !== SessionState.Open) return;
    this.ctx.stats.tokensExpired++;
    this.close('token_expired', CloseCode.Error, 'The token expired (send a fresh one with $auth before it does)');
  }

  // ----- sending -----------------------------------------------------------------------------------------

  /**
   * Queues a received frame forwarded as its own bytes `source[start, end)`, routed from `sender`. When this
   * session's queue is congested, the sender is paused and told with Pressure (spec §7).
   */
  deliverRangeFrom(sender: Session, source: Buffer, start: number, end: number, kind: OutboundKind): Delivery {
    if (this.state === SessionState.Closed) return Delivery.Closed;
    const result = this.outbound.pushRange(source, start, end, kind);
    if (result === Delivery.Queued) this.delivered(sender);
    return result;
  }

  /**
   * As deliverRangeFrom(), for a re-headed frame: `head[headStart, headEnd)` then `body[bodyStart, bodyEnd)`;
   * `sender` is null when the broker relays on its own account (a reply to its requester).
   */
  deliverRangesFrom(sender: Session | null, head: Buffer, headStart: number, headEnd: number,
    body: Buffer, bodyStart: number, bodyEnd: number, kind: OutboundKind): Delivery {
    if (this.state === SessionState.Closed) return Delivery.Closed;
    const result = this.outbound.pushRanges(head, headStart, headEnd, body, bodyStart, bodyEnd, kind);
    if (result === Delivery.Queued) this.delivered(sender);
    return result;
  }

  /** As deliverRangeFrom(), for a received frame forwarded as its parts (Frame.parts). */
  deliverPartsFrom(sender: Session, parts: readonly Buffer[], size: number, kind: OutboundKind): Delivery {
    if (this.state === SessionState.Closed) return Delivery.Closed;
    const result = this.outbound.pushParts(parts, size, kind);
    if (result === Delivery.Queued) this.delivered(sender);
    return result;
  }

  private delivered(sender: Session | null): void {
    this.ctx.stats.deliveries++;
    // Created on first congestion: most sessions never need it (memory per idle connection, bench S4).
    if (this.outbound.congested && sender !== null && sender !== this && pauseFeeder(sender, this)) sender.sendPressure(this);
  }

  /**
   * Queues a frame the broker made itself. A frame this session's transport cannot carry (a udp datagram
   * limit) is counted and logged, never dropped silently; callers that can answer otherwise check the result.
   */
  sendControl(frame: Buffer): Delivery {
    if (this.state === SessionState.Closed) return Delivery.Closed;
    const result = this.outbound.push(frame, undefined, OutboundKind.Control);
    if (result === Delivery.TooLarge) {
      BrokerStats.inc(this.ctx.stats.dropped, 'control_too_large');
      this.ctx.logger.warn({
        event: 'control_too_large', id: this.id, transport: this.transport, bytes: frame.length,
        limit: this.connection.maxOutboundFrame, flag: flagLabel(frame.readInt32BE(4)),
      }, 'a frame for this session is larger than its transport carries');
    }
    return result;
  }

  /** Alarm (spec §6): sid, event and meta of the frame it answers, meta `code` added, data the reason. */
  sendAlarm(sid: string, event: string, metaString: string, code: number, text: string): void {
    BrokerStats.inc(this.ctx.stats.alarms, code);
    let alarm = encodeFrame({ flag: Flag.Alarm, sid, event, meta: metaAppend(metaString, 'code', String(code)), data: text });
    const limit = this.connection.maxOutboundFrame;
    if (alarm.length > limit) {
      // The echo of the answered frame's metas does not fit this transport (udp): keep what identifies
      // the stream (sid, event, code) and as much of the reason as fits.
      const head = encodeFrame({ flag: Flag.Alarm, sid, event, meta: `code=${code}` });
      const room = Math.max(0, limit - head.length);
      alarm = encodeFrame({ flag: Flag.Alarm, sid, event, meta: `code=${code}`, data: Buffer.from(text).subarray(0, room) });
    }
    this.sendControl(alarm);
  }

  private sendClose(code: number, reason: string, text: string): void {
    const allowance = this.connection.sendAllowance;
    if (allowance === undefined || allowance === Infinity) {
      this.sendControl(encodeClose(code, reason, text));
      return;
    }
    // A peer not validated yet (udp before its Connect is accepted): the answer may not be larger than the
    // transport's anti-amplification allowance, so it is cut to fit, or not sent (docs/security.md).
    const fitted = fitClose(code, reason, text, allowance);
    if (fitted.trimmed) BrokerStats.inc(this.ctx.stats.amplificationLimited, fitted.frame === null ? 'not_sent' : 'trimmed');
    if (fitted.frame !== null) this.sendControl(fitted.frame);
  }

  // ----- flow control (spec §7) --------------------------------------------------------------------------

  /** This session was just paused on `target` (flow-pairs.ts): tells it with Pressure, once per episode. */
  private sendPressure(target: Session): void {
    this.ctx.stats.pressureSent++;
    this.sendControl(encodeFrame({
      flag: Flag.Pressure,
      meta: `code=${PRESSURE_CODE}`,
      data: `'${target.label}' is congested: slow down`,
    }));
  }

  /** Its pauses on congested targets changed (flow-pairs.ts). */
  flowChanged(): void {
    this.updateReading();
  }

  /** The broker-wide memory budget stops or restarts reading from this session (spec §7). */
  setBudgetPause(paused: boolean): void {
    this.budgetPaused = paused;
    this.updateReading();
  }

  /** Reading is stopped while any reason holds: a congested target it feeds, or the memory budget. */
  private updateReading(): void {
    const stop = ((this.pausedOn !== null && this.pausedOn.size > 0) || this.budgetPaused) && this.state !== SessionState.Closed;
    if (stop === this.readingStopped) return;
    this.readingStopped = stop;
    this.ctx.stats.pausedReaders += stop ? 1 : -1;
    if (stop) {
      this.connection.pause();
    } else {
      // Its silence while paused was ours: the idle clock restarts now.
      this.lastSeen = Date.now();
      this.connection.resume();
    }
  }

  outboundOnOverflow(queuedBytes: number): void {
    this.ctx.stats.slowConsumers++;
    this.close('slow_consumer', null, `outbound queue reached ${queuedBytes} bytes (limit ${this.ctx.settings.outbound.limitBytes})`, true);
  }

  /** Congested past the deadline without draining: a slow consumer whatever the policy (spec §7). */
  congestionExpired(now: number): void {
    this.ctx.stats.slowConsumers++;
    const seconds = ((now - this.outbound.congestedSince) / 1000).toFixed(1);
    this.close('slow_consumer', null, `outbound queue congested for ${seconds} s without draining (${this.outbound.queuedBytes} bytes)`, true);
  }

  // ----- ending ------------------------------------------------------------------------------------------

  /**
   * Ends the session: sends Close with `closeCode` (unless null), flushes and closes the connection, and
   * releases everything at once. `abort` drops queued bytes instead (slow consumers).
   */
  close(reason: string, closeCode: number | null, detail: string, abort = false): void {
    if (this.state === SessionState.Closed) return;
    if (closeCode !== null && !abort) this.sendClose(closeCode, reason, detail);
    this.release(reason, detail);
    if (abort) this.connection.destroy(reason);
    else this.connection.end(reason);
  }

  private protocolError(code: string, detail: string): void {
    BrokerStats.inc(this.ctx.stats.protocolErrors, code);
    this.close(code, CloseCode.ProtocolIllegal, detail);
  }

  private refuse(code: string, text: string): void {
    BrokerStats.inc(this.ctx.stats.handshakesRefused, code);
    this.close(code, CloseCode.Error, text);
  }

  /** Releases everything the session held (spec §3); idempotent. */
  private release(reason: string, detail: string): void {
    if (this.state === SessionState.Closed) return;
    const wasOpen = this.state === SessionState.Open;
    this.state = SessionState.Closed;
    this.closeReason = reason;
    this.pending = null;
    this.expiry?.cancel();
    this.decoder?.stop();
    this.ctx.deadlines.cancel(this);
    leaveFlow(this);
    // Closed while paused: no longer a paused reader (the connection is ending; resuming it would be moot).
    if (this.readingStopped) {
      this.readingStopped = false;
      this.ctx.stats.pausedReaders--;
    }
    this.ctx.sessionOnClose(this, wasOpen, reason, detail);
  }
}

/** The params of a session before its handshake (shared: a Map per connection costs memory, bench S4). */
const NO_PARAMS: ReadonlyMap<string, string> = new Map();

/** The decoder limits for a connection: udp frames are bounded by the datagram size too (spec §1). */
function sessionLimits(limits: FrameLimits, connection: Connection, udpMaxDatagram: number): FrameLimits {
  if (connection.transport !== 'udp') return limits;
  return { ...limits, maxFrame: Math.min(limits.maxFrame, udpMaxDatagram) };
}
