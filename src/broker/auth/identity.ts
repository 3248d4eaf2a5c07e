/**
 * Identities that come from outside the broker's config (docs/security.md, "Per-user identity"): a signed
 * token (JWT) or the application's connect hook. Both end in TokenPermissions: the rules of a configured
 * user (spec §8), plus when they stop being valid, the name the application assigned, and the namespaces the
 * identity may use.
 */
import { patternProblem } from '../../protocol/event-pattern.js';
import { ALL_PERMISSIONS, Permissions, type AllowDeny, type HandshakeRefusal, type PermissionRules } from '../access.js';

export class TokenPermissions extends Permissions {
  constructor(
    user: string,
    rules: PermissionRules,
    /** Epoch ms after which the session must be closed (`token_expired`), 0 for never. */
    readonly expiresAt: number,
    /** The `@` name the application assigned (connect hook), '' to take the client's. */
    readonly assignedName: string,
    /**
     * Namespaces named by the identity, null when it names none. They are also the `namespaces` rule of the
     * permissions (allow these, as globs), which the handshake checks (docs/namespaces.md).
     */
    readonly namespaces: readonly string[] | null,
    /** Where the identity came from: `jwt` or `hook` (logs, `$auth`). */
    readonly source: 'jwt' | 'hook',
  ) {
    super(user, rules);
  }
}

/** The stable codes of refusals from token and hook checks (Close reason, log field, metric label). */
export const AuthCode = {
  TokenExpired: 'token_expired',
  TokenInvalid: 'token_invalid',
  TokenNotYetValid: 'token_not_yet_valid',
  JwksUnavailable: 'jwks_unavailable',
  HookRefused: 'hook_refused',
  HookUnavailable: 'hook_unavailable',
  HookBusy: 'hook_busy',
} as const;

export function refusal(code: string, text: string): HandshakeRefusal {
  return { code, text };
}

export function isRefusal(value: unknown): value is HandshakeRefusal {
  return typeof value === 'object' && value !== null && !(value instanceof Permissions) && typeof (value as HandshakeRefusal).code === 'string';
}

const RULE_KEYS = ['publish', 'subscribe', 'claim', 'address'] as const;
const EVENT_RULE_KEYS: readonly string[] = ['publish', 'subscribe'];
/** `{sub}` in a default rule is replaced by the user; the user must then be one token of an event or name. */
const SUB_PLACEHOLDER = '{sub}';
const SAFE_SUB = /^[^\s&=,.*>!{}$]{1,256}$/;

export interface ParsedClaim {
  rules: PermissionRules;
  namespaces: readonly string[] | null;
}

/**
 * Reads the permissions claim (`socketd` in a JWT, `permissions` in a hook answer): the shape of a configured
 * user's permissions (publish, subscribe, claim, address, each `{ allow, deny }`) plus an optional
 * `namespaces` list. A rule the claim leaves out comes from `defaults`; a missing claim means `defaults`
 * whole. Returns a problem text for a malformed claim (the token is then refused: a claim that cannot be
 * read must not widen anything).
 */
export function parsePermissionClaim(claim: unknown, defaults: PermissionRules, user: string): ParsedClaim | string {
  const base = expandDefaults(defaults, user);
  if (typeof base === 'string') return base;
  if (claim === undefined || claim === null) return { rules: base, namespaces: null };
  if (typeof claim !== 'object' || Array.isArray(claim)) return 'the permissions claim must be an object';
  const rules: PermissionRules = { ...base };
  let namespaces: string[] | null = null;
  for (const [key, value] of Object.entries(claim as Record<string, unknown>)) {
    if (key === 'namespaces') {
      if (!Array.isArray(value) || value.some((n) => typeof n !== 'string' || n.length === 0 || n.length > 256)) {
        return 'namespaces must be a list of non-empty strings';
      }
      namespaces = value as string[];
      // The identity may join only these namespaces (globs, `/` the default one).
      rules.namespaces = { allow: namespaces, deny: [] };
      continue;
    }
    if (!(RULE_KEYS as readonly string[]).includes(key)) return `unknown permission '${key}' (known: ${RULE_KEYS.join(', ')}, namespaces)`;
    const rule = readRule(value, key);
    if (typeof rule === 'string') return rule;
    rules[key as keyof PermissionRules] = rule;
  }
  return { rules, namespaces };
}

function readRule(value: unknown, key: string): AllowDeny | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return `${key} must be an object with allow and deny lists`;
  // As for configured users: an unset allow list allows everything, an unset deny list denies nothing.
  const out: AllowDeny = { allow: ALL_PERMISSIONS[key as (typeof RULE_KEYS)[number]].allow, deny: [] };
  for (const [listKey, list] of Object.entries(value as Record<string, unknown>)) {
    if (listKey !== 'allow' && listKey !== 'deny') return `${key}.${listKey}: unknown key (known: allow, deny)`;
    if (!Array.isArray(list) || list.length > 1024 || list.some((p) => typeof p !== 'string' || p.length === 0)) {
      return `${key}.${listKey} must be a list of non-empty strings`;
    }
    if (EVENT_RULE_KEYS.includes(key)) {
      for (const pattern of list as string[]) {
        const problem = patternProblem(pattern);
        if (problem !== null) return `${key}.${listKey}: '${pattern}': ${problem}`;
      }
    }
    out[listKey] = list as string[];
  }
  return out;
}

/** The default rules with `{sub}` replaced by the user; a user that cannot stand in a pattern is a problem. */
function expandDefaults(defaults: PermissionRules, user: string): PermissionRules | string {
  let needs = false;
  for (const key of RULE_KEYS) {
    for (const p of [...defaults[key].allow, ...defaults[key].deny]) if (p.includes(SUB_PLACEHOLDER)) needs = true;
  }
  if (!needs) return defaults;
  if (!SAFE_SUB.test(user)) return `the subject '${user.slice(0, 64)}' cannot stand for {sub} in a pattern`;
  const out = { ...ALL_PERMISSIONS } as PermissionRules;
  for (const key of RULE_KEYS) {
    const rule = defaults[key];
    out[key] = { allow: rule.allow.map((p) => p.split(SUB_PLACEHOLDER).join(user)), deny: rule.deny.map((p) => p.split(SUB_PLACEHOLDER).join(user)) };
  }
  return out;
}

/**
 * Completes partial rules the way configured users' are completed (docs/security.md): an unset rule allows
 * everything, an unset `allow` list allows everything, an unset `deny` list denies nothing.
 */
export function completeRules(rules: Partial<Record<keyof PermissionRules, Partial<AllowDeny>>> | undefined): PermissionRules {
  const out = { ...ALL_PERMISSIONS } as PermissionRules;
  for (const key of RULE_KEYS) {
    const given = rules?.[key];
    if (given !== undefined) out[key] = { allow: given.allow ?? ALL_PERMISSIONS[key].allow, deny: given.deny ?? [] };
  }
  return out;
}

/** A token shaped like a compact JWS: three base64url parts, a JSON header. Static tokens never look like it. */
export function looksLikeJwt(token: string): boolean {
  return token.startsWith('eyJ') && /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token);
}
