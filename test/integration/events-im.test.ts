/**
 * Event routing, IM style (spec §4.2): rooms are events, join = `$sub` (presence=1), say = Message,
 * members = `$presence`; private messages by `@`; `$presence.join/leave` notices; the `sub=` handshake param.
 * Five users u1..u5 over tcp, ws and udp.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Flag, type Frame } from '../../src/protocol/index.js';
import type { RunningServer } from '../../src/server.js';
import type { RawClient } from '../support/raw-client.js';
import { startTestBroker, eventually } from '../support/broker.js';
import { closeAll, connect, metaOf } from '../support/integration.js';
import { WAIT_MS, assertNothing, messagesOf, presenceOf, subscribe, unsubscribe, type PresenceEntry } from '../support/events.js';

const FAST = { timeouts: { requestMs: 3000, idleMs: 20_000, handshakeMs: 5000 } };

const isJoin = messagesOf('$presence.join');
const isLeave = messagesOf('$presence.leave');
const chatA = messagesOf('room.a');
const chatB = messagesOf('room.b');

interface Users {
  u1: RawClient;
  u2: RawClient;
  u3: RawClient;
  u4: RawClient;
  /** Connected with `sub=room.b`: a member of room.b without a `$sub`. */
  u5: RawClient;
  all: RawClient[];
  /** The join notices the setup caused, taken off the clients: u1 hears u2, u3; u2 hears u3; u4 hears u5. */
  setupJoins: Map<RawClient, Frame[]>;
}

/**
 * u1 (tcp) and u2 (ws) join room.a with presence=1, u3 (udp) joins room.a without presence;
 * u4 (tcp) joins room.b with presence=1; u5 (ws) connects with `sub=room.b`.
 */
async function fiveUsers(server: RunningServer): Promise<Users> {
  const u1 = await connect(server, 'tcp', { name: 'u1' });
  const u2 = await connect(server, 'ws', { name: 'u2' });
  const u3 = await connect(server, 'udp', { name: 'u3' });
  const u4 = await connect(server, 'tcp', { name: 'u4' });
  await subscribe(u1, 'room.a', { presence: true });
  await subscribe(u2, 'room.a', { presence: true });
  await subscribe(u3, 'room.a');
  await subscribe(u4, 'room.b', { presence: true });
  const u5 = await connect(server, 'ws', { name: 'u5', query: 'sub=room.b' });
  await eventually(() => server.events.subscriptionCount === 5, WAIT_MS, '5 subscriptions');
  const setupJoins = new Map<RawClient, Frame[]>();
  for (const [client, n] of [[u1, 2], [u2, 1], [u4, 1]] as const) setupJoins.set(client, await take(client, n, isJoin));
  return { u1, u2, u3, u4, u5, all: [u1, u2, u3, u4, u5], setupJoins };
}

async function withUsers(body: (server: RunningServer, u: Users) => Promise<void>): Promise<void> {
  const server = await startTestBroker(FAST);
  let users: Users | null = null;
  try {
    users = await fiveUsers(server);
    await body(server, users);
  } finally {
    if (users !== null) closeAll(...users.all);
    await eventually(() => server.broker.sessionCount === 0, WAIT_MS, 'every session gone').catch(() => undefined);
    await server.close();
  }
}

/** Waits until the client has `n` unconsumed frames matching, then takes them (after a settle for extras). */
async function take(client: RawClient, n: number, match: (f: Frame) => boolean, settleMs = 150): Promise<Frame[]> {
  await eventually(() => client.frames.filter(match).length >= n, WAIT_MS, `${n} frames on ${client.transport}`);
  return client.collect(settleMs, match);
}

function byName(entries: PresenceEntry[]): Map<string, PresenceEntry> {
  return new Map(entries.map((e) => [e.name, e]));
}

function sessionIdOf(server: RunningServer, name: string): string {
  for (const s of server.broker.allSessions()) if (s.name === name) return s.id;
  throw new Error(`no session named ${name}`);
}

test('room chat reaches every other member of the room exactly once, nobody outside it, never the sender', async () => {
  await withUsers(async (_server, { u1, u2, u3, u4, u5 }) => {
    const saySid = u1.send({ flag: Flag.Message, event: 'room.a', meta: 'from=u1', data: 'hello room a' });
    for (const member of [u2, u3]) {
      const [got] = await take(member, 1, chatA);
      assert.equal(got.data.toString(), 'hello room a');
      assert.equal(got.metaString, 'from=u1', 'the meta is forwarded verbatim');
      assert.equal(got.sid, saySid, 'forwarded as the original bytes (fast path on by default)');
    }
    u3.send({ flag: Flag.Message, event: 'room.a', data: 'u3 over udp' });
    for (const member of [u1, u2]) {
      const got = await take(member, 1, chatA);
      assert.deepEqual(got.map((f) => f.data.toString()), ['u3 over udp']);
    }
    u5.send({ flag: Flag.Message, event: 'room.b', data: 'hello room b' });
    const [inB] = await take(u4, 1, chatB);
    assert.equal(inB.data.toString(), 'hello room b');
    await assertNothing([u1, u2, u3, u4, u5], 200, (f) => chatA(f) || chatB(f), 'extra chat');
    // Nobody was answered with an Alarm.
    await assertNothing([u1, u2, u3, u4, u5], 0, (f) => f.flag === Flag.Alarm, 'Alarm');
  });
});

test('a private message by @=u3 reaches only u3, whatever its event', async () => {
  await withUsers(async (_server, { u1, u2, u3, u4, u5 }) => {
    u1.send({ flag: Flag.Message, event: 'room.a', meta: '@=u3', data: 'psst' });
    u4.send({ flag: Flag.Message, event: 'dm', meta: '@=u3', data: 'from u4' });
    const got = await take(u3, 2, (f) => f.flag === Flag.Message && f.data.toString() !== '');
    assert.deepEqual(got.map((f) => f.data.toString()).sort(), ['from u4', 'psst']);
    await assertNothing([u1, u2, u4, u5], 200, (f) => f.flag === Flag.Message && !isJoin(f), 'private message');
  });
});

test('$presence lists exactly the members of a room (id, name, transport, since), sub= included', async () => {
  await withUsers(async (server, { u1, u3, u4 }) => {
    const a = await presenceOf(u3, 'room.a');
    assert.deepEqual(a.map((e) => e.name).sort(), ['u1', 'u2', 'u3']);
    const entries = byName(a);
    assert.equal(entries.get('u1')!.transport, 'tcp');
    assert.equal(entries.get('u2')!.transport, 'ws');
    assert.equal(entries.get('u3')!.transport, 'udp');
    for (const e of a) {
      assert.equal(e.id, sessionIdOf(server, e.name), `${e.name}'s id is its session id`);
      assert.ok(Number.isFinite(Date.parse(e.since)) && Date.parse(e.since) <= Date.now(), `since is a date: ${e.since}`);
      assert.deepEqual(Object.keys(e).sort(), ['id', 'name', 'since', 'transport']);
    }
    const b = await presenceOf(u1, 'room.b');
    assert.deepEqual(b.map((e) => e.name).sort(), ['u4', 'u5'], 'u5 is in room.b through sub= alone');
    assert.equal(byName(b).get('u5')!.transport, 'ws');
    assert.deepEqual(await presenceOf(u4, 'room.nobody'), [], 'an empty room lists nobody');
  });
});

test('the sub= handshake param makes the session a member: it gets the room chat, and presence=1 members hear it join', async () => {
  await withUsers(async (server, { u1, u2, u4, u5, setupJoins }) => {
    const u5id = sessionIdOf(server, 'u5');
    assert.deepEqual(setupJoins.get(u4)!.map((f) => f.metaString), [`event=room.b&id=${u5id}&name=u5`]);
    // The room.a watchers heard the room.a members join (u3 has presence=0 but is a member), not room.b's.
    assert.deepEqual(setupJoins.get(u1)!.map((f) => metaOf(f.metaString, 'name')), ['u2', 'u3']);
    assert.deepEqual(setupJoins.get(u2)!.map((f) => metaOf(f.metaString, 'name')), ['u3']);
    for (const f of setupJoins.get(u1)!) assert.equal(metaOf(f.metaString, 'event'), 'room.a');
    await assertNothing([u1, u2], 0, isJoin, 'room.b join notice');
    u4.send({ flag: Flag.Message, event: 'room.b', data: 'hi u5' });
    const [got] = await take(u5, 1, chatB);
    assert.equal(got.data.toString(), 'hi u5');
    // A Connect meta works as well as the URL query, and takes a comma-separated list.
    const u6 = await connect(server, 'udp', { name: 'u6', meta: 'sub=room.b,room.c' });
    try {
      const [joined6] = await take(u4, 1, isJoin);
      assert.equal(metaOf(joined6.metaString, 'name'), 'u6');
      assert.deepEqual((await presenceOf(u4, 'room.c')).map((e) => e.name), ['u6']);
      u4.send({ flag: Flag.Message, event: 'room.c', data: 'to c' });
      const [inC] = await take(u6, 1, messagesOf('room.c'));
      assert.equal(inC.data.toString(), 'to c');
    } finally {
      closeAll(u6);
    }
    const [left6] = await take(u4, 1, isLeave);
    assert.equal(metaOf(left6.metaString, 'name'), 'u6');
  });
});

test('u5 joins room.a: presence=1 members get $presence.join with event, id and name; $unsub and disconnect give $presence.leave', async () => {
  await withUsers(async (_server, { u1, u2, u3, u4, u5 }) => {
    const u5id = byName(await presenceOf(u1, 'room.b')).get('u5')!.id;

    await subscribe(u5, 'room.a', { presence: true });
    const joinMeta = `event=room.a&id=${u5id}&name=u5`;
    for (const watcher of [u1, u2]) {
      const got = await take(watcher, 1, isJoin);
      assert.equal(got.length, 1, 'one join notice');
      assert.equal(got[0].metaString, joinMeta);
      assert.equal(got[0].data.length, 0);
    }
    assert.deepEqual((await presenceOf(u2, 'room.a')).map((e) => e.name).sort(), ['u1', 'u2', 'u3', 'u5']);
    // u5 now hears room.a chat; room.b's watcher and the presence=0 member hear no room.a notice; u5 gets none of its own.
    u2.send({ flag: Flag.Message, event: 'room.a', data: 'welcome u5' });
    assert.deepEqual((await take(u5, 1, chatA)).map((f) => f.data.toString()), ['welcome u5']);
    await assertNothing([u3, u4, u5], 150, (f) => isJoin(f) || isLeave(f), 'presence notice');

    // Subscribing again is idempotent: no second notice.
    await subscribe(u5, 'room.a', { presence: true });
    await assertNothing([u1, u2], 150, isJoin, 'second join notice');

    await unsubscribe(u5, 'room.a');
    const leaveMeta = `event=room.a&id=${u5id}&name=u5`;
    for (const watcher of [u1, u2]) assert.deepEqual((await take(watcher, 1, isLeave)).map((f) => f.metaString), [leaveMeta]);
    assert.deepEqual((await presenceOf(u1, 'room.a')).map((e) => e.name).sort(), ['u1', 'u2', 'u3']);
    u1.send({ flag: Flag.Message, event: 'room.a', data: 'after u5 left' });
    await take(u2, 1, chatA);
    await assertNothing([u5], 200, chatA, 'room.a chat after $unsub');

    // Join again, then disconnect: both rooms hear u5 leave.
    await subscribe(u5, 'room.a', { presence: true });
    for (const watcher of [u1, u2]) await take(watcher, 1, isJoin);
    closeAll(u5);
    for (const watcher of [u1, u2]) assert.deepEqual((await take(watcher, 1, isLeave)).map((f) => f.metaString), [leaveMeta]);
    assert.deepEqual((await take(u4, 1, isLeave)).map((f) => f.metaString), [`event=room.b&id=${u5id}&name=u5`]);
    assert.deepEqual((await presenceOf(u1, 'room.a')).map((e) => e.name).sort(), ['u1', 'u2', 'u3']);
    assert.deepEqual((await presenceOf(u1, 'room.b')).map((e) => e.name), ['u4']);
    await assertNothing([u3], 100, (f) => isJoin(f) || isLeave(f), 'presence notice without presence=1');
  });
});

test('presence=1 asked later turns notices on; a member through two groups leaves once', async () => {
  await withUsers(async (_server, { u1, u3, u4 }) => {
    await subscribe(u3, 'room.a', { presence: true });
    await subscribe(u4, 'room.a', { group: 'g1' });
    await subscribe(u4, 'room.a', { group: 'g2' });
    const got = await take(u3, 1, isJoin);
    assert.equal(metaOf(got[0].metaString, 'name'), 'u4');
    await take(u1, 1, (f) => isJoin(f) && metaOf(f.metaString, 'name') === 'u4');
    await unsubscribe(u4, 'room.a', { group: 'g1' });
    await assertNothing([u1, u3], 150, isLeave, 'leave while still a member through g2');
    assert.ok((await presenceOf(u1, 'room.a')).some((e) => e.name === 'u4'));
    await unsubscribe(u4, 'room.a', { group: 'g2' });
    assert.equal(metaOf((await take(u3, 1, isLeave))[0].metaString, 'name'), 'u4');
  });
});
