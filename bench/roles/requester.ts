/**
 * Requester role: `count` requests of `payloadSize` bytes to `subject`, `inFlight` at a time (1: sequential),
 * each timed from send to reply. Reports the rate and the latency percentiles.
 */
import { connectClient, type BenchClient } from '../systems/client.js';
import { now, percentile, runRole, roleConfig, stopped, type Target } from '../lib/common.js';

interface Config {
  target: Target;
  subject: string;
  count: number;
  inFlight: number;
  payloadSize: number;
}

const config = roleConfig<Config>();
let client: BenchClient;
let stop = false;
void stopped.then(() => (stop = true));

async function prepare(): Promise<void> {
  client = await connectClient(config.target);
  // One warm-up round trip (MQTT: subscribes the reply topic; all: checks the responder is there).
  await client.request(config.subject, Buffer.alloc(config.payloadSize, 0x61));
}

async function run(): Promise<Record<string, unknown>> {
  const latencies = new Float64Array(config.count);
  let issued = 0;
  let completed = 0;
  let errors = 0;
  let firstError = '';
  const startAt = now();
  const worker = async (): Promise<void> => {
    const payload = Buffer.alloc(config.payloadSize, 0x61);
    while (issued < config.count && !stop) {
      issued++;
      const t0 = now();
      try {
        await client.request(config.subject, payload);
        latencies[completed++] = now() - t0;
      } catch (error) {
        errors++;
        if (firstError === '') firstError = error instanceof Error ? error.message : String(error);
      }
    }
  };
  const workers: Promise<void>[] = [];
  for (let i = 0; i < config.inFlight; i++) workers.push(worker());
  await Promise.all(workers);
  const endAt = now();
  const sorted = latencies.subarray(0, completed).sort();
  let sum = 0;
  for (let i = 0; i < completed; i++) sum += sorted[i]!;
  void client.close().catch(() => {});
  return {
    completed,
    errors,
    firstError,
    startAt,
    endAt,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    // The tail's shape, for the p99 analysis in results.md (not shown in the report's tables).
    p90Ms: percentile(sorted, 90),
    p95Ms: percentile(sorted, 95),
    p999Ms: percentile(sorted, 99.9),
    meanMs: completed > 0 ? sum / completed : Number.NaN,
  };
}

void runRole(prepare, run);
