/**
 * The configuration's shape, defaults and validation. `config/broker.yaml` is the embedded default and must
 * agree with DEFAULT_CONFIG (a test checks it). Validation reports every problem with its path.
 */
import { DEFAULT_FRAME_LIMITS } from '../protocol/limits.js';
import { DEFAULT_SETTINGS } from '../broker/settings.js';
import { ALL_PERMISSIONS, tokenProblem, type PermissionRules, type UserEntry } from '../broker/access.js';
import { patternProblem } from '../protocol/event-pattern.js';
import type { ConnectHookOptions } from '../broker/auth/connect-hook.js';
import { LOOPBACK, trustedEntryProblem } from '../http/admin/trusted.js';
import { isValidNamespaceName } from '../broker/namespace-name.js';

export interface ListenerConfig {
  enabled: boolean;
  host: string;
  port: number;
}

/** A TLS listener (sd:tcps, sd:wss): PEM files read at start. */
export interface TlsListenerConfig extends ListenerConfig {
  keyFile: string;
  certFile: string;
}

/**
 * sd:udp. amplificationFactor: bytes sent per byte received to a peer before its Connect is accepted (the
 * anti-amplification limit of RFC 9000 section 8.1, docs/security.md).
 */
export interface UdpListenerConfig extends ListenerConfig {
  amplificationFactor: number;
}

export interface AccessSection {
  /** Admit clients that send no token, with anonymousPermissions. */
  anonymous: boolean;
  anonymousPermissions: PermissionRules;
  users: UserEntry[];
  /** Per-user identities from signed tokens (docs/security.md, "JWT"); off while no key source is set. */
  jwt: JwtSection;
  /** The application decides at handshake (docs/security.md, "Connect hook"); off while `url` is ''. */
  connectHook: ConnectHookSection;
  /** Frames kept per session while a JWT or hook admission is pending; more is a protocol error. */
  maxFramesWhileAdmitting: number;
  /** Bytes of those frames at most; more is a protocol error. */
  maxBytesWhileAdmitting: number;
}

export interface JwtSection {
  /** HMAC secret (HS256/384/512), at least 32 bytes; or read from `secretFile` or the variable `secretEnv`. */
  secret: string;
  secretFile: string;
  secretEnv: string;
  /** PEM public keys (RS*, PS*, ES*, EdDSA), read at start. */
  publicKeyFiles: string[];
  /** A JWKS (RFC 7517) fetched over http(s), cached and refetched for an unknown `kid` (key rotation). */
  jwksUrl: string;
  jwksCacheMs: number;
  jwksCooldownMs: number;
  jwksTimeoutMs: number;
  /** Required `iss` / `aud`, '' for any. */
  issuer: string;
  audience: string;
  /** Accepted `alg` values; [] = every algorithm of the configured keys. `none` is never accepted. */
  algorithms: string[];
  clockToleranceSec: number;
  /** Permissions of tokens without the `socketd` claim (and of the rules a claim leaves out); `{sub}` = the user. */
  defaultPermissions: PermissionRules;
}

/** access.connectHook: exactly what the hook takes (src/broker/auth/connect-hook.ts documents each key). */
export type ConnectHookSection = ConnectHookOptions;

/** The algorithms `access.jwt.algorithms` may name. */
export const JWT_ALGORITHMS: readonly string[] = ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];

/** True when `access.jwt` names a key source. */
export function jwtConfigured(jwt: JwtSection): boolean {
  return jwt.secret.length > 0 || jwt.secretFile.length > 0 || jwt.secretEnv.length > 0 || jwt.publicKeyFiles.length > 0 || jwt.jwksUrl.length > 0;
}

/** Who may use the admin endpoints and page (docs/operations.md section 6). */
export interface HttpAdminConfig {
  /** Addresses and CIDR blocks answered without a token while http.adminToken is empty. */
  adminTrusted: string[];
  /** /metrics answers only as the admin endpoints do. */
  protectMetrics: boolean;
}

/** The HTTP API under /api/ on the http listener (docs/http-api.md). */
export interface HttpApiConfig {
  enabled: boolean;
  /** Calls per second per token (per client address without one); 0 = no limit. */
  ratePerSecond: number;
  /** Calls a token may make at once. */
  burst: number;
  /** Keepalive comments and Pings on idle event streams (at most half of timeouts.idleMs). */
  sseKeepaliveMs: number;
}

/**
 * The plain tcp listener. detectPythonFraming: tell the Python reference client's extra 4-byte length prefix
 * on each connection's first bytes and speak it back (docs/clients.md); off, such a client is refused.
 */
export interface TcpListenerConfig extends ListenerConfig {
  detectPythonFraming: boolean;
}

export interface BrokerConfig {
  listeners: { tcp: TcpListenerConfig; udp: UdpListenerConfig; ws: ListenerConfig; tcps: TlsListenerConfig; wss: TlsListenerConfig };
  /** serveExamples: the example chat page at /examples/chat/ (files of examples/web and dist/browser only). */
  http: ListenerConfig & { adminToken: string; serveExamples: boolean; api: HttpApiConfig } & HttpAdminConfig;
  limits: {
    maxSid: number;
    maxEvent: number;
    maxMeta: number;
    maxData: number;
    maxFrame: number;
    udpMaxDatagram: number;
    maxStreamsPerSession: number;
    maxFragmentRoutesPerSession: number;
    maxSubscriptionsPerSession: number;
    maxConnections: number;
    maxConnectionsPerIp: number;
    handshakesPerSecond: number;
    framesPerSecond: number;
  };
  timeouts: { handshakeMs: number; idleMs: number; requestMs: number; streamMs: number };
  flow: {
    outboundHighWaterBytes: number;
    outboundLimitBytes: number;
    slowConsumerPolicy: 'disconnect' | 'drop';
    congestionTimeoutMs: number;
    memoryBudgetBytes: number;
    memoryLowWaterBytes: number;
  };
  access: AccessSection;
  fastPaths: { forwardMessageBytes: boolean; matchCacheSize: number; bareControlFrames: boolean; atRouteCache: boolean; largeMessageParts: boolean };
  log: {
    level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
    pretty: boolean;
    /** One summary line per reason per interval for what ends before a handshake (docs/operations.md section 4). */
    preHandshake: { intervalMs: number; warnPerSecond: number };
  };
  /** Graceful shutdown (SIGTERM/SIGINT): how long sessions get to flush their queues and Close frames. */
  shutdown: { drainMs: number };
  /** Namespaces: the handshake URL's path (docs/namespaces.md). */
  namespaces: { fromPath: boolean; declared: string[]; requireDeclared: boolean; maxNamespaces: number };
  /** Cluster mode (docs/cluster.md): nodes joined over Redis; off while `redis` is empty. */
  cluster: ClusterSection;
}

export interface ClusterSection {
  /** redis://[user:password@]host:port[/db]; '' = single node (the default). */
  redis: string;
  /** This node's name among the nodes; '' = <hostname>-<pid>. */
  nodeId: string;
  /** Prefix of every Redis key and channel. */
  prefix: string;
  heartbeatMs: number;
  /** A node silent this long is dropped: its interest removed, streams waiting on it fail with 5003. */
  nodeTimeoutMs: number;
  /** Bytes published to Redis and not yet acknowledged above which cross-node sends are refused (Alarm 5003). */
  maxBacklogBytes: number;
  /** A batch for one node above this many bytes goes out at once instead of at the end of the tick. */
  maxBatchBytes: number;
  connectTimeoutMs: number;
  /** Node processes on this machine (node:cluster), sharing the tcp and ws ports; above 1 needs `redis`. */
  workers: number;
  /** How long a `$presence` list waits for the other nodes' members (docs/cluster.md, "Presence"). */
  presenceTimeoutMs: number;
  /** Memberships of other nodes' sessions remembered to tell their leaves if their node is dropped; 0: none. */
  presenceMembersMax: number;
}

const ALL = '0.0.0.0';

export const DEFAULT_CONFIG: Readonly<BrokerConfig> = Object.freeze<BrokerConfig>({
  listeners: {
    tcp: { enabled: true, host: ALL, port: 8602, detectPythonFraming: true },
    udp: { enabled: true, host: ALL, port: 8603, amplificationFactor: 3 },
    ws: { enabled: true, host: ALL, port: 8604 },
    tcps: { enabled: false, host: ALL, port: 8612, keyFile: '', certFile: '' },
    wss: { enabled: false, host: ALL, port: 8614, keyFile: '', certFile: '' },
  },
  http: {
    enabled: true, host: ALL, port: 8680, adminToken: '', serveExamples: true, adminTrusted: [...LOOPBACK], protectMetrics: false,
    api: { enabled: true, ratePerSecond: 100, burst: 200, sseKeepaliveMs: 15_000 },
  },
  limits: {
    ...DEFAULT_FRAME_LIMITS,
    udpMaxDatagram: DEFAULT_SETTINGS.udpMaxDatagram,
    maxStreamsPerSession: DEFAULT_SETTINGS.maxStreamsPerSession,
    maxFragmentRoutesPerSession: DEFAULT_SETTINGS.maxFragmentRoutesPerSession,
    maxSubscriptionsPerSession: 10_000,
    maxConnections: DEFAULT_SETTINGS.maxConnections,
    maxConnectionsPerIp: DEFAULT_SETTINGS.maxConnectionsPerIp,
    handshakesPerSecond: DEFAULT_SETTINGS.handshakesPerSecond,
    framesPerSecond: DEFAULT_SETTINGS.framesPerSecond,
  },
  timeouts: {
    handshakeMs: DEFAULT_SETTINGS.handshakeTimeoutMs,
    idleMs: DEFAULT_SETTINGS.idleTimeoutMs,
    requestMs: DEFAULT_SETTINGS.requestTimeoutMs,
    streamMs: DEFAULT_SETTINGS.streamTimeoutMs,
  },
  flow: {
    outboundHighWaterBytes: DEFAULT_SETTINGS.outbound.highWaterBytes,
    outboundLimitBytes: DEFAULT_SETTINGS.outbound.limitBytes,
    slowConsumerPolicy: DEFAULT_SETTINGS.outbound.policy,
    congestionTimeoutMs: DEFAULT_SETTINGS.outbound.congestionTimeoutMs,
    memoryBudgetBytes: DEFAULT_SETTINGS.memoryBudgetBytes,
    memoryLowWaterBytes: DEFAULT_SETTINGS.memoryLowWaterBytes,
  },
  access: {
    anonymous: true,
    anonymousPermissions: ALL_PERMISSIONS,
    users: [],
    jwt: {
      secret: '',
      secretFile: '',
      secretEnv: '',
      publicKeyFiles: [],
      jwksUrl: '',
      jwksCacheMs: 600_000,
      jwksCooldownMs: 30_000,
      jwksTimeoutMs: 5_000,
      issuer: '',
      audience: '',
      algorithms: [],
      clockToleranceSec: 5,
      defaultPermissions: { ...ALL_PERMISSIONS, claim: { allow: ['{sub}'], deny: [] } },
    },
    connectHook: { url: '', timeoutMs: 2_000, cacheMs: 0, cacheMaxEntries: 10_000, maxConcurrent: 64, maxAnswerBytes: 65_536 },
    maxFramesWhileAdmitting: 16,
    maxBytesWhileAdmitting: 65_536,
  },
  fastPaths: { forwardMessageBytes: DEFAULT_SETTINGS.forwardMessageBytes, matchCacheSize: 4096, bareControlFrames: DEFAULT_SETTINGS.bareControlFrames, atRouteCache: DEFAULT_SETTINGS.atRouteCache, largeMessageParts: DEFAULT_SETTINGS.largeMessageParts },
  log: { level: 'info', pretty: false, preHandshake: { ...DEFAULT_SETTINGS.preHandshakeLog } },
  shutdown: { drainMs: 5_000 },
  namespaces: { fromPath: true, declared: [], requireDeclared: false, maxNamespaces: 10_000 },
  cluster: {
    redis: '', nodeId: '', prefix: 'socketd', heartbeatMs: 1_000, nodeTimeoutMs: 5_000,
    maxBacklogBytes: 64 * 1024 * 1024, maxBatchBytes: 256 * 1024, connectTimeoutMs: 2_000, workers: 1,
    presenceTimeoutMs: 1_000, presenceMembersMax: 100_000,
  },
});

type Rule =
  | { kind: 'int'; min: number; max: number }
  | { kind: 'bool' }
  | { kind: 'string'; nonEmpty?: boolean }
  | { kind: 'enum'; values: readonly string[] }
  /** Permission rules: publish/subscribe (event patterns) and claim/address (name globs), each allow/deny. */
  | { kind: 'permissions' }
  /** A list of users: name, token (plain, 8+ characters, or sha256:<hex>), permissions. */
  | { kind: 'users' }
  /** A list of IP addresses and CIDR blocks (http.adminTrusted). */
  | { kind: 'addresses' }
  /** A list of namespace names (docs/namespaces.md). */
  | { kind: 'namespaces' }
  /** A list of strings, each one of `values` when given. */
  | { kind: 'strings'; values?: readonly string[] };

const port: Rule = { kind: 'int', min: 0, max: 65535 };
const listener = { enabled: { kind: 'bool' }, host: { kind: 'string', nonEmpty: true }, port } as const;
const tlsListener = { ...listener, keyFile: { kind: 'string' }, certFile: { kind: 'string' } } as const;
const positive = (max: number): Rule => ({ kind: 'int', min: 1, max });
const DAY = 24 * 3600 * 1000;

/** Field rules by section; the `limits` maxima are the protocol's (they may only be lowered, spec §1). */
export const SCHEMA: Record<string, Record<string, Rule | Record<string, Rule>>> = {
  listeners: { tcp: { ...listener, detectPythonFraming: { kind: 'bool' } }, udp: { ...listener, amplificationFactor: { kind: 'int', min: 1, max: 3 } }, ws: listener, tcps: tlsListener, wss: tlsListener },
  http: {
    ...listener, adminToken: { kind: 'string' }, serveExamples: { kind: 'bool' },
    adminTrusted: { kind: 'addresses' }, protectMetrics: { kind: 'bool' },
    api: {
      enabled: { kind: 'bool' },
      ratePerSecond: { kind: 'int', min: 0, max: 10_000_000 },
      burst: positive(10_000_000),
      sseKeepaliveMs: { kind: 'int', min: 100, max: DAY },
    },
  },
  limits: {
    maxSid: positive(DEFAULT_FRAME_LIMITS.maxSid),
    maxEvent: positive(DEFAULT_FRAME_LIMITS.maxEvent),
    maxMeta: positive(DEFAULT_FRAME_LIMITS.maxMeta),
    maxData: positive(DEFAULT_FRAME_LIMITS.maxData),
    maxFrame: { kind: 'int', min: 14, max: DEFAULT_FRAME_LIMITS.maxFrame },
    udpMaxDatagram: { kind: 'int', min: 14, max: 65507 },
    maxStreamsPerSession: positive(1_000_000),
    maxFragmentRoutesPerSession: positive(100_000),
    maxSubscriptionsPerSession: positive(10_000_000),
    maxConnections: positive(10_000_000),
    maxConnectionsPerIp: positive(10_000_000),
    handshakesPerSecond: { kind: 'int', min: 0, max: 10_000_000 },
    framesPerSecond: { kind: 'int', min: 0, max: 1_000_000_000 },
  },
  timeouts: {
    handshakeMs: positive(DAY),
    idleMs: positive(DAY),
    requestMs: positive(DAY),
    streamMs: positive(7 * DAY),
  },
  flow: {
    outboundHighWaterBytes: positive(1 << 30),
    outboundLimitBytes: positive(1 << 30),
    slowConsumerPolicy: { kind: 'enum', values: ['disconnect', 'drop'] },
    congestionTimeoutMs: { kind: 'int', min: 100, max: 24 * 3600 * 1000 },
    memoryBudgetBytes: positive(64 * 1024 * 1024 * 1024),
    memoryLowWaterBytes: positive(64 * 1024 * 1024 * 1024),
  },
  fastPaths: { forwardMessageBytes: { kind: 'bool' }, matchCacheSize: { kind: 'int', min: 0, max: 10_000_000 }, bareControlFrames: { kind: 'bool' }, atRouteCache: { kind: 'bool' }, largeMessageParts: { kind: 'bool' } },
  log: {
    level: { kind: 'enum', values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] },
    pretty: { kind: 'bool' },
    preHandshake: { intervalMs: { kind: 'int', min: 100, max: 3600 * 1000 }, warnPerSecond: { kind: 'int', min: 0, max: 1_000_000_000 } },
  },
  shutdown: { drainMs: { kind: 'int', min: 0, max: 3600 * 1000 } },
  access: {
    anonymous: { kind: 'bool' },
    anonymousPermissions: { kind: 'permissions' },
    users: { kind: 'users' },
    jwt: {
      secret: { kind: 'string' },
      secretFile: { kind: 'string' },
      secretEnv: { kind: 'string' },
      publicKeyFiles: { kind: 'strings' },
      jwksUrl: { kind: 'string' },
      jwksCacheMs: { kind: 'int', min: 0, max: DAY },
      jwksCooldownMs: { kind: 'int', min: 0, max: DAY },
      jwksTimeoutMs: positive(60_000),
      issuer: { kind: 'string' },
      audience: { kind: 'string' },
      algorithms: { kind: 'strings', values: JWT_ALGORITHMS },
      clockToleranceSec: { kind: 'int', min: 0, max: 3600 },
      defaultPermissions: { kind: 'permissions' },
    },
    connectHook: {
      url: { kind: 'string' },
      timeoutMs: positive(60_000),
      cacheMs: { kind: 'int', min: 0, max: DAY },
      cacheMaxEntries: positive(10_000_000),
      maxConcurrent: positive(1_000_000),
      maxAnswerBytes: positive(16 * 1024 * 1024),
    },
    maxFramesWhileAdmitting: { kind: 'int', min: 0, max: 10_000 },
    maxBytesWhileAdmitting: { kind: 'int', min: 0, max: 1 << 30 },
  },
  namespaces: {
    fromPath: { kind: 'bool' },
    declared: { kind: 'namespaces' },
    requireDeclared: { kind: 'bool' },
    maxNamespaces: { kind: 'int', min: 1, max: 10_000_000 },
  },
  cluster: {
    redis: { kind: 'string' },
    nodeId: { kind: 'string' },
    prefix: { kind: 'string', nonEmpty: true },
    heartbeatMs: { kind: 'int', min: 10, max: 60_000 },
    nodeTimeoutMs: { kind: 'int', min: 30, max: 600_000 },
    maxBacklogBytes: positive(1 << 30),
    maxBatchBytes: { kind: 'int', min: 1024, max: 64 * 1024 * 1024 },
    connectTimeoutMs: positive(60_000),
    workers: positive(256),
    presenceTimeoutMs: { kind: 'int', min: 10, max: 60_000 },
    presenceMembersMax: { kind: 'int', min: 0, max: 100_000_000 },
  },
};

function isRule(value: unknown): value is Rule {
  return typeof value === 'object' && value !== null && typeof (value as { kind?: unknown }).kind === 'string';
}

function describe(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'a list' : `${typeof value} ${JSON.stringify(value)}`;
}

function checkValue(rule: Rule, value: unknown, path: string, problems: string[]): void {
  switch (rule.kind) {
    case 'int':
      if (typeof value !== 'number' || !Number.isInteger(value)) problems.push(`${path}: expected an integer, got ${describe(value)}`);
      else if (value < rule.min || value > rule.max) problems.push(`${path}: ${value} is outside ${rule.min}..${rule.max}`);
      return;
    case 'bool':
      if (typeof value !== 'boolean') problems.push(`${path}: expected true or false, got ${describe(value)}`);
      return;
    case 'string':
      if (typeof value !== 'string') problems.push(`${path}: expected a string, got ${describe(value)}`);
      else if (rule.nonEmpty && value.length === 0) problems.push(`${path}: must not be empty`);
      return;
    case 'enum':
      if (typeof value !== 'string' || !rule.values.includes(value)) {
        problems.push(`${path}: expected one of ${rule.values.join(', ')}, got ${describe(value)}`);
      }
      return;
    case 'permissions':
      checkPermissions(value, path, problems);
      return;
    case 'users':
      checkUsers(value, path, problems);
      return;
    case 'addresses':
      if (!Array.isArray(value) || value.some((a) => typeof a !== 'string')) {
        problems.push(`${path}: expected a list of addresses and CIDR blocks (e.g. ["127.0.0.0/8", "::1"]), got ${describe(value)}`);
      } else {
        for (const item of value as string[]) {
          const problem = trustedEntryProblem(item);
          if (problem.length > 0) problems.push(`${path}: ${problem}`);
        }
      }
      return;
    case 'namespaces':
      if (!Array.isArray(value)) problems.push(`${path}: expected a list of namespace names, got ${describe(value)}`);
      else {
        for (const name of value as unknown[]) {
          if (typeof name !== 'string' || name.length === 0 || !isValidNamespaceName(name)) {
            problems.push(`${path}: ${describe(name)} is not a namespace name (1 to 64 letters, digits, '_', '.', '-')`);
          }
        }
      }
      return;
    case 'strings':
      if (!Array.isArray(value) || value.some((v) => typeof v !== 'string' || v.length === 0)) {
        problems.push(`${path}: expected a list of non-empty strings, got ${describe(value)}`);
      } else if (rule.values !== undefined) {
        for (const v of value as string[]) if (!rule.values.includes(v)) problems.push(`${path}: '${v}' is not one of ${rule.values.join(', ')}`);
      }
      return;
  }
}

const EVENT_RULES = ['publish', 'subscribe'] as const;
const NAME_RULES = ['claim', 'address', 'namespaces'] as const;

/** Permission rules: every list optional; event patterns must be valid patterns, names non-empty. */
function checkPermissions(value: unknown, path: string, problems: string[]): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    problems.push(`${path}: expected a mapping of publish, subscribe, claim, address, namespaces, got ${describe(value)}`);
    return;
  }
  for (const [key, rule] of Object.entries(value)) {
    const rulePath = `${path}.${key}`;
    const isEvent = (EVENT_RULES as readonly string[]).includes(key);
    if (!isEvent && !(NAME_RULES as readonly string[]).includes(key)) {
      problems.push(`${rulePath}: unknown key (known: ${[...EVENT_RULES, ...NAME_RULES].join(', ')})`);
      continue;
    }
    if (typeof rule !== 'object' || rule === null || Array.isArray(rule)) {
      problems.push(`${rulePath}: expected a mapping with allow and deny lists, got ${describe(rule)}`);
      continue;
    }
    for (const [listKey, list] of Object.entries(rule)) {
      const listPath = `${rulePath}.${listKey}`;
      if (listKey !== 'allow' && listKey !== 'deny') {
        problems.push(`${listPath}: unknown key (known: allow, deny)`);
      } else if (!Array.isArray(list) || list.some((p) => typeof p !== 'string' || p.length === 0)) {
        problems.push(`${listPath}: expected a list of non-empty strings, got ${describe(list)}`);
      } else if (isEvent) {
        for (const pattern of list as string[]) {
          const problem = patternProblem(pattern);
          if (problem !== null) problems.push(`${listPath}: '${pattern}': ${problem}`);
        }
      }
    }
  }
}

function checkUsers(value: unknown, path: string, problems: string[]): void {
  if (!Array.isArray(value)) {
    problems.push(`${path}: expected a list of users, got ${describe(value)}`);
    return;
  }
  const names = new Set<string>();
  const tokens = new Set<string>();
  value.forEach((user: unknown, i) => {
    const at = `${path}[${i}]`;
    if (typeof user !== 'object' || user === null || Array.isArray(user)) {
      problems.push(`${at}: expected a mapping with name, token and permissions, got ${describe(user)}`);
      return;
    }
    const u = user as Record<string, unknown>;
    for (const key of Object.keys(u)) {
      if (!['name', 'token', 'permissions'].includes(key)) problems.push(`${at}.${key}: unknown key (known: name, token, permissions)`);
    }
    if (typeof u.name !== 'string' || u.name.length === 0) problems.push(`${at}.name: expected a non-empty string`);
    else if (names.has(u.name)) problems.push(`${at}.name: '${u.name}' is listed twice`);
    else names.add(u.name);
    if (typeof u.token !== 'string') problems.push(`${at}.token: expected a string`);
    else {
      const problem = tokenProblem(u.token);
      if (problem.length > 0) problems.push(`${at}.token: ${problem}`);
      else if (tokens.has(u.token)) problems.push(`${at}.token: the same token is given to two users`);
      tokens.add(u.token);
    }
    if (u.permissions !== undefined) checkPermissions(u.permissions, `${at}.permissions`, problems);
  });
}

function checkSection(rules: Record<string, Rule | Record<string, Rule>>, value: unknown, path: string, problems: string[]): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    problems.push(`${path.length > 0 ? path : '(top level)'}: expected a mapping, got ${describe(value)}`);
    return;
  }
  for (const [key, child] of Object.entries(value)) {
    const rule = rules[key];
    const childPath = path.length > 0 ? `${path}.${key}` : key;
    if (rule === undefined) problems.push(`${childPath}: unknown key (known: ${Object.keys(rules).join(', ')})`);
    else if (isRule(rule)) checkValue(rule, child, childPath, problems);
    else checkSection(rule as Record<string, Rule>, child, childPath, problems);
  }
}

/** Problems with a partial config as read from YAML (empty when valid); cross-field checks included. */
export function validateConfig(partial: unknown): string[] {
  const problems: string[] = [];
  if (partial === null || partial === undefined) return problems;
  checkSection(SCHEMA as Record<string, Record<string, Rule>>, partial, '', problems);
  return problems;
}

/** Cross-field checks on a complete config. */
export function checkMerged(config: BrokerConfig): string[] {
  const problems: string[] = [];
  const { limits, flow } = config;
  if (limits.maxData > limits.maxFrame) problems.push(`limits.maxData (${limits.maxData}) may not exceed limits.maxFrame (${limits.maxFrame})`);
  if (flow.outboundHighWaterBytes > flow.outboundLimitBytes) {
    problems.push(`flow.outboundHighWaterBytes (${flow.outboundHighWaterBytes}) may not exceed flow.outboundLimitBytes (${flow.outboundLimitBytes})`);
  }
  if (flow.outboundLimitBytes < limits.maxFrame) {
    problems.push(`flow.outboundLimitBytes (${flow.outboundLimitBytes}) must hold at least one frame of limits.maxFrame (${limits.maxFrame})`);
  }
  if (flow.memoryLowWaterBytes >= flow.memoryBudgetBytes) {
    problems.push(`flow.memoryLowWaterBytes (${flow.memoryLowWaterBytes}) must be below flow.memoryBudgetBytes (${flow.memoryBudgetBytes})`);
  }
  for (const name of ['tcps', 'wss'] as const) {
    const l = config.listeners[name];
    if (l.enabled && (l.keyFile.length === 0 || l.certFile.length === 0)) {
      problems.push(`listeners.${name}: enabled, so keyFile and certFile (PEM files) are required`);
    }
  }
  const { jwt, connectHook } = config.access;
  if (!config.access.anonymous && config.access.users.length === 0 && !jwtConfigured(jwt) && connectHook.url.length === 0) {
    problems.push('access: anonymous access is off and no users, access.jwt or access.connectHook are configured, so nobody could connect');
  }
  problems.push(...checkIdentities(jwt, connectHook));
  // A check that outlasts the handshake timeout would always lose to it (Close 1002 handshake_timeout).
  const handshakeMs = config.timeouts.handshakeMs;
  if (connectHook.url.length > 0 && connectHook.timeoutMs >= handshakeMs) {
    problems.push(`access.connectHook.timeoutMs (${connectHook.timeoutMs}) must be below timeouts.handshakeMs (${handshakeMs})`);
  }
  if (jwt.jwksUrl.length > 0 && jwt.jwksTimeoutMs >= handshakeMs) {
    problems.push(`access.jwt.jwksTimeoutMs (${jwt.jwksTimeoutMs}) must be below timeouts.handshakeMs (${handshakeMs})`);
  }
  const { cluster } = config;
  if (cluster.nodeTimeoutMs < 2 * cluster.heartbeatMs) {
    problems.push(`cluster.nodeTimeoutMs (${cluster.nodeTimeoutMs}) must be at least twice cluster.heartbeatMs (${cluster.heartbeatMs}): one lost heartbeat must not drop a node`);
  }
  if (cluster.workers > 1 && cluster.redis.length === 0) {
    problems.push(`cluster.workers (${cluster.workers}) above 1 needs cluster.redis: the workers act as one broker by joining each other over Redis (docs/cluster.md)`);
  }
  if (cluster.redis.length > 0 && !/^rediss?:\/\//.test(cluster.redis)) {
    problems.push(`cluster.redis: expected a redis:// or rediss:// URL, got '${cluster.redis}'`);
  }
  if (/[\s:]/.test(cluster.nodeId) || Buffer.byteLength(cluster.nodeId) > 200) {
    problems.push(`cluster.nodeId: '${cluster.nodeId}' must be at most 200 bytes without spaces or ':'`);
  }
  return problems;
}

/** Cross-field checks of access.jwt and access.connectHook (keys in files are read at start, src/server.ts). */
function checkIdentities(jwt: JwtSection, hook: ConnectHookSection): string[] {
  const problems: string[] = [];
  const secrets = (['secret', 'secretFile', 'secretEnv'] as const).filter((k) => jwt[k].length > 0);
  if (secrets.length > 1) problems.push(`access.jwt: set one of secret, secretFile, secretEnv (got ${secrets.join(', ')})`);
  if (jwt.secret.length > 0 && Buffer.byteLength(jwt.secret) < 32) problems.push('access.jwt.secret: an HMAC secret needs at least 32 bytes');
  if (jwt.jwksUrl.length > 0 && !isHttpUrl(jwt.jwksUrl)) problems.push(`access.jwt.jwksUrl: expected an http:// or https:// URL, got '${jwt.jwksUrl}'`);
  if (hook.url.length > 0 && !isHttpUrl(hook.url)) problems.push(`access.connectHook.url: expected an http:// or https:// URL, got '${hook.url}'`);
  if (jwtConfigured(jwt) && jwt.algorithms.length > 0) {
    const hmac = secrets.length > 0;
    const asymmetric = jwt.publicKeyFiles.length > 0 || jwt.jwksUrl.length > 0;
    for (const alg of jwt.algorithms) {
      if (alg.startsWith('HS') ? !hmac : !asymmetric) problems.push(`access.jwt.algorithms: '${alg}' has no key configured for it`);
    }
  }
  return problems;
}

function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}

/** Deep merge of plain objects: `over` wins; values of other types replace. */
export function mergeConfig<T>(base: T, over: unknown): T {
  if (typeof over !== 'object' || over === null || Array.isArray(over)) return base;
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [key, value] of Object.entries(over)) {
    const current = out[key];
    out[key] = typeof current === 'object' && current !== null && !Array.isArray(current) ? mergeConfig(current, value) : value;
  }
  return out as T;
}
