/**
 * `socketd-broker [--config FILE] [--tcp PORT] [--udp PORT] [--ws PORT] [--http PORT] [--log-level L]`.
 * Precedence: flag > file > embedded defaults. An invalid config stops the process with one line that says why.
 */
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { ConfigError, configFrom, loadConfigFile } from '../config/load.js';
import { DEFAULT_CONFIG, mergeConfig, type BrokerConfig } from '../config/schema.js';
import { startServer } from '../server.js';

function portArg(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('a port is an integer from 0 to 65535');
  return n;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

interface CliOptions {
  config?: string;
  tcp?: number;
  udp?: number;
  ws?: number;
  http?: number;
  logLevel?: string;
}

/** The config the CLI options describe (file over defaults, flags over both). */
export function configFromOptions(options: CliOptions): BrokerConfig {
  const base = options.config !== undefined ? loadConfigFile(options.config) : (DEFAULT_CONFIG as BrokerConfig);
  const flags: Record<string, unknown> = {};
  const listeners: Record<string, unknown> = {};
  for (const name of ['tcp', 'udp', 'ws'] as const) {
    if (options[name] !== undefined) listeners[name] = { port: options[name] };
  }
  if (Object.keys(listeners).length > 0) flags.listeners = listeners;
  if (options.http !== undefined) flags.http = { port: options.http };
  if (options.logLevel !== undefined) flags.log = { level: options.logLevel };
  return configFrom(mergeConfig(base, flags), 'command line');
}

export async function main(argv: string[]): Promise<void> {
  const program = new Command()
    .name('socketd-broker')
    .description('A Socket.D message broker: tcp, udp and WebSocket clients, routed by @ name and by event')
    .version(version())
    .option('-c, --config <file>', 'YAML configuration file (defaults: config/broker.yaml)')
    .option('--tcp <port>', 'sd:tcp port', portArg)
    .option('--udp <port>', 'sd:udp port', portArg)
    .option('--ws <port>', 'sd:ws port', portArg)
    .option('--http <port>', 'HTTP port for health and metrics', portArg)
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent')
    .action(async (options: CliOptions) => {
      let config: BrokerConfig;
      try {
        config = configFromOptions(options);
      } catch (error) {
        if (error instanceof ConfigError) {
          process.stderr.write(`socketd-broker: ${error.message}\n`);
          process.exit(2);
        }
        throw error;
      }
      const server = await startServer(config);
      let stopping = false;
      const stop = (signal: string): void => {
        if (stopping) {
          server.logger.warn({ event: 'forced_exit', signal }, 'second signal: exiting at once');
          process.exit(1);
        }
        stopping = true;
        server.logger.info({ event: 'shutdown', signal }, 'shutting down');
        server.close().then(() => process.exit(0), () => process.exit(1));
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    });
  await program.parseAsync(argv);
}
