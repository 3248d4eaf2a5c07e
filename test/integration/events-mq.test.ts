/**
 * Event routing, MQ style (spec §4.2): fan-out to plain subscribers, a worker pool as a queue group sharing
 * Requests and Messages, plain and group subscribers together, groups keyed by name across patterns.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Flag, type Frame } from '../../src/protocol/index.js';
import type { RawClient } from '../support/raw-client.js';
import { eventually } from '../support/broker.js';
import { connect } from '../support/integration.js';
import { WAIT_MS, autoReply, messagesOf, subscribe, tap, withEventBroker } from '../support/events.js';

const withBroker = withEventBroker;

/** Waits until the clients together hold `total` unconsumed frames matching, then takes them per client. */
async function gather(clients: RawClient[], total: number, match: (f: Frame) => boolean, settleMs = 150): Promise<Frame[][]> {
  await eventually(() => clients.reduce((n, c) => n + c.frames.filter(match).length, 0) >= total, 10_000, `${total} frames`);
  return Promise.all(clients.map((c) => c.collect(settleMs, match)));
}

const dataOf = (frames: Frame[]): string[] => frames.map((f) => f.data.toString());
const range = (n: number, prefix: string): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

test('fan-out: 3 plain subscribers of orders.created (tcp, ws, udp) each get every one of 100 Messages exactly once', async () => {
  await withBroker(async (server, clients) => {
    const subs = [await connect(server, 'tcp'), await connect(server, 'ws'), await connect(server, 'udp')];
    const publisher = await connect(server, 'ws');
    const other = await connect(server, 'tcp');
    clients.push(...subs, publisher, other);
    for (const s of subs) await subscribe(s, 'orders.created');
    await subscribe(other, 'orders.cancelled');
    for (let i = 0; i < 100; i++) publisher.send({ flag: Flag.Message, event: 'orders.created', meta: `n=${i}`, data: `o${i}` });
    const got = await gather(subs, 300, messagesOf('orders.created'));
    for (let s = 0; s < 3; s++) {
      assert.equal(got[s].length, 100, `subscriber ${subs[s].transport} got 100`);
      assert.deepEqual(dataOf(got[s]).sort(), range(100, 'o').sort(), 'each Message once');
      if (subs[s].transport !== 'udp') assert.deepEqual(dataOf(got[s]), range(100, 'o'), 'in the order sent');
    }
    assert.equal(publisher.frames.length, 0, 'the publisher gets no copy and no answer');
    assert.equal(other.frames.length, 0, 'a subscriber of another event gets nothing');
    assert.equal(server.broker.stats.dropped.get('no_subscriber') ?? 0, 0);
  });
});

test('worker pool: 3 workers in group "workers" share 3,000 Requests (≤64 in flight): none lost, 25–42% each', async () => {
  await withBroker(async (server, clients) => {
    const workers = [await connect(server, 'tcp'), await connect(server, 'ws'), await connect(server, 'udp')];
    const requester = await connect(server, 'tcp');
    clients.push(...workers, requester);
    const handled = [0, 0, 0];
    workers.forEach((w, i) => {
      autoReply(w, (f) => f.flag === Flag.Request && f.event === 'jobs.run', (f) => {
        handled[i]++;
        return `w${i}:${f.data.toString()}`;
      }, Flag.Reply); // a Request is answered by the first Reply, relayed as ReplyEnd (spec §5)
    });
    for (const w of workers) await subscribe(w, 'jobs.run', { group: 'workers' });

    const TOTAL = 3000;
    const WINDOW = 64;
    const pending = new Map<string, number>();
    const answeredBy = [0, 0, 0];
    const problems: string[] = [];
    let sent = 0;
    let answered = 0;
    let maxInFlight = 0;
    const done = new Promise<void>((resolve) => {
      const pump = (): void => {
        while (sent < TOTAL && pending.size < WINDOW) {
          const i = sent++;
          pending.set(requester.send({ flag: Flag.Request, event: 'jobs.run', data: `job${i}` }), i);
        }
        maxInFlight = Math.max(maxInFlight, pending.size);
      };
      tap(requester, (f) => {
        const i = pending.get(f.sid);
        if (i === undefined) return false;
        pending.delete(f.sid);
        const text = f.data.toString();
        const m = /^w([012]):job(\d+)$/.exec(text);
        if (f.flag !== Flag.ReplyEnd) problems.push(`job${i}: flag ${f.flag} ${f.metaString} ${text}`);
        else if (m === null || Number(m[2]) !== i) problems.push(`job${i}: answered '${text}'`);
        else answeredBy[Number(m[1])]++;
        answered++;
        if (answered === TOTAL) resolve();
        else pump();
        return true;
      });
      pump();
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`only ${answered}/${TOTAL} answered (${pending.size} pending)`)), 25_000);
    });
    try {
      await Promise.race([done, timeout]);
    } finally {
      clearTimeout(timer);
    }
    assert.deepEqual(problems, []);
    assert.equal(answered, TOTAL);
    assert.ok(maxInFlight <= WINDOW && maxInFlight > 1, `in flight: ${maxInFlight}`);
    assert.deepEqual(answeredBy, handled, 'each answer came from the worker that got the Request');
    for (let i = 0; i < 3; i++) {
      const share = handled[i] / TOTAL;
      assert.ok(share >= 0.25 && share <= 0.42, `worker ${workers[i].transport} handled ${handled[i]} (${(share * 100).toFixed(1)}%)`);
    }
    await eventually(() => server.broker.stats.streamsOpen === 0 && server.broker.pendingTimers === 0, WAIT_MS, 'no stream left open');
  });
});

test('a Message to the group goes to exactly one worker per Message, round robin', async () => {
  await withBroker(async (server, clients) => {
    const workers = [await connect(server, 'udp'), await connect(server, 'tcp'), await connect(server, 'ws')];
    const publisher = await connect(server, 'udp');
    clients.push(...workers, publisher);
    for (const w of workers) await subscribe(w, 'jobs.run', { group: 'workers' });
    for (let i = 0; i < 30; i++) publisher.send({ flag: Flag.Message, event: 'jobs.run', data: `m${i}` });
    const got = await gather(workers, 30, messagesOf('jobs.run'));
    assert.deepEqual(got.flatMap(dataOf).sort(), range(30, 'm').sort(), 'every Message once, to one worker');
    assert.deepEqual(got.map((g) => g.length), [10, 10, 10], 'round robin');
  });
});

test('plain and group subscribers together: every plain subscriber and exactly one worker get each Message', async () => {
  await withBroker(async (server, clients) => {
    const plain = [await connect(server, 'ws'), await connect(server, 'udp')];
    const workers = [await connect(server, 'tcp'), await connect(server, 'ws'), await connect(server, 'udp')];
    const publisher = await connect(server, 'tcp');
    clients.push(...plain, ...workers, publisher);
    await subscribe(plain[0], 'jobs.run');
    await subscribe(plain[1], 'jobs.>');
    for (const w of workers) await subscribe(w, 'jobs.run', { group: 'workers' });
    // A second group gets its own copy.
    const auditor = await connect(server, 'tcp');
    clients.push(auditor);
    await subscribe(auditor, 'jobs.*', { group: 'audit' });
    for (let i = 0; i < 12; i++) publisher.send({ flag: Flag.Message, event: 'jobs.run', data: `m${i}` });
    const got = await gather([...plain, ...workers, auditor], 12 * 4, messagesOf('jobs.run'));
    assert.deepEqual(dataOf(got[0]).sort(), range(12, 'm').sort(), 'plain subscriber (exact)');
    assert.deepEqual(dataOf(got[1]).sort(), range(12, 'm').sort(), 'plain subscriber (jobs.>)');
    assert.deepEqual(got.slice(2, 5).flatMap(dataOf).sort(), range(12, 'm').sort(), 'the workers: one copy each');
    assert.deepEqual(got.slice(2, 5).map((g) => g.length), [4, 4, 4]);
    assert.deepEqual(dataOf(got[5]).sort(), range(12, 'm').sort(), 'the other group');
    assert.equal(publisher.frames.length, 0);
  });
});

test('a queue group is keyed by its name across patterns: jobs.run and jobs.* members in "w" share', async () => {
  await withBroker(async (server, clients) => {
    const workers = [await connect(server, 'tcp'), await connect(server, 'ws'), await connect(server, 'udp')];
    const publisher = await connect(server, 'ws');
    clients.push(...workers, publisher);
    await subscribe(workers[0], 'jobs.run', { group: 'w' });
    await subscribe(workers[1], 'jobs.*', { group: 'w' });
    await subscribe(workers[2], 'jobs.>', { group: 'w' });
    // One session in the group through two patterns is one member.
    await subscribe(workers[2], 'jobs.run', { group: 'w' });
    for (let i = 0; i < 9; i++) publisher.send({ flag: Flag.Message, event: 'jobs.run', data: `m${i}` });
    const got = await gather(workers, 9, messagesOf('jobs.run'));
    assert.deepEqual(got.flatMap(dataOf).sort(), range(9, 'm').sort(), 'each Message to one member');
    assert.deepEqual(got.map((g) => g.length), [3, 3, 3]);
    // Only jobs.* and jobs.> members match jobs.other.
    for (let i = 0; i < 4; i++) publisher.send({ flag: Flag.Message, event: 'jobs.other', data: `o${i}` });
    const other = await gather(workers, 4, messagesOf('jobs.other'));
    assert.equal(other[0].length, 0);
    assert.deepEqual(other.flatMap(dataOf).sort(), range(4, 'o').sort());
    assert.deepEqual(other.map((g) => g.length), [0, 2, 2]);
  });
});

test('Requests to plain and group subscribers together go to exactly one of them, round robin over all', async () => {
  await withBroker(async (server, clients) => {
    const plain = await connect(server, 'udp');
    const workers = [await connect(server, 'tcp'), await connect(server, 'ws')];
    const requester = await connect(server, 'ws');
    clients.push(plain, ...workers, requester);
    const responders = [plain, ...workers];
    const handled = [0, 0, 0];
    responders.forEach((r, i) => autoReply(r, (f) => f.flag === Flag.Request, (f) => {
      handled[i]++;
      return `r${i}:${f.data.toString()}`;
    }, i === 0 ? Flag.Reply : Flag.ReplyEnd));
    await subscribe(plain, 'calc.add');
    for (const w of workers) await subscribe(w, 'calc.*', { group: 'calc' });
    const sids = range(30, 'q').map((d) => requester.send({ flag: Flag.Request, event: 'calc.add', data: d }));
    const answers = await Promise.all(sids.map((s) => requester.nextFor(s, WAIT_MS)));
    answers.forEach((a, i) => {
      assert.equal(a.flag, Flag.ReplyEnd);
      assert.match(a.data.toString(), new RegExp(`^r[012]:q${i}$`));
    });
    assert.deepEqual(handled, [10, 10, 10]);
  });
});

test('round robin per event: Requests alternating between two events still share each event\'s workers evenly', async () => {
  await withBroker(async (server, clients) => {
    const workers = [await connect(server, 'tcp'), await connect(server, 'ws')];
    const status = await connect(server, 'udp');
    const requester = await connect(server, 'tcp');
    clients.push(...workers, status, requester);
    const handled = [0, 0, 0];
    [...workers, status].forEach((r, i) => autoReply(r, (f) => f.flag === Flag.Request, () => {
      handled[i]++;
      return 'ok';
    }));
    for (const w of workers) await subscribe(w, 'jobs.run', { group: 'workers' });
    await subscribe(status, 'status.get');
    const sids: string[] = [];
    for (let i = 0; i < 20; i++) {
      sids.push(requester.send({ flag: Flag.Request, event: 'jobs.run', data: `j${i}` }));
      sids.push(requester.send({ flag: Flag.Request, event: 'status.get', data: `s${i}` }));
    }
    for (const s of sids) assert.equal((await requester.nextFor(s, WAIT_MS)).flag, Flag.ReplyEnd);
    assert.deepEqual(handled, [10, 10, 20]);
  });
});

test('a worker publishing to its own group\'s event reaches another member, never itself', async () => {
  await withBroker(async (server, clients) => {
    const workers = [await connect(server, 'tcp'), await connect(server, 'udp')];
    clients.push(...workers);
    for (const w of workers) await subscribe(w, 'jobs.run', { group: 'workers' });
    for (let i = 0; i < 6; i++) workers[0].send({ flag: Flag.Message, event: 'jobs.run', data: `m${i}` });
    const got = await gather(workers, 6, messagesOf('jobs.run'));
    assert.deepEqual(got.map((g) => g.length), [0, 6]);
    const sid = workers[1].send({ flag: Flag.Request, event: 'jobs.run', data: 'r' });
    const forwarded = await workers[0].nextFlag(Flag.Request, WAIT_MS);
    workers[0].send({ flag: Flag.ReplyEnd, sid: forwarded.sid, event: 'jobs.run', data: 'done' });
    assert.equal((await workers[1].nextFor(sid, WAIT_MS)).data.toString(), 'done');
  });
});
