/**
 * A minimal Socket.D client written for the bench, not our SDK: what a plain client (the reference clients'
 * shape) puts on the wire, and nothing else. Frames are encoded and cut here by hand (docs/protocol.md,
 * frame layout: len, flag, sid, event, meta, data with a 2-byte separator after each string); one Message per
 * frame, addressed by `@`; 8-byte Ping/Pong. Over tcp a plain `net` socket, over ws the `ws` package.
 *
 * Writes are corked for the rest of the tick and go out as one syscall, as nats.js and our SDK batch theirs;
 * without it a publisher would pay a syscall per message and measure itself rather than the broker.
 */
import net from 'node:net';
import { WebSocket } from 'ws';

export const FLAG = { Connect: 10, Connack: 11, Ping: 20, Pong: 21, Close: 30, Alarm: 31, Pressure: 32, Message: 40 } as const;

const SEP0 = 0;
const SEP1 = 0x0a;

/** Encodes one frame (len, flag, sid, event, meta, data). */
export function rawFrame(flag: number, sid: string, event: string, meta: string, data: Uint8Array = Buffer.alloc(0)): Buffer {
  const sidLen = Buffer.byteLength(sid);
  const eventLen = Buffer.byteLength(event);
  const metaLen = Buffer.byteLength(meta);
  const total = 8 + sidLen + 2 + eventLen + 2 + metaLen + 2 + data.length;
  const out = Buffer.allocUnsafe(total);
  out.writeInt32BE(total, 0);
  out.writeInt32BE(flag, 4);
  let o = 8;
  o += out.write(sid, o, 'utf8');
  out[o++] = SEP0;
  out[o++] = SEP1;
  o += out.write(event, o, 'utf8');
  out[o++] = SEP0;
  out[o++] = SEP1;
  o += out.write(meta, o, 'utf8');
  out[o++] = SEP0;
  out[o++] = SEP1;
  out.set(data, o);
  return out;
}

export const PING = (() => {
  const b = Buffer.alloc(8);
  b.writeInt32BE(8, 0);
  b.writeInt32BE(FLAG.Ping, 4);
  return b;
})();

/** Offset of the data section in a whole frame `f[start, end)` (after the third separator). */
export function dataOffset(f: Buffer, start: number, end: number): number {
  let o = start + 8;
  for (let seen = 0; seen < 3 && o < end; o++) if (f[o] === SEP1 && f[o - 1] === SEP0) seen++;
  return o;
}

/** The meta string of a whole frame (for Close reasons). */
export function frameMeta(f: Buffer): string {
  let o = 8;
  const offsets: number[] = [];
  for (; o < f.length && offsets.length < 3; o++) if (f[o] === SEP1 && f[o - 1] === SEP0) offsets.push(o + 1);
  return offsets.length === 3 ? f.toString('utf8', offsets[1]!, offsets[2]! - 2) : '';
}

/** The Connect frame claiming `@` name `name` ('' for none); the URL travels as event and data. */
export function connectFrame(url: string, name: string): Buffer {
  const full = name ? `${url}${url.includes('?') ? '&' : '?'}@=${name}` : url;
  return rawFrame(FLAG.Connect, 'c', full, 'Socket.D=1.0', Buffer.from(full));
}

export interface RawLinkOptions {
  host: string;
  port: number;
  transport: 'tcp' | 'ws';
  /** Local (source) address: spreads many connections over loopback addresses (ephemeral ports). */
  localAddress?: string;
}

/**
 * One connection. `onFrame` gets each whole frame as `buf[start, end)` (views into reads, valid during the
 * call); `onClose` once. `send` returns false when the caller should wait for `drained()`.
 */
export class RawLink {
  onFrame: (flag: number, buf: Buffer, start: number, end: number) => void = () => {};
  onClose: (detail: string) => void = () => {};
  private readonly socket: net.Socket | null = null;
  private readonly ws: WebSocket | null = null;
  private corked = false;
  private kept: Buffer | null = null;
  private closed = false;
  readonly opened: Promise<void>;

  constructor(readonly options: RawLinkOptions) {
    if (options.transport === 'tcp') {
      const socket = net.connect({ host: options.host, port: options.port, noDelay: true, ...(options.localAddress ? { localAddress: options.localAddress } : {}) });
      this.socket = socket;
      this.opened = new Promise((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      });
      socket.on('data', (chunk: Buffer) => this.cut(chunk));
      socket.on('error', () => {});
      socket.on('close', () => this.closedBy('socket closed'));
    } else {
      const ws = new WebSocket(`ws://${options.host}:${options.port}/`, ['Socket.D'], {
        perMessageDeflate: false,
        ...(options.localAddress ? { localAddress: options.localAddress } : {}),
      });
      ws.binaryType = 'nodebuffer';
      this.ws = ws;
      this.opened = new Promise((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
      });
      ws.on('message', (data: Buffer) => {
        if (data.length >= 8) this.onFrame(data.readInt32BE(4), data, 0, data.length);
      });
      ws.on('error', () => {});
      ws.on('close', (code: number) => this.closedBy(`ws closed ${code}`));
    }
    this.opened.catch(() => {});
  }

  /** The socket under the connection (ws: the one under the WebSocket, once open). */
  private get raw(): net.Socket | null {
    return this.socket ?? ((this.ws as unknown as { _socket: net.Socket | null })._socket ?? null);
  }

  send(frame: Buffer): boolean {
    if (this.closed) return true;
    const raw = this.raw;
    if (raw !== null && !this.corked) {
      this.corked = true;
      raw.cork();
      process.nextTick(RawLink.uncork, this);
    }
    if (this.socket !== null) return this.socket.write(frame);
    this.ws!.send(frame);
    return raw === null || !raw.writableNeedDrain;
  }

  drained(): Promise<void> {
    const raw = this.raw;
    if (raw === null || this.closed || !raw.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        raw.removeListener('drain', done);
        raw.removeListener('close', done);
        resolve();
      };
      raw.on('drain', done);
      raw.on('close', done);
    });
  }

  pause(): void {
    this.raw?.pause();
  }

  /** Resolves once everything written so far has left the process. */
  async flushed(): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve));
    const raw = this.raw;
    while (raw !== null && !this.closed && raw.writableLength > 0) await new Promise((resolve) => setTimeout(resolve, 2));
  }

  /** Closes after what was written (tcp FIN, ws close frame). */
  close(): void {
    if (this.closed) return;
    if (this.socket !== null) this.socket.end();
    else this.ws!.close(1000);
  }

  private static uncork(link: RawLink): void {
    link.corked = false;
    link.raw?.uncork();
  }

  private closedBy(detail: string): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose(detail);
  }

  /** Cuts whole frames out of the tcp byte stream. */
  private cut(chunk: Buffer): void {
    let buf = chunk;
    if (this.kept !== null) {
      buf = Buffer.concat([this.kept, chunk]);
      this.kept = null;
    }
    let o = 0;
    while (buf.length - o >= 8) {
      const len = buf.readInt32BE(o);
      if (len < 8) {
        this.close();
        return;
      }
      if (buf.length - o < len) break;
      this.onFrame(buf.readInt32BE(o + 4), buf, o, o + len);
      o += len;
    }
    if (o < buf.length) this.kept = buf.subarray(o);
  }
}
