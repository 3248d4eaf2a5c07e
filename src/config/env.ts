/**
 * SOCKETD_* environment overrides. Short aliases for the common keys (SOCKETD_TCP_PORT, SOCKETD_LOG_LEVEL, ...)
 * and a generic form for any key: sections and keys joined by `__`, words by `_`, case-insensitive, e.g.
 * SOCKETD_LIMITS__MAX_DATA=1000 -> limits.maxData, SOCKETD_LISTENERS__TCP__HOST=127.0.0.1 -> listeners.tcp.host.
 * Values are YAML scalars (`1000` a number, `true` a boolean), except for string and enum keys, which take
 * the text as it is. An empty value counts as unset.
 */
import { parse as parseYaml } from 'yaml';
import { SCHEMA, validateConfig } from './schema.js';

export const ENV_PREFIX = 'SOCKETD_';

/** The short names, each for one key path. SOCKETD_CONFIG names the file instead. */
export const ENV_ALIASES: Readonly<Record<string, string>> = Object.freeze({
  SOCKETD_TCP_PORT: 'listeners.tcp.port',
  SOCKETD_UDP_PORT: 'listeners.udp.port',
  SOCKETD_WS_PORT: 'listeners.ws.port',
  SOCKETD_HTTP_PORT: 'http.port',
  SOCKETD_ADMIN_TOKEN: 'http.adminToken',
  SOCKETD_LOG_LEVEL: 'log.level',
  SOCKETD_LOG_PRETTY: 'log.pretty',
});

export const ENV_CONFIG_FILE = 'SOCKETD_CONFIG';

export interface EnvConfig {
  /** The partial config the variables set. */
  partial: Record<string, unknown>;
  /** SOCKETD_CONFIG, when set. */
  configFile?: string;
  /** Each problem names its variable and the key path. */
  problems: string[];
  /** Variables ignored: SOCKETD_* names without `__` that are no alias (Kubernetes service links look so). */
  warnings: string[];
}

type Node = { kind?: unknown } & Record<string, unknown>;

function isRule(node: unknown): node is { kind: string } {
  return typeof node === 'object' && node !== null && typeof (node as Node).kind === 'string';
}

function norm(word: string): string {
  return word.replace(/_/g, '').toLowerCase();
}

/** The key path a generic variable names (`LIMITS__MAX_DATA` -> ['limits', 'maxData']), or a problem. */
function pathOfGeneric(rest: string): { path: string[] } | { problem: string } {
  const parts = rest.split('__');
  const path: string[] = [];
  let node: unknown = SCHEMA;
  for (const part of parts) {
    if (part === '') return { problem: 'an empty name between `__` separators' };
    if (isRule(node)) return { problem: `${path.join('.')} is a single value, it has no key ${part.toLowerCase()}` };
    const entries = Object.keys(node as Record<string, unknown>);
    const key = entries.find((k) => norm(k) === norm(part));
    if (key === undefined) {
      const where = path.length > 0 ? path.join('.') : 'the config';
      return { problem: `unknown key: ${where} has no ${part.toLowerCase()} (known: ${entries.join(', ')})` };
    }
    path.push(key);
    node = (node as Record<string, unknown>)[key];
  }
  if (!isRule(node)) return { problem: `${path.join('.')} is a section: name one of its keys (${Object.keys(node as object).join(', ')})` };
  return { path };
}

function ruleAt(path: string[]): { kind: string } {
  let node: unknown = SCHEMA;
  for (const key of path) node = (node as Record<string, unknown>)[key];
  return node as { kind: string };
}

/** A variable's text as the value for a key of this rule. */
function valueFor(rule: { kind: string }, text: string): unknown {
  if (rule.kind === 'string' || rule.kind === 'enum') return text;
  try {
    const value: unknown = parseYaml(text);
    return value;
  } catch {
    return text;
  }
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1]] = value;
}

/** Reads the SOCKETD_* variables of an environment. */
export function configFromEnv(env: NodeJS.ProcessEnv): EnvConfig {
  const out: EnvConfig = { partial: {}, problems: [], warnings: [] };
  const names = Object.keys(env).filter((n) => n.startsWith(ENV_PREFIX)).sort();
  for (const name of names) {
    const text = env[name];
    if (text === undefined || text === '') continue;
    if (name === ENV_CONFIG_FILE) {
      out.configFile = text;
      continue;
    }
    let path: string[];
    const alias = ENV_ALIASES[name];
    if (alias !== undefined) {
      path = alias.split('.');
    } else {
      const rest = name.slice(ENV_PREFIX.length);
      if (!rest.includes('__')) {
        out.warnings.push(`${name}: not a socketd-broker setting, ignored (the generic form is SOCKETD_SECTION__KEY)`);
        continue;
      }
      const found = pathOfGeneric(rest);
      if ('problem' in found) {
        out.problems.push(`${name}: ${found.problem}`);
        continue;
      }
      path = found.path;
    }
    const single: Record<string, unknown> = {};
    setPath(single, path, valueFor(ruleAt(path), text));
    const problems = validateConfig(single);
    if (problems.length > 0) {
      for (const p of problems) out.problems.push(`${name}: ${p}`);
      continue;
    }
    setPath(out.partial, path, valueFor(ruleAt(path), text));
  }
  return out;
}

/** Every key path of the schema with its generic variable name, for docs and tests. */
export function envNameOf(path: string): string {
  return ENV_PREFIX + path.split('.').map((k) => k.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('__');
}
