/**
 * The admin page at /admin/ and its JSON API at /admin/api/* (docs/operations.md section 6). The page's files
 * (dist/admin: the page, its script with uPlot bundled in, the styles) are served to anyone: they hold no data.
 * The page itself answers 401 (with the same page, which then asks for the token) unless the request may read;
 * the API needs what reading needs, and the one action, disconnecting a session, needs the token.
 */
import type http from 'node:http';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { Broker } from '../../broker/broker.js';
import type { EventRouter } from '../../broker/event-router.js';
import { CloseCode } from '../../protocol/codes.js';
import { isRefusal, type AdminGuard } from './guard.js';
import { HISTORY, SAMPLE_MS, type AdminSampler } from './sampler.js';
import type { NamespaceTable } from '../../broker/namespace-table.js';
import { connectionView, findSession, nameViews, patternViews, sessionDetail } from './views.js';

/** The nodes of a cluster as the page's nodes view lists them; absent while the broker runs alone. */
export interface ClusterView {
  /** Each node: at least `id` and `state`; interest counts and anything else are shown as given. */
  nodes(): { id: string; state: string; [field: string]: unknown }[];
}

export interface AdminSources {
  broker: Broker;
  events: EventRouter;
  logger: Logger;
  sampler: AdminSampler;
  /** flow.memoryBudgetBytes and flow.memoryLowWaterBytes, for the page's budget chart. */
  memoryBudgetBytes: number;
  memoryLowWaterBytes: number;
  cluster?: ClusterView;
  /** Namespaces besides the default one: their names and subscriptions are listed too. */
  namespaces?: NamespaceTable;
}

/** The built page: this file is dist/src/http/admin/admin-routes.js, the page dist/admin (scripts/build-admin.mjs). */
export const ADMIN_ASSETS_DIR = fileURLToPath(new URL('../../../admin/', import.meta.url));
const PREFIX = '/admin/';
const API = '/admin/api/';
const ASSETS: Readonly<Record<string, string>> = {
  'index.html': 'text/html; charset=utf-8',
  'admin.js': 'text/javascript; charset=utf-8',
  'admin.css': 'text/css; charset=utf-8',
  'uPlot.min.css': 'text/css; charset=utf-8',
};
/** The page loads only its own files and talks only to this origin; no framing (clickjacking). */
const PAGE_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-cache',
};
const MAX_PAGE = 1000;
/** The disconnect request's body: `{"reason": "..."}`; the reason goes out in the Close frame. */
const MAX_BODY_BYTES = 4096;
const MAX_REASON_CHARS = 200;
const SESSION_PATH = /^sessions\/([^/]+)(\/disconnect)?$/;

export class AdminRoutes {
  constructor(
    private readonly guard: AdminGuard,
    private readonly sources: AdminSources,
    private readonly assetsDir = ADMIN_ASSETS_DIR,
  ) {}

  /** True for the paths this serves (/admin, /admin/...). */
  static owns(pathname: string): boolean {
    return pathname === '/admin' || pathname.startsWith(PREFIX);
  }

  async handle(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    const method = req.method ?? 'GET';
    if (url.pathname === '/admin') {
      res.writeHead(301, { location: PREFIX, 'content-length': 0 });
      res.end();
      return;
    }
    if (url.pathname.startsWith(API)) {
      await this.api(req, res, url.pathname.slice(API.length), url, method);
      return;
    }
    if (method !== 'GET' && method !== 'HEAD') {
      json(res, 405, { error: 'method_not_allowed' });
      return;
    }
    const name = url.pathname === PREFIX ? 'index.html' : url.pathname.slice(PREFIX.length);
    const type = ASSETS[name];
    if (type === undefined) {
      json(res, 404, { error: 'not_found', path: url.pathname });
      return;
    }
    let body: Buffer;
    try {
      body = await readFile(path.join(this.assetsDir, name));
    } catch {
      json(res, 404, { error: 'not_found', path: url.pathname, hint: 'the admin page is built into dist/admin by `npm run build`' });
      return;
    }
    // The page's status says whether this request may read; its body is the same either way: without the
    // right, it asks for the token (or explains that the address is not trusted).
    const status = name === 'index.html' && isRefusal(this.guard.read(req)) ? 401 : 200;
    const headers: http.OutgoingHttpHeaders = { ...PAGE_HEADERS, 'content-type': type, 'content-length': body.length };
    if (status === 401) headers['www-authenticate'] = 'Bearer realm="socketd-broker admin"';
    res.writeHead(status, headers);
    res.end(method === 'HEAD' ? undefined : body);
  }

  private async api(req: http.IncomingMessage, res: http.ServerResponse, route: string, url: URL, method: string): Promise<void> {
    const session = SESSION_PATH.exec(route);
    const isAction = session !== null && session[2] !== undefined;
    if (isAction ? method !== 'POST' : method !== 'GET' && method !== 'HEAD') {
      json(res, 405, { error: 'method_not_allowed', allow: isAction ? 'POST' : 'GET' }, { allow: isAction ? 'POST' : 'GET, HEAD' });
      return;
    }
    const verdict = isAction ? this.guard.act(req) : this.guard.read(req);
    if (isRefusal(verdict)) {
      json(res, verdict.status, verdict.body, verdict.status === 401 ? { 'www-authenticate': 'Bearer realm="socketd-broker admin"' } : {});
      return;
    }
    let id = '';
    try {
      if (session !== null) id = decodeURIComponent(session[1]);
    } catch {
      json(res, 400, { error: 'bad_path', hint: 'the session id is not valid percent-encoding' });
      return;
    }
    const { broker, events, sampler } = this.sources;
    // Every read of the page keeps the sampler going; nothing samples while nobody asks.
    sampler.touch();
    if (isAction) {
      await this.disconnect(req, res, id);
      return;
    }
    if (session !== null) {
      const s = findSession(broker, id);
      if (s === undefined) json(res, 404, { error: 'no_such_session', id });
      else json(res, 200, sessionDetail(s, events));
      return;
    }
    const offset = clampInt(url.searchParams.get('offset'), 0, Number.MAX_SAFE_INTEGER, 0);
    const limit = clampInt(url.searchParams.get('limit'), 1, MAX_PAGE, 50);
    const q = (url.searchParams.get('q') ?? '').trim().toLowerCase();
    switch (route) {
      case 'overview':
        json(res, 200, this.overview(Number(url.searchParams.get('since') ?? 0) || 0));
        return;
      case 'sessions': {
        const all = [...broker.allSessions()].filter((s) => q.length === 0 || matches(q, s.id, s.name, s.transport, `${s.connection.remoteAddress}:${s.connection.remotePort}`));
        json(res, 200, { total: all.length, offset, limit, sessions: all.slice(offset, offset + limit).map((s) => connectionView(s, events)) });
        return;
      }
      case 'names': {
        const all = nameViews(broker, this.sources.namespaces).filter((n) => q.length === 0 || matches(q, n.name));
        json(res, 200, { total: all.length, offset, limit, names: all.slice(offset, offset + limit) });
        return;
      }
      case 'subscriptions': {
        const all = patternViews(events, this.sources.namespaces).filter((p) => q.length === 0 || matches(q, p.pattern, ...p.groups.map((g) => g.group)));
        json(res, 200, { total: all.length, offset, limit, patterns: all.slice(offset, offset + limit) });
        return;
      }
      case 'nodes': {
        const cluster = this.sources.cluster;
        json(res, 200, { clustered: cluster !== undefined, nodes: cluster?.nodes() ?? [] });
        return;
      }
      default:
        json(res, 404, { error: 'not_found', path: url.pathname });
    }
  }

  private overview(since: number): Record<string, unknown> {
    const { broker, events, sampler } = this.sources;
    return {
      now: Date.now(),
      sampleMs: SAMPLE_MS,
      historySamples: HISTORY,
      uptimeSeconds: Math.round(process.uptime()),
      actions: this.guard.tokenSet,
      clustered: this.sources.cluster !== undefined,
      memoryBudgetBytes: this.sources.memoryBudgetBytes,
      memoryLowWaterBytes: this.sources.memoryLowWaterBytes,
      totals: {
        connections: broker.sessionCount,
        sessions: broker.stats.sessionsOpen,
        names: broker.registry.nameCount,
        subscriptions: events.subscriptionCount,
        streamsOpen: broker.stats.streamsOpen,
      },
      samples: sampler.samplesSince(since),
    };
  }

  private async disconnect(req: http.IncomingMessage, res: http.ServerResponse, id: string): Promise<void> {
    let body: unknown;
    try {
      const text = await readBody(req, MAX_BODY_BYTES);
      body = text.length === 0 ? {} : JSON.parse(text);
    } catch (error) {
      const tooLarge = (error as Error).message === 'too_large';
      json(res, tooLarge ? 413 : 400, tooLarge
        ? { error: 'body_too_large', limit: MAX_BODY_BYTES }
        : { error: 'bad_json', hint: 'send {"reason": "..."} as application/json' });
      return;
    }
    const given = (body as { reason?: unknown } | null)?.reason;
    if (given !== undefined && typeof given !== 'string') {
      json(res, 400, { error: 'bad_reason', hint: 'reason must be a string' });
      return;
    }
    const reason = (given ?? '').trim().slice(0, MAX_REASON_CHARS) || 'disconnected by an operator';
    const s = findSession(this.sources.broker, id);
    if (s === undefined) {
      json(res, 404, { error: 'no_such_session', id });
      return;
    }
    this.sources.logger.warn(
      { event: 'admin_disconnect', id: s.id, name: s.name || undefined, transport: s.transport, reason, from: req.socket.remoteAddress },
      'session disconnected by an operator',
    );
    s.close('admin_disconnect', CloseCode.ProtocolClose, reason);
    json(res, 200, { disconnected: s.id, name: s.name, reason });
  }
}

function matches(q: string, ...fields: string[]): boolean {
  return fields.some((f) => f.toLowerCase().includes(q));
}

function json(res: http.ServerResponse, status: number, body: unknown, extra: http.OutgoingHttpHeaders = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...extra,
  });
  res.end(text);
}

function readBody(req: http.IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    // Past the limit the rest is read and dropped, so the 413 answer reaches the client.
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        chunks.length = 0;
        reject(new Error('too_large'));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function clampInt(text: string | null, min: number, max: number, fallback: number): number {
  if (text === null) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n)) return fallback;
  return Math.min(max, Math.max(min, n));
}
