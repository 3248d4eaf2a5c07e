/**
 * Stalled subscriber role (S6): one client subscribes and reads like the others until 'stall', then stops
 * reading from its socket for good (the adapter's pauseReading). Reports whether and when the server cut it off.
 */
import { connectClient, type BenchClient } from '../systems/client.js';
import { now, runRole, roleConfig, stallOrdered, stopped, type Target } from '../lib/common.js';

interface Config {
  target: Target;
  subject: string;
}

const config = roleConfig<Config>();
let client: BenchClient;
let received = 0;
let stalledAt = 0;
let lostAt = 0;
let lostReason = '';

async function prepare(): Promise<void> {
  client = await connectClient(config.target);
  await client.subscribe(config.subject, () => {
    received++;
  });
  void client.lost.then((reason) => {
    lostAt = now();
    lostReason = reason;
  });
}

async function run(): Promise<Record<string, unknown>> {
  await Promise.race([stallOrdered, stopped]);
  const receivedBeforeStall = received;
  client.pauseReading();
  stalledAt = now();
  await stopped;
  const result = { receivedBeforeStall, stalledAt, disconnected: lostAt > 0, lostAt, lostReason };
  void client.close().catch(() => {});
  return result;
}

void runRole(prepare, run);
