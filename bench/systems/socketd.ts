/** Adapter for this broker, driven by our SDK (src/client) over tcp or ws. */
import { connect, type Client } from '../../src/client/index.js';
import type { Target } from '../lib/common.js';
import type { BenchClient, Handler } from './client.js';

class SocketdClient implements BenchClient {
  readonly lost: Promise<string>;
  private closing = false;
  private pressureFrames = 0;

  constructor(private readonly client: Client) {
    client.events.on('pressure', () => this.pressureFrames++);
    this.lost = new Promise((resolve) => {
      client.events.on('disconnect', (e: { message?: string }) => {
        if (!this.closing) resolve(`disconnect: ${e?.message ?? ''}`);
      });
    });
  }

  publish(subject: string, payload: Uint8Array): boolean {
    this.client.send(subject, payload);
    return !this.client.pressured;
  }

  drain(): Promise<void> {
    return this.client.waitForDrain();
  }

  flush(): Promise<void> {
    // The SDK writes on the next tick; waiting for the socket to drain means the bytes left the process.
    return new Promise((resolve) => setImmediate(() => this.client.waitForDrain().then(resolve)));
  }

  async subscribe(subject: string, handler: Handler): Promise<void> {
    await this.client.on(subject, (msg) => handler(msg.data));
  }

  async request(subject: string, payload: Uint8Array): Promise<Uint8Array> {
    return (await this.client.request(subject, payload)).data;
  }

  async respond(subject: string, handler: (payload: Uint8Array) => Uint8Array): Promise<void> {
    await this.client.on(subject, (msg) => msg.reply(handler(msg.data)));
  }

  stats(): Record<string, number> {
    return { pressureFrames: this.pressureFrames };
  }

  pauseReading(): void {
    // The SDK has no public way to stop reading: pause the transport connection under it (Link.connection).
    const link = (this.client as unknown as { link: { connection: { pause(): void } } | null }).link;
    if (link === null) throw new Error('socketd: no connection to pause');
    link.connection.pause();
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.client.close();
  }
}

export async function connectSocketd(target: Target): Promise<BenchClient> {
  const scheme = target.system === 'socketd-ws' ? 'sd:ws' : 'sd:tcp';
  // BENCH_PRESSURE_HOLD (ms) overrides the SDK's pressureHold (default 10), for diagnosis (bench/README.md).
  const hold = process.env['BENCH_PRESSURE_HOLD'];
  const client = await connect(`${scheme}://${target.host}:${target.port}/`, {
    reconnect: false,
    connectTimeout: 20_000,
    ...(hold !== undefined && hold !== '' ? { pressureHold: Number(hold) } : {}),
  });
  return new SocketdClient(client);
}
