/**
 * The sender's remembered `@` route (fastPaths.atRouteCache, src/broker/at-route-cache.ts), on and off: a
 * plain client repeating `@=name` gets the same routing either way (round robin, members leaving, no route,
 * Requests, fragments, address permissions: spec §4.1, §5, §8); with the cache on, the repeated meta is
 * remembered after its second frame, with it off never.
 */
import test, { describe } from 'node:test';
import assert from 'node:assert/strict';
import { Flag, type Frame } from '../../src/protocol/index.js';
import type { RunningServer } from '../../src/server.js';
import type { Session } from '../../src/broker/session.js';
import { RawClient } from '../support/raw-client.js';
import { startTestBroker, eventually } from '../support/broker.js';
import { closeAll, connect } from '../support/integration.js';

const isMessage = (f: Frame): boolean => f.flag === Flag.Message;

function sessionNamed(server: RunningServer, name: string): Session {
  for (const s of server.broker.allSessions()) if (s.name === name) return s;
  throw new Error(`no session named ${name}`);
}

for (const atRouteCache of [true, false]) {
  describe(`fastPaths.atRouteCache ${atRouteCache}`, () => {
    const config = { fastPaths: { atRouteCache }, timeouts: { requestMs: 2000, idleMs: 10_000, handshakeMs: 2000 } };

    test('round robin over a repeated @=svc meta; a member that leaves gets nothing more; then no route', async () => {
      const server = await startTestBroker(config);
      const members = [await connect(server, 'tcp', { name: 'svc' }), await connect(server, 'ws', { name: 'svc' }), await connect(server, 'tcp', { name: 'svc' })];
      const caller = await connect(server, 'tcp', { name: 'caller' });
      try {
        await eventually(() => server.broker.registry.group('svc')?.members.length === 3, 2000, 'three members');
        for (let i = 0; i < 9; i++) caller.send({ flag: Flag.Message, event: 'hello', meta: '@=svc', data: `m${i}` });
        await eventually(() => members.reduce((n, m) => n + m.frames.filter(isMessage).length, 0) === 9, 3000, '9 Messages');
        const first = await Promise.all(members.map((m) => m.collect(50, isMessage)));
        assert.deepEqual(first.map((g) => g.length), [3, 3, 3], 'round robin still rotates');
        const cache = sessionNamed(server, 'caller').atRoute;
        if (atRouteCache) assert.equal(cache?.metaString, '@=svc', 'remembered after it repeated');
        else assert.equal(cache, null, 'nothing remembered');

        members[2]!.close();
        await eventually(() => server.broker.registry.group('svc')?.members.length === 2, 2000, 'one left');
        for (let i = 0; i < 4; i++) caller.send({ flag: Flag.Message, event: 'hello', meta: '@=svc', data: `n${i}` });
        await eventually(() => members[0]!.frames.filter(isMessage).length + members[1]!.frames.filter(isMessage).length === 4, 3000, '4 more');
        assert.deepEqual((await Promise.all(members.slice(0, 2).map((m) => m.collect(50, isMessage)))).map((g) => g.length), [2, 2]);

        members[0]!.close();
        members[1]!.close();
        await eventually(() => server.broker.registry.group('svc') === undefined, 2000, 'all left');
        const sid = caller.send({ flag: Flag.Message, event: 'hello', meta: '@=svc', data: 'lost' });
        const alarm = await caller.nextFor(sid);
        assert.equal(alarm.flag, Flag.Alarm);
        assert.match(alarm.data.toString(), /Broker don't have '@svc' session/);
      } finally {
        closeAll(...members, caller);
        await server.close();
      }
    });

    test('Requests over a repeated @ meta open their streams; a fragmented Message still follows its route', async () => {
      const server = await startTestBroker(config);
      const responder = await connect(server, 'tcp', { name: 'echo' });
      const caller = await connect(server, 'ws', { name: 'asker' });
      try {
        for (let i = 0; i < 4; i++) {
          const sid = caller.send({ flag: Flag.Request, event: 'ask', meta: '@=echo', data: `q${i}` });
          const request = await responder.nextFlag(Flag.Request);
          responder.send({ flag: Flag.ReplyEnd, sid: request.sid, event: request.event, data: request.data });
          const reply = await caller.nextFor(sid);
          assert.equal(reply.flag, Flag.ReplyEnd);
          assert.equal(reply.data.toString(), `q${i}`);
        }
        assert.equal(sessionNamed(server, 'asker').atRoute?.metaString, atRouteCache ? '@=echo' : undefined);
        // Fragments carry their own metas: never remembered, always routed as fragment 1 was (spec §5).
        const sid = 'frag-1';
        caller.send({ flag: Flag.Message, sid, event: 'big', meta: '@=echo&Data-Fragment-Idx=1&Data-Fragment-Total=2', data: 'part1' });
        caller.send({ flag: Flag.Message, sid, event: 'big', meta: '@=echo&Data-Fragment-Idx=2&Data-Fragment-Total=2', data: 'part2' });
        await eventually(() => responder.frames.filter(isMessage).length === 2, 3000, 'both fragments');
        assert.deepEqual(responder.frames.filter(isMessage).map((f) => f.data.toString()), ['part1', 'part2']);
        assert.equal(sessionNamed(server, 'asker').atRoute?.metaString, atRouteCache ? '@=echo' : undefined, 'fragments not remembered');
      } finally {
        closeAll(responder, caller);
        await server.close();
      }
    });

    test('an address the sender may not use is refused every time (denials are never remembered)', async () => {
      const access = {
        anonymous: false,
        users: [
          { name: 'admin', token: 'admin-secret' },
          { name: 'limited', token: 'limited-secret', permissions: { address: { allow: ['orders-*'] } } },
        ],
      };
      const server = await startTestBroker({ ...config, access });
      const port = server.addresses.tcp!.port;
      const billing = await RawClient.connect('tcp', port, { name: 'billing', query: 'token=admin-secret' });
      const orders = await RawClient.connect('tcp', port, { name: 'orders-1', query: 'token=admin-secret' });
      const limited = await RawClient.connect('tcp', port, { name: 'lim', query: 'token=limited-secret' });
      try {
        for (let i = 0; i < 3; i++) {
          const sid = limited.send({ flag: Flag.Message, event: 'x', meta: '@=billing', data: 'no' });
          const alarm = await limited.nextFor(sid);
          assert.equal(alarm.meta('code'), '4003', `denied, frame ${i}`);
        }
        assert.equal(sessionNamed(server, 'lim').atRoute?.metaString ?? '', '', 'a denied meta is not remembered');
        for (let i = 0; i < 3; i++) limited.send({ flag: Flag.Message, event: 'x', meta: '@=orders-1', data: `ok${i}` });
        await eventually(() => orders.frames.filter(isMessage).length === 3, 3000, 'allowed ones delivered');
        const sid = limited.send({ flag: Flag.Message, event: 'x', meta: '@=billing', data: 'still no' });
        assert.equal((await limited.nextFor(sid)).meta('code'), '4003', 'denied after another meta was remembered');
        assert.equal(billing.frames.filter(isMessage).length, 0);
      } finally {
        closeAll(billing, orders, limited);
        await server.close();
      }
    });
  });
}
