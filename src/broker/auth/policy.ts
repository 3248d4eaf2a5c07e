/**
 * The access policy with per-user identities (docs/security.md): signed tokens (JWT), configured users and
 * the application's connect hook, side by side. For a client's `token` (URL param or Connect meta):
 *
 * 1. a token shaped like a JWT, with `access.jwt` configured: verified (jwt.ts), its claim is the permissions;
 * 2. a configured user's token: that user (access.ts);
 * 3. with `access.connectHook` configured: the application decides (connect-hook.ts), tokenless clients too;
 * 4. otherwise the configured policy: anonymous access or `auth_required` / `auth_failed`.
 *
 * JWT and hook admissions are asynchronous; the session keeps the frames that come meanwhile (session.ts).
 */
import { ConfigAccessPolicy, Permissions, type AccessPolicy, type Admission, type HandshakeRefusal } from '../access.js';
import { BrokerStats } from '../stats.js';
import type { ConnectHook } from './connect-hook.js';
import { AuthCode, TokenPermissions, looksLikeJwt, refusal } from './identity.js';
// A type only: jose is loaded when access.jwt is configured (wiring.ts), not by every broker.
import type { JwtVerifier } from './jwt.js';

export class IdentityAccessPolicy implements AccessPolicy {
  constructor(
    private readonly configured: ConfigAccessPolicy,
    private readonly jwt: JwtVerifier | null,
    private readonly hook: ConnectHook | null,
    private readonly stats: BrokerStats,
    /** Frames a client may send between its Connect and the Connack while its admission is pending. */
    readonly pendingFramesMax: number,
    /** Their bytes at most. */
    readonly pendingBytesMax: number,
  ) {}

  authenticate(params: ReadonlyMap<string, string>, remoteAddress: string, transport = ''): Admission {
    const token = params.get('token') ?? '';
    if (this.jwt !== null && looksLikeJwt(token)) return this.verifyJwt(this.jwt, token);
    if (this.hook !== null) {
      const user = token.length > 0 ? this.configured.userFor(token) : null;
      if (user !== null) return user;
      return this.hook.admit({ transport, remoteAddress, name: params.get('@') ?? '', token, params: Object.fromEntries(params) });
    }
    return this.configured.authenticate(params);
  }

  /**
   * A fresh token for an open session (`$auth`, docs/protocol.md): checked as at the handshake, and it must
   * name the same user. Resolves with the new permissions or a refusal.
   */
  async refresh(current: Permissions, token: string, params: ReadonlyMap<string, string>, remoteAddress: string, transport: string): Promise<Permissions | HandshakeRefusal> {
    if (token.length === 0) return refusal(AuthCode.TokenInvalid, '$auth needs the new token (meta `token` or the data)');
    const next = new Map(params);
    next.set('token', token);
    const admitted = await this.authenticate(next, remoteAddress, transport);
    if (!(admitted instanceof Permissions)) return admitted;
    if (admitted.user !== current.user) {
      return refusal('token_user_mismatch', `The new token is for another user than '${current.user}'`);
    }
    return admitted;
  }

  private async verifyJwt(jwt: JwtVerifier, token: string): Promise<Permissions | HandshakeRefusal> {
    const outcome = await jwt.verify(token);
    BrokerStats.inc(this.stats.authChecks, `jwt|${outcome instanceof TokenPermissions ? 'admitted' : outcome.code}`);
    return outcome;
  }
}
