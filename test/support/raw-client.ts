/**
 * A raw Socket.D peer for integration tests: real sockets (tcp, ws, udp), frames built with the codec, every
 * received frame recorded. Deliberately not the SDK, so broker tests see the exact bytes on the wire.
 */
import net from 'node:net';
import dgram from 'node:dgram';
import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import {
  DEFAULT_FRAME_LIMITS,
  Flag,
  FrameDecoder,
  MessageDecoder,
  encodeBare,
  encodeFrame,
  flagLabel,
  type Frame,
  type FrameError,
  type FrameFields,
  type FrameSink,
} from '../../src/protocol/index.js';

export type RawTransport = 'tcp' | 'ws' | 'udp';

export interface RawConnectOptions {
  /** The `@` name to claim (added to the URL query). */
  name?: string;
  /** Extra URL query, e.g. `token=abc`. */
  query?: string;
  /** Extra Connect metas, e.g. `sub=chat.*`. */
  meta?: string;
  /** The URL's path without its leading `/`: the namespace (docs/namespaces.md). */
  path?: string;
  /** Expect Connack (default) or return right after sending Connect. */
  awaitConnack?: boolean;
}

export function sid(): string {
  return randomUUID().replace(/-/g, '');
}

export class RawClient implements FrameSink {
  readonly frames: Frame[] = [];
  readonly errors: FrameError[] = [];
  /** openPython only: frames whose length prefix was missing or wrong, and the count of well-prefixed ones. */
  readonly prefixErrors: string[] = [];
  prefixedFrames = 0;
  private unframedWrite: ((bytes: Buffer) => void) | null = null;
  closed = false;
  /** True once the broker sent a Close frame (the session is over on its side, udp included). */
  closeReceived = false;
  private waiters: { match: (f: Frame) => boolean; resolve: (f: Frame) => void }[] = [];
  private closeWaiters: (() => void)[] = [];
  private readonly decoder = new FrameDecoder(DEFAULT_FRAME_LIMITS);
  private readonly messageDecoder = new MessageDecoder(DEFAULT_FRAME_LIMITS);
  private consumed = 0;

  private constructor(
    readonly transport: RawTransport,
    private readonly sendRaw: (bytes: Buffer) => void,
    private readonly closeRaw: () => void,
    private readonly sendTextRaw: ((text: string) => void) | null = null,
  ) {}

  /** Opens the socket only (no Connect). */
  static async open(transport: RawTransport, port: number, host = '127.0.0.1'): Promise<RawClient> {
    if (transport === 'tcp') {
      const socket = net.connect(port, host);
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      });
      socket.setNoDelay(true);
      const client: RawClient = new RawClient('tcp', (b) => socket.write(b), () => socket.destroy());
      socket.on('data', (chunk) => client.decoder.push(chunk, client));
      socket.on('error', () => undefined);
      socket.on('close', () => client.markClosed());
      return client;
    }
    if (transport === 'ws') {
      const ws = new WebSocket(`ws://${host}:${port}/`, ['Socket.D']);
      await new Promise<void>((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
      });
      const client: RawClient = new RawClient('ws', (b) => ws.send(b), () => ws.terminate(), (t) => ws.send(t));
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        if (!isBinary) throw new Error('broker sent a text message');
        client.onMessage(data);
      });
      ws.on('error', () => undefined);
      ws.on('close', () => client.markClosed());
      return client;
    }
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => socket.connect(port, host, resolve));
    const client: RawClient = new RawClient('udp', (b) => socket.send(b), () => {
      try {
        socket.close();
      } catch {
        // already closed
      }
      client.markClosed();
    });
    socket.on('message', (msg) => client.onMessage(msg));
    socket.on('error', () => undefined);
    return client;
  }

  /**
   * Opens a tcp socket that speaks the Python reference client's framing (docs/clients.md, "Python"): every
   * frame goes out with an extra 4-byte big-endian length in front, written as that client writes it (the
   * prefix, then the frame, two writes); every frame received must carry such a prefix equal to its own length,
   * which is checked (`prefixErrors`) and stripped before decoding. Written independently of the broker's
   * own reader, from the framing alone.
   */
  static async openPython(port: number, host = '127.0.0.1'): Promise<RawClient> {
    const socket = net.connect(port, host);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.setNoDelay(true);
    const client: RawClient = new RawClient('tcp', (b) => {
      const prefix = Buffer.alloc(4);
      prefix.writeUInt32BE(b.length, 0);
      socket.write(prefix);
      socket.write(b);
    }, () => socket.destroy());
    client.unframedWrite = (b) => socket.write(b);
    let held: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      held = held.length === 0 ? chunk : Buffer.concat([held, chunk]);
      while (held.length >= 8) {
        const prefix = held.readInt32BE(0);
        const own = held.readInt32BE(4);
        if (prefix !== own) {
          client.prefixErrors.push(`prefix ${prefix} != frame length ${own}`);
          held = Buffer.alloc(0);
          return;
        }
        if (held.length < 4 + prefix) break;
        client.decoder.push(held.subarray(4, 4 + prefix), client);
        client.prefixedFrames++;
        held = held.subarray(4 + prefix);
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => client.markClosed());
    return client;
  }

  /** Opens the socket and completes the handshake. */
  static async connect(transport: RawTransport, port: number, options: RawConnectOptions = {}): Promise<RawClient> {
    const client = await RawClient.open(transport, port);
    try {
      await client.handshake(port, options);
    } catch (error) {
      // A refused handshake must not leave the socket open (a bound udp socket keeps the process alive).
      client.close();
      throw error;
    }
    return client;
  }

  async handshake(port: number, options: RawConnectOptions = {}): Promise<Frame | null> {
    const query = [options.name !== undefined ? `@=${options.name}` : '', options.query ?? ''].filter((s) => s).join('&');
    const path = options.path !== undefined ? `/${options.path}` : this.transport === 'ws' ? '/' : '';
    const url = `${this.transport}://127.0.0.1:${port}${path}${query ? `?${query}` : ''}`;
    const connectSid = sid();
    this.send({ flag: Flag.Connect, sid: connectSid, event: url, meta: `Socket.D=1.0${options.meta ? `&${options.meta}` : ''}`, data: url });
    if (options.awaitConnack === false) return null;
    const reply = await this.next((f) => f.flag === Flag.Connack || f.flag === Flag.Close);
    if (reply.flag !== Flag.Connack) throw new Error(`handshake refused: ${reply.metaString} ${reply.data.toString()}`);
    return reply;
  }

  send(fields: FrameFields): string {
    const frameSid = fields.sid ?? sid();
    this.sendRaw(encodeFrame({ ...fields, sid: frameSid }));
    return frameSid;
  }

  sendBytes(bytes: Buffer): void {
    this.sendRaw(bytes);
  }

  /** openPython only: writes `bytes` as they are, with no prefix added (already prefixed, or deliberately not). */
  sendRawPrefixed(bytes: Buffer): void {
    if (this.unframedWrite === null) throw new Error('sendRawPrefixed is for openPython clients');
    this.unframedWrite(bytes);
  }

  ping(): void {
    this.sendRaw(encodeBare(Flag.Ping));
  }

  /** Sends a Close frame (as the reference client's session.close(): empty sid/event/data, meta `code`). */
  sendClose(code = 1001): void {
    this.sendRaw(encodeFrame({ flag: Flag.Close, sid: '', event: '', meta: `code=${code}` }));
  }

  /** ws only: sends a text message (a protocol error for Socket.D, spec §2). */
  sendText(text: string): void {
    if (this.sendTextRaw === null) throw new Error(`sendText is ws only (this is ${this.transport})`);
    this.sendTextRaw(text);
  }

  /** Resolves with the first frame received (from now or already buffered and not yet consumed) that matches. */
  next(match: (f: Frame) => boolean = () => true, timeoutMs = 3000): Promise<Frame> {
    for (let i = this.consumed; i < this.frames.length; i++) {
      if (match(this.frames[i])) {
        const [frame] = this.frames.splice(i, 1);
        return Promise.resolve(frame);
      }
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        match,
        resolve: (f: Frame) => {
          clearTimeout(timer);
          resolve(f);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        const seen = this.frames.map((f) => `${flagLabel(f.flag)}(${f.event})`).join(', ');
        reject(new Error(`no matching frame within ${timeoutMs} ms on ${this.transport}; unconsumed: [${seen}]`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  nextFlag(flag: number, timeoutMs?: number): Promise<Frame> {
    return this.next((f) => f.flag === flag, timeoutMs);
  }

  /** Waits for the sid's frame with one of the flags. */
  nextFor(frameSid: string, timeoutMs?: number): Promise<Frame> {
    return this.next((f) => f.sid === frameSid, timeoutMs);
  }

  /** Resolves when the socket is closed by the broker. */
  waitClosed(timeoutMs = 3000): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.transport} connection still open after ${timeoutMs} ms`)), timeoutMs);
      this.closeWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Collects frames for `ms` and returns those not consumed yet that match. */
  async collect(ms: number, match: (f: Frame) => boolean = () => true): Promise<Frame[]> {
    await new Promise((r) => setTimeout(r, ms));
    const out = this.frames.filter(match);
    for (const f of out) this.frames.splice(this.frames.indexOf(f), 1);
    return out;
  }

  close(): void {
    this.closeRaw();
  }

  onFrame(frame: Frame): void {
    if (frame.flag === Flag.Close) this.closeReceived = true;
    const i = this.waiters.findIndex((w) => w.match(frame));
    if (i !== -1) {
      const [waiter] = this.waiters.splice(i, 1);
      waiter.resolve(frame);
      return;
    }
    this.frames.push(frame);
  }

  onFrameError(error: FrameError): void {
    this.errors.push(error);
  }

  private onMessage(data: Buffer): void {
    const result = this.messageDecoder.decode(data);
    if ('flag' in result && !(result instanceof Error)) this.onFrame(result as Frame);
    else this.onFrameError(result as FrameError);
  }

  private markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.closeWaiters.splice(0)) w();
  }
}
