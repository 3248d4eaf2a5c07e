#!/usr/bin/env node
// A tiny login backend for the example chat page (docs/security.md section 6.3): plain node:http, tokens
// signed with `jose`. A user logs in with a demo password and gets an HS256 JWT that lets it claim only its
// own @ name and publish and subscribe only in its rooms; the broker verifies it (access.jwt) with the same
// secret.
//
//   export SOCKETD_JWT_SECRET="$(openssl rand -hex 32)"
//   node examples/jwt-login.mjs                     # http://127.0.0.1:8690
//   SOCKETD_ACCESS__ANONYMOUS=false SOCKETD_ACCESS__JWT__SECRET_ENV=SOCKETD_JWT_SECRET npm start
//   open http://127.0.0.1:8680/examples/chat/?login=http://127.0.0.1:8690
//
// Options: --port PORT (default 8690; 0 picks a free one), --host HOST (default 127.0.0.1), --ttl SECONDS
// (token lifetime, default 900). Endpoints (JSON, CORS open for the demo):
//   POST /login    { "name", "password" }          -> 200 { token, expiresAt, rooms } | 401 { error }
//   POST /refresh  Authorization: Bearer <token>   -> 200 { token, expiresAt, rooms } | 401 { error }
// /refresh accepts a token expired less than 10 minutes ago, so a client that was offline a moment can go on.
import http from 'node:http';
import { parseArgs } from 'node:util';
import { SignJWT, jwtVerify } from 'jose';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '8690' },
    host: { type: 'string', default: '127.0.0.1' },
    ttl: { type: 'string', default: '900' },
  },
});

const secretText = process.env.SOCKETD_JWT_SECRET ?? '';
if (Buffer.byteLength(secretText) < 32) {
  console.error('Set SOCKETD_JWT_SECRET (32+ bytes), the secret the broker reads through access.jwt.secretEnv.');
  process.exit(2);
}
const secret = new TextEncoder().encode(secretText);
const ttl = Number(values.ttl);
const ISSUER = 'socketd-example-login';

// Demo users: a password and the rooms each may use. A real app reads its user database.
const USERS = {
  alice: { password: 'alice-pw', rooms: ['lobby', 'team1'] },
  bob: { password: 'bob-pw', rooms: ['lobby', 'team1'] },
  carol: { password: 'carol-pw', rooms: ['lobby', 'team2'] },
};

/** A token for `name`: its own @ name only, its rooms only (events chat.room.<room>), private messages to anyone. */
async function issue(name) {
  const rooms = USERS[name].rooms;
  const events = rooms.map((room) => `chat.room.${room}`);
  const now = Math.floor(Date.now() / 1000);
  const token = await new SignJWT({
    socketd: {
      claim: { allow: [name] },
      publish: { allow: events },
      subscribe: { allow: events },
      address: { allow: ['*'] },
    },
  })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(name)
    .setIssuer(ISSUER)
    .setIssuedAt(now)
    .setExpirationTime(now + ttl)
    .sign(secret);
  return { token, expiresAt: now + ttl, rooms };
}

function send(res, status, body) {
  res.writeHead(status, {
    'content-type': 'application/json',
    'access-control-allow-origin': '*',
    'access-control-allow-headers': 'content-type, authorization',
    'access-control-allow-methods': 'POST, OPTIONS',
  });
  res.end(JSON.stringify(body));
}

async function readJson(req) {
  let text = '';
  for await (const chunk of req) {
    text += chunk;
    if (text.length > 4096) throw new Error('body too large');
  }
  return JSON.parse(text || '{}');
}

const server = http.createServer(async (req, res) => {
  try {
    if (req.method === 'OPTIONS') return send(res, 204, {});
    if (req.method === 'POST' && req.url === '/login') {
      const { name, password } = await readJson(req);
      const user = typeof name === 'string' ? USERS[name] : undefined;
      if (user === undefined || user.password !== password) return send(res, 401, { error: 'unknown user or wrong password' });
      return send(res, 200, await issue(name));
    }
    if (req.method === 'POST' && req.url === '/refresh') {
      const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
      try {
        const { payload } = await jwtVerify(bearer, secret, { issuer: ISSUER, algorithms: ['HS256'], clockTolerance: 600 });
        if (typeof payload.sub !== 'string' || !(payload.sub in USERS)) throw new Error('unknown user');
        return send(res, 200, await issue(payload.sub));
      } catch {
        return send(res, 401, { error: 'log in again' });
      }
    }
    send(res, 404, { error: 'POST /login or /refresh' });
  } catch (error) {
    send(res, 400, { error: error.message });
  }
});

server.listen(Number(values.port), values.host, () => {
  const { port } = server.address();
  const users = Object.entries(USERS).map(([n, u]) => `${n}/${u.password} (rooms ${u.rooms.join(', ')})`).join('; ');
  console.log(`demo users: ${users}\nlogin backend on http://${values.host}:${port}`);
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => server.close(() => process.exit(0)));
