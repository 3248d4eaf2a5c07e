/**
 * What the client needs from a transport dialer. The Node entry (index.ts) injects dial.ts (tcp, tcps, udp,
 * ws, wss over node:net/tls/dgram and the `ws` package); the browser entry (browser.ts) injects a dialer over
 * the browser's WebSocket. Types only: importing this module pulls in no Node built-in.
 */
import type tls from 'node:tls';
import type { Connection } from '../transport/connection.js';
import type { ClientUrl } from './url.js';

export interface DialOptions {
  tls?: tls.ConnectionOptions | undefined;
  maxDatagram: number;
  /** Largest inbound ws message (the frame limit). */
  maxPayload: number;
}

export interface Dial {
  readonly promise: Promise<Connection>;
  /** Abandons the dial: the socket is destroyed and the promise rejects (or its connection is closed). */
  cancel(reason: string): void;
}

/** Opens a transport connection to `target`; the promise rejects with SocketdError `connect_failed`. */
export type Dialer = (target: ClientUrl, options: DialOptions) => Dial;
