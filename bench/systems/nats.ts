/** Adapter for nats-server, driven by nats.js (the `nats` npm package). */
import { connect, type NatsConnection } from 'nats';
import type { Target } from '../lib/common.js';
import type { BenchClient, Handler } from './client.js';

/** nats.js buffers publishes without limit; a flush (PING/PONG) every WINDOW messages bounds that. */
const WINDOW = 8192;
/** Flushes in flight before publish waits for the oldest (a sliding window, so the pipe never empties). */
const FLUSHES_IN_FLIGHT = 2;

class NatsClient implements BenchClient {
  readonly lost: Promise<string>;
  private closing = false;
  private published = 0;
  private flushes: Promise<void>[] = [];

  constructor(private readonly nc: NatsConnection) {
    this.lost = nc.closed().then((error) => (this.closing ? new Promise<string>(() => {}) : `closed: ${error?.message ?? 'by server'}`));
  }

  publish(subject: string, payload: Uint8Array): boolean {
    this.nc.publish(subject, payload);
    return ++this.published % WINDOW !== 0;
  }

  async drain(): Promise<void> {
    this.flushes.push(this.nc.flush());
    if (this.flushes.length > FLUSHES_IN_FLIGHT) await this.flushes.shift();
  }

  async flush(): Promise<void> {
    await this.nc.flush();
    this.flushes = [];
  }

  async subscribe(subject: string, handler: Handler): Promise<void> {
    this.nc.subscribe(subject, { callback: (_error, msg) => handler(msg.data) });
    await this.nc.flush();
  }

  async request(subject: string, payload: Uint8Array): Promise<Uint8Array> {
    return (await this.nc.request(subject, payload, { timeout: 10_000 })).data;
  }

  async respond(subject: string, handler: (payload: Uint8Array) => Uint8Array): Promise<void> {
    this.nc.subscribe(subject, { callback: (_error, msg) => msg.respond(handler(msg.data)) });
    await this.nc.flush();
  }

  stats(): Record<string, number> {
    return {};
  }

  pauseReading(): void {
    // nats.js has no public way to stop reading: pause its node socket.
    const socket = (this.nc as unknown as { protocol: { transport: { socket: { pause(): void } } } }).protocol.transport.socket;
    socket.pause();
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.nc.close();
  }
}

export async function connectNats(target: Target): Promise<BenchClient> {
  const nc = await connect({ servers: `${target.host}:${target.port}`, reconnect: false, timeout: 20_000 });
  return new NatsClient(nc);
}
