/**
 * `$presence` lists across nodes (src/cluster/presence.ts, docs/cluster.md "Presence"): a query ends when every
 * node asked answered or left, or when its wait runs out with what arrived; late, unasked and duplicate answers
 * are ignored; the number waiting at once is bounded.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PresenceEntry } from '../../src/broker/event-router.js';
import { PresenceQueries } from '../../src/cluster/presence.js';

const entry = (id: string): PresenceEntry => ({ id, name: `n-${id}`, transport: 'tcp', since: '2026-01-01T00:00:00.000Z' });

test('ends once every node asked has answered, ignoring unasked and repeated answers', () => {
  const queries = new PresenceQueries<string>(10_000, 10);
  const got: PresenceEntry[][] = [];
  const id = queries.open(new Set(['b', 'c']), (remote) => got.push(remote))!;
  queries.answered(id, 'b', [entry('1')]);
  queries.answered(id, 'x', [entry('bad')]); // not asked
  queries.answered(id, 'b', [entry('again')]); // already answered
  assert.equal(got.length, 0);
  queries.answered(id, 'c', [entry('2'), entry('3')]);
  assert.deepEqual(got, [[entry('1'), entry('2'), entry('3')]]);
  assert.equal(queries.size, 0);
  queries.answered(id, 'c', [entry('late')]);
  assert.equal(got.length, 1, 'a late answer changes nothing');
});

test('a node leaving stops the wait for it; the timeout answers with what arrived', async () => {
  const queries = new PresenceQueries<string>(50, 10);
  let gone: PresenceEntry[] | null = null;
  const first = queries.open(new Set(['b', 'c']), (remote) => { gone = remote; })!;
  queries.answered(first, 'b', [entry('1')]);
  queries.gone('c');
  assert.deepEqual(gone, [entry('1')]);
  let timedOut: PresenceEntry[] | null = null;
  const started = Date.now();
  const second = queries.open(new Set(['b', 'c']), (remote) => { timedOut = remote; })!;
  queries.answered(second, 'c', [entry('2'), { id: 5 } as unknown as PresenceEntry]);
  await new Promise((resolve) => setTimeout(resolve, 80));
  assert.deepEqual(timedOut, [entry('2')], 'what arrived, malformed entries left out');
  assert.ok(Date.now() - started >= 45);
  assert.equal(queries.size, 0);
});

test('bounded: past the limit open() refuses; close() answers every waiting query', () => {
  const queries = new PresenceQueries<string>(10_000, 2);
  const done: number[] = [];
  assert.notEqual(queries.open(new Set(['b']), () => done.push(1)), null);
  assert.notEqual(queries.open(new Set(['b']), () => done.push(2)), null);
  assert.equal(queries.open(new Set(['b']), () => done.push(3)), null);
  queries.close();
  assert.deepEqual(done.sort(), [1, 2]);
  assert.equal(queries.size, 0);
});
