/**
 * socketd-broker/client: the SDK microservices use to talk to the broker (docs/client.md).
 *
 *   import { connect, json } from 'socketd-broker/client';
 *   const client = await connect('sd:tcp://127.0.0.1:8602', { name: 'orders' });
 */
import { connectWith, type Client } from './client.js';
import type { ClientOptions } from './options.js';
import { dial } from './dial.js';
import { setDeferral } from './tick.js';

// A tick's frames are handed to the transport once every promise continuation of the tick has run.
setDeferral(process.nextTick);

/**
 * Connects to the broker (tcp, tcps, udp, ws or wss) and resolves once the Connack arrived. Rejects with
 * SocketdError `handshake_refused` (with the broker's Close code, reason and text), `connect_timeout` or
 * `connect_failed`.
 */
export function connect(url: string, options: ClientOptions = {}): Promise<Client> {
  return connectWith(dial, url, options);
}

export * from './api.js';
