/** Shared helpers for the transport tests: a recording handler, polling, and a throw-away TLS certificate. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConnectionHandler, TransportCloseCode } from '../../src/transport/index.js';

export interface CloseEvent {
  code: TransportCloseCode;
  detail: string;
}

/** Records every call; `closed` resolves on the first connectionOnClose. */
export class RecordingHandler implements ConnectionHandler {
  readonly chunks: Buffer[] = [];
  readonly invalid: { code: string; detail: string }[] = [];
  readonly closes: CloseEvent[] = [];
  drains = 0;
  readonly closed: Promise<CloseEvent>;
  private resolveClosed!: (event: CloseEvent) => void;

  constructor() {
    this.closed = new Promise<CloseEvent>((resolve) => (this.resolveClosed = resolve));
  }

  get bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }

  connectionOnData(data: Buffer): void {
    this.chunks.push(data);
  }

  connectionOnDrain(): void {
    this.drains++;
  }

  connectionOnInvalid(code: string, detail: string): void {
    this.invalid.push({ code, detail });
  }

  connectionOnClose(code: TransportCloseCode, detail: string): void {
    this.closes.push({ code, detail });
    this.resolveClosed({ code, detail });
  }
}

/** Polls `predicate` every few ms until true; fails after `timeoutMs`. */
export async function waitFor(predicate: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(5);
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves after pending setImmediate callbacks (adapter flushes and close notifications) have run. */
export function nextTicks(count = 3): Promise<void> {
  return new Promise((resolve) => {
    let left = count;
    const step = (): void => {
      if (--left <= 0) resolve();
      else setImmediate(step);
    };
    setImmediate(step);
  });
}

/** A frame-shaped buffer: length, flag, then `payload` (the transports only look at the flag, and only udp). */
export function frame(flag: number, payload: Buffer | string = ''): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const out = Buffer.alloc(8 + body.length);
  out.writeInt32BE(out.length, 0);
  out.writeInt32BE(flag, 4);
  body.copy(out, 8);
  return out;
}

/** A self-signed certificate for CN=localhost, made with openssl in a temp dir that is removed at once. */
export function selfSignedCert(): { key: Buffer; cert: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'transport-tls-'));
  try {
    const keyPath = join(dir, 'k.pem');
    const certPath = join(dir, 'c.pem');
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '1', '-subj', '/CN=localhost'],
      { stdio: 'ignore' },
    );
    return { key: readFileSync(keyPath), cert: readFileSync(certPath) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
