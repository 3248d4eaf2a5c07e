/**
 * SOCKETD_* environment overrides: aliases, the generic SECTION__KEY form, YAML scalar values, problems
 * naming the variable, ignored names.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { ENV_ALIASES, configFromEnv, envNameOf } from '../../src/config/env.js';
import { SCHEMA } from '../../src/config/schema.js';

test('aliases set their keys', () => {
  const env = configFromEnv({
    SOCKETD_TCP_PORT: '1001', SOCKETD_UDP_PORT: '1002', SOCKETD_WS_PORT: '1003', SOCKETD_HTTP_PORT: '1004',
    SOCKETD_LOG_LEVEL: 'debug', SOCKETD_LOG_PRETTY: 'true', SOCKETD_ADMIN_TOKEN: 's3cret',
  });
  assert.deepEqual(env.problems, []);
  assert.deepEqual(env.warnings, []);
  assert.deepEqual(env.partial, {
    listeners: { tcp: { port: 1001 }, udp: { port: 1002 }, ws: { port: 1003 } },
    http: { port: 1004, adminToken: 's3cret' },
    log: { level: 'debug', pretty: true },
  });
});

test('SOCKETD_CONFIG names the file, not a key', () => {
  const env = configFromEnv({ SOCKETD_CONFIG: '/etc/x.yaml' });
  assert.equal(env.configFile, '/etc/x.yaml');
  assert.deepEqual(env.partial, {});
});

test('generic form: SECTION__KEY, words by _, case-insensitive, three levels', () => {
  const env = configFromEnv({
    SOCKETD_LIMITS__MAX_DATA: '1000',
    SOCKETD_LISTENERS__TCP__HOST: '127.0.0.1',
    SOCKETD_FAST_PATHS__MATCH_CACHE_SIZE: '0',
    socketd_ignored_lowercase: 'x',
    SOCKETD_shutdown__drainms: '250',
    SOCKETD_FLOW__SLOW_CONSUMER_POLICY: 'drop',
  });
  assert.deepEqual(env.problems, []);
  assert.deepEqual(env.partial, {
    limits: { maxData: 1000 },
    listeners: { tcp: { host: '127.0.0.1' } },
    fastPaths: { matchCacheSize: 0 },
    shutdown: { drainMs: 250 },
    flow: { slowConsumerPolicy: 'drop' },
  });
});

test('values are YAML scalars for numbers and booleans, raw text for strings and enums', () => {
  const env = configFromEnv({
    SOCKETD_LIMITS__MAX_META: '0x400',
    SOCKETD_FAST_PATHS__FORWARD_MESSAGE_BYTES: 'false',
    SOCKETD_ADMIN_TOKEN: '0123',
    SOCKETD_HTTP__HOST: 'true',
  });
  assert.deepEqual(env.problems, []);
  assert.deepEqual(env.partial, {
    limits: { maxMeta: 1024 },
    fastPaths: { forwardMessageBytes: false },
    http: { adminToken: '0123', host: 'true' },
  });
});

test('an empty value counts as unset', () => {
  const env = configFromEnv({ SOCKETD_TCP_PORT: '', SOCKETD_LIMITS__MAX_DATA: '' });
  assert.deepEqual(env.partial, {});
  assert.deepEqual(env.problems, []);
});

test('a bad value names the variable and the key path', () => {
  const env = configFromEnv({ SOCKETD_LIMITS__MAX_DATA: 'lots', SOCKETD_TCP_PORT: '70000', SOCKETD_LOG_LEVEL: 'loud', SOCKETD_LOG_PRETTY: 'yes' });
  assert.deepEqual(env.problems.sort(), [
    'SOCKETD_LIMITS__MAX_DATA: limits.maxData: expected an integer, got string "lots"',
    'SOCKETD_LOG_LEVEL: log.level: expected one of fatal, error, warn, info, debug, trace, silent, got string "loud"',
    'SOCKETD_LOG_PRETTY: log.pretty: expected true or false, got string "yes"',
    'SOCKETD_TCP_PORT: listeners.tcp.port: 70000 is outside 0..65535',
  ]);
  assert.deepEqual(env.partial, {});
});

test('an unknown generic key is a problem; a section or too deep a path too', () => {
  const env = configFromEnv({ SOCKETD_LIMITS__MAX_DATTA: '1', SOCKETD_NOPE__X: '1', SOCKETD_LIMITS__: '1', SOCKETD_LIMITS__MAX_DATA__X: '1', SOCKETD_LISTENERS__TCP: '1' });
  assert.deepEqual(env.problems.sort(), [
    'SOCKETD_LIMITS__: an empty name between `__` separators',
    'SOCKETD_LIMITS__MAX_DATA__X: limits.maxData is a single value, it has no key x',
    'SOCKETD_LIMITS__MAX_DATTA: unknown key: limits has no max_datta (known: maxSid, maxEvent, maxMeta, maxData, maxFrame, udpMaxDatagram, maxStreamsPerSession, maxFragmentRoutesPerSession, maxSubscriptionsPerSession, maxConnections, maxConnectionsPerIp, handshakesPerSecond, framesPerSecond)',
    'SOCKETD_LISTENERS__TCP: listeners.tcp is a section: name one of its keys (enabled, host, port, detectPythonFraming)',
    'SOCKETD_NOPE__X: unknown key: the config has no nope (known: listeners, http, limits, timeouts, flow, fastPaths, log, shutdown, access, namespaces, cluster)',
  ]);
});

test('other SOCKETD_* names without __ are ignored with a warning (Kubernetes service links)', () => {
  const env = configFromEnv({ SOCKETD_BROKER_PORT: 'tcp://10.0.0.1:8602', SOCKETD_BROKER_SERVICE_HOST: '10.0.0.1', OTHER: 'x' });
  assert.deepEqual(env.problems, []);
  assert.deepEqual(env.partial, {});
  assert.equal(env.warnings.length, 2);
  assert.match(env.warnings[0], /^SOCKETD_BROKER_PORT: not a socketd-broker setting, ignored/);
});

test('every schema key has a generic name that maps back to it', () => {
  const walk = (node: Record<string, unknown>, prefix: string): string[] =>
    Object.entries(node).flatMap(([key, child]) => {
      const path = prefix ? `${prefix}.${key}` : key;
      return typeof (child as { kind?: unknown }).kind === 'string' ? [path] : walk(child as Record<string, unknown>, path);
    });
  const paths = walk(SCHEMA as Record<string, unknown>, '');
  assert.ok(paths.length >= 30);
  for (const path of paths) {
    const name = envNameOf(path);
    const env = configFromEnv({ [name]: 'zz-not-valid-for-most' });
    const where = path.split('.').reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], env.partial);
    // Either the value was accepted at that path (strings) or the problem names that path.
    assert.ok(where !== undefined || env.problems.some((p) => p.startsWith(`${name}: ${path}:`)), `${name} -> ${path}: ${env.problems.join('; ')}`);
  }
  assert.equal(envNameOf('limits.maxData'), 'SOCKETD_LIMITS__MAX_DATA');
  assert.equal(envNameOf('fastPaths.forwardMessageBytes'), 'SOCKETD_FAST_PATHS__FORWARD_MESSAGE_BYTES');
});

test('every alias names a real key', () => {
  for (const [name, path] of Object.entries(ENV_ALIASES)) {
    const env = configFromEnv({ [name]: '1' });
    const where = path.split('.').reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], env.partial);
    assert.ok(where !== undefined || env.problems.some((p) => p.startsWith(`${name}: ${path}:`)), `${name} -> ${path}`);
  }
});
