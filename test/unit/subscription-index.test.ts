/**
 * SubscriptionIndex (spec §4.2): `*` matches exactly one token, a last `>` one or more trailing tokens; a match
 * gives the distinct plain subscribers and the queue groups keyed by name across patterns.
 *
 * Every suite runs twice: with the match cache on (cacheSize 4096) and off (cacheSize 0). The property test
 * compares the index with a naive token-by-token matcher over random interleavings of add, remove and match.
 */
import test, { describe } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import vm from 'node:vm';
import fc from 'fast-check';
import {
  SubscriptionIndex,
  isExactPattern,
  patternProblem,
  type MatchResult,
  type Subscription,
  type SubscriptionIndexOptions,
} from '../../src/broker/subscription-index.js';

const CONFIGS: readonly SubscriptionIndexOptions[] = [{ cacheSize: 4096 }, { cacheSize: 0 }];

function sub<T>(subscriber: T, pattern: string, group = ''): Subscription<T> {
  return { subscriber, pattern, group };
}

/** Order-free view of a match: sorted subscribers, groups by name with sorted members. */
function view<T>(m: MatchResult<T>): { subscribers: T[]; groups: Record<string, T[]> } {
  const groups: Record<string, T[]> = {};
  for (const g of m.groups) {
    assert.equal(groups[g.name], undefined, `group ${g.name} listed twice`);
    groups[g.name] = [...g.members].sort();
  }
  return { subscribers: [...m.subscribers].sort(), groups };
}

/** White-box: the trie's root node (private), to check that removals prune it back to nothing. */
function rootIsEmpty(index: SubscriptionIndex<unknown>): boolean {
  return (index as unknown as { root: { isEmpty(): boolean } }).root.isEmpty();
}

function forceGc(): (() => void) | null {
  try {
    v8.setFlagsFromString('--expose-gc');
    const gc: unknown = vm.runInNewContext('gc');
    return typeof gc === 'function' ? (gc as () => void) : null;
  } catch {
    return null;
  }
}

for (const options of CONFIGS) {
  const label = `cacheSize ${options.cacheSize}`;
  const make = <T = string>() => new SubscriptionIndex<T>(options);

  describe(`SubscriptionIndex (${label})`, () => {
    test('exact patterns match only their event', () => {
      const index = make();
      index.add(sub('s1', 'a.b'));
      index.add(sub('s2', 'a.c'));
      index.add(sub('s3', 'a'));
      assert.deepEqual(view(index.match('a.b')), { subscribers: ['s1'], groups: {} });
      assert.deepEqual(view(index.match('a.c')), { subscribers: ['s2'], groups: {} });
      assert.deepEqual(view(index.match('a')), { subscribers: ['s3'], groups: {} });
      assert.deepEqual(view(index.match('a.b.c')), { subscribers: [], groups: {} });
      assert.deepEqual(view(index.match('b')), { subscribers: [], groups: {} });
      assert.deepEqual(view(index.match('ab')), { subscribers: [], groups: {} });
    });

    test('`*` matches exactly one token', () => {
      const index = make();
      index.add(sub('s', 'a.*'));
      assert.deepEqual(index.match('a.b').subscribers, ['s']);
      assert.deepEqual(index.match('a.xyz').subscribers, ['s']);
      assert.deepEqual(index.match('a').subscribers, []);
      assert.deepEqual(index.match('a.b.c').subscribers, []);
      assert.deepEqual(index.match('b.b').subscribers, []);
    });

    test('a lone `*` matches any one-token event', () => {
      const index = make();
      index.add(sub('s', '*'));
      assert.deepEqual(index.match('a').subscribers, ['s']);
      assert.deepEqual(index.match('a.b').subscribers, []);
    });

    test('`>` matches one or more trailing tokens', () => {
      const index = make();
      index.add(sub('s', 'a.>'));
      assert.deepEqual(index.match('a.b').subscribers, ['s']);
      assert.deepEqual(index.match('a.b.c').subscribers, ['s']);
      assert.deepEqual(index.match('a.b.c.d.e').subscribers, ['s']);
      assert.deepEqual(index.match('a').subscribers, []);
      assert.deepEqual(index.match('b.a').subscribers, []);
    });

    test('a lone `>` matches every event', () => {
      const index = make();
      index.add(sub('s', '>'));
      assert.deepEqual(index.match('a').subscribers, ['s']);
      assert.deepEqual(index.match('a.b.c').subscribers, ['s']);
    });

    test('`*` in the middle', () => {
      const index = make();
      index.add(sub('s', 'a.*.c'));
      assert.deepEqual(index.match('a.b.c').subscribers, ['s']);
      assert.deepEqual(index.match('a.x.c').subscribers, ['s']);
      assert.deepEqual(index.match('a.c').subscribers, []);
      assert.deepEqual(index.match('a.b.d').subscribers, []);
      assert.deepEqual(index.match('a.b.c.d').subscribers, []);
      assert.deepEqual(index.match('a.b.x.c').subscribers, []);
    });

    test('`*` and `>` together', () => {
      const index = make();
      index.add(sub('s', '*.b.>'));
      assert.deepEqual(index.match('a.b.c').subscribers, ['s']);
      assert.deepEqual(index.match('x.b.c.d').subscribers, ['s']);
      assert.deepEqual(index.match('a.b').subscribers, []);
      assert.deepEqual(index.match('a.c.c').subscribers, []);
    });

    test('a subscriber matching through several patterns is listed once', () => {
      const index = make();
      index.add(sub('s', 'a.b'));
      index.add(sub('s', 'a.*'));
      index.add(sub('s', 'a.>'));
      index.add(sub('s', '>'));
      index.add(sub('t', 'a.*'));
      assert.deepEqual(view(index.match('a.b')), { subscribers: ['s', 't'], groups: {} });
      assert.deepEqual(view(index.match('a.c')), { subscribers: ['s', 't'], groups: {} });
      assert.deepEqual(view(index.match('a.b.c')), { subscribers: ['s'], groups: {} });
    });

    test('queue groups: distinct members, one group per name across patterns', () => {
      const index = make();
      index.add(sub('s1', 'a.*', 'g'));
      index.add(sub('s2', 'a.>', 'g'));
      index.add(sub('s1', 'a.>', 'g'));
      index.add(sub('s3', 'a.b', 'h'));
      index.add(sub('s4', 'a.c', 'h'));
      assert.deepEqual(view(index.match('a.b')), { subscribers: [], groups: { g: ['s1', 's2'], h: ['s3'] } });
      assert.deepEqual(view(index.match('a.b.c')), { subscribers: [], groups: { g: ['s1', 's2'] } });
      assert.deepEqual(view(index.match('a.c')), { subscribers: [], groups: { g: ['s1', 's2'], h: ['s4'] } });
      assert.deepEqual(view(index.match('a.d')).groups, { g: ['s1', 's2'] });
      const g = index.match('a.b').groups.find((x) => x.name === 'g');
      assert.ok(g !== undefined);
      assert.equal(g.members.length, 2);
    });

    test('plain and group subscriptions of one subscriber: in both lists', () => {
      const index = make();
      index.add(sub('s', 'a.b'));
      index.add(sub('s', 'a.*'));
      index.add(sub('s', 'a.b', 'g'));
      index.add(sub('s', 'a.>', 'g'));
      assert.deepEqual(view(index.match('a.b')), { subscribers: ['s'], groups: { g: ['s'] } });
    });

    test('remove: true once then false, and the subscription no longer matches', () => {
      const index = make();
      const s = sub('s', 'a.*');
      index.add(s);
      assert.deepEqual(index.match('a.b').subscribers, ['s']);
      assert.equal(index.remove(s), true);
      assert.equal(index.remove(s), false);
      assert.deepEqual(index.match('a.b').subscribers, []);
      assert.equal(index.size, 0);
    });

    test('remove is by identity and leaves an identical pattern of another subscriber', () => {
      const index = make();
      const s1 = sub('s1', 'a.>', 'g');
      const s2 = sub('s2', 'a.>', 'g');
      const p1 = sub('s1', 'a.b');
      const p2 = sub('s2', 'a.b');
      for (const s of [s1, s2, p1, p2]) index.add(s);
      assert.equal(index.remove(sub('s1', 'a.b')), false, 'an equal but different object is not removed');
      assert.equal(index.remove(s1), true);
      assert.equal(index.remove(p1), true);
      assert.deepEqual(view(index.match('a.b')), { subscribers: ['s2'], groups: { g: ['s2'] } });
      assert.equal(index.size, 2);
    });

    test('removing what was never added: false, nothing changes', () => {
      const index = make();
      index.add(sub('s', 'a.b.c'));
      assert.equal(index.remove(sub('s', 'a.b')), false);
      assert.equal(index.remove(sub('s', 'a.b.c.d')), false);
      assert.equal(index.remove(sub('s', 'a.*.c')), false);
      assert.equal(index.remove(sub('s', 'a.>')), false);
      assert.equal(index.remove(sub('s', 'x')), false);
      assert.equal(index.size, 1);
      assert.deepEqual(index.match('a.b.c').subscribers, ['s']);
    });

    test('removing a prefix pattern keeps the longer ones below it', () => {
      const index = make();
      const short = sub('s1', 'a.b');
      index.add(short);
      index.add(sub('s2', 'a.b.c'));
      index.add(sub('s3', 'a.b.>'));
      index.add(sub('s4', 'a.*'));
      assert.equal(index.remove(short), true);
      assert.deepEqual(view(index.match('a.b.c')).subscribers, ['s2', 's3']);
      assert.deepEqual(view(index.match('a.b')).subscribers, ['s4']);
    });

    test('add invalidates cached matches', () => {
      const index = make();
      index.add(sub('s1', 'a.b'));
      assert.deepEqual(index.match('a.b').subscribers, ['s1']);
      assert.deepEqual(index.match('x.y').subscribers, []);
      index.add(sub('s2', 'a.*'));
      index.add(sub('s3', '>'));
      assert.deepEqual(view(index.match('a.b')).subscribers, ['s1', 's2', 's3']);
      assert.deepEqual(index.match('x.y').subscribers, ['s3']);
    });

    test('remove invalidates cached matches', () => {
      const index = make();
      const s1 = sub('s1', 'a.b');
      const s2 = sub('s2', 'a.>', 'g');
      index.add(s1);
      index.add(s2);
      assert.deepEqual(view(index.match('a.b')), { subscribers: ['s1'], groups: { g: ['s2'] } });
      index.remove(s2);
      assert.deepEqual(view(index.match('a.b')), { subscribers: ['s1'], groups: {} });
      index.remove(s1);
      assert.deepEqual(view(index.match('a.b')), { subscribers: [], groups: {} });
    });

    test('repeated matches give equal results', () => {
      const index = make();
      index.add(sub('s1', 'a.*'));
      index.add(sub('s2', 'a.>', 'g'));
      const first = view(index.match('a.b'));
      for (let i = 0; i < 3; i++) assert.deepEqual(view(index.match('a.b')), first);
    });

    test('the cache is bounded', () => {
      const bounded = new SubscriptionIndex<string>({ cacheSize: options.cacheSize === 0 ? 0 : 16 });
      bounded.add(sub('s', 'e.>'));
      bounded.add(sub('t', 'e.*'));
      for (let i = 0; i < 1000; i++) {
        const m = bounded.match(`e.${i}`);
        assert.deepEqual(view(m).subscribers, ['s', 't']);
        assert.ok(bounded.cachedEvents <= 16);
      }
      if (options.cacheSize === 0) assert.equal(bounded.cachedEvents, 0);
      else assert.ok(bounded.cachedEvents > 0);
      // Evicted events still match correctly.
      assert.deepEqual(view(bounded.match('e.0')).subscribers, ['s', 't']);
      // A change empties it.
      bounded.add(sub('u', 'f'));
      assert.equal(bounded.cachedEvents, 0);
    });

    test('the full-size cache stays within cacheSize', () => {
      const index = make();
      index.add(sub('s', '>'));
      for (let i = 0; i < 3 * options.cacheSize + 500; i++) {
        index.match(`x.${i}`);
        assert.ok(index.cachedEvents <= options.cacheSize);
      }
      if (options.cacheSize > 0) assert.ok(index.cachedEvents > 0);
      else assert.equal(index.cachedEvents, 0);
    });

    test('size counts subscriptions', () => {
      const index = make();
      assert.equal(index.size, 0);
      const subs = [sub('s', 'a'), sub('s', 'a.*'), sub('t', 'a.*'), sub('s', 'a.>', 'g'), sub('s', '>')];
      subs.forEach((s, i) => {
        index.add(s);
        assert.equal(index.size, i + 1);
      });
      index.remove(subs[1]);
      assert.equal(index.size, 4);
      index.remove(subs[1]);
      assert.equal(index.size, 4, 'a failed removal does not count');
      for (const s of subs) index.remove(s);
      assert.equal(index.size, 0);
    });

    test('removing everything prunes the trie', () => {
      const index = make();
      const patterns = ['a', 'a.b', 'a.b.c', 'a.*', 'a.*.c', '*', '*.b', '>', 'a.>', 'a.b.>', '*.>', 'x.y.z.w'];
      const subs = patterns.flatMap((p) => [sub('s1', p), sub('s2', p, 'g'), sub('s3', p)]);
      for (const s of subs) index.add(s);
      assert.equal(rootIsEmpty(index), false);
      // Remove in a different order from the adds.
      for (let i = subs.length - 1; i >= 0; i -= 2) assert.equal(index.remove(subs[i]), true);
      for (let i = subs.length - 2; i >= 0; i -= 2) assert.equal(index.remove(subs[i]), true);
      assert.equal(index.size, 0);
      assert.equal(rootIsEmpty(index), true);
      for (const e of ['a', 'a.b', 'a.b.c', 'x.y.z.w', 'q']) assert.deepEqual(view(index.match(e)), { subscribers: [], groups: {} });
    });

    test('100k add/remove cycles do not grow the heap', (t) => {
      const gc = forceGc();
      const index = make<number>();
      const keep = sub(-1, 'keep.*');
      index.add(keep);
      const cycle = (from: number, to: number) => {
        for (let i = from; i < to; i++) {
          const s = sub(i, `t${i}.orders.${i % 7}.${i % 2 === 0 ? '*' : '>'}`, i % 3 === 0 ? 'g' : '');
          index.add(s);
          if (i % 10 === 0) index.match(`t${i}.orders.${i % 7}.x`);
          assert.equal(index.remove(s), true);
        }
      };
      cycle(0, 20_000); // warm up
      let before = 0;
      if (gc !== null) {
        gc();
        before = process.memoryUsage().heapUsed;
      }
      cycle(20_000, 120_000);
      assert.equal(index.size, 1);
      assert.deepEqual(index.match('keep.x').subscribers, [-1]);
      index.remove(keep);
      assert.equal(rootIsEmpty(index), true);
      if (gc === null) {
        t.diagnostic('no gc available: memory part skipped');
        return;
      }
      gc();
      const grown = process.memoryUsage().heapUsed - before;
      t.diagnostic(`heap delta after 100k cycles: ${grown} bytes`);
      // 100k distinct patterns that were kept would be well over 10 MB.
      assert.ok(grown < 2_000_000, `heap grew by ${grown} bytes`);
    });
  });
}

describe('patternProblem', () => {
  test('invalid patterns', () => {
    const invalid = ['', 'a..b', '.a', 'a.', '..', '.', 'a.>.b', '>.a', 'a*', '*a', 'a.b>', '>a', 'a.**', '$x', '$sub', ' a', 'a b', 'a.\tb', 'a.b\n', 'x'.repeat(513), 'é'.repeat(257)];
    for (const p of invalid) {
      const problem = patternProblem(p);
      assert.equal(typeof problem, 'string', `expected a problem for ${JSON.stringify(p)}`);
      assert.ok((problem ?? '').length > 0);
    }
  });

  test("'&' and '=' are refused, as the client refuses them: they would cut the $sub meta that carries the pattern", async () => {
    const client = await import('../../src/client/pattern.js');
    for (const p of ['a=b', 'a&b', 'x.a=b.y', 'x.&']) {
      assert.match(patternProblem(p) ?? '', /'&' or '='/, p);
      assert.equal(client.patternProblem(p), patternProblem(p), `client and broker agree on ${p}`);
    }
  });

  test('valid patterns', () => {
    const valid = ['a', '*', '>', 'a.*.c', 'a.>', '*.>', '*.*', 'a.b.c', 'a$', 'a.$b', 'ä.ö', 'x'.repeat(512), 'a-b_c:d', '0.1.2'];
    for (const p of valid) assert.equal(patternProblem(p), null, `expected ${JSON.stringify(p)} to be valid`);
  });

  test('the length limit is in bytes and configurable', () => {
    assert.equal(patternProblem('abcd', 4), null);
    assert.match(patternProblem('abcde', 4) ?? '', /longer than 4 bytes/);
    assert.match(patternProblem('ééé', 5) ?? '', /longer than 5 bytes/);
  });
});

describe('isExactPattern', () => {
  test('patterns without wildcards are exact', () => {
    for (const p of ['a', 'a.b', 'a.b.c', 'tenant1.orders.7']) assert.equal(isExactPattern(p), true, p);
  });
  test('patterns with a wildcard token are not', () => {
    for (const p of ['*', '>', 'a.*', 'a.>', '*.b', 'a.*.c']) assert.equal(isExactPattern(p), false, p);
  });
});

// ----- property test ---------------------------------------------------------------------------------------

/** Reference matcher: token by token. */
function naiveMatches(pattern: string, event: string): boolean {
  const p = pattern.split('.');
  const e = event.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return i === p.length - 1 && e.length > i;
    if (i >= e.length) return false;
    if (p[i] !== '*' && p[i] !== e[i]) return false;
  }
  return p.length === e.length;
}

function naiveMatch(subs: readonly Subscription<number>[], event: string): { subscribers: number[]; groups: Record<string, number[]> } {
  const plain = new Set<number>();
  const groups = new Map<string, Set<number>>();
  for (const s of subs) {
    if (!naiveMatches(s.pattern, event)) continue;
    if (s.group === '') plain.add(s.subscriber);
    else {
      let g = groups.get(s.group);
      if (g === undefined) groups.set(s.group, (g = new Set()));
      g.add(s.subscriber);
    }
  }
  const out: Record<string, number[]> = {};
  for (const [name, members] of groups) out[name] = [...members].sort();
  return { subscribers: [...plain].sort(), groups: out };
}

/** Checks the shape of a result: no duplicate subscribers, no empty or duplicate groups, distinct members. */
function checkShape(m: MatchResult<number>): void {
  assert.equal(new Set(m.subscribers).size, m.subscribers.length, 'duplicate plain subscriber');
  assert.equal(new Set(m.groups.map((g) => g.name)).size, m.groups.length, 'duplicate group');
  for (const g of m.groups) {
    assert.ok(g.members.length > 0, 'empty group');
    assert.equal(new Set(g.members).size, g.members.length, `duplicate member in ${g.name}`);
  }
}

const TOKENS = ['a', 'b', 'c', 'd'];
const eventArb = fc.array(fc.constantFrom(...TOKENS), { minLength: 1, maxLength: 5 }).map((t) => t.join('.'));
const patternArb = fc
  .tuple(fc.array(fc.constantFrom(...TOKENS, '*'), { minLength: 1, maxLength: 5 }), fc.boolean())
  .map(([tokens, tail]) => (tail ? [...tokens.slice(0, -1), '>'] : tokens).join('.'));

type Op =
  | { kind: 'add'; subscriber: number; pattern: string; group: string }
  | { kind: 'remove'; pick: number }
  | { kind: 'match'; event: string };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('add' as const),
      subscriber: fc.integer({ min: 0, max: 9 }),
      pattern: patternArb,
      group: fc.constantFrom('', '', 'g1', 'g2'),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('remove' as const), pick: fc.nat() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('match' as const), event: eventArb }) },
);

// A small cache too, so eviction happens between changes.
for (const options of [...CONFIGS, { cacheSize: 8 }]) {
  describe(`SubscriptionIndex vs a naive matcher (cacheSize ${options.cacheSize})`, () => {
    test('random adds, removes and matches', () => {
      fc.assert(
        fc.property(fc.array(opArb, { maxLength: 60 }), fc.array(eventArb, { minLength: 1, maxLength: 20 }), (ops, finalEvents) => {
          const index = new SubscriptionIndex<number>(options);
          const live: Subscription<number>[] = [];
          const compare = (event: string) => {
            const got = index.match(event);
            checkShape(got);
            assert.deepEqual(view(got), naiveMatch(live, event), `event ${event}`);
          };
          for (const op of ops) {
            if (op.kind === 'add') {
              // Precondition of add: the same (subscriber, pattern, group) is not already present.
              if (live.some((s) => s.subscriber === op.subscriber && s.pattern === op.pattern && s.group === op.group)) continue;
              const s = sub(op.subscriber, op.pattern, op.group);
              index.add(s);
              live.push(s);
            } else if (op.kind === 'remove') {
              if (live.length === 0) {
                assert.equal(index.remove(sub(0, 'a')), false);
                continue;
              }
              const [s] = live.splice(op.pick % live.length, 1);
              assert.equal(index.remove(s), true);
              assert.equal(index.remove(s), false);
            } else compare(op.event);
            assert.equal(index.size, live.length);
          }
          for (const e of finalEvents) compare(e);
          for (const s of live.splice(0)) assert.equal(index.remove(s), true);
          assert.equal(index.size, 0);
          assert.equal(rootIsEmpty(index), true);
          for (const e of finalEvents) compare(e);
        }),
        { numRuns: 400 },
      );
    });
  });
}
