/**
 * Starts the real broker on port 0 (every transport) for integration tests, with a silent logger unless
 * TEST_LOG is set.
 */
import pino from 'pino';
import { startServer, type RunningServer, type ServerOptions } from '../../src/server.js';
import { configFrom } from '../../src/config/load.js';

export interface TestBrokerConfig {
  [section: string]: Record<string, unknown> | undefined;
}

export async function startTestBroker(overrides: TestBrokerConfig = {}, options: ServerOptions = {}): Promise<RunningServer> {
  const local = { enabled: true, host: '127.0.0.1', port: 0 };
  const config = configFrom({
    ...overrides,
    listeners: { tcp: { ...local }, udp: { ...local }, ws: { ...local }, ...(overrides.listeners ?? {}) },
    http: { ...local, ...(overrides.http ?? {}) },
  }, 'test');
  const logger = pino({ level: process.env.TEST_LOG ?? 'silent' });
  return startServer(config, { logger, ...options });
}

export function ports(server: RunningServer): { tcp: number; udp: number; ws: number; http: number } {
  const a = server.addresses;
  return { tcp: a.tcp!.port, udp: a.udp!.port, ws: a.ws!.port, http: a.http!.port };
}

/** Polls `check` until it is true or the time runs out. */
export async function eventually(check: () => boolean, timeoutMs = 3000, what = 'condition'): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
