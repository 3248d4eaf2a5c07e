/**
 * Cluster mode over a real redis-server (docs/cluster.md), in-process brokers: a node started while Redis is
 * unreachable serves its own sessions at once, reports degraded, and joins the others by itself once Redis
 * is up.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { Flag } from '../../src/protocol/index.js';
import { RedisServer, skipWithoutRedis } from '../support/redis.js';
import { eventually, ports, startTestBroker } from '../support/broker.js';
import { getJson } from '../support/broker-process.js';
import { closeAll, connect } from '../support/integration.js';
import { isMessage, subscribe } from '../support/events.js';

const WAIT_MS = 15_000;

it('starts without Redis, routes locally, reports degraded, and joins the cluster once Redis is up', { skip: skipWithoutRedis }, async () => {
  const redis = await RedisServer.start();
  await redis.stop();
  const cluster = (nodeId: string) => ({ cluster: { redis: redis.url, nodeId, heartbeatMs: 100, nodeTimeoutMs: 500, connectTimeoutMs: 200 } });
  const a = await startTestBroker(cluster('a'));
  const b = await startTestBroker(cluster('b'));
  const clients = [];
  try {
    assert.equal(a.cluster!.linkUp, false);
    assert.equal((await getJson(ports(a).http, '/readyz')).body.status, 'degraded');
    const pub = await connect(a, 'tcp');
    const local = await connect(a, 'tcp');
    const remote = await connect(b, 'tcp');
    clients.push(pub, local, remote);
    await subscribe(local, 'up.*');
    await subscribe(remote, 'up.*');
    pub.send({ flag: Flag.Message, event: 'up.before', data: 'local only' });
    await eventually(() => local.frames.filter(isMessage).length === 1, WAIT_MS, 'local delivery without Redis');
    await redis.startAgain();
    await eventually(() => a.cluster!.linkUp && b.cluster!.linkUp && a.cluster!.peerCount === 1, WAIT_MS, 'both joined');
    await eventually(() => a.cluster!.remote.index.size === 1, WAIT_MS, "b's interest known to a");
    assert.equal((await getJson(ports(a).http, '/readyz')).body.status, 'ready');
    pub.send({ flag: Flag.Message, event: 'up.after', data: 'everywhere' });
    await eventually(() => remote.frames.filter(isMessage).length === 1, WAIT_MS, 'cross-node delivery');
    assert.equal(remote.frames.filter(isMessage)[0].data.toString(), 'everywhere');
  } finally {
    closeAll(...clients);
    await a.close();
    await b.close();
    await redis.stop();
  }
});
