/**
 * The CLI's config resolution: flags, environment, file and defaults with flag > env > file > defaults,
 * called directly (the real process is exercised in test/integration/ops-cli.test.ts).
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkConfigFile, configFromOptions, flagsPartial, resolveFromOptions, version } from '../../src/cli/main.js';
import { ConfigError, resolveConfig } from '../../src/config/load.js';
import { DEFAULT_CONFIG } from '../../src/config/schema.js';

const dir = mkdtempSync(join(tmpdir(), 'socketd-cli-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function configErrorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error;
  }
  return assert.fail('no ConfigError');
}

const FILE_TEXT = 'listeners:\n  tcp: { port: 1111 }\n  udp: { port: 2221 }\nhttp:\n  port: 4441\nlog:\n  level: warn\nlimits:\n  maxData: 5000\n';

test('no flags, no env, no file: the defaults', () => {
  assert.deepEqual(configFromOptions({}), DEFAULT_CONFIG);
  const resolved = resolveFromOptions({});
  assert.equal(resolved.file, null);
  assert.deepEqual(resolved.warnings, []);
});

test('flagsPartial: only the flags given', () => {
  assert.deepEqual(flagsPartial({}), {});
  assert.deepEqual(flagsPartial({ tcp: 0, http: 9 }), { listeners: { tcp: { port: 0 } }, http: { port: 9 } });
  assert.deepEqual(flagsPartial({ logLevel: 'debug', logPretty: true, ws: 3, udp: 4 }), {
    listeners: { udp: { port: 4 }, ws: { port: 3 } }, log: { level: 'debug', pretty: true },
  });
  assert.deepEqual(flagsPartial({ logPretty: false }), {}, '--log-pretty absent does not force false');
});

test('file > defaults', () => {
  const path = file('a.yaml', FILE_TEXT);
  const config = configFromOptions({ config: path });
  assert.equal(config.listeners.tcp.port, 1111);
  assert.equal(config.listeners.ws.port, 8604, 'not in the file: default');
  assert.equal(config.log.level, 'warn');
  assert.equal(config.limits.maxData, 5000);
});

test('env > file', () => {
  const path = file('b.yaml', FILE_TEXT);
  const config = configFromOptions({ config: path }, { SOCKETD_TCP_PORT: '1112', SOCKETD_LIMITS__MAX_DATA: '6000', SOCKETD_LOG_LEVEL: 'error' });
  assert.equal(config.listeners.tcp.port, 1112);
  assert.equal(config.listeners.udp.port, 2221, 'file value where env is silent');
  assert.equal(config.limits.maxData, 6000);
  assert.equal(config.log.level, 'error');
});

test('flag > env > file > defaults, key by key', () => {
  const path = file('c.yaml', FILE_TEXT);
  const config = configFromOptions(
    { config: path, tcp: 1113, logLevel: 'debug' },
    { SOCKETD_TCP_PORT: '1112', SOCKETD_UDP_PORT: '2222', SOCKETD_LOG_LEVEL: 'error' },
  );
  assert.equal(config.listeners.tcp.port, 1113, 'flag over env and file');
  assert.equal(config.listeners.udp.port, 2222, 'env over file');
  assert.equal(config.http.port, 4441, 'file over defaults');
  assert.equal(config.listeners.ws.port, 8604, 'defaults');
  assert.equal(config.log.level, 'debug', 'flag over env and file');
});

test('SOCKETD_CONFIG picks the file unless --config is given', () => {
  const a = file('d.yaml', 'http:\n  port: 5001\n');
  const b = file('e.yaml', 'http:\n  port: 5002\n');
  assert.equal(configFromOptions({}, { SOCKETD_CONFIG: a }).http.port, 5001);
  assert.equal(configFromOptions({ config: b }, { SOCKETD_CONFIG: a }).http.port, 5002);
  assert.equal(resolveFromOptions({}, { SOCKETD_CONFIG: a }).file, a);
});

test('--log-pretty and SOCKETD_LOG_PRETTY', () => {
  assert.equal(configFromOptions({ logPretty: true }).log.pretty, true);
  assert.equal(configFromOptions({}, { SOCKETD_LOG_PRETTY: 'true' }).log.pretty, true);
  assert.equal(configFromOptions({}).log.pretty, false);
});

test('the admin token from the environment', () => {
  assert.equal(configFromOptions({}, { SOCKETD_ADMIN_TOKEN: 'abc' }).http.adminToken, 'abc');
});

test('errors name their layer: file, environment, command line', () => {
  const bad = file('bad.yaml', 'limits:\n  maxData: lots\n');
  const fromFile = configErrorOf(() => configFromOptions({ config: bad }));
  assert.equal(fromFile.source, bad);
  assert.deepEqual(fromFile.problems, ['limits.maxData: expected an integer, got string "lots"']);

  const fromEnv = configErrorOf(() => configFromOptions({}, { SOCKETD_HTTP_PORT: 'x' }));
  assert.equal(fromEnv.source, 'environment');
  assert.deepEqual(fromEnv.problems, ['SOCKETD_HTTP_PORT: http.port: expected an integer, got string "x"']);

  const fromFlags = configErrorOf(() => configFromOptions({ logLevel: 'loud' }));
  assert.equal(fromFlags.source, 'command line');
  assert.match(fromFlags.problems[0], /^log\.level: expected one of/);

  const missing = configErrorOf(() => configFromOptions({ config: join(dir, 'missing.yaml') }));
  assert.deepEqual(missing.problems, ['cannot read the file: ENOENT (no such file)']);
});

test('cross-field checks run on the merged layers', () => {
  const path = file('f.yaml', 'limits:\n  maxFrame: 100000\n  maxData: 50000\n');
  // Valid in the file; the environment raises maxData past maxFrame.
  const error = configErrorOf(() => configFromOptions({ config: path }, { SOCKETD_LIMITS__MAX_DATA: '200000' }));
  assert.equal(error.source, `${path} + environment`);
  assert.deepEqual(error.problems, ['limits.maxData (200000) may not exceed limits.maxFrame (100000)']);
  // And a later layer can repair what an earlier one alone would break.
  const repaired = resolveConfig({ file: path, env: { SOCKETD_LIMITS__MAX_FRAME: '300000', SOCKETD_LIMITS__MAX_DATA: '200000' } });
  assert.equal(repaired.config.limits.maxData, 200000);
});

test('ignored SOCKETD_* names come back as warnings', () => {
  const resolved = resolveFromOptions({}, { SOCKETD_BROKER_SERVICE_HOST: '10.0.0.1' });
  assert.equal(resolved.warnings.length, 1);
  assert.deepEqual(resolved.config, DEFAULT_CONFIG);
});

test('checkConfigFile: ok on stdout and 0; every problem with its path on stderr and 1', () => {
  const good = file('good.yaml', 'log:\n  level: debug\n');
  const out: string[] = [];
  const err: string[] = [];
  assert.equal(checkConfigFile(good, (l) => out.push(l), (l) => err.push(l)), 0);
  assert.deepEqual(out, [`${good}: ok`]);
  assert.deepEqual(err, []);

  const bad = file('bad2.yaml', 'foo: 1\nlimits:\n  maxSid: 100\nlog:\n  level: loud\n');
  const out2: string[] = [];
  const err2: string[] = [];
  assert.equal(checkConfigFile(bad, (l) => out2.push(l), (l) => err2.push(l)), 1);
  assert.deepEqual(out2, []);
  assert.deepEqual(err2, [
    `${bad}: foo: unknown key (known: listeners, http, limits, timeouts, flow, fastPaths, log, shutdown, access, namespaces, cluster)`,
    `${bad}: limits.maxSid: 100 is outside 1..64`,
    `${bad}: log.level: expected one of fatal, error, warn, info, debug, trace, silent, got string "loud"`,
    `${bad}: invalid (3 problems)`,
  ]);
});

test('version() is package.json\'s', async () => {
  const { readFileSync } = await import('node:fs');
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  assert.equal(version(), pkg.version);
});
