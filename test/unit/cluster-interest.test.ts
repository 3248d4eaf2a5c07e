/**
 * Interest tables (src/cluster/interest.ts, docs/cluster.md): local counting with per-tick changes, the
 * remote tables matched with the token trie, and the weighted round robin that gives fair shares.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LocalInterest, NamespacedInterest, PRESENCE_CAPABILITY, RemoteInterest, eventKey, nameKey, namespacedKey, watchKey, weightedTurn } from '../../src/cluster/interest.js';

test('local interest counts per key and hands over absolute changes once per batch', () => {
  let signals = 0;
  const local = new LocalInterest(() => signals++);
  local.change(eventKey('a.*', ''), 1);
  local.change(eventKey('a.*', ''), 1);
  local.change(eventKey('a.*', 'g'), 1);
  local.change(nameKey('w'), 1);
  assert.equal(signals, 1, 'signalled on the first change only');
  assert.deepEqual([...local.takeChanges()], [[eventKey('a.*', ''), 2], [eventKey('a.*', 'g'), 1], [nameKey('w'), 1]]);
  local.change(eventKey('a.*', 'g'), -1);
  local.change(nameKey('w'), -1);
  local.change(nameKey('w'), -1); // never below zero
  assert.equal(signals, 2);
  assert.deepEqual([...local.takeChanges()], [[eventKey('a.*', 'g'), 0], [nameKey('w'), 0]]);
  assert.deepEqual([...local.counts], [[eventKey('a.*', ''), 2]]);
});

test('remote interest matches wildcards per node and keeps name counts', () => {
  const remote = new RemoteInterest<string>(16);
  remote.apply('b', eventKey('chat.*', ''), 3);
  remote.apply('b', eventKey('chat.>', ''), 1);
  remote.apply('c', eventKey('chat.room', 'g'), 2);
  remote.apply('c', eventKey('other', ''), 1);
  const match = remote.index.match('chat.room');
  assert.deepEqual(match.subscribers.map((e) => [e.link, e.pattern, e.count]).sort(), [['b', 'chat.*', 3], ['b', 'chat.>', 1]]);
  assert.deepEqual(match.groups.map((g) => [g.name, g.members.map((e) => [e.link, e.count])]), [['g', [['c', 2]]]]);
  remote.apply('b', nameKey('w'), 2);
  remote.apply('c', nameKey('w'), 1);
  remote.apply('c', nameKey('x'), 4);
  assert.deepEqual([...remote.names.get('w')!], [['b', 2], ['c', 1]]);
  assert.deepEqual([...remote.named], [['b', 2], ['c', 5]]);
  // An update changes the count in place; 0 removes.
  remote.apply('b', eventKey('chat.*', ''), 5);
  assert.equal(remote.index.match('chat.x').subscribers.find((e) => e.pattern === 'chat.*')!.count, 5);
  remote.apply('c', nameKey('x'), 0);
  assert.deepEqual([...remote.named], [['b', 2], ['c', 1]]);
  assert.deepEqual(remote.summary('c'), { patterns: 2, subscriptions: 3, names: 1, named: 1 });
  // Forgetting a node removes all it announced.
  remote.clear('b');
  assert.deepEqual(remote.index.match('chat.room').subscribers, []);
  assert.deepEqual([...remote.names.get('w')!], [['c', 1]]);
  assert.equal(remote.named.has('b'), false);
  assert.equal(remote.apply('c', 'zzz', 1), false, 'an unknown key kind is refused');
});

test('weighted round robin gives each choice its weight in turns', () => {
  const weights = [1, 3, 0, 2];
  const counts = [0, 0, 0, 0];
  for (let cursor = 0; cursor < 60; cursor++) counts[weightedTurn(cursor, weights, 6)]++;
  assert.deepEqual(counts, [10, 30, 0, 20]);
});

test('namespaced interest: the default namespace\'s keys stay unprefixed; each namespace has its own table', () => {
  assert.equal(namespacedKey('', eventKey('a.*', '')), eventKey('a.*', ''), 'default keys are what nodes without namespaces send');
  assert.equal(namespacedKey('t1', nameKey('w')), 's\u0000t1\u0000n\u0000w');
  const interest = new NamespacedInterest<string>(new RemoteInterest<string>(16), 16);
  assert.ok(interest.apply('b', eventKey('chat.*', ''), 1));
  assert.ok(interest.apply('b', namespacedKey('t1', eventKey('chat.*', 'g')), 2));
  assert.ok(interest.apply('c', namespacedKey('t1', nameKey('w')), 1));
  assert.ok(interest.apply('c', namespacedKey('t2', nameKey('w')), 3));
  assert.equal(interest.apply('c', 's\u0000t1', 1), false, 'a malformed namespaced key is not known');
  assert.equal(interest.of('')!.index.match('chat.x').subscribers.length, 1);
  assert.equal(interest.of('')!.index.match('chat.x').groups.length, 0, 't1\'s group is not the default namespace\'s');
  assert.equal(interest.of('t1')!.index.match('chat.x').groups.length, 1);
  assert.equal(interest.of('t1')!.index.match('chat.x').subscribers.length, 0);
  assert.equal(interest.of('')!.names.get('w'), undefined);
  assert.deepEqual([...interest.of('t1')!.names.get('w')!], [['c', 1]]);
  assert.deepEqual([...interest.of('t2')!.names.get('w')!], [['c', 3]]);
  assert.deepEqual(interest.summary('c'), { patterns: 0, subscriptions: 0, names: 2, named: 4 });
  // A namespace's table goes when it empties: by count 0 or when the node is forgotten.
  interest.apply('c', namespacedKey('t2', nameKey('w')), 0);
  assert.equal(interest.of('t2'), undefined);
  interest.clear('b');
  interest.clear('c');
  assert.equal(interest.byNamespace.size, 0);
  assert.equal(interest.of('')!.index.size, 0);
});

test('presence interest: watchers per exact event and node, and the capability of answering lists', () => {
  const interest = new NamespacedInterest<string>(new RemoteInterest<string>(16), 16);
  assert.ok(interest.apply('b', PRESENCE_CAPABILITY, 1));
  assert.ok(interest.apply('b', watchKey('room.1'), 2));
  assert.ok(interest.apply('c', watchKey('room.1'), 1));
  assert.ok(interest.apply('c', namespacedKey('t', watchKey('room.1')), 1));
  assert.deepEqual([...interest.presenceCapable], ['b'], 'c announced no capability: a node of an earlier version');
  assert.deepEqual([...interest.of('')!.watchers.get('room.1')!], [['b', 2], ['c', 1]]);
  assert.deepEqual([...interest.of('t')!.watchers.get('room.1')!], [['c', 1]]);
  // A version that knows none of these keys ignores them: RemoteInterest alone refuses namespaced keys.
  assert.equal(new RemoteInterest<string>(16).apply('b', namespacedKey('t', nameKey('w')), 1), false);
  interest.apply('b', watchKey('room.1'), 0);
  assert.deepEqual([...interest.of('')!.watchers.get('room.1')!], [['c', 1]]);
  interest.clear('c');
  interest.clear('b');
  assert.equal(interest.of('')!.watchers.size, 0);
  assert.equal(interest.presenceCapable.size, 0);
  assert.equal(interest.byNamespace.size, 0);
});
