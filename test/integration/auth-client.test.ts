/**
 * The SDK's `token` option as a function (docs/client.md, "Tokens") against a real broker with JWT access:
 * called on connect, before expiry (sent as `$auth`, the session stays), and on reconnect after a session
 * ended at expiry.
 */
import test, { describe } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT } from 'jose';
import { connect, SocketdError, tokenExpiry, type Client, type TokenContext } from '../../src/client/index.js';
import { eventually, ports, startTestBroker } from '../support/broker.js';
import { sleep } from '../support/integration.js';

const SECRET = new TextEncoder().encode('client-test-secret-of-at-least-32-bytes');

function sign(sub: string, lifeSec: number): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ socketd: { claim: { allow: [sub] } } })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setIssuedAt(now)
    .setExpirationTime(now + lifeSec)
    .sign(SECRET);
}

const access = { anonymous: false, jwt: { secret: new TextDecoder().decode(SECRET), clockToleranceSec: 0 } };
const TRANSPORTS = ['tcp', 'ws', 'udp'] as const;

describe('client: token function', () => {
  for (const t of TRANSPORTS) {
    test(`${t}: called on connect and before expiry; the refresh ($auth) keeps the session open`, { timeout: 20_000 }, async () => {
      const server = await startTestBroker({ access });
      const reasons: string[] = [];
      let client: Client | undefined;
      try {
        const p = ports(server);
        const url = t === 'ws' ? `sd:ws://127.0.0.1:${p.ws}/` : `sd:${t}://127.0.0.1:${p[t]}`;
        client = await connect(url, {
          name: 'alice',
          token: async ({ reason }: TokenContext) => {
            reasons.push(reason);
            return sign('alice', 2);
          },
        });
        const disconnects: SocketdError[] = [];
        client.events.on('disconnect', (e) => void disconnects.push(e));
        const session = [...server.broker.allSessions()][0];
        await sleep(3500);
        assert.equal(client.state, 'open');
        assert.deepEqual(disconnects, []);
        assert.equal(server.broker.sessionCount, 1);
        assert.equal([...server.broker.allSessions()][0], session, 'the same session');
        assert.equal(reasons[0], 'connect');
        assert.ok(reasons.filter((r) => r === 'refresh').length >= 2, `refreshed before each expiry: ${reasons.join(',')}`);
        assert.ok((server.broker.stats.authChecks.get('refresh|accepted') ?? 0) >= 2);
        assert.equal(server.broker.stats.tokensExpired, 0);
      } finally {
        await client?.close();
        await server.close();
      }
    });
  }

  test('a refused refresh is reported; the session ends at expiry and the client reconnects with a fresh token', { timeout: 20_000 }, async () => {
    const server = await startTestBroker({ access });
    const reasons: string[] = [];
    let client: Client | undefined;
    try {
      client = await connect(`sd:tcp://127.0.0.1:${ports(server).tcp}`, {
        name: 'alice',
        reconnect: { initialDelay: 50, maxDelay: 200 },
        token: async ({ reason }: TokenContext) => {
          reasons.push(reason);
          // The refresh hands over another user's token: the broker refuses it.
          return sign(reason === 'refresh' ? 'mallory' : 'alice', 2);
        },
      });
      const errors: SocketdError[] = [];
      client.events.on('error', (e) => void errors.push(e));
      const disconnected = client.events.next('disconnect');
      const reconnected = client.events.next('reconnect');
      const lost = await disconnected;
      assert.equal(lost.reason, 'token_expired');
      await reconnected;
      assert.equal(errors[0]?.code, 'alarm');
      assert.equal(errors[0]?.alarmCode, 4003);
      assert.deepEqual(reasons.slice(0, 3), ['connect', 'refresh', 'reconnect']);
      await eventually(() => server.broker.registry.nameCount === 1, 2000, 'alice back under her name');
    } finally {
      await client?.close();
      await server.close();
    }
  });

  test('a throwing token function fails the connect with token_failed; tokenExpiry reads a JWT exp', async () => {
    const server = await startTestBroker({ access });
    try {
      await assert.rejects(connect(`sd:tcp://127.0.0.1:${ports(server).tcp}`, {
        token: () => {
          throw new Error('not logged in');
        },
      }), (e: SocketdError) => e.code === 'token_failed' && /not logged in/.test(e.message));
      const jwt = await sign('alice', 60);
      assert.ok(Math.abs(tokenExpiry(jwt) - (Date.now() + 60_000)) < 2000);
      assert.equal(tokenExpiry('plain-token'), 0);
    } finally {
      await server.close();
    }
  });
});
