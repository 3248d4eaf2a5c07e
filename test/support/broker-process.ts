/**
 * A broker started as its own process through the CLI (bin/socketd-broker.js) on port 0, for tests that need
 * a process boundary (a node killed with SIGKILL). Ports come from the `broker_started` log line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import http from 'node:http';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = `${ROOT}bin/socketd-broker.js`;

type LogLine = Record<string, unknown> & { event?: string };

export interface ProcessPorts {
  tcp: number;
  udp: number;
  ws: number;
  http: number;
}

export class BrokerProcess {
  readonly lines: LogLine[] = [];
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcess;
  private buffered = '';

  /** `env`: SOCKETD_* settings on top of loopback listeners on port 0. */
  constructor(env: Record<string, string>, args: string[] = []) {
    const clean: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SOCKETD_')) clean[k] = v;
    const local = {
      SOCKETD_LISTENERS__TCP__HOST: '127.0.0.1', SOCKETD_LISTENERS__UDP__HOST: '127.0.0.1', SOCKETD_LISTENERS__WS__HOST: '127.0.0.1',
      SOCKETD_HTTP__HOST: '127.0.0.1', SOCKETD_LOG__LEVEL: 'info',
    };
    this.child = spawn(process.execPath, [BIN, '--tcp', '0', '--udp', '0', '--ws', '0', '--http', '0', ...args], {
      cwd: ROOT, env: { ...clean, ...local, ...env }, stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.child.stderr!.on('data', (d: Buffer) => this.onStderr(d.toString()));
    this.exited = new Promise((r) => this.child.on('exit', (code, signal) => r({ code, signal })));
  }

  private onStderr(text: string): void {
    this.stderr += text;
    if (this.stderr.length > 1 << 20) this.stderr = this.stderr.slice(-(1 << 19));
    this.buffered += text;
    let nl: number;
    while ((nl = this.buffered.indexOf('\n')) !== -1) {
      const line = this.buffered.slice(0, nl);
      this.buffered = this.buffered.slice(nl + 1);
      if (!line.startsWith('{')) continue;
      try {
        this.lines.push(JSON.parse(line) as LogLine);
      } catch {
        // not a log line
      }
    }
  }

  async ports(timeoutMs = 30_000): Promise<ProcessPorts> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const line = this.lines.find((l) => l.event === 'broker_started');
      if (line !== undefined) {
        const a = line.addresses as Record<string, { port: number }>;
        return { tcp: a.tcp.port, udp: a.udp.port, ws: a.ws.port, http: a.http.port };
      }
      if (this.child.exitCode !== null || Date.now() > until) throw new Error(`broker did not start; stderr:\n${this.stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Log lines with this event so far. */
  events(event: string): LogLine[] {
    return this.lines.filter((l) => l.event === event);
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
  }

  async stop(): Promise<void> {
    this.kill('SIGTERM');
    const timer = setTimeout(() => this.kill('SIGKILL'), 8000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** GET a JSON admin endpoint. */
export function getJson(port: number, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> });
        } catch (error) {
          reject(error as Error);
        }
      });
    }).on('error', reject);
  });
}
