/**
 * Reading the configuration: defaults < YAML file < SOCKETD_* environment < CLI flags. Any problem stops the
 * load with a ConfigError listing every problem by path.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { brokerSettings, type BrokerSettings } from '../broker/settings.js';
import { DEFAULT_CONFIG, checkMerged, mergeConfig, validateConfig, type BrokerConfig } from './schema.js';
import { configFromEnv } from './env.js';

export class ConfigError extends Error {
  constructor(readonly source: string, readonly problems: string[]) {
    super(`invalid configuration (${source}): ${problems.join('; ')}`);
    this.name = 'ConfigError';
  }
}

/** Parses YAML text into a partial config and checks its shape (no defaults merged, no cross-field checks). */
export function partialFromYaml(text: string, source = 'yaml'): unknown {
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (error) {
    throw new ConfigError(source, [`not valid YAML: ${(error as Error).message.split('\n')[0]}`]);
  }
  const problems = validateConfig(parsed);
  if (problems.length > 0) throw new ConfigError(source, problems);
  return parsed;
}

/** Parses YAML text into a config, merged over the defaults. */
export function configFromYaml(text: string, source = 'yaml'): BrokerConfig {
  return configFrom(partialFromYaml(text, source), source);
}

/** Validates a partial config object and merges it over the defaults. */
export function configFrom(partial: unknown, source = 'object'): BrokerConfig {
  const problems = validateConfig(partial);
  if (problems.length > 0) throw new ConfigError(source, problems);
  const config = mergeConfig(DEFAULT_CONFIG as BrokerConfig, partial);
  const crossProblems = checkMerged(config);
  if (crossProblems.length > 0) throw new ConfigError(source, crossProblems);
  return config;
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'ENOENT (no such file)' : e.code === 'EACCES' ? 'EACCES (permission denied)'
      : e.code === 'EISDIR' ? 'EISDIR (a directory)' : (e.code ?? e.message);
    throw new ConfigError(path, [`cannot read the file: ${why}`]);
  }
}

/** A YAML file's partial config, shape-checked (what the file sets, nothing merged). */
export function readConfigFile(path: string): unknown {
  return partialFromYaml(readText(path), path);
}

/** A YAML file merged over the defaults, every check done. */
export function loadConfigFile(path: string): BrokerConfig {
  return configFrom(readConfigFile(path), path);
}

export interface ConfigLayers {
  /** The YAML file; when absent, SOCKETD_CONFIG from `env`, else none (the embedded defaults). */
  file?: string;
  /** The process environment (only SOCKETD_* is read). */
  env?: NodeJS.ProcessEnv;
  /** A partial config from command-line flags. */
  flags?: Record<string, unknown>;
}

export interface ResolvedConfig {
  config: BrokerConfig;
  /** The file read, or null for the embedded defaults alone. */
  file: string | null;
  /** SOCKETD_* variables that were ignored (not a setting of this broker). */
  warnings: string[];
}

/**
 * The config from its layers, each validated on its own, then merged and cross-checked:
 * flags > environment > file > defaults. Throws a ConfigError naming the layer at fault.
 */
export function resolveConfig(layers: ConfigLayers = {}): ResolvedConfig {
  const env = configFromEnv(layers.env ?? {});
  const file = layers.file ?? env.configFile ?? null;
  const filePartial = file !== null ? readConfigFile(file) : null;
  if (env.problems.length > 0) throw new ConfigError('environment', env.problems);
  const flags = layers.flags ?? {};
  const flagProblems = validateConfig(flags);
  if (flagProblems.length > 0) throw new ConfigError('command line', flagProblems);
  const config = mergeConfig(mergeConfig(mergeConfig(DEFAULT_CONFIG as BrokerConfig, filePartial), env.partial), flags);
  const crossProblems = checkMerged(config);
  if (crossProblems.length > 0) {
    const sources = [file ?? 'defaults'];
    if (Object.keys(env.partial).length > 0) sources.push('environment');
    if (Object.keys(flags).length > 0) sources.push('command line');
    throw new ConfigError(sources.join(' + '), crossProblems);
  }
  return { config, file, warnings: env.warnings };
}

/** The broker core's settings from a config. */
export function settingsFromConfig(config: BrokerConfig): BrokerSettings {
  const { limits, timeouts, flow } = config;
  return brokerSettings({
    limits: { maxSid: limits.maxSid, maxEvent: limits.maxEvent, maxMeta: limits.maxMeta, maxData: limits.maxData, maxFrame: limits.maxFrame },
    udpMaxDatagram: limits.udpMaxDatagram,
    maxStreamsPerSession: limits.maxStreamsPerSession,
    maxFragmentRoutesPerSession: limits.maxFragmentRoutesPerSession,
    maxConnections: limits.maxConnections,
    maxConnectionsPerIp: limits.maxConnectionsPerIp,
    handshakesPerSecond: limits.handshakesPerSecond,
    framesPerSecond: limits.framesPerSecond,
    memoryBudgetBytes: flow.memoryBudgetBytes,
    memoryLowWaterBytes: flow.memoryLowWaterBytes,
    handshakeTimeoutMs: timeouts.handshakeMs,
    idleTimeoutMs: timeouts.idleMs,
    requestTimeoutMs: timeouts.requestMs,
    streamTimeoutMs: timeouts.streamMs,
    // Timeouts fire at most a quarter late, checked at least once a second.
    sweepIntervalMs: Math.max(10, Math.min(1000, Math.floor(Math.min(timeouts.handshakeMs, timeouts.idleMs, flow.congestionTimeoutMs) / 4))),
    outbound: {
      highWaterBytes: flow.outboundHighWaterBytes,
      limitBytes: flow.outboundLimitBytes,
      policy: flow.slowConsumerPolicy,
      congestionTimeoutMs: flow.congestionTimeoutMs,
    },
    forwardMessageBytes: config.fastPaths.forwardMessageBytes,
    preHandshakeLog: { intervalMs: config.log.preHandshake.intervalMs, warnPerSecond: config.log.preHandshake.warnPerSecond },
    bareControlFrames: config.fastPaths.bareControlFrames,
    atRouteCache: config.fastPaths.atRouteCache,
    largeMessageParts: config.fastPaths.largeMessageParts,
  });
}
