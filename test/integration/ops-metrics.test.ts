/**
 * /metrics after real traffic (exact values), the admin endpoints (/connz paging, /subsz, /namez, the admin
 * token), /healthz and /readyz, and the logging rule "nothing per frame at info".
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import pino from 'pino';
import { Flag } from '../../src/protocol/index.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { configFrom } from '../../src/config/load.js';
import { RawClient } from '../support/raw-client.js';
import { eventually, ports, startTestBroker } from '../support/broker.js';

const WAIT_MS = 10_000;

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Prometheus text format, the samples only. */
function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m !== null, `a sample line: ${line}`);
    const labels: Record<string, string> = {};
    if (m[2] !== undefined && m[2] !== '') {
      for (const pair of m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
    }
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

class Scrape {
  constructor(readonly samples: Sample[], readonly text: string) {}

  /** The value of the one sample with this name and (at least) these labels; 0 when there is none. */
  value(name: string, labels: Record<string, string> = {}): number {
    const found = this.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
    assert.ok(found.length <= 1, `one sample ${name} ${JSON.stringify(labels)}, got ${found.length}`);
    return found.length === 0 ? 0 : found[0].value;
  }

  has(name: string, labels: Record<string, string> = {}): boolean {
    return this.samples.some((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  }
}

async function scrape(server: RunningServer): Promise<Scrape> {
  const res = await fetch(`http://127.0.0.1:${ports(server).http}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
  const text = await res.text();
  return new Scrape(parseMetrics(text), text);
}

async function getJson(server: RunningServer, path: string, token?: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
  const res = await fetch(`http://127.0.0.1:${ports(server).http}${path}`, { headers });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

test('/metrics after real traffic: frames, routing, alarms, connections, closes, stream durations', { timeout: 60_000 }, async () => {
  const server = await startTestBroker();
  const p = ports(server);
  const svc = await RawClient.connect('ws', p.ws, { name: 'svc' });
  const caller = await RawClient.connect('tcp', p.tcp, { name: 'caller' });
  const udpPeer = await RawClient.connect('udp', p.udp);
  try {
    const before = await scrape(server);
    assert.equal(before.value('socketd_connections_total', { transport: 'tcp' }), 1);
    assert.equal(before.value('socketd_connections_total', { transport: 'ws' }), 1);
    assert.equal(before.value('socketd_connections_total', { transport: 'udp' }), 1);
    assert.equal(before.value('socketd_connections_open', { transport: 'tcp' }), 1);
    assert.equal(before.value('socketd_sessions_open'), 3);
    assert.equal(before.value('socketd_frames_in_total', { flag: 'connect' }), 3);
    assert.equal(before.value('socketd_frames_out_total', { flag: 'connack' }), 3);
    assert.equal(before.value('socketd_routed_total', { mode: 'name' }), 0);

    // N Messages routed by name.
    const N = 7;
    for (let i = 0; i < N; i++) caller.send({ flag: Flag.Message, event: 'tick', meta: '@=svc', data: `m${i}` });
    for (let i = 0; i < N; i++) await svc.nextFlag(Flag.Message, WAIT_MS);
    const afterMessages = await scrape(server);
    assert.equal(afterMessages.value('socketd_routed_total', { mode: 'name' }), N);
    assert.equal(afterMessages.value('socketd_routed_total', { mode: 'event' }), 0);
    assert.equal(afterMessages.value('socketd_frames_in_total', { flag: 'message' }), N);
    assert.equal(afterMessages.value('socketd_frames_out_total', { flag: 'message' }), N);
    assert.equal(afterMessages.value('socketd_deliveries_total'), N);
    assert.ok(afterMessages.value('socketd_bytes_in_total') > before.value('socketd_bytes_in_total'));
    assert.ok(afterMessages.value('socketd_bytes_out_total') > before.value('socketd_bytes_out_total'));

    // A Request to nobody: Alarm 4004.
    const lostSid = caller.send({ flag: Flag.Request, event: 'q', meta: '@=nobody' });
    const alarm = await caller.nextFor(lostSid, WAIT_MS);
    assert.equal(alarm.flag, Flag.Alarm);
    assert.equal(alarm.meta('code'), '4004');
    const afterAlarm = await scrape(server);
    assert.equal(afterAlarm.value('socketd_alarms_total', { code: '4004' }), 1);
    assert.equal(afterAlarm.value('socketd_frames_out_total', { flag: 'alarm' }), 1);
    assert.equal(afterAlarm.value('socketd_stream_duration_seconds_count', { kind: 'request' }), 0);

    // An answered Request: one stream, one request duration.
    const reqSid = caller.send({ flag: Flag.Request, event: 'ask', meta: '@=svc', data: 'q' });
    const forwarded = await svc.nextFlag(Flag.Request, WAIT_MS);
    const midStream = await scrape(server);
    assert.equal(midStream.value('socketd_streams_open'), 1);
    svc.send({ flag: Flag.ReplyEnd, sid: forwarded.sid, event: 'ask', data: 'a' });
    assert.equal((await caller.nextFor(reqSid, WAIT_MS)).flag, Flag.ReplyEnd);
    const afterRequest = await scrape(server);
    assert.equal(afterRequest.value('socketd_stream_duration_seconds_count', { kind: 'request' }), 1);
    assert.equal(afterRequest.value('socketd_stream_duration_seconds_bucket', { kind: 'request', le: '+Inf' }), 1);
    assert.ok(afterRequest.value('socketd_stream_duration_seconds_sum', { kind: 'request' }) >= 0);
    assert.equal(afterRequest.value('socketd_stream_duration_seconds_count', { kind: 'subscribe' }), 0);
    assert.equal(afterRequest.value('socketd_streams_total'), 1);
    assert.equal(afterRequest.value('socketd_streams_open'), 0);
    assert.equal(afterRequest.value('socketd_frames_in_total', { flag: 'request' }), 2);
    assert.equal(afterRequest.value('socketd_frames_in_total', { flag: 'replyend' }), 1);
    // The answered Request is routed; the one with no route was not.
    assert.equal(afterRequest.value('socketd_routed_total', { mode: 'name' }), N + 1);

    // Routing by event: a $sub, then a Message without @.
    const subSid = svc.send({ flag: Flag.Request, event: '$sub', meta: 'event=a.b' });
    assert.equal((await svc.nextFor(subSid, WAIT_MS)).flag, Flag.ReplyEnd);
    caller.send({ flag: Flag.Message, event: 'a.b', data: 'e' });
    await svc.next((f) => f.flag === Flag.Message && f.event === 'a.b', WAIT_MS);
    const afterEvent = await scrape(server);
    assert.equal(afterEvent.value('socketd_subscriptions'), 1);
    assert.equal(afterEvent.value('socketd_routed_total', { mode: 'event' }), 1);
    // A Message to an event nobody subscribes to is dropped and counted.
    caller.send({ flag: Flag.Message, event: 'nobody.listens', data: 'x' });
    await eventually(() => server.broker.stats.dropped.get('no_subscriber') === 1, WAIT_MS, 'the no_subscriber drop');
    assert.equal((await scrape(server)).value('socketd_dropped_total', { reason: 'no_subscriber' }), 1);

    // Closes by reason: a client Close, and a dropped connection.
    udpPeer.sendClose();
    await eventually(() => server.broker.sessionCount === 2, WAIT_MS, 'the udp session gone');
    caller.close();
    await eventually(() => server.broker.sessionCount === 1, WAIT_MS, 'the tcp session gone');
    const afterCloses = await scrape(server);
    assert.equal(afterCloses.value('socketd_session_closes_total', { reason: 'client_close' }), 1);
    assert.equal(afterCloses.value('socketd_session_closes_total', { reason: 'peer_closed' }), 1);
    assert.equal(afterCloses.value('socketd_sessions_open'), 1);
    assert.equal(afterCloses.value('socketd_connections_open', { transport: 'tcp' }), 0);
    assert.equal(afterCloses.value('socketd_connections_total', { transport: 'tcp' }), 1);

    // The gauges and histograms with no traffic of their own are there, at rest.
    for (const name of ['socketd_outbound_queue_bytes', 'socketd_paused_readers', 'socketd_pressure_sent_total', 'socketd_slow_consumers_total', 'socketd_late_replies_total']) {
      assert.ok(afterCloses.has(name), `${name} exported`);
      assert.equal(afterCloses.value(name), 0, name);
    }
    assert.equal(afterCloses.value('socketd_session_outbound_queue_bytes_count'), 1);
    assert.equal(afterCloses.value('socketd_session_outbound_queue_bytes_bucket', { le: '0' }), 1);
    assert.ok(afterCloses.has('socketd_process_resident_memory_bytes'));
    assert.ok(afterCloses.has('socketd_nodejs_eventloop_lag_p99_seconds'));
  } finally {
    svc.close();
    caller.close();
    udpPeer.close();
    await server.close();
  }
});

test('a refused handshake and a protocol error are counted by reason and code', { timeout: 60_000 }, async () => {
  const server = await startTestBroker();
  const p = ports(server);
  try {
    const bad = await RawClient.open('tcp', p.tcp);
    await bad.handshake(p.tcp, { name: 'no good', awaitConnack: false });
    const close = await bad.nextFlag(Flag.Close, WAIT_MS);
    assert.equal(close.meta('code'), '2001');
    const rude = await RawClient.open('tcp', p.tcp);
    rude.ping();
    await rude.nextFlag(Flag.Close, WAIT_MS);
    await eventually(() => server.broker.sessionCount === 0, WAIT_MS, 'both gone');
    const s = await scrape(server);
    assert.equal(s.value('socketd_handshakes_refused_total', { reason: 'invalid_name' }), 1);
    assert.equal(s.value('socketd_session_closes_total', { reason: 'invalid_name' }), 1);
    assert.equal(s.value('socketd_protocol_errors_total', { code: 'first_frame_not_connect' }), 1);
    assert.equal(s.value('socketd_frames_out_total', { flag: 'close' }), 2);
    bad.close();
    rude.close();
  } finally {
    await server.close();
  }
});

test('/healthz and /readyz answer 200 while running; unknown paths 404; POST 405', async () => {
  const server = await startTestBroker();
  try {
    const health = await getJson(server, '/healthz');
    assert.equal(health.status, 200);
    assert.deepEqual(health.body, { status: 'ok', sessions: 0 });
    const ready = await getJson(server, '/readyz');
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.body, { status: 'ready' });
    assert.equal((await getJson(server, '/nope')).status, 404);
    const post = await fetch(`http://127.0.0.1:${ports(server).http}/metrics`, { method: 'POST' });
    assert.equal(post.status, 405);
    await post.arrayBuffer();
  } finally {
    await server.close();
  }
});

test('idle sessions make no stream maps: not for /connz, not when they close (memory per connection, bench S4)', async () => {
  const server = await startTestBroker();
  const p = ports(server);
  const idle = await RawClient.connect('tcp', p.tcp, { name: 'idle' });
  const busy = await RawClient.connect('tcp', p.tcp, { name: 'busy' });
  type Maps = { legsMap: unknown; streamsMap: unknown; fragmentsMap: unknown };
  const maps = (name: string): Maps => [...server.broker.allSessions()].find((s) => s.name === name) as unknown as Maps;
  try {
    const idleSession = maps('idle');
    // A request from busy to idle gives both of them a map; nothing else does.
    const sid = busy.send({ flag: Flag.Request, event: 'q', meta: '@=idle' });
    const req = await idle.nextFlag(Flag.Request, WAIT_MS);
    idle.send({ flag: Flag.ReplyEnd, sid: req.sid, event: 'q', data: 'a' });
    await busy.nextFor(sid, WAIT_MS);
    const connz = await getJson(server, '/connz');
    const rows = connz.body.connections as { name: string; streamsOpen: number; streamsAnswering: number }[];
    assert.deepEqual(rows.map((r) => [r.name, r.streamsOpen, r.streamsAnswering]).sort(), [['busy', 0, 0], ['idle', 0, 0]]);
    const third = await RawClient.connect('tcp', p.tcp, { name: 'third' });
    const thirdSession = maps('third');
    await getJson(server, '/connz');
    third.close();
    await eventually(() => server.broker.sessionCount === 2, WAIT_MS, 'third gone');
    assert.deepEqual([thirdSession.legsMap, thirdSession.streamsMap, thirdSession.fragmentsMap], [null, null, null], 'never made');
    assert.notEqual(idleSession.legsMap, null, 'the responder got its map when it was given a stream');
    assert.equal(idleSession.streamsMap, null);
  } finally {
    idle.close();
    busy.close();
    await server.close();
  }
});

test('/connz lists sessions with name and transport, paged; /subsz after $sub; /namez', { timeout: 60_000 }, async () => {
  const server = await startTestBroker();
  const p = ports(server);
  const a = await RawClient.connect('tcp', p.tcp, { name: 'alpha' });
  const b = await RawClient.connect('ws', p.ws, { name: 'beta' });
  const c = await RawClient.connect('udp', p.udp, { name: 'alpha' });
  try {
    const all = await getJson(server, '/connz');
    assert.equal(all.status, 200);
    assert.equal(all.body.total, 3);
    assert.equal(all.body.offset, 0);
    assert.equal(all.body.limit, 100);
    const conns = all.body.connections as { id: string; name: string; transport: string; state: string; remote: string; subscriptions: number }[];
    assert.deepEqual(conns.map((x) => `${x.name}/${x.transport}`).sort(), ['alpha/tcp', 'alpha/udp', 'beta/ws']);
    for (const x of conns) {
      assert.equal(x.state, 'open');
      assert.match(x.remote, /^127\.0\.0\.1:\d+$/);
    }

    const page1 = await getJson(server, '/connz?offset=0&limit=2');
    const page2 = await getJson(server, '/connz?offset=2&limit=2');
    assert.equal(page1.body.total, 3);
    assert.equal((page1.body.connections as unknown[]).length, 2);
    assert.equal(page2.body.offset, 2);
    assert.equal((page2.body.connections as unknown[]).length, 1);
    const ids = [...(page1.body.connections as { id: string }[]), ...(page2.body.connections as { id: string }[])].map((x) => x.id);
    assert.deepEqual(ids.sort(), conns.map((x) => x.id).sort(), 'the pages cover every session once');
    const clamped = await getJson(server, '/connz?limit=0');
    assert.equal(clamped.body.limit, 1);

    const subSid = b.send({ flag: Flag.Request, event: '$sub', meta: 'event=a.b' });
    assert.equal((await b.nextFor(subSid, WAIT_MS)).flag, Flag.ReplyEnd);
    const subs = await getJson(server, '/subsz');
    assert.equal(subs.status, 200);
    assert.equal(subs.body.total, 1);
    const [sub] = subs.body.subscriptions as { session: string; name: string; pattern: string; presence: boolean }[];
    assert.equal(sub.pattern, 'a.b');
    assert.equal(sub.name, 'beta');
    assert.equal(sub.presence, false);
    const betaId = conns.find((x) => x.name === 'beta')!.id;
    assert.equal(sub.session, betaId);
    assert.equal((await getJson(server, `/subsz?session=${betaId}`)).body.total, 1);
    assert.equal((await getJson(server, `/subsz?session=${conns.find((x) => x.transport === 'tcp')!.id}`)).body.total, 0);
    const beta = ((await getJson(server, '/connz')).body.connections as { name: string; subscriptions: number }[]).find((x) => x.name === 'beta')!;
    assert.equal(beta.subscriptions, 1);

    const names = await getJson(server, '/namez');
    assert.equal(names.status, 200);
    const groups = names.body.names as { name: string; sessions: string[] }[];
    assert.deepEqual(groups.map((g) => g.name).sort(), ['alpha', 'beta']);
    assert.equal(groups.find((g) => g.name === 'alpha')!.sessions.length, 2);
  } finally {
    a.close();
    b.close();
    c.sendClose();
    c.close();
    await server.close();
  }
});

test('http.adminToken: admin endpoints 401 without it or with a wrong one, 200 with Bearer; health and metrics stay open', async () => {
  const server = await startTestBroker({ http: { adminToken: 's3cret-token' } });
  try {
    for (const path of ['/connz', '/subsz', '/namez']) {
      const none = await getJson(server, path);
      assert.equal(none.status, 401, path);
      assert.equal(none.body.error, 'unauthorized');
      assert.equal((await getJson(server, path, 'wrong')).status, 401, `${path} wrong token`);
      assert.equal((await getJson(server, path, 's3cret-token-and-more')).status, 401, `${path} longer token`);
      const ok = await getJson(server, path, 's3cret-token');
      assert.equal(ok.status, 200, path);
      assert.equal(ok.body.total, 0);
    }
    assert.equal((await getJson(server, '/connz?token=s3cret-token')).status, 200, 'the query form');
    assert.equal((await getJson(server, '/healthz')).status, 200);
    assert.equal((await getJson(server, '/readyz')).status, 200);
    const metrics = await fetch(`http://127.0.0.1:${ports(server).http}/metrics`);
    assert.equal(metrics.status, 200);
    await metrics.text();
  } finally {
    await server.close();
  }
});

test('server.close() uses shutdown.drainMs by default; /readyz is 503 while draining', { timeout: 60_000 }, async () => {
  const local = { enabled: true, host: '127.0.0.1', port: 0 };
  const config = configFrom({ listeners: { tcp: local, udp: local, ws: local }, http: local, shutdown: { drainMs: 1500 } });
  const server = await startServer(config, { logger: pino({ level: 'silent' }) });
  const p = ports(server);
  // A raw socket that completes the handshake and never closes its side keeps the drain going.
  const { default: net } = await import('node:net');
  const { encodeFrame } = await import('../../src/protocol/index.js');
  const socket = net.connect({ port: p.tcp, host: '127.0.0.1', allowHalfOpen: true });
  socket.on('error', () => undefined);
  await new Promise<void>((r) => socket.once('connect', () => r()));
  const url = `tcp://127.0.0.1:${p.tcp}`;
  socket.write(encodeFrame({ flag: Flag.Connect, sid: 'x1', event: url, meta: 'Socket.D=1.0', data: url }));
  await new Promise<void>((r) => socket.once('data', () => r()));
  try {
    const started = Date.now();
    const closing = server.close();
    const ready = await fetch(`http://127.0.0.1:${p.http}/readyz`);
    assert.equal(ready.status, 503);
    assert.deepEqual(await ready.json(), { status: 'not_ready' });
    await closing;
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 1200, `waited for the drain deadline (${elapsed} ms)`);
    assert.ok(elapsed < 4500, `cut off at the deadline, before the tcp linger (${elapsed} ms)`);
    await eventually(() => server.broker.connectionCount === 0, WAIT_MS, 'the stuck connection destroyed');
  } finally {
    socket.destroy();
  }
});

test('logging: one line per session open and close, nothing per frame at info', { timeout: 60_000 }, async () => {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const local = { enabled: true, host: '127.0.0.1', port: 0 };
  const config = configFrom({ listeners: { tcp: local, udp: local, ws: local }, http: local });
  const server = await startServer(config, { logger: pino({ level: 'info' }, sink) });
  const p = ports(server);
  const svc = await RawClient.connect('tcp', p.tcp, { name: 'svc' });
  const caller = await RawClient.connect('ws', p.ws);
  try {
    for (let i = 0; i < 50; i++) caller.send({ flag: Flag.Message, event: 'e', meta: '@=svc', data: String(i) });
    for (let i = 0; i < 50; i++) await svc.nextFlag(Flag.Message, WAIT_MS);
    for (let i = 0; i < 10; i++) {
      const sid = caller.send({ flag: Flag.Request, event: 'q', meta: '@=nobody' });
      await caller.nextFor(sid, WAIT_MS);
    }
    caller.ping();
    await caller.nextFlag(Flag.Pong, WAIT_MS);
  } finally {
    svc.close();
    caller.close();
    await eventually(() => server.broker.sessionCount === 0, WAIT_MS, 'sessions gone');
    await server.close();
  }
  const events = lines.map((l) => l.event);
  assert.deepEqual(events.filter((e) => e === 'session_open').length, 2);
  assert.deepEqual(events.filter((e) => e === 'session_close').length, 2);
  assert.deepEqual(
    [...new Set(events)].sort(),
    ['broker_started', 'broker_stopped', 'session_close', 'session_open'],
    'no other kind of line, none per frame',
  );
  assert.equal(lines.length, 6);
  const open = lines.find((l) => l.event === 'session_open' && l.name === 'svc')!;
  assert.equal(open.transport, 'tcp');
  assert.equal(typeof open.id, 'string');
  assert.match(String(open.remote), /^127\.0\.0\.1:\d+$/);
  const closed = lines.find((l) => l.event === 'session_close' && l.name === 'svc')!;
  assert.equal(typeof closed.reason, 'string');
  assert.equal(typeof closed.durationMs, 'number');
});
