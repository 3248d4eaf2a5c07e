/**
 * The HTTP API (docs/http-api.md) against live Socket.D sessions on tcp, ws and udp: publish, request,
 * Server-Sent Events, presence and disconnect, and the errors (400, 401, 403, 404, 413, 429, 504), with
 * the API's own sessions released after every call.
 */
import test, { after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { connect, json, type Client, type IncomingMessage } from '../../src/client/index.js';
import { Flag } from '../../src/protocol/index.js';
import type { RunningServer } from '../../src/server.js';
import { eventually, ports, startTestBroker } from '../support/broker.js';
import { assertBrokerEmpty, closeAll, connect as rawConnect } from '../support/integration.js';

type T = 'tcp' | 'ws' | 'udp';
const TRANSPORTS: readonly T[] = ['tcp', 'ws', 'udp'];

function urlOf(server: RunningServer, transport: T, path = ''): string {
  const p = ports(server);
  return transport === 'ws' ? `sd:ws://127.0.0.1:${p.ws}/${path}` : `sd:${transport}://127.0.0.1:${p[transport]}${path.length > 0 ? `/${path}` : ''}`;
}

interface ApiAnswer {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

async function api(server: RunningServer, method: string, path: string, body?: unknown, token?: string): Promise<ApiAnswer> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`http://127.0.0.1:${ports(server).http}${path}`, {
    method, headers, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers };
}

/** A Server-Sent Events reader over node:http: the events as they arrive, and the status and headers. */
class SseReader {
  readonly events: { event: string; data: string }[] = [];
  status = 0;
  ended = false;
  private buffer = '';
  req!: http.ClientRequest;
  res!: http.IncomingMessage;

  static open(server: RunningServer, query: string, token?: string): Promise<SseReader> {
    const reader = new SseReader();
    return new Promise((resolve, reject) => {
      reader.req = http.get({
        host: '127.0.0.1', port: ports(server).http, path: `/api/subscribe?${query}`,
        headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
      }, (res) => {
        reader.res = res;
        reader.status = res.statusCode ?? 0;
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => reader.push(chunk));
        res.on('end', () => {
          reader.ended = true;
        });
        resolve(reader);
      });
      reader.req.on('error', reject);
    });
  }

  private push(chunk: string): void {
    this.buffer += chunk;
    let cut: number;
    while ((cut = this.buffer.indexOf('\n\n')) !== -1) {
      const block = this.buffer.slice(0, cut);
      this.buffer = this.buffer.slice(cut + 2);
      let event = 'message';
      let data = '';
      let any = false;
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) {
          event = line.slice(7);
          any = true;
        } else if (line.startsWith('data: ')) {
          data += line.slice(6);
          any = true;
        }
      }
      if (any) this.events.push({ event, data });
    }
  }

  messages(): Record<string, unknown>[] {
    return this.events.filter((e) => e.event === 'message').map((e) => JSON.parse(e.data) as Record<string, unknown>);
  }

  /** The error body of a refused stream. */
  async errorBody(): Promise<Record<string, unknown>> {
    await eventually(() => this.ended, 5000, 'the error body');
    return JSON.parse(this.buffer) as Record<string, unknown>;
  }

  close(): void {
    this.req.destroy();
  }
}

function collector(): { handler: (m: IncomingMessage) => void; got: IncomingMessage[] } {
  const got: IncomingMessage[] = [];
  return { got, handler: (m) => void got.push(m) };
}

describe('http api: publish, request, subscribe, presence, disconnect (anonymous access)', () => {
  let server: RunningServer;
  const clients: Client[] = [];
  before(async () => {
    server = await startTestBroker({ timeouts: { requestMs: 3000 } });
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await server.close();
  });

  async function client(transport: T, name?: string, onDirect?: (m: IncomingMessage) => void): Promise<Client> {
    const c = await connect(urlOf(server, transport), { name, onDirect, reconnect: false });
    clients.push(c);
    return c;
  }

  test('POST /api/publish by event reaches subscribers on tcp, ws and udp: 200 {delivered: 3}', async () => {
    const seen = TRANSPORTS.map(() => collector());
    const subs = await Promise.all(TRANSPORTS.map((t) => client(t)));
    await Promise.all(subs.map((c, i) => c.on('chat.lobby', seen[i].handler)));
    const answer = await api(server, 'POST', '/api/publish', { event: 'chat.lobby', data: 'hello', meta: { trace: 't-1', n: 3 } });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.deepEqual(answer.body, { delivered: 3 });
    await eventually(() => seen.every((s) => s.got.length === 1), 5000, 'the three deliveries');
    for (const s of seen) {
      assert.equal(s.got[0].event, 'chat.lobby');
      assert.equal(s.got[0].text(), 'hello');
      assert.equal(s.got[0].meta.trace, 't-1');
      assert.equal(s.got[0].meta.n, '3');
    }
    // Nobody subscribed: delivered 0, not an error.
    assert.deepEqual((await api(server, 'POST', '/api/publish', { event: 'chat.nobody', data: 'x' })).body, { delivered: 0 });
    await Promise.all(subs.map((c) => c.off('chat.lobby')));
  });

  test('POST /api/publish by @ name (svc, svc*, *) and binary data as dataBase64', async () => {
    const a = collector();
    const b = collector();
    await client('tcp', 'pub-svc', a.handler);
    await client('udp', 'pub-svc', b.handler);
    const one = await api(server, 'POST', '/api/publish', { name: 'pub-svc', event: 'direct', dataBase64: Buffer.from([0, 1, 2, 255]).toString('base64') });
    assert.deepEqual(one.body, { delivered: 1 });
    await eventually(() => a.got.length + b.got.length === 1, 5000, 'one delivery');
    const got = [...a.got, ...b.got][0];
    assert.deepEqual([...got.data], [0, 1, 2, 255]);
    const all = await api(server, 'POST', '/api/publish', { name: 'pub-svc*', event: 'direct', data: { json: true } });
    assert.deepEqual(all.body, { delivered: 2 });
    await eventually(() => a.got.length + b.got.length === 3, 5000, 'two more deliveries');
    assert.deepEqual(a.got[a.got.length - 1].json(), { json: true });
    const unknown = await api(server, 'POST', '/api/publish', { name: 'nobody-here', data: 'x' });
    assert.deepEqual(unknown.body, { delivered: 0 });
  });

  test('POST /api/request answered by an SDK responder (by event and by name); binary replies in dataBase64', async () => {
    const svc = await client('ws', 'price-svc', (m) => m.replyEnd(Buffer.from([0xff, 0xfe]), { kind: 'bin' }));
    await svc.on('price.get', (m) => m.replyEnd(json({ id: m.json<{ id: number }>().id, price: 9.5 }), { currency: 'EUR' }));
    const byEvent = await api(server, 'POST', '/api/request', { event: 'price.get', data: { id: 7 }, timeoutMs: 2000 });
    assert.equal(byEvent.status, 200, JSON.stringify(byEvent.body));
    assert.equal(byEvent.body.event, 'price.get');
    assert.deepEqual(JSON.parse(byEvent.body.data as string), { id: 7, price: 9.5 });
    assert.equal((byEvent.body.meta as Record<string, string>).currency, 'EUR');
    const byName = await api(server, 'POST', '/api/request', { name: 'price-svc', event: 'raw' });
    assert.equal(byName.status, 200, JSON.stringify(byName.body));
    assert.equal(byName.body.data, null);
    assert.equal(byName.body.dataBase64, Buffer.from([0xff, 0xfe]).toString('base64'));
  });

  test('POST /api/request: 404 with the Alarm when nothing can answer, 504 when the responder is silent', async () => {
    const none = await api(server, 'POST', '/api/request', { event: 'nobody.answers' });
    assert.equal(none.status, 404);
    assert.equal(none.body.error, 'no_route');
    assert.equal(none.body.alarm, 4004);
    assert.match(none.body.message as string, /No subscriber for event 'nobody.answers'/);
    const byName = await api(server, 'POST', '/api/request', { name: 'nobody-svc' });
    assert.equal(byName.status, 404);
    assert.equal(byName.body.alarm, 4004);
    const silent = await client('tcp');
    await silent.on('slow.op', () => undefined);
    const started = Date.now();
    const timedOut = await api(server, 'POST', '/api/request', { event: 'slow.op', timeoutMs: 300 });
    assert.equal(timedOut.status, 504, JSON.stringify(timedOut.body));
    assert.equal(timedOut.body.error, 'timeout');
    assert.equal(timedOut.body.alarm, 4008);
    assert.ok(Date.now() - started < 2500, 'the asked timeout applies');
  });

  test('GET /api/subscribe streams what a tcp publisher sends, one event per Message', async () => {
    const sse = await SseReader.open(server, 'event=orders.*');
    assert.equal(sse.status, 200);
    assert.match(sse.res.headers['content-type'] ?? '', /^text\/event-stream/);
    await eventually(() => server.events.presence('orders.*').length === 0 && [...server.events.allSubscriptions()].some((s) => s.pattern === 'orders.*'), 5000, 'the subscription');
    const pub = await rawConnect(server, 'tcp');
    try {
      pub.send({ flag: Flag.Message, event: 'orders.created', meta: 'k=v', data: '{"id":1}' });
      pub.send({ flag: Flag.Message, event: 'orders.paid', data: Buffer.from([0x80]) });
      pub.send({ flag: Flag.Message, event: 'other.thing', data: 'no' });
      await eventually(() => sse.messages().length === 2, 5000, 'two events');
      const [first, second] = sse.messages();
      assert.deepEqual(first, { event: 'orders.created', meta: { k: 'v' }, data: '{"id":1}' });
      assert.deepEqual(second, { event: 'orders.paid', meta: {}, data: null, dataBase64: 'gA==' });
    } finally {
      closeAll(pub);
      sse.close();
    }
    await eventually(() => ![...server.events.allSubscriptions()].some((s) => s.pattern === 'orders.*'), 5000, 'the stream session released');
  });

  test('GET /api/subscribe with a group: the streams share the Messages as a queue group', async () => {
    const a = await SseReader.open(server, 'event=work.item&group=pool');
    const b = await SseReader.open(server, 'event=work.item&group=pool');
    const both = await SseReader.open(server, 'event=work.*&event=other.item');
    try {
      for (const r of [a, b, both]) assert.equal(r.status, 200);
      await eventually(() => [...server.events.allSubscriptions()].filter((s) => s.group === 'pool').length === 2, 5000, 'the group');
      for (let i = 0; i < 6; i++) {
        const answer = await api(server, 'POST', '/api/publish', { event: 'work.item', data: String(i) });
        assert.deepEqual(answer.body, { delivered: 2 }, 'one group member and the plain subscriber');
      }
      assert.deepEqual((await api(server, 'POST', '/api/publish', { event: 'other.item' })).body, { delivered: 1 });
      await eventually(() => a.messages().length + b.messages().length === 6 && both.messages().length === 7, 5000, 'the deliveries');
      assert.equal(a.messages().length, 3, 'round robin in the group');
      assert.equal(b.messages().length, 3);
    } finally {
      for (const r of [a, b, both]) r.close();
    }
  });

  test('GET /api/subscribe: 400 without an event, and a bad pattern answered with the Alarm', async () => {
    const none = await SseReader.open(server, 'namespace=');
    assert.equal(none.status, 400);
    const bad = await SseReader.open(server, 'event=a..b');
    assert.equal(bad.status, 400);
    assert.equal((await bad.errorBody()).alarm, 4000);
  });

  test('GET /api/presence lists a room; POST /api/disconnect by name and by id', async () => {
    const members = [await client('tcp', 'room-a'), await client('udp', 'room-b')];
    await Promise.all(members.map((c) => c.on('room.42', () => undefined)));
    const presence = await api(server, 'GET', '/api/presence?event=room.42');
    assert.equal(presence.status, 200);
    const list = presence.body.members as { name: string; transport: string }[];
    assert.deepEqual(list.map((m) => m.name).sort(), ['room-a', 'room-b']);
    assert.equal((await api(server, 'GET', '/api/presence?event=room.*')).status, 400);

    const sse = await SseReader.open(server, 'event=room.42');
    const byName = await api(server, 'POST', '/api/disconnect', { name: 'room-a' });
    assert.deepEqual(byName.body, { disconnected: 1 });
    await eventually(() => members[0].state === 'closed' || members[0].state === 'reconnecting', 5000, 'room-a closed');
    const target = [...server.broker.registry.sessions()].find((s) => s.name === 'room-b')!;
    const byId = await api(server, 'POST', '/api/disconnect', { id: target.id });
    assert.deepEqual(byId.body, { disconnected: 1 });
    assert.equal((await api(server, 'POST', '/api/disconnect', { id: target.id })).status, 404);
    assert.equal((await api(server, 'POST', '/api/disconnect', {})).status, 400);
    // An event stream's session can be disconnected too: the stream ends with a last event saying why.
    const streamSession = [...server.broker.allSessions()].find((s) => s.transport === 'http')!;
    assert.deepEqual((await api(server, 'POST', '/api/disconnect', { id: streamSession.id })).body, { disconnected: 1 });
    await eventually(() => sse.ended, 5000, 'the stream ended');
    const last = sse.events[sse.events.length - 1];
    assert.equal(last.event, 'close');
    assert.equal(JSON.parse(last.data).reason, 'api_disconnect');
  });

  test('errors: unknown endpoint 404, wrong method 405, bad JSON 400, every one JSON with a code and a message', async () => {
    const unknown = await api(server, 'GET', '/api/nope');
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error, 'not_found');
    const method = await api(server, 'GET', '/api/publish');
    assert.equal(method.status, 405);
    assert.equal(method.headers.get('allow'), 'POST');
    const badJson = await api(server, 'POST', '/api/publish', '{nope');
    assert.equal(badJson.status, 400);
    assert.equal(badJson.body.error, 'bad_json');
    const noTarget = await api(server, 'POST', '/api/publish', { data: 'x' });
    assert.equal(noTarget.status, 400);
    const wildcard = await api(server, 'POST', '/api/publish', { event: 'a.*' });
    assert.equal(wildcard.status, 400);
    const badMeta = await api(server, 'POST', '/api/publish', { event: 'a.b', meta: { 'x&y': 1 } });
    assert.equal(badMeta.body.error, 'bad_meta');
    for (const a of [unknown, method, badJson, noTarget, wildcard, badMeta]) assert.equal(typeof a.body.message, 'string');
  });

  test('every call is a session of transport http, counted in /metrics, and released afterwards', async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await assertBrokerEmpty(server);
    const text = await (await fetch(`http://127.0.0.1:${ports(server).http}/metrics`)).text();
    assert.match(text, /socketd_http_api_requests_total\{endpoint="publish",status="200"\} \d+/);
    assert.match(text, /socketd_http_api_requests_total\{endpoint="request",status="404"\} 2/);
    assert.match(text, /socketd_connections_total\{transport="http"\} \d+/);
    assert.match(text, /socketd_http_api_sse_closed_total\{reason="api_disconnect"\} 1/);
  });
});

describe('http api: tokens, permissions and limits', () => {
  let server: RunningServer;
  before(async () => {
    server = await startTestBroker({
      limits: { maxData: 1000, maxFrame: 4096 },
      flow: { outboundHighWaterBytes: 4096, outboundLimitBytes: 65536, congestionTimeoutMs: 300 },
      http: { api: { ratePerSecond: 5, burst: 10 } },
      access: {
        anonymous: false,
        users: [
          { name: 'writer', token: 'writer-token', permissions: { publish: { allow: ['news.>'] }, subscribe: { allow: ['news.>'] }, address: { allow: ['news-*'] } } },
          { name: 'limited', token: 'limited-token' },
          { name: 'reader', token: 'reader-token' },
        ],
      },
    });
  });
  after(async () => {
    await server.close();
  });

  test('401 without a token or with an unknown one (anonymous access off)', async () => {
    const none = await api(server, 'POST', '/api/publish', { event: 'news.a' });
    assert.equal(none.status, 401);
    assert.equal(none.body.error, 'auth_required');
    const wrong = await api(server, 'POST', '/api/publish', { event: 'news.a' }, 'not-a-token');
    assert.equal(wrong.status, 401);
    assert.equal(wrong.body.error, 'auth_failed');
    const sse = await SseReader.open(server, 'event=news.a');
    assert.equal(sse.status, 401);
    assert.equal((await api(server, 'POST', '/api/publish', { event: 'news.a' }, 'writer-token')).status, 200);
  });

  test('403 when a pattern, a name or a room is not allowed', async () => {
    const publish = await api(server, 'POST', '/api/publish', { event: 'sports.a' }, 'writer-token');
    assert.equal(publish.status, 403);
    assert.equal(publish.body.alarm, 4003);
    assert.equal((await api(server, 'POST', '/api/request', { name: 'billing' }, 'writer-token')).status, 403);
    const sse = await SseReader.open(server, 'event=sports.*', 'writer-token');
    assert.equal(sse.status, 403);
    assert.equal((await sse.errorBody()).alarm, 4003);
    assert.equal((await api(server, 'GET', '/api/presence?event=sports.a', undefined, 'writer-token')).status, 403);
    const victim = await rawConnect(server, 'tcp', { name: 'billing', query: 'token=reader-token' });
    try {
      assert.equal((await api(server, 'POST', '/api/disconnect', { name: 'billing' }, 'writer-token')).status, 403);
      assert.equal(victim.closed, false);
    } finally {
      closeAll(victim);
    }
  });

  test('413 when the body or the data is larger than the data limit', async () => {
    const big = await api(server, 'POST', '/api/publish', { event: 'news.a', data: 'x'.repeat(1001) }, 'reader-token');
    assert.equal(big.status, 413);
    assert.equal(big.body.error, 'too_large');
    const huge = await api(server, 'POST', '/api/publish', { event: 'news.a', data: 'x'.repeat(20_000) }, 'limited-token');
    assert.equal(huge.status, 413);
  });

  test('429 past the rate per token, other tokens unaffected', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 14; i++) statuses.push((await api(server, 'POST', '/api/publish', { event: 'news.rate' }, 'limited-token')).status);
    assert.ok(statuses.includes(429), `some calls limited: ${statuses.join(',')}`);
    assert.equal(statuses.indexOf(429) >= 9, true, `the burst passes first: ${statuses.join(',')}`);
    const limited = await api(server, 'POST', '/api/publish', { event: 'news.rate' }, 'limited-token');
    assert.equal(limited.status, 429);
    assert.equal(limited.body.error, 'rate_limited');
    assert.equal(limited.headers.get('retry-after'), '1');
    assert.equal((await api(server, 'POST', '/api/publish', { event: 'news.rate' }, 'reader-token')).status, 200);
  });

  test('an event stream that cannot keep up is dropped as a slow consumer, with a last event saying why', async () => {
    const sse = await SseReader.open(server, 'event=flood.x', 'reader-token');
    assert.equal(sse.status, 200);
    await eventually(() => [...server.events.allSubscriptions()].some((s) => s.pattern === 'flood.x'), 5000, 'the subscription');
    sse.res.pause();
    const pub = await rawConnect(server, 'tcp', { query: 'token=reader-token' });
    try {
      const data = Buffer.alloc(900, 0x61);
      const until = Date.now() + 20_000;
      while (!server.broker.stats.closes.has('slow_consumer') && Date.now() < until) {
        for (let i = 0; i < 50; i++) pub.send({ flag: Flag.Message, event: 'flood.x', data });
        await new Promise((r) => setTimeout(r, 5));
      }
      assert.ok(server.broker.stats.closes.has('slow_consumer'), 'the stream session closed as a slow consumer');
      sse.res.resume();
      await eventually(() => sse.ended, 10_000, 'the stream ended');
      const last = sse.events[sse.events.length - 1];
      assert.equal(last.event, 'close');
      assert.equal(JSON.parse(last.data).reason, 'slow_consumer');
      assert.ok(sse.messages().length > 0, 'events were delivered before the drop');
    } finally {
      closeAll(pub);
      sse.close();
    }
  });
});

describe('http api: long-lived event streams', () => {
  test('keepalives hold a stream open past the idle timeout; a broker shutdown ends it with a last event', async () => {
    const server = await startTestBroker({ timeouts: { idleMs: 600 } });
    const sse = await SseReader.open(server, 'event=tick');
    try {
      assert.equal(sse.status, 200);
      // Keepalives every 300 ms (half the idle timeout): three idle timeouts later the session is still open.
      await new Promise((r) => setTimeout(r, 1_800));
      assert.equal(sse.ended, false);
      assert.equal(server.broker.stats.closes.get('idle_timeout') ?? 0, 0);
      const pub = await rawConnect(server, 'udp');
      try {
        pub.send({ flag: Flag.Message, event: 'tick', data: 'still here' });
        await eventually(() => sse.messages().length === 1, 5000, 'the event');
        assert.equal(sse.messages()[0].data, 'still here');
      } finally {
        closeAll(pub);
      }
    } finally {
      await server.close();
    }
    await eventually(() => sse.ended, 5000, 'the stream ended');
    const last = sse.events[sse.events.length - 1];
    assert.equal(last.event, 'close');
    assert.equal(JSON.parse(last.data).reason, 'shutdown');
  });
});

describe('HTTP API calls are not Socket.D handshakes', () => {
  test('they write no info lines of their own and do not draw on limits.handshakesPerSecond', async () => {
    const lines: string[] = [];
    const logger = (await import('pino')).default({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    const server = await startTestBroker({ limits: { handshakesPerSecond: 2 } }, { logger });
    try {
      const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => api(server, 'POST', '/api/publish', { event: 'calls', data: `c${i}` })));
      assert.deepEqual(answers.map((a) => a.status), Array(20).fill(200));
      // The handshake budget is still there for a Socket.D client.
      const client = await rawConnect(server, 'tcp');
      closeAll(client);
      await eventually(() => server.broker.sessionCount === 0, 3000, 'every session gone');
      const sessionLines = lines.filter((l) => /"event":"session_(open|close|closing)"/.test(l) && l.includes('"transport":"http"'));
      assert.deepEqual(sessionLines, []);
      assert.equal(server.broker.stats.handshakesRefused.get('handshake_rate_limited') ?? 0, 0);
    } finally {
      await server.close();
    }
  });
});

describe('HTTP API with per-user identities', () => {
  test('a bearer JWT that is expired, forged or not yet valid is 401 with its reason, a valid one is admitted', async () => {
    const { SignJWT } = await import('jose');
    const secret = new TextEncoder().encode('an-api-test-secret-of-at-least-32-bytes');
    const server = await startTestBroker({ access: { anonymous: false, jwt: { secret: 'an-api-test-secret-of-at-least-32-bytes' } } });
    try {
      const now = Math.floor(Date.now() / 1000);
      const sign = (exp: number, nbf: number, key = secret): Promise<string> =>
        new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('app').setIssuedAt(now).setNotBefore(now + nbf).setExpirationTime(now + exp).sign(key);
      const cases: [string, string][] = [
        [await sign(-60, -120), 'token_expired'],
        [await sign(600, 0, new TextEncoder().encode('another-secret-of-at-least-32-bytes!!')), 'token_invalid'],
        [await sign(600, 300), 'token_not_yet_valid'],
      ];
      for (const [jwt, reason] of cases) {
        const answer = await api(server, 'POST', '/api/publish', { event: 'x', data: 'd' }, jwt);
        assert.equal(answer.status, 401, `${reason}: ${JSON.stringify(answer.body)}`);
        assert.equal(answer.body.error, reason);
      }
      const ok = await api(server, 'POST', '/api/publish', { event: 'x', data: 'd' }, await sign(600, 0));
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
    } finally {
      await server.close();
    }
  });
});
