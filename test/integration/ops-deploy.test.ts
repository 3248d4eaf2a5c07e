/**
 * deploy/** and docs/operations.md against the running broker: every file parses, every socketd_* name they
 * use is a registered metric, the dashboard and alerts cover what docs/operations.md promises, the Kubernetes and compose
 * files are wired as documented, and the metrics reference lists exactly the registered broker metrics.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import type { RunningServer } from '../../src/server.js';
import { startTestBroker } from '../support/broker.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...filesUnder(path));
    else out.push(path);
  }
  return out.sort();
}

const DEPLOY_FILES = filesUnder(join(ROOT, 'deploy')).map((f) => relative(ROOT, f));

/** prom-client's default metrics (documented as a group), told apart from the broker's own. */
const isProcessMetric = (name: string): boolean => /^socketd_(process|nodejs)_/.test(name);

let server: RunningServer;
let registered: Map<string, string>;

test.before(async () => {
  server = await startTestBroker();
  const metrics = await server.metrics.registry.getMetricsAsJSON();
  registered = new Map(metrics.map((m) => [m.name, String(m.type)]));
});

test.after(async () => {
  await server.close();
});

/** A metric name as used in PromQL, without the histogram/summary series suffix. */
function baseName(name: string): string {
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (name.endsWith(suffix) && !registered.has(name)) return name.slice(0, -suffix.length);
  }
  return name;
}

test('deploy/ has the expected files', () => {
  for (const path of [
    'deploy/compose.yaml',
    'deploy/prometheus/prometheus.yml',
    'deploy/prometheus/alerts.yml',
    'deploy/grafana/provisioning/datasources/prometheus.yml',
    'deploy/grafana/provisioning/dashboards/socketd-broker.yml',
    'deploy/grafana/dashboards/socketd-broker.json',
    'deploy/k8s/deployment.yaml',
    'deploy/k8s/service.yaml',
    'deploy/k8s/configmap.yaml',
    'deploy/k8s/kustomization.yaml',
  ]) {
    assert.ok(DEPLOY_FILES.includes(path), `${path} exists`);
  }
});

test('every deploy file parses (JSON, YAML)', () => {
  for (const path of DEPLOY_FILES) {
    const text = read(path);
    if (path.endsWith('.json')) assert.doesNotThrow(() => JSON.parse(text), path);
    else if (/\.ya?ml$/.test(path)) {
      for (const doc of parseAllDocuments(text)) assert.deepEqual(doc.errors, [], `${path}: ${doc.errors.map((e) => e.message).join('; ')}`);
    } else assert.fail(`unexpected file type in deploy/: ${path}`);
  }
});

test('every socketd_* name in deploy/** is a registered metric', () => {
  const used = new Map<string, string[]>();
  for (const path of DEPLOY_FILES) {
    for (const m of read(path).matchAll(/socketd_[a-z0-9_]+/g)) {
      const name = baseName(m[0]);
      used.set(name, [...(used.get(name) ?? []), path]);
    }
  }
  assert.ok(used.size >= 15, `deploy/ uses many metrics (${used.size})`);
  for (const [name, paths] of used) {
    assert.ok(registered.has(name), `${name} (in ${[...new Set(paths)].join(', ')}) is registered`);
  }
});

interface Panel {
  type: string;
  title: string;
  targets?: { expr: string }[];
  datasource?: { type: string; uid: string };
}

test('the dashboard has the panels docs/operations.md describes', () => {
  const dash = JSON.parse(read('deploy/grafana/dashboards/socketd-broker.json')) as { uid: string; title: string; panels: Panel[] };
  assert.equal(dash.uid, 'socketd-broker');
  const rows = dash.panels.filter((p) => p.type === 'row').map((p) => p.title);
  assert.deepEqual(rows, ['Throughput', 'Connections', 'Backpressure', 'Alarms', 'Latency']);
  const exprs = dash.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
  const uses = (fragment: string): boolean => exprs.some((e) => e.includes(fragment));
  for (const fragment of [
    'rate(socketd_frames_in_total', 'rate(socketd_frames_out_total', 'rate(socketd_bytes_in_total', 'rate(socketd_bytes_out_total',
    'rate(socketd_deliveries_total', 'sum by (mode) (rate(socketd_routed_total',
    'sum by (transport) (socketd_connections_open', 'rate(socketd_connections_total', 'rate(socketd_handshakes_refused_total',
    'socketd_outbound_queue_bytes', 'socketd_paused_readers', 'rate(socketd_pressure_sent_total', 'socketd_slow_consumers_total',
    'sum by (reason) (rate(socketd_dropped_total', 'sum by (code) (rate(socketd_alarms_total',
    'histogram_quantile(0.99, sum by (le) (rate(socketd_stream_duration_seconds_bucket',
  ]) {
    assert.ok(uses(fragment), `a panel queries ${fragment}`);
  }
  for (const panel of dash.panels.filter((p) => p.type !== 'row')) {
    assert.ok((panel.targets ?? []).length > 0, `${panel.title} has a query`);
    assert.equal(panel.datasource?.type, 'prometheus');
    for (const expr of (panel.targets ?? []).map((t) => t.expr)) {
      assert.equal(count(expr, '('), count(expr, ')'), `balanced parentheses in ${expr}`);
      assert.equal(count(expr, '{'), count(expr, '}'), `balanced braces in ${expr}`);
    }
  }
});

function count(text: string, ch: string): number {
  return text.split(ch).length - 1;
}

test('the alert rules cover slow consumers, queue bytes, handshake refusals, paused readers and event-loop lag', () => {
  const rules = parseYaml(read('deploy/prometheus/alerts.yml')) as { groups: { name: string; rules: { alert: string; expr: string; for?: string; labels: Record<string, string>; annotations: Record<string, string> }[] }[] };
  const all = rules.groups.flatMap((g) => g.rules);
  for (const rule of all) {
    assert.match(rule.alert, /^[A-Z][A-Za-z]+$/);
    assert.equal(typeof rule.expr, 'string');
    assert.ok(rule.labels.severity, `${rule.alert} has a severity`);
    assert.ok(rule.annotations.summary, `${rule.alert} has a summary`);
    if (rule.for !== undefined) assert.match(rule.for, /^\d+[smh]$/);
  }
  const byMetric = (metric: string): boolean => all.some((r) => r.expr.includes(metric));
  for (const metric of ['socketd_slow_consumers_total', 'socketd_outbound_queue_bytes', 'socketd_handshakes_refused_total', 'socketd_paused_readers', 'socketd_nodejs_eventloop_lag']) {
    assert.ok(byMetric(metric), `an alert on ${metric}`);
  }
  const paused = all.find((r) => r.expr.includes('socketd_paused_readers'))!;
  assert.ok(paused.for !== undefined || /_over_time\(/.test(paused.expr), 'paused readers: only when it lasts');
  const prometheus = parseYaml(read('deploy/prometheus/prometheus.yml')) as { rule_files: string[]; scrape_configs: { job_name: string; metrics_path: string; static_configs: { targets: string[] }[] }[] };
  assert.ok(prometheus.rule_files.some((f) => f.endsWith('alerts.yml')));
  const job = prometheus.scrape_configs.find((j) => j.job_name === 'socketd-broker')!;
  assert.equal(job.metrics_path, '/metrics');
  assert.deepEqual(job.static_configs[0].targets, ['broker:8680']);
  assert.ok(all.some((r) => r.expr.includes('job="socketd-broker"')), 'the down alert names the scrape job');
});

test('compose: broker built from ../Dockerfile, Prometheus and Grafana with the provisioning mounted', () => {
  const compose = parseYaml(read('deploy/compose.yaml')) as { services: Record<string, { build?: { context: string; dockerfile: string }; ports?: string[]; volumes?: string[] }> };
  const { broker, prometheus, grafana } = compose.services;
  assert.deepEqual(broker.build, { context: '..', dockerfile: 'Dockerfile' });
  assert.deepEqual(broker.ports, ['8602:8602/tcp', '8603:8603/udp', '8604:8604/tcp', '8680:8680/tcp']);
  assert.ok(prometheus.volumes!.some((v) => v.startsWith('./prometheus:/etc/prometheus')));
  assert.ok(grafana.volumes!.some((v) => v.startsWith('./grafana/provisioning:/etc/grafana/provisioning')));
  assert.ok(grafana.volumes!.some((v) => v.startsWith('./grafana/dashboards:/var/lib/grafana/dashboards')));
  const datasources = parseYaml(read('deploy/grafana/provisioning/datasources/prometheus.yml')) as { datasources: { uid: string; url: string; type: string }[] };
  assert.equal(datasources.datasources[0].type, 'prometheus');
  assert.equal(datasources.datasources[0].url, 'http://prometheus:9090');
  const providers = parseYaml(read('deploy/grafana/provisioning/dashboards/socketd-broker.yml')) as { providers: { options: { path: string } }[] };
  assert.equal(providers.providers[0].options.path, '/var/lib/grafana/dashboards');
});

test('k8s: Deployment probes, limits, non-root; Service ports; ConfigMap mounted at /etc/socketd-broker/broker.yaml', () => {
  const deployment = parseYaml(read('deploy/k8s/deployment.yaml')) as {
    kind: string;
    spec: { replicas: number; template: { spec: {
      securityContext: { runAsNonRoot: boolean; runAsUser: number };
      containers: {
        args: string[];
        ports: { containerPort: number; protocol: string }[];
        livenessProbe: { httpGet: { path: string; port: number } };
        readinessProbe: { httpGet: { path: string; port: number } };
        resources: { limits: { cpu: string; memory: string }; requests: Record<string, string> };
        securityContext: { allowPrivilegeEscalation: boolean; readOnlyRootFilesystem: boolean };
        volumeMounts: { name: string; mountPath: string }[];
      }[];
      volumes: { name: string; configMap?: { name: string; items: { key: string; path: string }[] } }[];
    } } };
  };
  assert.equal(deployment.kind, 'Deployment');
  assert.equal(deployment.spec.replicas, 1);
  const pod = deployment.spec.template.spec;
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.ok(pod.securityContext.runAsUser > 0);
  const [container] = pod.containers;
  assert.deepEqual(container.livenessProbe.httpGet, { path: '/healthz', port: 8680 });
  assert.deepEqual(container.readinessProbe.httpGet, { path: '/readyz', port: 8680 });
  assert.ok(container.resources.limits.cpu && container.resources.limits.memory);
  assert.equal(container.securityContext.allowPrivilegeEscalation, false);
  assert.deepEqual(container.ports.map((p) => `${p.containerPort}/${p.protocol}`), ['8602/TCP', '8603/UDP', '8604/TCP', '8680/TCP']);
  const configVolume = pod.volumes.find((v) => v.configMap !== undefined)!;
  const mount = container.volumeMounts.find((m) => m.name === configVolume.name)!;
  const item = configVolume.configMap!.items.find((i) => i.key === 'broker.yaml')!;
  assert.equal(`${mount.mountPath}/${item.path}`, '/etc/socketd-broker/broker.yaml');
  assert.deepEqual(container.args, ['--config', '/etc/socketd-broker/broker.yaml']);

  const configMap = parseYaml(read('deploy/k8s/configmap.yaml')) as { metadata: { name: string }; data: Record<string, string> };
  assert.equal(configMap.metadata.name, configVolume.configMap!.name);
  assert.ok(configMap.data['broker.yaml'].length > 0);

  const service = parseYaml(read('deploy/k8s/service.yaml')) as { kind: string; spec: { ports: { port: number; protocol: string }[] } };
  assert.equal(service.kind, 'Service');
  assert.deepEqual(service.spec.ports.map((p) => `${p.port}/${p.protocol}`), ['8602/TCP', '8603/UDP', '8604/TCP', '8680/TCP']);
  const kustomization = parseYaml(read('deploy/k8s/kustomization.yaml')) as { resources: string[] };
  assert.deepEqual(kustomization.resources.sort(), ['configmap.yaml', 'deployment.yaml', 'service.yaml']);
});

/** The rows of docs/operations.md's broker metrics table: name -> [type, labels, meaning]. */
function documentedMetrics(): Map<string, string[]> {
  const doc = read('docs/operations.md');
  const start = doc.indexOf('### 5.1 Broker metrics');
  const end = doc.indexOf('### 5.2', start);
  assert.ok(start !== -1 && end !== -1, 'docs/operations.md has sections 5.1 and 5.2');
  const rows = new Map<string, string[]>();
  for (const line of doc.slice(start, end).split('\n')) {
    if (!line.startsWith('| `socketd_')) continue;
    const cells = line.split('|').slice(1, -1).map((c) => c.trim());
    assert.equal(cells.length, 4, `metric, type, labels, meaning: ${line}`);
    const name = /^`(socketd_[a-z0-9_]+)`$/.exec(cells[0])?.[1];
    assert.ok(name !== undefined, `a metric name in ${cells[0]}`);
    assert.ok(!rows.has(name), `${name} documented once`);
    assert.ok(cells[3].length > 10, `${name} has a meaning`);
    rows.set(name, cells.slice(1));
  }
  return rows;
}

test('docs/operations.md lists exactly the registered broker metrics, each with its type', () => {
  const documented = documentedMetrics();
  const own = [...registered.keys()].filter((n) => !isProcessMetric(n)).sort();
  assert.deepEqual([...documented.keys()].sort(), own);
  for (const [name, [type]] of documented) assert.equal(type, registered.get(name), `${name} is a ${registered.get(name)}`);
  // The process metrics are documented as a group, by prefix.
  const doc = read('docs/operations.md');
  assert.ok(doc.includes('`socketd_process_*`') && doc.includes('`socketd_nodejs_*`'));
  assert.ok([...registered.keys()].some(isProcessMetric), 'the default metrics are registered');
});

test('the labels each metric exports are the ones documented', async () => {
  // Some traffic so that labelled series exist.
  const { RawClient } = await import('../support/raw-client.js');
  const { ports } = await import('../support/broker.js');
  const p = ports(server);
  const a = await RawClient.connect('tcp', p.tcp, { name: 'x' });
  const sid = a.send({ flag: 41, event: 'q', meta: '@=nobody' });
  await a.nextFor(sid, 10_000);
  a.close();
  const text = await server.metrics.text();
  const documented = documentedMetrics();
  const seen = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    const m = /^(socketd_[a-z0-9_]+?)(_bucket|_sum|_count)?(?:\{(.*)\})? /.exec(line);
    if (m === null) continue;
    const name = registered.has(m[1] + (m[2] ?? '')) ? m[1] + (m[2] ?? '') : m[1];
    if (isProcessMetric(name)) continue;
    const labels = seen.get(name) ?? new Set<string>();
    for (const pair of (m[3] ?? '').matchAll(/([a-z_]+)="/g)) labels.add(pair[1]);
    seen.set(name, labels);
  }
  assert.ok(seen.size >= 20);
  for (const [name, labels] of seen) {
    const row = documented.get(name);
    assert.ok(row !== undefined, `${name} documented`);
    for (const label of labels) assert.ok(row[1].includes(`\`${label}\``), `${name}: label ${label} documented (${row[1]})`);
  }
});
