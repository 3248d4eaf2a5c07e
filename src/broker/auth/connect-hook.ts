/**
 * The connect hook (docs/security.md, "Connect hook"): at handshake the broker asks the application, over
 * HTTP with Node's own fetch, who the client is. The application answers with the user, the `@` name and
 * the permissions, or refuses with its reason.
 *
 * Request: `POST <url>`, `content-type: application/json`, body
 *   `{ "transport", "remoteAddress", "name", "token", "params": { ...URL params overlaid by Connect metas } }`.
 * Answer (HTTP 200, JSON): `{ "allow": true, "user": "alice", "name"?: "alice", "permissions"?: {...},
 *   "expiresAt"?: <epoch seconds> }` or `{ "allow": false, "reason": "..." }`.
 * Any other status, a body that is not such JSON, no answer within `timeoutMs`: `hook_unavailable`. More than
 * `maxConcurrent` calls in flight: `hook_busy` at once. A slow hook only delays the handshakes waiting on it:
 * the call is asynchronous and sessions already open never wait for it.
 */
import { createHash } from 'node:crypto';
import { ALL_PERMISSIONS, type HandshakeRefusal } from '../access.js';
import { BrokerStats } from '../stats.js';
import { AuthCode, TokenPermissions, parsePermissionClaim, refusal } from './identity.js';

export interface ConnectHookOptions {
  url: string;
  /** A call without an answer after this long refuses the handshake (`hook_unavailable`). */
  timeoutMs: number;
  /** Answers (admissions and refusals) are reused this long for the same request body; 0 = never. */
  cacheMs: number;
  /** Answers kept at most (oldest dropped first). */
  cacheMaxEntries: number;
  /** Calls in flight at most; beyond it handshakes are refused at once (`hook_busy`). */
  maxConcurrent: number;
  /** An answer body larger than this is not read further (`hook_unavailable`). */
  maxAnswerBytes: number;
}

export interface HookRequest {
  transport: string;
  remoteAddress: string;
  /** The `@` name the client asked for ('' when none). */
  name: string;
  /** The client's token ('' when none). */
  token: string;
  params: Record<string, string>;
}

/** The fetch the hook calls (Node's global fetch; a seam for unit tests). */
export type FetchLike = (url: string, init: { method: string; headers: Record<string, string>; body: string; signal: AbortSignal }) => Promise<HookResponse>;

/** What the hook reads of a response: Node's fetch Response has all of it; `body` may be absent in fakes. */
export interface HookResponse {
  status: number;
  text(): Promise<string>;
  body?: ReadableStream<Uint8Array> | null;
}

/** Outcome labels of `socketd_auth_checks_total{source="hook"}`. */
export const HookOutcome = { Admitted: 'admitted', Refused: 'refused', Timeout: 'timeout', Error: 'error', Busy: 'busy', Cached: 'cached' } as const;

type Answer = TokenPermissions | HandshakeRefusal;

export class ConnectHook {
  private inFlight = 0;
  private readonly cache = new Map<string, { answer: Answer; until: number }>();

  constructor(
    private readonly options: ConnectHookOptions,
    private readonly stats: BrokerStats,
    private readonly fetcher: FetchLike = fetch as unknown as FetchLike,
    private readonly now: () => number = Date.now,
  ) {}

  get pending(): number {
    return this.inFlight;
  }

  /** Asks the application; never rejects. */
  async admit(request: HookRequest): Promise<Answer> {
    const body = JSON.stringify(request);
    const key = this.options.cacheMs > 0 ? createHash('sha256').update(body).digest('base64') : '';
    if (key.length > 0) {
      const hit = this.cache.get(key);
      if (hit !== undefined && hit.until > this.now()) {
        BrokerStats.inc(this.stats.authChecks, `hook|${HookOutcome.Cached}`);
        return hit.answer;
      }
      if (hit !== undefined) this.cache.delete(key);
    }
    if (this.inFlight >= this.options.maxConcurrent) {
      BrokerStats.inc(this.stats.authChecks, `hook|${HookOutcome.Busy}`);
      return refusal(AuthCode.HookBusy, `The connect hook has ${this.options.maxConcurrent} calls in flight: try again later`);
    }
    this.inFlight++;
    this.stats.hookInFlight++;
    const started = this.now();
    let answer: Answer;
    let outcome: string;
    try {
      const response = await this.fetcher(this.options.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
      const text = await readCapped(response, this.options.maxAnswerBytes);
      [answer, outcome] = text === null
        ? [refusal(AuthCode.HookUnavailable, `The connect hook's answer is larger than ${this.options.maxAnswerBytes} bytes`), HookOutcome.Error]
        : response.status === 200
        ? readAnswer(text, this.now())
        : [refusal(AuthCode.HookUnavailable, `The connect hook answered HTTP ${response.status}`), HookOutcome.Error];
    } catch (error) {
      const timedOut = (error as Error).name === 'TimeoutError' || (error as Error).name === 'AbortError';
      outcome = timedOut ? HookOutcome.Timeout : HookOutcome.Error;
      answer = refusal(AuthCode.HookUnavailable, timedOut
        ? `The connect hook did not answer within ${this.options.timeoutMs} ms`
        : `The connect hook cannot be reached: ${(error as Error).message}`);
    } finally {
      this.inFlight--;
      this.stats.hookInFlight--;
    }
    this.stats.hookLatency.observe((this.now() - started) / 1000);
    BrokerStats.inc(this.stats.authChecks, `hook|${outcome}`);
    // Outages are not cached: the next handshake asks again.
    if (key.length > 0 && (answer instanceof TokenPermissions || answer.code !== AuthCode.HookUnavailable)) this.remember(key, answer);
    return answer;
  }

  private remember(key: string, answer: Answer): void {
    if (this.cache.size >= this.options.cacheMaxEntries) {
      const oldest = this.cache.keys().next();
      if (!oldest.done) this.cache.delete(oldest.value);
    }
    this.cache.set(key, { answer, until: this.now() + this.options.cacheMs });
  }
}

/** The body as text, or null once it passes `max` bytes (the rest is not read: the stream is cancelled). */
async function readCapped(response: HookResponse, max: number): Promise<string | null> {
  if (response.body === undefined || response.body === null) {
    const text = await response.text();
    return Buffer.byteLength(text) > max ? null : text;
  }
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel();
      return null;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, size).toString('utf8');
}

/** The application's answer as an admission or a refusal, with the outcome label. */
function readAnswer(text: string, now: number): [Answer, string] {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return [refusal(AuthCode.HookUnavailable, 'The connect hook answered something that is not JSON'), HookOutcome.Error];
  }
  if (typeof body !== 'object' || body === null || typeof (body as { allow?: unknown }).allow !== 'boolean') {
    return [refusal(AuthCode.HookUnavailable, "The connect hook's answer has no boolean 'allow'"), HookOutcome.Error];
  }
  const b = body as { allow: boolean; reason?: unknown; user?: unknown; name?: unknown; permissions?: unknown; expiresAt?: unknown };
  if (!b.allow) {
    const reason = typeof b.reason === 'string' && b.reason.length > 0 ? b.reason.slice(0, 512) : 'Refused by the application';
    return [refusal(AuthCode.HookRefused, reason), HookOutcome.Refused];
  }
  const problem = (what: string): [Answer, string] => [refusal(AuthCode.HookUnavailable, `The connect hook's answer is invalid: ${what}`), HookOutcome.Error];
  if (typeof b.user !== 'string' || b.user.length === 0) return problem("'user' must be a non-empty string");
  if (b.name !== undefined && typeof b.name !== 'string') return problem("'name' must be a string");
  if (b.expiresAt !== undefined && (typeof b.expiresAt !== 'number' || !Number.isFinite(b.expiresAt))) return problem("'expiresAt' must be epoch seconds");
  // The application answers for the user: rules it leaves out allow everything, as for configured users.
  const claim = parsePermissionClaim(b.permissions, ALL_PERMISSIONS, b.user);
  if (typeof claim === 'string') return problem(claim);
  const expiresAt = typeof b.expiresAt === 'number' ? b.expiresAt * 1000 : 0;
  if (expiresAt !== 0 && expiresAt <= now) return [refusal(AuthCode.TokenExpired, 'The connect hook admitted the client until a time already past'), HookOutcome.Refused];
  return [new TokenPermissions(b.user, claim.rules, expiresAt, (b.name as string | undefined) ?? '', claim.namespaces, 'hook'), HookOutcome.Admitted];
}
