/**
 * The configuration's shape, defaults and validation. `config/broker.yaml` is the embedded default and must
 * agree with DEFAULT_CONFIG (a test checks it). Validation reports every problem with its path.
 */
import { DEFAULT_FRAME_LIMITS } from '../protocol/limits.js';
import { DEFAULT_SETTINGS } from '../broker/settings.js';

export interface ListenerConfig {
  enabled: boolean;
  host: string;
  port: number;
}

export interface BrokerConfig {
  listeners: { tcp: ListenerConfig; udp: ListenerConfig; ws: ListenerConfig };
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
  };
  timeouts: { handshakeMs: number; idleMs: number; requestMs: number; streamMs: number };
  flow: { outboundHighWaterBytes: number; outboundLimitBytes: number; slowConsumerPolicy: 'disconnect' | 'drop' };
  fastPaths: { forwardMessageBytes: boolean; matchCacheSize: number };
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
  },
  http: { enabled: true, host: ALL, port: 8680, adminToken: '', serveExamples: true },
  limits: {
    ...DEFAULT_FRAME_LIMITS,
    udpMaxDatagram: DEFAULT_SETTINGS.udpMaxDatagram,
    maxStreamsPerSession: DEFAULT_SETTINGS.maxStreamsPerSession,
    maxFragmentRoutesPerSession: DEFAULT_SETTINGS.maxFragmentRoutesPerSession,
    maxSubscriptionsPerSession: 10_000,
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
  },
  fastPaths: { forwardMessageBytes: DEFAULT_SETTINGS.forwardMessageBytes, matchCacheSize: 4096 },
  log: { level: 'info', pretty: false },
  shutdown: { drainMs: 5_000 },
});

type Rule =
  | { kind: 'int'; min: number; max: number }
  | { kind: 'bool' }
  | { kind: 'string'; nonEmpty?: boolean }
  | { kind: 'enum'; values: readonly string[] };

const port: Rule = { kind: 'int', min: 0, max: 65535 };
const listener = { enabled: { kind: 'bool' }, host: { kind: 'string', nonEmpty: true }, port } as const;
const positive = (max: number): Rule => ({ kind: 'int', min: 1, max });
const DAY = 24 * 3600 * 1000;

/** Field rules by section; the `limits` maxima are the protocol's (they may only be lowered, spec §1). */
export const SCHEMA: Record<string, Record<string, Rule | Record<string, Rule>>> = {
  listeners: { tcp: listener, udp: listener, ws: listener },
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
  },
  fastPaths: { forwardMessageBytes: { kind: 'bool' }, matchCacheSize: { kind: 'int', min: 0, max: 10_000_000 } },
  log: {
    level: { kind: 'enum', values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] },
    pretty: { kind: 'bool' },
  },
  shutdown: { drainMs: { kind: 'int', min: 0, max: 3600 * 1000 } },
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
  }
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
