/**
 * The client SDK's public API shared by both entry points: index.ts (Node: tcp, tcps, udp, ws, wss) and
 * browser.ts (ws, wss); each adds its own connect().
 */
export { Client, connectWith } from './client.js';
export { ReplyStream } from './pending.js';
export { HANDLER_FAILED_ALARM } from './dispatch.js';
export type {
  ClientOptions,
  ClientState,
  ReconnectOptions,
  SendOptions,
  RequestOptions,
  StreamOptions,
  SubscribeOptions,
  Subscription,
  MessageHandler,
  PresenceHandler,
} from './options.js';
export { SocketdError, type SocketdErrorCode } from './errors.js';
export { tokenExpiry, type TokenContext, type TokenProvider } from './token.js';
export { ClientEvents, type ClientEventMap, type ClientEventName } from './events.js';
export { IncomingMessage, Reply, json, type Data, type Metas, type PresenceEntry, type PresenceNotice } from './message.js';
export { matchPattern, patternProblem } from './pattern.js';
export { parseClientUrl, type ClientUrl, type ClientTransport } from './url.js';
export type { Dial, DialOptions, Dialer } from './dialer.js';
