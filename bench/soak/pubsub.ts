/**
 * Publisher and subscriber roles. Publishers send Messages by event (`chat.room.<r>`, 50%;
 * `metrics.<h>.<kind>`, 30%) and by name (`@inbox-<k>`, 20%), counting what they sent per event, so the
 * orchestrator can compute each subscriber's expected deliveries from the static subscription plan.
 * The first data byte says whether the publisher is stable (never churns): stable publishers to stable
 * subscribers must deliver everything (ratio 1.0 but for udp datagram drops).
 */
import type { Client, IncomingMessage } from '../../src/client/index.js';
import { SocketdError } from '../../src/client/index.js';
import { inc, METRIC_KINDS, type SubscriberStats, type WorkerPlan } from './common.js';
import type { Conn, Ctx } from './conn.js';

const TICK_MS = 50;

export class Publishers {
  private timer: NodeJS.Timeout | null = null;
  private tokens = new Map<Conn, number>();
  private readonly bodies: [Buffer, Buffer];

  constructor(
    private readonly ctx: Ctx,
    private readonly plan: WorkerPlan,
    private readonly conns: Conn[],
  ) {
    const stable = Buffer.alloc(96, 0x2e);
    stable[0] = 1;
    const churn = Buffer.alloc(96, 0x2e);
    churn[0] = 0;
    this.bodies = [churn, stable];
  }

  /** Publishers learn about 4004 for `@inbox-<k>` nobody holds through the client's 'alarm' event. */
  setup = async (_conn: Conn, client: Client): Promise<void> => {
    client.events.on('alarm', (e) => inc(this.ctx.stats.messages.alarms, e.alarmCode ?? 'none'));
  };

  start(): void {
    this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private tick(): void {
    if (this.ctx.stopping) return;
    const add = (this.ctx.timing.messagesPerSecond * TICK_MS) / 1000;
    for (const conn of this.conns) {
      let tokens = Math.min((this.tokens.get(conn) ?? this.ctx.rand()) + add, add * 20);
      while (tokens >= 1) {
        tokens -= 1;
        this.publish(conn);
      }
      this.tokens.set(conn, tokens);
    }
  }

  private publish(conn: Conn): void {
    const m = this.ctx.stats.messages;
    const client = conn.client;
    if (client === null || !conn.connected) {
      inc(m.sendRefused, 'not_connected');
      return;
    }
    const stable = conn.spec.churn === 'none';
    const body = this.bodies[stable ? 1 : 0];
    const x = this.ctx.rand();
    try {
      if (x < 0.2) {
        client.send('inbox.note', body, { to: `inbox-${Math.floor(this.ctx.rand() * this.plan.inboxes)}` });
        m.sentDirect++;
        return;
      }
      const event = x < 0.7
        ? `chat.room.${Math.floor(this.ctx.rand() * this.plan.rooms)}`
        : `metrics.h${Math.floor(this.ctx.rand() * this.plan.hosts)}.${METRIC_KINDS[Math.floor(this.ctx.rand() * METRIC_KINDS.length)]}`;
      client.send(event, body);
      const e = (m.sentByEvent[event] ??= { stable: 0, churn: 0 });
      if (stable) e.stable++;
      else e.churn++;
    } catch (error) {
      inc(m.sendRefused, error instanceof SocketdError ? error.code : 'exception');
    }
  }
}

/** Subscribers: their patterns (and inbox name) come from the plan; receipts are counted per connection. */
export function subscriberSetup(ctx: Ctx) {
  const byConn = new Map<Conn, SubscriberStats>();
  const statsOf = (conn: Conn): SubscriberStats => {
    let s = byConn.get(conn);
    if (s === undefined) {
      s = {
        id: conn.spec.id,
        transport: conn.spec.transport,
        stable: conn.spec.churn === 'none',
        patterns: conn.spec.patterns ?? [],
        inbox: conn.spec.name ?? null,
        fromStable: 0,
        fromChurn: 0,
        direct: 0,
      };
      byConn.set(conn, s);
      ctx.stats.subscribers.push(s);
    }
    return s;
  };
  return async (conn: Conn, client: Client): Promise<void> => {
    const s = statsOf(conn);
    const onMessage = (msg: IncomingMessage): void => {
      if (msg.data[0] === 1) s.fromStable++;
      else s.fromChurn++;
    };
    if (conn.spec.name !== undefined) {
      client.onDirect(() => {
        s.direct++;
      });
    }
    for (const p of conn.spec.patterns ?? []) await client.on(p, onMessage);
  };
}
