/**
 * The client's life events, kept apart from `client.on` (which subscribes to broker events). Unlike Node's
 * EventEmitter, an `error` with no listener is not thrown: errors that have no caller to reject go here.
 */
import type { SocketdError } from './errors.js';

export interface ClientEventMap {
  /** The connection dropped or the broker closed it; pending requests were failed with the same error. */
  disconnect: (error: SocketdError) => void;
  /** A reconnect attempt is scheduled after `delay` ms (attempt counts from 1). */
  reconnecting: (info: { attempt: number; delay: number }) => void;
  /** Connected again and every subscription was re-sent (`attempts` = dial attempts it took). */
  reconnect: (info: { attempts: number }) => void;
  /** An error nobody else was told about: a restored subscription refused, a handler that threw, a bad frame. */
  error: (error: SocketdError) => void;
  /** An Alarm for no pending request, e.g. a Message sent `to` a name nobody has (code `alarm`, with alarmCode). */
  alarm: (error: SocketdError) => void;
  /** The broker sent Pressure (spec §6): a target this client writes to is congested. */
  pressure: (text: string) => void;
  /** The client is closed for good: by close(), a refused re-handshake, or a loss with reconnect disabled. */
  close: () => void;
}

export type ClientEventName = keyof ClientEventMap;

export class ClientEvents {
  private readonly listeners: { [K in ClientEventName]?: ClientEventMap[K][] } = {};

  /** Adds a listener; returns a function that removes it. */
  on<K extends ClientEventName>(name: K, listener: ClientEventMap[K]): () => void {
    const list = (this.listeners[name] ?? []) as ClientEventMap[K][];
    // Copy on write: emit() may be iterating the old list.
    this.listeners[name] = [...list, listener] as never;
    return () => this.off(name, listener);
  }

  /** Like on(), removed after the first call. */
  once<K extends ClientEventName>(name: K, listener: ClientEventMap[K]): () => void {
    const wrapper = ((...args: unknown[]) => {
      off();
      (listener as (...a: unknown[]) => void)(...args);
    }) as ClientEventMap[K];
    const off = this.on(name, wrapper);
    return off;
  }

  off<K extends ClientEventName>(name: K, listener: ClientEventMap[K]): void {
    const list = this.listeners[name] as ClientEventMap[K][] | undefined;
    if (list === undefined) return;
    const i = list.indexOf(listener);
    if (i === -1) return;
    const next = list.slice();
    next.splice(i, 1);
    this.listeners[name] = next as never;
  }

  /** Resolves with the next event's first argument. */
  next<K extends ClientEventName>(name: K): Promise<Parameters<ClientEventMap[K]>[0]> {
    return new Promise((resolve) => {
      this.once(name, ((arg: Parameters<ClientEventMap[K]>[0]) => resolve(arg)) as ClientEventMap[K]);
    });
  }

  /** @internal A throwing listener does not stop the others. */
  emit<K extends ClientEventName>(name: K, ...args: Parameters<ClientEventMap[K]>): void {
    const list = this.listeners[name] as ((...a: unknown[]) => void)[] | undefined;
    if (list === undefined) return;
    for (const listener of list) {
      try {
        listener(...args);
      } catch (error) {
        queueMicrotask(() => { throw error; }); // reported as uncaught, as in Node and browsers alike
      }
    }
  }
}
