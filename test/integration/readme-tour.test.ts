import test from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startTestBroker, ports } from '../support/broker.js';

const run = promisify(execFile);

test('the README tour (examples/tour.mjs) prints the request and its reply', async () => {
  const server = await startTestBroker();
  try {
    const p = ports(server);
    const tour = fileURLToPath(new URL('../../../examples/tour.mjs', import.meta.url));
    const { stdout } = await run(process.execPath, [tour, '127.0.0.1', String(p.tcp), String(p.ws)], { timeout: 10_000 });
    assert.match(stdout, /svc {2}got request 'hello' data='req-1'/);
    assert.match(stdout, /caller got ReplyEnd data='re:req-1'/);
  } finally {
    await server.close();
  }
});
