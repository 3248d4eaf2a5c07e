/**
 * Session life (spec §3) over the real transports: Connect/Connack, Ping/Pong, protocol errors before and
 * after the handshake, the handshake and idle timeouts, a client Close, a refused name.
 */
import test, { describe } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { Flag, encodeFrame, type Frame } from '../../src/protocol/index.js';
import type { RunningServer } from '../../src/server.js';
import { RawClient, sid, type RawTransport } from '../support/raw-client.js';
import { startTestBroker, eventually } from '../support/broker.js';
import { TRANSPORTS, closeAll, connect, fixture, metaOf, portOf, sleep } from '../support/integration.js';

const FAST = { timeouts: { requestMs: 300, idleMs: 400, handshakeMs: 300 } };

async function withBroker(overrides: Record<string, Record<string, unknown>>, body: (server: RunningServer) => Promise<void>): Promise<void> {
  const server = await startTestBroker(overrides);
  try {
    await body(server);
  } finally {
    await server.close();
  }
}

function urlFor(transport: RawTransport, port: number, query = ''): string {
  return `${transport}://127.0.0.1:${port}${transport === 'ws' ? '/' : ''}${query ? `?${query}` : ''}`;
}

function closeCode(frame: Frame): string | undefined {
  return metaOf(frame.metaString, 'code');
}

describe('Connect / Connack', () => {
  for (const transport of TRANSPORTS) {
    test(`${transport}: Connack echoes the Connect's sid, event and data with meta Socket.D=1.0`, async () => {
      await withBroker(FAST, async (server) => {
        const port = portOf(server, transport);
        const client = await RawClient.open(transport, port);
        try {
          const url = urlFor(transport, port, '@=svc&token=abc');
          const connectSid = sid();
          client.send({ flag: Flag.Connect, sid: connectSid, event: url, meta: 'Socket.D=1.0&x-app=demo', data: url });
          const connack = await client.nextFlag(Flag.Connack);
          assert.equal(connack.sid, connectSid);
          assert.equal(connack.event, url);
          assert.equal(connack.data.toString(), url);
          assert.equal(connack.metaString, 'Socket.D=1.0', 'client metas are not echoed back');
          await eventually(() => server.broker.registry.size === 1, 1000, 'the session registered');
          const session = [...server.broker.registry.sessions()][0];
          assert.equal(session.name, 'svc');
          assert.equal(session.transport, transport);
          assert.equal(session.params.get('x-app'), 'demo');
          assert.equal(session.params.get('token'), 'abc');
        } finally {
          closeAll(client);
        }
      });
    });
  }

  test('tcp: with meta exactly Socket.D=1.0 the Connack is the Connect with only the flag changed', async () => {
    await withBroker(FAST, async (server) => {
      const port = portOf(server, 'tcp');
      const client = await RawClient.open('tcp', port);
      try {
        const url = urlFor('tcp', port, '@=orders');
        const connect = encodeFrame({ flag: Flag.Connect, sid: sid(), event: url, meta: 'Socket.D=1.0', data: url });
        client.sendBytes(connect);
        const connack = await client.nextFlag(Flag.Connack);
        const expected = Buffer.from(connect);
        expected.writeInt32BE(Flag.Connack, 4);
        assert.deepEqual(connack.raw, expected);
      } finally {
        closeAll(client);
      }
    });
  });

  test('tcp: the reference Connects (fixtures a1, a2) replayed verbatim get exactly the reference Connacks (b1, b2)', async () => {
    await withBroker(FAST, async (server) => {
      const port = portOf(server, 'tcp');
      const svc = await RawClient.open('tcp', port);
      const caller = await RawClient.open('tcp', port);
      try {
        svc.sendBytes(fixture('a1'));
        caller.sendBytes(fixture('a2'));
        assert.deepEqual((await svc.nextFlag(Flag.Connack)).raw, fixture('b1'));
        assert.deepEqual((await caller.nextFlag(Flag.Connack)).raw, fixture('b2'));
        // a1's URL says ?@=svc: the session is registered under that name.
        await eventually(() => server.broker.registry.group('svc')?.members.length === 1, 1000, 'svc registered');
      } finally {
        closeAll(svc, caller);
      }
    });
  });

  for (const transport of TRANSPORTS) {
    test(`${transport}: Ping (fixture e1) gets the 8-byte Pong (fixture e2)`, async () => {
      await withBroker(FAST, async (server) => {
        const client = await connect(server, transport);
        try {
          client.sendBytes(fixture('e1'));
          const pong = await client.nextFlag(Flag.Pong);
          assert.deepEqual(pong.raw, fixture('e2'));
          assert.equal(pong.raw.length, 8);
        } finally {
          closeAll(client);
        }
      });
    });
  }

  test('handshake params: the URL query, not decoded, overlaid by the Connect metas (@ from meta wins)', async () => {
    await withBroker(FAST, async (server) => {
      const port = portOf(server, 'tcp');
      const a = await RawClient.connect('tcp', port, { name: 'from-url', meta: '@=from-meta' });
      const b = await RawClient.connect('tcp', port, { name: 'a%20b', query: 'token=x%3Dy' });
      try {
        await eventually(() => server.broker.registry.size === 2, 1000, 'two sessions');
        assert.equal(server.broker.registry.group('from-url'), undefined);
        assert.equal(server.broker.registry.group('from-meta')?.members.length, 1);
        const other = server.broker.registry.group('a%20b')?.members[0];
        assert.ok(other !== undefined, 'the name is kept percent-encoded');
        assert.equal(other.params.get('token'), 'x%3Dy');
        // The name works as an address.
        b.send({ flag: Flag.Message, event: 'hi', meta: '@=from-meta', data: 'x' });
        assert.equal((await a.nextFlag(Flag.Message)).data.toString(), 'x');
      } finally {
        closeAll(a, b);
      }
    });
  });

  for (const transport of TRANSPORTS) {
    test(`${transport}: an invalid @ name (svc*) is refused with Close code=2001`, async () => {
      await withBroker(FAST, async (server) => {
        const client = await RawClient.open(transport, portOf(server, transport));
        try {
          await client.handshake(portOf(server, transport), { name: 'svc*', awaitConnack: false });
          const close = await client.nextFlag(Flag.Close);
          assert.equal(closeCode(close), '2001');
          if (transport !== 'udp') await client.waitClosed(2000);
          await eventually(() => server.broker.sessionCount === 0, 2000, 'the refused session released');
          assert.equal(server.broker.registry.size, 0);
          assert.equal(server.broker.registry.group('svc*'), undefined);
          assert.equal(server.broker.registry.group('svc'), undefined);
          assert.equal(client.frames.some((f) => f.flag === Flag.Connack), false, 'no Connack for a refused handshake');
        } finally {
          closeAll(client);
        }
      });
    });
  }
});

describe('protocol errors', () => {
  // udp: such a datagram opens no session and gets no answer at all (test/integration/pre-handshake.test.ts).
  for (const transport of ['tcp', 'ws'] as const) {
    test(`${transport}: a first frame that is not Connect gets Close code=1002, then the connection ends`, async () => {
      await withBroker(FAST, async (server) => {
        const client = await RawClient.open(transport, portOf(server, transport));
        try {
          client.send({ flag: Flag.Message, event: 'hello', meta: '@=svc', data: 'too early' });
          const close = await client.nextFlag(Flag.Close);
          assert.equal(closeCode(close), '1002');
          await client.waitClosed(2000);
          await eventually(() => server.broker.sessionCount === 0 && server.broker.connectionCount === 0, 2000, 'released');
        } finally {
          closeAll(client);
        }
      });
    });
  }

  for (const transport of ['tcp', 'ws'] as const) {
    test(`${transport}: a client that never sends Connect is closed after the handshake timeout`, async () => {
      await withBroker(FAST, async (server) => {
        const started = Date.now();
        const client = await RawClient.open(transport, portOf(server, transport));
        try {
          await eventually(() => server.broker.sessionCount === 1, 1000, 'the connection accepted');
          await client.waitClosed(2000);
          const elapsed = Date.now() - started;
          assert.ok(elapsed >= 250, `closed after ${elapsed} ms, before the 300 ms handshake timeout`);
          assert.ok(elapsed < 1500, `closed only after ${elapsed} ms`);
          const close = client.frames.find((f) => f.flag === Flag.Close);
          assert.ok(close !== undefined, 'a Close frame precedes the close');
          assert.equal(closeCode(close), '1002');
          await eventually(() => server.broker.sessionCount === 0 && server.broker.connectionCount === 0, 1000, 'released');
        } finally {
          closeAll(client);
        }
      });
    });
  }

  for (const transport of ['tcp', 'ws'] as const) {
    test(`${transport}: garbage bytes get Close code=1002 and the connection ends`, async () => {
      await withBroker(FAST, async (server) => {
        const client = await RawClient.open(transport, portOf(server, transport));
        try {
          client.sendBytes(Buffer.from('GET / HTTP/1.1\r\nHost: example\r\n\r\n'));
          const close = await client.nextFlag(Flag.Close);
          assert.equal(closeCode(close), '1002');
          await client.waitClosed(2000);
          await eventually(() => server.broker.sessionCount === 0 && server.broker.connectionCount === 0, 2000, 'released');
        } finally {
          closeAll(client);
        }
      });
    });
  }

  test('tcp: garbage after the handshake gets Close code=1002 and the connection ends', async () => {
    await withBroker(FAST, async (server) => {
      const client = await connect(server, 'tcp', { name: 'svc' });
      try {
        // A length of 5 cannot be a frame.
        client.sendBytes(Buffer.from('00000005ffffffff00', 'hex'));
        const close = await client.nextFlag(Flag.Close);
        assert.equal(closeCode(close), '1002');
        await client.waitClosed(2000);
        await eventually(() => server.broker.registry.size === 0 && server.broker.sessionCount === 0, 1000, 'released');
      } finally {
        closeAll(client);
      }
    });
  });

  for (const handshaken of [false, true]) {
    test(`tcp: a frame declaring 2 GB (len 0x7fffffff) ${handshaken ? 'after' : 'before'} the handshake gets Close 1002 and is cut off promptly`, async () => {
      // Long timeouts, so a close can only come from the length check.
      await withBroker({ timeouts: { requestMs: 5000, idleMs: 5000, handshakeMs: 5000 } }, async (server) => {
        const port = portOf(server, 'tcp');
        const client = handshaken ? await RawClient.connect('tcp', port, { name: 'svc' }) : await RawClient.open('tcp', port);
        try {
          const started = Date.now();
          // Only the header: the broker must not wait for (or buffer) the 2 GB it announces.
          client.sendBytes(Buffer.from('7fffffff00000028', 'hex'));
          const close = await client.nextFlag(Flag.Close, 1000);
          assert.equal(closeCode(close), '1002');
          await client.waitClosed(1000);
          const elapsed = Date.now() - started;
          assert.ok(elapsed < 1000, `took ${elapsed} ms, well before any timeout`);
          assert.equal(server.broker.stats.protocolErrors.get('frame_too_large'), 1);
          await eventually(() => server.broker.sessionCount === 0 && server.broker.connectionCount === 0, 1000, 'released');
        } finally {
          closeAll(client);
        }
      });
    });
  }

  for (const transport of TRANSPORTS) {
    test(`${transport}: an unknown flag after the handshake gets Close code=1002`, async () => {
      await withBroker(FAST, async (server) => {
        const client = await connect(server, transport, { name: 'svc' });
        try {
          client.send({ flag: 99, event: 'what', data: 'x' });
          const close = await client.nextFlag(Flag.Close);
          assert.equal(closeCode(close), '1002');
          if (transport !== 'udp') await client.waitClosed(2000);
          await eventually(() => server.broker.sessionCount === 0 && server.broker.registry.size === 0, 1000, 'released');
        } finally {
          closeAll(client);
        }
      });
    });
  }

  test('ws: a text message gets Close code=1002 and the connection ends', async () => {
    await withBroker(FAST, async (server) => {
      const client = await connect(server, 'ws', { name: 'svc' });
      try {
        client.sendText('hello');
        const close = await client.nextFlag(Flag.Close);
        assert.equal(closeCode(close), '1002');
        await client.waitClosed(2000);
        await eventually(() => server.broker.sessionCount === 0 && server.broker.registry.size === 0, 1000, 'released');
      } finally {
        closeAll(client);
      }
    });
  });

  test('ws: a text message before the handshake gets Close code=1002', async () => {
    await withBroker(FAST, async (server) => {
      const client = await RawClient.open('ws', portOf(server, 'ws'));
      try {
        client.sendText('Connect?');
        const close = await client.nextFlag(Flag.Close);
        assert.equal(closeCode(close), '1002');
        await client.waitClosed(2000);
      } finally {
        closeAll(client);
      }
    });
  });

  test('ws: a client offering no subprotocol is accepted; one offering Socket.D gets it selected', async () => {
    await withBroker(FAST, async (server) => {
      const port = portOf(server, 'ws');
      const open = (protocols: string[]): Promise<WebSocket> =>
        new Promise((resolve, reject) => {
          const ws = new WebSocket(`ws://127.0.0.1:${port}/`, protocols);
          ws.once('open', () => resolve(ws));
          ws.once('error', reject);
        });
      const plain = await open([]);
      const named = await open(['Socket.D']);
      try {
        assert.equal(plain.protocol, '');
        assert.equal(named.protocol, 'Socket.D');
        const url = `ws://127.0.0.1:${port}/`;
        const connackFor = (ws: WebSocket): Promise<Buffer> =>
          new Promise((resolve) => ws.once('message', (data: Buffer) => resolve(data)));
        const pending = connackFor(plain);
        plain.send(encodeFrame({ flag: Flag.Connect, sid: 'abc', event: url, meta: 'Socket.D=1.0', data: url }));
        const bytes = await pending;
        assert.equal(bytes.readInt32BE(4), Flag.Connack);
      } finally {
        plain.terminate();
        named.terminate();
      }
    });
  });
});

describe('timeouts and close', () => {
  for (const transport of TRANSPORTS) {
    test(`${transport}: a silent session is closed with Close code=1001 after the idle timeout; a pinging one stays`, async () => {
      await withBroker(FAST, async (server) => {
        const silent = await connect(server, transport, { name: 'quiet' });
        const pinger = await connect(server, transport, { name: 'busy' });
        const timer = setInterval(() => pinger.ping(), 100);
        try {
          const started = Date.now();
          const close = await silent.nextFlag(Flag.Close, 2000);
          const elapsed = Date.now() - started;
          assert.equal(closeCode(close), '1001');
          assert.ok(elapsed >= 300, `idle close after only ${elapsed} ms (idle timeout 400 ms)`);
          if (transport !== 'udp') await silent.waitClosed(2000);
          await eventually(() => server.broker.registry.group('quiet') === undefined, 1000, 'quiet released');
          // Well past the idle timeout, the pinging session is still there and answering.
          await sleep(600);
          assert.equal(pinger.closed, false);
          assert.equal(pinger.frames.some((f) => f.flag === Flag.Close), false, 'the pinging session got no Close');
          assert.equal(server.broker.registry.group('busy')?.members.length, 1);
          const pongs = await pinger.collect(0, (f) => f.flag === Flag.Pong);
          assert.ok(pongs.length >= 5, `only ${pongs.length} Pongs`);
        } finally {
          clearInterval(timer);
          closeAll(silent, pinger);
        }
      });
    });
  }

  for (const transport of TRANSPORTS) {
    test(`${transport}: a client Close frame (fixture f1) makes the broker release the session`, async () => {
      await withBroker(FAST, async (server) => {
        const client = await connect(server, transport, { name: 'svc' });
        try {
          await eventually(() => server.broker.sessionCount === 1, 1000, 'one session');
          client.sendBytes(fixture('f1'));
          await eventually(() => server.broker.sessionCount === 0, 1000, 'the session released');
          assert.equal(server.broker.registry.size, 0);
          assert.equal(server.broker.registry.group('svc'), undefined);
          if (transport !== 'udp') await client.waitClosed(2000);
          await eventually(() => server.broker.connectionCount === 0, 1000, 'the connection closed');
          // The broker does not answer a client Close with its own Close.
          assert.equal(client.frames.some((f) => f.flag === Flag.Close), false);
        } finally {
          closeAll(client);
        }
      });
    });
  }

  test('the f1 Close bytes are what RawClient.sendClose() sends', () => {
    assert.deepEqual(encodeFrame({ flag: Flag.Close, sid: '', event: '', meta: 'code=1001' }), fixture('f1'));
  });

  test('shutdown: server.close() sends Close code=1001 to every session and ends tcp and ws connections', async () => {
    const server = await startTestBroker(FAST);
    const clients = await Promise.all(TRANSPORTS.map((t) => connect(server, t, { name: `s-${t}` })));
    try {
      await eventually(() => server.broker.sessionCount === 3, 1000, '3 sessions');
      await server.close();
      for (const c of clients) {
        const close = await c.nextFlag(Flag.Close, 2000);
        assert.equal(closeCode(close), '1001', `${c.transport} Close code`);
      }
      await Promise.all(clients.filter((c) => c.transport !== 'udp').map((c) => c.waitClosed(2000)));
      assert.equal(server.broker.sessionCount, 0);
      assert.equal(server.broker.connectionCount, 0);
    } finally {
      closeAll(...clients);
      await server.close();
    }
  });

  test('udp: a new Connect from the same address:port replaces the session', async () => {
    await withBroker(FAST, async (server) => {
      const port = portOf(server, 'udp');
      const client = await RawClient.connect('udp', port, { name: 'first' });
      try {
        await eventually(() => server.broker.registry.group('first')?.members.length === 1, 1000, 'first registered');
        await client.handshake(port, { name: 'second' });
        await eventually(() => server.broker.registry.group('first') === undefined, 1000, 'the old session released');
        assert.equal(server.broker.registry.group('second')?.members.length, 1);
        assert.equal(server.broker.sessionCount, 1);
      } finally {
        closeAll(client);
      }
    });
  });
});
