/**
 * Subscriber role: `connections` clients subscribe to `subject` and count deliveries. Reports once every
 * client has received `expected` messages (0: until 'stop'), or on 'stop'. Sends progress every 200 ms.
 */
import { connectClient, type BenchClient } from '../systems/client.js';
import { now, runRole, roleConfig, stopped, tell, type Target } from '../lib/common.js';

interface Config {
  target: Target;
  subject: string;
  connections: number;
  expected: number;
}

const config = roleConfig<Config>();
const clients: BenchClient[] = [];
const counts: number[] = [];
const lost: string[] = [];
let total = 0;
let bytes = 0;
let firstAt = 0;
let lastAt = 0;
let complete = 0;
let done: () => void = () => {};
const allDone = new Promise<void>((resolve) => (done = resolve));

async function prepare(): Promise<void> {
  for (let i = 0; i < config.connections; i++) {
    const client = await connectClient(config.target);
    counts.push(0);
    await client.subscribe(config.subject, (payload) => {
      const n = ++counts[i]!;
      total++;
      bytes += payload.byteLength;
      const t = now();
      if (firstAt === 0) firstAt = t;
      lastAt = t;
      if (n === config.expected && ++complete === config.connections) done();
    });
    void client.lost.then((reason) => lost.push(reason));
    clients.push(client);
  }
}

async function run(): Promise<Record<string, unknown>> {
  const progress = setInterval(() => tell({ type: 'progress', at: now(), count: total, bytes }), 200);
  await Promise.race([config.expected > 0 ? allDone : new Promise(() => {}), stopped]);
  clearInterval(progress);
  tell({ type: 'progress', at: now(), count: total, bytes });
  const result = { received: total, bytes, firstAt, lastAt, perConnection: counts, lost };
  for (const client of clients) void client.close().catch(() => {});
  return result;
}

void runRole(prepare, run);
