/**
 * Publisher role: one client publishes `count` messages of `payloadSize` bytes to `subject` as fast as the
 * client's flow control allows, or until `durationMs` has passed (0: no time bound), then flushes.
 */
import { connectClient, type BenchClient } from '../systems/client.js';
import { now, runRole, roleConfig, stopped, type Target } from '../lib/common.js';

interface Config {
  target: Target;
  subject: string;
  count: number;
  payloadSize: number;
  durationMs: number;
}

const config = roleConfig<Config>();
let client: BenchClient;
let stop = false;
void stopped.then(() => (stop = true));

async function prepare(): Promise<void> {
  client = await connectClient(config.target);
}

async function run(): Promise<Record<string, unknown>> {
  const payload = Buffer.alloc(config.payloadSize, 0x61);
  const startAt = now();
  const deadline = config.durationMs > 0 ? startAt + config.durationMs : Number.POSITIVE_INFINITY;
  let sent = 0;
  let timedOut = false;
  let drainWaits = 0;
  let drainMs = 0;
  const deadlineHit = config.durationMs > 0 ? new Promise<void>((resolve) => setTimeout(resolve, config.durationMs)) : null;
  while (sent < config.count) {
    const more = client.publish(config.subject, payload);
    sent++;
    if (!more) {
      const t = now();
      const drained = client.drain();
      await (deadlineHit !== null ? Promise.race([drained, deadlineHit, stopped]) : Promise.race([drained, stopped]));
      drainWaits++;
      drainMs += now() - t;
    }
    if ((!more || (sent & 255) === 0) && (stop || now() > deadline)) {
      timedOut = !stop;
      break;
    }
  }
  const sentAt = now();
  if (!stop) await Promise.race([client.flush(), deadlineHit ?? stopped, stopped]);
  const endAt = now();
  void client.close().catch(() => {});
  return { sent, startAt, sentAt, endAt, bytes: sent * config.payloadSize, timedOut, drainWaits, drainMs, ...client.stats() };
}

void runRole(prepare, run);
