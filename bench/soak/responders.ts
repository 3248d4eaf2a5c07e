/**
 * Responder roles: `echo` (by `@echo` and by event `work.>` in queue group `workers`, answers at once),
 * `slow` (`@slow`, 20-300 ms, 1% past the broker's request timeout), `feeder` (`@feeder` and `feed.*` in
 * group `feeders`: a Subscribe gets 3-5 Replies then ReplyEnd; 0.5% of streams stall without an end) and
 * `victim` (a feeder whose socket is sometimes destroyed mid-stream, so the requester must get Alarm 5003).
 */
import type { Client, IncomingMessage } from '../../src/client/index.js';
import { json } from '../../src/client/index.js';
import { sleep } from './common.js';
import type { Conn, Ctx } from './conn.js';

export function responderSetup(ctx: Ctx) {
  const r = ctx.stats.responders;

  const safe = (fn: () => void): boolean => {
    try {
      fn();
      r.replies++;
      return true;
    } catch {
      r.replyFailed++;
      return false;
    }
  };

  const echo = (msg: IncomingMessage): void => {
    if (msg.isRequest) {
      r.requests++;
      safe(() => msg.reply(msg.data));
    } else if (msg.isSubscribe) {
      r.streams++;
      safe(() => msg.replyEnd(msg.data));
    }
  };

  const slow = async (msg: IncomingMessage): Promise<void> => {
    if (!msg.isRequest && !msg.isSubscribe) return;
    r.requests++;
    let delay = 20 + ctx.rand() * 280;
    if (ctx.rand() < 0.01) {
      delay = ctx.timing.brokerRequestMs + 1_000;
      r.delayedPastTimeout++;
    }
    await sleep(delay);
    safe(() => msg.replyEnd(msg.data));
  };

  const feeder = (conn: Conn, client: Client, victim: boolean) => (msg: IncomingMessage): void => {
    if (msg.isRequest) {
      r.requests++;
      safe(() => msg.reply(json({ ok: true, from: conn.spec.id })));
      return;
    }
    if (!msg.isSubscribe) return;
    r.streams++;
    void feed(conn, client, victim, msg);
  };

  const feed = async (conn: Conn, client: Client, victim: boolean, msg: IncomingMessage): Promise<void> => {
    let id = 0;
    let n = 3;
    try {
      const ask = msg.json<{ id: number; n: number }>();
      id = ask.id;
      n = ask.n;
    } catch {
      safe(() => msg.fail('bad stream request', 4000));
      return;
    }
    const stall = ctx.rand() < 0.005;
    const killAt = victim && ctx.rand() < ctx.timing.victimKillProbability ? 1 + Math.floor(ctx.rand() * 2) : -1;
    for (let i = 0; i < n; i++) {
      await sleep(10 + ctx.rand() * 70);
      if (i === killAt && conn.client === client && client.connected && !conn.churning) {
        // Killed mid-stream: the broker must answer the requester with Alarm 5003.
        void conn.churnAbrupt('mid-stream');
        return;
      }
      if (stall && i === 2) {
        r.stalledStreams++;
        return; // never ends: the broker's stream timeout must answer with Alarm 4008
      }
      if (!safe(() => msg.reply(json({ id, i })))) return;
    }
    safe(() => msg.replyEnd());
  };

  return async (conn: Conn, client: Client): Promise<void> => {
    switch (conn.spec.role) {
      case 'echo':
        client.onDirect(echo);
        await client.on('work.>', echo, { group: 'workers' });
        break;
      case 'slow':
        client.onDirect(slow);
        break;
      case 'feeder':
      case 'victim': {
        const h = feeder(conn, client, conn.spec.role === 'victim');
        client.onDirect(h);
        await client.on('feed.*', h, { group: 'feeders' });
        break;
      }
      default:
        break;
    }
  };
}
