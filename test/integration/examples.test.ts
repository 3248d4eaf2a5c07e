/**
 * examples/im-chat.mjs (--demo) and examples/mq-workers.mjs run as their READMEs say, as child processes
 * against a port-0 broker, and print what they should.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { eventually, ports, startTestBroker } from '../support/broker.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function runExample(script: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(ROOT, 'examples', script), ...args], {
      cwd: ROOT,
      timeout: 60_000,
      env: { ...process.env, ...env },
    }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

test('examples/im-chat.mjs --demo: rooms, presence and private messages between two clients', { timeout: 90_000 }, async () => {
  const broker = await startTestBroker();
  try {
    const run = await runExample('im-chat.mjs', ['--demo', '--url', `sd:tcp://127.0.0.1:${ports(broker).tcp}`]);
    assert.equal(run.code, 0, `exit code; stdout:\n${run.stdout}\nstderr:\n${run.stderr}`);
    const lines = run.stdout.split('\n');
    for (const line of [
      'alice | * you joined #lobby',
      'bob   | * you joined #lobby',
      'alice | * bob joined #lobby',
      'alice | * in #lobby: alice, bob',
      'bob   | [#lobby] alice: hi bob, welcome to the lobby',
      'alice | [#lobby] bob: thanks alice!',
      'alice | [private] bob: psst, this one is just for you',
      'bob   | [private] alice: got it',
      'bob   | * alice left #lobby',
      'bob   | * in #lobby: bob',
      'demo: done',
    ]) {
      assert.ok(lines.includes(line), `prints '${line}':\n${run.stdout}`);
    }
    await eventually(() => broker.broker.sessionCount === 0, 10_000, 'both clients closed');
  } finally {
    await broker.close();
  }
});

test('examples/im-chat.mjs --demo over ws, the url from SOCKETD_URL', { timeout: 90_000 }, async () => {
  const broker = await startTestBroker();
  try {
    const run = await runExample('im-chat.mjs', ['--demo'], { SOCKETD_URL: `sd:ws://127.0.0.1:${ports(broker).ws}/` });
    assert.equal(run.code, 0, `exit code; stdout:\n${run.stdout}\nstderr:\n${run.stderr}`);
    assert.match(run.stdout, /^demo: two clients on sd:ws:\/\/127\.0\.0\.1:\d+\/$/m);
    assert.match(run.stdout, /^demo: done$/m);
  } finally {
    await broker.close();
  }
});

test('examples/mq-workers.mjs: every job answered once, spread over the queue group', { timeout: 90_000 }, async () => {
  const broker = await startTestBroker();
  try {
    const run = await runExample('mq-workers.mjs', ['--url', `sd:tcp://127.0.0.1:${ports(broker).tcp}`, '--workers', '3', '--jobs', '60']);
    assert.equal(run.code, 0, `exit code; stdout:\n${run.stdout}\nstderr:\n${run.stderr}`);
    assert.match(run.stdout, /^mq-workers: 60\/60 jobs answered in \d+ ms$/m);
    const counts = [...run.stdout.matchAll(/^ {2}(worker-\d+) +(\d+) jobs/gm)].map((m) => [m[1], Number(m[2])] as const);
    assert.deepEqual(counts.map(([name]) => name), ['worker-1', 'worker-2', 'worker-3']);
    assert.equal(counts.reduce((sum, [, n]) => sum + n, 0), 60, 'each job done exactly once');
    assert.ok(counts.filter(([, n]) => n > 0).length >= 2, `the group spreads the jobs: ${JSON.stringify(counts)}`);
    assert.match(run.stdout, /^mq-workers: total 60, by \d of 3 workers$/m);
    assert.match(run.stdout, /^mq-workers: done$/m);
    await eventually(() => broker.broker.sessionCount === 0, 10_000, 'every client closed');
  } finally {
    await broker.close();
  }
});

test('the examples fail with exit code 1 and a message when no broker listens', { timeout: 90_000 }, async () => {
  const broker = await startTestBroker();
  const port = ports(broker).tcp;
  await broker.close();
  for (const script of ['im-chat.mjs', 'mq-workers.mjs']) {
    const run = await runExample(script, ['--demo', '--url', `sd:tcp://127.0.0.1:${port}`]);
    assert.equal(run.code, 1, `${script}: ${run.stdout}${run.stderr}`);
    assert.match(run.stderr, /connect_failed|Cannot open/, script);
  }
});
