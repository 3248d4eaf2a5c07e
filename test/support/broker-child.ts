/**
 * The real broker in a child process, for tests that must measure its memory apart from their own clients
 * (test/fuzz/live.fuzz.test.ts). Started with fork(): argv[2] is a partial config as JSON (listeners and http
 * are set here: tcp, udp and ws on 127.0.0.1 port 0, no HTTP port). Over IPC it sends
 * `{ type: 'ready', ports }`, answers `{ type: 'stats' }` with its memory (after a GC when run with
 * --expose-gc) and session counts, and on `{ type: 'stop' }` shuts down and exits 0.
 */
import pino from 'pino';
import { configFrom } from '../../src/config/load.js';
import { startServer } from '../../src/server.js';

export interface ChildStats {
  type: 'stats';
  rss: number;
  heapUsed: number;
  sessions: number;
  connections: number;
  streamsOpen: number;
  timers: number;
  /** Sessions ended, by reason (BrokerStats.closes). */
  closes: Record<string, number>;
}

export type ToChild = { type: 'stats' } | { type: 'stop' };
export type FromChild = { type: 'ready'; ports: { tcp: number; udp: number; ws: number } } | ChildStats;

async function main(): Promise<void> {
  const overrides = JSON.parse(process.argv[2] ?? '{}') as Record<string, unknown>;
  const local = { enabled: true, host: '127.0.0.1', port: 0 };
  const config = configFrom({ ...overrides, listeners: { tcp: local, udp: local, ws: local }, http: { ...local, enabled: false } }, 'child');
  // Errors only, on stderr: the parent keeps the tail for its failure message.
  const server = await startServer(config, { logger: pino({ level: process.env.TEST_LOG ?? 'error' }, pino.destination(2)) });
  const send = (message: FromChild): void => {
    process.send?.(message);
  };
  process.on('message', (message: ToChild) => {
    if (message.type === 'stats') {
      (globalThis as { gc?: () => void }).gc?.();
      const memory = process.memoryUsage();
      const b = server.broker;
      send({
        type: 'stats', rss: memory.rss, heapUsed: memory.heapUsed, sessions: b.sessionCount, connections: b.connectionCount,
        streamsOpen: b.stats.streamsOpen, timers: b.pendingTimers, closes: Object.fromEntries(b.stats.closes),
      });
    } else if (message.type === 'stop') {
      void server.close(1000).then(() => process.exit(0));
    }
  });
  // The parent gone means the test is over, however it ended.
  process.on('disconnect', () => process.exit(0));
  const a = server.addresses;
  send({ type: 'ready', ports: { tcp: a.tcp!.port, udp: a.udp!.port, ws: a.ws!.port } });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(2);
});
