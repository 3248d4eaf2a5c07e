/**
 * socketd-broker/client: the SDK microservices use to talk to the broker (docs/client.md).
 *
 *   import { connect, json } from 'socketd-broker/client';
 *   const client = await connect('sd:tcp://127.0.0.1:8602', { name: 'orders' });
 */
export { connect, Client, ReplyStream, HANDLER_FAILED_ALARM } from './client.js';
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
} from './client.js';
export { SocketdError, type SocketdErrorCode } from './errors.js';
export { ClientEvents, type ClientEventMap, type ClientEventName } from './events.js';
export { IncomingMessage, Reply, json, type Data, type Metas, type PresenceEntry, type PresenceNotice } from './message.js';
export { matchPattern, patternProblem } from './pattern.js';
export { parseClientUrl, type ClientUrl, type ClientTransport } from './url.js';
