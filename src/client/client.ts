/**
 * The client SDK (docs/client.md): one connection to the broker over tcp, tcps, udp, ws or wss, with
 * fire-and-forget messages, requests, reply streams, subscriptions, heartbeat and automatic reconnect.
 * This file holds the public Client: its state, its public methods, the connection's life (which link is
 * current, what a lost one leads to, close) and the frames it writes. The parts live beside it, each behind a
 * small owner interface the Client implements: options.ts (options and their defaults), handshake.ts (one
 * connect attempt), link.ts (one transport connection), heartbeat.ts, reconnect.ts (the backoff),
 * pressure.ts (Pressure and waitForDrain), pending.ts (requests and reply streams in flight),
 * subscriptions.ts (local handlers and their broker subscriptions), dispatch.ts (incoming frames to them).
 *
 * Hot path: frames are encoded by the link's FrameWriter straight into a slab (small data copied beside its
 * head, large data written as it is) and, over tcp, handed to the transport once per tick. Inbound frames
 * are decoded by the shared codec into views of the received bytes. Requests and streams are matched to
 * their answers by the number of their sid, read from the answer's bytes, and time out on one shared timer
 * (Deadlines, in the PendingTable). Per-request objects hold their own state (no closure per request).
 */
import { Flag } from '../protocol/flags.js';
import type { Frame } from '../protocol/frame.js';
import type { FrameError } from '../protocol/errors.js';
import { encodeBare } from '../protocol/codec.js';
import type { Connection, TransportCloseCode } from '../transport/connection.js';
import type { Dialer } from './dialer.js';
import { TokenKeeper } from './token.js';
import { SocketdError } from './errors.js';
import { ClientEvents } from './events.js';
import { answerHeadEnd } from './frame-writer.js';
import { SidSource } from './sids.js';
import { TickClock } from './tick.js';
import { IncomingMessage, Reply, toBuffer, type Data, type Metas, type PresenceEntry, type Responder } from './message.js';
import { patternProblem } from './pattern.js';
import { parseClientUrl, type ClientTransport, type ClientUrl } from './url.js';
import {
  formatMetas,
  ms,
  resolveOptions,
  type ClientOptions,
  type ClientSettings,
  type ClientState,
  type MessageHandler,
  type PresenceHandler,
  type RequestOptions,
  type SendOptions,
  type StreamOptions,
  type SubscribeOptions,
  type Subscription,
} from './options.js';
import { PendingTable, ReplyStream, alarmError, type Pending } from './pending.js';
import { LocalSubscription, SubscriptionTable, subMeta, subscriptionKey } from './subscriptions.js';
import { Dispatcher } from './dispatch.js';
import { Heartbeat, type HeartbeatOwner } from './heartbeat.js';
import { PressureGate, type PressureOwner } from './pressure.js';
import { Backoff, type ReconnectOwner } from './reconnect.js';
import { Link, type LinkOwner } from './link.js';
import { Handshake, type HandshakeOwner } from './handshake.js';

// ----- constants -----------------------------------------------------------------------------------------

const PONG = encodeBare(Flag.Pong);
const EMPTY = Buffer.alloc(0);

// ----- the client ----------------------------------------------------------------------------------------

export class Client implements Responder, LinkOwner, HandshakeOwner, HeartbeatOwner, ReconnectOwner, PressureOwner {
  /** Life events: disconnect, reconnecting, reconnect, error, alarm, pressure, close. */
  readonly events = new ClientEvents();
  /** The parsed url (transport, host, port) and the Connect url (without `sd:`). */
  readonly target: ClientUrl;

  private stateValue: ClientState = 'connecting';
  private link: Link | null = null;
  private handshake: Handshake | null = null;
  private generation = 0;
  private readonly sids = new SidSource();
  private readonly clock = new TickClock();
  /** Requests and streams waiting for an answer, by the number of their sid. */
  private readonly pending = new PendingTable(this.sids, this.clock);
  /** The handlers registered with on(), by pattern and by broker subscription. */
  private readonly subs = new SubscriptionTable();
  /** Incoming Message/Request/Subscribe frames to the handlers. */
  private readonly dispatcher: Dispatcher;

  private readonly heartbeat: Heartbeat;
  private readonly backoff: Backoff;
  /** Pressure from the broker and the callers waiting for it to pass. */
  private readonly pressure: PressureGate;
  private closePromise: Promise<void> | null = null;

  /** The options with their defaults (options.ts). */
  private readonly opts: ClientSettings;
  /** The token option: fresh tokens for each connection and before expiry (token.ts). */
  private readonly tokens: TokenKeeper;

  /**
   * Use {@link connect}. `dialer` opens the transport: the Node entry passes its tcp/tcps/udp/ws/wss dialer,
   * the browser entry its WebSocket one.
   */
  constructor(url: string, options: ClientOptions, private readonly dialer: Dialer) {
    this.target = parseClientUrl(url, options.name);
    this.opts = resolveOptions(options);
    this.heartbeat = new Heartbeat(this, this.opts.heartbeatInterval, this.clock);
    this.backoff = new Backoff(this, this.opts.reconnect);
    this.pressure = new PressureGate(this, this.opts.pressureHold);
    this.dispatcher = new Dispatcher(this, this.events, this.subs, options.onDirect ?? null);
    this.tokens = new TokenKeeper(options.token, this.opts.tokenRefreshMargin, {
      isConnected: () => this.connected,
      sendAuth: (token) => this.sendAuth(token),
      refreshFailed: (error) => this.events.emit('error', error instanceof SocketdError ? error
        : new SocketdError('token_failed', `The token refresh failed: ${(error as Error).message}`)),
    });
  }

  // ----- state -------------------------------------------------------------------------------------------

  get state(): ClientState {
    return this.stateValue;
  }

  /** True while a handshaken connection is up. */
  get connected(): boolean {
    return this.stateValue === 'open' && this.link !== null;
  }

  get transport(): ClientTransport {
    return this.target.transport;
  }

  /** True for a short while (`pressureHold`) after the broker sent Pressure, or while the socket buffer drains. */
  get pressured(): boolean {
    return this.pressure.held || (this.link !== null && this.link.writer.full);
  }

  /** Requests and streams waiting for an answer (for leak checks and metrics). */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** Bytes written and not yet handed to the OS. */
  get bufferedBytes(): number {
    return this.link?.writer.bufferedBytes ?? 0;
  }

  /** Resolves once not pressured (at once when not). Also resolves when the client closes. */
  waitForDrain(): Promise<void> {
    if (!this.pressured || this.stateValue === 'closed') return Promise.resolve();
    return this.pressure.wait();
  }

  // ----- sending -----------------------------------------------------------------------------------------

  /**
   * Sends a Message (40), fire and forget. Throws SocketdError: `closed`, `connection_lost` (not connected,
   * e.g. while reconnecting), `too_large`, `congested` (maxOutboundBytes), `invalid_argument`.
   * The data buffer is written as is: do not modify it afterwards.
   */
  send(event: string, data?: Data, options?: SendOptions): void {
    const meta = options === undefined ? '' : formatMetas(options.meta, options.to, 0);
    this._write(Flag.Message, event, meta, toBuffer(data));
  }

  /**
   * Sends a Request (41) and resolves with the first Reply or ReplyEnd. Rejects with SocketdError `alarm`
   * (alarmCode 4004 nobody to answer, 4008 broker timeout, 5003 responder gone, ...), `timeout`, `aborted`,
   * `connection_lost`, `closed`, `too_large`, `congested`. Waits first while the client is pressured.
   */
  request(event: string, data?: Data, options: RequestOptions = {}): Promise<Reply> {
    if (this.pressured && this.stateValue !== 'closed') {
      return this.waitForDrain().then(() => this.request(event, data, options));
    }
    const timeout = ms(options.timeout, this.opts.requestTimeout, 'timeout');
    let meta: string;
    if (options.meta === undefined && options.to === undefined && timeout === this.opts.requestTimeout) {
      meta = this.opts.defaultRequestMeta;
    } else {
      try {
        meta = formatMetas(options.meta, options.to, timeout);
      } catch (error) {
        return Promise.reject(error);
      }
    }
    return this.pending.request(this, event, toBuffer(data), meta, timeout, options.signal);
  }

  /**
   * Sends a Subscribe (42) and returns its replies as an async iterator (see {@link ReplyStream}).
   * `timeout` (if given) bounds the whole stream, locally and at the broker (default: the broker's stream
   * timeout). A failure to send is thrown by the first `next()`.
   */
  stream(event: string, data?: Data, options: StreamOptions = {}): ReplyStream {
    let stream: ReplyStream | null = null;
    try {
      const timeout = ms(options.timeout, 0, 'timeout');
      const meta = formatMetas(options.meta, options.to, timeout);
      stream = new ReplyStream(this, this._write(Flag.Subscribe, event, meta, toBuffer(data)), event);
      this.pending.track(stream, timeout, options.signal);
    } catch (error) {
      // Refused before it was sent: it still gets a sid of its own.
      stream ??= new ReplyStream(this, this.sids.advance(), event);
      stream.fail(error as SocketdError);
    }
    return stream;
  }

  // ----- subscriptions -----------------------------------------------------------------------------------

  /**
   * Subscribes to `pattern` (spec §4.2: `*` one token, `>` one or more trailing) and calls `handler` for
   * every Message, Request or Subscribe routed here whose event matches. Resolves once the broker
   * acknowledged the `$sub`; rejects with its Alarm (the handler is then removed). While disconnected the
   * handler is registered at once and the `$sub` is sent on reconnect.
   */
  async on(pattern: string, handler: MessageHandler, options: SubscribeOptions = {}): Promise<Subscription> {
    this.checkOpen();
    const problem = patternProblem(pattern);
    if (problem !== null) throw new SocketdError('invalid_argument', `Invalid pattern '${pattern}': ${problem}`);
    const group = options.group === undefined || options.group.length === 0 ? undefined : options.group;
    if (group !== undefined && !/^[^\s&=]{1,128}$/.test(group)) throw new SocketdError('invalid_argument', `Invalid group '${group}'`);
    const presence = options.presence === true;
    const sub = new LocalSubscription(this, pattern, group, presence, handler);
    const siblings = this.subs.get(sub.key);
    const needsSub = siblings === undefined || (presence && !siblings.some((s) => s.presence));
    this.subs.add(sub);
    if (needsSub && this.connected) {
      try {
        await this.control('$sub', subMeta(pattern, group, presence));
      } catch (error) {
        // A lost connection keeps the handler: the $sub is sent again on reconnect.
        if ((error as SocketdError).code !== 'connection_lost') {
          this.subs.remove(sub);
          throw error;
        }
      }
    }
    return sub;
  }

  /** Removes every handler of `pattern` (and group) and sends `$unsub`. */
  async off(pattern: string, options: { group?: string } = {}): Promise<void> {
    const key = subscriptionKey(pattern, options.group);
    const list = this.subs.get(key);
    if (list === undefined) return;
    for (const sub of list.slice()) this.subs.remove(sub);
    await this.sendUnsub(pattern, options.group);
  }

  /** @internal */
  async _unsubscribe(sub: LocalSubscription): Promise<void> {
    if (!sub.active) return;
    this.subs.remove(sub);
    if (this.subs.has(sub.key)) return; // other handlers still use the broker subscription
    await this.sendUnsub(sub.pattern, sub.group);
  }

  /**
   * Handles frames addressed to this client by name (`to`, the `@` meta) instead of the pattern handlers;
   * `null` removes it. Without it such frames go to the pattern handlers whose pattern matches their event.
   */
  onDirect(handler: MessageHandler | null): void {
    this.dispatcher.direct = handler;
  }

  /** Receives `$presence.join/leave` for the events subscribed with `presence: true`. Returns a remover. */
  onPresence(handler: PresenceHandler): () => void {
    return this.dispatcher.onPresence(handler);
  }

  /** The sessions subscribed to exactly `event` (a room's members, spec §4.2). */
  async presence(event: string): Promise<PresenceEntry[]> {
    const reply = await this.control('$presence', `event=${event}`);
    return reply.data.length === 0 ? [] : reply.json<PresenceEntry[]>();
  }

  // ----- closing -----------------------------------------------------------------------------------------

  /**
   * Sends Close (code 1001), fails pending requests and streams with `closed`, releases every timer and
   * socket, and resolves once the socket is closed. Idempotent.
   */
  close(): Promise<void> {
    if (this.closePromise !== null) return this.closePromise;
    const error = new SocketdError('closed', 'The client was closed');
    const links: Link[] = [];
    const hs = this.handshake;
    if (hs?.link != null) links.push(hs.link);
    this.shutdown(error);
    const link = this.link;
    this.link = null;
    if (link !== null) {
      links.push(link);
      link.sendClose();
    }
    this.closePromise = Promise.all(links.map((l) => l.whenClosed())).then(() => {
      this.events.emit('close');
    });
    return this.closePromise;
  }

  // ----- internals: connecting ---------------------------------------------------------------------------

  /** @internal Opens the first connection; on failure the client is closed (no reconnect for the first). */
  async _start(): Promise<void> {
    try {
      await this.openLink();
    } catch (error) {
      this.shutdown(error as SocketdError);
      throw error;
    }
  }

  /** Asks the token function (when there is one) for this connection's token, then opens the link. */
  private async openLink(reconnect = false): Promise<void> {
    let token: string | undefined;
    try {
      token = await this.tokens.forConnection(reconnect);
    } catch (error) {
      throw new SocketdError('token_failed', `The token function failed: ${(error as Error).message}`);
    }
    if (this.stateValue === 'closed') throw new SocketdError('closed', 'The client was closed');
    const meta = this.tokens.dynamic && token !== undefined ? `${this.opts.connectMeta}&token=${token}` : this.opts.connectMeta;
    await this.dialLink(meta);
    this.tokens.admitted(token);
  }

  private dialLink(connectMeta: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const hs = new Handshake(this, this.sids.takeText(), resolve, reject);
      this.handshake = hs;
      const { tls, maxDatagram, limits } = this.opts;
      hs.start(this.dialer, this.target, { tls, maxDatagram, maxPayload: limits.maxFrame }, this.opts.connectTimeout, connectMeta);
    });
  }

  /** @internal HandshakeOwner */
  _newLink(connection: Connection): Link {
    return new Link(this, connection, this.opts.limits, this.sids, this.opts.maxOutboundBytes, this.clock);
  }

  /** @internal HandshakeOwner */
  _handshakeEnded(hs: Handshake): void {
    if (this.handshake === hs) this.handshake = null;
  }

  /** @internal HandshakeOwner: the Connack arrived. */
  _handshakeDone(_hs: Handshake, link: Link): void {
    this.link = link;
    this.generation++;
    this.stateValue = 'open';
    link.lastReceived = this.clock.now();
    this.heartbeat.start();
  }

  /** @internal */
  async _reconnectNow(): Promise<void> {
    this.backoff.fired();
    if (this.stateValue === 'closed') return;
    try {
      await this.openLink(true);
    } catch (error) {
      const e = error as SocketdError;
      if ((this.stateValue as ClientState) === 'closed') return; // close() may have run meanwhile
      if (e.code === 'handshake_refused') {
        this.events.emit('error', e);
        this.shutdown(e);
        this.events.emit('close');
        return;
      }
      this.scheduleReconnect();
      return;
    }
    const attempts = this.backoff.succeeded();
    const link = this.link;
    await this.restoreSubscriptions();
    if (this.link === link && this.stateValue === 'open') this.events.emit('reconnect', { attempts });
  }

  private scheduleReconnect(): void {
    this.stateValue = 'reconnecting';
    this.events.emit('reconnecting', this.backoff.schedule());
  }

  private async restoreSubscriptions(): Promise<void> {
    const acks: Promise<unknown>[] = [];
    for (const list of this.subs.groups()) {
      const first = list[0]!;
      const presence = list.some((s) => s.presence);
      acks.push(this.control('$sub', subMeta(first.pattern, first.group, presence)).catch((error: SocketdError) => {
        if (error.code !== 'connection_lost' && error.code !== 'closed') this.events.emit('error', error);
      }));
    }
    await Promise.all(acks);
  }

  /** Closed for good: timers cleared, pending failed, handshake abandoned. The link is the caller's. */
  private shutdown(error: SocketdError): void {
    this.stateValue = 'closed';
    this.tokens.cancel();
    this.backoff.cancel();
    this.heartbeat.stop();
    this.pressure.reset();
    this.handshake?.fail(error);
    this.pending.failAll(error);
    this.pending.clear();
  }

  private checkOpen(): void {
    if (this.stateValue === 'closed') throw new SocketdError('closed', 'The client was closed');
  }

  /** @internal HeartbeatOwner */
  _liveLink(): Link | null {
    return this.stateValue === 'open' ? this.link : null;
  }

  // ----- internals: link events --------------------------------------------------------------------------

  /** @internal */
  _linkOnFrame(link: Link, frame: Frame): void {
    if (link !== this.link) {
      const hs = this.handshake;
      if (hs !== null && hs.link === link) hs.onFrame(frame);
      return;
    }
    switch (frame.flag) {
      case Flag.Message:
      case Flag.Request:
      case Flag.Subscribe:
        this.dispatcher.dispatch(frame, this.generation);
        return;
      case Flag.Reply:
      case Flag.ReplyEnd: {
        const pending = this.pending.of(frame);
        if (pending !== undefined && pending.onAnswer(frame)) this._forget(pending);
        return;
      }
      case Flag.Alarm: {
        const pending = this.pending.of(frame);
        if (pending === undefined) {
          this.events.emit('alarm', alarmError(frame));
          return;
        }
        this._forget(pending);
        pending.fail(alarmError(frame));
        return;
      }
      case Flag.Ping:
        link.writer.raw(PONG);
        return;
      case Flag.Pressure:
        this.pressure.onPressure();
        this.events.emit('pressure', frame.data.toString('utf8'));
        return;
      case Flag.Close:
        link.onBrokerClose(frame);
        return;
      default:
        return; // Pong, Connack again: nothing to do
    }
  }

  /** @internal */
  _linkOnFrameError(link: Link, error: FrameError): void {
    const e = new SocketdError('protocol_error', `Undecodable frame from the broker: ${error.message}`);
    if (!error.fatal) {
      this.events.emit('error', e);
      return;
    }
    const hs = this.handshake;
    if (hs !== null && hs.link === link) {
      hs.fail(e);
      return;
    }
    if (link === this.link) {
      this.events.emit('error', e);
      link.closeError = new SocketdError('connection_lost', e.message);
      link.connection.destroy('protocol error');
    }
  }

  /** @internal */
  _linkOnDrain(link: Link): void {
    if (link !== this.link) return;
    this.pressure.wake();
  }

  /** @internal */
  _linkOnClose(link: Link, _code: TransportCloseCode, detail: string): void {
    const hs = this.handshake;
    if (hs !== null && hs.link === link) {
      hs.fail(link.closeError === null
        ? new SocketdError('connect_failed', `The connection closed before the Connack: ${detail}`)
        : new SocketdError('handshake_refused', link.closeError.message));
      return;
    }
    if (link !== this.link) return;
    this.link = null;
    this.heartbeat.stop();
    this.pressure.wake();
    const error = link.closeError ?? new SocketdError('connection_lost', `Connection lost: ${detail}`);
    this.pending.failAll(error);
    this.events.emit('disconnect', error);
    if (this.stateValue === 'closed') return;
    if (this.backoff.enabled) {
      this.scheduleReconnect();
    } else {
      this.shutdown(error);
      this.events.emit('close');
    }
  }

  // ----- internals: requests -----------------------------------------------------------------------------

  /** @internal The text of the sid with this number. */
  _sidText(id: number): string {
    return this.sids.text(id);
  }

  /**
   * @internal Encodes and queues one frame with the next sid; returns the sid's number. Small data is copied
   * beside its head, larger data written as it is. Throws SocketdError.
   */
  _write(flag: number, event: string, meta: string, data: Buffer): number {
    return this.writableLink(event, data).writer.frame(flag, event, meta, data);
  }

  /** The link to write a frame of `event` with `data` on, once the checks every frame passes are passed. */
  private writableLink(event: string, data: Buffer): Link {
    const link = this.link;
    if (link === null || this.stateValue !== 'open') {
      if (this.stateValue === 'closed') throw new SocketdError('closed', 'The client was closed');
      throw new SocketdError('connection_lost', 'Not connected to the broker (reconnecting)');
    }
    if (data.length > this.opts.maxData) {
      throw new SocketdError('too_large', `Data of ${data.length} bytes exceeds maxData (${this.opts.maxData})`, { event });
    }
    return link;
  }

  /** Sends a fresh token (`$auth`, docs/protocol.md); resolves with the broker's `exp` (epoch s, 0 none). */
  private async sendAuth(token: string): Promise<number> {
    const timeout = this.opts.requestTimeout;
    const reply = await this.pending.request(this, '$auth', Buffer.from(token, 'utf8'), timeout > 0 ? `timeout=${timeout}` : '', timeout, undefined);
    return Number(reply.meta['exp'] ?? 0) || 0;
  }

  /** A control Request (`$sub`, `$unsub`, `$presence`), acknowledged by ReplyEnd or refused by an Alarm. */
  private control(event: string, meta: string): Promise<Reply> {
    const timeout = this.opts.requestTimeout;
    return this.pending.request(this, event, EMPTY, timeout > 0 ? `${meta}&timeout=${timeout}` : meta, timeout, undefined);
  }

  private async sendUnsub(pattern: string, group: string | undefined): Promise<void> {
    if (!this.connected) return; // the broker dropped every subscription with the connection
    try {
      await this.control('$unsub', subMeta(pattern, group, false));
    } catch (error) {
      if ((error as SocketdError).code !== 'connection_lost') throw error;
    }
  }

  /** @internal Forgets a request or stream: later answers are ignored. */
  _forget(pending: Pending): void {
    this.pending.forget(pending);
  }

  // ----- internals: answers to incoming frames -----------------------------------------------------------

  /** @internal Responder */
  respond(message: IncomingMessage, flag: number, data: Data | undefined, meta: Metas | undefined): void {
    if (message.generation !== this.generation) {
      throw new SocketdError('connection_lost', 'The connection this message arrived on is gone', { sid: message.sid, event: message.event });
    }
    this.writeAnswer(flag, message, meta === undefined ? '' : formatMetas(meta, undefined, 0), toBuffer(data));
  }

  /** @internal Responder */
  respondAlarm(message: IncomingMessage, code: number, text: string): void {
    if (message.generation !== this.generation) {
      throw new SocketdError('connection_lost', 'The connection this message arrived on is gone', { sid: message.sid, event: message.event });
    }
    this.writeAnswer(Flag.Alarm, message, `code=${code}`, Buffer.from(text, 'utf8'));
  }

  /** Encodes and queues an answer to `message`, with its sid and event bytes as received. Throws SocketdError. */
  private writeAnswer(flag: number, message: IncomingMessage, meta: string, data: Buffer): void {
    const event = message.event;
    const link = this.writableLink(event, data);
    const raw = message.frame.raw;
    link.writer.answer(flag, raw, answerHeadEnd(raw), event, meta, data);
  }
}

/**
 * Connects with the given dialer and resolves once the Connack arrived. Rejects with SocketdError
 * `handshake_refused` (with the broker's Close code, reason and text), `connect_timeout` or `connect_failed`.
 * The entries wrap it: `connect` in index.ts (Node, every transport) and in browser.ts (WebSocket only).
 */
export async function connectWith(dialer: Dialer, url: string, options: ClientOptions = {}): Promise<Client> {
  const client = new Client(url, options, dialer);
  await client._start();
  return client;
}

