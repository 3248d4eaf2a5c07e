/**
 * Adapter for this broker driven by the bench's own minimal client (bench/lib/raw-socketd.ts), not our SDK:
 * the shape of a plain reference client. Subjects become `@` names: a subscriber's connection claims the name
 * `subject` in its Connect, and a publisher sends each payload as one Message with meta `@=subject*` (every
 * session of that name, spec §4.1), so S1 and S2 run unchanged. No request/reply: the raw systems run S1, S2.
 */
import type { Target } from '../lib/common.js';
import { FLAG, RawLink, connectFrame, dataOffset, frameMeta, rawFrame } from '../lib/raw-socketd.js';
import type { BenchClient, Handler } from './client.js';

async function open(target: Target, name: string): Promise<RawLink> {
  const transport = target.system === 'socketd-raw-ws' ? 'ws' : 'tcp';
  const link = new RawLink({ host: target.host, port: target.port, transport });
  await link.opened;
  const url = `sd:${transport}://${target.host}:${target.port}/`;
  await new Promise<void>((resolve, reject) => {
    link.onFrame = (flag, buf, start, end) => {
      if (flag === FLAG.Connack) resolve();
      else if (flag === FLAG.Close) reject(new Error(`refused: ${frameMeta(buf.subarray(start, end))}`));
    };
    link.onClose = (detail) => reject(new Error(`closed during the handshake: ${detail}`));
    link.send(connectFrame(url, name));
  });
  return link;
}

class RawClient implements BenchClient {
  readonly lost: Promise<string>;
  private lose: (reason: string) => void = () => {};
  private closing = false;
  private alarms = 0;
  private pressureFrames = 0;
  private seq = 0;
  private readonly links: RawLink[] = [];

  constructor(private readonly target: Target, private link: RawLink) {
    this.lost = new Promise((resolve) => (this.lose = resolve));
    this.watch(link, null);
  }

  private watch(link: RawLink, handler: Handler | null): void {
    this.links.push(link);
    link.onFrame = (flag, buf, start, end) => {
      if (flag === FLAG.Message) {
        if (handler !== null) handler(buf.subarray(dataOffset(buf, start, end), end));
      } else if (flag === FLAG.Alarm) this.alarms++;
      else if (flag === FLAG.Pressure) this.pressureFrames++;
    };
    link.onClose = (detail) => {
      if (!this.closing) this.lose(detail);
    };
  }

  publish(subject: string, payload: Uint8Array): boolean {
    // A fresh sid per Message, as the reference clients make one per frame.
    return this.link.send(rawFrame(FLAG.Message, `r${(this.seq++).toString(36)}`, subject, `@=${subject}*`, payload));
  }

  drain(): Promise<void> {
    return this.link.drained();
  }

  flush(): Promise<void> {
    return this.link.flushed();
  }

  /** The name is claimed in the handshake: a new connection named `subject` receives from here on. */
  async subscribe(subject: string, handler: Handler): Promise<void> {
    const named = await open(this.target, subject);
    this.watch(named, handler);
  }

  request(): Promise<Uint8Array> {
    return Promise.reject(new Error('the raw client has no request/reply (S1, S2 only)'));
  }

  respond(): Promise<void> {
    return Promise.reject(new Error('the raw client has no request/reply (S1, S2 only)'));
  }

  pauseReading(): void {
    for (const link of this.links) link.pause();
  }

  stats(): Record<string, number> {
    return { pressureFrames: this.pressureFrames, alarms: this.alarms };
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const link of this.links) link.close();
  }
}

export async function connectRaw(target: Target): Promise<BenchClient> {
  return new RawClient(target, await open(target, ''));
}
