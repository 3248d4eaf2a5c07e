/**
 * The client's heartbeat (spec §3 Ping/Pong; docs/client.md "Life: heartbeat, reconnect, close"): a Ping
 * every `heartbeatInterval` ms while connected, and the connection dropped (so the client reconnects) when
 * nothing arrived for 2.5 intervals. Separate from client.ts: one interval timer and its rule, for whatever
 * link is current.
 */
import { Flag } from '../protocol/flags.js';
import { encodeBare } from '../protocol/codec.js';
import { SocketdError } from './errors.js';
import type { Link } from './link.js';
import { unrefTimer, type TickClock } from './tick.js';

const PING = encodeBare(Flag.Ping);

/** What the heartbeat reads from its client. */
export interface HeartbeatOwner {
  /** @internal The current link while the client is open, else null. */
  _liveLink(): Link | null;
}

function beat(heartbeat: Heartbeat): void {
  heartbeat.beat();
}

export class Heartbeat {
  private timer: NodeJS.Timeout | null = null;

  /** `interval` 0 turns the heartbeat off. */
  constructor(private readonly owner: HeartbeatOwner, private readonly interval: number, private readonly clock: TickClock) {}

  /** A connection is up: starts the timer unless it runs already. */
  start(): void {
    if (this.interval > 0 && this.timer === null) {
      this.timer = setInterval(beat, this.interval, this);
      unrefTimer(this.timer);
    }
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** @internal The timer fired. */
  beat(): void {
    const link = this.owner._liveLink();
    if (link === null) return;
    // Every frame counts as a sign of life, the Pong to our last Ping included (udp has no other way to tell).
    const silent = this.clock.now() - link.lastReceived;
    if (silent > this.interval * 2.5) {
      link.closeError = new SocketdError('connection_lost', `No frame from the broker for ${Math.round(silent)} ms`);
      link.connection.destroy('heartbeat timeout');
      return;
    }
    link.writer.raw(PING);
  }
}
