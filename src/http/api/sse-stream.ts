/**
 * GET /api/subscribe's answer (docs/http-api.md): the Messages routed to a virtual session, one Server-Sent
 * Event each (`event: message`, `data:` a JSON object), until either side ends it. The response's socket
 * buffer is the session's outbound queue (VirtualClient.buffered), so a caller that cannot keep up is a slow
 * consumer like any other (spec §7): its publishers get Pressure, then the session is closed, and the stream
 * ends with a last `event: close` whose data says why.
 */
import type http from 'node:http';
import type { Frame } from '../../protocol/frame.js';
import { BrokerStats } from '../../broker/stats.js';
import type { ApiStats } from './api-stats.js';
import { frameJson } from './api-json.js';
import type { Ended, VirtualClient } from './virtual-client.js';

/** How long a closed stream's last bytes may take to flush before its socket is dropped. */
const FLUSH_GRACE_MS = 5_000;

/** What the last event says when the broker closed the session without a Close frame (spec §7). */
const CLOSE_TEXT: Readonly<Record<string, string>> = {
  slow_consumer: 'This stream could not keep up: its queue reached flow.outboundLimitBytes, or stayed congested past flow.congestionTimeoutMs',
};

export class SseStream {
  private timer: NodeJS.Timeout | null = null;
  private nextId = 0;
  private started = false;

  constructor(
    private readonly client: VirtualClient,
    req: http.IncomingMessage,
    private readonly res: http.ServerResponse,
    private readonly stats: ApiStats,
    private readonly keepaliveMs: number,
  ) {
    const socket = res.socket;
    client.buffered = () => (socket === null ? 0 : socket.writableLength + res.writableLength);
    client.onMessage = (frame) => this.message(frame);
    client.onEnded = (ended) => this.ended(ended);
    // The caller went away: the session ends as with a dropped socket.
    req.on('close', () => client.connection.peerClosed('client_gone'));
    res.on('close', () => client.connection.peerClosed('client_gone'));
    socket?.on('drain', () => client.connection.peerDrained());
  }

  /** Every subscription is in place: the headers go out, then events as they come. */
  start(): void {
    if (this.client.connection.closed) return;
    this.started = true;
    this.stats.sseOpen++;
    this.res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      // nginx: do not buffer the stream.
      'x-accel-buffering': 'no',
    });
    this.res.write(': subscribed\n\n');
    this.timer = setInterval(() => {
      this.res.write(': keepalive\n\n');
      this.client.ping();
    }, this.keepaliveMs);
    this.timer.unref();
  }

  private message(frame: Frame): void {
    if (!this.started) return;
    this.stats.sseEvents++;
    this.res.write(`id: ${this.nextId++}\nevent: message\ndata: ${JSON.stringify(frameJson(frame))}\n\n`);
  }

  private ended(ended: Ended): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    if (!this.started) return;
    this.started = false;
    this.stats.sseOpen--;
    BrokerStats.inc(this.stats.sseClosed, ended.reason);
    if (this.res.writableEnded || this.res.destroyed) return;
    const message = ended.text.length > 0 ? ended.text : (CLOSE_TEXT[ended.reason] ?? `The session ended: ${ended.reason}`);
    this.res.end(`event: close\ndata: ${JSON.stringify({ reason: ended.reason, message })}\n\n`);
    // A caller that does not read would hold the socket (and the bytes in it) forever.
    setTimeout(() => this.res.destroy(), FLUSH_GRACE_MS).unref();
  }
}
