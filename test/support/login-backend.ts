/**
 * Starts examples/jwt-login.mjs (the chat page's demo login backend) as a child process on a free loopback
 * port, with `secret` as SOCKETD_JWT_SECRET, and resolves once it listens.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export interface LoginBackend {
  child: ChildProcess;
  /** http://127.0.0.1:PORT */
  url: string;
  stdout(): string;
  stop(): void;
}

export async function startLoginBackend(secret: string): Promise<LoginBackend> {
  const child = spawn(process.execPath, [join(ROOT, 'examples', 'jwt-login.mjs'), '--port', '0'], {
    cwd: ROOT,
    env: { ...process.env, SOCKETD_JWT_SECRET: secret },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line: ${out}`)), 10_000);
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /login backend on (http:\/\/\S+)/.exec(out);
      if (m !== null) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.once('exit', (code) => reject(new Error(`exited ${code}: ${out}`)));
  });
  return { child, url, stdout: () => out, stop: () => void child.kill('SIGTERM') };
}

/** POSTs JSON to the backend. */
export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}
