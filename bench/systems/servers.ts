/**
 * Starting and stopping each system's server as its own process on loopback (orchestrator side).
 * - socketd-tcp / socketd-ws: `node bin/socketd-broker.js -c <bench config> --log-level warn` (the config
 *   binds 127.0.0.1, turns udp and http off and lifts the handshake and frame rate limits, see BENCH_YAML);
 * - nats: `nats-server -c <config>` (Debian package; 127.0.0.1, max_payload 2 MiB for S5's 1 MiB payloads);
 * - mosquitto: `mosquitto -c <config>` (Debian package; anonymous on a loopback listener, no persistence);
 * - aedes: `node dist/bench/systems/aedes-server.js PORT` (npm package on a plain net server).
 * Missing Debian packages are installed with apt-get when running as root, else the system is skipped.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sleep, type SystemName } from '../lib/common.js';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export interface Availability {
  available: boolean;
  version: string;
  /** Why the system is skipped, or how it was made available (e.g. installed now). */
  note: string;
}

export interface ServerHandle {
  readonly system: SystemName;
  readonly pid: number;
  readonly port: number;
  /** The last lines the server wrote to stdout/stderr (for failures). */
  output(): string;
  exited(): boolean;
  stop(): Promise<void>;
}

/** The broker configuration used by the bench (see bench/README.md). */
export function benchYaml(tcp: number, ws: number): string {
  return `# socketd-broker bench configuration (written by bench/systems/servers.ts)
listeners:
  tcp: { enabled: true, host: 127.0.0.1, port: ${tcp} }
  udp: { enabled: false }
  ws: { enabled: true, host: 127.0.0.1, port: ${ws} }
http: { enabled: false }
limits:
  handshakesPerSecond: 0    # S4 opens 5,000 connections at once (default 2,000/s)
  framesPerSecond: 0        # a publisher may exceed the default 1,000,000 frames/s per session
log: { level: warn }
shutdown: { drainMs: 0 }
`;
}

const which = (cmd: string): string | null => {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
};

/** Installs a Debian package when the command is missing (root only). Returns a note, or throws the reason. */
function ensureDebian(cmd: string, pkg: string): string {
  if (which(cmd) !== null) return '';
  if (process.getuid?.() !== 0) throw new Error(`${cmd} not installed (Debian package ${pkg}) and not running as root to install it`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let r = spawnSync('apt-get', ['install', '-y', pkg], { env, encoding: 'utf8' });
  if (r.status !== 0) {
    spawnSync('apt-get', ['update'], { env, encoding: 'utf8' });
    r = spawnSync('apt-get', ['install', '-y', pkg], { env, encoding: 'utf8' });
  }
  if (r.status !== 0) throw new Error(`apt-get install ${pkg} failed: ${(r.stderr || r.stdout || '').trim().split('\n').slice(-1)[0] ?? ''}`);
  if (which(cmd) === null) throw new Error(`${cmd} is not on PATH (${process.env['PATH'] ?? ''}) although apt-get installed ${pkg}`);
  return `installed now (apt-get install ${pkg})`;
}

export function checkSystem(system: SystemName): Availability {
  try {
    switch (system) {
      case 'socketd-tcp':
      case 'socketd-ws':
      case 'socketd-raw-tcp':
      case 'socketd-raw-ws': {
        const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
        const rev = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).stdout.trim();
        return { available: true, version: `socketd-broker ${pkg.version}${rev ? ` (${rev})` : ''}`, note: '' };
      }
      case 'nats': {
        const note = ensureDebian('nats-server', 'nats-server');
        const v = spawnSync('nats-server', ['--version'], { encoding: 'utf8' }).stdout.trim();
        return { available: true, version: v.replace(/^nats-server: /, 'nats-server '), note };
      }
      case 'mosquitto': {
        const note = ensureDebian('mosquitto', 'mosquitto');
        const r = spawnSync('mosquitto', ['-h'], { encoding: 'utf8' });
        const v = /mosquitto version (\S+)/.exec(`${r.stdout}${r.stderr}`)?.[1] ?? '?';
        return { available: true, version: `mosquitto ${v}`, note };
      }
      case 'aedes': {
        const pkg = JSON.parse(readFileSync(path.join(ROOT, 'node_modules/aedes/package.json'), 'utf8')) as { version: string };
        return { available: true, version: `aedes ${pkg.version}`, note: '' };
      }
    }
  } catch (error) {
    return { available: false, version: '', note: error instanceof Error ? error.message : String(error) };
  }
}

/** The driving client's version, for the report. */
export function clientOf(system: SystemName): string {
  const v = (name: string): string => {
    try {
      return (JSON.parse(readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      return '?';
    }
  };
  if (system === 'nats') return `nats.js ${v('nats')}`;
  if (system === 'mosquitto' || system === 'aedes') return `mqtt.js ${v('mqtt')} (MQTT 3.1.1, QoS 0)`;
  if (system === 'socketd-raw-tcp') return 'the bench\'s raw client (bench/lib/raw-socketd.ts) over tcp, by `@` name';
  if (system === 'socketd-raw-ws') return `the bench's raw client over ws (ws ${v('ws')}), by \`@\` name`;
  return `our SDK (src/client) over ${system === 'socketd-ws' ? 'ws' : 'tcp'}`;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/** True when something accepts tcp connections on 127.0.0.1:`port` (a server is up). */
export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

let tmpDir: string | null = null;
function tmp(): string {
  if (tmpDir === null) tmpDir = mkdtempSync(path.join(os.tmpdir(), 'socketd-bench-'));
  return tmpDir;
}

export async function startServer(system: SystemName): Promise<ServerHandle> {
  const port = await freePort();
  let child: ChildProcess;
  switch (system) {
    case 'socketd-tcp':
    case 'socketd-ws':
    case 'socketd-raw-tcp':
    case 'socketd-raw-ws': {
      const other = await freePort();
      const [tcp, ws] = system === 'socketd-tcp' || system === 'socketd-raw-tcp' ? [port, other] : [other, port];
      const file = path.join(tmp(), `broker-${port}.yaml`);
      writeFileSync(file, benchYaml(tcp, ws));
      // BENCH_BROKER_NODE_ARGS (space-separated) passes V8/Node flags to the broker, for diagnosis (bench/README.md).
      const nodeArgs = (process.env['BENCH_BROKER_NODE_ARGS'] ?? '').split(' ').filter((a) => a !== '');
      child = spawn(process.execPath, [...nodeArgs, path.join(ROOT, 'bin/socketd-broker.js'), '-c', file, '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
      break;
    }
    case 'nats': {
      const file = path.join(tmp(), `nats-${port}.conf`);
      writeFileSync(file, `listen: 127.0.0.1:${port}\nmax_payload: 2097152\n`);
      child = spawn('nats-server', ['-c', file], { stdio: ['ignore', 'pipe', 'pipe'] });
      break;
    }
    case 'mosquitto': {
      const file = path.join(tmp(), `mosquitto-${port}.conf`);
      writeFileSync(file, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n`);
      child = spawn('mosquitto', ['-c', file], { stdio: ['ignore', 'pipe', 'pipe'] });
      break;
    }
    case 'aedes':
      child = spawn(process.execPath, [path.join(ROOT, 'dist/bench/systems/aedes-server.js'), String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
      break;
  }
  let out = '';
  const keep = (chunk: Buffer): void => {
    out = (out + chunk.toString('utf8')).slice(-4000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  let gone = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => {
    gone = true;
    resolve();
  }));
  const handle: ServerHandle = {
    system,
    pid: child.pid!,
    port,
    output: () => out,
    exited: () => gone,
    async stop() {
      if (gone) return;
      child.kill('SIGTERM');
      await Promise.race([exit, sleep(5000)]);
      if (!gone) {
        child.kill('SIGKILL');
        await exit;
      }
    },
  };
  const deadline = Date.now() + 15_000;
  while (!(await canConnect(port))) {
    if (gone || Date.now() > deadline) {
      await handle.stop();
      throw new Error(`${system} did not start listening on ${port}: ${out.trim().split('\n').slice(-3).join(' | ')}`);
    }
    await sleep(50);
  }
  return handle;
}
