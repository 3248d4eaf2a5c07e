/**
 * Reading the configuration: defaults < YAML file < overrides (CLI flags). Any problem stops the load with
 * a ConfigError listing every problem by path.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { brokerSettings, type BrokerSettings } from '../broker/settings.js';
import { DEFAULT_CONFIG, checkMerged, mergeConfig, validateConfig, type BrokerConfig } from './schema.js';

export class ConfigError extends Error {
  constructor(readonly source: string, readonly problems: string[]) {
    super(`invalid configuration (${source}): ${problems.join('; ')}`);
    this.name = 'ConfigError';
  }
}

/** Parses YAML text into a config, merged over the defaults. */
export function configFromYaml(text: string, source = 'yaml'): BrokerConfig {
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (error) {
    throw new ConfigError(source, [`not valid YAML: ${(error as Error).message.split('\n')[0]}`]);
  }
  return configFrom(parsed, source);
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

export function loadConfigFile(path: string): BrokerConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(path, [`cannot read the file: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`]);
  }
  return configFromYaml(text, path);
}

/** The broker core's settings from a config. */
export function settingsFromConfig(config: BrokerConfig): BrokerSettings {
  const { limits, timeouts, flow } = config;
  return brokerSettings({
    limits: { maxSid: limits.maxSid, maxEvent: limits.maxEvent, maxMeta: limits.maxMeta, maxData: limits.maxData, maxFrame: limits.maxFrame },
    udpMaxDatagram: limits.udpMaxDatagram,
    maxStreamsPerSession: limits.maxStreamsPerSession,
    maxFragmentRoutesPerSession: limits.maxFragmentRoutesPerSession,
    handshakeTimeoutMs: timeouts.handshakeMs,
    idleTimeoutMs: timeouts.idleMs,
    requestTimeoutMs: timeouts.requestMs,
    streamTimeoutMs: timeouts.streamMs,
    // Timeouts fire at most a quarter late, checked at least once a second.
    sweepIntervalMs: Math.max(10, Math.min(1000, Math.floor(Math.min(timeouts.handshakeMs, timeouts.idleMs) / 4))),
    outbound: { highWaterBytes: flow.outboundHighWaterBytes, limitBytes: flow.outboundLimitBytes, policy: flow.slowConsumerPolicy },
    forwardMessageBytes: config.fastPaths.forwardMessageBytes,
  });
}
