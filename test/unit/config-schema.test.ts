/**
 * The config schema: every kind of error message (with its path), the embedded config/broker.yaml against
 * DEFAULT_CONFIG, and every key of SCHEMA documented in docs/operations.md and present in config/broker.yaml.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, parseDocument } from 'yaml';
import { ConfigError, configFrom, configFromYaml, loadConfigFile, readConfigFile } from '../../src/config/load.js';
import { DEFAULT_CONFIG, SCHEMA, checkMerged, mergeConfig, validateConfig, type BrokerConfig } from '../../src/config/schema.js';
import { envNameOf } from '../../src/config/env.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');

/** Every leaf key path of SCHEMA with its rule. */
function schemaKeys(): { path: string; rule: { kind: string } }[] {
  const out: { path: string; rule: { kind: string } }[] = [];
  const walk = (node: Record<string, unknown>, prefix: string): void => {
    for (const [key, child] of Object.entries(node)) {
      const path = prefix ? `${prefix}.${key}` : key;
      if (typeof (child as { kind?: unknown }).kind === 'string') out.push({ path, rule: child as { kind: string } });
      else walk(child as Record<string, unknown>, path);
    }
  };
  walk(SCHEMA as Record<string, unknown>, '');
  return out;
}

function valueAt(object: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], object);
}

/** The ConfigError's problems for a partial config (fails when it is valid). */
function problemsOf(partial: unknown): string[] {
  try {
    configFrom(partial, 'test');
  } catch (error) {
    assert.ok(error instanceof ConfigError, `a ConfigError, got ${String(error)}`);
    assert.equal(error.source, 'test');
    assert.ok(!error.message.includes('\n'), 'the message is one line');
    return error.problems;
  }
  return assert.fail(`valid: ${JSON.stringify(partial)}`);
}

function yamlProblems(text: string): string[] {
  try {
    configFromYaml(text, 'f.yaml');
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error.problems;
  }
  return assert.fail('valid yaml config');
}

test('config/broker.yaml parses to exactly DEFAULT_CONFIG', () => {
  const parsed: unknown = parseYaml(read('config/broker.yaml'));
  assert.deepEqual(parsed, JSON.parse(JSON.stringify(DEFAULT_CONFIG)));
  assert.deepEqual(validateConfig(parsed), []);
  assert.deepEqual(checkMerged(DEFAULT_CONFIG as BrokerConfig), []);
  assert.deepEqual(loadConfigFile(join(ROOT, 'config/broker.yaml')), JSON.parse(JSON.stringify(DEFAULT_CONFIG)));
});

test('every SCHEMA key is in config/broker.yaml and DEFAULT_CONFIG, and every config/broker.yaml key is in SCHEMA', () => {
  const parsed: unknown = parseYaml(read('config/broker.yaml'));
  for (const { path } of schemaKeys()) {
    assert.notEqual(valueAt(parsed, path), undefined, `config/broker.yaml sets ${path}`);
    assert.notEqual(valueAt(DEFAULT_CONFIG, path), undefined, `DEFAULT_CONFIG has ${path}`);
  }
  // The reverse: validation of the file would name any key not in SCHEMA.
  assert.deepEqual(validateConfig(parsed), []);
});

test('every SCHEMA key has a row in docs/operations.md with its default and generic env variable', () => {
  const doc = read('docs/operations.md');
  const rows = new Map<string, string>();
  for (const line of doc.split('\n')) {
    const m = /^\| `([a-zA-Z.]+)` \|/.exec(line);
    if (m !== null && !rows.has(m[1])) rows.set(m[1], line);
  }
  for (const { path } of schemaKeys()) {
    const row = rows.get(path);
    assert.ok(row !== undefined, `docs/operations.md has a row for ${path}`);
    const cells = row.split(' | ');
    const fallback = JSON.stringify(valueAt(DEFAULT_CONFIG, path));
    assert.ok(cells.includes(`\`${fallback}\``), `${path}: the row shows the default ${fallback}: ${row}`);
    assert.ok(row.includes(`\`${envNameOf(path)}\``), `${path}: the row names ${envNameOf(path)}`);
  }
});

test('the Kubernetes ConfigMap holds a valid broker.yaml', () => {
  const configMap = parseYaml(read('deploy/k8s/configmap.yaml')) as { kind: string; data: Record<string, string> };
  assert.equal(configMap.kind, 'ConfigMap');
  const config = configFromYaml(configMap.data['broker.yaml'], 'configmap');
  assert.equal(config.http.port, 8680);
  assert.equal(config.listeners.tcp.port, 8602);
});

test('an empty file or document is the defaults', () => {
  assert.deepEqual(configFromYaml('', 'empty'), DEFAULT_CONFIG);
  assert.deepEqual(configFromYaml('# nothing\n', 'comment'), DEFAULT_CONFIG);
  assert.deepEqual(configFrom(undefined), DEFAULT_CONFIG);
});

test('a partial file keeps the other defaults', () => {
  const config = configFromYaml('limits:\n  maxData: 1000\nshutdown:\n  drainMs: 0\n');
  assert.equal(config.limits.maxData, 1000);
  assert.equal(config.limits.maxFrame, DEFAULT_CONFIG.limits.maxFrame);
  assert.equal(config.shutdown.drainMs, 0);
  assert.equal(config.listeners.tcp.port, 8602);
});

test('unknown key at the top level names it and lists the sections', () => {
  assert.deepEqual(problemsOf({ logging: { level: 'info' } }), [
    'logging: unknown key (known: listeners, http, limits, timeouts, flow, fastPaths, log, shutdown, access, namespaces, cluster)',
  ]);
});

test('unknown key nested, at two depths', () => {
  const problems = problemsOf({ limits: { maxDta: 5 }, listeners: { tcp: { prot: 1 } } });
  assert.deepEqual(problems, [
    'limits.maxDta: unknown key (known: maxSid, maxEvent, maxMeta, maxData, maxFrame, udpMaxDatagram, maxStreamsPerSession, maxFragmentRoutesPerSession, maxSubscriptionsPerSession, maxConnections, maxConnectionsPerIp, handshakesPerSecond, framesPerSecond)',
    'listeners.tcp.prot: unknown key (known: enabled, host, port, detectPythonFraming)',
  ]);
  assert.deepEqual(problemsOf({ listeners: { sctp: {} } }), ['listeners.sctp: unknown key (known: tcp, udp, ws, tcps, wss)']);
});

test('wrong types: integer, boolean, string, mapping, list, null, top level', () => {
  assert.deepEqual(problemsOf({ listeners: { tcp: { port: 'eighty' } } }), ['listeners.tcp.port: expected an integer, got string "eighty"']);
  assert.deepEqual(problemsOf({ limits: { maxData: 1.5 } }), ['limits.maxData: expected an integer, got number 1.5']);
  assert.deepEqual(problemsOf({ log: { pretty: 1 } }), ['log.pretty: expected true or false, got number 1']);
  assert.deepEqual(problemsOf({ http: { adminToken: 123 } }), ['http.adminToken: expected a string, got number 123']);
  assert.deepEqual(problemsOf({ limits: 5 }), ['limits: expected a mapping, got number 5']);
  assert.deepEqual(problemsOf({ listeners: { tcp: [1] } }), ['listeners.tcp: expected a mapping, got a list']);
  assert.deepEqual(problemsOf({ timeouts: { idleMs: null } }), ['timeouts.idleMs: expected an integer, got null']);
  assert.deepEqual(problemsOf([1, 2]), ['(top level): expected a mapping, got a list']);
  assert.deepEqual(problemsOf('text'), ['(top level): expected a mapping, got string "text"']);
});

test('out of range: below the minimum, above the maximum, protocol maxima', () => {
  assert.deepEqual(problemsOf({ listeners: { udp: { port: 70000 } } }), ['listeners.udp.port: 70000 is outside 0..65535']);
  assert.deepEqual(problemsOf({ listeners: { ws: { port: -1 } } }), ['listeners.ws.port: -1 is outside 0..65535']);
  assert.deepEqual(problemsOf({ timeouts: { handshakeMs: 0 } }), ['timeouts.handshakeMs: 0 is outside 1..86400000']);
  assert.deepEqual(problemsOf({ limits: { maxSid: 65 } }), ['limits.maxSid: 65 is outside 1..64']);
  assert.deepEqual(problemsOf({ limits: { maxFrame: 13 } }), ['limits.maxFrame: 13 is outside 14..17825792']);
  assert.deepEqual(problemsOf({ shutdown: { drainMs: -5 } }), ['shutdown.drainMs: -5 is outside 0..3600000']);
});

test('bad enum values', () => {
  assert.deepEqual(problemsOf({ flow: { slowConsumerPolicy: 'block' } }), ['flow.slowConsumerPolicy: expected one of disconnect, drop, got string "block"']);
  assert.deepEqual(problemsOf({ log: { level: 'loud' } }), ['log.level: expected one of fatal, error, warn, info, debug, trace, silent, got string "loud"']);
  assert.deepEqual(problemsOf({ log: { level: 3 } }), ['log.level: expected one of fatal, error, warn, info, debug, trace, silent, got number 3']);
});

test('empty string where a value is needed', () => {
  assert.deepEqual(problemsOf({ listeners: { tcp: { host: '' } } }), ['listeners.tcp.host: must not be empty']);
});

test('every problem is reported at once, in order', () => {
  const problems = problemsOf({ foo: 1, limits: { maxData: 'x' }, flow: { slowConsumerPolicy: 'nope' }, log: { pretty: 'yes' } });
  assert.equal(problems.length, 4);
  assert.match(problems[0], /^foo: unknown key/);
  assert.match(problems[1], /^limits\.maxData: expected an integer/);
  assert.match(problems[2], /^flow\.slowConsumerPolicy: expected one of/);
  assert.match(problems[3], /^log\.pretty: expected true or false/);
});

test('cross-field: maxData > maxFrame', () => {
  assert.deepEqual(problemsOf({ limits: { maxData: 2000, maxFrame: 1000 } }), ['limits.maxData (2000) may not exceed limits.maxFrame (1000)']);
});

test('cross-field: highWater > limit', () => {
  assert.deepEqual(problemsOf({ flow: { outboundHighWaterBytes: 2_000_000, outboundLimitBytes: 1_000_000 }, limits: { maxData: 1000, maxFrame: 1000 } }), [
    'flow.outboundHighWaterBytes (2000000) may not exceed flow.outboundLimitBytes (1000000)',
  ]);
});

test('cross-field: limit < maxFrame', () => {
  assert.deepEqual(problemsOf({ flow: { outboundHighWaterBytes: 1000, outboundLimitBytes: 1_000_000 } }), [
    'flow.outboundLimitBytes (1000000) must hold at least one frame of limits.maxFrame (17825792)',
  ]);
  // Lowering maxFrame (and maxData with it) makes the same limit valid.
  const config = configFrom({ flow: { outboundHighWaterBytes: 1000, outboundLimitBytes: 1_000_000 }, limits: { maxData: 500_000, maxFrame: 1_000_000 } });
  assert.equal(config.flow.outboundLimitBytes, 1_000_000);
});

test('cross-field checks run on the merged config, not on the partial alone', () => {
  // maxFrame alone below the default maxData: the merged config has maxData 16 MiB > maxFrame.
  const problems = problemsOf({ limits: { maxFrame: 1000 } });
  assert.ok(problems.includes('limits.maxData (16777216) may not exceed limits.maxFrame (1000)'), problems.join('; '));
});

test('YAML syntax error names the line', () => {
  const problems = yamlProblems('limits: { maxData: 1\nflow: [\n');
  assert.equal(problems.length, 1);
  assert.match(problems[0], /^not valid YAML: .+line \d+, column \d+/);
  const duplicate = yamlProblems('log:\n  level: info\n  level: debug\n');
  assert.match(duplicate[0], /^not valid YAML: Map keys must be unique/);
});

test('YAML with wrong types reports paths (values as YAML reads them)', () => {
  assert.deepEqual(yamlProblems('listeners:\n  tcp:\n    port: "8602"\n'), ['listeners.tcp.port: expected an integer, got string "8602"']);
  assert.deepEqual(yamlProblems('log:\n  pretty: yes\n'), ['log.pretty: expected true or false, got string "yes"']);
});

test('missing file: the path and ENOENT; a directory: EISDIR', () => {
  const dir = mkdtempSync(join(tmpdir(), 'socketd-config-'));
  try {
    const missing = join(dir, 'nope.yaml');
    assert.throws(() => loadConfigFile(missing), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.source, missing);
      assert.deepEqual(error.problems, ['cannot read the file: ENOENT (no such file)']);
      assert.equal(error.message, `invalid configuration (${missing}): cannot read the file: ENOENT (no such file)`);
      return true;
    });
    assert.throws(() => readConfigFile(dir), /cannot read the file: EISDIR/);
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'limits:\n  maxData: 2000\n  maxFrame: 1000\n');
    // readConfigFile checks the shape only; loadConfigFile merges and cross-checks.
    assert.deepEqual(readConfigFile(file), { limits: { maxData: 2000, maxFrame: 1000 } });
    assert.throws(() => loadConfigFile(file), /limits\.maxData \(2000\) may not exceed limits\.maxFrame \(1000\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('mergeConfig: deep, over wins, does not mutate the base', () => {
  const base = JSON.parse(JSON.stringify(DEFAULT_CONFIG)) as BrokerConfig;
  const merged = mergeConfig(base, { listeners: { tcp: { port: 1 } } });
  assert.equal(merged.listeners.tcp.port, 1);
  assert.equal(merged.listeners.tcp.host, '0.0.0.0');
  assert.equal(base.listeners.tcp.port, 8602);
});

test('config/broker.yaml lists the sections in SCHEMA order', () => {
  const doc = parseDocument(read('config/broker.yaml'));
  const keys = (doc.contents as unknown as { items: { key: { value: string } }[] }).items.map((i) => i.key.value);
  assert.deepEqual(keys, Object.keys(SCHEMA));
});
