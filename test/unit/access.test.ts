import test, { describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  ALL_PERMISSIONS, ConfigAccessPolicy, OPEN_ACCESS, Permissions, tokenProblem, type PermissionRules,
} from '../../src/broker/access.js';
import { matchPattern as matches, patternCovers as covers } from '../../src/protocol/event-pattern.js';

const rules = (over: Partial<PermissionRules>): PermissionRules => ({ ...ALL_PERMISSIONS, ...over });

describe('pattern logic', () => {
  test('matches: * is one token, trailing > one or more', () => {
    assert.equal(matches('a.*', 'a.b'), true);
    assert.equal(matches('a.*', 'a.b.c'), false);
    assert.equal(matches('a.>', 'a.b.c'), true);
    assert.equal(matches('a.>', 'a'), false);
    assert.equal(matches('>', 'x'), true);
    assert.equal(matches('a.b', 'a.b'), true);
    assert.equal(matches('a.b', 'a.bc'), false);
  });

  test('covers: outer matches every event the inner pattern matches', () => {
    assert.equal(covers('>', 'a.*'), true);
    assert.equal(covers('a.>', 'a.*.c'), true);
    assert.equal(covers('a.*', 'a.b'), true);
    assert.equal(covers('a.*', 'a.*'), true);
    assert.equal(covers('a.b', 'a.*'), false, 'a literal does not cover a wildcard');
    assert.equal(covers('a.*', 'a.>'), false, '* does not cover > (deeper events)');
    assert.equal(covers('a.>', 'a.>'), true);
    assert.equal(covers('a.>', 'a'), false);
    assert.equal(covers('a.*.c', 'a.b.c'), true);
  });
});

describe('Permissions', () => {
  test('all permissions are unrestricted and skip every check', () => {
    const p = new Permissions('u', ALL_PERMISSIONS);
    assert.equal(p.unrestricted, true);
    assert.equal(p.canPublish('anything.at.all'), true);
    assert.equal(p.canClaim('svc'), true);
  });

  test('publish: allow list with deny winning', () => {
    const p = new Permissions('u', rules({ publish: { allow: ['orders.>'], deny: ['orders.secret.*'] } }));
    assert.equal(p.unrestricted, false);
    assert.equal(p.canPublish('orders.new'), true);
    assert.equal(p.canPublish('orders.secret.x'), false);
    assert.equal(p.canPublish('billing.x'), false);
    assert.equal(p.canPublish('orders.new'), true, 'cached answer is the same');
  });

  test('subscribe: allowed when covered by allow and not covered by deny; denied events filtered at delivery', () => {
    const p = new Permissions('u', rules({ subscribe: { allow: ['chat.>'], deny: ['chat.admin'] } }));
    assert.equal(p.canSubscribe('chat.*'), true, 'overlaps the denied event but is not covered by it');
    assert.equal(p.canSubscribe('chat.admin'), false);
    assert.equal(p.canSubscribe('>'), false, 'not covered by chat.>');
    assert.equal(p.filtersDeliveries, true);
    assert.equal(p.canReceive('chat.room1'), true);
    assert.equal(p.canReceive('chat.admin'), false);
  });

  test('names: globs for claim and address', () => {
    const p = new Permissions('u', rules({ claim: { allow: ['svc-*'], deny: ['svc-admin'] }, address: { allow: ['svc-*', 'db'], deny: [] } }));
    assert.equal(p.canClaim('svc-orders'), true);
    assert.equal(p.canClaim('svc-admin'), false);
    assert.equal(p.canClaim('other'), false);
    assert.equal(p.canAddress('db'), true);
    assert.equal(p.canAddress('dbx'), false);
    assert.equal(p.canAddress('svc-a.b'), true, 'a dot in a glob is literal, * spans anything');
    assert.equal(new Permissions('u', rules({ claim: { allow: ['a.b'], deny: [] } })).canClaim('axb'), false, 'regex metacharacters are escaped');
  });
});

describe('ConfigAccessPolicy', () => {
  const reader = rules({ publish: { allow: ['reports.>'], deny: [] } });
  const hashed = `sha256:${createHash('sha256').update('second-secret').digest('hex')}`;
  const policy = new ConfigAccessPolicy({
    anonymous: false,
    anonymousPermissions: ALL_PERMISSIONS,
    users: [
      { name: 'alice', token: 'first-secret', permissions: ALL_PERMISSIONS },
      { name: 'bob', token: hashed, permissions: reader },
    ],
  });

  test('a plain token and a sha256 token admit their users with their permissions', () => {
    const alice = policy.authenticate(new Map([['token', 'first-secret']]));
    assert.ok(alice instanceof Permissions);
    assert.equal(alice.user, 'alice');
    const bob = policy.authenticate(new Map([['token', 'second-secret']]));
    assert.ok(bob instanceof Permissions);
    assert.equal(bob.user, 'bob');
    assert.equal(bob.canPublish('orders.x'), false);
  });

  test('no token without anonymous access, and a wrong token, are refused with stable codes', () => {
    assert.deepEqual(policy.authenticate(new Map()), { code: 'auth_required', text: 'This broker needs a token (URL param or Connect meta `token`)' });
    const wrong = policy.authenticate(new Map([['token', 'nope-nope']]));
    assert.ok(!(wrong instanceof Permissions));
    assert.equal(wrong.code, 'auth_failed');
  });

  test('anonymous access gives the anonymous permissions', () => {
    const open = new ConfigAccessPolicy({ anonymous: true, anonymousPermissions: reader, users: [] });
    const anon = open.authenticate(new Map());
    assert.ok(anon instanceof Permissions);
    assert.equal(anon.user, 'anonymous');
    assert.equal(anon.canPublish('reports.daily'), true);
    assert.equal(anon.canPublish('orders.new'), false);
    assert.ok(OPEN_ACCESS.authenticate(new Map(), '127.0.0.1') instanceof Permissions);
    const ignored = open.authenticate(new Map([['token', 'meant-for-another-broker']]));
    assert.ok(ignored instanceof Permissions, 'with no users, a token is ignored');
    assert.equal(ignored.user, 'anonymous');
  });

  test('tokenProblem: short plain tokens and malformed hashes', () => {
    assert.equal(tokenProblem('short'), 'a plain token needs at least 8 characters');
    assert.equal(tokenProblem('sha256:abc'), 'a sha256: token needs 64 hex digits');
    assert.equal(tokenProblem(hashed), '');
    assert.equal(tokenProblem('long-enough'), '');
  });
});
