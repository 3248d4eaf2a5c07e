/**
 * `socketd-broker --workers N` (docs/cluster.md): N node processes sharing the tcp and ws ports, joined over
 * a real redis-server; /metrics aggregates every worker; refused without cluster.redis.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { Flag } from '../../src/protocol/index.js';
import { RawClient } from '../support/raw-client.js';
import { BrokerProcess, getJson } from '../support/broker-process.js';
import { RedisServer, skipWithoutRedis } from '../support/redis.js';
import { eventually } from '../support/broker.js';
import { closeAll, sleep } from '../support/integration.js';
import { isMessage, subscribe } from '../support/events.js';

const WAIT_MS = 20_000;

function getText(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve(text));
    }).on('error', reject);
  });
}

function sample(text: string, metric: string): number {
  const m = new RegExp(`^${metric} (\\S+)$`, 'm').exec(text);
  return m === null ? NaN : Number(m[1]);
}

describe('--workers', () => {
  it('is refused without cluster.redis, with a clear error', async () => {
    const broker = new BrokerProcess({}, ['--workers', '2']);
    const { code } = await broker.exited;
    assert.equal(code, 2);
    assert.match(broker.stderr, /cluster\.workers \(2\) above 1 needs cluster\.redis/);
  });

  describe('with Redis', { skip: skipWithoutRedis }, () => {
    let redis: RedisServer;
    let broker: BrokerProcess;
    const clients: RawClient[] = [];
    before(async () => {
      redis = await RedisServer.start();
      broker = new BrokerProcess({
        SOCKETD_CLUSTER__REDIS: redis.url, SOCKETD_CLUSTER__HEARTBEAT_MS: '200', SOCKETD_CLUSTER__NODE_TIMEOUT_MS: '1000',
      }, ['--workers', '2']);
      await eventually(() => broker.events('broker_started').length === 2, WAIT_MS, 'both workers started').catch((e: Error) => {
        throw new Error(`${e.message}\n${broker.stderr}`);
      });
    });
    after(async () => {
      closeAll(...clients);
      await broker?.stop();
      await redis?.stop();
    });

    it('shares the tcp port between workers that act as one broker, udp on one worker, /metrics aggregated', async () => {
      const started = broker.events('broker_started').map((l) => l.addresses as Record<string, { port: number }>);
      assert.equal(started[0].tcp.port, started[1].tcp.port, 'one tcp port for both workers');
      assert.equal(started[0].http.port, started[1].http.port, 'one http port');
      assert.equal(started.filter((a) => a.udp !== undefined).length, 1, 'udp on one worker only');
      const ports = { tcp: started[0].tcp.port, http: started[0].http.port };
      const until = Date.now() + WAIT_MS;
      while (((await getJson(ports.http, '/nodez')).body.nodes as unknown[]).length < 2) {
        if (Date.now() > until) throw new Error('the workers do not see each other');
        await sleep(100);
      }
      // Several subscribers: the primary hands connections to the workers in turn, so both hold some.
      const subs: RawClient[] = [];
      for (let i = 0; i < 4; i++) {
        const sub = await RawClient.connect('tcp', ports.tcp);
        clients.push(sub);
        await subscribe(sub, 'w.*');
        subs.push(sub);
      }
      const pub = await RawClient.connect('tcp', ports.tcp);
      clients.push(pub);
      await sleep(500); // interest crosses between workers
      for (let i = 0; i < 20; i++) pub.send({ flag: Flag.Message, event: 'w.x', data: `${i}` });
      for (const sub of subs) {
        await eventually(() => sub.frames.filter(isMessage).length >= 20, WAIT_MS, 'every message on every worker');
        assert.deepEqual(sub.frames.filter(isMessage).map((f) => f.data.toString()), Array.from({ length: 20 }, (_, i) => `${i}`));
      }
      const text = await getText(ports.http, '/metrics');
      assert.equal(sample(text, 'socketd_sessions_open'), 5, 'sessions of both workers summed');
      assert.equal(sample(text, 'socketd_cluster_peers_up'), 2, 'each worker sees the other: 1 + 1');
      assert.match(text, /^socketd_cluster_frames_forwarded_total\{peer="[^"]+",direction="out"\} [1-9]/m, 'traffic between the workers is counted');
    });

    it('forks a worker that dies again, and the new one joins the others', async () => {
      const first = broker.events('broker_started');
      const victim = Number(first[1].pid);
      process.kill(victim, 'SIGKILL');
      await eventually(() => broker.events('worker_exit').length === 1, WAIT_MS, 'the primary saw the worker die');
      await eventually(() => broker.events('broker_started').length === 3, WAIT_MS, 'a new worker started');
      const replacement = broker.events('broker_started')[2];
      assert.notEqual(Number(replacement.pid), victim);
      const http = (replacement.addresses as Record<string, { port: number }>).http.port;
      const until = Date.now() + WAIT_MS;
      for (;;) {
        const nodes = (await getJson(http, '/nodez')).body.nodes as { node: string }[];
        if (nodes.length === 2 && nodes.some((n) => n.node.endsWith(`-${replacement.pid}`))) break;
        if (Date.now() > until) throw new Error(`the new worker is not in /nodez: ${JSON.stringify(nodes)}`);
        await sleep(100);
      }
    });
  });
});
