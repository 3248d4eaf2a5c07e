/** Renders a run of bench/run.ts as the `## Run <date>` section of bench/results.md. */
import type { RunRecord, ScenarioRecord } from './run.js';
import type { SystemName } from './lib/common.js';

const fmt0 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const fmt1 = new Intl.NumberFormat('en-US', { minimumFractionDigits: 1, maximumFractionDigits: 1 });
const fmt2 = new Intl.NumberFormat('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });

const ok = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);
const int = (x: unknown): string => (ok(x) ? fmt0.format(x) : '–');
const one = (x: unknown): string => (ok(x) ? fmt1.format(x) : '–');
const two = (x: unknown): string => (ok(x) ? fmt2.format(x) : '–');
const mib = (x: unknown): string => (ok(x) ? `${fmt1.format(x / 2 ** 20)} MiB` : '–');
const ratio = (x: number): string => (Number.isFinite(x) ? `${fmt2.format(x)}×` : '–');

interface Column {
  head: string;
  cell(r: ScenarioRecord): string;
}

/** Share of the publisher's time spent waiting on flow control, and the Pressure frames it got (our SDK). */
const waitCell = (r: ScenarioRecord): string => {
  const share = r.figures['publisherWaitShare'];
  const p = r.figures['pressureFrames'];
  return `${ok(share) ? `${Math.round(share * 100)}%` : '–'}${ok(p) ? ` (${int(p)} Pressure)` : ''}`;
};

const fig = (key: string, show: (x: unknown) => string = int): Column['cell'] => (r) => show(r.figures[key]);
/** The same figure in the warm-up pass, i.e. the server's first traffic after it started (see run.ts WARM_UP). */
const warmFig = (key: string, show: (x: unknown) => string = int): Column['cell'] => (r) => show(r.warmUp?.figures[key]);

/** The columns of each scenario's table; `key` is the figure the ratio to nats-server is taken of. */
const TABLES: Record<string, { key: string; ratioHead: string; cpuKey?: string; columns: Column[] }> = {
  S1: {
    key: 'rate',
    ratioHead: 'rate vs nats',
    cpuKey: 'cpuUsPerMsg',
    columns: [
      { head: 'msgs/s (end to end)', cell: fig('rate') },
      { head: 'MB/s', cell: fig('mbPerSecond', one) },
      { head: 'lost', cell: fig('lost') },
      { head: 'broker CPU µs/msg', cell: fig('cpuUsPerMsg', two) },
      { head: 'same, first traffic', cell: warmFig('cpuUsPerMsg', two) },
      { head: 'broker peak RSS', cell: fig('peakRssBytes', mib) },
      { head: 'pub / sub CPU s', cell: (r) => `${two(Number(r.figures['publisherCpuMs']) / 1000)} / ${two(Number(r.figures['subscriberCpuMs']) / 1000)}` },
      { head: 'publisher waiting on flow control', cell: waitCell },
    ],
  },
  S2: {
    key: 'rate',
    ratioHead: 'deliveries vs nats',
    cpuKey: 'cpuUsPerMsg',
    columns: [
      { head: 'deliveries/s', cell: fig('rate') },
      { head: 'published msgs/s', cell: fig('publishedPerSecond') },
      { head: 'lost deliveries', cell: fig('lost') },
      { head: 'broker CPU µs/msg', cell: fig('cpuUsPerMsg', two) },
      { head: 'same, first traffic', cell: warmFig('cpuUsPerMsg', two) },
      { head: 'µs/delivery', cell: fig('cpuUsPerDelivery', two) },
      { head: 'broker peak RSS', cell: fig('peakRssBytes', mib) },
    ],
  },
  S3S: {
    key: 'rate',
    ratioHead: 'rate vs nats',
    cpuKey: 'cpuUsPerMsg',
    columns: [
      { head: 'round trips/s', cell: fig('rate') },
      { head: 'p50 ms', cell: fig('p50Ms', two) },
      { head: 'p99 ms', cell: fig('p99Ms', two) },
      { head: 'errors', cell: fig('errors') },
      { head: 'broker CPU µs/round trip', cell: fig('cpuUsPerMsg', two) },
      { head: 'same, first traffic', cell: warmFig('cpuUsPerMsg', two) },
      { head: 'broker peak RSS', cell: fig('peakRssBytes', mib) },
    ],
  },
  S4: {
    key: 'bytesPerConnection',
    ratioHead: 'B/conn vs nats',
    columns: [
      { head: 'open', cell: fig('open') },
      { head: 'RSS before', cell: fig('rssBeforeBytes', mib) },
      { head: 'RSS with connections', cell: fig('rssAfterBytes', mib) },
      { head: 'B per connection', cell: fig('bytesPerConnection') },
      { head: 'time to open, s', cell: fig('openSeconds', one) },
    ],
  },
  S5: {
    key: 'rate',
    ratioHead: 'MB/s vs nats',
    columns: [
      { head: 'MB/s', cell: fig('rate', one) },
      { head: 'received', cell: fig('received') },
      { head: 'broker CPU ms/MiB', cell: fig('cpuMsPerMiB', two) },
      { head: 'publisher waiting on flow control', cell: waitCell },
      { head: 'broker peak RSS', cell: fig('peakRssBytes', mib) },
    ],
  },
  S6: {
    key: 'rate',
    ratioHead: 'others\' rate vs nats',
    columns: [
      { head: 'others\' deliveries/s (whole run)', cell: fig('rate') },
      { head: 'before the stall', cell: fig('rateBeforeStall') },
      { head: 'last quarter', cell: fig('rateLastQuarter') },
      { head: 'RSS at stall', cell: fig('rssAtStallBytes', mib) },
      { head: 'RSS growth after', cell: fig('rssGrowthBytes', mib) },
      { head: 'RSS growth in last quarter', cell: fig('rssLastQuarterGrowthBytes', mib) },
      { head: 'stalled one cut off by the server', cell: (r) => (r.figures['stalledDisconnected'] === true ? `after ${one(Number(r.figures['stalledCutAfterMs']) / 1000)} s` : r.status === 'ok' ? 'no' : '–') },
      { head: 'holds', cell: (r) => (r.status !== 'ok' ? '–' : r.figures['holds'] === true ? 'yes' : `**no** (${r.figures['rateHolds'] === true ? '' : 'rate'}${r.figures['rateHolds'] !== true && r.figures['rssHolds'] !== true ? ', ' : ''}${r.figures['rssHolds'] === true ? '' : 'RSS'})`) },
    ],
  },
};
TABLES['S3P'] = TABLES['S3S']!;

function find(run: RunRecord, system: SystemName, scenario: string): ScenarioRecord | undefined {
  return run.results.find((r) => r.system === system && r.scenario === scenario && r.status === 'ok');
}

function value(run: RunRecord, system: SystemName, scenario: string, key: string): number {
  const v = find(run, system, scenario)?.figures[key];
  return typeof v === 'number' ? v : Number.NaN;
}

interface Target {
  what: string;
  ours: number;
  base: number;
  baseName: string;
  /** 'min': ratio must be at least `need`; 'max': at most; 'abs-max': ours at most `need`; 'bool': ours is 1. */
  kind: 'min' | 'max' | 'abs-max' | 'bool';
  need: number;
  show: (x: number) => string;
}

function targets(run: RunRecord): Target[] {
  const t: Target[] = [];
  const us = 'socketd-tcp';
  const cpu = (scenario: string, what: string, need = 1, system: SystemName = us, how = 'tcp'): void => {
    t.push({ what: `${what}: broker CPU per ${scenario.startsWith('S3') ? 'round trip' : 'message'}, ${how}`, ours: value(run, system, scenario, 'cpuUsPerMsg'), base: value(run, 'nats', scenario, 'cpuUsPerMsg'), baseName: 'nats-server', kind: 'max', need, show: (x) => `${two(x)} µs` });
  };
  cpu('S1', 'S1');
  cpu('S2', 'S2');
  cpu('S3S', 'S3 sequential');
  cpu('S3P', 'S3 64 in flight');
  const rate = (scenario: string, what: string, need: number, system: SystemName = us): void => {
    t.push({ what, ours: value(run, system, scenario, 'rate'), base: value(run, 'nats', scenario, 'rate'), baseName: 'nats-server', kind: 'min', need, show: int });
  };
  rate('S1', 'S1 msgs/s, SDK over tcp vs nats.js', 1);
  rate('S2', 'S2 deliveries/s, SDK over tcp vs nats.js', 1);
  rate('S3P', 'S3 64 in flight, round trips/s, tcp', 2);
  rate('S1', 'S1 msgs/s over ws vs nats-server over tcp', 0.7, 'socketd-ws');
  // The event path (SDK) and a plain client's `@` path (raw client) cost at most 0.6x nats-server per message.
  cpu('S1', 'S1', 0.6, us, 'tcp, SDK by event');
  cpu('S2', 'S2', 0.6, us, 'tcp, SDK by event');
  cpu('S1', 'S1', 0.6, 'socketd-raw-tcp', 'tcp, raw client by @');
  cpu('S2', 'S2', 0.6, 'socketd-raw-tcp', 'tcp, raw client by @');
  // Over ws, with the `ws` package as a plain client.
  rate('S1', 'S1 msgs/s, raw ws client by @ vs nats-server over tcp', 1, 'socketd-raw-ws');
  cpu('S1', 'S1', 1, 'socketd-raw-ws', 'ws, raw client by @');
  cpu('S2', 'S2', 1, 'socketd-raw-ws', 'ws, raw client by @');
  rate('S5', 'S5 MB/s, SDK over ws vs nats-server', 1, 'socketd-ws');
  // In place of the withdrawn 5x-aedes targets on S3 sequential, S3 64 in flight and S5.
  t.push({ what: 'S3 sequential p99 latency, tcp', ours: value(run, us, 'S3S', 'p99Ms'), base: value(run, 'nats', 'S3S', 'p99Ms'), baseName: 'nats-server', kind: 'max', need: 0.5, show: (x) => `${two(x)} ms` });
  rate('S3P', 'S3 64 in flight, round trips/s, tcp (replaces 5× aedes)', 3);
  rate('S5', 'S5 MB/s, tcp (replaces 5× aedes)', 2);
  t.push({ what: 'S4 broker RSS per idle tcp connection', ours: value(run, us, 'S4', 'bytesPerConnection'), base: 8192, baseName: '', kind: 'abs-max', need: 8192, show: (x) => `${int(x)} B` });
  for (const system of ['socketd-tcp', 'socketd-ws'] as const) {
    const r = find(run, system, 'S6');
    t.push({ what: `S6 holds (others' rate in the last quarter ≥ 0.5× before the stall; RSS growth ≤ 160 MiB), ${system === us ? 'tcp' : 'ws'}`, ours: r === undefined ? Number.NaN : r.figures['holds'] === true ? 1 : 0, base: Number.NaN, baseName: '', kind: 'bool', need: 1, show: (x) => (x === 1 ? 'holds' : x === 0 ? 'does not hold' : '–') });
  }
  for (const [scenario, name, show] of [
    ['S1', 'S1 msgs/s', int],
    ['S2', 'S2 deliveries/s', int],
    ['S6', 'S6 others\' deliveries/s', int],
  ] as const) {
    t.push({ what: `${name}, tcp vs aedes`, ours: value(run, us, scenario, 'rate'), base: value(run, 'aedes', scenario, 'rate'), baseName: 'aedes', kind: 'min', need: 5, show });
  }
  return t;
}

function verdict(t: Target): { ratio: number; pass: boolean | null } {
  if (t.kind === 'bool') return { ratio: Number.NaN, pass: Number.isFinite(t.ours) ? t.ours === 1 : null };
  if (t.kind === 'abs-max') return { ratio: Number.NaN, pass: Number.isFinite(t.ours) ? t.ours <= t.need : null };
  const r = t.ours / t.base;
  if (!Number.isFinite(r)) return { ratio: Number.NaN, pass: null };
  return { ratio: r, pass: t.kind === 'min' ? r >= t.need : r <= t.need };
}

export function renderRun(run: RunRecord, scenarios: { id: string; title: string }[]): string {
  const out: string[] = [];
  const m = run.machine;
  out.push(`## Run ${run.date}${run.quick ? ' (quick)' : ''}`);
  out.push('');
  out.push(`\`npm run bench\` (bench/run.ts): each system × scenario on loopback, a fresh server process per scenario, each role a process of its own; see bench/README.md for the method and caveats.`);
  out.push('');
  out.push(`- Command: \`${run.command}\`${run.full ? '' : ' (partial run)'}`);
  out.push(`- Machine: ${m.nproc} CPUs (${m.cpu}), ${m.memGiB} GiB RAM, ${m.kernel}; Node ${m.node}`);
  out.push(`- Load average at start ${m.loadStart.join(' / ')}, at end ${m.loadEnd.join(' / ')}; run time ${Math.round(run.seconds)} s`);
  for (const note of run.notes ?? []) out.push(`- **Note**: ${note}`);
  out.push(`- Payloads ${run.payloadBytes} B unless noted. Broker CPU = utime + stime of the server process (/proc/PID/stat, CLK_TCK 100) from the start signal to the last delivery; peak RSS = its VmHWM.`);
  out.push(run.warmUp
    ? `- S1, S2 and S3 first run two quarter-size passes of the same traffic against the same server process, each with client processes of its own (and fresh ones for the measured pass), for every system: the figures are those of a server past its first traffic and its first reconnects. The columns "same, first traffic" give the server's CPU in the first of those passes (JIT warm-up of a Node server included).`
    : `- No warm-up pass (\`--no-warmup\`): every figure includes the server's first traffic after it started.`);
  out.push('');
  out.push('| system | server | driven by | status |');
  out.push('|---|---|---|---|');
  for (const [name, s] of Object.entries(run.systems)) {
    out.push(`| ${name} | ${s.version || '–'} | ${s.client} | ${s.available ? `ran${s.note ? ` (${s.note})` : ''}` : `**skipped**: ${s.note}`} |`);
  }
  out.push('');
  out.push('### Targets');
  out.push('');
  out.push('Ratios are to the other system in the same run.');
  out.push('');
  out.push('| target | ours | compared with | ratio | needed | result |');
  out.push('|---|---:|---:|---:|---|---|');
  for (const t of targets(run)) {
    const v = verdict(t);
    const need = t.kind === 'min' ? `≥ ${two(t.need)}×` : t.kind === 'max' ? `≤ ${two(t.need)}×` : t.kind === 'abs-max' ? `≤ ${int(t.need)} B` : 'holds';
    const base = t.baseName === '' ? '' : `${t.show(t.base)} (${t.baseName})`;
    const result = v.pass === null ? 'n/a' : v.pass ? 'PASS' : '**FAIL**';
    out.push(`| ${t.what} | ${t.show(t.ours)} | ${base} | ${ratio(v.ratio)} | ${need} | ${result} |`);
  }
  for (const s of scenarios) {
    const rows = run.results.filter((r) => r.scenario === s.id);
    if (rows.length === 0) continue;
    const table = TABLES[s.id]!;
    out.push('');
    out.push(`### ${s.title}`);
    out.push('');
    const heads = ['system', ...table.columns.map((c) => c.head), table.ratioHead];
    if (table.cpuKey !== undefined) heads.push('CPU vs nats');
    out.push(`| ${heads.join(' | ')} |`);
    out.push(`|---|${heads.slice(1).map(() => '---:').join('|')}|`);
    const nats = find(run, 'nats', s.id);
    for (const r of rows) {
      if (r.status !== 'ok') {
        out.push(`| ${r.system} | ${r.status}: ${(r.error ?? '').replaceAll('|', '/').slice(0, 160)} |${heads.slice(2).map(() => '').join(' |')} |`);
        continue;
      }
      const cells = [r.system, ...table.columns.map((c) => c.cell(r))];
      const rel = (key: string): string => {
        const a = r.figures[key];
        const b = nats?.figures[key];
        return typeof a === 'number' && typeof b === 'number' ? ratio(a / b) : '–';
      };
      cells.push(rel(table.key));
      if (table.cpuKey !== undefined) cells.push(rel(table.cpuKey));
      out.push(`| ${cells.join(' | ')} |`);
    }
  }
  const failed = run.results.filter((r) => r.status === 'failed' || r.status === 'timeout');
  if (failed.length > 0) {
    out.push('');
    out.push('Failed or timed out:');
    out.push('');
    for (const r of failed) out.push(`- ${r.scenario} ${r.system}: ${r.status}: ${r.error ?? ''}`);
  }
  return out.join('\n');
}
