/**
 * The client SDK stays thin (docs/client.md, "Install"): importing it loads none of the broker's modules and
 * none of the server-side dependencies (pino, pino-pretty, prom-client, commander, yaml). Checked on the
 * compiled entry points in dist/src; test/package/package.test.ts checks the same on the installed tarball.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clientViolations, modulesLoadedBy } from '../support/load-trace.js';

const dir = mkdtempSync(join(tmpdir(), 'socketd-client-thin-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const entry = (path: string): string => new URL(`../../src/${path}`, import.meta.url).href;

test('socketd-broker/client loads the SDK, the protocol, the transports and ws, and nothing of the broker', () => {
  const loaded = modulesLoadedBy(entry('client/index.js'), dir);
  assert.ok(loaded.includes(entry('client/index.js')), 'the entry itself is traced');
  assert.ok(loaded.includes(entry('protocol/codec.js')), 'the codec is traced');
  assert.ok(loaded.some((u) => u.includes('/node_modules/ws/')), 'ws, a CommonJS dependency, is traced');
  assert.deepEqual(clientViolations(loaded), []);
});

test('socketd-broker/protocol loads nothing of the broker either', () => {
  const loaded = modulesLoadedBy(entry('protocol/index.js'), dir);
  assert.ok(loaded.includes(entry('protocol/index.js')));
  assert.deepEqual(clientViolations(loaded), []);
  assert.equal(loaded.some((u) => u.includes('/node_modules/')), false, `no package at all: ${loaded.join(' ')}`);
});

test('the check can fail: the main entry (the server) loads pino, prom-client, yaml and the broker', () => {
  const loaded = modulesLoadedBy(entry('index.js'), dir);
  const violations = clientViolations(loaded).map((v) => v.slice(0, v.indexOf(':')));
  for (const what of ['the pino package', 'the prom-client package', 'the yaml package', 'dist/src/broker/', 'dist/src/index.js']) {
    assert.ok(violations.includes(what), `${what} in ${violations.join(', ')}`);
  }
});
