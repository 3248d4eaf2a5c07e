/**
 * The one client interface the roles drive, so every scenario is written once. Each system has an adapter:
 * socketd.ts (our SDK, tcp and ws), nats.ts (nats.js) and mqtt.ts (mqtt.js, for mosquitto and aedes).
 * Subjects are dot-separated (`bench.s1`); adapters map them to their system's syntax.
 */
import type { Target } from '../lib/common.js';

export type Handler = (payload: Uint8Array) => void;

export interface BenchClient {
  /** Queues one message. Returns false when the caller should `await drain()` before publishing more. */
  publish(subject: string, payload: Uint8Array): boolean;
  /** Resolves when more may be published (client-side flow control). */
  drain(): Promise<void>;
  /** Resolves once everything published so far has left the process (NATS: reached the server). */
  flush(): Promise<void>;
  /** Resolves once the server confirmed the subscription. */
  subscribe(subject: string, handler: Handler): Promise<void>;
  /** One request, resolved with the reply's payload. */
  request(subject: string, payload: Uint8Array): Promise<Uint8Array>;
  /** Answers every request on `subject` with handler(payload). */
  respond(subject: string, handler: (payload: Uint8Array) => Uint8Array): Promise<void>;
  /** Stops reading from the socket for good (the stalled subscriber of S6). */
  pauseReading(): void;
  /** Client-side counters worth reporting (e.g. Pressure frames received). */
  stats(): Record<string, number>;
  /** Resolves with a reason when the connection ends other than by close(). */
  readonly lost: Promise<string>;
  close(): Promise<void>;
}

export async function connectClient(target: Target): Promise<BenchClient> {
  switch (target.system) {
    case 'socketd-tcp':
    case 'socketd-ws':
      return (await import('./socketd.js')).connectSocketd(target);
    case 'nats':
      return (await import('./nats.js')).connectNats(target);
    case 'mosquitto':
    case 'aedes':
      return (await import('./mqtt.js')).connectMqtt(target);
    case 'socketd-raw-tcp':
    case 'socketd-raw-ws':
      return (await import('./raw.js')).connectRaw(target);
  }
}
