/**
 * Per-user identities from signed tokens (docs/security.md, "JWT") over real sockets: HS256 with the claim's
 * permissions, RS256 with a PEM key file, a JWKS served here on loopback http with key rotation, every
 * refusal with its Close reason, frames pipelined behind the Connect, and expiry with and without `$auth`.
 */
import test, { describe } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, exportJWK, type JWTPayload } from 'jose';
import pino from 'pino';
import { Flag, type Frame } from '../../src/protocol/index.js';
import type { RunningServer } from '../../src/server.js';
import { RawClient } from '../support/raw-client.js';
import { startTestBroker, ports, eventually } from '../support/broker.js';
import { TRANSPORTS, assertBrokerEmpty, closeAll, connect, metaOf, portOf, sleep } from '../support/integration.js';

const SECRET = 'a-test-secret-of-at-least-32-bytes!!';
const secretBytes = new TextEncoder().encode(SECRET);
const ISSUER = 'https://app.example';
const AUDIENCE = 'socketd';

interface TokenSpec {
  sub?: string;
  claims?: JWTPayload;
  /** Seconds from now; null for no exp. */
  expiresIn?: number | null;
  notBefore?: number;
  issuer?: string;
  audience?: string;
  alg?: string;
  key?: KeyObject | Uint8Array;
  kid?: string;
}

async function token(spec: TokenSpec = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ ...(spec.claims ?? {}) })
    .setProtectedHeader({ alg: spec.alg ?? 'HS256', ...(spec.kid !== undefined ? { kid: spec.kid } : {}) })
    .setSubject(spec.sub ?? 'alice')
    .setIssuer(spec.issuer ?? ISSUER)
    .setAudience(spec.audience ?? AUDIENCE)
    .setIssuedAt(now);
  if (spec.expiresIn !== null) jwt.setExpirationTime(now + (spec.expiresIn ?? 600));
  if (spec.notBefore !== undefined) jwt.setNotBefore(now + spec.notBefore);
  return jwt.sign(spec.key ?? secretBytes);
}

const aliceClaim = {
  socketd: {
    publish: { allow: ['chat.team1.*'] },
    subscribe: { allow: ['chat.team1.*'] },
    claim: { allow: ['alice'] },
  },
};

/** The Close frame that refused a handshake (the client sent Connect and waits). */
async function refusal(client: RawClient): Promise<Frame> {
  const close = await client.next((f) => f.flag === Flag.Close || f.flag === Flag.Connack);
  assert.equal(close.flag, Flag.Close, 'a Close, not a Connack');
  return close;
}

async function refusedWith(server: RunningServer, transport: (typeof TRANSPORTS)[number], jwt: string, reason: string, name?: string): Promise<void> {
  const client = await RawClient.open(transport, portOf(server, transport));
  try {
    await client.handshake(portOf(server, transport), { name, meta: `token=${jwt}`, awaitConnack: false });
    const close = await refusal(client);
    assert.equal(metaOf(close.metaString, 'reason'), reason, `${transport}: ${close.metaString} ${close.data.toString()}`);
    assert.equal(metaOf(close.metaString, 'code'), '2001');
    assert.ok(!close.data.toString().includes(jwt), 'the Close text does not carry the token');
  } finally {
    closeAll(client);
  }
}

const jwtAccess = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  anonymous: false,
  jwt: { secret: SECRET, issuer: ISSUER, audience: AUDIENCE, clockToleranceSec: 0, ...extra },
});

describe('JWT access (HS256)', () => {
  for (const transport of TRANSPORTS) {
    test(`${transport}: a valid token is admitted with its claim's permissions`, async () => {
      const server = await startTestBroker({ access: jwtAccess() });
      let alice: RawClient | undefined;
      let listener: RawClient | undefined;
      try {
        const jwt = await token({ claims: aliceClaim });
        alice = await connect(server, transport, { name: 'alice', query: `token=${jwt}` });
        const session = [...server.broker.allSessions()][0];
        assert.equal(session.permissions.user, 'alice');
        assert.equal(session.name, 'alice');
        // Inside the claim: a subscription is acknowledged.
        const subSid = alice.send({ flag: Flag.Request, event: '$sub', meta: 'event=chat.team1.*' });
        assert.equal((await alice.nextFor(subSid)).flag, Flag.ReplyEnd);
        // Outside it: Alarm 4003 for a subscription and for a publication.
        const deniedSub = alice.send({ flag: Flag.Request, event: '$sub', meta: 'event=chat.team2.*' });
        const alarm1 = await alice.nextFor(deniedSub);
        assert.equal(alarm1.flag, Flag.Alarm);
        assert.equal(metaOf(alarm1.metaString, 'code'), '4003');
        const deniedPub = alice.send({ flag: Flag.Request, event: 'chat.team2.general', data: 'hi' });
        const alarm2 = await alice.nextFor(deniedPub);
        assert.equal(alarm2.flag, Flag.Alarm);
        assert.equal(metaOf(alarm2.metaString, 'code'), '4003');
        // A message inside the claim reaches a subscriber.
        const bobJwt = await token({ sub: 'bob', claims: { socketd: { subscribe: { allow: ['chat.team1.*'] } } } });
        listener = await connect(server, transport, { meta: `token=${bobJwt}&sub=chat.team1.*` });
        await sleep(20);
        alice.send({ flag: Flag.Message, event: 'chat.team1.general', data: 'hello team' });
        const got = await listener.next((f) => f.flag === Flag.Message);
        assert.equal(got.data.toString(), 'hello team');
        assert.equal(server.broker.stats.authChecks.get('jwt|admitted'), 2);
      } finally {
        closeAll(alice, listener);
        await server.close();
      }
    });

    test(`${transport}: a name outside the claim is refused (name_forbidden); the default rules let a user claim its own name`, async () => {
      const server = await startTestBroker({ access: jwtAccess() });
      let own: RawClient | undefined;
      try {
        await refusedWith(server, transport, await token({ claims: aliceClaim }), 'name_forbidden', 'bob');
        // No claim: access.jwt.defaultPermissions, whose claim rule is {sub}.
        const plain = await token({ sub: 'carol' });
        await refusedWith(server, transport, plain, 'name_forbidden', 'alice');
        own = await connect(server, transport, { name: 'carol', meta: `token=${plain}` });
        assert.equal(server.broker.registry.namedCount, 1);
      } finally {
        closeAll(own);
        await server.close();
      }
    });

    test(`${transport}: expired, not yet valid, wrong issuer, wrong audience, bad signature and alg none are refused with their reasons`, async () => {
      const server = await startTestBroker({ access: jwtAccess() });
      try {
        await refusedWith(server, transport, await token({ expiresIn: -10 }), 'token_expired');
        await refusedWith(server, transport, await token({ notBefore: 60 }), 'token_not_yet_valid');
        await refusedWith(server, transport, await token({ issuer: 'https://evil.example' }), 'token_invalid');
        await refusedWith(server, transport, await token({ audience: 'someone-else' }), 'token_invalid');
        await refusedWith(server, transport, await token({ key: new TextEncoder().encode('another-secret-of-at-least-32-bytes!') }), 'token_invalid');
        const good = await token();
        const [, payload] = good.split('.');
        const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${payload}.`;
        await refusedWith(server, transport, none, 'token_invalid');
        const refused = server.broker.stats.handshakesRefused;
        assert.equal(refused.get('token_expired'), 1);
        assert.equal(refused.get('token_not_yet_valid'), 1);
        assert.equal(refused.get('token_invalid'), 4);
        const metrics = await (await fetch(`http://127.0.0.1:${ports(server).http}/metrics`)).text();
        assert.match(metrics, /socketd_handshakes_refused_total\{reason="token_expired"\} 1/);
        assert.match(metrics, /socketd_auth_checks_total\{source="jwt",outcome="token_invalid"\} 4/);
      } finally {
        await server.close();
      }
    });

    test(`${transport}: refresh through $auth before expiry keeps the session and applies the new permissions at once`, { timeout: 20_000 }, async () => {
      const server = await startTestBroker({ access: jwtAccess() });
      let client: RawClient | undefined;
      try {
        const first = await token({ expiresIn: 2, claims: { socketd: { publish: { allow: ['room.a.*'] } } } });
        client = await connect(server, transport, { meta: `token=${first}` });
        const session = [...server.broker.allSessions()][0];
        assert.ok(session.expiresAt > Date.now(), 'the session has an expiry');
        const fresh = await token({ expiresIn: 60, claims: { socketd: { publish: { allow: ['room.b.*'] } } } });
        const authSid = client.send({ flag: Flag.Request, event: '$auth', meta: `token=${fresh}` });
        const ack = await client.nextFor(authSid);
        assert.equal(ack.flag, Flag.ReplyEnd, `${ack.metaString} ${ack.data.toString()}`);
        assert.equal(metaOf(ack.metaString, 'user'), 'alice');
        assert.ok(!ack.metaString.includes(fresh), 'the token is not echoed');
        // The new rules apply to the next frame: room.a is now denied.
        const denied = client.send({ flag: Flag.Request, event: 'room.a.x' });
        assert.equal(metaOf((await client.nextFor(denied)).metaString, 'code'), '4003');
        const allowed = client.send({ flag: Flag.Request, event: 'room.b.x' });
        assert.equal(metaOf((await client.nextFor(allowed)).metaString, 'code'), '4004', 'allowed, but nobody listens');
        // Past the first token's expiry the session is still open.
        await sleep(2600);
        client.ping();
        await client.nextFlag(Flag.Pong);
        assert.equal(client.closeReceived, false);
        assert.equal(server.broker.sessionCount, 1);
      } finally {
        closeAll(client);
        await server.close();
      }
    });

    test(`${transport}: without a fresh token the session is closed at expiry (token_expired)`, { timeout: 20_000 }, async () => {
      const server = await startTestBroker({ access: jwtAccess() });
      let client: RawClient | undefined;
      try {
        client = await connect(server, transport, { name: 'alice', meta: `token=${await token({ expiresIn: 2 })}` });
        const opened = Date.now();
        const close = await client.nextFlag(Flag.Close, 5000);
        assert.equal(metaOf(close.metaString, 'reason'), 'token_expired');
        assert.equal(metaOf(close.metaString, 'code'), '2001');
        assert.ok(Date.now() - opened >= 1000, 'not before the expiry');
        await eventually(() => server.broker.sessionCount === 0, 2000, 'the expired session released');
        assert.equal(server.broker.stats.tokensExpired, 1);
        assert.equal(server.broker.stats.closes.get('token_expired'), 1);
      } finally {
        closeAll(client);
        await server.close();
      }
    });
  }

  test('$auth refusals: another user, an invalid token, a name the new token does not allow (Alarm 4003 with the reason)', async () => {
    const server = await startTestBroker({ access: jwtAccess() });
    let client: RawClient | undefined;
    try {
      client = await connect(server, 'tcp', { name: 'alice', meta: `token=${await token({ claims: aliceClaim })}` });
      const cases: [string, string][] = [
        [await token({ sub: 'mallory' }), 'token_user_mismatch'],
        [await token({ expiresIn: -5 }), 'token_expired'],
        ['eyJhbGciOiJIUzI1NiJ9.e30.bad', 'token_invalid'],
        [await token({ claims: { socketd: { claim: { allow: ['someone-else'] } } } }), 'name_forbidden'],
      ];
      for (const [jwt, reason] of cases) {
        const s = client.send({ flag: Flag.Request, event: '$auth', data: jwt });
        const alarm = await client.nextFor(s);
        assert.equal(alarm.flag, Flag.Alarm);
        assert.equal(metaOf(alarm.metaString, 'code'), '4003');
        assert.equal(metaOf(alarm.metaString, 'reason'), reason);
      }
      // Still alice with her old rules.
      assert.equal([...server.broker.allSessions()][0].permissions.user, 'alice');
    } finally {
      closeAll(client);
      await server.close();
    }
  });

  test('$auth: subscriptions the new token no longer allows are dropped, its deny rules filter deliveries', async () => {
    const server = await startTestBroker({ access: jwtAccess() });
    let alice: RawClient | undefined;
    let pub: RawClient | undefined;
    try {
      alice = await connect(server, 'tcp', { meta: `token=${await token({ claims: { socketd: { subscribe: { allow: ['room.>'] } } } })}` });
      for (const pattern of ['room.a.*', 'room.b.*']) {
        const s = alice.send({ flag: Flag.Request, event: '$sub', meta: `event=${pattern}` });
        assert.equal((await alice.nextFor(s)).flag, Flag.ReplyEnd);
      }
      assert.equal(server.events.subscriptionCount, 2);
      const narrower = await token({ claims: { socketd: { subscribe: { allow: ['room.b.*'], deny: ['room.b.secret'] } } } });
      const authSid = alice.send({ flag: Flag.Request, event: '$auth', meta: `token=${narrower}` });
      assert.equal((await alice.nextFor(authSid)).flag, Flag.ReplyEnd);
      assert.equal(server.events.subscriptionCount, 1, 'room.a.* dropped');
      pub = await connect(server, 'ws', { meta: `token=${await token({ sub: 'pub' })}` });
      for (const event of ['room.a.x', 'room.b.secret', 'room.b.ok']) pub.send({ flag: Flag.Message, event, data: event });
      const got = await alice.next((f) => f.flag === Flag.Message);
      assert.equal(got.event, 'room.b.ok');
      assert.deepEqual((await alice.collect(150, (f) => f.flag === Flag.Message)).map((f) => f.event), []);
    } finally {
      closeAll(alice, pub);
      await server.close();
    }
  });

  test('frames pipelined behind the Connect wait for the admission and are handled in order; too many is a protocol error', async () => {
    const server = await startTestBroker({ access: jwtAccess() });
    const port = portOf(server, 'tcp');
    const jwt = await token({ claims: aliceClaim });
    const a = await RawClient.open('tcp', port);
    const b = await RawClient.open('tcp', port);
    const c = await RawClient.open('tcp', port);
    try {
      await a.handshake(port, { meta: `token=${jwt}`, awaitConnack: false });
      const subSid = a.send({ flag: Flag.Request, event: '$sub', meta: 'event=chat.team1.*' });
      const deniedSid = a.send({ flag: Flag.Request, event: '$sub', meta: 'event=chat.team9.*' });
      await a.nextFlag(Flag.Connack);
      assert.equal((await a.nextFor(subSid)).flag, Flag.ReplyEnd);
      assert.equal(metaOf((await a.nextFor(deniedSid)).metaString, 'code'), '4003');
      await b.handshake(port, { meta: `token=${jwt}`, awaitConnack: false });
      for (let i = 0; i < 17; i++) b.ping();
      const close = await b.nextFlag(Flag.Close);
      assert.equal(metaOf(close.metaString, 'reason'), 'too_many_frames_before_connack');
      assert.equal(metaOf(close.metaString, 'code'), '1002');
      // One frame, but above access.maxBytesWhileAdmitting (65536 by default).
      await c.handshake(port, { meta: `token=${jwt}`, awaitConnack: false });
      c.send({ flag: Flag.Message, event: 'chat.team1.x', data: Buffer.alloc(70_000) });
      const big = await c.nextFlag(Flag.Close);
      assert.equal(metaOf(big.metaString, 'reason'), 'too_many_frames_before_connack');
    } finally {
      closeAll(a, b, c);
      await server.close();
    }
  });

  test('$auth that narrows `address` applies to a remembered @ route at once (fastPaths.atRouteCache)', async () => {
    const server = await startTestBroker({ access: jwtAccess() });
    let alice: RawClient | undefined;
    let svc: RawClient | undefined;
    try {
      svc = await connect(server, 'tcp', { name: 'svc', meta: `token=${await token({ sub: 'svc' })}` });
      alice = await connect(server, 'tcp', { meta: `token=${await token({ claims: { socketd: { address: { allow: ['svc'] } } } })}` });
      // Repeated, the @ meta is remembered with its permission check.
      for (const data of ['m1', 'm2', 'm3']) alice.send({ flag: Flag.Message, event: 'hello', meta: '@=svc', data });
      await eventually(() => svc!.frames.filter((f) => f.flag === Flag.Message).length === 3, 3000, 'three messages');
      const narrower = await token({ claims: { socketd: { address: { allow: ['other'] } } } });
      const authSid = alice.send({ flag: Flag.Request, event: '$auth', meta: `token=${narrower}` });
      assert.equal((await alice.nextFor(authSid)).flag, Flag.ReplyEnd);
      const sid = alice.send({ flag: Flag.Message, event: 'hello', meta: '@=svc', data: 'm4' });
      const alarm = await alice.nextFor(sid);
      assert.equal(alarm.flag, Flag.Alarm);
      assert.equal(metaOf(alarm.metaString, 'code'), '4003');
      await sleep(50);
      assert.deepEqual(svc.frames.filter((f) => f.flag === Flag.Message).map((f) => f.data.toString()), ['m1', 'm2', 'm3']);
    } finally {
      closeAll(alice, svc);
      await server.close();
    }
  });

  test('a claim\'s namespaces limit where the token may connect (docs/namespaces.md): others are namespace_forbidden', async () => {
    const server = await startTestBroker({ access: jwtAccess() });
    const opened: RawClient[] = [];
    try {
      const jwt = await token({ claims: { socketd: { namespaces: ['tenant-a'] } } });
      for (const transport of TRANSPORTS) {
        const port = portOf(server, transport);
        const allowed = await RawClient.open(transport, port);
        opened.push(allowed);
        await allowed.handshake(port, { path: 'tenant-a', meta: `token=${jwt}` });
        const refused = await RawClient.open(transport, port);
        opened.push(refused);
        await refused.handshake(port, { path: 'tenant-b', meta: `token=${jwt}`, awaitConnack: false });
        const close = await refusal(refused);
        assert.equal(metaOf(close.metaString, 'reason'), 'namespace_forbidden', `${transport}: ${close.metaString}`);
        // The default namespace is `/`, which the claim does not list either.
        const home = await RawClient.open(transport, port);
        opened.push(home);
        await home.handshake(port, { meta: `token=${jwt}`, awaitConnack: false });
        assert.equal(metaOf((await refusal(home)).metaString, 'reason'), 'namespace_forbidden', `${transport}: default namespace`);
      }
    } finally {
      closeAll(...opened);
      await server.close();
    }
  });

  test('refusals are logged with their reason and never with the token', async () => {
    const lines: string[] = [];
    // debug: a refused handshake's own close line is written at debug (info gets the per-interval summary).
    const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
    const server = await startTestBroker({ access: jwtAccess() }, { logger });
    try {
      const expired = await token({ expiresIn: -10 });
      const forged = await token({ key: new TextEncoder().encode('another-secret-of-at-least-32-bytes!') });
      await refusedWith(server, 'tcp', expired, 'token_expired');
      await refusedWith(server, 'ws', forged, 'token_invalid');
      await eventually(() => lines.filter((l) => l.includes('"session_close"')).length >= 2, 2000, 'two close lines');
      const closes = lines.filter((l) => l.includes('"session_close"')).map((l) => JSON.parse(l) as { reason: string });
      assert.deepEqual(closes.map((c) => c.reason).sort(), ['token_expired', 'token_invalid']);
      for (const line of lines) {
        for (const secret of [expired, forged, expired.split('.')[2], forged.split('.')[2]]) assert.ok(!line.includes(secret), `a log line holds a token: ${line}`);
      }
    } finally {
      await server.close();
    }
  });

  test('static users keep working beside JWT; a token that is no JWT goes to them', async () => {
    const server = await startTestBroker({ access: { ...jwtAccess(), users: [{ name: 'svc', token: 'service-token-1' }] } });
    let svc: RawClient | undefined;
    let user: RawClient | undefined;
    try {
      svc = await connect(server, 'tcp', { name: 'svc', query: 'token=service-token-1' });
      user = await connect(server, 'ws', { name: 'alice', query: `token=${await token({ claims: aliceClaim })}` });
      const users = [...server.broker.allSessions()].map((s) => s.permissions.user).sort();
      assert.deepEqual(users, ['alice', 'svc']);
      await refusedWith(server, 'udp', 'not-a-known-token', 'auth_failed');
    } finally {
      closeAll(svc, user);
      await server.close();
    }
  });
});

describe('JWT access (RS256, JWKS)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'socketd-jwt-'));
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyFile = join(dir, 'public.pem');
  writeFileSync(keyFile, rsa.publicKey.export({ type: 'spki', format: 'pem' }));

  test('RS256 with a PEM key file: admitted; an HMAC token made with the public key as its secret is refused', async () => {
    const server = await startTestBroker({ access: { anonymous: false, jwt: { publicKeyFiles: [keyFile], clockToleranceSec: 0 } } });
    const clients: RawClient[] = [];
    try {
      for (const transport of TRANSPORTS) {
        const jwt = await token({ alg: 'RS256', key: rsa.privateKey, claims: aliceClaim });
        clients.push(await connect(server, transport, { name: 'alice', meta: `token=${jwt}` }));
        // The classic key-confusion attack: HS256 signed with the PEM text of the public key.
        const pem = new TextEncoder().encode(rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string);
        await refusedWith(server, transport, await token({ alg: 'HS256', key: pem }), 'token_invalid');
        const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
        await refusedWith(server, transport, await token({ alg: 'RS256', key: other.privateKey }), 'token_invalid');
      }
      assert.equal(server.broker.registry.nameCount, 1, 'alice on three transports: one name');
    } finally {
      closeAll(...clients);
      await server.close();
    }
  });

  test('a JWKS served on loopback: admitted by kid; a rotated key is picked up; an unreachable JWKS is jwks_unavailable', async () => {
    const keys = [{ kid: 'k1', pair: generateKeyPairSync('ec', { namedCurve: 'P-256' }) }];
    let fetches = 0;
    const jwksServer = http.createServer((_req, res) => {
      fetches++;
      void Promise.all(keys.map(async (k) => ({ ...(await exportJWK(k.pair.publicKey)), kid: k.kid, alg: 'ES256', use: 'sig' }))).then((jwks) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ keys: jwks }));
      });
    });
    await new Promise<void>((r) => jwksServer.listen(0, '127.0.0.1', r));
    const jwksPort = (jwksServer.address() as { port: number }).port;
    const server = await startTestBroker({
      access: { anonymous: false, jwt: { jwksUrl: `http://127.0.0.1:${jwksPort}/jwks.json`, jwksCooldownMs: 0, clockToleranceSec: 0 } },
    });
    const clients: RawClient[] = [];
    try {
      for (const transport of TRANSPORTS) {
        const jwt = await token({ alg: 'ES256', key: keys[0].pair.privateKey, kid: 'k1', claims: aliceClaim });
        clients.push(await connect(server, transport, { meta: `token=${jwt}` }));
      }
      assert.equal(fetches, 1, 'the set is cached');
      // Rotation: the app now signs with k2, which the broker has not seen.
      keys.push({ kid: 'k2', pair: generateKeyPairSync('ec', { namedCurve: 'P-256' }) });
      const rotated = await token({ alg: 'ES256', key: keys[1].pair.privateKey, kid: 'k2' });
      clients.push(await connect(server, 'tcp', { meta: `token=${rotated}` }));
      assert.equal(fetches, 2, 'an unknown kid refetched the set');
      // A kid the set never had.
      const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      await refusedWith(server, 'ws', await token({ alg: 'ES256', key: stranger.privateKey, kid: 'k9' }), 'token_invalid');
    } finally {
      closeAll(...clients);
      await server.close();
      await new Promise((r) => jwksServer.close(r));
    }
    // Nobody listens there any more.
    const gone = await startTestBroker({
      access: { anonymous: false, jwt: { jwksUrl: `http://127.0.0.1:${jwksPort}/jwks.json`, jwksTimeoutMs: 1000 } },
    });
    try {
      const jwt = await token({ alg: 'ES256', key: keys[0].pair.privateKey, kid: 'k1' });
      await refusedWith(gone, 'tcp', jwt, 'jwks_unavailable');
    } finally {
      await gone.close();
    }
  });

  test('a client that leaves while its token is being checked (slow JWKS) leaves nothing behind; open sessions are not stalled', async () => {
    const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'slow', alg: 'ES256' };
    const jwksServer = http.createServer((_req, res) => {
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ keys: [jwk] }));
      }, 800).unref();
    });
    await new Promise<void>((r) => jwksServer.listen(0, '127.0.0.1', r));
    const jwksPort = (jwksServer.address() as { port: number }).port;
    const server = await startTestBroker({
      access: { anonymous: false, users: [{ name: 'svc', token: 'service-token-1' }], jwt: { jwksUrl: `http://127.0.0.1:${jwksPort}/jwks.json` } },
    });
    let svc: RawClient | undefined;
    try {
      svc = await connect(server, 'tcp', { name: 'svc', query: 'token=service-token-1' });
      const jwt = await token({ alg: 'ES256', key: pair.privateKey, kid: 'slow' });
      for (const transport of TRANSPORTS) {
        const leaver = await RawClient.open(transport, portOf(server, transport));
        await leaver.handshake(portOf(server, transport), { meta: `token=${jwt}`, awaitConnack: false });
        leaver.ping();
        closeAll(leaver);
      }
      // While the JWKS is slow, the open session is served at once.
      const t = Date.now();
      svc.ping();
      await svc.nextFlag(Flag.Pong);
      assert.ok(Date.now() - t < 300, 'not stalled');
      // udp: the leaver's Close ends it at once, as the tcp and ws ones end with their connections.
      await eventually(() => server.broker.sessionCount === 1, 500, 'the leavers released before their tokens are checked');
      await sleep(1000); // the verifications finish: nothing is admitted for a session already gone
      assert.equal(server.broker.sessionCount, 1);
      assert.equal(server.broker.stats.sessionsOpen, 1);
      // The set came in the end: a client that waits is admitted.
      const patient = await connect(server, 'ws', { meta: `token=${jwt}` });
      closeAll(patient, svc);
      svc = undefined;
      await assertBrokerEmpty(server);
    } finally {
      closeAll(svc);
      await server.close();
      await new Promise((r) => jwksServer.close(r));
    }
  });

  test.after(() => rmSync(dir, { recursive: true, force: true }));
});

