/**
 * The broker's HTTP port (default 8680): health for orchestrators, Prometheus metrics, and JSON admin
 * endpoints modelled on NATS monitoring (/connz, /subsz, plus /namez), paged with `offset` and `limit`.
 * The admin endpoints require `Authorization: Bearer <token>` (or `?token=`) when http.adminToken is set.
 */
import http from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import type { Broker } from '../broker/broker.js';
import type { EventRouter } from '../broker/event-router.js';
import type { BrokerMetrics } from '../metrics/metrics.js';
import type { BoundAddress } from '../transport/connection.js';
import { listenServer } from '../transport/listen.js';

export interface HttpServerOptions {
  host: string;
  port: number;
  /** '' for none: admin endpoints are then open (bind the port to a private interface). */
  adminToken: string;
}

export interface HttpSources {
  broker: Broker;
  events: EventRouter;
  metrics: BrokerMetrics;
  logger: Logger;
  /** False until the listeners are up, and again once shutdown starts. */
  isReady: () => boolean;
}

const MAX_PAGE = 1000;

export class BrokerHttpServer {
  private readonly server: http.Server;

  constructor(
    private readonly options: HttpServerOptions,
    private readonly sources: HttpSources,
  ) {
    this.server = http.createServer((req, res) => {
      this.serverOnRequest(req, res).catch((error: Error) => {
        sources.logger.error({ event: 'http_error', err: error, url: req.url }, 'admin request failed');
        if (!res.headersSent) send(res, 500, { error: 'internal_error' });
        else res.destroy();
      });
    });
  }

  listen(): Promise<BoundAddress> {
    return listenServer(this.server, this.options.port, this.options.host);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async serverOnRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, { error: 'method_not_allowed' });
      return;
    }
    const { broker, events, metrics } = this.sources;
    switch (url.pathname) {
      case '/healthz':
        send(res, 200, { status: 'ok', sessions: broker.sessionCount });
        return;
      case '/readyz': {
        const ready = this.sources.isReady();
        send(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not_ready' });
        return;
      }
      case '/metrics': {
        const body = await metrics.text();
        res.writeHead(200, { 'content-type': metrics.contentType });
        res.end(body);
        return;
      }
      case '/connz':
      case '/subsz':
      case '/namez':
        break;
      default:
        send(res, 404, { error: 'not_found', path: url.pathname });
        return;
    }
    if (!this.authorized(req, url)) {
      send(res, 401, { error: 'unauthorized', hint: 'send Authorization: Bearer <http.adminToken>' });
      return;
    }
    const offset = clampInt(url.searchParams.get('offset'), 0, Number.MAX_SAFE_INTEGER, 0);
    const limit = clampInt(url.searchParams.get('limit'), 1, MAX_PAGE, 100);
    if (url.pathname === '/connz') {
      const all = [...broker.allSessions()];
      send(res, 200, {
        total: all.length, offset, limit,
        connections: all.slice(offset, offset + limit).map((s) => ({
          id: s.id, name: s.name, transport: s.transport,
          remote: `${s.connection.remoteAddress}:${s.connection.remotePort}`,
          state: s.state === 1 ? 'open' : 'handshake',
          since: new Date(s.createdAt).toISOString(), lastSeen: new Date(s.lastSeen).toISOString(),
          queuedBytes: s.outbound.queuedBytes, readingPaused: s.readingPaused,
          streamsOpen: s.streams.size, streamsAnswering: s.legs.size,
          subscriptions: events.subscriptionsOf(s).length,
        })),
      });
      return;
    }
    if (url.pathname === '/subsz') {
      const sessionId = url.searchParams.get('session');
      const subs = [...events.allSubscriptions()].filter((sub) => sessionId === null || sub.subscriber.id === sessionId);
      send(res, 200, {
        total: subs.length, offset, limit,
        subscriptions: subs.slice(offset, offset + limit).map((sub) => ({
          session: sub.subscriber.id, name: sub.subscriber.name, pattern: sub.pattern,
          group: sub.group || undefined, presence: sub.presence, since: new Date(sub.since).toISOString(),
        })),
      });
      return;
    }
    const names = [...broker.registry.names()];
    send(res, 200, {
      total: names.length, offset, limit,
      names: names.slice(offset, offset + limit).map((g) => ({ name: g.name, sessions: g.members.map((m) => m.id) })),
    });
  }

  private authorized(req: http.IncomingMessage, url: URL): boolean {
    const expected = this.options.adminToken;
    if (expected.length === 0) return true;
    const header = req.headers.authorization ?? '';
    const given = header.startsWith('Bearer ') ? header.slice(7) : (url.searchParams.get('token') ?? '');
    const a = Buffer.from(given);
    const b = Buffer.from(expected);
    return a.length === b.length && timingSafeEqual(a, b);
  }
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function clampInt(text: string | null, min: number, max: number, fallback: number): number {
  if (text === null) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n)) return fallback;
  return Math.min(max, Math.max(min, n));
}
