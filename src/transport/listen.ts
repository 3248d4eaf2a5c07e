/**
 * Binding and unbinding a Node server (net, tls, http, https): shared by the tcp and ws listeners and the
 * broker's HTTP port.
 */
import type net from 'node:net';
import type { BoundAddress } from './connection.js';

/** Binds `server`; resolves with the bound address (port 0 picks a free port), rejects on a bind error. */
export function listenServer(server: net.Server, port: number, host: string): Promise<BoundAddress> {
  return new Promise<BoundAddress>((resolve, reject) => {
    const onError = (error: Error): void => reject(error);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.removeListener('error', onError);
      const address = server.address() as net.AddressInfo;
      resolve({ host: address.address, port: address.port });
    });
  });
}

/**
 * Stops accepting. server.close() releases the listening socket at once but calls back only when every
 * accepted connection has ended, which the Listener contract says not to wait for (open connections are the
 * sessions' business), so this resolves once the listening handle is gone.
 */
export function stopListening(server: net.Server): Promise<void> {
  if (!server.listening) return Promise.resolve();
  server.close();
  return new Promise<void>((resolve) => setImmediate(resolve));
}
