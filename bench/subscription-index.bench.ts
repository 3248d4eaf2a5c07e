/**
 * Benchmark of the event subscription index (src/broker/subscription-index.ts, spec §4.2).
 *
 * For N = 10k, 100k and 1M subscriptions (a realistic mix: ~70% exact `tenant<i>.<kind>.<j>`, ~20% with `*`,
 * ~10% with `>`, ~2% in queue groups) it measures the time to build the index, the heap it takes (heapUsed
 * delta after forced GCs) and matches per second for:
 *   - cache off, wide event mix (100k distinct events: ~60% hit an exact subscription, ~20% a tenant's
 *     random event that may hit wildcards only, ~20% unknown tenants that hit nothing);
 *   - cache off, hot set (the same mix drawn from 1,000 distinct events);
 *   - cache on (cacheSize 4096), hot set: after the first round every match is a cache hit;
 *   - cache on, wide mix: the cache mostly misses (its overhead on top of the trie walk).
 *
 * Run: `npm run bench:index` (build + run), or `node dist/bench/subscription-index.bench.js` after a build.
 * Options: `--sizes=10000,100000` (default 10000,100000,1000000), `--seconds=1` per case, `--no-write`
 * (do not update bench/results.md). The whole run takes about a minute on 2 cores.
 */
import os from 'node:os';
import v8 from 'node:v8';
import vm from 'node:vm';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SubscriptionIndex, type Subscription } from '../src/broker/subscription-index.js';

// ----- options ---------------------------------------------------------------------------------------------

const args = process.argv.slice(2);
const arg = (name: string): string | undefined => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const SIZES = (arg('sizes') ?? '10000,100000,1000000').split(',').map((s) => Number(s.replace(/_/g, '')));
const SECONDS = Number(arg('seconds') ?? 1);
const WRITE = !args.includes('--no-write');
const RESULTS = fileURLToPath(new URL('../../bench/results.md', import.meta.url));
const SECTION = '## Subscription index';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

function heapAfterGc(): number {
  gc();
  return process.memoryUsage().heapUsed;
}

// ----- workload --------------------------------------------------------------------------------------------

/** mulberry32: a small seeded PRNG, so every run builds the same workload. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const KINDS = ['orders', 'payments', 'chat', 'presence', 'metrics'];

interface Workload {
  subs: Subscription<number>[];
  exact: number;
  star: number;
  tail: number;
  grouped: number;
  tenants: number;
}

function workload(n: number): Workload {
  const rnd = prng(n);
  const int = (m: number) => Math.floor(rnd() * m);
  const tenants = Math.max(10, Math.floor(n / 20));
  const sessions = Math.max(10, Math.floor(n / 5));
  const seen = new Set<string>();
  const subs: Subscription<number>[] = [];
  let exact = 0;
  let star = 0;
  let tail = 0;
  let grouped = 0;
  // A few broker-wide monitors.
  for (let s = 0; s < 5; s++) {
    subs.push({ subscriber: s, pattern: '*.alerts.>', group: '' });
    seen.add(`${s} *.alerts.> `);
    tail++;
  }
  while (subs.length < n) {
    const t = int(tenants);
    const kind = KINDS[int(KINDS.length)];
    const r = rnd();
    let pattern: string;
    if (r < 0.7) pattern = `tenant${t}.${kind}.${int(100)}`;
    else if (r < 0.85) pattern = `tenant${t}.${kind}.*`;
    else if (r < 0.9) pattern = `tenant${t}.*.${int(100)}`;
    else if (r < 0.98) pattern = `tenant${t}.${kind}.>`;
    else pattern = `tenant${t}.>`;
    const group = rnd() < 0.02 ? `workers-${kind}-${t % 50}` : '';
    const subscriber = int(sessions);
    const key = `${subscriber} ${pattern} ${group}`;
    if (seen.has(key)) continue;
    seen.add(key);
    subs.push({ subscriber, pattern, group });
    if (r < 0.7) exact++;
    else if (r < 0.9) star++;
    else tail++;
    if (group !== '') grouped++;
  }
  return { subs, exact, star, tail, grouped, tenants };
}

/** The event pools for a workload, from its own seeded PRNG. */
function eventPools(w: Workload): { wide: string[]; hot: string[] } {
  const rnd = prng(w.subs.length + 1);
  const int = (m: number) => Math.floor(rnd() * m);
  const tenants = w.tenants;
  const exactPatterns = w.subs.filter((s) => !s.pattern.includes('*') && !s.pattern.includes('>')).map((s) => s.pattern);
  const event = (): string => {
    const r = rnd();
    // Flat copies (not the patterns' own strings), as an event decoded from a frame would be.
    if (r < 0.6) return Buffer.from(exactPatterns[int(exactPatterns.length)]).toString();
    if (r < 0.8) return `tenant${int(tenants)}.${KINDS[int(KINDS.length)]}.${int(1000)}`;
    if (r < 0.9) return `guest${int(1_000_000)}.orders.${int(100)}`;
    return `tenant${tenants + int(tenants)}.chat.${int(100)}`;
  };
  return { wide: Array.from({ length: 100_000 }, event), hot: Array.from({ length: 1_000 }, event) };
}

// ----- measuring -------------------------------------------------------------------------------------------

/** CPU seconds (user + system, all threads: GC included) since `from`. */
function cpuSeconds(from: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(from);
  return (d.user + d.system) / 1e6;
}

interface Rate {
  /** Per CPU second of the process (robust against other load on the machine). */
  perSecond: number;
  /** Per wall-clock second. */
  wallPerSecond: number;
  matches: number;
  /** Fraction of events with at least one subscriber or group. */
  hitRatio: number;
  /** Mean subscribers + group members per match. */
  fanOut: number;
}

let sink = 0;

function measureMatches(index: SubscriptionIndex<number>, events: readonly string[], seconds: number): Rate {
  const len = events.length;
  // Warm up (JIT, and the cache when on).
  for (let i = 0; i < Math.min(200_000, 4 * len); i++) sink += index.match(events[i % len]).subscribers.length;
  const batch = 50_000;
  let done = 0;
  let hits = 0;
  let fan = 0;
  let at = 0;
  const start = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  const budget = BigInt(Math.round(seconds * 1e9));
  let elapsed = 0n;
  do {
    for (let i = 0; i < batch; i++) {
      const m = index.match(events[at]);
      if (++at === len) at = 0;
      let k = m.subscribers.length;
      for (const g of m.groups) k += g.members.length;
      if (k > 0) hits++;
      fan += k;
    }
    done += batch;
    elapsed = process.hrtime.bigint() - start;
  } while (elapsed < budget);
  const cpu = cpuSeconds(cpu0);
  sink += fan;
  return { perSecond: done / cpu, wallPerSecond: done / (Number(elapsed) / 1e9), matches: done, hitRatio: hits / done, fanOut: fan / done };
}

interface Row {
  n: number;
  mix: string;
  buildMs: number;
  addsPerSecond: number;
  indexBytes: number;
  subsBytes: number;
  offWide: Rate;
  offHot: Rate;
  onHot: Rate;
  onWide: Rate;
}

function build(subs: readonly Subscription<number>[], cacheSize: number): { index: SubscriptionIndex<number>; ms: number } {
  const index = new SubscriptionIndex<number>({ cacheSize });
  const cpu0 = process.cpuUsage();
  for (const s of subs) index.add(s);
  return { index, ms: cpuSeconds(cpu0) * 1000 };
}

/** Builds an index (timed) and measures matches on the wide then the hot events. */
function timeIndex(subs: readonly Subscription<number>[], cacheSize: number, wide: readonly string[], hot: readonly string[]): { ms: number; rates: Rate[] } {
  const { index, ms } = build(subs, cacheSize);
  if (index.size !== subs.length) throw new Error(`size ${index.size} != ${subs.length}`);
  return { ms, rates: [measureMatches(index, wide, SECONDS), measureMatches(index, hot, SECONDS)] };
}

/** Heap taken by an index of `subs` (heapUsed after forced GC, with it minus before it). */
function indexHeap(subs: readonly Subscription<number>[]): number {
  const before = heapAfterGc();
  const { index } = build(subs, 0);
  const after = heapAfterGc();
  if (index.size !== subs.length) throw new Error('index size');
  return after - before;
}

/** Heap taken by a workload's subscriptions (objects and pattern strings). */
function workloadHeap(n: number): number {
  const before = heapAfterGc();
  const w = workload(n);
  const after = heapAfterGc();
  if (w.subs.length !== n) throw new Error('workload size');
  return after - before;
}

/**
 * One size, in a child process of its own (so sizes do not disturb each other's heap and JIT state). Forced
 * GCs come only after the timed parts: a forced full GC changes V8's later GC behaviour (the cache-on cases
 * ran up to 3x slower after one), and a broker never forces one.
 */
function runSize(n: number): Row {
  let w: Workload | null = workload(n);
  const { wide, hot } = eventPools(w);
  if (n > 100_000) build(w.subs.slice(0, 100_000), 0); // a discarded warm-up build (JIT)
  // One index alive at a time (each dropped when its function returns): cache off first, then cache on.
  const subs = w.subs;
  const { ms: buildMs, rates: offRates } = timeIndex(subs, 0, wide, hot);
  const { rates: onRates } = timeIndex(subs, 4096, wide, hot);
  const [offWide, offHot] = offRates;
  const [onWide, onHot] = onRates;
  const pct = (k: number) => `${Math.round((100 * k) / n)}%`;
  const mix = `${pct(w.exact)} exact, ${pct(w.star)} \`*\`, ${pct(w.tail)} \`>\`, ${pct(w.grouped)} grouped`;
  // Heap, after the timed parts: an index built once more, then the subscriptions on their own.
  const indexBytes = indexHeap(subs);
  w = null;
  const subsBytes = workloadHeap(n);
  return {
    n,
    mix,
    buildMs,
    addsPerSecond: n / (buildMs / 1000),
    indexBytes,
    subsBytes,
    offWide,
    offHot,
    onHot,
    onWide,
  };
}

// ----- output ----------------------------------------------------------------------------------------------

const fmtInt = (x: number) => Math.round(x).toLocaleString('en-US');
const fmtRate = (x: number) => (x >= 1e6 ? `${(x / 1e6).toFixed(2)} M` : `${(x / 1e3).toFixed(0)} k`);
const fmtMB = (b: number) => `${(b / 1048576).toFixed(1)} MB`;
const fmtN = (n: number) => (n >= 1e6 ? `${n / 1e6}M` : n >= 1e3 ? `${n / 1e3}k` : String(n));

function table(rows: readonly Row[]): string {
  const lines = [
    '| subscriptions | build | adds/s | index heap | per sub | matches/s, cache off, wide | cache off, hot | cache on, hot | cache on, wide |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${fmtN(r.n)} | ${fmtInt(r.buildMs)} ms | ${fmtRate(r.addsPerSecond)} | ${fmtMB(r.indexBytes)} | ${fmtInt(r.indexBytes / r.n)} B | ` +
        `${fmtRate(r.offWide.perSecond)} | ${fmtRate(r.offHot.perSecond)} | ${fmtRate(r.onHot.perSecond)} | ${fmtRate(r.onWide.perSecond)} |`,
    );
  }
  return lines.join('\n');
}

function detail(rows: readonly Row[]): string {
  const lines = [
    '| subscriptions | mix | subscription objects heap (not in index heap) | events with a match (wide / hot) | mean fan-out (wide / hot) | matches timed per case | wall-clock rate / CPU rate |',
    '|---:|---|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const pc = (x: number) => `${(100 * x).toFixed(0)}%`;
    const cases = [r.offWide, r.offHot, r.onHot, r.onWide];
    const minMatches = Math.min(...cases.map((c) => c.matches));
    const ratios = cases.map((c) => c.wallPerSecond / c.perSecond);
    lines.push(
      `| ${fmtN(r.n)} | ${r.mix} | ${fmtMB(r.subsBytes)} | ${pc(r.offWide.hitRatio)} / ${pc(r.offHot.hitRatio)} | ` +
        `${r.offWide.fanOut.toFixed(2)} / ${r.offHot.fanOut.toFixed(2)} | ≥ ${fmtInt(minMatches)} | ` +
        `${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)} |`,
    );
  }
  return lines.join('\n');
}

function loadAverage(): string {
  return os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' / ');
}

function machine(): string {
  const cpus = os.cpus();
  return `${os.availableParallelism()} CPUs (${cpus[0]?.model ?? 'unknown'}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ${os.platform()} ${os.release()}`;
}

function section(rows: readonly Row[], totalSeconds: number): string {
  return `${SECTION}

\`bench/subscription-index.bench.ts\`: \`SubscriptionIndex\` (src/broker/subscription-index.ts) with N subscriptions of a
realistic mix (tenants of ~20 subscriptions; exact \`tenant<i>.<kind>.<j>\`, \`tenant<i>.<kind>.*\`,
\`tenant<i>.*.<j>\`, \`tenant<i>.<kind>.>\`, \`tenant<i>.>\`, five \`*.alerts.>\` monitors, ~2% in queue groups).
Events: ~60% an exact subscription's event, ~20% a random event of a known tenant (wildcards only, or nothing),
~20% unknown tenants (no match). "wide" cycles through 100,000 distinct events, "hot" through 1,000 (which fit
the 4096-entry cache, so "cache on, hot" is all cache hits after warm-up; "cache on, wide" is nearly all
misses, i.e. the cost of the cache when it does not help). Each size runs in a child process of its own;
one index is alive at a time (cache off: wide, hot; then cache on: wide, hot), ${SECONDS} s per case after a
warm-up, and the forced GCs for the heap figures come after them (a forced full GC slows later cache-on
matching in V8). At 1M the heap is ~0.5 GB of small objects, so GC (counted in CPU time) is a large part of
the build time and of the match rates.
Build = adding all N subscriptions to an empty index; index heap = heapUsed after forced GC with the index
minus without it (the subscription objects and their pattern strings, which the broker holds anyway, are
listed apart). Rates and build times are per CPU second of the process (user + system, GC threads included),
because the machine is shared; the last column of the second table is the wall-clock rate over that rate
(about 1 = the bench had a core to itself; above 1 when GC ran on a second thread).

- Command: \`npm run bench:index\` (= \`npm run build && node dist/bench/subscription-index.bench.js\`)
- Date: ${new Date().toISOString().slice(0, 10)}
- Node: ${process.version} (V8 ${process.versions.v8})
- Machine: ${machine()}
- Run time: ${totalSeconds.toFixed(0)} s; load average at start ${LOAD_AT_START}, at end ${loadAverage()}

${table(rows)}

${detail(rows)}
`;
}

function writeSection(text: string): void {
  let current: string;
  try {
    current = readFileSync(RESULTS, 'utf8');
  } catch {
    current = '# Benchmark results\n\nFigures from the benchmarks under `bench/`; see `bench/README.md` for how to run them.\n';
  }
  const lines = current.split('\n');
  const start = lines.findIndex((l) => l.trim() === SECTION);
  let next: string;
  if (start === -1) next = `${current.trimEnd()}\n\n${text}`;
  else {
    let end = lines.findIndex((l, i) => i > start && /^## /.test(l));
    if (end === -1) end = lines.length;
    const before = lines.slice(0, start).join('\n').trimEnd();
    const after = lines.slice(end).join('\n').trim();
    next = `${before}\n\n${text}${after.length > 0 ? `\n${after}\n` : ''}`;
  }
  writeFileSync(RESULTS, next.endsWith('\n') ? next : `${next}\n`);
}

// ----- main ------------------------------------------------------------------------------------------------

const CHILD = arg('child');
if (CHILD !== undefined) {
  const row = runSize(Number(CHILD));
  process.stdout.write(`${JSON.stringify({ ...row, sink: sink % 2 })}\n`);
  process.exit(0);
}

const t0 = Date.now();
const LOAD_AT_START = loadAverage();
const rows: Row[] = [];
for (const n of SIZES) {
  const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), `--child=${n}`, `--seconds=${SECONDS}`], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 20,
  });
  rows.push(JSON.parse(out) as Row);
  console.error(`  N=${fmtN(n)} done (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
}
const total = (Date.now() - t0) / 1000;
console.log(`\nSubscription index, ${machine()}, node ${process.version}\n`);
console.log(table(rows));
console.log();
console.log(detail(rows));
if (WRITE) {
  writeSection(section(rows, total));
  console.log(`\nwrote the "${SECTION}" section of ${RESULTS}`);
}
