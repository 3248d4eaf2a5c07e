/**
 * The configuration's shape, defaults and validation. `config/broker.yaml` is the embedded default and must
 * agree with DEFAULT_CONFIG (a test checks it). Validation reports every problem with its path.
 */
import { DEFAULT_FRAME_LIMITS } from '../protocol/limits.js';
import { DEFAULT_SETTINGS } from '../broker/settings.js';
import { ALL_PERMISSIONS, tokenProblem, type PermissionRules, type UserEntry } from '../broker/access.js';
import { patternProblem } from '../protocol/event-pattern.js';

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

export interface AccessSection {
  /** Admit clients that send no token, with anonymousPermissions. */
  anonymous: boolean;
  anonymousPermissions: PermissionRules;
  users: UserEntry[];
}

export interface BrokerConfig {
  listeners: { tcp: ListenerConfig; udp: ListenerConfig; ws: ListenerConfig; tcps: TlsListenerConfig; wss: TlsListenerConfig };
  /** serveExamples: the example chat page at /examples/chat/ (files of examples/web and dist/browser only). */
  http: ListenerConfig & { adminToken: string; serveExamples: boolean };
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
  fastPaths: { forwardMessageBytes: boolean; matchCacheSize: number; bareControlFrames: boolean; atRouteCache: boolean };
  log: { level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'; pretty: boolean };
  /** Graceful shutdown (SIGTERM/SIGINT): how long sessions get to flush their queues and Close frames. */
  shutdown: { drainMs: number };
}

const ALL = '0.0.0.0';

export const DEFAULT_CONFIG: Readonly<BrokerConfig> = Object.freeze<BrokerConfig>({
  listeners: {
    tcp: { enabled: true, host: ALL, port: 8602 },
    udp: { enabled: true, host: ALL, port: 8603 },
    ws: { enabled: true, host: ALL, port: 8604 },
    tcps: { enabled: false, host: ALL, port: 8612, keyFile: '', certFile: '' },
    wss: { enabled: false, host: ALL, port: 8614, keyFile: '', certFile: '' },
  },
  http: { enabled: true, host: ALL, port: 8680, adminToken: '', serveExamples: true },
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
  access: { anonymous: true, anonymousPermissions: ALL_PERMISSIONS, users: [] },
  fastPaths: { forwardMessageBytes: DEFAULT_SETTINGS.forwardMessageBytes, matchCacheSize: 4096, bareControlFrames: DEFAULT_SETTINGS.bareControlFrames, atRouteCache: DEFAULT_SETTINGS.atRouteCache },
  log: { level: 'info', pretty: false },
  shutdown: { drainMs: 5_000 },
});

type Rule =
  | { kind: 'int'; min: number; max: number }
  | { kind: 'bool' }
  | { kind: 'string'; nonEmpty?: boolean }
  | { kind: 'enum'; values: readonly string[] }
  /** Permission rules: publish/subscribe (event patterns) and claim/address (name globs), each allow/deny. */
  | { kind: 'permissions' }
  /** A list of users: name, token (plain, 8+ characters, or sha256:<hex>), permissions. */
  | { kind: 'users' };

const port: Rule = { kind: 'int', min: 0, max: 65535 };
const listener = { enabled: { kind: 'bool' }, host: { kind: 'string', nonEmpty: true }, port } as const;
const tlsListener = { ...listener, keyFile: { kind: 'string' }, certFile: { kind: 'string' } } as const;
const positive = (max: number): Rule => ({ kind: 'int', min: 1, max });
const DAY = 24 * 3600 * 1000;

/** Field rules by section; the `limits` maxima are the protocol's (they may only be lowered, spec §1). */
export const SCHEMA: Record<string, Record<string, Rule | Record<string, Rule>>> = {
  listeners: { tcp: listener, udp: listener, ws: listener, tcps: tlsListener, wss: tlsListener },
  http: { ...listener, adminToken: { kind: 'string' }, serveExamples: { kind: 'bool' } },
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
  fastPaths: { forwardMessageBytes: { kind: 'bool' }, matchCacheSize: { kind: 'int', min: 0, max: 10_000_000 }, bareControlFrames: { kind: 'bool' }, atRouteCache: { kind: 'bool' } },
  log: {
    level: { kind: 'enum', values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] },
    pretty: { kind: 'bool' },
  },
  shutdown: { drainMs: { kind: 'int', min: 0, max: 3600 * 1000 } },
  access: {
    anonymous: { kind: 'bool' },
    anonymousPermissions: { kind: 'permissions' },
    users: { kind: 'users' },
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
  }
}

const EVENT_RULES = ['publish', 'subscribe'] as const;
const NAME_RULES = ['claim', 'address'] as const;

/** Permission rules: every list optional; event patterns must be valid patterns, names non-empty. */
function checkPermissions(value: unknown, path: string, problems: string[]): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    problems.push(`${path}: expected a mapping of publish, subscribe, claim, address, got ${describe(value)}`);
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
  if (!config.access.anonymous && config.access.users.length === 0) {
    problems.push('access: anonymous access is off and no users are configured, so nobody could connect');
  }
  return problems;
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
