/**
 * A live fuzz of the running broker (docs/security.md section 4): sessions on tcp, ws and udp send random
 * but plausible frames for a bounded time (every flag, odd `@` addresses, `$sub` with bad patterns, wild
 * fragment indexes, Replies to unknown sids, oversize fields, the odd garbage) while a request/reply pair
 * runs beside them. It fails if the broker dies, if a control Request goes unanswered within its bound, if
 * the broker's memory grows past a bound, or if the broker still holds the fuzzers' sessions once they left.
 *
 * The broker runs in a child process (test/support/broker-child.ts) so its memory is measured apart from the
 * clients'. Seeded: FUZZ_SEED=<n> replays a run (the seed is printed, and named in every failure);
 * FUZZ_MS sets the fuzzing time (default 6000 ms).
 */
import { prng } from '../support/fixtures.js';
import test from 'node:test';
import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { connect, type Client } from '../../src/client/index.js';
import { Flag, encodeBare, encodeFrame } from '../../src/protocol/index.js';
import { RawClient, type RawTransport } from '../support/raw-client.js';
import type { ChildStats, FromChild, ToChild } from '../support/broker-child.js';

const SEED = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const FUZZ_MS = Number(process.env.FUZZ_MS ?? 6000);
/** A control Request must be answered within this (the broker is fuzzed by 9 sessions meanwhile, on a shared CI machine). */
const CONTROL_BOUND_MS = 5000;
/** Growth of the broker's heap (after a GC) and resident memory from before the fuzz to its peak. */
const HEAP_GROWTH_BOUND = 24 * 1024 * 1024;
const RSS_GROWTH_BOUND = 128 * 1024 * 1024;


class Gen {
  /** Seeded random bytes, made once: frames take slices of it, so making a 70 KB frame costs no loop. */
  private readonly pool: Buffer;

  constructor(private readonly rnd: () => number) {
    this.pool = Buffer.allocUnsafe(96 * 1024);
    for (let i = 0; i < this.pool.length; i++) this.pool[i] = Math.floor(rnd() * 256);
  }

  int(max: number): number {
    return Math.floor(this.rnd() * max);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  chance(p: number): boolean {
    return this.rnd() < p;
  }

  text(max: number, alphabet = 'abcxyz.*>$@=&,é_-0123456789'): string {
    let out = '';
    const n = this.int(max + 1);
    for (let i = 0; i < n; i++) out += alphabet[this.int(alphabet.length)];
    return out;
  }

  bytes(n: number): Buffer {
    const start = this.int(this.pool.length - n);
    return this.pool.subarray(start, start + n);
  }
}

const EVENTS = ['', 'a', 'a.b.c', 'orders.created', 'chat.room.1', '$sub', '$unsub', '$presence', 'é.ü', 'a..b', '*', '>', 'a.*.>'];
const PATTERNS = ['a.>', '>', '*', 'a.>.b', '>>', '', 'a..b', 'a.*', '$sys.>', '.a', 'a.', '*.*.*.*.*.*', 'x'.repeat(600), 'orders.*'];
/** The control responder is named `fuzz-ctl`: fuzzers do not address it by name, only through `*` (everyone). */
const ADDRESSES = ['svc', '', '*', 'svc*', 'fuzz-*', 'a,b', 'nobody', 'n'.repeat(200), 'sp ace', 'x&y', 'svc!', 'fuzz-tcp-1!'];
const FRAGMENT_VALUES = ['0', '1', '2', '-1', '3', '99999999', 'x', '9007199254740993', '', '1.5'];

/** One random, plausible frame (or, rarely, garbage). `udp` keeps most frames within a datagram. */
function randomFrame(g: Gen, transport: RawTransport): Buffer {
  // Per mille. What ends a session (garbage, Close, Connect, Connack, an unknown flag, an over-long sid) is
  // rare enough that sessions live for a few hundred frames, and common enough that they churn.
  const roll = g.int(1000);
  if (roll < 3) return g.bytes(1 + g.int(40));
  if (roll < 20) return encodeBare(g.pick([Flag.Ping, Flag.Pong, Flag.Pressure, Flag.Ping, Flag.Close]));
  const flag = roll < 300 ? Flag.Message : roll < 500 ? Flag.Request : roll < 600 ? Flag.Subscribe : roll < 720 ? Flag.Reply
    : roll < 800 ? Flag.ReplyEnd : roll < 850 ? Flag.Alarm : roll < 900 ? Flag.Ping : roll < 930 ? Flag.Pong : roll < 960 ? Flag.Pressure
      : roll < 965 ? Flag.Close : roll < 968 ? Flag.Connect : roll < 971 ? Flag.Connack : roll < 973 ? 99 : Flag.Message;
  const metas: string[] = [];
  if (g.chance(0.4)) metas.push(`@=${g.pick(ADDRESSES)}`);
  if (g.chance(0.15)) metas.push(`Data-Fragment-Idx=${g.pick(FRAGMENT_VALUES)}`, `Data-Fragment-Total=${g.pick(FRAGMENT_VALUES)}`);
  if (g.chance(0.1)) metas.push(`timeout=${g.pick(['-5', 'abc', '999999999', '1', '0', '100'])}`);
  if (g.chance(0.1)) metas.push(`code=${g.pick(['1000', '1001', '4004', '9999', 'x'])}`);
  if (g.chance(0.05)) metas.push(`queue=${g.text(8)}`, `sub=${g.pick(PATTERNS)}`);
  if (g.chance(0.1)) metas.push(`${g.text(6)}=${g.text(12)}`);
  if (g.chance(0.01)) metas.push(`big=${'m'.repeat(5000)}`);
  let event = g.chance(0.15) ? g.text(20) : g.pick(EVENTS);
  if (g.chance(0.01)) event = 'e'.repeat(600);
  let data: Buffer | string = g.bytes(g.int(64));
  if (event === '$sub' || event === '$unsub') data = g.pick(PATTERNS);
  const size = g.int(1000);
  if (size < 15) data = g.bytes(transport === 'udp' ? 2100 + g.int(200) : 3000 + g.int(70_000));
  else if (size < 40) data = g.bytes(500 + g.int(1000));
  const sidRoll = g.int(1000);
  const sid = sidRoll < 3 ? 's'.repeat(65) : sidRoll < 80 ? '' : g.text(32, '0123456789abcdef');
  return encodeFrame({ flag, sid, event, meta: metas.join('&'), data });
}

function fuzzBroker(): Promise<{ child: ChildProcess; ports: { tcp: number; udp: number; ws: number }; stderr: () => string }> {
  const script = fileURLToPath(new URL('../support/broker-child.js', import.meta.url));
  // A short idle timeout: udp fuzzers that vanish without a Close (their Close lost, or a session re-opened by a
  // fuzzed Connect) are released before the final check. The control pair sends often enough to stay open.
  const child = fork(script, [JSON.stringify({ timeouts: { idleMs: 2000 } })], { execArgv: ['--expose-gc'], stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`broker child exited with ${code} before it was ready: ${stderr}`)));
    child.on('message', (message: FromChild) => {
      if (message.type === 'ready') resolve({ child, ports: message.ports, stderr: () => stderr });
    });
  });
}

function statsOf(child: ChildProcess): Promise<ChildStats> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the broker child did not answer a stats request within 5 s')), 5000);
    const onMessage = (message: FromChild): void => {
      if (message.type !== 'stats') return;
      clearTimeout(timer);
      child.off('message', onMessage);
      resolve(message);
    };
    child.on('message', onMessage);
    child.send({ type: 'stats' } satisfies ToChild);
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const MiB = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MiB`;

test('live fuzz: tcp, ws and udp sessions send random plausible frames beside a request/reply pair (seed printed; FUZZ_SEED replays)', async (t) => {
  t.diagnostic(`FUZZ_SEED=${SEED} FUZZ_MS=${FUZZ_MS}`);
  console.log(`live fuzz: FUZZ_SEED=${SEED} (replay with FUZZ_SEED=${SEED})`);
  const { child, ports, stderr } = await fuzzBroker();
  const state: { died: string | null } = { died: null };
  child.on('exit', (code, signal) => {
    state.died = `the broker exited (code ${code}, signal ${signal}) during the fuzz: ${stderr()}`;
  });
  const url = (transport: 'tcp' | 'ws'): string => (transport === 'ws' ? `sd:ws://127.0.0.1:${ports.ws}/` : `sd:tcp://127.0.0.1:${ports.tcp}`);
  const fail = (what: string): never => assert.fail(`${what} (replay: FUZZ_SEED=${SEED})`);
  let responder: Client | null = null;
  let requester: Client | null = null;
  const fuzzers: RawClient[] = [];
  try {
    const options = { reconnect: false, heartbeatInterval: 500 } as const;
    responder = await connect(url('tcp'), { ...options, name: 'fuzz-ctl', onDirect: (msg) => (msg.event === 'ctl' ? msg.replyEnd(msg.data) : undefined) });
    requester = await connect(url('ws'), options);
    const baseline = await statsOf(child);

    const deadline = Date.now() + FUZZ_MS;
    let framesSent = 0;
    let reconnects = 0;
    /** One fuzzing session: random frames in random bursts; reconnects whenever the broker closes it. */
    const fuzzOne = async (transport: RawTransport, index: number): Promise<void> => {
      const g = new Gen(prng(SEED + index * 7919));
      const name = index % 3 === 0 ? 'svc' : `fuzz-${transport}-${index}`;
      const port = ports[transport];
      while (Date.now() < deadline && state.died === null) {
        let client: RawClient;
        try {
          client = await RawClient.connect(transport, port, { name, meta: g.chance(0.3) ? `sub=${g.pick(PATTERNS)}` : '' });
        } catch {
          // A refused or lost handshake (a udp datagram dropped under load): try again.
          await sleep(20);
          continue;
        }
        fuzzers.push(client);
        while (Date.now() < deadline && !client.closed && !client.closeReceived) {
          const burst = 1 + g.int(30);
          for (let i = 0; i < burst; i++) {
            client.sendBytes(randomFrame(g, transport));
            framesSent++;
          }
          // What the broker sent back (Alarms, routed frames) is not checked: only that it stays up.
          client.frames.length = 0;
          await sleep(1 + g.int(8));
        }
        client.close();
        reconnects++;
      }
    };
    const transports: RawTransport[] = ['tcp', 'ws', 'udp'];
    const fuzzing = Promise.all(transports.flatMap((transport, ti) => [0, 1, 2].map((i) => fuzzOne(transport, ti * 3 + i))));

    // The control pair: one Request at a time, each must be answered within the bound.
    let controls = 0;
    let slowest = 0;
    let peakHeap = baseline.heapUsed;
    let peakRss = baseline.rss;
    let nextSample = Date.now() + 1000;
    while (Date.now() < deadline) {
      if (state.died !== null) fail(state.died);
      const started = Date.now();
      const payload = `ctl-${controls}`;
      try {
        const reply: { text(): string } = await requester.request('ctl', payload, { to: 'fuzz-ctl', timeout: CONTROL_BOUND_MS });
        assert.equal(reply.text(), payload);
      } catch (error) {
        if (state.died !== null) fail(state.died);
        fail(`control Request ${controls} unanswered after ${Date.now() - started} ms: ${(error as Error).message}`);
      }
      slowest = Math.max(slowest, Date.now() - started);
      controls++;
      if (Date.now() >= nextSample) {
        const s = await statsOf(child);
        peakHeap = Math.max(peakHeap, s.heapUsed);
        peakRss = Math.max(peakRss, s.rss);
        nextSample = Date.now() + 1000;
      }
      await sleep(20);
    }
    await fuzzing;
    if (state.died !== null) fail(state.died);
    for (const c of fuzzers) {
      if (c.transport === 'udp' && !c.closed && !c.closeReceived) c.sendClose();
      c.close();
    }
    const after = await statsOf(child);
    peakHeap = Math.max(peakHeap, after.heapUsed);
    peakRss = Math.max(peakRss, after.rss);
    const summary = `${framesSent} frames from ${transports.length * 3} sessions (${reconnects} reconnects), ${controls} control Requests ` +
      `(slowest ${slowest} ms); heap ${MiB(baseline.heapUsed)} -> peak ${MiB(peakHeap)}, rss ${MiB(baseline.rss)} -> peak ${MiB(peakRss)}`;
    const closes = Object.entries(after.closes).sort((a, b) => b[1] - a[1]).map(([reason, n]) => `${reason} ${n}`).join(', ');
    t.diagnostic(`${summary}; sessions closed by reason: ${closes}`);
    console.log(`live fuzz: ${summary}; sessions closed by reason: ${closes}`);
    assert.ok(controls >= 10, `only ${controls} control Requests in ${FUZZ_MS} ms (replay: FUZZ_SEED=${SEED})`);
    assert.ok(framesSent >= 1000, `only ${framesSent} fuzz frames sent`);
    if (peakHeap - baseline.heapUsed > HEAP_GROWTH_BOUND) fail(`broker heap grew by ${MiB(peakHeap - baseline.heapUsed)}: ${summary}`);
    if (peakRss - baseline.rss > RSS_GROWTH_BOUND) fail(`broker RSS grew by ${MiB(peakRss - baseline.rss)}: ${summary}`);

    // Once the fuzzers left, the broker holds the control pair only: nothing the fuzz opened leaked.
    const until = Date.now() + 6000;
    let last = after;
    while (Date.now() < until && (last.sessions !== 2 || last.streamsOpen !== 0 || last.timers !== 0)) {
      await sleep(100);
      last = await statsOf(child);
    }
    assert.equal(last.sessions, 2, `sessions left after the fuzz: ${JSON.stringify(last)} (replay: FUZZ_SEED=${SEED})`);
    assert.equal(last.streamsOpen, 0, `streams left after the fuzz: ${JSON.stringify(last)}`);
    assert.equal(last.timers, 0, `timers left after the fuzz: ${JSON.stringify(last)}`);
    if (state.died !== null) fail(state.died);
  } finally {
    for (const c of fuzzers) c.close();
    await Promise.allSettled([responder?.close(), requester?.close()]);
    if (child.exitCode === null) {
      child.removeAllListeners('exit');
      const exited = new Promise((r) => child.once('exit', r));
      child.send({ type: 'stop' } satisfies ToChild);
      await Promise.race([exited, sleep(3000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }
});
