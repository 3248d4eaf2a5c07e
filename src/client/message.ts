/**
 * What the client hands to applications: {@link Reply} for answers to requests and streams, and
 * {@link IncomingMessage} for frames the broker routes to this client. Both wrap the received frame and
 * decode its parts on first use; their methods live on the prototype (no closure per message).
 */
import { Flag } from '../protocol/flags.js';
import type { Frame } from '../protocol/frame.js';
import { SocketdError } from './errors.js';

/** What may be sent as data: bytes, or a string (sent as UTF-8). */
export type Data = Uint8Array | string;

/** Metas to send: `k=v&k=v` on the wire, never encoded, so keys may not hold `&`/`=` and values not `&`. */
export type Metas = Record<string, string | number | boolean>;

const EMPTY = Buffer.alloc(0);

/** JSON as data: `client.send('ev', json({ a: 1 }))`; read it back with `message.json()`. */
export function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}

export function toBuffer(data: Data | undefined): Buffer {
  if (data === undefined) return EMPTY;
  if (typeof data === 'string') return data.length === 0 ? EMPTY : Buffer.from(data, 'utf8');
  if (Buffer.isBuffer(data)) return data;
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

function metaObject(frame: Frame): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of frame.metas()) out[k] = v;
  return out;
}

/** What every received frame offers: its event, data and metas, and readers for the data. */
abstract class Received {
  private metaCache: Record<string, string> | undefined = undefined;

  /** @internal */
  constructor(/** @internal */ readonly frame: Frame) {}

  get event(): string {
    return this.frame.event;
  }

  /** The data bytes (a view of the received frame). */
  get data(): Buffer {
    return this.frame.data;
  }

  /** The metas as a plain object. */
  get meta(): Record<string, string> {
    if (this.metaCache === undefined) this.metaCache = metaObject(this.frame);
    return this.metaCache;
  }

  /** The metas as received (`k=v&k=v`). */
  get metaString(): string {
    return this.frame.metaString;
  }

  text(): string {
    return this.frame.data.toString('utf8');
  }

  json<T = unknown>(): T {
    return JSON.parse(this.frame.data.toString('utf8')) as T;
  }
}

/** An answer: a Reply (48) or ReplyEnd (49) frame. */
export class Reply extends Received {
  /** True for a ReplyEnd: the last answer of its stream. */
  get end(): boolean {
    return this.frame.flag === Flag.ReplyEnd;
  }
}

/** Sends answers for an incoming frame; implemented by the client. */
export interface Responder {
  /** @internal */
  respond(message: IncomingMessage, flag: number, data: Data | undefined, meta: Metas | undefined): void;
  /** @internal */
  respondAlarm(message: IncomingMessage, code: number, text: string): void;
}

/** A Message, Request or Subscribe frame the broker routed to this client. */
export class IncomingMessage extends Received {
  /** @internal set once an answer that ends the exchange went out (ReplyEnd, Alarm, or Reply to a Request). */
  answered = false;

  /** @internal */
  constructor(
    private readonly responder: Responder,
    frame: Frame,
    /** @internal the client's connection generation the frame arrived on */ readonly generation: number,
    /** @internal `frame.event`, already known to the client (EventNames) */ private readonly eventName: string,
  ) {
    super(frame);
  }

  override get event(): string {
    return this.eventName;
  }

  /** The sid on this client's connection (for a Request/Subscribe: the broker's fresh sid, spec §5). */
  get sid(): string {
    return this.frame.sid;
  }

  get flag(): number {
    return this.frame.flag;
  }

  /** The `@` target the sender addressed (e.g. `svc`, `svc*`), undefined when routed by subscription. */
  get to(): string | undefined {
    return this.frame.meta('@');
  }

  /** True for a Request (41): answer with one reply() or replyEnd(). */
  get isRequest(): boolean {
    return this.frame.flag === Flag.Request;
  }

  /** True for a Subscribe (42): answer with any number of reply() and one replyEnd(). */
  get isSubscribe(): boolean {
    return this.frame.flag === Flag.Subscribe;
  }

  /** Sends a Reply (48). For a Request this is the answer; for a Subscribe one item of the stream. */
  reply(data?: Data, meta?: Metas): void {
    this.checkAnswerable();
    this.responder.respond(this, Flag.Reply, data, meta);
    if (this.frame.flag === Flag.Request) this.answered = true;
  }

  /** Sends a ReplyEnd (49): the last answer. */
  replyEnd(data?: Data, meta?: Metas): void {
    this.checkAnswerable();
    this.responder.respond(this, Flag.ReplyEnd, data, meta);
    this.answered = true;
  }

  /** Fails the request or stream: the requester gets an Alarm with this code and text (spec §6). */
  fail(text: string, code = 5000): void {
    this.checkAnswerable();
    this.responder.respondAlarm(this, code, text);
    this.answered = true;
  }

  private checkAnswerable(): void {
    if (this.frame.flag === Flag.Message) throw new SocketdError('invalid_argument', `'${this.frame.event}' is a Message: it cannot be answered`);
  }
}

/** `$presence.join` / `$presence.leave` (spec §4.2), for subscriptions made with `presence: true`. */
export interface PresenceNotice {
  kind: 'join' | 'leave';
  /** The room (exact event). */
  event: string;
  /** The broker's id of the session that joined or left. */
  id: string;
  /** Its `@` name ('' when it has none). */
  name: string;
}

/** One member of a room, from `client.presence(event)`. */
export interface PresenceEntry {
  id: string;
  name: string;
  transport: string;
  /** ISO time it subscribed. */
  since: string;
}
