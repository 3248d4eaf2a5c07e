/**
 * The broker's HTTP port (default 8680): health for orchestrators, Prometheus metrics, and JSON admin
 * endpoints modelled on NATS monitoring (/connz, /subsz, plus /namez), paged with `offset` and `limit`.
 * The admin endpoints require `Authorization: Bearer <token>` (or `?token=`) when http.adminToken is set.
 * With http.serveExamples, `/examples/chat/` serves the example chat page (files of examples/web, and the
 * browser SDK bundle from dist/browser), nothing else of the package.
 */
import http from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import type { Broker } from '../broker/broker.js';
import type { EventRouter } from '../broker/event-router.js';
import type { ClusterNode } from '../cluster/node.js';
import type { BrokerMetrics } from '../metrics/metrics.js';
import type { BoundAddress } from '../transport/connection.js';
import { listenServer } from '../transport/listen.js';

export interface HttpServerOptions {
  host: string;
  port: number;
  /** '' for none: admin endpoints are then open (bind the port to a private interface). */
  adminToken: string;
  /** Serve the example chat page at /examples/chat/ (default false). */
  serveExamples?: boolean;
}

export interface HttpSources {
  broker: Broker;
  events: EventRouter;
  metrics: BrokerMetrics;
  logger: Logger;
  /** False until the listeners are up, and again once shutdown starts. */
  isReady: () => boolean;
  /** This node of a cluster (docs/cluster.md): /readyz reports a lost link, /nodez lists the nodes. */
  cluster?: ClusterNode | null;
}

const MAX_PAGE = 1000;

/** The package root: this file is dist/src/http/http-server.js. */
const PACKAGE_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** The example page's url prefix and the only two directories it reads from. */
const EXAMPLES_PREFIX = '/examples/chat/';
const EXAMPLES_WEB_DIR = path.join(PACKAGE_ROOT, 'examples', 'web');
const BROWSER_BUNDLE_DIR = path.join(PACKAGE_ROOT, 'dist', 'browser');
/** Files served from dist/browser; every other name comes from examples/web. */
const BUNDLE_FILES = new Set(['socketd-client.js', 'socketd-client.js.map']);
const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
};

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
    if (this.options.serveExamples === true && (url.pathname === '/examples/chat' || url.pathname.startsWith(EXAMPLES_PREFIX))) {
      await serveExample(req, res, url.pathname);
      return;
    }
    const { broker, events, metrics } = this.sources;
    switch (url.pathname) {
      case '/healthz':
        send(res, 200, { status: 'ok', sessions: broker.sessionCount });
        return;
      case '/readyz': {
        const ready = this.sources.isReady();
        const cluster = this.sources.cluster;
        if (ready && cluster && !cluster.linkUp) {
          // Still serving its own sessions: degraded, not unready (taking it out would cut them off too).
          send(res, 200, { status: 'degraded', cluster: { node: cluster.nodeId, linkUp: false, peers: cluster.peerCount } });
          return;
        }
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
      case '/nodez':
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
    if (url.pathname === '/nodez') {
      const cluster = this.sources.cluster;
      if (!cluster) {
        send(res, 200, { cluster: false, nodes: [] });
        return;
      }
      send(res, 200, { cluster: true, node: cluster.nodeId, linkUp: cluster.linkUp, nodes: cluster.summary() });
      return;
    }
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
          streamsOpen: s.streamCount, streamsAnswering: s.legCount,
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

/**
 * The example chat page: `/examples/chat/NAME` is examples/web/NAME, or dist/browser/NAME for the SDK bundle.
 * The name is percent-decoded and must stay inside its directory (no `..`, no absolute path, no NUL byte).
 */
async function serveExample(req: http.IncomingMessage, res: http.ServerResponse, pathname: string): Promise<void> {
  if (pathname === '/examples/chat') {
    res.writeHead(301, { location: EXAMPLES_PREFIX, 'content-length': 0 });
    res.end();
    return;
  }
  let name: string;
  try {
    name = decodeURIComponent(pathname.slice(EXAMPLES_PREFIX.length));
  } catch {
    send(res, 400, { error: 'bad_path' });
    return;
  }
  if (name.length === 0) name = 'index.html';
  const dir = BUNDLE_FILES.has(name) ? BROWSER_BUNDLE_DIR : EXAMPLES_WEB_DIR;
  const file = path.resolve(dir, name);
  if (name.includes('\0') || name.includes('\\') || !file.startsWith(dir + path.sep)) {
    send(res, 404, { error: 'not_found', path: pathname });
    return;
  }
  let body: Buffer;
  try {
    if (!(await stat(file)).isFile()) throw new Error('not a file');
    body = await readFile(file);
  } catch {
    send(res, 404, { error: 'not_found', path: pathname });
    return;
  }
  res.writeHead(200, {
    'content-type': CONTENT_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream',
    'content-length': body.length,
    'cache-control': 'no-cache',
    'x-content-type-options': 'nosniff',
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

function clampInt(text: string | null, min: number, max: number, fallback: number): number {
  if (text === null) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n)) return fallback;
  return Math.min(max, Math.max(min, n));
}
