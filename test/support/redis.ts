/**
 * A real redis-server for the cluster tests (docs/cluster.md), on a free loopback port, without persistence:
 * Debian's package (`.ci/run` installs it when missing). It can be stopped and started again on the same
 * port to test a Redis restart.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { existsSync } from 'node:fs';

export const REDIS_SERVER = process.env.REDIS_SERVER ?? '/usr/bin/redis-server';

export function redisAvailable(): boolean {
  return existsSync(REDIS_SERVER);
}

const inCi = process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false';

/**
 * The `skip` option of a test that needs Redis: a reason on a developer's machine without redis-server; under
 * CI false, so that a missing redis-server fails the test (.ci/run installs it).
 */
export const skipWithoutRedis: string | false = !redisAvailable() && !inCi
  ? `${REDIS_SERVER} is missing: install it with \`apt-get install -y --no-install-recommends redis-server\` (.ci/run does)`
  : false;

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export class RedisServer {
  private child: ChildProcess | null = null;

  private constructor(readonly port: number) {}

  static async start(): Promise<RedisServer> {
    if (!redisAvailable()) throw new Error(`${REDIS_SERVER} not found: install Debian's redis-server (.ci/run does)`);
    const server = new RedisServer(await freePort());
    await server.startAgain();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== null;
  }

  /** Starts (again) on the same port; resolves once it accepts connections. */
  async startAgain(): Promise<void> {
    if (this.child !== null) return;
    const child = spawn(REDIS_SERVER, ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    let output = '';
    child.stdout!.on('data', (d: Buffer) => {
      output += d.toString();
    });
    const until = Date.now() + 10_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`redis-server exited: ${output}`);
      if (await canConnect(this.port)) return;
      if (Date.now() > until) throw new Error(`redis-server not ready on ${this.port}: ${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Stops it at once (SIGKILL: no goodbye, as a crash). */
  async stop(): Promise<void> {
    const child = this.child;
    if (child === null) return;
    this.child = null;
    if (child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
