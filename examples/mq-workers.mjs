#!/usr/bin/env node
// An MQ worker pool on the client SDK: N workers subscribe to `jobs.>` in one queue group, so the broker hands
// each job to exactly one of them; a producer sends the jobs with request() and waits for every answer, then
// prints how many jobs each worker did. It exits 0 once every job is answered (1 if any failed).
//
//   npm start                                   # terminal 1: the broker
//   node examples/mq-workers.mjs                # terminal 2: 4 workers, 40 jobs
//   node examples/mq-workers.mjs --workers 8 --jobs 1000 --concurrency 64
//
// Options: --url URL (or SOCKETD_URL; default sd:tcp://127.0.0.1:8602), --workers N (4), --jobs N (40),
// --concurrency N (jobs in flight at once, 16), --demo (the default run, kept for symmetry with im-chat).
import { parseArgs } from 'node:util';
import { connect, json } from '../dist/src/client/index.js';

const { values, positionals } = parseArgs({
  options: {
    url: { type: 'string' },
    workers: { type: 'string', default: '4' },
    jobs: { type: 'string', default: '40' },
    concurrency: { type: 'string', default: '16' },
    demo: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
  allowPositionals: true,
});
if (values.help) {
  console.log('usage: node examples/mq-workers.mjs [--url sd:tcp://127.0.0.1:8602] [--workers 4] [--jobs 40] [--concurrency 16]');
  process.exit(0);
}
const url = values.url ?? positionals[0] ?? process.env.SOCKETD_URL ?? 'sd:tcp://127.0.0.1:8602';
const positive = (text, what) => {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${what} must be a positive integer, got '${text}'`);
  return n;
};
const workerCount = positive(values.workers, 'workers');
const jobCount = positive(values.jobs, 'jobs');
const concurrency = positive(values.concurrency, 'concurrency');
const GROUP = 'resizers';
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  console.log(`mq-workers: ${workerCount} workers in group '${GROUP}', ${jobCount} jobs, on ${url}`);

  // The workers: one connection each, one queue-group subscription each. on() resolves once the broker has it.
  const workers = [];
  for (let i = 1; i <= workerCount; i++) {
    const name = `worker-${i}`;
    const client = await connect(url, { name: `mq-${name}` });
    const worker = { name, client };
    await client.on('jobs.>', async (msg) => {
      const job = msg.json();
      await sleep(1 + Math.floor(Math.random() * 10)); // the "work"
      msg.reply(json({ id: job.id, worker: name, result: job.width * job.height }));
    }, { group: GROUP });
    workers.push(worker);
  }
  console.log(`mq-workers: ${workers.map((w) => w.name).join(', ')} ready`);

  // The producer: request() per job, at most `concurrency` in flight; every answer names its worker.
  const producer = await connect(url, { name: 'mq-producer' });
  const answeredBy = new Map();
  const failures = [];
  let next = 0;
  const started = Date.now();
  const lane = async () => {
    while (next < jobCount) {
      const id = ++next;
      const job = { id, width: id, height: 2 };
      try {
        const reply = await producer.request(`jobs.resize.${id % 3 === 0 ? 'large' : 'small'}`, json(job), { timeout: 10_000 });
        const answer = reply.json();
        if (answer.id !== id || answer.result !== id * 2) throw new Error(`wrong answer ${reply.text()}`);
        answeredBy.set(answer.worker, (answeredBy.get(answer.worker) ?? 0) + 1);
      } catch (error) {
        failures.push(`job ${id}: ${error.message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, jobCount) }, lane));
  const ms = Date.now() - started;

  console.log(`mq-workers: ${jobCount - failures.length}/${jobCount} jobs answered in ${ms} ms`);
  for (const w of workers) {
    const count = answeredBy.get(w.name) ?? 0;
    console.log(`  ${w.name.padEnd(10)} ${String(count).padStart(5)} jobs ${'#'.repeat(Math.round((40 * count) / jobCount))}`);
  }
  for (const failure of failures) console.log(`  failed: ${failure}`);
  const total = [...answeredBy.values()].reduce((a, b) => a + b, 0);
  console.log(`mq-workers: total ${total}, by ${answeredBy.size} of ${workerCount} workers`);

  await producer.close();
  await Promise.all(workers.map((w) => w.client.close()));
  return failures.length === 0 && total === jobCount;
}

try {
  const ok = await main();
  console.log(ok ? 'mq-workers: done' : 'mq-workers: FAILED');
  process.exitCode = ok ? 0 : 1;
} catch (error) {
  console.error(`mq-workers: ${error.message}`);
  process.exit(1);
}
