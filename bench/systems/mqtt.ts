/**
 * Adapter for MQTT brokers (mosquitto, aedes), driven by mqtt.js (the `mqtt` npm package), MQTT 3.1.1, QoS 0.
 * Subjects map to topics with `.` → `/`.
 *
 * MQTT has no request/reply: it is emulated with a reply topic per requester. The requester subscribes to
 * `<subject>/r/<rid>` and writes a correlation id (bytes 0-3) and its rid (bytes 4-7) into the first 8 bytes
 * of the request payload; the responder publishes its answer (the echoed payload) to `<subject>/r/<rid>`.
 * So a round trip is two MQTT publishes, as in NATS (request + reply) and in this broker (Request + Reply).
 */
import mqtt, { type MqttClient } from 'mqtt';
import type { Target } from '../lib/common.js';
import type { BenchClient, Handler } from './client.js';

const topicOf = (subject: string): string => subject.replaceAll('.', '/');

class MqttBenchClient implements BenchClient {
  readonly lost: Promise<string>;
  private closing = false;
  private readonly handlers = new Map<string, Handler>();
  private readonly rid = (Math.random() * 0xffffffff) >>> 0;
  private nextCorrelation = 1;
  private readonly pending = new Map<number, (payload: Uint8Array) => void>();
  private replyTopics = new Set<string>();

  constructor(private readonly client: MqttClient) {
    client.on('message', (topic, payload) => this.handlers.get(topic)?.(payload));
    this.lost = new Promise((resolve) => {
      client.on('close', () => {
        if (!this.closing) resolve('closed by server');
      });
    });
  }

  publish(subject: string, payload: Uint8Array): boolean {
    this.client.publish(topicOf(subject), payload as Buffer, { qos: 0 });
    return !this.client.stream.writableNeedDrain;
  }

  drain(): Promise<void> {
    const stream = this.client.stream;
    if (!stream.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => stream.once('drain', () => resolve()));
  }

  flush(): Promise<void> {
    // An empty write's callback runs once everything queued before it was handed to the OS.
    return new Promise((resolve) => this.client.stream.write(Buffer.alloc(0), () => resolve()));
  }

  subscribe(subject: string, handler: Handler): Promise<void> {
    const topic = topicOf(subject);
    this.handlers.set(topic, handler);
    return new Promise((resolve, reject) => {
      this.client.subscribe(topic, { qos: 0 }, (error) => (error ? reject(error) : resolve()));
    });
  }

  async request(subject: string, payload: Uint8Array): Promise<Uint8Array> {
    const replyTopic = `${topicOf(subject)}/r/${this.rid}`;
    if (!this.replyTopics.has(replyTopic)) {
      this.replyTopics.add(replyTopic);
      this.handlers.set(replyTopic, (reply) => {
        const view = Buffer.from(reply.buffer, reply.byteOffset, reply.byteLength);
        const id = view.readUInt32BE(0);
        const resolve = this.pending.get(id);
        if (resolve !== undefined) {
          this.pending.delete(id);
          resolve(reply);
        }
      });
      await new Promise<void>((resolve, reject) => {
        this.client.subscribe(replyTopic, { qos: 0 }, (error) => (error ? reject(error) : resolve()));
      });
    }
    const id = this.nextCorrelation++ >>> 0;
    const body = Buffer.from(payload);
    body.writeUInt32BE(id, 0);
    body.writeUInt32BE(this.rid, 4);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error('mqtt request timeout'));
      }, 10_000);
      this.pending.set(id, (reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      this.client.publish(topicOf(subject), body, { qos: 0 });
    });
  }

  respond(subject: string, handler: (payload: Uint8Array) => Uint8Array): Promise<void> {
    const base = topicOf(subject);
    return this.subscribe(subject, (payload) => {
      const view = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
      const rid = view.readUInt32BE(4);
      this.client.publish(`${base}/r/${rid}`, handler(payload) as Buffer, { qos: 0 });
    });
  }

  stats(): Record<string, number> {
    return {};
  }

  pauseReading(): void {
    // mqtt.js pipes its socket into the packet parser: unpipe it, then pause.
    const stream = this.client.stream;
    stream.unpipe();
    stream.pause();
  }

  close(): Promise<void> {
    this.closing = true;
    return new Promise((resolve) => this.client.end(false, {}, () => resolve()));
  }
}

export async function connectMqtt(target: Target): Promise<BenchClient> {
  const client = mqtt.connect(`mqtt://${target.host}:${target.port}`, {
    protocolVersion: 4,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: 20_000,
    keepalive: 60,
  });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  return new MqttBenchClient(client);
}
