/**
 * The client SDK (docs/client.md): one connection to the broker over tcp, tcps, udp, ws or wss, with
 * fire-and-forget messages, requests, reply streams, subscriptions, heartbeat and automatic reconnect.
 *
 * Hot path: frames are encoded by the link's FrameWriter straight into a slab (small data copied beside its
 * head, large data written as it is) and, over tcp, handed to the transport once per tick. Inbound frames
 * are decoded by the shared codec into views of the received bytes. Requests and streams are matched to
 * their answers by the number of their sid, read from the answer's bytes, and time out on one shared timer
 * (Deadlines). Per-request objects hold their own state (no closure per request).
 */
import type tls from 'node:tls';
import { Flag } from '../protocol/flags.js';
import type { Frame } from '../protocol/frame.js';
import { Frame as FrameClass } from '../protocol/frame.js';
import { FrameError } from '../protocol/errors.js';
import { FrameDecoder, MessageDecoder, encodeBare, encodeFrame } from '../protocol/codec.js';
import { DEFAULT_FRAME_LIMITS, DEFAULT_UDP_MAX_DATAGRAM, FRAME_PREFIX_BYTES, type FrameLimits } from '../protocol/limits.js';
import { AlarmCode, CloseCode } from '../protocol/codes.js';
import type { Connection, ConnectionHandler, TransportCloseCode } from '../transport/connection.js';
import type { Dial, Dialer } from './dialer.js';
import { TokenKeeper, type TokenProvider } from './token.js';
import { SocketdError } from './errors.js';
import { ClientEvents } from './events.js';
import { Deadlines, type DeadlineList, type DeadlineOwner, type Timed } from './deadlines.js';
import { EventNames } from './event-names.js';
import { FrameWriter, answerHeadEnd } from './frame-writer.js';
import { SID_BYTES, SidSource } from './sids.js';
import { TickClock } from './tick.js';
import {
  IncomingMessage,
  Reply,
  toBuffer,
  type Data,
  type Metas,
  type PresenceEntry,
  type PresenceNotice,
  type Responder,
} from './message.js';
import { isExactPattern, matchTokens, patternProblem } from './pattern.js';
import { parseClientUrl, type ClientTransport, type ClientUrl } from './url.js';

// ----- options -------------------------------------------------------------------------------------------

export interface ReconnectOptions {
  /** Default true. */
  enabled?: boolean;
  /** First delay in ms (default 100). */
  initialDelay?: number;
  /** Cap of the delay in ms (default 10 000). */
  maxDelay?: number;
  /** Growth per attempt (default 2). */
  factor?: number;
  /** Random spread, 0..1: each delay is multiplied by 1 ± jitter (default 0.2). */
  jitter?: number;
}

export interface ClientOptions {
  /** The session's `@` name: adds `@=name` to the url query (spec §4.1). */
  name?: string;
  /**
   * Sent as Connect meta `token` (spec §8). A function is called for a fresh token on connect, on every
   * reconnect, and `tokenRefreshMargin` before the current one expires (a JWT's `exp`): the fresh token is
   * then sent as `$auth` and the session stays open (docs/client.md, "Tokens").
   */
  token?: string | TokenProvider;
  /** With a token function: refresh this many ms before expiry, at most half the token's life (default 30 000). */
  tokenRefreshMargin?: number;
  /** Extra Connect metas (spec §3: they overlay the url query as handshake params). */
  metas?: Metas;
  /** ms to get the Connack, dial included (default 10 000). */
  connectTimeout?: number;
  /** Default request timeout in ms (default 10 000); also sent to the broker as meta `timeout`. */
  requestTimeout?: number;
  /** ms between Pings (default 20 000; 0 = no heartbeat). */
  heartbeatInterval?: number;
  /** Automatic reconnect; `false` turns it off. */
  reconnect?: boolean | ReconnectOptions;
  /** Most bytes the connection may hold unsent before send() throws `congested` (default 8 MiB). */
  maxOutboundBytes?: number;
  /** Largest data accepted by send/request (default 16 MiB, the broker's default maxData). */
  maxData?: number;
  /** TLS options for tcps and wss (ca, rejectUnauthorized, servername, cert, key, ...). */
  tls?: tls.ConnectionOptions;
  /** udp: largest datagram (default 2048, the broker's default). */
  maxDatagram?: number;
  /**
   * How long `pressured` stays true after the broker's last Pressure frame, in ms (default 2). The broker has
   * already stopped reading from this client (spec §7), so writes back up in the socket by themselves; the hold
   * only tells a publisher loop to yield. Longer holds left the connection idle: with 1 MiB messages, 10 ms
   * cost a third of the throughput (bench/results.md, "Pressure hold").
   */
  pressureHold?: number;
  /**
   * Handler for frames addressed to this client by `@` (as `onDirect`), installed before the handshake so a
   * Request that arrives right behind the Connack is not answered with 4004 (a named service that just
   * (re)connected can be picked at once).
   */
  onDirect?: MessageHandler;
}

export interface SendOptions {
  /** Extra metas. */
  meta?: Metas;
  /** The `@` target (spec §4.1): `svc`, `svc!`, `svc*` or `*`. Without it the event routes by subscription. */
  to?: string;
}

export interface RequestOptions extends SendOptions {
  /** ms (default: the client's requestTimeout); sent as meta `timeout` so the broker gives up at the same time. */
  timeout?: number;
  /** Aborting rejects with `aborted` and forgets the request. */
  signal?: AbortSignal;
}

export type StreamOptions = RequestOptions;

export interface SubscribeOptions {
  /** Queue group (spec §4.2): each Message goes to one member of the group. */
  group?: string;
  /** Also receive `$presence.join/leave` notices for this (exact) event, through client.onPresence. */
  presence?: boolean;
}

export type MessageHandler = (message: IncomingMessage) => void | Promise<void>;
export type PresenceHandler = (notice: PresenceNotice) => void;

export type ClientState = 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface Subscription {
  readonly pattern: string;
  readonly group: string | undefined;
  readonly presence: boolean;
  /** Removes this handler; sends `$unsub` when it was the last one for its pattern and group. */
  off(): Promise<void>;
}

// ----- constants -----------------------------------------------------------------------------------------

const PING = encodeBare(Flag.Ping);
const PONG = encodeBare(Flag.Pong);
// The final close, as the reference's session.close() (fixture f1: code=1001). Code 1000 would only announce
// a close ("closing starting"), which the broker answers by routing nothing new to the session.
const CLOSE = encodeFrame({ flag: Flag.Close, meta: `code=${CloseCode.ProtocolClose}` });
const EMPTY = Buffer.alloc(0);
/** Code of the Alarm sent when a local handler throws on a Request or Subscribe. */
export const HANDLER_FAILED_ALARM = 5000;
const NO_SUCH_HANDLER = AlarmCode.NoRoute;

/** Node timers can be unref'd (they must not keep a process alive); browser timers are plain numbers. */
function unrefTimer(timer: NodeJS.Timeout | null): void {
  if (timer !== null && typeof timer === 'object' && typeof timer.unref === 'function') timer.unref();
}

function ms(value: number | undefined, fallback: number, what: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0) throw new SocketdError('invalid_argument', `${what} must be a non-negative number of ms`);
  return value;
}

/** `k=v&k=v` from metas, plus `@` and `timeout` (spec §1: never encoded, so separators are refused). */
function formatMetas(meta: Metas | undefined, to: string | undefined, timeout: number): string {
  let out = '';
  if (meta !== undefined) {
    for (const key in meta) {
      const value = String(meta[key]);
      if (key.length === 0 || key.includes('&') || key.includes('=') || value.includes('&')) {
        throw new SocketdError('invalid_argument', `Meta '${key}=${value}': keys may not hold '&' or '=', values not '&'`);
      }
      out += out.length === 0 ? `${key}=${value}` : `&${key}=${value}`;
    }
  }
  if (to !== undefined) {
    if (to.length === 0 || to.includes('&')) throw new SocketdError('invalid_argument', `Invalid target '${to}'`);
    out += out.length === 0 ? `@=${to}` : `&@=${to}`;
  }
  if (timeout > 0) out += out.length === 0 ? `timeout=${timeout}` : `&timeout=${timeout}`;
  return out;
}

function alarmError(frame: Frame): SocketdError {
  const code = Number(frame.meta('code') ?? '0');
  return new SocketdError('alarm', frame.data.toString('utf8') || `Alarm ${code}`, {
    alarmCode: Number.isInteger(code) ? code : 0,
    sid: frame.sid,
    event: frame.event,
  });
}

// ----- pending requests and streams ----------------------------------------------------------------------

abstract class Pending implements Timed {
  signal: AbortSignal | null = null;
  abortListener: (() => void) | null = null;
  /** @internal Timed, owned by the client's Deadlines. */
  deadline = 0;
  /** @internal */
  deadlineList: DeadlineList | null = null;
  /** @internal */
  prevTimed: Timed | null = null;
  /** @internal */
  nextTimed: Timed | null = null;

  constructor(
    readonly client: Client,
    /** @internal the number of the sid (SidSource): answers are matched by it */ readonly id: number,
    readonly event: string,
  ) {}

  /** The sid the Request or Subscribe was sent with. */
  get sid(): string {
    return this.client._sidText(this.id);
  }

  /** A Reply/ReplyEnd arrived; returns true when this ends the exchange. */
  abstract onAnswer(frame: Frame): boolean;
  abstract fail(error: SocketdError): void;
}

/**
 * `new Promise(captureSettlers)` hands the settlers over here, so a request needs no executor closure of its
 * own: the executor runs synchronously, and they are taken right after.
 */
let capturedResolve: ((reply: Reply) => void) | null = null;
let capturedReject: ((error: unknown) => void) | null = null;
function captureSettlers(resolve: (reply: Reply) => void, reject: (error: unknown) => void): void {
  capturedResolve = resolve;
  capturedReject = reject;
}

class PendingRequest extends Pending {
  constructor(
    client: Client,
    id: number,
    event: string,
    private readonly resolve: (reply: Reply) => void,
    private readonly reject: (error: unknown) => void,
  ) {
    super(client, id, event);
  }

  onAnswer(frame: Frame): boolean {
    this.resolve(new Reply(frame));
    return true;
  }

  fail(error: SocketdError): void {
    this.reject(error);
  }
}

interface Waiter {
  resolve(result: IteratorResult<Reply>): void;
  reject(error: SocketdError): void;
}

const DONE: IteratorResult<Reply> = Object.freeze({ value: undefined, done: true }) as IteratorResult<Reply>;

/**
 * A Subscribe stream (spec §5): an async iterator over its replies. It ends after the ReplyEnd (yielded too
 * when it carries data), throws the Alarm that fails it, and `return()` (a `break` out of for-await) forgets
 * it locally: later replies are ignored.
 */
export class ReplyStream extends Pending implements AsyncIterableIterator<Reply> {
  private queue: Reply[] = [];
  private head = 0;
  private waiter: Waiter | null = null;
  private error: SocketdError | null = null;
  private finished = false;

  /** @internal */
  constructor(client: Client, id: number, event: string) {
    super(client, id, event);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<Reply>> {
    if (this.head < this.queue.length) {
      const value = this.queue[this.head++]!;
      if (this.head === this.queue.length) {
        this.queue = [];
        this.head = 0;
      }
      return Promise.resolve({ value, done: false });
    }
    if (this.error !== null) {
      const error = this.error;
      this.error = null;
      return Promise.reject(error);
    }
    if (this.finished) return Promise.resolve(DONE);
    return new Promise<IteratorResult<Reply>>((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  /** Stops the stream locally (nothing is sent: the broker drops late replies). */
  return(): Promise<IteratorResult<Reply>> {
    if (!this.finished) {
      this.finished = true;
      this.client._forget(this);
    }
    this.queue = [];
    this.head = 0;
    this.error = null;
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.resolve(DONE);
    return Promise.resolve(DONE);
  }

  /** True once ended, failed or returned. */
  get done(): boolean {
    return this.finished;
  }

  /** Collects every reply (handy for small streams). */
  async toArray(): Promise<Reply[]> {
    const out: Reply[] = [];
    for await (const reply of this) out.push(reply);
    return out;
  }

  /** @internal */
  onAnswer(frame: Frame): boolean {
    const end = frame.flag === Flag.ReplyEnd;
    if (end) this.finished = true;
    if (!end || frame.data.length > 0) {
      const reply = new Reply(frame);
      const waiter = this.waiter;
      if (waiter !== null) {
        this.waiter = null;
        waiter.resolve({ value: reply, done: false });
      } else {
        this.queue.push(reply);
      }
    } else if (this.waiter !== null) {
      const waiter = this.waiter;
      this.waiter = null;
      waiter.resolve(DONE);
    }
    return end;
  }

  /** @internal */
  fail(error: SocketdError): void {
    if (this.finished) return;
    this.finished = true;
    const waiter = this.waiter;
    if (waiter !== null) {
      this.waiter = null;
      waiter.reject(error);
    } else {
      this.error = error;
    }
  }
}

// ----- subscriptions -------------------------------------------------------------------------------------

class LocalSubscription implements Subscription {
  readonly tokens: readonly string[];
  readonly exact: boolean;
  readonly key: string;
  active = true;

  constructor(
    private readonly client: Client,
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

function subscriptionKey(pattern: string, group: string | undefined): string {
  return group === undefined || group.length === 0 ? pattern : `${pattern}\u0000${group}`;
}

function subMeta(pattern: string, group: string | undefined, presence: boolean): string {
  let meta = `event=${pattern}`;
  if (group !== undefined && group.length > 0) meta += `&group=${group}`;
  if (presence) meta += '&presence=1';
  return meta;
}

// ----- the connection under the client -------------------------------------------------------------------

/** One transport connection and its decoder; a new one per (re)connect, so late events of an old one are told apart. */
class Link implements ConnectionHandler {
  private readonly decoder: FrameDecoder | null;
  private readonly messageDecoder: MessageDecoder | null;
  /** Every frame of this connection is written through it. */
  readonly writer: FrameWriter;
  /** When the last frame arrived (TickClock): every frame counts as a sign of life for the heartbeat. */
  lastReceived = 0;
  /** Set by a Close frame from the broker: why the connection is ending. */
  closeError: SocketdError | null = null;
  /** Called once the connection is closed (close() waits on it). */
  onClosed: (() => void) | null = null;
  isClosed = false;

  constructor(
    private readonly owner: Client,
    readonly connection: Connection,
    limits: FrameLimits,
    sids: SidSource,
    maxOutboundBytes: number,
    private readonly clock: TickClock,
  ) {
    this.writer = new FrameWriter(connection, sids, maxOutboundBytes);
    if (connection.framing === 'stream') {
      this.decoder = new FrameDecoder(limits);
      this.messageDecoder = null;
    } else {
      this.decoder = null;
      this.messageDecoder = new MessageDecoder(limits);
    }
  }

  connectionOnData(data: Buffer): void {
    if (this.decoder !== null) {
      this.decoder.push(data, this);
      return;
    }
    const result = this.messageDecoder!.decode(data);
    if (result instanceof FrameClass) this.onFrame(result);
    else this.owner._linkOnFrameError(this, result);
  }

  /** FrameSink */
  onFrame(frame: Frame): void {
    this.lastReceived = this.clock.now();
    this.owner._linkOnFrame(this, frame);
  }

  /** FrameSink */
  onFrameError(error: FrameError): void {
    this.owner._linkOnFrameError(this, error);
  }

  connectionOnDrain(): void {
    this.writer.full = false;
    this.owner._linkOnDrain(this);
  }

  connectionOnInvalid(code: string, detail: string): void {
    this.owner._linkOnFrameError(this, new FrameError('frame_malformed', `${code}: ${detail}`, true));
  }

  connectionOnClose(code: TransportCloseCode, detail: string): void {
    this.isClosed = true;
    this.decoder?.stop();
    const onClosed = this.onClosed;
    this.onClosed = null;
    onClosed?.();
    this.owner._linkOnClose(this, code, detail);
  }
}

interface Handshake {
  sid: string;
  resolve(): void;
  reject(error: SocketdError): void;
  timer: NodeJS.Timeout | null;
  dial: Dial | null;
  link: Link | null;
}

function handshakeOnTimeout(client: Client, hs: Handshake): void {
  hs.timer = null;
  client._failHandshake(hs, new SocketdError('connect_timeout', `No Connack within ${client._connectTimeout} ms`));
}

function heartbeatTick(client: Client): void {
  client._heartbeat();
}

function reconnectTick(client: Client): void {
  void client._reconnectNow();
}

function pressureOff(client: Client): void {
  client._pressureOff();
}

// ----- the client ----------------------------------------------------------------------------------------

export class Client implements Responder, DeadlineOwner {
  /** Life events: disconnect, reconnecting, reconnect, error, alarm, pressure, close. */
  readonly events = new ClientEvents();
  /** The parsed url (transport, host, port) and the Connect url (without `sd:`). */
  readonly target: ClientUrl;

  private stateValue: ClientState = 'connecting';
  private link: Link | null = null;
  private handshake: Handshake | null = null;
  private generation = 0;
  private readonly sids = new SidSource();
  /** Requests and streams by the number of their sid. */
  private readonly pending = new Map<number, Pending>();
  private readonly clock = new TickClock();
  private readonly deadlines = new Deadlines(this, this.clock);
  private readonly eventNames = new EventNames();

  /** Subscriptions by `pattern \0 group` (several local handlers may share one broker subscription). */
  private readonly byKey = new Map<string, LocalSubscription[]>();
  /** Exact patterns by event, wildcard patterns in a list; both copy-on-write (handlers may unsubscribe). */
  private readonly exact = new Map<string, LocalSubscription[]>();
  private wild: LocalSubscription[] = [];
  private directHandler: MessageHandler | null = null;
  private presenceHandlers: PresenceHandler[] = [];

  private heartbeatTimer: NodeJS.Timeout | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private reconnectAttempts = 0;
  private pressureTimer: NodeJS.Timeout | null = null;
  private pressuredValue = false;
  private drainWaiters: (() => void)[] = [];
  private closePromise: Promise<void> | null = null;

  private readonly connectMeta: string;
  /** The token option: fresh tokens for each connection and before expiry (token.ts). */
  private readonly tokens: TokenKeeper;
  /** @internal */ readonly _connectTimeout: number;
  private readonly requestTimeout: number;
  /** The meta of a request with no options: `timeout=<requestTimeout>` (or none). */
  private readonly defaultRequestMeta: string;
  private readonly heartbeatInterval: number;
  private readonly reconnect: Required<ReconnectOptions>;
  private readonly maxOutboundBytes: number;
  private readonly maxData: number;
  private readonly pressureHold: number;
  private readonly limits: FrameLimits;
  private readonly tlsOptions: tls.ConnectionOptions | undefined;
  private readonly maxDatagram: number;

  /**
   * Use {@link connect}. `dialer` opens the transport: the Node entry passes its tcp/tcps/udp/ws/wss dialer,
   * the browser entry its WebSocket one.
   */
  constructor(url: string, options: ClientOptions, private readonly dialer: Dialer) {
    this.target = parseClientUrl(url, options.name);
    this.directHandler = options.onDirect ?? null;
    this._connectTimeout = ms(options.connectTimeout, 10_000, 'connectTimeout');
    this.requestTimeout = ms(options.requestTimeout, 10_000, 'requestTimeout');
    this.defaultRequestMeta = formatMetas(undefined, undefined, this.requestTimeout);
    this.heartbeatInterval = ms(options.heartbeatInterval, 20_000, 'heartbeatInterval');
    const r = options.reconnect;
    const ro: ReconnectOptions = typeof r === 'object' ? r : { enabled: r !== false };
    this.reconnect = {
      enabled: ro.enabled !== false,
      initialDelay: ms(ro.initialDelay, 100, 'reconnect.initialDelay'),
      maxDelay: ms(ro.maxDelay, 10_000, 'reconnect.maxDelay'),
      factor: ro.factor ?? 2,
      jitter: Math.min(1, Math.max(0, ro.jitter ?? 0.2)),
    };
    this.maxOutboundBytes = options.maxOutboundBytes ?? 8 * 1024 * 1024;
    this.maxData = options.maxData ?? DEFAULT_FRAME_LIMITS.maxData;
    // Short: the broker already stops reading from us while the target is congested, so TCP pushes back by
    // itself; the hold only keeps a burst from outrunning that signal.
    this.pressureHold = ms(options.pressureHold, 2, 'pressureHold');
    this.tlsOptions = options.tls;
    this.maxDatagram = options.maxDatagram ?? DEFAULT_UDP_MAX_DATAGRAM;
    this.limits = DEFAULT_FRAME_LIMITS;
    const metas: Metas = { ...(options.metas ?? {}) };
    if (typeof options.token === 'string') metas['token'] = options.token;
    this.tokens = new TokenKeeper(options.token, ms(options.tokenRefreshMargin, 30_000, 'tokenRefreshMargin'), {
      isConnected: () => this.connected,
      sendAuth: (token) => this.sendAuth(token),
      refreshFailed: (error) => this.events.emit('error', error instanceof SocketdError ? error
        : new SocketdError('token_failed', `The token refresh failed: ${(error as Error).message}`)),
    });

    const extra = formatMetas(metas, undefined, 0);
    this.connectMeta = extra.length === 0 ? 'Socket.D=1.0' : `Socket.D=1.0&${extra}`;
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
    return this.pressuredValue || (this.link !== null && this.link.writer.full);
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
    return new Promise<void>((resolve) => this.drainWaiters.push(resolve));
  }

  // ----- sending -----------------------------------------------------------------------------------------

  /**
   * Sends a Message (40), fire and forget. Throws SocketdError: `closed`, `connection_lost` (not connected,
   * e.g. while reconnecting), `too_large`, `congested` (maxOutboundBytes), `invalid_argument`.
   * The data buffer is written as is: do not modify it afterwards.
   */
  send(event: string, data?: Data, options?: SendOptions): void {
    const meta = options === undefined ? '' : formatMetas(options.meta, options.to, 0);
    this.write(Flag.Message, event, meta, toBuffer(data));
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
    const timeout = ms(options.timeout, this.requestTimeout, 'timeout');
    let meta: string;
    if (options.meta === undefined && options.to === undefined && timeout === this.requestTimeout) {
      meta = this.defaultRequestMeta;
    } else {
      try {
        meta = formatMetas(options.meta, options.to, timeout);
      } catch (error) {
        return Promise.reject(error);
      }
    }
    return this.openRequest(event, toBuffer(data), meta, timeout, options.signal);
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
      stream = new ReplyStream(this, this.write(Flag.Subscribe, event, meta, toBuffer(data)), event);
      this.track(stream, timeout, options.signal);
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
    const siblings = this.byKey.get(sub.key);
    const needsSub = siblings === undefined || (presence && !siblings.some((s) => s.presence));
    this.addLocal(sub);
    if (needsSub && this.connected) {
      try {
        await this.control('$sub', subMeta(pattern, group, presence));
      } catch (error) {
        // A lost connection keeps the handler: the $sub is sent again on reconnect.
        if ((error as SocketdError).code !== 'connection_lost') {
          this.removeLocal(sub);
          throw error;
        }
      }
    }
    return sub;
  }

  /** Removes every handler of `pattern` (and group) and sends `$unsub`. */
  async off(pattern: string, options: { group?: string } = {}): Promise<void> {
    const key = subscriptionKey(pattern, options.group);
    const list = this.byKey.get(key);
    if (list === undefined) return;
    for (const sub of list.slice()) this.removeLocal(sub);
    await this.sendUnsub(pattern, options.group);
  }

  /** @internal */
  async _unsubscribe(sub: LocalSubscription): Promise<void> {
    if (!sub.active) return;
    this.removeLocal(sub);
    if (this.byKey.has(sub.key)) return; // other handlers still use the broker subscription
    await this.sendUnsub(sub.pattern, sub.group);
  }

  /**
   * Handles frames addressed to this client by name (`to`, the `@` meta) instead of the pattern handlers;
   * `null` removes it. Without it such frames go to the pattern handlers whose pattern matches their event.
   */
  onDirect(handler: MessageHandler | null): void {
    this.directHandler = handler;
  }

  /** Receives `$presence.join/leave` for the events subscribed with `presence: true`. Returns a remover. */
  onPresence(handler: PresenceHandler): () => void {
    this.presenceHandlers = [...this.presenceHandlers, handler];
    return () => {
      this.presenceHandlers = this.presenceHandlers.filter((h) => h !== handler);
    };
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
      if (!link.isClosed) {
        link.writer.raw(CLOSE);
        if (link.connection.transport === 'udp') {
          // udp sends at once but closing the socket in the same tick could cancel the datagram.
          setImmediate(endLink, link);
        } else {
          link.writer.end('client closed');
        }
      }
    }
    const waits = links.filter((l) => !l.isClosed).map((l) => new Promise<void>((resolve) => {
      l.onClosed = resolve;
    }));
    this.closePromise = Promise.all(waits).then(() => {
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
    const meta = this.tokens.dynamic && token !== undefined ? `${this.connectMeta}&token=${token}` : this.connectMeta;
    await this.dialLink(meta);
    this.tokens.admitted(token);
  }

  private dialLink(connectMeta: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const hs: Handshake = { sid: this.sids.takeText(), resolve, reject, timer: null, dial: null, link: null };
      this.handshake = hs;
      hs.timer = setTimeout(handshakeOnTimeout, this._connectTimeout, this, hs);
      hs.dial = this.dialer(this.target, { tls: this.tlsOptions, maxDatagram: this.maxDatagram, maxPayload: this.limits.maxFrame });
      hs.dial.promise.then(
        (connection) => {
          if (this.handshake !== hs) {
            connection.destroy('handshake abandoned');
            return;
          }
          const link = new Link(this, connection, this.limits, this.sids, this.maxOutboundBytes, this.clock);
          hs.link = link;
          connection.start(link);
          const url = this.target.connectUrl;
          link.writer.raw(encodeFrame({ flag: Flag.Connect, sid: hs.sid, event: url, meta: connectMeta, data: url }));
        },
        (error: SocketdError) => this._failHandshake(hs, error),
      );
    });
  }

  /** @internal */
  _failHandshake(hs: Handshake, error: SocketdError): void {
    if (this.handshake !== hs) return;
    this.handshake = null;
    if (hs.timer !== null) clearTimeout(hs.timer);
    hs.dial?.cancel(error.message);
    if (hs.link !== null && !hs.link.isClosed) hs.link.connection.destroy(error.message);
    hs.reject(error);
  }

  private completeHandshake(hs: Handshake): void {
    this.handshake = null;
    if (hs.timer !== null) clearTimeout(hs.timer);
    this.link = hs.link;
    this.generation++;
    this.stateValue = 'open';
    hs.link!.lastReceived = this.clock.now();
    if (this.heartbeatInterval > 0 && this.heartbeatTimer === null) {
      this.heartbeatTimer = setInterval(heartbeatTick, this.heartbeatInterval, this);
      unrefTimer(this.heartbeatTimer);
    }
    hs.resolve();
  }

  /** @internal */
  async _reconnectNow(): Promise<void> {
    this.reconnectTimer = null;
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
    const attempts = this.reconnectAttempts;
    this.reconnectAttempts = 0;
    const link = this.link;
    await this.restoreSubscriptions();
    if (this.link === link && this.stateValue === 'open') this.events.emit('reconnect', { attempts });
  }

  private scheduleReconnect(): void {
    this.stateValue = 'reconnecting';
    const r = this.reconnect;
    const base = Math.min(r.maxDelay, r.initialDelay * Math.pow(r.factor, this.reconnectAttempts));
    const delay = Math.max(0, Math.round(base * (1 + r.jitter * (2 * Math.random() - 1))));
    this.reconnectAttempts++;
    this.events.emit('reconnecting', { attempt: this.reconnectAttempts, delay });
    this.reconnectTimer = setTimeout(reconnectTick, delay, this);
  }

  private async restoreSubscriptions(): Promise<void> {
    const acks: Promise<unknown>[] = [];
    for (const list of this.byKey.values()) {
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
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.stopHeartbeat();
    if (this.pressureTimer !== null) clearTimeout(this.pressureTimer);
    this.pressureTimer = null;
    this.pressuredValue = false;
    this.wakeDrainWaiters();
    if (this.handshake !== null) this._failHandshake(this.handshake, error);
    this.failPending(error);
    this.deadlines.clear();
  }

  private stopHeartbeat(): void {
    if (this.heartbeatTimer !== null) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
  }

  private checkOpen(): void {
    if (this.stateValue === 'closed') throw new SocketdError('closed', 'The client was closed');
  }

  /** @internal */
  _heartbeat(): void {
    const link = this.link;
    if (link === null || this.stateValue !== 'open') return;
    // Every frame counts as a sign of life, the Pong to our last Ping included (udp has no other way to tell).
    const silent = this.clock.now() - link.lastReceived;
    if (silent > this.heartbeatInterval * 2.5) {
      link.closeError = new SocketdError('connection_lost', `No frame from the broker for ${Math.round(silent)} ms`);
      link.connection.destroy('heartbeat timeout');
      return;
    }
    link.writer.raw(PING);
  }

  // ----- internals: link events --------------------------------------------------------------------------

  /** @internal */
  _linkOnFrame(link: Link, frame: Frame): void {
    if (link !== this.link) {
      const hs = this.handshake;
      if (hs !== null && hs.link === link) this.handshakeFrame(hs, frame);
      return;
    }
    switch (frame.flag) {
      case Flag.Message:
      case Flag.Request:
      case Flag.Subscribe:
        this.dispatch(frame);
        return;
      case Flag.Reply:
      case Flag.ReplyEnd: {
        const pending = this.pendingOf(frame);
        if (pending !== undefined && pending.onAnswer(frame)) this._forget(pending);
        return;
      }
      case Flag.Alarm: {
        const pending = this.pendingOf(frame);
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
        this.pressuredValue = true;
        if (this.pressureTimer !== null) clearTimeout(this.pressureTimer);
        this.pressureTimer = setTimeout(pressureOff, this.pressureHold, this);
        unrefTimer(this.pressureTimer);
        this.events.emit('pressure', frame.data.toString('utf8'));
        return;
      case Flag.Close: {
        const code = Number(frame.meta('code') ?? CloseCode.ProtocolClose);
        const reason = frame.meta('reason') ?? '';
        const text = frame.data.toString('utf8');
        link.closeError = new SocketdError('connection_lost', `The broker closed the connection (${code}${reason ? ` ${reason}` : ''})${text ? `: ${text}` : ''}`, {
          closeCode: code,
          reason,
        });
        link.writer.end('broker sent Close');
        return;
      }
      default:
        return; // Pong, Connack again: nothing to do
    }
  }

  private handshakeFrame(hs: Handshake, frame: Frame): void {
    if (frame.flag === Flag.Connack) {
      this.completeHandshake(hs);
      return;
    }
    if (frame.flag === Flag.Close) {
      const code = Number(frame.meta('code') ?? CloseCode.ProtocolClose);
      const reason = frame.meta('reason') ?? '';
      const text = frame.data.toString('utf8');
      this._failHandshake(hs, new SocketdError('handshake_refused', text || `Connection refused (${code}${reason ? ` ${reason}` : ''})`, {
        closeCode: code,
        reason,
      }));
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
      this._failHandshake(hs, e);
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
    this.wakeDrainWaiters();
  }

  /** @internal */
  _linkOnClose(link: Link, _code: TransportCloseCode, detail: string): void {
    const hs = this.handshake;
    if (hs !== null && hs.link === link) {
      this._failHandshake(hs, link.closeError === null
        ? new SocketdError('connect_failed', `The connection closed before the Connack: ${detail}`)
        : new SocketdError('handshake_refused', link.closeError.message));
      return;
    }
    if (link !== this.link) return;
    this.link = null;
    this.stopHeartbeat();
    this.wakeDrainWaiters();
    const error = link.closeError ?? new SocketdError('connection_lost', `Connection lost: ${detail}`);
    this.failPending(error);
    this.events.emit('disconnect', error);
    if (this.stateValue === 'closed') return;
    if (this.reconnect.enabled) {
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
   * Encodes and queues one frame with the next sid; returns the sid's number. Small data is copied beside
   * its head, larger data written as it is. Throws SocketdError.
   */
  private write(flag: number, event: string, meta: string, data: Buffer): number {
    const link = this.link;
    if (link === null || this.stateValue !== 'open') {
      if (this.stateValue === 'closed') throw new SocketdError('closed', 'The client was closed');
      throw new SocketdError('connection_lost', 'Not connected to the broker (reconnecting)');
    }
    if (data.length > this.maxData) {
      throw new SocketdError('too_large', `Data of ${data.length} bytes exceeds maxData (${this.maxData})`, { event });
    }
    return link.writer.frame(flag, event, meta, data);
  }

  /** The request or stream a Reply, ReplyEnd or Alarm answers: its sid is one of ours, read as a number. */
  private pendingOf(frame: Frame): Pending | undefined {
    if (this.pending.size === 0) return undefined;
    // Read in the frame's source at its offset (its header is always there): no view of the frame is made.
    const source = frame.source;
    const base = frame.start;
    const sidEnd = base + FRAME_PREFIX_BYTES + SID_BYTES;
    // Our sids are 32 bytes without a zero, so the separator right after them is the first one.
    if (frame.size < FRAME_PREFIX_BYTES + SID_BYTES + 2 || source[sidEnd] !== 0x00 || source[sidEnd + 1] !== 0x0a) return undefined;
    const id = this.sids.parse(source, base + FRAME_PREFIX_BYTES, sidEnd);
    return id < 0 ? undefined : this.pending.get(id);
  }

  private openRequest(event: string, data: Buffer, meta: string, timeout: number, signal: AbortSignal | undefined): Promise<Reply> {
    if (signal?.aborted === true) return Promise.reject(new SocketdError('aborted', 'The request was aborted', { event }));
    const promise = new Promise<Reply>(captureSettlers);
    const resolve = capturedResolve!;
    const reject = capturedReject!;
    capturedResolve = null;
    capturedReject = null;
    let id: number;
    try {
      id = this.write(Flag.Request, event, meta, data);
    } catch (error) {
      reject(error);
      return promise;
    }
    this.track(new PendingRequest(this, id, event, resolve, reject), timeout, signal);
    return promise;
  }

  /** Sends a fresh token (`$auth`, docs/protocol.md); resolves with the broker's `exp` (epoch s, 0 none). */
  private async sendAuth(token: string): Promise<number> {
    const timeout = this.requestTimeout;
    const reply = await this.openRequest('$auth', Buffer.from(token, 'utf8'), timeout > 0 ? `timeout=${timeout}` : '', timeout, undefined);
    return Number(reply.meta['exp'] ?? 0) || 0;
  }

  /** A control Request (`$sub`, `$unsub`, `$presence`), acknowledged by ReplyEnd or refused by an Alarm. */
  private control(event: string, meta: string): Promise<Reply> {
    const timeout = this.requestTimeout;
    return this.openRequest(event, EMPTY, timeout > 0 ? `${meta}&timeout=${timeout}` : meta, timeout, undefined);
  }

  private async sendUnsub(pattern: string, group: string | undefined): Promise<void> {
    if (!this.connected) return; // the broker dropped every subscription with the connection
    try {
      await this.control('$unsub', subMeta(pattern, group, false));
    } catch (error) {
      if ((error as SocketdError).code !== 'connection_lost') throw error;
    }
  }

  private track(pending: Pending, timeout: number, signal: AbortSignal | undefined): void {
    this.pending.set(pending.id, pending);
    if (timeout > 0) this.deadlines.add(pending, timeout);
    if (signal !== undefined) {
      pending.signal = signal;
      pending.abortListener = () => {
        this._forget(pending);
        pending.fail(new SocketdError('aborted', 'The request was aborted', { sid: pending.sid, event: pending.event }));
      };
      signal.addEventListener('abort', pending.abortListener, { once: true });
    }
  }

  /** @internal Forgets a request or stream: later answers are ignored. */
  _forget(pending: Pending): void {
    // Sids are never reused, so whatever the map holds under this number is this one.
    this.pending.delete(pending.id);
    this.deadlines.remove(pending);
    if (pending.signal !== null) {
      if (pending.abortListener !== null) pending.signal.removeEventListener('abort', pending.abortListener);
      pending.signal = null;
      pending.abortListener = null;
    }
  }

  /** @internal DeadlineOwner: a request or stream timed out. */
  deadlineExpired(entry: Timed): void {
    const pending = entry as Pending;
    this._forget(pending);
    pending.fail(new SocketdError('timeout', `No answer to '${pending.event}' within the timeout`, { sid: pending.sid, event: pending.event }));
  }

  private failPending(error: SocketdError): void {
    if (this.pending.size === 0) return;
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const pending of all) {
      this._forget(pending);
      pending.fail(error);
    }
  }

  /** @internal */
  _pressureOff(): void {
    this.pressureTimer = null;
    this.pressuredValue = false;
    this.wakeDrainWaiters();
  }

  private wakeDrainWaiters(): void {
    if (this.drainWaiters.length === 0 || (this.pressured && this.stateValue !== 'closed')) return;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const resolve of waiters) resolve();
  }

  // ----- internals: incoming frames ----------------------------------------------------------------------

  private addLocal(sub: LocalSubscription): void {
    const list = this.byKey.get(sub.key);
    this.byKey.set(sub.key, list === undefined ? [sub] : [...list, sub]);
    if (sub.exact) {
      const same = this.exact.get(sub.pattern);
      this.exact.set(sub.pattern, same === undefined ? [sub] : [...same, sub]);
    } else {
      this.wild = [...this.wild, sub];
    }
  }

  private removeLocal(sub: LocalSubscription): void {
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
      this.wild = this.wild.filter((s) => s !== sub);
    }
  }

  /**
   * Message: every matching handler. Request/Subscribe: the first matching handler only (one answer).
   * A frame addressed by `@` goes to the direct handler when there is one. A Request/Subscribe nobody
   * handles is answered with Alarm 4004 so the requester does not wait for its timeout.
   */
  private dispatch(frame: Frame): void {
    const event = this.eventNames.of(frame);
    if (event.charCodeAt(0) === 36 /* $ */) {
      this.presenceNotice(frame);
      return;
    }
    const message = new IncomingMessage(this, frame, this.generation, event);
    if (this.directHandler !== null && frame.meta('@') !== undefined) {
      this.invoke(this.directHandler, message);
      return;
    }
    const all = frame.flag === Flag.Message;
    let handled = false;
    const exact = this.exact.get(event);
    if (exact !== undefined) {
      for (let i = 0; i < exact.length; i++) {
        this.invoke(exact[i]!.handler, message);
        handled = true;
        if (!all) return;
      }
    }
    const wild = this.wild;
    for (let i = 0; i < wild.length; i++) {
      const sub = wild[i]!;
      if (!matchTokens(sub.tokens, event)) continue;
      this.invoke(sub.handler, message);
      handled = true;
      if (!all) return;
    }
    if (!handled && !all) {
      this.respondAlarmQuietly(message, NO_SUCH_HANDLER, `No handler for '${event}' on this client`);
    }
  }

  private presenceNotice(frame: Frame): void {
    const kind = frame.event === '$presence.join' ? 'join' : frame.event === '$presence.leave' ? 'leave' : null;
    if (kind === null || frame.flag !== Flag.Message) return;
    const notice: PresenceNotice = { kind, event: frame.meta('event') ?? '', id: frame.meta('id') ?? '', name: frame.meta('name') ?? '' };
    for (const handler of this.presenceHandlers) {
      try {
        handler(notice);
      } catch (error) {
        this.events.emit('error', new SocketdError('handler_error', `Presence handler failed: ${(error as Error)?.message ?? error}`, { cause: error }));
      }
    }
  }

  private invoke(handler: MessageHandler, message: IncomingMessage): void {
    try {
      const result = handler(message);
      if (result !== undefined && typeof (result as Promise<void>).then === 'function') {
        (result as Promise<void>).then(undefined, (error: unknown) => this.handlerFailed(message, error));
      }
    } catch (error) {
      this.handlerFailed(message, error);
    }
  }

  private handlerFailed(message: IncomingMessage, error: unknown): void {
    const text = error instanceof Error ? error.message : String(error);
    this.events.emit('error', new SocketdError('handler_error', `Handler for '${message.event}' failed: ${text}`, {
      cause: error,
      sid: message.sid,
      event: message.event,
    }));
    if (message.flag !== Flag.Message && !message.answered) {
      message.answered = true;
      this.respondAlarmQuietly(message, HANDLER_FAILED_ALARM, text);
    }
  }

  private respondAlarmQuietly(message: IncomingMessage, code: number, text: string): void {
    try {
      this.respondAlarm(message, code, text);
    } catch {
      // disconnected or congested: the broker times the stream out
    }
  }

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
    const link = this.link;
    if (link === null || this.stateValue !== 'open') {
      if (this.stateValue === 'closed') throw new SocketdError('closed', 'The client was closed');
      throw new SocketdError('connection_lost', 'Not connected to the broker (reconnecting)');
    }
    const event = message.event;
    if (data.length > this.maxData) {
      throw new SocketdError('too_large', `Data of ${data.length} bytes exceeds maxData (${this.maxData})`, { event });
    }
    const raw = message.frame.raw;
    link.writer.answer(flag, raw, answerHeadEnd(raw), event, meta, data);
  }
}

function endLink(link: Link): void {
  link.writer.end('client closed');
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
