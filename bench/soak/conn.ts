/**
 * One soak connection: connects with a few retries, runs its role's setup (handlers, subscriptions) on every
 * new client, and churns when its spec says so: `graceful` closes the client (Close frame) and makes a new
 * one; `abrupt` destroys the socket under the client and lets the SDK reconnect (it re-sends the `$sub`s).
 */
import { connect, type Client, SocketdError } from '../../src/client/index.js';
import { inc, sleep, type ConnSpec, type WorkerStats, type Timing } from './common.js';

export interface Ctx {
  stats: WorkerStats;
  timing: Timing;
  rand: () => number;
  /** Set on 'stop': no new traffic, no new churn. */
  stopping: boolean;
  /** performance.now() at 'go'. */
  goAt: number;
  urls: Record<string, string>;
}

export type Setup = (conn: Conn, client: Client) => Promise<void>;

const CONNECT_ATTEMPTS = 5;
const RECONNECT_WAIT_MS = 15_000;

export class Conn {
  client: Client | null = null;
  /** True from the moment we start a churn until the connection is back. */
  churning = false;
  private churnTimer: NodeJS.Timeout | null = null;
  private closedForGood = false;

  constructor(
    readonly spec: ConnSpec,
    private readonly ctx: Ctx,
    private readonly setup: Setup,
  ) {}

  get connected(): boolean {
    return this.client !== null && this.client.connected && !this.churning;
  }

  /** Connects (retrying refusals and failures a few times) and runs the setup. False when it gave up. */
  async open(): Promise<boolean> {
    const { spec, ctx } = this;
    for (let attempt = 0; attempt < CONNECT_ATTEMPTS && !this.closedForGood; attempt++) {
      let client: Client | null = null;
      try {
        client = await connect(urlFor(ctx, spec), {
          name: spec.name,
          requestTimeout: ctx.timing.clientRequestMs,
          connectTimeout: 10_000,
          reconnect: { enabled: true, initialDelay: 100, maxDelay: 2_000, factor: 2, jitter: 0.2 },
        });
        this.watch(client);
        this.client = client;
        await this.setup(this, client);
        return true;
      } catch (error) {
        const e = error as SocketdError;
        inc(ctx.stats.conns.connectFailures, e.code === 'handshake_refused' ? `handshake_refused:${e.reason ?? e.closeCode ?? ''}` : String(e.code ?? e.message));
        if (client !== null) {
          this.client = null;
          await client.close().catch(() => undefined);
        }
        await sleep(200 + 400 * attempt + ctx.rand() * 300);
      }
    }
    return false;
  }

  private watch(client: Client): void {
    const { stats } = this.ctx;
    client.events.on('disconnect', (e) => {
      if (this.churning || this.client !== client) return;
      stats.conns.unplannedDisconnects++;
      if (stats.conns.unplannedSamples.length < 20) {
        stats.conns.unplannedSamples.push(`${this.spec.id} (${this.spec.role}, ${this.spec.transport}) at ${Math.round(performance.now() - this.ctx.goAt)} ms: ${e.message}`);
      }
    });
    client.events.on('reconnect', () => {
      stats.conns.reconnects++;
    });
    client.events.on('error', (e) => inc(stats.clientErrors, e.code));
  }

  /** Schedules the next churn, if this connection churns. */
  scheduleChurn(): void {
    if (this.spec.churn === 'none' || this.ctx.stopping || this.closedForGood) return;
    const { churnMinMs, churnMaxMs } = this.ctx.timing;
    const delay = churnMinMs + this.ctx.rand() * (churnMaxMs - churnMinMs);
    this.churnTimer = setTimeout(() => {
      this.churnTimer = null;
      void this.churnOnce().then(() => this.scheduleChurn());
    }, delay);
  }

  async churnOnce(): Promise<void> {
    if (this.ctx.stopping || this.churning || this.client === null) return;
    if (this.spec.churn === 'graceful') await this.churnGraceful();
    else await this.churnAbrupt();
  }

  async churnGraceful(): Promise<void> {
    const old = this.client;
    if (old === null) return;
    this.churning = true;
    this.ctx.stats.conns.gracefulChurns++;
    this.client = null;
    try {
      await old.close();
      await sleep(50 + this.ctx.rand() * 450);
      if (!(await this.open())) this.ctx.stats.conns.connected--;
    } finally {
      this.churning = false;
    }
  }

  /** Destroys the socket under the client (no Close frame) and waits for the SDK's reconnect. */
  async churnAbrupt(kind: 'churn' | 'mid-stream' = 'churn'): Promise<void> {
    const client = this.client;
    if (client === null || !client.connected) return;
    this.churning = true;
    if (kind === 'churn') this.ctx.stats.conns.abruptChurns++;
    else {
      this.ctx.stats.conns.midStreamKills++;
      process.send?.({ type: 'midStreamKill' });
    }
    try {
      const back = client.events.next('reconnect');
      destroySocket(client);
      const ok = await Promise.race([back.then(() => true), sleep(RECONNECT_WAIT_MS).then(() => false)]);
      if (!ok && this.client === client) {
        this.ctx.stats.conns.reconnectStalls++;
        this.client = null;
        await client.close().catch(() => undefined);
        if (!(await this.open())) this.ctx.stats.conns.connected--;
      }
    } finally {
      this.churning = false;
    }
  }

  async close(): Promise<void> {
    this.closedForGood = true;
    if (this.churnTimer !== null) clearTimeout(this.churnTimer);
    const c = this.client;
    this.client = null;
    if (c !== null) await c.close().catch(() => undefined);
  }

  stopChurn(): void {
    if (this.churnTimer !== null) clearTimeout(this.churnTimer);
    this.churnTimer = null;
  }
}

function urlFor(ctx: Ctx, spec: ConnSpec): string {
  return ctx.urls[spec.transport]!;
}

/**
 * Destroys the transport under a client, as a crash or a pulled cable would: no Close frame. The SDK has no
 * public way to do this, so it reaches the private link (as bench/systems does for its stalled subscriber).
 */
export function destroySocket(client: Client): void {
  const link = (client as unknown as { link: { connection: { destroy(reason: string): void } } | null }).link;
  link?.connection.destroy('soak: socket destroyed');
}
