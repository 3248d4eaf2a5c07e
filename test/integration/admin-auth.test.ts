/**
 * Admin endpoints closed by default (docs/operations.md section 6): without http.adminToken only addresses on
 * http.adminTrusted (loopback by default) may read /connz, /subsz, /namez and the admin API; with a token it
 * is needed from everywhere; actions (disconnect) need the token always; /healthz, /readyz and /metrics stay
 * open unless http.protectMetrics. The test's address is 127.0.0.1 (or ::1): "not trusted" is a list without it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Flag } from '../../src/protocol/flags.js';
import { RawClient } from '../support/raw-client.js';
import { eventually, ports, startTestBroker } from '../support/broker.js';
import type { RunningServer } from '../../src/server.js';
import http from 'node:http';

/** A GET with the path sent as written (fetch would normalize `..`). */
function rawStatus(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, headers: { authorization: 'Bearer admin-s3cret' } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', reject);
  });
}

const READ_PATHS = ['/connz', '/subsz', '/namez', '/admin/api/overview', '/admin/api/sessions', '/admin/api/names', '/admin/api/subscriptions', '/admin/api/nodes'];

interface Answer {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

async function call(server: RunningServer, path: string, init: { token?: string; method?: string; body?: string; host?: string } = {}): Promise<Answer> {
  const headers: Record<string, string> = init.token === undefined ? {} : { authorization: `Bearer ${init.token}` };
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  const host = init.host ?? '127.0.0.1';
  const res = await fetch(`http://${host}:${ports(server).http}${path}`, { headers, method: init.method ?? 'GET', body: init.body });
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { text };
  }
  return { status: res.status, body, headers: res.headers };
}

test('default: loopback reads without a token; actions are refused until a token is set; health and metrics open', async () => {
  const server = await startTestBroker();
  const client = await RawClient.connect('tcp', ports(server).tcp, { name: 'kept' });
  try {
    for (const path of READ_PATHS) assert.equal((await call(server, path)).status, 200, path);
    const id = (await call(server, '/connz')).body.connections as { id: string }[];
    const refused = await call(server, `/admin/api/sessions/${id[0].id}/disconnect`, { method: 'POST', body: '{"reason":"x"}' });
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error, 'forbidden');
    assert.equal(refused.body.reason, 'admin_token_not_set');
    assert.match(String(refused.body.hint), /http\.adminToken/);
    assert.equal(server.broker.sessionCount, 1, 'nothing was disconnected');
    for (const path of ['/healthz', '/readyz', '/metrics']) assert.equal((await call(server, path)).status, 200, path);
  } finally {
    client.close();
    await server.close();
  }
});

test('no token and an address not on http.adminTrusted: 401 with the reason; health and metrics stay open', async () => {
  const server = await startTestBroker({ http: { adminTrusted: ['10.0.0.0/8'] } });
  try {
    for (const path of [...READ_PATHS, '/connz?token=anything', '/admin/api/sessions/x']) {
      const a = await call(server, path);
      assert.equal(a.status, 401, path);
      assert.equal(a.body.error, 'unauthorized', path);
      assert.equal(a.body.reason, 'untrusted_address', path);
      assert.match(String(a.body.hint), /127\.0\.0\.1 is not on http\.adminTrusted/);
      assert.equal(a.headers.get('www-authenticate'), 'Bearer realm="socketd-broker admin"');
      // A bearer header means nothing while no token is configured.
      assert.equal((await call(server, path, { token: 'guess' })).status, 401, `${path} with a guessed token`);
    }
    for (const path of ['/healthz', '/readyz', '/metrics']) assert.equal((await call(server, path)).status, 200, path);
  } finally {
    await server.close();
  }
});

test('an empty http.adminTrusted trusts nobody, loopback included', async () => {
  const server = await startTestBroker({ http: { adminTrusted: [] } });
  try {
    assert.equal((await call(server, '/connz')).status, 401);
    assert.equal((await call(server, '/admin/api/overview')).status, 401);
  } finally {
    await server.close();
  }
});

test('IPv6: ::1 is trusted by default, and an IPv4 client of a dual-stack listener (::ffff:127.0.0.1) matches 127.0.0.0/8', async () => {
  const v6 = await startTestBroker({ http: { host: '::1' } });
  try {
    assert.equal((await call(v6, '/connz', { host: '[::1]' })).status, 200);
  } finally {
    await v6.close();
  }
  const v4only = await startTestBroker({ http: { host: '::1', adminTrusted: ['127.0.0.0/8'] } });
  try {
    const a = await call(v4only, '/connz', { host: '[::1]' });
    assert.equal(a.status, 401);
    assert.match(String(a.body.hint), /::1 is not on/);
  } finally {
    await v4only.close();
  }
  const dual = await startTestBroker({ http: { host: '::', adminTrusted: ['127.0.0.0/8'] } });
  try {
    // Node reports an IPv4 peer of a `::` listener as ::ffff:127.0.0.1.
    assert.equal((await call(dual, '/connz', { host: '127.0.0.1' })).status, 200);
  } finally {
    await dual.close();
  }
});

test('http.protectMetrics: /metrics answers as the admin endpoints do; /healthz and /readyz stay open', async () => {
  const narrowed = await startTestBroker({ http: { adminTrusted: ['10.0.0.0/8'], protectMetrics: true } });
  try {
    const a = await call(narrowed, '/metrics');
    assert.equal(a.status, 401);
    assert.equal(a.body.reason, 'untrusted_address');
    for (const path of ['/healthz', '/readyz']) assert.equal((await call(narrowed, path)).status, 200, path);
  } finally {
    await narrowed.close();
  }
  const loopback = await startTestBroker({ http: { protectMetrics: true } });
  try {
    assert.equal((await call(loopback, '/metrics')).status, 200, 'loopback is trusted');
  } finally {
    await loopback.close();
  }
  const withToken = await startTestBroker({ http: { adminToken: 'metrics-token', protectMetrics: true } });
  try {
    assert.equal((await call(withToken, '/metrics')).status, 401, 'the token is needed from loopback too');
    const ok = await call(withToken, '/metrics', { token: 'metrics-token' });
    assert.equal(ok.status, 200);
    assert.match(String(ok.body.text), /socketd_sessions_open/);
  } finally {
    await withToken.close();
  }
});

test('a token is needed from everywhere once set (loopback too); the admin API takes it only as a bearer header', async () => {
  const server = await startTestBroker({ http: { adminToken: 'admin-s3cret' } });
  try {
    for (const path of READ_PATHS) {
      const none = await call(server, path);
      assert.equal(none.status, 401, path);
      assert.equal(none.body.reason, 'token_required', path);
      const wrong = await call(server, path, { token: 'admin-s3cre' });
      assert.equal(wrong.status, 401, path);
      assert.equal(wrong.body.reason, 'bad_token', path);
      assert.equal((await call(server, path, { token: 'admin-s3cret' })).status, 200, path);
    }
    assert.equal((await call(server, '/admin/api/overview?token=admin-s3cret')).status, 401, 'no token in URLs for the admin API');
    assert.equal((await call(server, '/connz?token=admin-s3cret')).status, 200, '/connz keeps its query form');
  } finally {
    await server.close();
  }
});

test('disconnect: needs the token (POST, JSON reason); the client gets Close with reason admin_disconnect and the text', async () => {
  const server = await startTestBroker({ http: { adminToken: 'admin-s3cret', adminTrusted: ['10.0.0.0/8'] } });
  const p = ports(server);
  const victim = await RawClient.connect('ws', p.ws, { name: 'victim' });
  const bystander = await RawClient.connect('udp', p.udp, { name: 'bystander' });
  try {
    const sessions = (await call(server, '/admin/api/sessions?q=victim', { token: 'admin-s3cret' })).body;
    assert.equal(sessions.total, 1);
    const id = (sessions.sessions as { id: string }[])[0].id;
    const detail = await call(server, `/admin/api/sessions/${id}`, { token: 'admin-s3cret' });
    assert.equal(detail.status, 200);
    assert.equal(detail.body.name, 'victim');
    assert.equal(detail.body.transport, 'ws');

    const path = `/admin/api/sessions/${id}/disconnect`;
    assert.equal((await call(server, path, { method: 'POST', body: '{}' })).status, 401, 'no token');
    assert.equal((await call(server, path, { method: 'POST', body: '{}', token: 'nope' })).status, 401, 'wrong token');
    assert.equal((await call(server, path, { token: 'admin-s3cret' })).status, 405, 'GET is no action');
    assert.equal((await call(server, path, { method: 'POST', body: '{"reason":', token: 'admin-s3cret' })).status, 400, 'bad JSON');
    assert.equal((await call(server, path, { method: 'POST', body: '{"reason":5}', token: 'admin-s3cret' })).status, 400, 'reason not a string');
    const big = await call(server, path, { method: 'POST', body: JSON.stringify({ reason: 'x'.repeat(5000) }), token: 'admin-s3cret' });
    assert.equal(big.status, 413);
    assert.equal(server.broker.sessionCount, 2, 'refused actions disconnected nobody');
    assert.equal((await call(server, '/admin/api/sessions/nobody/disconnect', { method: 'POST', body: '{}', token: 'admin-s3cret' })).status, 404);
    assert.equal((await call(server, '/admin/api/sessions/%E0%A4%A/disconnect', { method: 'POST', body: '{}', token: 'admin-s3cret' })).status, 400, 'bad percent-encoding');
    assert.equal((await call(server, '/admin/api/sessions/%E0%A4%A', { token: 'admin-s3cret' })).status, 400);
    assert.equal((await call(server, '/admin/api/nope', { token: 'admin-s3cret' })).status, 404);
    assert.equal((await call(server, '/admin/api/overview', { method: 'POST', token: 'admin-s3cret' })).status, 405);
    assert.equal((await call(server, '/admin/nope.js', { token: 'admin-s3cret' })).status, 404, 'only the page\'s files');
    for (const raw of ['/admin/../package.json', '/admin/%2e%2e/package.json', '/admin/..%2fpackage.json']) {
      assert.equal(await rawStatus(ports(server).http, raw), 404, raw);
    }

    const closeFrame = victim.nextFlag(Flag.Close, 5000);
    const done = await call(server, path, { method: 'POST', body: JSON.stringify({ reason: 'maintenance of the victim' }), token: 'admin-s3cret' });
    assert.equal(done.status, 200);
    assert.deepEqual(done.body, { disconnected: id, name: 'victim', reason: 'maintenance of the victim' });
    const close = await closeFrame;
    assert.equal(close.meta('reason'), 'admin_disconnect');
    assert.equal(close.meta('code'), '1001');
    assert.equal(close.data.toString(), 'maintenance of the victim');
    await victim.waitClosed(5000);
    await eventually(() => server.broker.sessionCount === 1, 5000, 'the victim is gone');
    assert.equal((await call(server, '/admin/api/sessions', { token: 'admin-s3cret' })).body.total, 1, 'the bystander stays');
  } finally {
    victim.close();
    bystander.close();
    await server.close();
  }
});

test('the nodes hook: /admin/api/nodes lists what a cluster gives, and the overview says it is clustered', async () => {
  const server = await startTestBroker();
  const { BrokerHttpServer } = await import('../../src/http/http-server.js');
  const { AdminSampler } = await import('../../src/http/admin/sampler.js');
  const { SessionCounts } = await import('../../src/broker/session-counts.js');
  const sampler = new AdminSampler({ stats: server.broker.stats, counts: new SessionCounts(), subscriptionCount: () => 0 });
  const nodes = [{ id: 'n1', state: 'up', names: 3, subscriptions: 10 }, { id: 'n2', state: 'connecting' }];
  const clustered = new BrokerHttpServer({ host: '127.0.0.1', port: 0, adminToken: '' }, {
    broker: server.broker, events: server.events, metrics: server.metrics, logger: server.logger, isReady: () => true,
    admin: { sampler, memoryBudgetBytes: 1024, memoryLowWaterBytes: 512, cluster: { nodes: () => nodes } },
  });
  const { port } = await clustered.listen();
  try {
    const list = await (await fetch(`http://127.0.0.1:${port}/admin/api/nodes`)).json() as Record<string, unknown>;
    assert.deepEqual(list, { clustered: true, nodes });
    const overview = await (await fetch(`http://127.0.0.1:${port}/admin/api/overview`)).json() as Record<string, unknown>;
    assert.equal(overview.clustered, true);
    assert.equal(overview.memoryBudgetBytes, 1024);
    assert.equal(sampler.running, true, 'the page\'s request started the sampler');
    const alone = await call(server, '/admin/api/nodes');
    assert.deepEqual(alone.body, { clustered: false, nodes: [] });
  } finally {
    await clustered.close();
    assert.equal(sampler.running, false, 'closing the HTTP server stops the sampler');
    await server.close();
  }
});
