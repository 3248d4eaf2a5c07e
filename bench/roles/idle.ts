/**
 * Idle-connection holder (S4): opens `connections` clients, `concurrency` handshakes at a time, reports ready
 * once all are open, then holds them without traffic (the clients' own heartbeats aside) until 'stop'.
 */
import { connectClient, type BenchClient } from '../systems/client.js';
import { runRole, roleConfig, stopped, type Target } from '../lib/common.js';

interface Config {
  target: Target;
  connections: number;
  concurrency: number;
}

const config = roleConfig<Config>();
const clients: BenchClient[] = [];
let lost = 0;

async function prepare(): Promise<void> {
  let next = 0;
  const opener = async (): Promise<void> => {
    while (next < config.connections) {
      next++;
      const client = await connectClient(config.target);
      void client.lost.then(() => lost++);
      clients.push(client);
    }
  };
  const openers: Promise<void>[] = [];
  for (let i = 0; i < config.concurrency; i++) openers.push(opener());
  await Promise.all(openers);
}

async function run(): Promise<Record<string, unknown>> {
  await stopped;
  const open = clients.length - lost;
  await Promise.all(clients.map((c) => c.close().catch(() => {})));
  return { open, lost };
}

void runRole(prepare, run);
