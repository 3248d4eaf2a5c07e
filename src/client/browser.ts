/**
 * The browser entry of the client SDK (docs/client.md, "In the browser"): the same API as the Node entry
 * (index.ts), over the browser's WebSocket, so only `ws://`/`wss://` (and `sd:ws://`/`sd:wss://`) urls.
 * Bundled by `npm run build:browser` into dist/browser/socketd-client.js (ESM, with the `buffer` package as
 * `Buffer`). It must not import dial.ts, node:net/tls/dgram, the `ws` package or src/transport/tcp|udp|ws
 * (a test checks the bundle).
 *
 *   import { connect } from '/examples/chat/socketd-client.js';
 *   const client = await connect('ws://localhost:8604/', { name: 'alice' });
 */
import { connectWith, type Client } from './client.js';
import type { ClientOptions } from './options.js';
import { SocketdError } from './errors.js';
import { browserDialer } from './browser-ws.js';
import { parseClientUrl } from './url.js';

const dialer = browserDialer();

/**
 * Connects to the broker over ws or wss and resolves once the Connack arrived. Rejects with SocketdError
 * `invalid_argument` (not a ws/wss url), `handshake_refused`, `connect_timeout` or `connect_failed`.
 */
export async function connect(url: string, options: ClientOptions = {}): Promise<Client> {
  const { transport } = parseClientUrl(url);
  if (transport !== 'ws' && transport !== 'wss') {
    throw new SocketdError('invalid_argument', `The browser client speaks ws and wss only: '${url}' is ${transport}`);
  }
  return connectWith(dialer, url, options);
}

export * from './api.js';
export { browserDialer, BrowserWsConnection, type BrowserWebSocket, type BrowserWebSocketConstructor } from './browser-ws.js';
