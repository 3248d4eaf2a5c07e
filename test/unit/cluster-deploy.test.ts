/**
 * The cluster variants of deploy/ (docs/cluster.md, docs/operations.md 8.2, 8.3): the compose profile with
 * Redis and three nodes, and the Kubernetes overlay with several replicas and a Redis URL.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { configFromEnv } from '../../src/config/env.js';

const read = (path: string): string => readFileSync(new URL(`../../../${path}`, import.meta.url), 'utf8');

interface ComposeService {
  profiles?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  depends_on?: string[];
}

test('compose: the cluster profile runs Redis and three nodes, each with its own id and ports, all on one Redis', () => {
  const compose = parseYaml(read('deploy/compose.yaml'), { merge: true }) as { services: Record<string, ComposeService> };
  const inProfile = Object.entries(compose.services).filter(([, s]) => s.profiles?.includes('cluster')).map(([n]) => n).sort();
  assert.deepEqual(inProfile, ['node1', 'node2', 'node3', 'redis']);
  const nodes = ['node1', 'node2', 'node3'].map((n) => compose.services[n]);
  assert.deepEqual(nodes.map((n) => n.environment!.SOCKETD_CLUSTER__NODE_ID), ['node1', 'node2', 'node3']);
  for (const node of nodes) {
    assert.equal(node.environment!.SOCKETD_CLUSTER__REDIS, 'redis://redis:6379');
    assert.deepEqual(node.depends_on, ['redis']);
    const env = configFromEnv(node.environment!);
    assert.deepEqual(env.problems, [], 'the variables are valid settings');
  }
  const hostPorts = nodes.flatMap((n) => n.ports!.map((p) => p.split(':')[0]));
  assert.equal(new Set(hostPorts).size, hostPorts.length, 'no host port used twice');
  assert.equal(compose.services.broker.profiles, undefined, 'the single broker stays the default');
});

test('k8s: the cluster overlay adds Redis and patches the Deployment to several replicas joined through it', () => {
  const kustomization = parseYaml(read('deploy/k8s/cluster/kustomization.yaml')) as { resources: string[]; patches: { path: string }[] };
  assert.deepEqual(kustomization.resources, ['../', 'redis.yaml']);
  assert.deepEqual(kustomization.patches.map((p) => p.path), ['replicas.yaml']);
  const patch = parseYaml(read('deploy/k8s/cluster/replicas.yaml')) as {
    metadata: { name: string };
    spec: { replicas: number; strategy: { type: string }; template: { spec: { containers: { name: string; env: { name: string; value?: string; valueFrom?: { fieldRef: { fieldPath: string } } }[] }[] } } };
  };
  assert.equal(patch.metadata.name, 'socketd-broker');
  assert.ok(patch.spec.replicas > 1);
  assert.equal(patch.spec.strategy.type, 'RollingUpdate');
  const env = patch.spec.template.spec.containers[0].env;
  const url = env.find((e) => e.name === 'SOCKETD_CLUSTER__REDIS')!.value!;
  assert.equal(env.find((e) => e.name === 'SOCKETD_CLUSTER__NODE_ID')!.valueFrom!.fieldRef.fieldPath, 'metadata.name');
  assert.deepEqual(configFromEnv({ SOCKETD_CLUSTER__REDIS: url, SOCKETD_CLUSTER__NODE_ID: 'socketd-broker-7d9c-x2' }).problems, []);
  const docs = parseAllDocuments(read('deploy/k8s/cluster/redis.yaml')).map((d) => d.toJS() as { kind: string; metadata: { name: string }; spec: { ports?: { port: number }[] } });
  const service = docs.find((d) => d.kind === 'Service')!;
  assert.equal(url, `redis://${service.metadata.name}:${service.spec.ports![0].port}`, 'the URL names the Redis Service');
  assert.ok(docs.some((d) => d.kind === 'Deployment' && d.metadata.name === 'socketd-redis'));
});
