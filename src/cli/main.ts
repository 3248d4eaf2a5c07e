/**
 * `socketd-broker [--config FILE] [--tcp PORT] [--udp PORT] [--ws PORT] [--http PORT] [--log-level L] [--log-pretty]`
 * and `socketd-broker check-config FILE`.
 * Precedence: flag > SOCKETD_* environment > file > embedded defaults. An invalid config stops the process
 * with one line that says why (exit 2).
 */
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { ConfigError, loadConfigFile, resolveConfig, type ResolvedConfig } from '../config/load.js';
import type { BrokerConfig } from '../config/schema.js';
import { createLogger, startServer, type RunningServer } from '../server.js';
import { STOP_MESSAGE, isWorkerProcess, runPrimary, workerConfig, workerIndex, workerMetrics } from '../cluster/workers.js';

/** Exit status when the configuration is invalid at start. */
export const EXIT_BAD_CONFIG = 2;

function portArg(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('a port is an integer from 0 to 65535');
  return n;
}

function workersArg(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < 1 || n > 256) throw new InvalidArgumentError('workers is an integer from 1 to 256');
  return n;
}

export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export interface CliOptions {
  config?: string;
  tcp?: number;
  udp?: number;
  ws?: number;
  http?: number;
  logLevel?: string;
  logPretty?: boolean;
  workers?: number;
}

/** The partial config the flags set (nothing for a flag not given). */
export function flagsPartial(options: CliOptions): Record<string, unknown> {
  const flags: Record<string, unknown> = {};
  const listeners: Record<string, unknown> = {};
  for (const name of ['tcp', 'udp', 'ws'] as const) {
    if (options[name] !== undefined) listeners[name] = { port: options[name] };
  }
  if (Object.keys(listeners).length > 0) flags.listeners = listeners;
  if (options.http !== undefined) flags.http = { port: options.http };
  const log: Record<string, unknown> = {};
  if (options.logLevel !== undefined) log.level = options.logLevel;
  if (options.logPretty === true) log.pretty = true;
  if (Object.keys(log).length > 0) flags.log = log;
  if (options.workers !== undefined) flags.cluster = { workers: options.workers };
  return flags;
}

/** The config and its origins for CLI options and an environment: flag > env > file > defaults. */
export function resolveFromOptions(options: CliOptions, env: NodeJS.ProcessEnv = {}): ResolvedConfig {
  return resolveConfig({ file: options.config, env, flags: flagsPartial(options) });
}

/** The config the CLI options describe (flag > env > file > defaults). */
export function configFromOptions(options: CliOptions, env: NodeJS.ProcessEnv = {}): BrokerConfig {
  return resolveFromOptions(options, env).config;
}

/** `check-config FILE`: every problem on its own line (`FILE: path: problem`); the exit status, 0 or 1. */
export function checkConfigFile(file: string, out: (line: string) => void, err: (line: string) => void): number {
  try {
    loadConfigFile(file);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    for (const problem of error.problems) err(`${file}: ${problem}`);
    err(`${file}: invalid (${error.problems.length} problem${error.problems.length === 1 ? '' : 's'})`);
    return 1;
  }
  out(`${file}: ok`);
  return 0;
}

export function buildProgram(): Command {
  const program = new Command()
    .name('socketd-broker')
    .description('A Socket.D message broker: tcp, udp and WebSocket clients, routed by @ name and by event')
    .version(version(), '-V, --version', 'print the version and exit')
    .option('-c, --config <file>', 'YAML configuration file (default: $SOCKETD_CONFIG, else the embedded config/broker.yaml)')
    .option('--tcp <port>', 'sd:tcp port (0: any free port)', portArg)
    .option('--udp <port>', 'sd:udp port', portArg)
    .option('--ws <port>', 'sd:ws port', portArg)
    .option('--http <port>', 'HTTP port for health, metrics and admin', portArg)
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent')
    .option('--log-pretty', 'human-readable logs (pino-pretty) instead of JSON lines')
    .option('--workers <n>', 'node processes sharing the tcp/ws ports, joined over cluster.redis (docs/cluster.md)', workersArg)
    .addHelpText('after', `
Precedence: flags > SOCKETD_* environment > file > defaults.
Environment: SOCKETD_CONFIG, SOCKETD_TCP_PORT, SOCKETD_UDP_PORT, SOCKETD_WS_PORT, SOCKETD_HTTP_PORT,
  SOCKETD_LOG_LEVEL, SOCKETD_LOG_PRETTY, SOCKETD_ADMIN_TOKEN, and SOCKETD_<SECTION>__<KEY> for any key
  (e.g. SOCKETD_LIMITS__MAX_DATA=1000 sets limits.maxData).
SIGTERM/SIGINT: graceful shutdown (Close to every session, drain up to shutdown.drainMs, exit 0);
  a second signal exits at once (1). See docs/operations.md.`)
    .action(async (options: CliOptions) => {
      await run(options);
    });
  program
    .command('check-config')
    .description('validate a YAML config file: prints every problem with its path; exit 0 valid, 1 invalid')
    .argument('<file>', 'the YAML file')
    .action((file: string) => {
      const status = checkConfigFile(file, (l) => process.stdout.write(`${l}\n`), (l) => process.stderr.write(`${l}\n`));
      process.exitCode = status;
    });
  return program;
}

async function run(options: CliOptions): Promise<void> {
  let resolved: ResolvedConfig;
  try {
    resolved = resolveFromOptions(options, process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`socketd-broker: ${error.message}\n`);
      process.exit(EXIT_BAD_CONFIG);
    }
    throw error;
  }
  let { config } = resolved;
  const logger = createLogger(config);
  // --workers N (docs/cluster.md): the primary only forks and supervises; each worker is a node.
  const worker = config.cluster.workers > 1 && isWorkerProcess();
  if (config.cluster.workers > 1 && !worker) {
    for (const warning of resolved.warnings) logger.warn({ event: 'config_warning' }, warning);
    await runPrimary(config, logger);
    return;
  }
  if (worker) config = workerConfig(config, workerIndex());
  // Signals are handled from before the listeners open, so one that comes during the start is not lost
  // (nor fatal): the shutdown then begins as soon as the start completes.
  let server: RunningServer | null = null;
  let stopping = false;
  const shutdown = (running: RunningServer): void => {
    running.close().then(() => process.exit(0), (error: unknown) => {
      logger.error({ event: 'shutdown_failed', err: error }, 'shutdown failed');
      process.exit(1);
    });
  };
  const stop = (signal: string): void => {
    // A worker asked by its primary after the terminal already signalled it: one shutdown, not a second.
    if (stopping && signal === 'primary') return;
    if (stopping) {
      logger.warn({ event: 'forced_exit', signal }, 'second signal: exiting at once');
      logger.flush();
      process.exit(1);
    }
    stopping = true;
    logger.info({ event: 'shutdown', signal, drainMs: config.shutdown.drainMs }, 'shutting down');
    if (server !== null) shutdown(server);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  if (worker) process.on('message', (m: { type?: string }) => m?.type === STOP_MESSAGE && stop('primary'));
  for (const warning of resolved.warnings) logger.warn({ event: 'config_warning' }, warning);
  logger.info({ event: 'config_loaded', file: resolved.file ?? '(embedded defaults)' }, 'configuration loaded');
  server = await startServer(config, { logger });
  if (worker) server.metrics.textSource = workerMetrics(server.metrics.registry);
  if (stopping) shutdown(server);
}

export async function main(argv: string[]): Promise<void> {
  await buildProgram().parseAsync(argv);
}
