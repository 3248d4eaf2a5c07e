/**
 * Incoming Message, Request and Subscribe frames to the application's handlers (spec §4.1, §4.2;
 * docs/client.md "Request and reply", "Address by name"): the direct (`@`) handler, the pattern handlers of
 * the SubscriptionTable, the presence handlers, and what happens when a handler throws or nobody handles a
 * Request (an Alarm, so the requester does not wait for its timeout). Separate from client.ts: it never
 * writes a frame itself, it answers through the client's Responder.
 */
import { Flag } from '../protocol/flags.js';
import type { Frame } from '../protocol/frame.js';
import { AlarmCode } from '../protocol/codes.js';
import { SocketdError } from './errors.js';
import type { ClientEvents } from './events.js';
import { EventNames } from './event-names.js';
import { IncomingMessage, type PresenceNotice, type Responder } from './message.js';
import type { MessageHandler, PresenceHandler } from './options.js';
import { matchTokens } from './pattern.js';
import type { SubscriptionTable } from './subscriptions.js';

/** Code of the Alarm sent when a local handler throws on a Request or Subscribe. */
export const HANDLER_FAILED_ALARM = 5000;
const NO_SUCH_HANDLER = AlarmCode.NoRoute;

/** The handlers of one client; the client hands it every Message, Request and Subscribe of its current link. */
export class Dispatcher {
  private readonly eventNames = new EventNames();
  /** The handler of frames addressed to this client by `@` (client.onDirect). */
  direct: MessageHandler | null;
  private presenceHandlers: PresenceHandler[] = [];

  constructor(
    private readonly responder: Responder,
    private readonly events: ClientEvents,
    private readonly subs: SubscriptionTable,
    direct: MessageHandler | null,
  ) {
    this.direct = direct;
  }

  /** Adds a presence handler; returns its remover. */
  onPresence(handler: PresenceHandler): () => void {
    this.presenceHandlers = [...this.presenceHandlers, handler];
    return () => {
      this.presenceHandlers = this.presenceHandlers.filter((h) => h !== handler);
    };
  }

  /**
   * Message: every matching handler. Request/Subscribe: the first matching handler only (one answer).
   * A frame addressed by `@` goes to the direct handler when there is one. A Request/Subscribe nobody
   * handles is answered with Alarm 4004 so the requester does not wait for its timeout.
   */
  dispatch(frame: Frame, generation: number): void {
    const event = this.eventNames.of(frame);
    if (event.charCodeAt(0) === 36 /* $ */) {
      this.presenceNotice(frame);
      return;
    }
    const message = new IncomingMessage(this.responder, frame, generation, event);
    if (this.direct !== null && frame.meta('@') !== undefined) {
      this.invoke(this.direct, message);
      return;
    }
    const all = frame.flag === Flag.Message;
    let handled = false;
    const exact = this.subs.exactOf(event);
    if (exact !== undefined) {
      for (let i = 0; i < exact.length; i++) {
        this.invoke(exact[i]!.handler, message);
        handled = true;
        if (!all) return;
      }
    }
    const wild = this.subs.wild;
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
      this.responder.respondAlarm(message, code, text);
    } catch {
      // disconnected or congested: the broker times the stream out
    }
  }
}
