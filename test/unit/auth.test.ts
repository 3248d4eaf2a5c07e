/**
 * Per-user identities without sockets: the access.jwt / access.connectHook config checks, the permissions
 * claim, JWT shape detection and error mapping, the connect hook's answers and bound with a fake fetch, and
 * the expiry timer.
 */
import test, { describe } from 'node:test';
import assert from 'node:assert/strict';
import { errors } from 'jose';
import { DEFAULT_CONFIG, checkMerged, mergeConfig, validateConfig, type BrokerConfig } from '../../src/config/schema.js';
import { ALL_PERMISSIONS } from '../../src/broker/access.js';
import { BrokerStats } from '../../src/broker/stats.js';
import { TokenPermissions, completeRules, parsePermissionClaim } from '../../src/broker/auth/identity.js';
import { refusalOf } from '../../src/broker/auth/jwt.js';
import { looksLikeJwt } from '../../src/broker/auth/identity.js';
import { ConnectHook, type FetchLike, type HookRequest } from '../../src/broker/auth/connect-hook.js';
import { ExpiryTimer } from '../../src/broker/auth/expiry.js';

const merged = (over: unknown): BrokerConfig => mergeConfig(DEFAULT_CONFIG as BrokerConfig, over);

describe('config: access.jwt and access.connectHook', () => {
  test('the defaults are valid and off', () => {
    assert.deepEqual(checkMerged(DEFAULT_CONFIG as BrokerConfig), []);
    assert.equal(DEFAULT_CONFIG.access.jwt.secret, '');
    assert.equal(DEFAULT_CONFIG.access.connectHook.url, '');
  });

  test('field rules: algorithms from the list only (never none), types, ranges, unknown keys', () => {
    assert.deepEqual(validateConfig({ access: { jwt: { algorithms: ['HS256', 'none'] } } }), [
      "access.jwt.algorithms: 'none' is not one of HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA, Ed25519",
    ]);
    assert.deepEqual(validateConfig({ access: { jwt: { publicKeyFiles: 'key.pem' } } }), [
      'access.jwt.publicKeyFiles: expected a list of non-empty strings, got string "key.pem"',
    ]);
    assert.deepEqual(validateConfig({ access: { jwt: { clockToleranceSec: -1 } } }), ['access.jwt.clockToleranceSec: -1 is outside 0..3600']);
    assert.deepEqual(validateConfig({ access: { connectHook: { timeoutMs: 0 } } }), ['access.connectHook.timeoutMs: 0 is outside 1..60000']);
    assert.deepEqual(validateConfig({ access: { jwt: { secrt: 'x' } } }).length, 1);
    assert.deepEqual(validateConfig({ access: { jwt: { defaultPermissions: { publish: { allow: ['a.>.b'] } } } } }).length, 1);
  });

  test('cross-field checks: one secret source, 32+ bytes, http(s) URLs, a key for each algorithm', () => {
    const secret = 'x'.repeat(32);
    assert.deepEqual(checkMerged(merged({ access: { jwt: { secret, secretEnv: 'JWT_SECRET' } } })), [
      'access.jwt: set one of secret, secretFile, secretEnv (got secret, secretEnv)',
    ]);
    assert.deepEqual(checkMerged(merged({ access: { jwt: { secret: 'short' } } })), ['access.jwt.secret: an HMAC secret needs at least 32 bytes']);
    assert.deepEqual(checkMerged(merged({ access: { jwt: { jwksUrl: 'file:///etc/keys' } } })), [
      "access.jwt.jwksUrl: expected an http:// or https:// URL, got 'file:///etc/keys'",
    ]);
    assert.deepEqual(checkMerged(merged({ access: { connectHook: { url: 'app/connect' } } })), [
      "access.connectHook.url: expected an http:// or https:// URL, got 'app/connect'",
    ]);
    assert.deepEqual(checkMerged(merged({ access: { jwt: { secret, algorithms: ['HS256', 'RS256'] } } })), [
      "access.jwt.algorithms: 'RS256' has no key configured for it",
    ]);
  });

  test('a hook or JWKS timeout must be below the handshake timeout', () => {
    assert.deepEqual(checkMerged(merged({ timeouts: { handshakeMs: 1000 }, access: { connectHook: { url: 'http://127.0.0.1:9/h', timeoutMs: 1000 } } })), [
      'access.connectHook.timeoutMs (1000) must be below timeouts.handshakeMs (1000)',
    ]);
    assert.deepEqual(checkMerged(merged({ timeouts: { handshakeMs: 3000 }, access: { jwt: { jwksUrl: 'https://app.example/jwks' } } })), [
      'access.jwt.jwksTimeoutMs (5000) must be below timeouts.handshakeMs (3000)',
    ]);
  });

  test('anonymous off is fine with JWT or a hook as the way in, not with nothing', () => {
    assert.equal(checkMerged(merged({ access: { anonymous: false } })).length, 1);
    assert.deepEqual(checkMerged(merged({ access: { anonymous: false, jwt: { secret: 'x'.repeat(32) } } })), []);
    assert.deepEqual(checkMerged(merged({ access: { anonymous: false, connectHook: { url: 'http://127.0.0.1:9/hook' } } })), []);
  });
});

describe('the permissions claim', () => {
  const defaults = completeRules({ claim: { allow: ['{sub}'] }, subscribe: { allow: ['user.{sub}.>'] } });

  test('no claim: the defaults, {sub} replaced by the user', () => {
    const parsed = parsePermissionClaim(undefined, defaults, 'alice');
    assert.ok(typeof parsed !== 'string');
    assert.deepEqual(parsed.rules.claim, { allow: ['alice'], deny: [] });
    assert.deepEqual(parsed.rules.subscribe, { allow: ['user.alice.>'], deny: [] });
    assert.deepEqual(parsed.rules.publish, ALL_PERMISSIONS.publish);
    assert.equal(parsed.namespaces, null);
  });

  test('a claim replaces the rules it names; unset lists as for configured users; namespaces stored', () => {
    const parsed = parsePermissionClaim({ publish: { deny: ['admin.>'] }, namespaces: ['team1'] }, defaults, 'alice');
    assert.ok(typeof parsed !== 'string');
    assert.deepEqual(parsed.rules.publish, { allow: ['>'], deny: ['admin.>'] });
    assert.deepEqual(parsed.rules.claim, { allow: ['alice'], deny: [] }, 'left out: from the defaults');
    assert.deepEqual(parsed.namespaces, ['team1']);
    const p = new TokenPermissions('alice', parsed.rules, 0, '', parsed.namespaces, 'jwt');
    assert.equal(p.canPublish('admin.reset'), false);
    assert.equal(p.canPublish('chat.x'), true);
  });

  test('a malformed claim is a problem, never wider permissions', () => {
    assert.equal(parsePermissionClaim('all', defaults, 'alice'), 'the permissions claim must be an object');
    assert.match(parsePermissionClaim({ root: {} }, defaults, 'alice') as string, /unknown permission 'root'/);
    assert.match(parsePermissionClaim({ publish: { allow: 'chat.>' } }, defaults, 'alice') as string, /must be a list/);
    assert.match(parsePermissionClaim({ subscribe: { allow: ['a..b'] } }, defaults, 'alice') as string, /subscribe.allow: 'a..b'/);
    assert.match(parsePermissionClaim({ namespaces: [1] }, defaults, 'alice') as string, /namespaces/);
    assert.match(parsePermissionClaim(undefined, defaults, 'a.b') as string, /cannot stand for \{sub\}/, 'a user with a dot would widen user.{sub}.>');
  });
});

describe('JWT helpers', () => {
  test('looksLikeJwt: compact JWS only', () => {
    assert.equal(looksLikeJwt('eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln'), true);
    assert.equal(looksLikeJwt('eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.'), true, 'an unsigned token is still checked (and refused)');
    assert.equal(looksLikeJwt('orders-secret'), false);
    assert.equal(looksLikeJwt('sha256:abc.def.ghi'), false);
  });

  test("jose's errors map to the stable codes", () => {
    assert.equal(refusalOf(new errors.JWTExpired('x', {})).code, 'token_expired');
    assert.equal(refusalOf(new errors.JWTClaimValidationFailed('x', {}, 'nbf', 'check_failed')).code, 'token_not_yet_valid');
    assert.equal(refusalOf(new errors.JWTClaimValidationFailed('x', {}, 'iss', 'check_failed')).code, 'token_invalid');
    assert.equal(refusalOf(new errors.JWSSignatureVerificationFailed()).code, 'token_invalid');
    assert.equal(refusalOf(new errors.JWKSTimeout()).code, 'jwks_unavailable');
    assert.equal(refusalOf(new TypeError('fetch failed')).code, 'jwks_unavailable');
  });
});

describe('connect hook (fake fetch)', () => {
  const request: HookRequest = { transport: 'tcp', remoteAddress: '127.0.0.1', name: '', token: 't', params: { token: 't' } };
  const options = { url: 'http://hook.test/', timeoutMs: 1000, cacheMs: 0, cacheMaxEntries: 2, maxConcurrent: 1, maxAnswerBytes: 1024 };
  const answering = (status: number, body: string): FetchLike => async () => ({ status, text: async () => body });

  test('answers: admit with expiry and name, refuse with reason, anything else hook_unavailable', async () => {
    const stats = new BrokerStats();
    const admit = await new ConnectHook(options, stats, answering(200, JSON.stringify({ allow: true, user: 'u', name: 'n', expiresAt: Date.now() / 1000 + 60 }))).admit(request);
    assert.ok(admit instanceof TokenPermissions);
    assert.equal(admit.assignedName, 'n');
    assert.ok(admit.expiresAt > Date.now());
    const refuse = await new ConnectHook(options, stats, answering(200, '{"allow":false,"reason":"banned"}')).admit(request);
    assert.deepEqual(refuse, { code: 'hook_refused', text: 'banned' });
    for (const [status, body] of [[500, '{}'], [200, 'not json'], [200, '{"allow":"yes"}'], [200, '{"allow":true}'], [200, `{"allow":false,"reason":"${'x'.repeat(2000)}"}`]] as const) {
      const out = await new ConnectHook(options, stats, answering(status, body)).admit(request);
      assert.equal((out as { code: string }).code, 'hook_unavailable', `${status} ${body}`);
    }
    assert.equal(stats.authChecks.get('hook|error'), 5);
  });

  test('over maxConcurrent: hook_busy at once; the cache is bounded and outages are not cached', async () => {
    const stats = new BrokerStats();
    let release: () => void = () => {};
    let calls = 0;
    const slow: FetchLike = async () => {
      calls++;
      await new Promise<void>((r) => (release = r));
      return { status: 200, text: async () => '{"allow":true,"user":"u"}' };
    };
    const hook = new ConnectHook({ ...options, cacheMs: 60_000 }, stats, slow);
    const first = hook.admit(request);
    assert.deepEqual(await hook.admit({ ...request, token: 'other' }), {
      code: 'hook_busy', text: 'The connect hook has 1 calls in flight: try again later',
    });
    assert.equal(hook.pending, 1);
    release();
    assert.ok((await first) instanceof TokenPermissions);
    assert.ok((await hook.admit(request)) instanceof TokenPermissions);
    assert.equal(calls, 1, 'the second admission came from the cache');
    const failing = new ConnectHook({ ...options, cacheMs: 60_000 }, stats, async () => {
      calls++;
      throw new TypeError('fetch failed');
    });
    await failing.admit(request);
    await failing.admit(request);
    assert.equal(calls, 3, 'an outage is asked again');
  });
});

test('ExpiryTimer: fires once at the deadline, re-arming moves it, cancel stops it', async () => {
  const fired: number[] = [];
  const timer = new ExpiryTimer({ tokenExpired: (now) => void fired.push(now) });
  timer.arm(Date.now() + 30);
  timer.arm(Date.now() + 80);
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(fired, []);
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(fired.length, 1);
  assert.equal(timer.expiresAt, 0);
  timer.arm(Date.now() + 20);
  timer.cancel();
  await new Promise((r) => setTimeout(r, 40));
  assert.equal(fired.length, 1);
});
