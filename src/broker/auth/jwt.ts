/**
 * Signed tokens (JWT, RFC 7519) as per-user identities (docs/security.md, "JWT"). Verification is the `jose`
 * library's; this file picks the key, maps jose's errors to the broker's stable refusal codes and reads the
 * permissions claim.
 *
 * - `sub` is the user; the claim `socketd` carries the permissions (identity.ts), `exp` the expiry.
 * - The key comes from the header's `alg`: HS* use the HMAC secret, other algorithms the configured PEM
 *   public keys (each compatible key is tried) and then the JWKS. `alg` must be in the allow-list, and `none`
 *   never is, so an unsigned token or an HMAC token made with an RSA public key as its secret is refused.
 * - Expired (`exp`), not yet valid (`nbf`), wrong `iss` or `aud`: refused with their own codes, within
 *   `clockToleranceSec`.
 */
import { webcrypto, type KeyObject } from 'node:crypto';
import { createRemoteJWKSet, decodeProtectedHeader, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey, type JWTVerifyOptions } from 'jose';
import type { HandshakeRefusal, PermissionRules } from '../access.js';
import { AuthCode, TokenPermissions, parsePermissionClaim, refusal } from './identity.js';

/** The claim that carries the permissions. */
export const PERMISSIONS_CLAIM = 'socketd';

export const HMAC_ALGORITHMS: readonly string[] = ['HS256', 'HS384', 'HS512'];
export const ASYMMETRIC_ALGORITHMS: readonly string[] = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];

export interface JwksOptions {
  url: URL;
  /** Keys are refetched after this long even when every kid is known (jose's cacheMaxAge). */
  cacheMs: number;
  /** An unknown `kid` refetches the set at most this often (key rotation; jose's cooldownDuration). */
  cooldownMs: number;
  /** One fetch of the set gives up after this long: the handshake is refused with `jwks_unavailable`. */
  timeoutMs: number;
}

export interface JwtOptions {
  hmacSecret: Uint8Array | null;
  publicKeys: readonly KeyObject[];
  jwks: JwksOptions | null;
  /** Required `iss`, '' for any. */
  issuer: string;
  /** Required `aud` (one of), '' for any. */
  audience: string;
  /** Accepted `alg` values; empty: every algorithm the configured keys can verify. */
  algorithms: readonly string[];
  clockToleranceSec: number;
  /** Rules for tokens without the claim, and for the rules a claim leaves out; `{sub}` stands for the user. */
  defaultPermissions: PermissionRules;
}

export class JwtVerifier {
  readonly algorithms: readonly string[];
  private readonly jwks: JWTVerifyGetKey | null;
  private readonly baseOptions: JWTVerifyOptions;
  /**
   * The HMAC secret imported once per algorithm: given raw bytes, jose imports a WebCrypto key on every
   * verification, which cost about 40 times the HMAC itself (bench/results.md, "Handshakes with JWT").
   */
  private readonly hmacKeys = new Map<string, Promise<webcrypto.CryptoKey>>();

  constructor(private readonly options: JwtOptions) {
    this.algorithms = options.algorithms.length > 0 ? options.algorithms : derivedAlgorithms(options);
    this.jwks = options.jwks === null ? null : createRemoteJWKSet(options.jwks.url, {
      cacheMaxAge: options.jwks.cacheMs,
      cooldownDuration: options.jwks.cooldownMs,
      timeoutDuration: options.jwks.timeoutMs,
    });
    this.baseOptions = {
      algorithms: [...this.algorithms],
      clockTolerance: options.clockToleranceSec,
      ...(options.issuer.length > 0 ? { issuer: options.issuer } : {}),
      ...(options.audience.length > 0 ? { audience: options.audience } : {}),
    };
  }

  /** Verifies `token` and reads its identity; never rejects. Refusal texts never contain the token. */
  async verify(token: string): Promise<TokenPermissions | HandshakeRefusal> {
    let alg: string;
    try {
      alg = decodeProtectedHeader(token).alg ?? '';
    } catch {
      return refusal(AuthCode.TokenInvalid, 'The token is not a readable JWT');
    }
    if (!this.algorithms.includes(alg)) {
      return refusal(AuthCode.TokenInvalid, `The token's algorithm '${alg}' is not accepted (accepted: ${this.algorithms.join(', ')})`);
    }
    let payload: JWTPayload | null = null;
    let last: HandshakeRefusal = refusal(AuthCode.TokenInvalid, `No key configured for algorithm '${alg}'`);
    if (HMAC_ALGORITHMS.includes(alg)) {
      if (this.options.hmacSecret !== null) {
        const outcome = await this.tryKey(token, await this.hmacKey(alg, this.options.hmacSecret));
        if ('code' in outcome) last = outcome;
        else payload = outcome.payload;
      }
    } else {
      for (const key of this.options.publicKeys) {
        if (!keyFits(key, alg)) continue;
        const outcome = await this.tryKey(token, key);
        if (!('code' in outcome)) {
          payload = outcome.payload;
          break;
        }
        last = outcome;
        // A signature that another configured key might verify: try it; any other failure is final.
        if (!outcome.badSignature) return outcome;
      }
      if (payload === null && this.jwks !== null) {
        const outcome = await this.tryKey(token, this.jwks);
        if ('code' in outcome) last = outcome;
        else payload = outcome.payload;
      }
    }
    if (payload === null) return { code: last.code, text: last.text };
    return this.identity(payload);
  }

  private hmacKey(alg: string, secret: Uint8Array): Promise<webcrypto.CryptoKey> {
    let key = this.hmacKeys.get(alg);
    if (key === undefined) {
      key = webcrypto.subtle.importKey('raw', secret, { name: 'HMAC', hash: `SHA-${alg.slice(2)}` }, false, ['verify']);
      this.hmacKeys.set(alg, key);
    }
    return key;
  }

  private async tryKey(token: string, key: webcrypto.CryptoKey | Uint8Array | KeyObject | JWTVerifyGetKey): Promise<{ payload: JWTPayload } | (HandshakeRefusal & { badSignature: boolean })> {
    try {
      const { payload } = typeof key === 'function'
        ? await jwtVerify(token, key, this.baseOptions)
        : await jwtVerify(token, key, this.baseOptions);
      return { payload };
    } catch (error) {
      return { ...refusalOf(error), badSignature: error instanceof errors.JWSSignatureVerificationFailed };
    }
  }

  private identity(payload: JWTPayload): TokenPermissions | HandshakeRefusal {
    const user = payload.sub;
    if (typeof user !== 'string' || user.length === 0) return refusal(AuthCode.TokenInvalid, "The token has no 'sub' (the user)");
    const claim = parsePermissionClaim(payload[PERMISSIONS_CLAIM], this.options.defaultPermissions, user);
    if (typeof claim === 'string') return refusal(AuthCode.TokenInvalid, `The token's '${PERMISSIONS_CLAIM}' claim is invalid: ${claim}`);
    const expiresAt = typeof payload.exp === 'number' ? payload.exp * 1000 + this.options.clockToleranceSec * 1000 : 0;
    return new TokenPermissions(user, claim.rules, expiresAt, '', claim.namespaces, 'jwt');
  }
}

/** The algorithms the configured keys can verify. */
function derivedAlgorithms(options: JwtOptions): string[] {
  const out: string[] = [];
  if (options.hmacSecret !== null) out.push(...HMAC_ALGORITHMS);
  if (options.jwks !== null) out.push(...ASYMMETRIC_ALGORITHMS);
  else for (const key of options.publicKeys) for (const alg of ASYMMETRIC_ALGORITHMS) if (keyFits(key, alg) && !out.includes(alg)) out.push(alg);
  return out;
}

/** True when a public key's type can verify `alg` (jose checks the details, e.g. the curve). */
export function keyFits(key: KeyObject, alg: string): boolean {
  const type = key.asymmetricKeyType ?? '';
  if (alg.startsWith('RS')) return type === 'rsa';
  if (alg.startsWith('PS')) return type === 'rsa' || type === 'rsa-pss';
  if (alg.startsWith('ES')) {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    return type === 'ec' && curve === ({ ES256: 'prime256v1', ES384: 'secp384r1', ES512: 'secp521r1' } as Record<string, string>)[alg];
  }
  if (alg === 'EdDSA' || alg === 'Ed25519') return type === 'ed25519' || (alg === 'EdDSA' && type === 'ed448');
  return false;
}

/** jose's errors as the broker's refusal codes; the texts name the failed check, never the token. */
export function refusalOf(error: unknown): HandshakeRefusal {
  if (error instanceof errors.JWTExpired) return refusal(AuthCode.TokenExpired, 'The token has expired');
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === 'nbf') return refusal(AuthCode.TokenNotYetValid, 'The token is not valid yet (nbf)');
    if (error.claim === 'iat' && error.reason === 'check_failed') return refusal(AuthCode.TokenNotYetValid, 'The token was issued in the future (iat)');
    if (error.claim === 'iss') return refusal(AuthCode.TokenInvalid, "The token's issuer (iss) is not the expected one");
    if (error.claim === 'aud') return refusal(AuthCode.TokenInvalid, "The token's audience (aud) is not the expected one");
    return refusal(AuthCode.TokenInvalid, `The token's '${error.claim}' claim is invalid`);
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return refusal(AuthCode.TokenInvalid, "The token's signature does not verify");
  if (error instanceof errors.JOSEAlgNotAllowed) return refusal(AuthCode.TokenInvalid, "The token's algorithm is not accepted");
  if (error instanceof errors.JWKSNoMatchingKey) return refusal(AuthCode.TokenInvalid, 'No key in the JWKS matches the token (kid, alg)');
  if (error instanceof errors.JWKSMultipleMatchingKeys) return refusal(AuthCode.TokenInvalid, 'Several keys in the JWKS match the token: it needs a kid');
  if (error instanceof errors.JWKSTimeout) return refusal(AuthCode.JwksUnavailable, 'The JWKS could not be fetched in time');
  if (error instanceof errors.JWKSInvalid) return refusal(AuthCode.JwksUnavailable, 'The JWKS answer is not a valid key set');
  if (error instanceof errors.JOSEError) {
    // jose's own messages describe the check (e.g. "JWS Protected Header is invalid"), never the token.
    if (/JSON Web Key Set/.test(error.message)) return refusal(AuthCode.JwksUnavailable, `The JWKS could not be fetched: ${error.message}`);
    return refusal(AuthCode.TokenInvalid, `The token is invalid: ${error.message}`);
  }
  if (error instanceof TypeError && /fetch/i.test(error.message)) return refusal(AuthCode.JwksUnavailable, `The JWKS could not be fetched: ${error.message}`);
  // A key unusable for the token (e.g. an RSA key under 2048 bits): jose throws a TypeError.
  return refusal(AuthCode.TokenInvalid, 'The token cannot be verified with the configured keys');
}
