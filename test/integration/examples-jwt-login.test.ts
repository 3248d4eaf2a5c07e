/**
 * examples/jwt-login.mjs as docs/security.md section 6.3 runs it: a child process issuing HS256 JWTs, and a
 * broker with access.jwt reading the same secret through secretEnv. Each user may claim only its own name and
 * use only its rooms; /refresh hands out a fresh token for the SDK's token function.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { connect, SocketdError, type Client, type TokenContext } from '../../src/client/index.js';
import { ports, startTestBroker } from '../support/broker.js';
import { postJson as post, startLoginBackend } from '../support/login-backend.js';

const SECRET = 'example-login-test-secret-0123456789abcdef';

test('examples/jwt-login.mjs: each user claims only its own name and uses only its rooms', { timeout: 60_000 }, async () => {
  process.env.SOCKETD_EXAMPLE_JWT_SECRET = SECRET;
  const login = await startLoginBackend(SECRET);
  const broker = await startTestBroker({ access: { anonymous: false, jwt: { secretEnv: 'SOCKETD_EXAMPLE_JWT_SECRET' } } });
  const clients: Client[] = [];
  try {
    assert.match(login.stdout(), /alice\/alice-pw/);
    assert.equal((await post(`${login.url}/login`, { name: 'alice', password: 'wrong' })).status, 401);
    const alice = await post(`${login.url}/login`, { name: 'alice', password: 'alice-pw' });
    assert.equal(alice.status, 200);
    const aliceToken = alice.body.token as string;
    const wsUrl = `sd:ws://127.0.0.1:${ports(broker).ws}/`;
    const reasons: string[] = [];
    const a = await connect(wsUrl, {
      name: 'alice',
      token: async ({ reason }: TokenContext) => {
        reasons.push(reason);
        if (reason === 'connect') return aliceToken;
        const res = await post(`${login.url}/refresh`, {}, { authorization: `Bearer ${aliceToken}` });
        return res.body.token as string;
      },
    });
    clients.push(a);
    await a.on('chat.room.team1', () => {});
    await assert.rejects(a.on('chat.room.team2', () => {}), (e: SocketdError) => e.code === 'alarm' && e.alarmCode === 4003);
    // Alice's token does not let her take bob's name.
    await assert.rejects(connect(`sd:tcp://127.0.0.1:${ports(broker).tcp}`, { name: 'bob', token: aliceToken, reconnect: false }),
      (e: SocketdError) => e.code === 'handshake_refused' && e.reason === 'name_forbidden');
    // Carol (rooms lobby, team2) talks to alice in the lobby; a private message by name works both ways.
    const carolToken = (await post(`${login.url}/login`, { name: 'carol', password: 'carol-pw' })).body.token as string;
    const c = await connect(`sd:udp://127.0.0.1:${ports(broker).udp}`, { name: 'carol', token: carolToken });
    clients.push(c);
    let heard: (text: string) => void = () => {};
    const lobby = new Promise<string>((resolve) => (heard = resolve));
    await a.on('chat.room.lobby', (m) => heard(m.text()));
    c.send('chat.room.lobby', 'hi alice');
    assert.equal(await lobby, 'hi alice');
    // /refresh gives a fresh token for the same user.
    const refreshed = await post(`${login.url}/refresh`, {}, { authorization: `Bearer ${aliceToken}` });
    assert.equal(refreshed.status, 200);
    assert.equal((await post(`${login.url}/refresh`, {}, { authorization: 'Bearer nonsense' })).status, 401);
    assert.deepEqual(reasons, ['connect']);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await broker.close();
    login.stop();
    delete process.env.SOCKETD_EXAMPLE_JWT_SECRET;
  }
});
