/**
 * Opens the transport under a client (spec §2) and wraps it in the shared adapters, so the client speaks to
 * a {@link Connection} whatever the scheme. A dial can be cancelled (connect timeout, close()).
 */
import net from 'node:net';
import tls from 'node:tls';
import { WebSocket } from 'ws';
import type { Connection } from '../transport/connection.js';
import { TcpConnection } from '../transport/tcp.js';
import { WsConnection, SOCKET_D_SUBPROTOCOL } from '../transport/ws.js';
import { dialUdp } from '../transport/udp.js';
import { SocketdError } from './errors.js';
import type { ClientUrl } from './url.js';
import type { Dial, DialOptions, Dialer } from './dialer.js';

export type { Dial, DialOptions, Dialer } from './dialer.js';

function failed(target: ClientUrl, error: unknown): SocketdError {
  const message = error instanceof Error ? error.message : String(error);
  return new SocketdError('connect_failed', `Cannot open ${target.transport}://${target.host}:${target.port}: ${message}`, { cause: error });
}

function ignore(): void {}

/** The Node dialer (every transport), injected into the client by the Node entry (index.ts). */
export const dial: Dialer = (target: ClientUrl, options: DialOptions): Dial => {
  switch (target.transport) {
    case 'tcp':
    case 'tcps':
      return dialTcp(target, options);
    case 'ws':
    case 'wss':
      return dialWs(target, options);
    case 'udp':
      return dialDatagram(target, options);
  }
};

function dialTcp(target: ClientUrl, options: DialOptions): Dial {
  const secure = target.transport === 'tcps';
  const socket: net.Socket = secure
    ? tls.connect({ servername: net.isIP(target.host) === 0 ? target.host : undefined, ...options.tls, host: target.host, port: target.port })
    : net.connect({ host: target.host, port: target.port });
  let settled = false;
  let cancelDial: (reason: string) => void = ignore;
  const promise = new Promise<Connection>((resolve, reject) => {
    const onError = (error: Error): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      reject(failed(target, error));
    };
    socket.once('error', onError);
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      if (settled) return;
      settled = true;
      socket.removeListener('error', onError);
      resolve(new TcpConnection(socket, { transport: secure ? 'tcps' : 'tcp' }));
    });
    cancelDial = (reason: string) => {
      if (settled) return;
      settled = true;
      socket.on('error', ignore);
      socket.destroy();
      reject(new SocketdError('connect_failed', reason));
    };
  });
  return { promise, cancel: (reason) => cancelDial(reason) };
}

function dialWs(target: ClientUrl, options: DialOptions): Dial {
  const url = `${target.transport}://${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}${target.pathAndQuery}`;
  const ws = new WebSocket(url, [SOCKET_D_SUBPROTOCOL], {
    perMessageDeflate: false,
    maxPayload: options.maxPayload,
    ...(target.transport === 'wss' ? options.tls : {}),
  });
  let settled = false;
  let cancelDial: (reason: string) => void = ignore;
  const promise = new Promise<Connection>((resolve, reject) => {
    const onError = (error: Error): void => {
      if (settled) return;
      settled = true;
      ws.terminate();
      reject(failed(target, error));
    };
    const onClose = (): void => onError(new Error('closed during the WebSocket handshake'));
    ws.on('error', onError);
    ws.once('close', onClose);
    ws.once('open', () => {
      if (settled) return;
      settled = true;
      ws.removeListener('error', onError);
      ws.removeListener('close', onClose);
      const socket = (ws as unknown as { _socket: net.Socket })._socket;
      resolve(new WsConnection(ws, {
        transport: target.transport as 'ws' | 'wss',
        remoteAddress: socket.remoteAddress ?? target.host,
        remotePort: socket.remotePort ?? target.port,
      }));
    });
    cancelDial = (reason: string) => {
      if (settled) return;
      settled = true;
      ws.removeListener('error', onError);
      ws.on('error', ignore);
      ws.terminate();
      reject(new SocketdError('connect_failed', reason));
    };
  });
  return { promise, cancel: (reason) => cancelDial(reason) };
}

function dialDatagram(target: ClientUrl, options: DialOptions): Dial {
  let cancelled: string | null = null;
  const promise = dialUdp(target.host, target.port, options.maxDatagram).then(
    (connection) => {
      if (cancelled !== null) {
        connection.destroy(cancelled);
        throw new SocketdError('connect_failed', cancelled);
      }
      return connection as Connection;
    },
    (error: unknown) => {
      throw failed(target, error);
    },
  );
  return { promise, cancel: (reason) => { cancelled = reason; } };
}
