/** Responder role: answers every request on `subject` with the request's payload (an echo), until 'stop'. */
import { connectClient, type BenchClient } from '../systems/client.js';
import { runRole, roleConfig, stopped, type Target } from '../lib/common.js';

interface Config {
  target: Target;
  subject: string;
}

const config = roleConfig<Config>();
let client: BenchClient;
let answered = 0;

async function prepare(): Promise<void> {
  client = await connectClient(config.target);
  await client.respond(config.subject, (payload) => {
    answered++;
    return payload;
  });
}

async function run(): Promise<Record<string, unknown>> {
  await stopped;
  void client.close().catch(() => {});
  return { answered };
}

void runRole(prepare, run);
