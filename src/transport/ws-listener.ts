/**
 * The `sd:ws` / `sd:wss` listener (spec §2): an HTTP(S) server whose upgrades the `ws` library completes, each
 * accepted WebSocket handed to the broker as a {@link WsConnection}. Plain HTTP requests get 426 unless the
 * broker adds routes to `httpServer`. The connection adapter itself is in ws.ts (the client SDK uses it
 * without this listener).
 */
import http from 'node:http';
import https from 'node:https';
import { WebSocket, WebSocketServer } from 'ws';
import type { BoundAddress, ConnectionAcceptor, Listener, ListenerReporter } from './connection.js';
import { listenServer, stopListening } from './listen.js';
import type { TlsServerOptions } from './tcp.js';
import { SOCKET_D_SUBPROTOCOL, WsConnection, type WsConnectionOptions } from './ws.js';

/** Picks the subprotocol (spec §2): `Socket.D` when offered (any case), otherwise none. */
export function selectSubprotocol(offered: Set<string>): string | false {
  if (offered.has(SOCKET_D_SUBPROTOCOL)) return SOCKET_D_SUBPROTOCOL;
  const wanted = SOCKET_D_SUBPROTOCOL.toLowerCase();
  // The selected value must be one the client offered, spelled as it offered it.
  for (const protocol of offered) if (protocol.toLowerCase() === wanted) return protocol;
  return false;
}

export interface WsListenerOptions {
  host: string;
  port: number;
  /** Only upgrades to this path are accepted (others get 400); any path when omitted. */
  path?: string;
  /** When given, the listener speaks `sd:wss`. */
  tls?: TlsServerOptions;
  /** Largest inbound message in bytes; larger ones close the connection with 1009. */
  maxPayload: number;
  /** Passed to each connection (default 1 MiB). */
  highWaterMark?: number;
  /** Told of errors after binding. */
  reporter?: ListenerReporter;
}

export class WsListener implements Listener {
  readonly transport: 'ws' | 'wss';
  /** The HTTP(S) server carrying the upgrades; plain requests get 426 unless the broker adds routes. */
  readonly httpServer: http.Server | https.Server;
  private readonly options: WsListenerOptions;
  private readonly acceptor: ConnectionAcceptor;
  private readonly wss: WebSocketServer;
  private closing = false;

  constructor(options: WsListenerOptions, acceptor: ConnectionAcceptor) {
    this.options = options;
    this.acceptor = acceptor;
    this.transport = options.tls === undefined ? 'ws' : 'wss';
    this.httpServerOnRequest = this.httpServerOnRequest.bind(this);
    this.wssOnConnection = this.wssOnConnection.bind(this);
    this.wssOnError = this.wssOnError.bind(this);

    this.httpServer =
      options.tls === undefined
        ? http.createServer(this.httpServerOnRequest)
        : https.createServer(options.tls, this.httpServerOnRequest);
    this.wss = new WebSocketServer({
      server: this.httpServer,
      perMessageDeflate: false,
      maxPayload: options.maxPayload,
      handleProtocols: selectSubprotocol,
      // Sessions are tracked by the broker; the server's own client set would be a second registry.
      clientTracking: false,
      ...(options.path === undefined ? {} : { path: options.path }),
    });
    this.wss.on('connection', this.wssOnConnection);
    // The WebSocketServer re-emits the http server's errors; unhandled they would throw.
    this.wss.on('error', this.wssOnError);
  }

  listen(): Promise<BoundAddress> {
    return listenServer(this.httpServer, this.options.port, this.options.host);
  }

  /**
   * Stops accepting: the WebSocketServer stops handling upgrades (ws 8 leaves open clients alone) and the
   * http server releases its port. Upgraded sockets are no longer the http server's, so they stay open; we
   * resolve without waiting for them (see TcpListener.close).
   */
  close(): Promise<void> {
    if (this.closing) return Promise.resolve();
    this.closing = true;
    this.wss.close();
    return stopListening(this.httpServer);
  }

  private httpServerOnRequest(_request: http.IncomingMessage, response: http.ServerResponse): void {
    response.writeHead(426, { 'Content-Type': 'text/plain', Upgrade: 'websocket', Connection: 'close' });
    response.end('426 Upgrade Required: this endpoint speaks Socket.D over WebSocket\n');
  }

  private wssOnConnection(ws: WebSocket, request: http.IncomingMessage): void {
    if (this.closing) {
      ws.terminate();
      return;
    }
    const connectionOptions: WsConnectionOptions = {
      transport: this.transport,
      remoteAddress: request.socket.remoteAddress ?? '',
      remotePort: request.socket.remotePort ?? 0,
    };
    if (this.options.highWaterMark !== undefined) connectionOptions.highWaterMark = this.options.highWaterMark;
    this.acceptor(new WsConnection(ws, connectionOptions));
  }

  private wssOnError(error: Error): void {
    // Binding errors reach listen() through the http server; later ones are not fatal, but reported.
    if (this.httpServer.listening) this.options.reporter?.listenerOnError(this.transport, error);
  }
}
