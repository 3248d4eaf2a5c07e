/**
 * Who may use the admin endpoints (docs/operations.md section 6). Reading (/connz, /subsz, /namez, the admin
 * page's API, /metrics with http.protectMetrics): with http.adminToken set, the token is needed from every
 * address; without one, only addresses on http.adminTrusted (loopback by default) get an answer. Actions
 * (disconnecting a session) need the token always: with none configured they are refused, so that no page a
 * browser on a trusted machine happens to load can act through it.
 */
import type http from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import { TrustedAddresses } from './trusted.js';

export interface AdminGuardOptions {
  /** '' for none. */
  token: string;
  /** Addresses and CIDR blocks (validated by the config). */
  trusted: readonly string[];
}

/** Why a request was refused: stable codes, in the JSON body as `reason`. */
export type RefusalReason = 'token_required' | 'bad_token' | 'untrusted_address' | 'admin_token_not_set';

export interface Refusal {
  status: 401 | 403;
  body: { error: 'unauthorized' | 'forbidden'; reason: RefusalReason; hint: string };
}

/** How a request was let in: by its token or by its address. */
export type Admission = 'token' | 'trusted';

const BEARER = /^Bearer +(\S+) *$/i;

export class AdminGuard {
  private readonly token: Buffer | null;
  private readonly trusted: TrustedAddresses;

  constructor(options: AdminGuardOptions) {
    this.token = options.token.length > 0 ? Buffer.from(options.token) : null;
    this.trusted = new TrustedAddresses(options.trusted);
  }

  /** True when http.adminToken is set: the token is then needed from everywhere, and actions are possible. */
  get tokenSet(): boolean {
    return this.token !== null;
  }

  /**
   * May this request read? `queryToken` is the legacy `?token=` of /connz, /subsz and /namez (null elsewhere:
   * a token in a URL ends up in access logs and browser history).
   */
  read(req: http.IncomingMessage, queryToken: string | null = null): Admission | Refusal {
    if (this.token !== null) return this.checkToken(bearerOf(req) ?? queryToken);
    if (this.trusted.has(req.socket.remoteAddress)) return 'trusted';
    return {
      status: 401,
      body: {
        error: 'unauthorized',
        reason: 'untrusted_address',
        hint: `${req.socket.remoteAddress ?? 'this address'} is not on http.adminTrusted: add it there, or set http.adminToken and send Authorization: Bearer <token>`,
      },
    };
  }

  /** May this request act (disconnect a session)? Only with the token, which must be configured. */
  act(req: http.IncomingMessage): Admission | Refusal {
    if (this.token === null) {
      return {
        status: 403,
        body: {
          error: 'forbidden',
          reason: 'admin_token_not_set',
          hint: 'actions need an admin token: set http.adminToken (or SOCKETD_ADMIN_TOKEN) and send Authorization: Bearer <token>',
        },
      };
    }
    return this.checkToken(bearerOf(req));
  }

  private checkToken(given: string | null): Admission | Refusal {
    const expected = this.token!;
    if (given === null || given.length === 0) {
      return { status: 401, body: { error: 'unauthorized', reason: 'token_required', hint: 'send Authorization: Bearer <http.adminToken>' } };
    }
    const a = Buffer.from(given);
    if (a.length === expected.length && timingSafeEqual(a, expected)) return 'token';
    return { status: 401, body: { error: 'unauthorized', reason: 'bad_token', hint: 'the token does not match http.adminToken' } };
  }
}

export function isRefusal(verdict: Admission | Refusal): verdict is Refusal {
  return typeof verdict !== 'string';
}

function bearerOf(req: http.IncomingMessage): string | null {
  const header = req.headers.authorization;
  if (header === undefined) return null;
  const m = BEARER.exec(header);
  return m === null ? null : m[1];
}
