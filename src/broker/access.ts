/**
 * Access control (spec §8): who may connect, which events a session may publish to and subscribe to, and
 * which `@` names it may claim and address.
 *
 * - A user authenticates with `token` (URL param or Connect meta). Tokens are configured in plain text or as
 *   `sha256:<hex>`; comparison is constant-time.
 * - Event permissions are lists of patterns (`*` one token, `>` the rest, spec §4.2) with allow and deny;
 *   deny wins. A subscription pattern is allowed when an allow pattern covers it and no deny pattern covers
 *   it; a wildcard subscription that overlaps a denied event is allowed, and the denied events are filtered
 *   out at delivery (as NATS does).
 * - Name permissions are globs where `*` matches any run of characters (`svc-*`).
 * - With anonymous access on, a client without a token gets the anonymous permissions.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { matchPattern, patternCovers } from '../protocol/event-pattern.js';

export interface HandshakeRefusal {
  /** Stable code, logged and counted (e.g. `auth_failed`). */
  code: string;
  /** Human-readable reason, sent in the Close frame. */
  text: string;
}

export interface AllowDeny {
  allow: string[];
  deny: string[];
}

export interface PermissionRules {
  publish: AllowDeny;
  subscribe: AllowDeny;
  /** `@` names the session may claim in its handshake. */
  claim: AllowDeny;
  /** `@` names the session may address (the name part of `name`, `name!`, `name*`; `*` needs `*` allowed). */
  address: AllowDeny;
  /**
   * Namespaces the session may join (globs; the default namespace is `/`); unset: every one
   * (docs/namespaces.md). Checked once, at the handshake.
   */
  namespaces?: AllowDeny;
}

/** What one session may do; checked on the frame path, so the all-allowed case costs one boolean. */
export class Permissions {
  /** True when every check passes: the hot path skips them all. */
  readonly unrestricted: boolean;
  /** True when deliveries to this session's wildcard subscriptions must be filtered. */
  readonly filtersDeliveries: boolean;
  private readonly publishCache = new Map<string, boolean>();

  constructor(readonly user: string, private readonly rules: PermissionRules) {
    this.unrestricted = allows(rules.publish, '>') && allows(rules.subscribe, '>') && allows(rules.claim, '*') && allows(rules.address, '*');
    this.filtersDeliveries = rules.subscribe.deny.length > 0;
  }

  canPublish(event: string): boolean {
    if (this.unrestricted) return true;
    const cached = this.publishCache.get(event);
    if (cached !== undefined) return cached;
    const result = eventAllowed(this.rules.publish, event);
    if (this.publishCache.size >= 1024) this.publishCache.clear();
    this.publishCache.set(event, result);
    return result;
  }

  canSubscribe(pattern: string): boolean {
    if (this.unrestricted) return true;
    const { allow, deny } = this.rules.subscribe;
    return allow.some((a) => patternCovers(a, pattern)) && !deny.some((d) => patternCovers(d, pattern));
  }

  /** Delivery filter for wildcard subscriptions overlapping a denied event. */
  canReceive(event: string): boolean {
    return !this.filtersDeliveries || !this.rules.subscribe.deny.some((d) => matchPattern(d, event));
  }

  canClaim(name: string): boolean {
    return this.unrestricted || nameAllowed(this.rules.claim, name);
  }

  canAddress(name: string): boolean {
    return this.unrestricted || nameAllowed(this.rules.address, name);
  }

  /** May join the namespace `name` ('' is the default namespace, matched by the glob `/`). */
  canUseNamespace(name: string): boolean {
    const rule = this.rules.namespaces;
    return rule === undefined || nameAllowed(rule, name.length === 0 ? '/' : name);
  }
}

export const ALLOW_ALL: AllowDeny = Object.freeze({ allow: ['>'], deny: [] }) as AllowDeny;
const ALLOW_ALL_NAMES: AllowDeny = Object.freeze({ allow: ['*'], deny: [] }) as AllowDeny;

export const ALL_PERMISSIONS: PermissionRules = Object.freeze({
  publish: ALLOW_ALL,
  subscribe: ALLOW_ALL,
  claim: ALLOW_ALL_NAMES,
  address: ALLOW_ALL_NAMES,
});

/** True when the rule lets everything through: nothing denied and the catch-all allowed. */
function allows(rule: AllowDeny, catchAll: string): boolean {
  return rule.deny.length === 0 && rule.allow.includes(catchAll);
}

/** An admission decided now, or later (a JWT verified, the connect hook answering: src/broker/auth). */
export type Admission = Permissions | HandshakeRefusal | Promise<Permissions | HandshakeRefusal>;

export interface AccessPolicy {
  /** Admits the client with its permissions, or refuses it; a promise must never reject. */
  authenticate(params: ReadonlyMap<string, string>, remoteAddress: string, transport?: string): Admission;
  /** Frames the session keeps while a pending admission is decided (more: protocol error); default 16. */
  readonly pendingFramesMax?: number;
  /** Bytes of those frames at most (more: protocol error); default 65536. */
  readonly pendingBytesMax?: number;
  /**
   * A fresh token for an open session (control Request `$auth`, docs/protocol.md): the new permissions, or a
   * refusal. Absent: the policy has no expiring identities and `$auth` is refused.
   */
  refresh?(current: Permissions, token: string, params: ReadonlyMap<string, string>, remoteAddress: string, transport: string): Promise<Permissions | HandshakeRefusal>;
}

/** Anonymous access with every permission: the default when no access section is configured. */
export const OPEN_ACCESS: AccessPolicy = {
  authenticate: () => OPEN_PERMISSIONS,
};
const OPEN_PERMISSIONS = new Permissions('anonymous', ALL_PERMISSIONS);

export interface UserEntry {
  name: string;
  /** Plain token, or `sha256:<64 hex>`. */
  token: string;
  permissions: PermissionRules;
}

export interface AccessConfig {
  /** Admit clients that send no token. */
  anonymous: boolean;
  anonymousPermissions: PermissionRules;
  users: UserEntry[];
}

/** The policy built from the `access` config section. */
export class ConfigAccessPolicy implements AccessPolicy {
  private readonly users: { name: string; digest: Buffer; permissions: Permissions }[];
  private readonly anonymous: Permissions | null;

  constructor(config: AccessConfig) {
    this.users = config.users.map((u) => ({ name: u.name, digest: tokenDigest(u.token), permissions: new Permissions(u.name, u.permissions) }));
    this.anonymous = config.anonymous ? new Permissions('anonymous', config.anonymousPermissions) : null;
  }

  authenticate(params: ReadonlyMap<string, string>): Permissions | HandshakeRefusal {
    const token = params.get('token');
    // With no users configured there is nothing to check a token against: it is ignored (a client carrying
    // a token meant for another broker still connects anonymously, when anonymous access is on).
    if (token === undefined || token.length === 0 || this.users.length === 0) {
      if (this.anonymous !== null) return this.anonymous;
      return { code: 'auth_required', text: 'This broker needs a token (URL param or Connect meta `token`)' };
    }
    return this.userFor(token) ?? { code: 'auth_failed', text: 'Unknown token' };
  }

  /** The configured user whose token this is, or null. */
  userFor(token: string): Permissions | null {
    const digest = sha256(token);
    // Compare against every user so the time taken does not tell which one matched.
    let found: Permissions | null = null;
    for (const user of this.users) if (timingSafeEqual(user.digest, digest) && found === null) found = user.permissions;
    return found;
  }
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** Problems with a configured token ('' when fine). */
export function tokenProblem(token: string): string {
  if (token.startsWith('sha256:')) return /^sha256:[0-9a-f]{64}$/i.test(token) ? '' : 'a sha256: token needs 64 hex digits';
  return token.length >= 8 ? '' : 'a plain token needs at least 8 characters';
}

function tokenDigest(token: string): Buffer {
  return token.startsWith('sha256:') ? Buffer.from(token.slice(7), 'hex') : sha256(token);
}

// ----- pattern logic ----------------------------------------------------------------------------------------

function eventAllowed(rule: AllowDeny, event: string): boolean {
  return rule.allow.some((a) => matchPattern(a, event)) && !rule.deny.some((d) => matchPattern(d, event));
}

function globMatches(glob: string, name: string): boolean {
  if (glob === '*') return true;
  if (!glob.includes('*')) return glob === name;
  const re = new RegExp(`^${glob.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return re.test(name);
}

function nameAllowed(rule: AllowDeny, name: string): boolean {
  return rule.allow.some((g) => globMatches(g, name)) && !rule.deny.some((g) => globMatches(g, name));
}
