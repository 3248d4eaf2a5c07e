/**
 * Routing by `@` name (spec §4.1) on the real broker: round robin, stable hash, all-of-a-name, everyone,
 * the sender never a target, no-route Alarms (fixtures g1..g4), and forwarded Message bytes with the fast
 * path on and off (fixtures c1/c2).
 */
import test, { describe } from 'node:test';
import assert from 'node:assert/strict';
import { Flag, type Frame } from '../../src/protocol/index.js';
import type { RunningServer } from '../../src/server.js';
import { RawClient } from '../support/raw-client.js';
import { startTestBroker, eventually } from '../support/broker.js';
import { closeAll, connect, fixture, metaOf, portOf, referencePair } from '../support/integration.js';

const FAST = { timeouts: { requestMs: 1000, idleMs: 5000, handshakeMs: 1000 } };

async function withBroker(
  body: (server: RunningServer) => Promise<void>,
  overrides: Record<string, Record<string, unknown>> = FAST,
): Promise<void> {
  const server = await startTestBroker(overrides);
  try {
    await body(server);
  } finally {
    await server.close();
  }
}

/** Waits until `clients` together hold `total` unconsumed frames matching, then takes them per client. */
async function gather(clients: RawClient[], total: number, match: (f: Frame) => boolean, settleMs = 100): Promise<Frame[][]> {
  await eventually(() => clients.reduce((n, c) => n + c.frames.filter(match).length, 0) >= total, 3000, `${total} frames`);
  // A little longer, to catch extra deliveries.
  return Promise.all(clients.map((c) => c.collect(settleMs, match)));
}

const isMessage = (f: Frame): boolean => f.flag === Flag.Message;

async function named(server: RunningServer, name: string, count: number): Promise<RawClient[]> {
  const transports = ['tcp', 'ws', 'udp'] as const;
  const out: RawClient[] = [];
  for (let i = 0; i < count; i++) out.push(await connect(server, transports[i % 3], { name }));
  await eventually(() => server.broker.registry.group(name)?.members.length === count, 1000, `${count} x ${name}`);
  return out;
}

describe('@=name: round robin', () => {
  test('6 Messages to 3 sessions named svc (tcp, ws, udp): 2 each, the sender gets none', async () => {
    await withBroker(async (server) => {
      const members = await named(server, 'svc', 3);
      const caller = await connect(server, 'tcp');
      try {
        for (let i = 0; i < 6; i++) caller.send({ flag: Flag.Message, event: 'hello', meta: '@=svc', data: `m${i}` });
        const got = await gather(members, 6, isMessage);
        assert.deepEqual(got.map((g) => g.length), [2, 2, 2]);
        const all = got.flat().map((f) => f.data.toString()).sort();
        assert.deepEqual(all, ['m0', 'm1', 'm2', 'm3', 'm4', 'm5']);
        assert.equal(caller.frames.length, 0, 'the caller got nothing back');
      } finally {
        closeAll(...members, caller);
      }
    });
  });

  test('6 Requests to 3 sessions named svc: 2 each, every one answered under its own sid', async () => {
    await withBroker(async (server) => {
      const members = await named(server, 'svc', 3);
      const caller = await connect(server, 'ws');
      try {
        const sids: string[] = [];
        for (let i = 0; i < 6; i++) sids.push(caller.send({ flag: Flag.Request, event: 'hello', meta: '@=svc', data: `r${i}` }));
        const got = await gather(members, 6, (f) => f.flag === Flag.Request);
        assert.deepEqual(got.map((g) => g.length), [2, 2, 2]);
        got.forEach((frames, m) => {
          for (const f of frames) members[m].send({ flag: Flag.ReplyEnd, sid: f.sid, event: f.event, data: `re:${f.data}` });
        });
        for (let i = 0; i < 6; i++) {
          const reply = await caller.nextFor(sids[i]);
          assert.equal(reply.flag, Flag.ReplyEnd);
          assert.equal(reply.data.toString(), `re:r${i}`);
        }
        await eventually(() => server.broker.pendingTimers === 0, 1000, 'no timers');
      } finally {
        closeAll(...members, caller);
      }
    });
  });

  test('3 Subscribes to 3 sessions named svc: 1 each', async () => {
    await withBroker(async (server) => {
      const members = await named(server, 'svc', 3);
      const caller = await connect(server, 'tcp');
      try {
        for (let i = 0; i < 3; i++) caller.send({ flag: Flag.Subscribe, event: 'feed', meta: '@=svc', data: `s${i}` });
        const got = await gather(members, 3, (f) => f.flag === Flag.Subscribe);
        assert.deepEqual(got.map((g) => g.length), [1, 1, 1]);
      } finally {
        closeAll(...members, caller);
      }
    });
  });

  test('a session named svc sending @=svc never targets itself: with one other member, always the other', async () => {
    await withBroker(async (server) => {
      const [self, other] = await named(server, 'svc', 2);
      try {
        for (let i = 0; i < 5; i++) self.send({ flag: Flag.Message, event: 'hello', meta: '@=svc', data: `m${i}` });
        const reqSid = self.send({ flag: Flag.Request, event: 'hello', meta: '@=svc', data: 'req' });
        const [mine, theirs] = await gather([self, other], 6, (f) => f.flag === Flag.Message || f.flag === Flag.Request);
        assert.equal(mine.length, 0, 'nothing came back to the sender');
        assert.equal(theirs.length, 6);
        const req = theirs.find((f) => f.flag === Flag.Request)!;
        other.send({ flag: Flag.ReplyEnd, sid: req.sid, event: 'hello', data: 'ok' });
        assert.equal((await self.nextFor(reqSid)).data.toString(), 'ok');
      } finally {
        closeAll(self, other);
      }
    });
  });

  for (const flag of [Flag.Message, Flag.Request, Flag.Subscribe]) {
    test(`a session named svc alone sending @=svc (flag ${flag}) gets Alarm 4004`, async () => {
      await withBroker(async (server) => {
        const [self] = await named(server, 'svc', 1);
        try {
          const s = self.send({ flag, event: 'hello', meta: '@=svc', data: 'x' });
          const alarm = await self.nextFor(s);
          assert.equal(alarm.flag, Flag.Alarm);
          assert.equal(alarm.metaString, '@=svc&code=4004');
          assert.equal(alarm.data.toString(), "Broker don't have '@svc' session");
          assert.equal(self.frames.filter((f) => f.flag === flag).length, 0);
        } finally {
          closeAll(self);
        }
      });
    });
  }
});

describe('@=name!: stable hash', () => {
  test('X-Hash: the same key always reaches the same member, keys spread; removing a member moves only its keys', async () => {
    await withBroker(async (server) => {
      const members = await Promise.all([0, 1, 2].map(() => connect(server, 'tcp', { name: 'svc' })));
      await eventually(() => server.broker.registry.group('svc')?.members.length === 3, 1000, '3 members');
      const caller = await connect(server, 'tcp');
      const KEYS = 50;
      /** key index -> member index, for one round of all keys. */
      const round = async (live: RawClient[], tag: string): Promise<Map<number, number>> => {
        for (let k = 0; k < KEYS; k++) {
          caller.send({ flag: Flag.Message, event: 'hello', meta: `@=svc!&X-Hash=key-${k}`, data: `${tag}:${k}` });
        }
        const got = await gather(live, KEYS, isMessage, 50);
        const where = new Map<number, number>();
        got.forEach((frames, m) => {
          for (const f of frames) {
            const k = Number(f.data.toString().split(':')[1]);
            assert.equal(where.has(k), false, `key ${k} delivered twice`);
            where.set(k, members.indexOf(live[m]));
            assert.equal(f.metaString, `@=svc!&X-Hash=key-${k}`);
          }
        });
        assert.equal(where.size, KEYS);
        return where;
      };
      try {
        const first = await round(members, 'a');
        const second = await round(members, 'b');
        assert.deepEqual([...second.entries()].sort(), [...first.entries()].sort(), 'same key, same target');
        const perMember = [0, 1, 2].map((m) => [...first.values()].filter((v) => v === m).length);
        for (const n of perMember) assert.ok(n >= 5, `keys spread poorly: ${perMember.join('/')}`);

        // A Request with the same key goes where its Messages went.
        const reqSid = caller.send({ flag: Flag.Request, event: 'hello', meta: '@=svc!&X-Hash=key-7', data: 'req' });
        const owner = members[first.get(7)!];
        const req = await owner.nextFlag(Flag.Request);
        owner.send({ flag: Flag.ReplyEnd, sid: req.sid, event: 'hello', data: 'mine' });
        assert.equal((await caller.nextFor(reqSid)).data.toString(), 'mine');

        // Remove member 2: only its keys move.
        members[2].close();
        await eventually(() => server.broker.registry.group('svc')?.members.length === 2, 1000, 'member 2 gone');
        const after = await round(members.slice(0, 2), 'c');
        let moved = 0;
        for (const [k, m] of first) {
          if (m === 2) {
            moved++;
            assert.ok(after.get(k) === 0 || after.get(k) === 1);
          } else {
            assert.equal(after.get(k), m, `key ${k} moved from surviving member ${m} to ${after.get(k)}`);
          }
        }
        assert.equal(moved, perMember[2]);
      } finally {
        closeAll(...members, caller);
      }
    });
  });

  test('without X-Hash the sender IP is the key: every frame reaches the same member', async () => {
    await withBroker(async (server) => {
      const members = await named(server, 'svc', 3);
      const callers = await Promise.all([connect(server, 'tcp'), connect(server, 'ws'), connect(server, 'udp')]);
      try {
        // Every caller is on 127.0.0.1, so all of them hash to the same member.
        for (let i = 0; i < 12; i++) callers[i % 3].send({ flag: Flag.Message, event: 'hello', meta: '@=svc!', data: `m${i}` });
        const got = await gather(members, 12, isMessage);
        const counts = got.map((g) => g.length).sort();
        assert.deepEqual(counts, [0, 0, 12]);
      } finally {
        closeAll(...members, ...callers);
      }
    });
  });

  test('the sender is skipped by the hash too; alone it gets Alarm 4004', async () => {
    await withBroker(async (server) => {
      const [a, b] = await named(server, 'svc', 2);
      try {
        for (let k = 0; k < 10; k++) a.send({ flag: Flag.Message, event: 'hello', meta: `@=svc!&X-Hash=k${k}`, data: `${k}` });
        const [toA, toB] = await gather([a, b], 10, isMessage);
        assert.equal(toA.length, 0);
        assert.equal(toB.length, 10);
        b.close();
        await eventually(() => server.broker.registry.group('svc')?.members.length === 1, 1000, 'b gone');
        const s = a.send({ flag: Flag.Message, event: 'hello', meta: '@=svc!&X-Hash=k1', data: 'x' });
        const alarm = await a.nextFor(s);
        assert.equal(alarm.flag, Flag.Alarm);
        assert.equal(metaOf(alarm.metaString, 'code'), '4004');
      } finally {
        closeAll(a, b);
      }
    });
  });
});

describe('@=name* and @=*', () => {
  test('@=svc* reaches every member but the sender; from an outsider, every member', async () => {
    await withBroker(async (server) => {
      const members = await named(server, 'svc', 3);
      const caller = await connect(server, 'tcp', { name: 'caller' });
      try {
        members[0].send({ flag: Flag.Message, event: 'hello', meta: '@=svc*', data: 'from-0' });
        const got = await gather(members, 2, isMessage);
        assert.deepEqual(got.map((g) => g.length), [0, 1, 1]);
        caller.send({ flag: Flag.Message, event: 'hello', meta: '@=svc*', data: 'from-caller' });
        const got2 = await gather(members, 3, isMessage);
        assert.deepEqual(got2.map((g) => g.length), [1, 1, 1]);
        for (const f of got2.flat()) {
          assert.equal(f.metaString, '@=svc*');
          assert.equal(f.data.toString(), 'from-caller');
        }
        assert.equal(caller.frames.length, 0);
      } finally {
        closeAll(...members, caller);
      }
    });
  });

  test('@=svc* with the sender as the only member gets Alarm 4004 (spec: no target -> Alarm)', async () => {
    await withBroker(async (server) => {
      const [self] = await named(server, 'svc', 1);
      try {
        const s = self.send({ flag: Flag.Message, event: 'hello', meta: '@=svc*', data: 'x' });
        const alarm = await self.nextFor(s);
        assert.equal(alarm.flag, Flag.Alarm);
        assert.equal(alarm.metaString, '@=svc*&code=4004');
      } finally {
        closeAll(self);
      }
    });
  });

  test('@=* reaches every named session except the sender; unnamed sessions get nothing', async () => {
    await withBroker(async (server) => {
      const a = await connect(server, 'tcp', { name: 'a' });
      const b1 = await connect(server, 'ws', { name: 'b' });
      const b2 = await connect(server, 'udp', { name: 'b' });
      const unnamed = await connect(server, 'tcp');
      const unnamedUdp = await connect(server, 'udp');
      const sender = await connect(server, 'ws', { name: 'c' });
      await eventually(() => server.broker.registry.namedCount === 4, 1000, '4 named');
      try {
        sender.send({ flag: Flag.Message, event: 'news', meta: '@=*', data: 'all' });
        const got = await gather([a, b1, b2, unnamed, unnamedUdp, sender], 3, isMessage);
        assert.deepEqual(got.map((g) => g.length), [1, 1, 1, 0, 0, 0]);
        for (const f of got.flat()) assert.equal(f.data.toString(), 'all');
        // From an unnamed sender: all 4 named sessions.
        unnamed.send({ flag: Flag.Message, event: 'news', meta: '@=*', data: 'all2' });
        const got2 = await gather([a, b1, b2, unnamed, unnamedUdp, sender], 4, isMessage);
        assert.deepEqual(got2.map((g) => g.length), [1, 1, 1, 0, 0, 1]);
      } finally {
        closeAll(a, b1, b2, unnamed, unnamedUdp, sender);
      }
    });
  });

  test('a Request to @=svc* is answered by the first reply, as ReplyEnd; later replies are dropped', async () => {
    await withBroker(async (server) => {
      const members = await named(server, 'svc', 2);
      const caller = await connect(server, 'tcp');
      try {
        const reqSid = caller.send({ flag: Flag.Request, event: 'ask', meta: '@=svc*', data: 'q' });
        const got = await gather(members, 2, (f) => f.flag === Flag.Request);
        const [r0, r1] = got.map((g) => g[0]);
        assert.equal(r0.sid, r1.sid, 'one fresh sid for every target');
        assert.notEqual(r0.sid, reqSid);
        members[0].send({ flag: Flag.Reply, sid: r0.sid, event: 'ask', data: 'first' });
        const reply = await caller.nextFor(reqSid);
        assert.equal(reply.flag, Flag.ReplyEnd);
        assert.equal(reply.data.toString(), 'first');
        members[1].send({ flag: Flag.ReplyEnd, sid: r1.sid, event: 'ask', data: 'second' });
        assert.deepEqual(await caller.collect(150), []);
        assert.equal(server.broker.pendingTimers, 0);
      } finally {
        closeAll(...members, caller);
      }
    });
  });
});

describe('no route', () => {
  test('fixture g1 (Message @=nobody) gets the Alarm of g2 with code=4004 added to the original meta', async () => {
    await withBroker(async (server) => {
      const caller = await RawClient.open('tcp', portOf(server, 'tcp'));
      try {
        caller.sendBytes(fixture('a2'));
        await caller.nextFlag(Flag.Connack);
        caller.sendBytes(fixture('g1'));
        const alarm = await caller.nextFlag(Flag.Alarm);
        assert.equal(alarm.sid, 'a13c87dace894a058a1d08184a673761');
        assert.equal(alarm.event, 'hello');
        assert.equal(alarm.metaString, '@=nobody&code=4004');
        assert.equal(alarm.data.toString(), "Broker don't have '@nobody' session");
        // The reference (g2) sends the same sid/event/data, without the code meta.
        const g2 = fixture('g2');
        assert.ok(g2.includes(Buffer.from("Broker don't have '@nobody' session")));
        caller.sendBytes(fixture('g3'));
        const alarm2 = await caller.nextFlag(Flag.Alarm);
        assert.equal(alarm2.sid, '126108f63c544bf68814038f92ce65f9');
        assert.equal(alarm2.metaString, '@=nobody&code=4004');
        assert.equal(alarm2.data.toString(), "Broker don't have '@nobody' session");
        assert.equal(server.broker.pendingTimers, 0);
        assert.equal(server.broker.stats.streamsOpen, 0);
      } finally {
        closeAll(caller);
      }
    });
  });

  for (const at of ['nobody', 'nobody!', 'nobody*']) {
    for (const flag of [Flag.Message, Flag.Request, Flag.Subscribe]) {
      test(`@=${at} with flag ${flag} and nobody named so: Alarm 4004, meta kept`, async () => {
        await withBroker(async (server) => {
          const caller = await connect(server, 'ws');
          try {
            const s = caller.send({ flag, event: 'ev', meta: `@=${at}&k=v`, data: 'x' });
            const alarm = await caller.nextFor(s);
            assert.equal(alarm.flag, Flag.Alarm);
            assert.equal(alarm.event, 'ev');
            assert.equal(alarm.metaString, `@=${at}&k=v&code=4004`);
            assert.match(alarm.data.toString(), /nobody/);
          } finally {
            closeAll(caller);
          }
        });
      });
    }
  }
});

describe('forwarded Message bytes', () => {
  test('fast path on (default): the forwarded bytes are the sent bytes (fixture c1)', async () => {
    await withBroker(async (server) => {
      const { svc, caller } = await referencePair(server);
      try {
        caller.sendBytes(fixture('c1'));
        const forwarded = await svc.nextFlag(Flag.Message);
        assert.deepEqual(forwarded.raw, fixture('c1'));
      } finally {
        closeAll(svc, caller);
      }
    });
  });

  for (const [from, to] of [['tcp', 'ws'], ['ws', 'udp'], ['udp', 'tcp']] as const) {
    test(`fast path on: ${from} -> ${to} forwards the exact bytes`, async () => {
      await withBroker(async (server) => {
        const svc = await connect(server, to, { name: 'svc' });
        const caller = await connect(server, from);
        try {
          const s = caller.send({ flag: Flag.Message, event: 'hello', meta: '@=svc&x=1', data: 'payload' });
          const forwarded = await svc.nextFlag(Flag.Message);
          assert.equal(forwarded.sid, s);
          assert.equal(forwarded.event, 'hello');
          assert.equal(forwarded.metaString, '@=svc&x=1');
          assert.equal(forwarded.data.toString(), 'payload');
        } finally {
          closeAll(svc, caller);
        }
      });
    });
  }

  test('fast path off: fixture c1 is forwarded like c2, a new sid with the same event, meta and data', async () => {
    await withBroker(async (server) => {
      const { svc, caller } = await referencePair(server);
      try {
        caller.sendBytes(fixture('c1'));
        const forwarded = await svc.nextFlag(Flag.Message);
        assert.notEqual(forwarded.sid, '0980d1ce3ed24778b0701302d4bb9754');
        assert.ok(forwarded.sid.length > 0);
        assert.equal(forwarded.event, 'hello');
        assert.equal(forwarded.metaString, '@=svc');
        assert.equal(forwarded.data.toString(), 'msg-1');
        // Two Messages get two different sids.
        caller.sendBytes(fixture('c1'));
        const again = await svc.nextFlag(Flag.Message);
        assert.notEqual(again.sid, forwarded.sid);
      } finally {
        closeAll(svc, caller);
      }
    }, { ...FAST, fastPaths: { forwardMessageBytes: false } });
  });

  test('fast path off: a fan-out (@=svc*) gives every target the same event/meta/data under a broker sid', async () => {
    await withBroker(async (server) => {
      const members = await named(server, 'svc', 3);
      const caller = await connect(server, 'tcp');
      try {
        const s = caller.send({ flag: Flag.Message, event: 'e', meta: '@=svc*&z=9', data: Buffer.from([0, 10, 0, 10, 255]) });
        const got = (await gather(members, 3, isMessage)).flat();
        assert.equal(got.length, 3);
        for (const f of got) {
          assert.notEqual(f.sid, s);
          assert.equal(f.event, 'e');
          assert.equal(f.metaString, '@=svc*&z=9');
          assert.deepEqual(f.data, Buffer.from([0, 10, 0, 10, 255]));
        }
      } finally {
        closeAll(...members, caller);
      }
    }, { ...FAST, fastPaths: { forwardMessageBytes: false } });
  });
});
