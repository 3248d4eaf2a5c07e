/**
 * What a node remembers of other nodes' members (src/cluster/remote-members.ts, docs/cluster.md "Presence"):
 * joins and leaves per node and (namespace, event), a snapshot replacing a room, an event nobody watches any
 * more forgotten, everything of a dropped node taken once, and the cap `cluster.presenceMembersMax`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RemoteMembers, roomKey, splitRoomKey } from '../../src/cluster/remote-members.js';

const names = (rooms: ReturnType<RemoteMembers<string>['take']>): string[] =>
  [...(rooms ?? new Map()).entries()].flatMap(([room, members]) => [...members.values()].map((m) => `${splitRoomKey(room).join('/')}:${m.id}:${m.name}`)).sort();

test('joins and leaves per node and room; take() returns and forgets everything of one node', () => {
  const members = new RemoteMembers<string>(100);
  const room = roomKey('', 'room.a');
  const tenant = roomKey('t', 'room.a');
  assert.ok(members.joined('b', room, 'id1', 'u1'));
  assert.ok(members.joined('b', room, 'id1', 'u1'), 'a repeated join is one member');
  assert.ok(members.joined('b', room, 'id2', 'u2'));
  assert.ok(members.joined('b', tenant, 'id3', 'u3'));
  assert.ok(members.joined('c', room, 'id4', 'u4'));
  assert.equal(members.size, 4);
  members.left('b', room, 'id2');
  members.left('b', room, 'unknown');
  members.left('x', room, 'id1');
  assert.equal(members.size, 3);
  assert.deepEqual(names(members.take('b')), ['/room.a:id1:u1', 't/room.a:id3:u3']);
  assert.equal(members.take('b'), undefined, 'taken once');
  assert.equal(members.size, 1);
  assert.deepEqual(names(members.take('c')), ['/room.a:id4:u4']);
  assert.equal(members.size, 0);
});

test('reset() empties one node\'s room; forgetRoom() empties a room of every node', () => {
  const members = new RemoteMembers<string>(100);
  const a = roomKey('', 'room.a');
  const b = roomKey('', 'room.b');
  members.joined('n1', a, '1', 'x');
  members.joined('n1', b, '2', 'y');
  members.joined('n2', a, '3', 'z');
  members.reset('n1', a);
  assert.equal(members.size, 2);
  members.forgetRoom(a);
  assert.equal(members.size, 1);
  assert.equal(members.take('n2'), undefined, 'n2 held nothing else');
  assert.deepEqual(names(members.take('n1')), ['/room.b:2:y']);
});

test('bounded: past the limit a join is refused until an entry goes; 0 keeps nothing', () => {
  const members = new RemoteMembers<string>(2);
  const a = roomKey('', 'room.a');
  assert.ok(members.joined('n', a, '1', 'x'));
  assert.ok(members.joined('n', a, '2', 'y'));
  assert.equal(members.joined('n', a, '3', 'z'), false);
  assert.ok(members.joined('n', a, '1', 'x'), 'one already kept is no new entry');
  members.left('n', a, '1');
  assert.ok(members.joined('n', a, '3', 'z'));
  assert.equal(members.size, 2);
  const none = new RemoteMembers<string>(0);
  assert.equal(none.joined('n', a, '1', 'x'), false);
  assert.equal(none.size, 0);
});
