/**
 * Every example of docs/client.md, run as written against the real broker. Only the URLs differ: the test
 * broker listens on port 0. When an example changes, change it here too.
 */
import test, { after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import { connect, json, SocketdError, type Client, type IncomingMessage } from '../../src/client/index.js';
import type { RunningServer } from '../../src/server.js';
import { eventually, ports, startTestBroker } from '../support/broker.js';

const WAIT = 5000;

describe('docs/client.md examples', () => {
  let server: RunningServer;
  let tcpUrl: string;
  let wsUrl: string;
  let orders: Client;
  let shop: Client;
  const log: unknown[][] = [];
  const console = { log: (...args: unknown[]) => void log.push(args) };
  const logged = (first: unknown): unknown[][] => log.filter((l) => l[0] === first);

  before(async () => {
    server = await startTestBroker();
    const p = ports(server);
    tcpUrl = `sd:tcp://127.0.0.1:${p.tcp}`;
    wsUrl = `sd:ws://127.0.0.1:${p.ws}/?region=eu`;
  });
  after(async () => {
    await server.close();
  });

  test('Connect', async () => {
    // docs: Connect
    orders = await connect(tcpUrl, { name: 'orders' });
    shop = await connect(wsUrl, { token: 'abc' });
    // end
    assert.equal(orders.connected && shop.connected, true);
  });

  test('Subscribe and send', async () => {
    // docs: Subscribe and send
    await orders.on('orders.*', (msg) => {
      console.log(msg.event, msg.json()); // orders.created { id: 42 }
    });

    shop.send('orders.created', json({ id: 42 }), { meta: { trace: 't-1' } });
    // end
    await eventually(() => logged('orders.created').length === 1, WAIT, 'the message');
    assert.deepEqual(logged('orders.created')[0], ['orders.created', { id: 42 }]);

    const handler = (_m: IncomingMessage): void => {};
    // docs: off
    const sub = await orders.on('orders.cancelled', handler);
    await sub.off();                     // this handler; $unsub when it was the last one for the pattern
    await orders.off('orders.*');        // every handler of the pattern (and group)
    // end
    assert.equal(server.events.subscriptionCount, 0);
  });

  test('Address by name', async () => {
    // docs: Address by name
    orders.onDirect((msg) => console.log('for me:', msg.text()));
    shop.send('ping', 'hi', { to: 'orders' });     // one session named orders (round robin)
    shop.send('ping', 'all', { to: 'orders*' });   // every session named orders
    // end
    await eventually(() => logged('for me:').length === 2, WAIT, 'both direct messages');
    assert.deepEqual(logged('for me:').map((l) => l[1]), ['hi', 'all']);
    orders.onDirect(null);

    const alarm = shop.events.next('alarm');
    shop.send('ping', 'x', { to: 'nobody' });
    assert.equal((await alarm).alarmCode, 4004);
  });

  test('Request and reply', async () => {
    // docs: Request and reply
    await orders.on('orders.get', (msg) => {
      const { id } = msg.json<{ id: number }>();
      msg.reply(json({ id, status: 'paid' }));
    });

    const reply = await shop.request('orders.get', json({ id: 42 }), { timeout: 2000 });
    reply.json(); // { id: 42, status: 'paid' }
    // end
    assert.deepEqual(reply.json(), { id: 42, status: 'paid' });

    // docs: request errors
    try {
      await shop.request('nobody.listens');
    } catch (error) {
      if (error instanceof SocketdError && error.code === 'alarm') console.log(error.alarmCode); // 4004
    }
    // end
    assert.deepEqual(log.at(-1), [4004]);
  });

  test('Streams', async () => {
    // docs: Streams
    await orders.on('orders.list', (msg) => {
      msg.reply('a');
      msg.reply('b');
      msg.replyEnd();
    });

    for await (const item of shop.stream('orders.list')) console.log(item.text()); // a, b
    // end
    assert.deepEqual(log.slice(-2), [['a'], ['b']]);
  });

  test('Streams: scatter-gather to name*', async () => {
    const second = await connect(tcpUrl, { name: 'orders' });
    try {
      await second.on('orders.list', (msg) => msg.replyEnd('c'));
      const items = await shop.stream('orders.list', undefined, { to: 'orders*' }).toArray();
      // The first leg's (empty) ReplyEnd is relayed as a Reply; the last one ends the stream (spec §5).
      assert.deepEqual(items.map((r) => r.text()).sort(), ['', 'a', 'b', 'c']);
      assert.equal(items.filter((r) => r.end).length, 1);
    } finally {
      await second.close();
    }
  });

  test('Queue groups and presence', async () => {
    const worker = await connect(tcpUrl);
    const alice = await connect(tcpUrl, { name: 'alice' });
    const bob = await connect(wsUrl, { name: 'bob' });
    try {
      const jobs: string[] = [];
      const handleJob = (m: IncomingMessage): void => void jobs.push(m.text());
      const onChat = (): void => {};
      // docs: Queue groups
      await worker.on('jobs.>', handleJob, { group: 'workers' }); // each job goes to one worker of the group
      // end
      shop.send('jobs.resize', 'img-1');
      await eventually(() => jobs.length === 1, WAIT, 'the job');

      // docs: presence
      alice.onPresence((n) => console.log(n.kind, n.event, n.name)); // join room.42 bob
      await alice.on('room.42', onChat, { presence: true });
      await bob.on('room.42', onChat);
      const members = await alice.presence('room.42'); // [{ id, name: 'alice', transport, since }, { ... 'bob' }]
      // end
      assert.deepEqual(members.map((m) => m.name).sort(), ['alice', 'bob']);
      await eventually(() => logged('join').length === 1, WAIT, 'the join notice');
      assert.deepEqual(logged('join')[0], ['join', 'room.42', 'bob']);
    } finally {
      await Promise.all([worker.close(), alice.close(), bob.close()]);
    }
  });

  test('Flow control', async () => {
    const payload = json({ cpu: 0.3 });
    const got: string[] = [];
    await orders.on('metrics.tick', (m) => void got.push(m.text()));
    // docs: Flow control
    if (shop.pressured) await shop.waitForDrain();
    shop.send('metrics.tick', payload);
    // end
    await eventually(() => got.length === 1, WAIT, 'the tick');
  });

  test('Life: close', async () => {
    // docs: Life
    shop.events.on('disconnect', (e) => console.log('lost:', e.message));
    shop.events.on('reconnect', ({ attempts }) => console.log('back after', attempts, 'attempts'));
    shop.events.on('error', (e) => console.log(e.code, e.message));
    await shop.close();
    // end
    await orders.close();
    assert.equal(shop.state, 'closed');
    assert.equal(logged('lost:').length, 0, 'a user close is not a disconnect');
    await eventually(() => server.broker.sessionCount === 0, WAIT, 'no session left');
  });
});
