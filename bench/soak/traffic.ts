/**
 * Requester and streamer roles. Each connection keeps up to N Requests (Subscribes) in flight at a set
 * rate, and every one issued is accounted for by how it ended (common.ts Outcomes): answered, alarmed (by
 * code), requester churned, or lost (local timeout, other error).
 *
 * Request targets: 40% `@echo`, 30% event `work.job.<k>` (queue group `workers`), 15% `@slow`, 10%
 * `@feeder`, 3% `@nobody` and 2% event `nosuch.<k>` (both Alarm 4004).
 * Stream targets: 60% event `feed.<k>` (group `feeders`), 40% `@feeder`; each asks for 3-5 items.
 */
import { randomBytes } from 'node:crypto';
import { json, SocketdError, type Reply } from '../../src/client/index.js';
import { Histogram, inc, newOutcomes, type LostSample, type Outcomes } from './common.js';
import type { Conn, Ctx } from './conn.js';

const MAX_LOST_SAMPLES = 25;
/** Request kinds without a designed delay (their round trips make the "direct" latency). */
const DIRECT_KINDS = new Set(['echo', 'work', 'feeder']);

interface Target {
  kind: string;
  event: string;
  to?: string;
}

export class Traffic {
  readonly latencyAll = new Histogram();
  readonly latencyDirect = new Histogram();
  readonly latencyStream = new Histogram();
  readonly byKind: Record<string, Outcomes> = {};
  readonly byTransport: Record<string, Outcomes> = {};
  private inFlight = new Map<Conn, number>();
  private tokens = new Map<Conn, number>();
  private seq = 0;
  private readonly pool = randomBytes(64 * 1024);
  private timer: NodeJS.Timeout | null = null;
  private lastTick = 0;
  pendingTotal = 0;
  readonly pending = { request: 0, stream: 0 };

  constructor(
    private readonly ctx: Ctx,
    private readonly requesters: Conn[],
    private readonly streamers: Conn[],
  ) {}

  start(): void {
    this.lastTick = performance.now();
    this.timer = setInterval(() => this.tick(), 20);
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private tick(): void {
    if (this.ctx.stopping) return;
    const now = performance.now();
    const dt = (now - this.lastTick) / 1000;
    this.lastTick = now;
    const t = this.ctx.timing;
    for (const conn of this.requesters) this.feed(conn, dt * t.requestsPerSecond, t.requestsInFlight, () => this.request(conn));
    for (const conn of this.streamers) this.feed(conn, dt * t.streamsPerSecond, t.streamsInFlight, () => this.stream(conn));
  }

  private feed(conn: Conn, add: number, maxInFlight: number, issue: () => void): void {
    // Up to one second of burst; jitter the start so connections do not move in lockstep.
    let tokens = Math.min((this.tokens.get(conn) ?? this.ctx.rand()) + add, Math.max(1, add * 50));
    while (tokens >= 1 && (this.inFlight.get(conn) ?? 0) < maxInFlight && conn.connected) {
      tokens -= 1;
      issue();
    }
    this.tokens.set(conn, tokens);
  }

  private begin(conn: Conn, what: 'request' | 'stream'): void {
    this.inFlight.set(conn, (this.inFlight.get(conn) ?? 0) + 1);
    this.pendingTotal++;
    this.pending[what]++;
  }

  private end(conn: Conn, what: 'request' | 'stream'): void {
    this.inFlight.set(conn, (this.inFlight.get(conn) ?? 1) - 1);
    this.pendingTotal--;
    this.pending[what]--;
  }

  private pickRequest(): Target {
    const x = this.ctx.rand();
    const k = Math.floor(this.ctx.rand() * 50);
    if (x < 0.4) return { kind: 'echo', event: 'echo.ping', to: 'echo' };
    if (x < 0.7) return { kind: 'work', event: `work.job.${k}` };
    if (x < 0.85) return { kind: 'slow', event: 'slow.job', to: 'slow' };
    if (x < 0.95) return { kind: 'feeder', event: 'feed.get', to: 'feeder' };
    if (x < 0.98) return { kind: 'no-name', event: 'ghost.ping', to: 'nobody' };
    return { kind: 'no-route', event: `nosuch.${k}` };
  }

  private payload(): Buffer {
    const id = ++this.seq;
    const size = 64 + Math.floor(this.ctx.rand() * 192);
    const off = Math.floor(this.ctx.rand() * (this.pool.length - size));
    const b = Buffer.allocUnsafe(size);
    this.pool.copy(b, 0, off, off + size);
    b.writeUInt32BE(id, 0);
    return b;
  }

  private request(conn: Conn): void {
    const client = conn.client!;
    const target = this.pickRequest();
    const o = this.ctx.stats.requests;
    const ok = (this.byKind[target.kind] ??= newOutcomes());
    const ot = (this.byTransport[`request:${conn.spec.transport}`] ??= newOutcomes());
    const data = this.payload();
    const issuedAt = performance.now();
    o.issued++;
    ok.issued++;
    ot.issued++;
    this.begin(conn, 'request');
    client.request(target.event, data, { to: target.to, timeout: this.ctx.timing.clientRequestMs }).then(
      (reply: Reply) => {
        this.end(conn, 'request');
        const ms = performance.now() - issuedAt;
        o.answered++;
        ok.answered++;
        ot.answered++;
        this.latencyAll.record(ms);
        if (DIRECT_KINDS.has(target.kind)) this.latencyDirect.record(ms);
        if (target.kind !== 'feeder' && !reply.data.equals(data)) {
          o.wrong++;
          ok.wrong++;
          ot.wrong++;
        }
      },
      (error: unknown) => {
        this.end(conn, 'request');
        this.classify(conn, error, [o, ok, ot], 'request', target.kind, issuedAt);
      },
    );
  }

  private stream(conn: Conn): void {
    const client = conn.client!;
    const x = this.ctx.rand();
    const k = Math.floor(this.ctx.rand() * 50);
    const target: Target = x < 0.6 ? { kind: 'feed-group', event: `feed.${k}` } : { kind: 'feed-name', event: 'feed.list', to: 'feeder' };
    const n = 3 + Math.floor(this.ctx.rand() * 3);
    const id = ++this.seq;
    const o = this.ctx.stats.streams;
    const ot = (this.byTransport[`stream:${conn.spec.transport}`] ??= newOutcomes());
    const issuedAt = performance.now();
    o.issued++;
    ot.issued++;
    this.begin(conn, 'stream');
    const run = async (): Promise<void> => {
      let items = 0;
      let wrong = false;
      try {
        const s = client.stream(target.event, json({ id, n }), { to: target.to, timeout: this.ctx.timing.clientStreamMs });
        for await (const item of s) {
          const got = item.json<{ id: number; i: number }>();
          if (got.id !== id || got.i !== items) wrong = true;
          items++;
          this.ctx.stats.streamItems++;
        }
        if (wrong || items !== n) {
          // Ended normally but with missing or wrong items: data lost inside a stream. Counted as LOST.
          for (const x of [o, ot]) {
            x.wrong++;
            inc(x.other, items !== n ? 'incomplete' : 'wrong_items');
          }
          this.sample({ what: 'stream', kind: target.kind, conn: conn.spec.id, transport: conn.spec.transport, code: 'incomplete', message: `${items} of ${n} items`, issuedAt, endedAt: performance.now(), items });
        } else {
          o.answered++;
          ot.answered++;
          this.latencyStream.record(performance.now() - issuedAt);
        }
      } catch (error) {
        this.classify(conn, error, [o, ot], 'stream', target.kind, issuedAt, items);
      } finally {
        this.end(conn, 'stream');
      }
    };
    void run();
  }

  private classify(conn: Conn, error: unknown, into: Outcomes[], what: 'request' | 'stream', kind: string, issuedAt: number, items?: number): void {
    const e = error as SocketdError;
    const code = e instanceof SocketdError ? e.code : 'exception';
    for (const o of into) {
      switch (code) {
        case 'alarm':
          inc(o.alarmed, e.alarmCode ?? 'none');
          break;
        case 'closed':
          o.churnedPlanned++;
          break;
        case 'connection_lost':
          if (conn.churning) o.churnedPlanned++;
          else o.churnedUnplanned++;
          break;
        case 'timeout':
          o.timeout++;
          break;
        case 'congested':
        case 'too_large':
        case 'invalid_argument':
          // Refused before sending: not issued after all.
          o.issued--;
          inc(o.notSent, code);
          break;
        default:
          inc(o.other, code);
      }
    }
    if (code === 'timeout' || !['alarm', 'closed', 'connection_lost', 'congested', 'too_large', 'invalid_argument'].includes(code)) {
      this.sample({ what, kind, conn: conn.spec.id, transport: conn.spec.transport, code, message: e.message, issuedAt, endedAt: performance.now(), ...(items === undefined ? {} : { items }) });
    }
  }

  private sample(s: Omit<LostSample, 'issuedAt' | 'endedAt'> & { issuedAt: number; endedAt: number }): void {
    const list = this.ctx.stats.lostSamples;
    if (list.length >= MAX_LOST_SAMPLES) return;
    list.push({ ...s, issuedAt: Math.round(s.issuedAt - this.ctx.goAt), endedAt: Math.round(s.endedAt - this.ctx.goAt) });
  }
}
