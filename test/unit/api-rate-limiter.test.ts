/** The HTTP API's per-token rate limit (src/http/api/rate-limiter.ts, docs/http-api.md). */
import test from 'node:test';
import assert from 'node:assert/strict';
import { RateLimiter } from '../../src/http/api/rate-limiter.js';

test('a burst passes, then the rate applies per key; other keys are unaffected', () => {
  const limiter = new RateLimiter(10, 3);
  const t = 1_000;
  assert.deepEqual([1, 2, 3, 4].map(() => limiter.take('a', t)), [true, true, true, false]);
  assert.equal(limiter.take('b', t), true, 'another token has its own bucket');
  assert.equal(limiter.take('a', t + 50), false, 'half a token after 50 ms at 10/s');
  assert.equal(limiter.take('a', t + 100), true, 'one token after 100 ms');
});

test('0 switches the limit off', () => {
  const limiter = new RateLimiter(0, 1);
  assert.equal(limiter.enabled, false);
  for (let i = 0; i < 100; i++) assert.equal(limiter.take('a', 0), true);
});

test('bounded: past maxKeys the least recently used half is forgotten, a forgotten key starts full', () => {
  const limiter = new RateLimiter(1, 1, 4);
  for (const key of ['a', 'b', 'c', 'd']) assert.equal(limiter.take(key, 0), true);
  assert.equal(limiter.take('a', 0), false, 'a is empty and now the most recently used');
  assert.equal(limiter.take('e', 0), true, 'e makes room: b and c are forgotten');
  assert.equal(limiter.take('b', 0), true, 'b starts again with a full bucket');
  assert.equal(limiter.take('a', 0), false, 'a was kept');
});
