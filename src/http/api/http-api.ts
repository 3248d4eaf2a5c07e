/**
 * The HTTP API under `/api/` on the http listener (docs/http-api.md): publish, request, follow events as
 * Server-Sent Events, presence and disconnect, for processes without a Socket.D client.
 *
 * Every call enters the broker as a session of its own through a {@link VirtualClient} (a Connection held in
 * memory): the bearer token is the handshake's `token`, so users, permissions, routing, Alarms, outbound
 * limits and metrics are exactly those of a Socket.D client; Alarms become HTTP statuses (ALARM_STATUS).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type http from 'node:http';
import type { Logger } from 'pino';
import { Flag } from '../../protocol/flags.js';
import { AlarmCode, CloseCode } from '../../protocol/codes.js';
import type { Frame } from '../../protocol/frame.js';
import { isPublishableEvent, isExactPattern } from '../../protocol/event-pattern.js';
import type { Broker } from '../../broker/broker.js';
import type { Session } from '../../broker/session.js';
import { isValidNamespaceName } from '../../broker/namespace-name.js';
import { ApiError, dataFrom, metaFrom, optionalPositiveInt, optionalString, parseJsonObject, readBody } from './api-body.js';
import type { ApiStats } from './api-stats.js';
import { frameJson, sendJson } from './api-json.js';
import { RateLimiter } from './rate-limiter.js';
import { SseStream } from './sse-stream.js';
import { VirtualClient, type Ended } from './virtual-client.js';

export interface HttpApiOptions {
  /** Calls per second per token (per client address without one); 0 = no limit. */
  ratePerSecond: number;
  /** Calls a token may make at once before the rate applies. */
  burst: number;
  /** Comment lines and Pings on an idle event stream, so proxies and the idle timeout leave it open. */
  sseKeepaliveMs: number;
  /** http.adminToken ('' for none): also accepted by /api/disconnect. */
  adminToken: string;
}

export interface HttpApiDeps {
  broker: Broker;
  stats: ApiStats;
  logger: Logger;
}

export const API_PREFIX = '/api/';

/** HTTP status of each Alarm code (spec §6) and the stable error code answered with it. */
const ALARM_STATUS: Readonly<Record<number, [number, string]>> = {
  [AlarmCode.BadRequest]: [400, 'bad_request'],
  [AlarmCode.Forbidden]: [403, 'forbidden'],
  [AlarmCode.NoRoute]: [404, 'no_route'],
  [AlarmCode.Timeout]: [504, 'timeout'],
  [AlarmCode.TooLarge]: [413, 'too_large'],
  [AlarmCode.Congested]: [503, 'congested'],
  [AlarmCode.ResponderGone]: [502, 'responder_gone'],
};

/** HTTP status of a refused handshake, by the Close's reason (docs/security.md). */
function refusalStatus(reason: string): number {
  switch (reason) {
    case 'auth_required':
    case 'auth_failed':
    // Per-user identities (docs/security.md section 6): the bearer token itself was not accepted.
    case 'token_expired':
    case 'token_invalid':
    case 'token_not_yet_valid':
    case 'hook_refused':
      return 401;
    case 'name_forbidden':
    case 'namespace_forbidden':
      return 403;
    case 'namespace_unknown':
      return 404;
    default:
      return 503;
  }
}

type Endpoint = 'publish' | 'request' | 'subscribe' | 'presence' | 'disconnect';
const METHODS: Readonly<Record<Endpoint, string>> = {
  publish: 'POST', request: 'POST', subscribe: 'GET', presence: 'GET', disconnect: 'POST',
};

export class HttpApi {
  private readonly limiter: RateLimiter;
  /** Largest body: the data limit, base64-encoded, plus room for the event, name and metas. */
  private readonly maxBody: number;

  constructor(private readonly options: HttpApiOptions, private readonly deps: HttpApiDeps) {
    this.limiter = new RateLimiter(options.ratePerSecond, Math.max(1, options.burst));
    const limits = deps.broker.settings.limits;
    this.maxBody = Math.ceil(limits.maxData / 3) * 4 + 2 * (limits.maxMeta + limits.maxEvent) + 1024;
  }

  /** Answers one request whose path starts with {@link API_PREFIX}. */
  async handle(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    const endpoint = url.pathname.slice(API_PREFIX.length) as Endpoint;
    let status = 500;
    try {
      if (!Object.hasOwn(METHODS, endpoint)) throw new ApiError(404, 'not_found', `No API endpoint '${url.pathname}' (see docs/http-api.md)`);
      if (req.method !== METHODS[endpoint]) {
        res.setHeader('allow', METHODS[endpoint]);
        throw new ApiError(405, 'method_not_allowed', `${url.pathname} takes ${METHODS[endpoint]}`);
      }
      const token = bearerToken(req, url);
      const key = token.length > 0 ? `t:${createHash('sha256').update(token).digest('base64')}` : `ip:${req.socket.remoteAddress ?? ''}`;
      if (!this.limiter.take(key, Date.now())) {
        res.setHeader('retry-after', '1');
        throw new ApiError(429, 'rate_limited', `More than ${this.options.ratePerSecond} API calls per second for this token`);
      }
      if (endpoint === 'subscribe') {
        status = await this.subscribe(req, res, url, token);
        return;
      }
      const body = endpoint === 'presence' ? {} : parseJsonObject(await readBody(req, this.maxBody));
      const namespace = namespaceOf(endpoint === 'presence' ? url.searchParams.get('namespace') ?? undefined : optionalString(body, 'namespace'));
      const [code, answer] = endpoint === 'disconnect' && this.isAdmin(token)
        ? this.disconnect(body, null, namespace)
        : await this.withClient(req, token, namespace, (client) => {
          switch (endpoint) {
            case 'publish': return this.publish(client, body);
            case 'request': return this.request(client, body);
            case 'presence': return this.presence(client, url);
            default: return Promise.resolve(this.disconnect(body, client.session, namespace));
          }
        });
      status = code;
      sendJson(res, code, answer);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      status = error.status;
      if (res.headersSent) return;
      // A body refused for its size is not read to its end: the connection goes with the answer.
      if (error.status === 413) res.setHeader('connection', 'close');
      sendJson(res, error.status, { error: error.code, message: error.message, ...error.extra });
    } finally {
      this.deps.stats.answered(Object.hasOwn(METHODS, endpoint) ? endpoint : 'unknown', status);
    }
  }

  /** Opens a session for `token` in `namespace`, runs `work`, and always closes the session. */
  private async withClient(req: http.IncomingMessage, token: string, namespace: string,
    work: (client: VirtualClient) => Promise<[number, unknown]>): Promise<[number, unknown]> {
    const client = this.newClient(req);
    try {
      await this.connect(client, token, namespace);
      return await work(client);
    } finally {
      client.close();
    }
  }

  private newClient(req: http.IncomingMessage): VirtualClient {
    const { broker } = this.deps;
    return new VirtualClient(
      { accept: broker.accept, deliveries: () => broker.stats.deliveries, highWaterMark: broker.settings.outbound.highWaterBytes },
      req.socket.remoteAddress ?? 'http', req.socket.remotePort ?? 0,
    );
  }

  /** The handshake: `sd:http://api/<namespace>` with the token as a Connect meta (spec §3). */
  private async connect(client: VirtualClient, token: string, namespace: string): Promise<void> {
    if (/[&\s]/.test(token)) throw new ApiError(401, 'auth_failed', "A token may not hold '&' or spaces");
    const refused = await client.connect(`sd:http://api/${namespace}`, token.length > 0 ? `token=${token}` : '', this.waitMs);
    if (refused !== null) throw new ApiError(refusalStatus(refused.reason), refused.reason, refused.text || `Refused: ${refused.reason}`);
  }

  /** How long a call waits for the broker to read it (it holds readers while over its memory budget). */
  private get waitMs(): number {
    return this.deps.broker.settings.requestTimeoutMs;
  }

  // ----- endpoints ---------------------------------------------------------------------------------------

  private async publish(client: VirtualClient, body: Record<string, unknown>): Promise<[number, unknown]> {
    const { event, meta, data } = this.frameFields(body, false);
    const result = await client.publish({ flag: Flag.Message, event, meta, data }, this.waitMs);
    if ('reason' in result) throw endedError(result);
    // Nobody to deliver to is not an error for a publish (as for a Socket.D Message by event): 0 delivered.
    if (result.alarm !== null && alarmCode(result.alarm) !== AlarmCode.NoRoute) throw alarmError(result.alarm);
    return [200, { delivered: result.delivered }];
  }

  private async request(client: VirtualClient, body: Record<string, unknown>): Promise<[number, unknown]> {
    const { event, meta, data } = this.frameFields(body, true);
    const limit = this.deps.broker.settings.requestTimeoutMs;
    const asked = optionalPositiveInt(body, 'timeoutMs') ?? limit;
    const timeoutMs = Math.min(asked, limit);
    const withTimeout = `${meta}${meta.length > 0 ? '&' : ''}timeout=${timeoutMs}`;
    // The broker answers a timed-out stream with Alarm 4008; the backstop only covers a broker held busy.
    const answer = await client.request({ flag: Flag.Request, event, meta: withTimeout, data }, timeoutMs + 2_000);
    if ('timeout' in answer) throw new ApiError(504, 'timeout', `No answer within ${timeoutMs} ms`);
    if ('ended' in answer) throw endedError(answer.ended);
    if (answer.frame.flag === Flag.Alarm) throw alarmError(answer.frame);
    return [200, frameJson(answer.frame)];
  }

  private async presence(client: VirtualClient, url: URL): Promise<[number, unknown]> {
    const event = url.searchParams.get('event') ?? '';
    if (!isExactPattern(event) || event.length === 0) throw new ApiError(400, 'bad_request', "Give 'event': one exact event (no wildcard)");
    // Who is in a room is what a subscriber of it would learn: the same permission.
    const permissions = client.session?.permissions;
    if (permissions !== undefined && !permissions.canSubscribe(event)) {
      throw new ApiError(403, 'forbidden', `User '${permissions.user}' may not subscribe to '${event}', so not see who is in it`);
    }
    const answer = await client.request({ flag: Flag.Request, event: '$presence', meta: `event=${event}` }, this.waitMs);
    if ('timeout' in answer) throw new ApiError(504, 'timeout', 'No presence answer');
    if ('ended' in answer) throw endedError(answer.ended);
    if (answer.frame.flag === Flag.Alarm) throw alarmError(answer.frame);
    return [200, { event, members: JSON.parse(answer.frame.data.toString('utf8')) as unknown }];
  }

  /**
   * Closes sessions by id or by `@` name (Close 1001, reason `api_disconnect`). Allowed with http.adminToken,
   * or for a user who may address the target (its name, or `*` for a session without one).
   */
  private disconnect(body: Record<string, unknown>, caller: Session | null, namespace: string): [number, unknown] {
    const id = optionalString(body, 'id');
    const name = optionalString(body, 'name');
    if ((id === undefined) === (name === undefined)) throw new ApiError(400, 'bad_request', "Give 'id' or 'name' of the session(s) to disconnect");
    const targets = this.sessionsBy(id, name, namespace);
    if (targets.length === 0) throw new ApiError(404, 'not_found', id !== undefined ? `No session '${id}'` : `No session named '${name}'`);
    if (caller !== null) {
      const permissions = caller.permissions;
      for (const target of targets) {
        if (!permissions.canAddress(target.name.length > 0 ? target.name : '*')) {
          throw new ApiError(403, 'forbidden', `User '${permissions.user}' may not address '${target.label}'`);
        }
      }
    }
    const by = caller === null ? 'the admin token' : `user '${caller.permissions.user}'`;
    for (const target of targets) target.close('api_disconnect', CloseCode.ProtocolClose, `Disconnected through the HTTP API by ${by}`);
    return [200, { disconnected: targets.length }];
  }

  /** Open sessions with this id or name, in `namespace`. */
  protected sessionsBy(id: string | undefined, name: string | undefined, namespace: string): Session[] {
    const { broker } = this.deps;
    const registry = namespace.length === 0 ? broker.registry : broker.namespaces?.get(namespace)?.registry;
    if (registry === undefined) return [];
    if (id !== undefined) {
      const found = registry.get(id);
      return found === undefined ? [] : [found];
    }
    return [...(registry.group(name!)?.members ?? [])];
  }

  /**
   * GET /api/subscribe: an event stream of the Messages matching `event` (repeatable; `group` for a queue
   * group), answered once every subscription is accepted. Returns the status answered.
   */
  private async subscribe(req: http.IncomingMessage, res: http.ServerResponse, url: URL, token: string): Promise<number> {
    const patterns = url.searchParams.getAll('event');
    if (patterns.length === 0) throw new ApiError(400, 'bad_request', "Give at least one 'event' pattern");
    const group = url.searchParams.get('group') ?? '';
    const namespace = namespaceOf(url.searchParams.get('namespace') ?? undefined);
    const client = this.newClient(req);
    const stream = new SseStream(client, req, res, this.deps.stats, this.options.sseKeepaliveMs);
    try {
      await this.connect(client, token, namespace);
      for (const pattern of patterns) {
        const meta = `event=${pattern}${group.length > 0 ? `&group=${group}` : ''}`;
        const answer = await client.request({ flag: Flag.Request, event: '$sub', meta }, this.waitMs);
        if ('timeout' in answer) throw new ApiError(503, 'congested', 'The subscription was not acknowledged in time');
        if ('ended' in answer) throw endedError(answer.ended);
        if (answer.frame.flag === Flag.Alarm) throw alarmError(answer.frame);
      }
    } catch (error) {
      client.close();
      throw error;
    }
    stream.start();
    return 200;
  }

  // ----- helpers -----------------------------------------------------------------------------------------

  /** Event, meta and data of a publish or request body. */
  private frameFields(body: Record<string, unknown>, isRequest: boolean): { event: string; meta: string; data: Buffer } {
    const event = optionalString(body, 'event') ?? '';
    const name = optionalString(body, 'name');
    if (name === undefined) {
      if (event.length === 0) throw new ApiError(400, 'bad_request', "Give 'event' (routing by event) or 'name' (routing by @ name)");
      if (!isPublishableEvent(event) && !event.startsWith('$')) {
        throw new ApiError(400, 'bad_request', `Cannot publish to '${event}': tokens separated by single dots, without '*' or '>'`);
      }
    } else if (name.length === 0 || /[&\s]/.test(name)) {
      throw new ApiError(400, 'bad_request', `'name' must be an @ address (svc, svc!, svc*, *) without '&' or spaces`);
    }
    let meta = metaFrom(body.meta, isRequest ? ['@', 'timeout'] : ['@']);
    if (name !== undefined) meta = `${meta}${meta.length > 0 ? '&' : ''}@=${name}`;
    const key = optionalString(body, 'key');
    if (key !== undefined) meta = `${meta}${meta.length > 0 ? '&' : ''}X-Hash=${key.replace(/&/g, '')}`;
    return { event, meta, data: dataFrom(body, this.deps.broker.settings.limits.maxData) };
  }

  private isAdmin(token: string): boolean {
    const expected = this.options.adminToken;
    if (expected.length === 0 || token.length === 0) return false;
    const a = Buffer.from(token);
    const b = Buffer.from(expected);
    return a.length === b.length && timingSafeEqual(a, b);
  }
}

/** `Authorization: Bearer <token>`, or `?token=` (EventSource in a browser cannot set headers); '' for none. */
function bearerToken(req: http.IncomingMessage, url: URL): string {
  const header = req.headers.authorization ?? '';
  if (header.startsWith('Bearer ')) return header.slice(7).trim();
  return url.searchParams.get('token') ?? '';
}

function namespaceOf(given: string | undefined): string {
  const name = given === undefined || given === '/' ? '' : given;
  if (!isValidNamespaceName(name)) {
    throw new ApiError(400, 'bad_namespace', `Invalid namespace '${name}': 1 to 64 letters, digits, '_', '.', '-'`);
  }
  return name;
}

function alarmCode(frame: Frame): number {
  return Number(frame.meta('code') ?? 0);
}

function alarmError(frame: Frame): ApiError {
  const code = alarmCode(frame);
  const [status, name] = ALARM_STATUS[code] ?? [502, 'alarm'];
  return new ApiError(status, name, frame.data.toString('utf8'), { alarm: code });
}

function endedError(ended: Ended): ApiError {
  return new ApiError(refusalStatus(ended.reason), ended.reason, ended.text || `The session ended: ${ended.reason}`);
}
