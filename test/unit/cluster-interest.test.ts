/**
 * Interest tables (src/cluster/interest.ts, docs/cluster.md): local counting with per-tick changes, the
 * remote tables matched with the token trie, and the weighted round robin that gives fair shares.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LocalInterest, RemoteInterest, eventKey, nameKey, weightedTurn } from '../../src/cluster/interest.js';

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
