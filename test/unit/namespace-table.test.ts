/** NamespaceTable (src/broker/namespace-table.ts, docs/namespaces.md): entering, refusals, dropping. */
import test from 'node:test';
import assert from 'node:assert/strict';
import { ALL_PERMISSIONS, Permissions } from '../../src/broker/access.js';
import { EventRouter } from '../../src/broker/event-router.js';
import { Namespace, NamespaceTable, type NamespaceOptions } from '../../src/broker/namespace-table.js';
import { BrokerStats } from '../../src/broker/stats.js';

const stats = new BrokerStats();
const newEvents = (): EventRouter => new EventRouter({ maxSubscriptionsPerSession: 10, matchCacheSize: 0, maxPatternBytes: 512 }, stats);
const OPTIONS: NamespaceOptions = { fromPath: true, declared: [], requireDeclared: false, maxNamespaces: 2 };
const everyone = new Permissions('anyone', ALL_PERMISSIONS);

function table(options: Partial<NamespaceOptions> = {}): NamespaceTable {
  return new NamespaceTable({ ...OPTIONS, ...options }, newEvents(), newEvents);
}

test('the default namespace is null; a new name makes a namespace once, with its own registry and event router', () => {
  const t = table();
  assert.equal(t.enter('', everyone), null);
  const a = t.enter('tenant-a', everyone);
  assert.ok(a instanceof Namespace);
  assert.equal(t.enter('tenant-a', everyone), a);
  const b = t.enter('tenant-b', everyone) as Namespace;
  assert.notEqual(b.registry, a.registry);
  assert.notEqual(b.events, a.events);
  assert.notEqual(a.events, t.defaultEvents);
  assert.equal(t.size, 2);
});

test('refusals: invalid names, maxNamespaces, undeclared names, namespaces a user may not use', () => {
  const t = table({ declared: ['tenant-a'], maxNamespaces: 1 });
  assert.deepEqual((t.enter('a/b', everyone) as { code: string }).code, 'namespace_invalid');
  assert.ok(t.enter('tenant-a', everyone) instanceof Namespace);
  assert.equal((t.enter('tenant-b', everyone) as { code: string }).code, 'too_many_namespaces');
  const strict = table({ declared: ['tenant-a'], requireDeclared: true });
  assert.equal((strict.enter('tenant-b', everyone) as { code: string }).code, 'namespace_unknown');
  assert.equal(strict.enter('', everyone), null, 'the default namespace needs no declaring');
  const limited = new Permissions('t', { ...ALL_PERMISSIONS, namespaces: { allow: ['tenant-*'], deny: ['tenant-x'] } });
  assert.ok(table().enter('tenant-a', limited) instanceof Namespace);
  assert.equal((table().enter('tenant-x', limited) as { code: string }).code, 'namespace_forbidden');
  assert.equal((table().enter('', limited) as { code: string }).code, 'namespace_forbidden', 'the default one is "/"');
  const withDefault = new Permissions('t', { ...ALL_PERMISSIONS, namespaces: { allow: ['/'], deny: [] } });
  assert.equal(table().enter('', withDefault), null);
  assert.equal((table().enter('tenant-a', withDefault) as { code: string }).code, 'namespace_forbidden');
});

test('fromPath off: every handshake is in the default namespace', () => {
  assert.equal(table({ fromPath: false }).enter('tenant-a', everyone), null);
});

test('a namespace is dropped when its last session closes', () => {
  const t = table();
  const ns = t.enter('tenant-a', everyone) as Namespace;
  const session = { namespace: ns, params: new Map(), permissions: everyone } as never;
  t.sessionOpened(session);
  assert.equal(ns.sessions, 1);
  t.sessionClosed(session, true);
  assert.equal(t.size, 0);
  assert.equal(t.get('tenant-a'), undefined);
});
