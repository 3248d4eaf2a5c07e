/** Role processes seen from the orchestrator: fork, ready/result over IPC, progress, kill. */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { now, type ToParent, type ToRole } from './common.js';

const ROLES = fileURLToPath(new URL('../roles/', import.meta.url));

export type RoleResult = Record<string, unknown> & { cpuMs?: number };

export interface Progress {
  at: number;
  count: number;
  bytes: number;
}

export class Role {
  readonly child: ChildProcess;
  readonly ready: Promise<void>;
  readonly result: Promise<RoleResult>;
  readonly progress: Progress[] = [];
  /** When the progress count last changed (or the role started). */
  lastChangeAt = now();
  finished = false;
  private stderr = '';

  constructor(readonly name: string, script: string, config: object) {
    this.child = fork(path.join(ROLES, `${script}.js`), [JSON.stringify(config)], {
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
      execArgv: [],
    });
    this.child.stderr!.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString('utf8')).slice(-2000);
    });
    let onReady!: () => void;
    let onResult!: (r: RoleResult) => void;
    let onFail!: (e: Error) => void;
    const ready = new Promise<void>((resolve, reject) => {
      onReady = resolve;
      this.child.once('exit', (code) => reject(new Error(`${name} exited (code ${code}) before ready: ${this.tail()}`)));
    });
    this.result = new Promise<RoleResult>((resolve, reject) => {
      onResult = resolve;
      onFail = reject;
      this.child.once('exit', (code, sig) => reject(new Error(`${name} exited (code ${code ?? sig}) without a result: ${this.tail()}`)));
    });
    this.ready = ready;
    this.ready.catch(() => {});
    this.result.catch(() => {});
    this.result.then(() => (this.finished = true), () => (this.finished = true));
    this.child.on('message', (m: ToParent) => {
      switch (m.type) {
        case 'ready':
          onReady();
          break;
        case 'progress': {
          const last = this.progress[this.progress.length - 1];
          if (last === undefined || last.count !== m.count) this.lastChangeAt = now();
          this.progress.push({ at: m.at, count: m.count, bytes: m.bytes ?? 0 });
          break;
        }
        case 'result':
          onResult(m.result);
          break;
        case 'error':
          onFail(new Error(`${name}: ${m.message}`));
          break;
      }
    });
  }

  private tail(): string {
    return this.stderr.trim().split('\n').slice(-3).join(' | ');
  }

  send(type: ToRole['type']): void {
    if (this.child.connected) this.child.send({ type });
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }

  /** The progress count at time t (linear between samples; 0 before the first). */
  countAt(t: number): number {
    const p = this.progress;
    if (p.length === 0 || t <= p[0]!.at) return p.length === 0 ? 0 : (p[0]!.count * Math.max(0, t - (p[0]!.at - 200))) / 200;
    for (let i = 1; i < p.length; i++) {
      if (p[i]!.at >= t) {
        const a = p[i - 1]!;
        const b = p[i]!;
        return a.count + ((b.count - a.count) * (t - a.at)) / (b.at - a.at || 1);
      }
    }
    return p[p.length - 1]!.count;
  }
}
