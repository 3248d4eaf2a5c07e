/**
 * Streams through the broker (spec §5, §6): Request/Reply, Subscribe, scatter-gather, timeouts, responder
 * gone, responder Alarms, fragments, and no timer left behind.
 */
import test, { describe } from 'node:test';
import assert from 'node:assert/strict';
import { Flag, type Frame } from '../../src/protocol/index.js';
import type { RunningServer } from '../../src/server.js';
import { RawClient, type RawTransport } from '../support/raw-client.js';
import { startTestBroker, eventually } from '../support/broker.js';
import { closeAll, connect, fixture, metaOf, referencePair } from '../support/integration.js';

/** requestMs 500: long enough for every exchange, short enough to test. */
const CONFIG = { timeouts: { requestMs: 500, idleMs: 5000, handshakeMs: 1000 } };

async function withBroker(
  body: (server: RunningServer) => Promise<void>,
  overrides: Record<string, Record<string, unknown>> = CONFIG,
): Promise<void> {
  const server = await startTestBroker(overrides);
  try {
    await body(server);
  } finally {
    await server.close();
  }
}

async function timersDrained(server: RunningServer): Promise<void> {
  await eventually(() => server.broker.pendingTimers === 0 && server.broker.stats.streamsOpen === 0, 1000,
    `no timers (${server.broker.pendingTimers}) and no streams (${server.broker.stats.streamsOpen})`);
}

async function named(server: RunningServer, name: string, count: number, transports: readonly RawTransport[] = ['tcp', 'ws', 'udp']): Promise<RawClient[]> {
  const out: RawClient[] = [];
  for (let i = 0; i < count; i++) out.push(await connect(server, transports[i % transports.length], { name }));
  await eventually(() => server.broker.registry.group(name)?.members.length === count, 1000, `${count} x ${name}`);
  return out;
}

const code = (f: Frame): string | undefined => metaOf(f.metaString, 'code');

describe('Request', () => {
  test('answered by a Reply: the requester gets ReplyEnd with the data and metas; later replies are dropped', async () => {
    await withBroker(async (server) => {
      const [svc] = await named(server, 'svc', 1, ['ws']);
      const caller = await connect(server, 'tcp');
      try {
        const reqSid = caller.send({ flag: Flag.Request, event: 'ask', meta: '@=svc&q=1', data: 'question' });
        const req = await svc.nextFlag(Flag.Request);
        assert.notEqual(req.sid, reqSid);
        assert.equal(req.event, 'ask');
        assert.equal(req.metaString, '@=svc&q=1');
        assert.equal(req.data.toString(), 'question');
        svc.send({ flag: Flag.Reply, sid: req.sid, event: 'ask', meta: 'answer=yes', data: 'first' });
        const reply = await caller.nextFor(reqSid);
        assert.equal(reply.flag, Flag.ReplyEnd, 'a Request is answered by ReplyEnd (spec §5)');
        assert.equal(reply.event, 'ask');
        assert.equal(reply.metaString, 'answer=yes');
        assert.equal(reply.data.toString(), 'first');
        svc.send({ flag: Flag.Reply, sid: req.sid, event: 'ask', data: 'second' });
        svc.send({ flag: Flag.ReplyEnd, sid: req.sid, event: 'ask', data: 'third' });
        assert.deepEqual(await caller.collect(150), [], 'nothing after the answer');
        assert.ok(server.broker.stats.lateReplies >= 2);
        await timersDrained(server);
      } finally {
        closeAll(svc, caller);
      }
    });
  });

  test('fixtures d1..d4: the reference exchange, answered as ReplyEnd under the d1 sid', async () => {
    await withBroker(async (server) => {
      const { svc, caller } = await referencePair(server);
      try {
        caller.sendBytes(fixture('d1'));
        const d2 = await svc.nextFlag(Flag.Request);
        assert.equal(d2.event, 'hello');
        assert.equal(d2.metaString, '@=svc');
        assert.equal(d2.data.toString(), 'req-1');
        assert.notEqual(d2.sid, '6d19b43d8564458d969b7c5690fa7fb1');
        svc.send({ flag: Flag.ReplyEnd, sid: d2.sid, event: 'hello', meta: '', data: 're:req-1' });
        const d4 = await caller.nextFor('6d19b43d8564458d969b7c5690fa7fb1');
        assert.equal(d4.flag, Flag.ReplyEnd);
        // Same bytes as the reference's d4 except the flag (the reference relays a Request's answer as Reply).
        const expected = fixture('d4');
        expected.writeInt32BE(Flag.ReplyEnd, 4);
        assert.deepEqual(d4.raw, expected);
        await timersDrained(server);
      } finally {
        closeAll(svc, caller);
      }
    });
  });

  test('timeout: Alarm 4008 after requestMs; a late reply is dropped', async () => {
    await withBroker(async (server) => {
      const [svc] = await named(server, 'svc', 1, ['tcp']);
      const caller = await connect(server, 'ws');
      try {
        const started = Date.now();
        const reqSid = caller.send({ flag: Flag.Request, event: 'slow', meta: '@=svc', data: 'x' });
        const req = await svc.nextFlag(Flag.Request);
        const alarm = await caller.nextFor(reqSid, 2000);
        const elapsed = Date.now() - started;
        assert.equal(alarm.flag, Flag.Alarm);
        assert.equal(code(alarm), '4008');
        assert.equal(alarm.metaString, '@=svc&code=4008');
        assert.equal(alarm.event, 'slow');
        assert.ok(elapsed >= 450 && elapsed < 2000, `timed out after ${elapsed} ms (requestMs 500)`);
        svc.send({ flag: Flag.ReplyEnd, sid: req.sid, event: 'slow', data: 'too late' });
        assert.deepEqual(await caller.collect(150), []);
        await timersDrained(server);
      } finally {
        closeAll(svc, caller);
      }
    });
  });

  test('meta timeout=100 shortens the request timeout below the configured one', async () => {
    await withBroker(async (server) => {
      const [svc] = await named(server, 'svc', 1, ['udp']);
      const caller = await connect(server, 'tcp');
      try {
        const started = Date.now();
        const reqSid = caller.send({ flag: Flag.Request, event: 'slow', meta: '@=svc&timeout=100', data: 'x' });
        const alarm = await caller.nextFor(reqSid, 3000);
        const elapsed = Date.now() - started;
        assert.equal(code(alarm), '4008');
        assert.equal(alarm.metaString, '@=svc&timeout=100&code=4008');
        assert.ok(elapsed >= 90 && elapsed < 1000, `timed out after ${elapsed} ms (asked 100, configured 3000)`);
        await timersDrained(server);
      } finally {
        closeAll(svc, caller);
      }
    }, { timeouts: { requestMs: 3000, idleMs: 5000, handshakeMs: 1000 } });
  });

  test('meta timeout larger than the configured request timeout is not granted', async () => {
    await withBroker(async (server) => {
      const [svc] = await named(server, 'svc', 1, ['ws']);
      const caller = await connect(server, 'tcp');
      try {
        const started = Date.now();
        const reqSid = caller.send({ flag: Flag.Request, event: 'slow', meta: '@=svc&timeout=60000', data: 'y' });
        const alarm = await caller.nextFor(reqSid, 3000);
        const elapsed = Date.now() - started;
        assert.equal(code(alarm), '4008');
        assert.ok(elapsed >= 450 && elapsed < 2000, `timed out after ${elapsed} ms (configured 500)`);
        await timersDrained(server);
      } finally {
        closeAll(svc, caller);
      }
    });
  });

  for (const flag of [Flag.Request, Flag.Subscribe]) {
    test(`responder disconnecting mid-stream (flag ${flag}): Alarm 5003 at once`, async () => {
      await withBroker(async (server) => {
        const [svc] = await named(server, 'svc', 1, ['tcp']);
        const caller = await connect(server, 'tcp');
        try {
          const s = caller.send({ flag, event: 'work', meta: '@=svc', data: 'x' });
          const req = await svc.nextFlag(flag);
          if (flag === Flag.Subscribe) {
            svc.send({ flag: Flag.Reply, sid: req.sid, event: 'work', data: 'partial' });
            const partial = await caller.nextFor(s);
            assert.equal(partial.flag, Flag.Reply);
          }
          const started = Date.now();
          svc.close();
          const alarm = await caller.nextFor(s, 2000);
          const elapsed = Date.now() - started;
          assert.equal(alarm.flag, Flag.Alarm);
          assert.equal(code(alarm), '5003');
          assert.equal(alarm.metaString, '@=svc&code=5003');
          assert.ok(elapsed < 1000, `5003 after ${elapsed} ms (request timeout 5000)`);
          await timersDrained(server);
        } finally {
          closeAll(svc, caller);
        }
      }, { timeouts: { requestMs: 5000, idleMs: 5000, handshakeMs: 1000 } });
    });
  }

  test('udp responder sending Close mid-request: Alarm 5003 at once', async () => {
    await withBroker(async (server) => {
      const [svc] = await named(server, 'svc', 1, ['udp']);
      const caller = await connect(server, 'ws');
      try {
        const s = caller.send({ flag: Flag.Request, event: 'work', meta: '@=svc', data: 'x' });
        await svc.nextFlag(Flag.Request);
        svc.sendClose();
        const alarm = await caller.nextFor(s, 1000);
        assert.equal(code(alarm), '5003');
        await timersDrained(server);
      } finally {
        closeAll(svc, caller);
      }
    }, { timeouts: { requestMs: 5000, idleMs: 5000, handshakeMs: 1000 } });
  });

  for (const flag of [Flag.Request, Flag.Subscribe]) {
    test(`a responder's Alarm for its stream sid is relayed to the requester as Alarm (flag ${flag})`, async () => {
      await withBroker(async (server) => {
        const [svc] = await named(server, 'svc', 1, ['ws']);
        const caller = await connect(server, 'udp');
        try {
          const s = caller.send({ flag, event: 'work', meta: '@=svc', data: 'x' });
          const req = await svc.nextFlag(flag);
          svc.send({ flag: Flag.Alarm, sid: req.sid, event: 'work', meta: 'code=4003', data: 'not allowed' });
          const alarm = await caller.nextFor(s);
          assert.equal(alarm.flag, Flag.Alarm);
          assert.equal(alarm.event, 'work');
          assert.equal(code(alarm), '4003');
          assert.equal(alarm.data.toString(), 'not allowed');
          // The stream is over: a later reply is dropped.
          svc.send({ flag: Flag.Reply, sid: req.sid, event: 'work', data: 'late' });
          assert.deepEqual(await caller.collect(150), []);
          await timersDrained(server);
        } finally {
          closeAll(svc, caller);
        }
      });
    });
  }

  test('the requester leaving: the responder\'s replies are dropped, nothing is left behind', async () => {
    await withBroker(async (server) => {
      const [svc] = await named(server, 'svc', 1, ['tcp']);
      const caller = await connect(server, 'tcp');
      try {
        caller.send({ flag: Flag.Subscribe, event: 'feed', meta: '@=svc', data: 'x' });
        const req = await svc.nextFlag(Flag.Subscribe);
        caller.close();
        await eventually(() => server.broker.sessionCount === 1, 1000, 'caller gone');
        await timersDrained(server);
        svc.send({ flag: Flag.Reply, sid: req.sid, event: 'feed', data: 'anyone?' });
        svc.ping();
        await svc.nextFlag(Flag.Pong);
        assert.equal(svc.frames.filter((f) => f.flag === Flag.Alarm || f.flag === Flag.Close).length, 0);
      } finally {
        closeAll(svc, caller);
      }
    });
  });
});

describe('Subscribe', () => {
  test('several Replies then ReplyEnd are relayed in order with their flags', async () => {
    await withBroker(async (server) => {
      const [svc] = await named(server, 'svc', 1, ['udp']);
      const caller = await connect(server, 'ws');
      try {
        const s = caller.send({ flag: Flag.Subscribe, event: 'feed', meta: '@=svc', data: 'sub' });
        const sub = await svc.nextFlag(Flag.Subscribe);
        assert.notEqual(sub.sid, s);
        const N = 30;
        for (let i = 0; i < N; i++) svc.send({ flag: Flag.Reply, sid: sub.sid, event: 'feed', meta: `i=${i}`, data: `r${i}` });
        svc.send({ flag: Flag.ReplyEnd, sid: sub.sid, event: 'feed', meta: 'last=1', data: 'end' });
        const got: Frame[] = [];
        for (let i = 0; i <= N; i++) got.push(await caller.nextFor(s));
        for (let i = 0; i < N; i++) {
          assert.equal(got[i].flag, Flag.Reply);
          assert.equal(got[i].metaString, `i=${i}`);
          assert.equal(got[i].data.toString(), `r${i}`);
        }
        assert.equal(got[N].flag, Flag.ReplyEnd);
        assert.equal(got[N].metaString, 'last=1');
        assert.equal(got[N].data.toString(), 'end');
        svc.send({ flag: Flag.Reply, sid: sub.sid, event: 'feed', data: 'after end' });
        assert.deepEqual(await caller.collect(150), []);
        await timersDrained(server);
      } finally {
        closeAll(svc, caller);
      }
    });
  });

  test('fixtures d5..d10: a reference Subscribe exchange relayed with the reference bytes', async () => {
    await withBroker(async (server) => {
      const { svc, caller } = await referencePair(server);
      try {
        caller.sendBytes(fixture('d5'));
        const d6 = await svc.nextFlag(Flag.Subscribe);
        assert.equal(d6.metaString, '@=svc');
        assert.equal(d6.data.toString(), 'sub-1');
        svc.send({ flag: Flag.Reply, sid: d6.sid, event: 'hello', meta: '', data: 'r1' });
        svc.send({ flag: Flag.ReplyEnd, sid: d6.sid, event: 'hello', meta: '', data: 'end' });
        const d9 = await caller.nextFor('4fa7bb4a018f4281b7cdeed442f1b7b1');
        const d10 = await caller.nextFor('4fa7bb4a018f4281b7cdeed442f1b7b1');
        assert.deepEqual(d9.raw, fixture('d9'));
        assert.deepEqual(d10.raw, fixture('d10'));
        await timersDrained(server);
      } finally {
        closeAll(svc, caller);
      }
    });
  });

  test('scatter-gather @=svc* with 3 members: every Reply relayed, exactly one ReplyEnd after the last member ended', async () => {
    await withBroker(async (server) => {
      const members = await named(server, 'svc', 3);
      const caller = await connect(server, 'tcp');
      try {
        const s = caller.send({ flag: Flag.Subscribe, event: 'gather', meta: '@=svc*', data: 'q' });
        const subs = await Promise.all(members.map((m) => m.nextFlag(Flag.Subscribe)));
        assert.equal(new Set(subs.map((f) => f.sid)).size, 1, 'one fresh sid on every member');
        // Members answer one after the other: two Replies and a ReplyEnd each.
        for (let m = 0; m < 3; m++) {
          members[m].send({ flag: Flag.Reply, sid: subs[m].sid, event: 'gather', data: `m${m}-a` });
          members[m].send({ flag: Flag.Reply, sid: subs[m].sid, event: 'gather', data: `m${m}-b` });
          members[m].send({ flag: Flag.ReplyEnd, sid: subs[m].sid, event: 'gather', data: `m${m}-end` });
          // Each member's frames arrive before the next member's (different transports, so keep them apart).
          await eventually(() => caller.frames.filter((f) => f.sid === s).length === 3 * (m + 1), 2000, `member ${m} relayed`);
          if (m < 2) assert.equal(caller.frames.filter((f) => f.flag === Flag.ReplyEnd).length, 0, 'no ReplyEnd before the last member');
        }
        const got = await caller.collect(150, (f) => f.sid === s);
        assert.equal(got.length, 9);
        const ends = got.filter((f) => f.flag === Flag.ReplyEnd);
        assert.equal(ends.length, 1, 'exactly one ReplyEnd');
        assert.equal(got[8].flag, Flag.ReplyEnd, 'the ReplyEnd comes last');
        const data = got.map((f) => f.data.toString());
        for (let m = 0; m < 3; m++) for (const part of ['a', 'b', 'end']) assert.ok(data.includes(`m${m}-${part}`), `m${m}-${part} relayed`);
        await timersDrained(server);
      } finally {
        closeAll(...members, caller);
      }
    });
  });

  test('scatter-gather @=* reaches every named session and ends once', async () => {
    await withBroker(async (server) => {
      const a = await connect(server, 'tcp', { name: 'a' });
      const b = await connect(server, 'ws', { name: 'b' });
      const caller = await connect(server, 'udp', { name: 'caller' });
      await eventually(() => server.broker.registry.namedCount === 3, 1000, '3 named');
      try {
        const s = caller.send({ flag: Flag.Subscribe, event: 'census', meta: '@=*', data: 'q' });
        const [sa, sb] = await Promise.all([a.nextFlag(Flag.Subscribe), b.nextFlag(Flag.Subscribe)]);
        a.send({ flag: Flag.ReplyEnd, sid: sa.sid, event: 'census', data: 'a' });
        await eventually(() => caller.frames.length === 1, 1000, 'a relayed');
        b.send({ flag: Flag.ReplyEnd, sid: sb.sid, event: 'census', data: 'b' });
        const first = await caller.nextFor(s);
        const second = await caller.nextFor(s);
        assert.deepEqual([first.flag, first.data.toString()], [Flag.Reply, 'a']);
        assert.deepEqual([second.flag, second.data.toString()], [Flag.ReplyEnd, 'b']);
        assert.deepEqual(await caller.collect(100), []);
        await timersDrained(server);
      } finally {
        closeAll(a, b, caller);
      }
    });
  });

  test('scatter-gather: a member leaving still ends the gather with one ReplyEnd', async () => {
    await withBroker(async (server) => {
      const members = await named(server, 'svc', 3, ['tcp']);
      const caller = await connect(server, 'tcp');
      try {
        const s = caller.send({ flag: Flag.Subscribe, event: 'gather', meta: '@=svc*', data: 'q' });
        const subs = await Promise.all(members.map((m) => m.nextFlag(Flag.Subscribe)));
        members[0].send({ flag: Flag.ReplyEnd, sid: subs[0].sid, event: 'gather', data: 'm0' });
        await eventually(() => caller.frames.length === 1, 1000, 'm0 relayed');
        members[1].close();
        await eventually(() => server.broker.registry.group('svc')?.members.length === 2, 1000, 'm1 gone');
        assert.equal(caller.frames.filter((f) => f.flag === Flag.ReplyEnd || f.flag === Flag.Alarm).length, 0, 'one member still open');
        members[2].send({ flag: Flag.Reply, sid: subs[2].sid, event: 'gather', data: 'm2' });
        members[2].send({ flag: Flag.ReplyEnd, sid: subs[2].sid, event: 'gather', data: 'm2-end' });
        const got = [await caller.nextFor(s), await caller.nextFor(s), await caller.nextFor(s)];
        assert.deepEqual(got.map((f) => f.flag), [Flag.Reply, Flag.Reply, Flag.ReplyEnd]);
        assert.deepEqual(got.map((f) => f.data.toString()), ['m0', 'm2', 'm2-end']);
        assert.deepEqual(await caller.collect(100), []);
        await timersDrained(server);
      } finally {
        closeAll(...members, caller);
      }
    });
  });

  test('scatter-gather: the last open member leaving ends the gather with a ReplyEnd (no Alarm)', async () => {
    await withBroker(async (server) => {
      const members = await named(server, 'svc', 2, ['ws']);
      const caller = await connect(server, 'tcp');
      try {
        const s = caller.send({ flag: Flag.Subscribe, event: 'gather', meta: '@=svc*', data: 'q' });
        const subs = await Promise.all(members.map((m) => m.nextFlag(Flag.Subscribe)));
        members[0].send({ flag: Flag.ReplyEnd, sid: subs[0].sid, event: 'gather', data: 'm0' });
        const first = await caller.nextFor(s);
        assert.equal(first.flag, Flag.Reply);
        members[1].close();
        const end = await caller.nextFor(s, 1000);
        assert.equal(end.flag, Flag.ReplyEnd);
        assert.deepEqual(await caller.collect(100), []);
        await timersDrained(server);
      } finally {
        closeAll(...members, caller);
      }
    });
  });

  test('scatter-gather: members timing out still end the gather with one ReplyEnd', async () => {
    await withBroker(async (server) => {
      const members = await named(server, 'svc', 3);
      const caller = await connect(server, 'tcp');
      try {
        const started = Date.now();
        const s = caller.send({ flag: Flag.Subscribe, event: 'gather', meta: '@=svc*&timeout=200', data: 'q' });
        const subs = await Promise.all(members.map((m) => m.nextFlag(Flag.Subscribe)));
        members[0].send({ flag: Flag.Reply, sid: subs[0].sid, event: 'gather', data: 'only' });
        const reply = await caller.nextFor(s);
        assert.equal(reply.flag, Flag.Reply);
        const end = await caller.nextFor(s, 2000);
        const elapsed = Date.now() - started;
        assert.equal(end.flag, Flag.ReplyEnd);
        assert.ok(elapsed >= 150 && elapsed < 1500, `ended after ${elapsed} ms (timeout=200, streamMs 5000)`);
        members[1].send({ flag: Flag.ReplyEnd, sid: subs[1].sid, event: 'gather', data: 'late' });
        assert.deepEqual(await caller.collect(150), []);
        await timersDrained(server);
      } finally {
        closeAll(...members, caller);
      }
    }, { timeouts: { requestMs: 500, streamMs: 5000, idleMs: 5000, handshakeMs: 1000 } });
  });

  test('a single Subscribe past its stream timeout gets Alarm 4008', async () => {
    await withBroker(async (server) => {
      const [svc] = await named(server, 'svc', 1, ['tcp']);
      const caller = await connect(server, 'tcp');
      try {
        const s = caller.send({ flag: Flag.Subscribe, event: 'feed', meta: '@=svc', data: 'q' });
        const sub = await svc.nextFlag(Flag.Subscribe);
        svc.send({ flag: Flag.Reply, sid: sub.sid, event: 'feed', data: 'r' });
        assert.equal((await caller.nextFor(s)).flag, Flag.Reply);
        const alarm = await caller.nextFor(s, 2000);
        assert.equal(alarm.flag, Flag.Alarm);
        assert.equal(code(alarm), '4008');
        await timersDrained(server);
      } finally {
        closeAll(svc, caller);
      }
    }, { timeouts: { requestMs: 200, streamMs: 300, idleMs: 5000, handshakeMs: 1000 } });
  });
});

describe('fragments', () => {
  const parts = ['aaaaaaaaaa', 'bbbbbbbbbb', 'ccccc'];
  const total = parts.join('').length;

  function sendFragments(client: RawClient, flag: number, fragSid: string, at: string): void {
    client.send({ flag, sid: fragSid, event: 'big', meta: `@=${at}&Data-Fragment-Idx=1&Data-Fragment-Total=3&Data-Length=${total}`, data: parts[0] });
    client.send({ flag, sid: fragSid, event: 'big', meta: 'Data-Fragment-Idx=2&Data-Fragment-Total=3', data: parts[1] });
    client.send({ flag, sid: fragSid, event: 'big', meta: 'Data-Fragment-Idx=3&Data-Fragment-Total=3', data: parts[2] });
  }

  test('a Request in 3 fragments reaches one target with one fresh sid, in order; its reply comes back', async () => {
    await withBroker(async (server) => {
      const members = await named(server, 'svc', 2, ['tcp', 'ws']);
      const caller = await connect(server, 'tcp');
      try {
        const reqSid = 'f'.repeat(32);
        sendFragments(caller, Flag.Request, reqSid, 'svc');
        await eventually(() => members.reduce((n, m) => n + m.frames.length, 0) >= 3, 2000, '3 fragments delivered');
        const got = await Promise.all(members.map((m) => m.collect(100)));
        const target = got.findIndex((g) => g.length > 0);
        assert.equal(got[target].length, 3, 'every fragment at the same member');
        assert.equal(got[1 - target].length, 0, 'nothing at the other member');
        const frags = got[target];
        assert.ok(frags.every((f) => f.flag === Flag.Request));
        assert.equal(new Set(frags.map((f) => f.sid)).size, 1, 'one sid for every fragment');
        assert.notEqual(frags[0].sid, reqSid, 'a fresh sid');
        assert.deepEqual(frags.map((f) => f.data.toString()), parts);
        assert.equal(frags[0].metaString, `@=svc&Data-Fragment-Idx=1&Data-Fragment-Total=3&Data-Length=${total}`);
        assert.equal(frags[1].metaString, 'Data-Fragment-Idx=2&Data-Fragment-Total=3');
        assert.equal(frags[2].metaString, 'Data-Fragment-Idx=3&Data-Fragment-Total=3');
        members[target].send({ flag: Flag.ReplyEnd, sid: frags[0].sid, event: 'big', data: 'got it' });
        const reply = await caller.nextFor(reqSid);
        assert.equal(reply.flag, Flag.ReplyEnd);
        assert.equal(reply.data.toString(), 'got it');
        await timersDrained(server);
        assert.equal([...server.broker.allSessions()].every((s) => s.fragments.size === 0), true);
      } finally {
        closeAll(...members, caller);
      }
    });
  });

  for (const fast of [true, false]) {
    test(`Messages in fragments (forwardMessageBytes ${fast}): each message whole at one round-robin member`, async () => {
      await withBroker(async (server) => {
        const members = await named(server, 'svc', 2, ['tcp', 'udp']);
        const caller = await connect(server, 'ws');
        try {
          sendFragments(caller, Flag.Message, '1'.repeat(32), 'svc');
          sendFragments(caller, Flag.Message, '2'.repeat(32), 'svc');
          await eventually(() => members.reduce((n, m) => n + m.frames.length, 0) >= 6, 2000, '6 fragments delivered');
          const got = await Promise.all(members.map((m) => m.collect(100)));
          assert.deepEqual(got.map((g) => g.length), [3, 3], 'round robin: one message per member');
          for (const frags of got) {
            assert.equal(new Set(frags.map((f) => f.sid)).size, 1, 'one sid per message');
            assert.deepEqual(frags.map((f) => f.data.toString()), parts);
            assert.deepEqual(frags.map((f) => metaOf(f.metaString, 'Data-Fragment-Idx')), ['1', '2', '3']);
            if (fast) assert.ok(frags[0].sid === '1'.repeat(32) || frags[0].sid === '2'.repeat(32), 'the sender sid is kept');
            else assert.ok(frags[0].sid !== '1'.repeat(32) && frags[0].sid !== '2'.repeat(32), 'a broker sid');
          }
          assert.notEqual(got[0][0].sid, got[1][0].sid);
          await timersDrained(server);
        } finally {
          closeAll(...members, caller);
        }
      }, { ...CONFIG, fastPaths: { forwardMessageBytes: fast } });
    });
  }

  test('a Subscribe in fragments to @=svc* reaches every member with the same fresh sid', async () => {
    await withBroker(async (server) => {
      const members = await named(server, 'svc', 3);
      const caller = await connect(server, 'tcp');
      try {
        const s = 'e'.repeat(32);
        sendFragments(caller, Flag.Subscribe, s, 'svc*');
        await eventually(() => members.every((m) => m.frames.length >= 3), 2000, 'every member got 3 fragments');
        const got = await Promise.all(members.map((m) => m.collect(50)));
        const sids = new Set(got.flat().map((f) => f.sid));
        assert.equal(sids.size, 1);
        for (const frags of got) assert.deepEqual(frags.map((f) => f.data.toString()), parts);
        for (let m = 0; m < 3; m++) members[m].send({ flag: Flag.ReplyEnd, sid: got[m][0].sid, event: 'big', data: `m${m}` });
        const replies = [await caller.nextFor(s), await caller.nextFor(s), await caller.nextFor(s)];
        assert.equal(replies.filter((f) => f.flag === Flag.ReplyEnd).length, 1);
        await timersDrained(server);
      } finally {
        closeAll(...members, caller);
      }
    });
  });

  test('a fragment 2 with no fragment 1 gets Alarm 4004', async () => {
    await withBroker(async (server) => {
      const [svc] = await named(server, 'svc', 1, ['tcp']);
      const caller = await connect(server, 'tcp');
      try {
        const s = caller.send({ flag: Flag.Message, event: 'big', meta: 'Data-Fragment-Idx=2&Data-Fragment-Total=3', data: 'orphan' });
        const alarm = await caller.nextFor(s);
        assert.equal(alarm.flag, Flag.Alarm);
        assert.equal(code(alarm), '4004');
        assert.equal(alarm.metaString, 'Data-Fragment-Idx=2&Data-Fragment-Total=3&code=4004');
        // Also after the route is complete: a fragment 4 of 3 has no route.
        sendFragments(caller, Flag.Message, 'd'.repeat(32), 'svc');
        await eventually(() => svc.frames.length === 3, 1000, '3 fragments');
        caller.send({ flag: Flag.Message, sid: 'd'.repeat(32), event: 'big', meta: 'Data-Fragment-Idx=3&Data-Fragment-Total=3', data: 'again' });
        const alarm2 = await caller.nextFor('d'.repeat(32));
        assert.equal(code(alarm2), '4004');
        assert.deepEqual(await svc.collect(100, (f) => f.data.toString() === 'again'), []);
        await timersDrained(server);
      } finally {
        closeAll(svc, caller);
      }
    });
  });

  test('an unfinished fragmented Message leaves no timer once the request timeout passes', async () => {
    await withBroker(async (server) => {
      const [svc] = await named(server, 'svc', 1, ['tcp']);
      const caller = await connect(server, 'tcp');
      try {
        caller.send({ flag: Flag.Message, sid: 'c'.repeat(32), event: 'big', meta: '@=svc&Data-Fragment-Idx=1&Data-Fragment-Total=3', data: 'x' });
        await svc.nextFlag(Flag.Message);
        assert.equal(server.broker.pendingTimers, 1, 'the route holds one deadline');
        await eventually(() => server.broker.pendingTimers === 0, 2000, 'the route expired');
        const s = caller.send({ flag: Flag.Message, sid: 'c'.repeat(32), event: 'big', meta: 'Data-Fragment-Idx=2&Data-Fragment-Total=3', data: 'y' });
        assert.equal(code(await caller.nextFor(s)), '4004');
      } finally {
        closeAll(svc, caller);
      }
    }, { timeouts: { requestMs: 200, idleMs: 5000, handshakeMs: 1000 } });
  });
});
