/**
 * A broker loads the code of optional features only when they are configured: jose with access.jwt, ioredis
 * with cluster.redis. Everything a process loads stays in its heap, and every major GC walks the heap, so a
 * single node without JWT pays for neither (bench/results.md, "Heap at start"). The probe starts a real broker
 * on port 0 in a child process and records every module it loaded.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { modulesLoadedBy } from '../support/load-trace.js';

const dir = mkdtempSync(join(tmpdir(), 'socketd-lazy-deps-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const dist = (path: string): string => new URL(`../../src/${path}`, import.meta.url).href;

/** A module that starts a broker with `partial` over the defaults (listeners on port 0), then stops it. */
function starter(name: string, partial: object): string {
  const file = join(dir, `${name}.mjs`);
  writeFileSync(file, `import { configFrom } from ${JSON.stringify(dist('config/load.js'))};
import { startServer } from ${JSON.stringify(dist('server.js'))};
const local = { host: '127.0.0.1', port: 0 };
const config = configFrom({ listeners: { tcp: local, udp: local, ws: local }, http: local, log: { level: 'warn' }, ...${JSON.stringify(partial)} });
const server = await startServer(config);
if (server.addresses.tcp === undefined) throw new Error('no tcp listener');
await server.close(0);
`);
  return pathToFileURL(file).href;
}

const loads = (loaded: readonly string[], pkg: string): boolean => loaded.some((u) => u.includes(`/node_modules/${pkg}/`));

test('a broker with the default config loads neither jose nor ioredis', () => {
  const loaded = modulesLoadedBy(starter('defaults', {}), dir);
  assert.ok(loaded.includes(dist('server.js')), 'the probe traced the server');
  assert.ok(loads(loaded, 'ws'), 'the ws package is traced (the check sees packages)');
  assert.equal(loads(loaded, 'jose'), false, 'jose loaded without access.jwt');
  assert.equal(loads(loaded, 'ioredis'), false, 'ioredis loaded without cluster.redis');
  assert.equal(loaded.includes(dist('broker/auth/jwt.js')), false);
  assert.equal(loaded.includes(dist('cluster/redis-bus.js')), false);
});

test('the check can fail: a broker with access.jwt loads jose', () => {
  const loaded = modulesLoadedBy(starter('jwt', { access: { jwt: { secret: 'a-secret-of-thirty-two-bytes-or-more!!' } } }), dir);
  assert.ok(loads(loaded, 'jose'), 'jose is loaded when access.jwt is configured');
  assert.ok(loaded.includes(dist('broker/auth/jwt.js')));
  assert.equal(loads(loaded, 'ioredis'), false);
});
