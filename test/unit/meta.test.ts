/**
 * Meta strings (spec §1): `k=v&k=v`, never URL-encoded, split on `&` then on the first `=`.
 */
import test, { describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { formatMeta, metaAppend, metaGet, parseMeta } from '../../src/protocol/meta.js';

const entries = (meta: string) => [...parseMeta(meta)];

describe('parseMeta', () => {
  test('the empty string has no metas', () => {
    assert.equal(parseMeta('').size, 0);
  });

  test('pairs in order of first appearance', () => {
    assert.deepEqual(entries('a=1&b=2&c=3'), [['a', '1'], ['b', '2'], ['c', '3']]);
    assert.deepEqual(entries('Socket.D=1.0'), [['Socket.D', '1.0']]);
  });

  test('a key without "=" has the empty value; "k=" too', () => {
    assert.deepEqual(entries('flag'), [['flag', '']]);
    assert.deepEqual(entries('a&b=2&c'), [['a', ''], ['b', '2'], ['c', '']]);
    assert.deepEqual(entries('a='), [['a', '']]);
  });

  test('a value containing "=" is split at the first "="', () => {
    assert.deepEqual(entries('token=abc==&x=a=b=c'), [['token', 'abc=='], ['x', 'a=b=c']]);
    assert.deepEqual(entries('=v'), [['', 'v']]);
  });

  test('a repeated key: the last one wins', () => {
    const map = parseMeta('a=1&b=2&a=3');
    assert.equal(map.get('a'), '3');
    assert.equal(map.get('b'), '2');
    assert.equal(map.size, 2);
  });

  test('empty segments are skipped', () => {
    assert.deepEqual(entries('&a=1&&b=2&'), [['a', '1'], ['b', '2']]);
    assert.equal(parseMeta('&&&').size, 0);
  });

  test('nothing is URL-decoded', () => {
    assert.deepEqual(entries('a=%20&b=x+y&c%3D=1'), [['a', '%20'], ['b', 'x+y'], ['c%3D', '1']]);
  });

  test('keys and values keep unicode and spaces verbatim', () => {
    assert.deepEqual(entries(' k = v &名=值'), [[' k ', ' v '], ['名', '值']]);
  });
});

describe('metaGet', () => {
  test('the empty string and an absent key give undefined', () => {
    assert.equal(metaGet('', 'a'), undefined);
    assert.equal(metaGet('b=1', 'a'), undefined);
  });

  test('a key that is a prefix of another key does not match it', () => {
    assert.equal(metaGet('ab=1', 'a'), undefined);
    assert.equal(metaGet('ab=1&a=2', 'a'), '2');
    assert.equal(metaGet('a=2&ab=1', 'a'), '2');
    assert.equal(metaGet('ab', 'a'), undefined);
    assert.equal(metaGet('a=1', 'ab'), undefined);
    assert.equal(metaGet('xa=1', 'a'), undefined, 'nor a suffix');
  });

  test('a key without "=" gives the empty string', () => {
    assert.equal(metaGet('flag', 'flag'), '');
    assert.equal(metaGet('a=1&flag&b=2', 'flag'), '');
  });

  test('a value containing "=" is split at the first "="', () => {
    assert.equal(metaGet('x=a=b', 'x'), 'a=b');
  });

  test('a repeated key: the last one wins, as with parseMeta', () => {
    assert.equal(metaGet('a=1&b=2&a=3', 'a'), '3');
    assert.equal(metaGet('a=1&a&b=2', 'a'), '');
  });

  test('nothing is URL-decoded', () => {
    assert.equal(metaGet('a=%20', 'a'), '%20');
    assert.equal(metaGet('%40=svc&@=x', '%40'), 'svc');
  });

  test('reads the broker keys of the reference frames', () => {
    assert.equal(metaGet('@=svc', '@'), 'svc');
    assert.equal(metaGet('code=1001', 'code'), '1001');
    assert.equal(metaGet('Socket.D=1.0', 'Socket.D'), '1.0');
  });

  test('agrees with parseMeta for any meta string and key (property)', () => {
    // Small alphabets so keys collide, prefix each other and contain the delimiters.
    const text = fc.string({ unit: fc.constantFrom('a', 'b', '=', '&', '%', 'é'), maxLength: 16 });
    const key = fc.string({ unit: fc.constantFrom('a', 'b', '%', 'é'), minLength: 1, maxLength: 3 });
    fc.assert(
      fc.property(text, key, (meta, k) => {
        assert.equal(metaGet(meta, k), parseMeta(meta).get(k), `metaGet(${JSON.stringify(meta)}, ${JSON.stringify(k)})`);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('formatMeta and metaAppend', () => {
  test('formatMeta joins k=v with & in iteration order, without encoding', () => {
    assert.equal(formatMeta([['a', '1'], ['b', 'x y'], ['c', '%20']]), 'a=1&b=x y&c=%20');
    assert.equal(formatMeta({ '@': 'svc', code: '4004' }), '@=svc&code=4004');
    assert.equal(formatMeta(new Map([['k', 'v=w']])), 'k=v=w');
    assert.equal(formatMeta([]), '');
    assert.equal(formatMeta({}), '');
  });

  test('metaAppend adds a key to an empty or non-empty meta string', () => {
    assert.equal(metaAppend('', 'code', '4004'), 'code=4004');
    assert.equal(metaAppend('@=nobody', 'code', '4004'), '@=nobody&code=4004');
    // The original string is kept verbatim, and the appended key wins over an earlier one.
    assert.equal(metaGet(metaAppend('code=1&x=%20', 'code', '2'), 'code'), '2');
    assert.equal(metaAppend('code=1&x=%20', 'code', '2'), 'code=1&x=%20&code=2');
  });

  test('round trip: parseMeta(formatMeta(m)) = m (property)', () => {
    const key = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 6 }).filter((k) => !k.includes('&') && !k.includes('='));
    const value = fc.string({ unit: 'grapheme', maxLength: 8 }).filter((v) => !v.includes('&'));
    fc.assert(
      fc.property(fc.uniqueArray(fc.tuple(key, value), { selector: ([k]) => k, maxLength: 6 }), (pairs) => {
        const meta = formatMeta(pairs);
        assert.deepEqual([...parseMeta(meta)], pairs);
        for (const [k, v] of pairs) assert.equal(metaGet(meta, k), v);
        assert.equal(formatMeta(parseMeta(meta)), meta);
      }),
      { numRuns: 500 },
    );
  });
});
