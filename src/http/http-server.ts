/**
 * The broker's HTTP port (default 8680): health for orchestrators, Prometheus metrics, and JSON admin
 * endpoints modelled on NATS monitoring (/connz, /subsz, plus /namez), paged with `offset` and `limit`.
 * The admin endpoints and the admin page (/admin/, src/http/admin) answer as AdminGuard says: with
 * http.adminToken set, `Authorization: Bearer <token>` (or `?token=` on the three JSON endpoints) from every
 * address; without it, only addresses on http.adminTrusted (loopback by default).
 * With http.serveExamples, `/examples/chat/` serves the example chat page (files of examples/web, and the
 * browser SDK bundle from dist/browser), nothing else of the package.
 */
import http from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { Broker } from '../broker/broker.js';
import type { EventRouter } from '../broker/event-router.js';
import type { ClusterNode } from '../cluster/node.js';
import type { BrokerMetrics } from '../metrics/metrics.js';
import type { BoundAddress } from '../transport/connection.js';
import { listenServer } from '../transport/listen.js';
import { AdminGuard, isRefusal } from './admin/guard.js';
import { LOOPBACK } from './admin/trusted.js';
import { AdminRoutes, type AdminSources } from './admin/admin-routes.js';
import { connectionView, subscriptionView } from './admin/views.js';
import { API_PREFIX, type HttpApi } from './api/http-api.js';
import type { NamespaceTable } from '../broker/namespace-table.js';
import { namespaceLabel } from '../broker/namespace-name.js';

export interface HttpServerOptions {
  host: string;
  port: number;
  /** '' for none: admin endpoints are then open (bind the port to a private interface). */
  adminToken: string;
  /** Serve the example chat page at /examples/chat/ (default false). */
  serveExamples?: boolean;
  /** Addresses and CIDR blocks that may read the admin endpoints while adminToken is '' (default loopback). */
  adminTrusted?: readonly string[];
  /** /metrics answers as the admin endpoints do (default false: open). */
  protectMetrics?: boolean;
}

export interface HttpSources {
  broker: Broker;
  events: EventRouter;
  metrics: BrokerMetrics;
  logger: Logger;
  /** False until the listeners are up, and again once shutdown starts. */
  isReady: () => boolean;
  /** The admin page's sources (sampler, budget, cluster hook); without them /admin/ is 404. */
  admin?: Omit<AdminSources, 'broker' | 'events' | 'logger'>;
  /** The HTTP API under /api/ (docs/http-api.md), when http.api.enabled. */
  api?: HttpApi;
  /** Namespaces besides the default one (docs/namespaces.md): /subsz and /namez list theirs too. */
  namespaces?: NamespaceTable;
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
  private readonly guard: AdminGuard;
  private readonly admin: AdminRoutes | null;

  constructor(
    private readonly options: HttpServerOptions,
    private readonly sources: HttpSources,
  ) {
    this.guard = new AdminGuard({ token: options.adminToken, trusted: options.adminTrusted ?? LOOPBACK });
    this.admin = sources.admin === undefined
      ? null
      : new AdminRoutes(this.guard, { ...sources.admin, broker: sources.broker, events: sources.events, logger: sources.logger, namespaces: sources.namespaces });
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
    this.sources.admin?.sampler.stop();
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async serverOnRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (this.admin !== null && AdminRoutes.owns(url.pathname)) {
      await this.admin.handle(req, res, url);
      return;
    }
    if (this.sources.api !== undefined && url.pathname.startsWith(API_PREFIX)) {
      await this.sources.api.handle(req, res, url);
      return;
    }
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
        if (this.options.protectMetrics === true && !this.admitted(req, res, null)) return;
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
    if (!this.admitted(req, res, url.searchParams.get('token'))) return;
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
        connections: all.slice(offset, offset + limit).map((s) => connectionView(s, events)),
      });
      return;
    }
    if (url.pathname === '/subsz') {
      const sessionId = url.searchParams.get('session');
      const subs = [...events.allSubscriptions(), ...[...this.sources.namespaces?.all() ?? []].flatMap((ns) => [...ns.events.allSubscriptions()])]
        .filter((sub) => sessionId === null || sub.subscriber.id === sessionId);
      send(res, 200, {
        total: subs.length, offset, limit,
        subscriptions: subs.slice(offset, offset + limit).map(subscriptionView),
      });
      return;
    }
    const names = [...broker.registry.names()].map((g) => ({ ns: '', g }));
    for (const ns of this.sources.namespaces?.all() ?? []) for (const g of ns.registry.names()) names.push({ ns: ns.name, g });
    send(res, 200, {
      total: names.length, offset, limit,
      names: names.slice(offset, offset + limit).map(({ ns, g }) => ({ name: g.name, namespace: namespaceLabel(ns), sessions: g.members.map((m) => m.id) })),
    });
  }

  /** True when the request may read admin data; else answers 401 with the reason and returns false. */
  private admitted(req: http.IncomingMessage, res: http.ServerResponse, queryToken: string | null): boolean {
    const verdict = this.guard.read(req, queryToken);
    if (!isRefusal(verdict)) return true;
    res.setHeader('www-authenticate', 'Bearer realm="socketd-broker admin"');
    send(res, verdict.status, verdict.body);
    return false;
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
