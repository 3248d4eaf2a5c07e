import test from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type net from 'node:net';
import { once } from 'node:events';
import { WebSocket } from 'ws';
import { WsConnection, WsListener, truncateCloseReason, type Connection, type WsListenerOptions } from '../../src/transport/index.js';
import { RecordingHandler, delay, frame, nextTicks, selfSignedCert, waitFor } from '../support/transport-helpers.js';

interface Accepted {
  connection: Connection;
  handler: RecordingHandler;
}

async function startListener(options: Partial<WsListenerOptions> = {}, beforeStart?: (connection: Connection) => void) {
  const accepted: Accepted[] = [];
  const listener = new WsListener({ host: '127.0.0.1', port: 0, maxPayload: 1024 * 1024, ...options }, (connection) => {
    const handler = new RecordingHandler();
    beforeStart?.(connection);
    connection.start(handler);
    accepted.push({ connection, handler });
  });
  const address = await listener.listen();
  const next = async (): Promise<Accepted> => {
    await waitFor(() => accepted.length > 0, 'an accepted connection');
    return accepted.shift()!;
  };
  return { listener, port: address.port, url: `ws://127.0.0.1:${address.port}/`, next };
}

async function dial(url: string, protocols?: string | string[], options: { ca?: Buffer } = {}): Promise<WebSocket> {
  const ws = new WebSocket(url, protocols, options);
  await once(ws, 'open');
  return ws;
}

/** Collects the binary messages a raw client receives. */
function collect(ws: WebSocket): Buffer[] {
  const messages: Buffer[] = [];
  ws.on('message', (data: Buffer) => messages.push(data));
  return messages;
}

test('ws: binary messages round-trip, one message per frame, and Socket.D is selected', async () => {
  const server = await startListener();
  assert.equal(server.listener.transport, 'ws');
  const client = await dial(server.url, 'Socket.D');
  assert.equal(client.protocol, 'Socket.D');
  const received = collect(client);
  const { connection, handler } = await server.next();
  assert.equal(connection.transport, 'ws');
  assert.equal(connection.framing, 'message');
  assert.equal(connection.remoteAddress, '127.0.0.1');

  // A binary message of N bytes arrives as one Buffer of N bytes, also when the client fragments it.
  const big = Buffer.alloc(100_000, 3);
  client.send(big);
  client.send(Buffer.from('part one|'), { fin: false });
  client.send(Buffer.from('part two'), { fin: true });
  await waitFor(() => handler.chunks.length === 2, 'two messages');
  assert.ok(Buffer.isBuffer(handler.chunks[0]));
  assert.equal(handler.chunks[0]!.length, big.length);
  assert.deepEqual(handler.chunks[0], big);
  assert.equal(handler.chunks[1]!.toString(), 'part one|part two');

  const head = frame(40, 'head|');
  const body = Buffer.from('body');
  connection.write(head, body);
  await waitFor(() => received.length === 1, 'one outbound message');
  assert.deepEqual(received[0], Buffer.concat([head, body]));

  client.close(1000);
  assert.equal((await handler.closed).code, 'peer_closed');
  await server.listener.close();
});

test('ws: frames written in one tick arrive in order, batched on the wire', async () => {
  const server = await startListener();
  const client = await dial(server.url);
  const received = collect(client);
  let socketReads = 0;
  (client as unknown as { _socket: net.Socket })._socket.on('data', () => socketReads++);
  const { connection, handler } = await server.next();

  const frames: Buffer[] = [];
  for (let i = 0; i < 100; i++) frames.push(frame(40, `message ${i}`));
  for (const f of frames) connection.write(f);
  await waitFor(() => received.length === frames.length, 'all messages');
  assert.deepEqual(received, frames);
  assert.ok(socketReads < frames.length / 2, `corked writes reach the peer in few reads (got ${socketReads})`);

  client.close();
  await handler.closed;
  await server.listener.close();
});

test('ws: subprotocol negotiation', async (t) => {
  const server = await startListener();
  t.after(() => server.listener.close());

  await t.test('no protocol when the client offers none', async () => {
    const client = await dial(server.url);
    assert.equal(client.protocol, '');
    const { handler } = await server.next();
    client.close();
    await handler.closed;
  });

  await t.test('Socket.D among others, and in another case', async () => {
    const first = await dial(server.url, ['mqtt', 'Socket.D']);
    assert.equal(first.protocol, 'Socket.D');
    const second = await dial(server.url, ['socket.d']);
    assert.equal(second.protocol, 'socket.d');
    const a = await server.next();
    const b = await server.next();
    first.close();
    second.close();
    await Promise.all([a.handler.closed, b.handler.closed]);
  });

  await t.test('none selected when Socket.D is not offered', async () => {
    const request = http.request({
      host: '127.0.0.1',
      port: server.port,
      path: '/',
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': Buffer.alloc(16, 1).toString('base64'),
        'Sec-WebSocket-Protocol': 'mqtt, stomp',
      },
    });
    request.end();
    const [response, socket] = (await once(request, 'upgrade')) as [http.IncomingMessage, net.Socket];
    assert.equal(response.statusCode, 101);
    assert.equal(response.headers['sec-websocket-protocol'], undefined);
    const { handler } = await server.next();
    socket.destroy();
    assert.equal((await handler.closed).code, 'reset');
  });
});

test('ws: a text message gives connectionOnInvalid and does not close', async () => {
  const server = await startListener();
  const client = await dial(server.url);
  const { connection, handler } = await server.next();
  client.send('hello as text');
  await waitFor(() => handler.invalid.length === 1, 'invalid report');
  assert.equal(handler.invalid[0]!.code, 'ws_text_message');
  assert.equal(handler.chunks.length, 0);
  await delay(20);
  assert.equal(connection.closed, false);
  client.send(frame(20));
  await waitFor(() => handler.chunks.length === 1, 'binary after text');
  client.close();
  await handler.closed;
  await server.listener.close();
});

test('ws: a plain HTTP request gets 426', async () => {
  const server = await startListener();
  const response = await new Promise<http.IncomingMessage>((resolve, reject) =>
    http.get(`http://127.0.0.1:${server.port}/`, resolve).on('error', reject),
  );
  assert.equal(response.statusCode, 426);
  response.resume();
  await once(response, 'end');
  await server.listener.close();
});

test('ws: write returns false above the high-water mark and drain follows once the peer reads', async () => {
  const highWaterMark = 64 * 1024;
  const server = await startListener({ highWaterMark });
  const client = await dial(server.url);
  let clientBytes = 0;
  client.on('message', (data: Buffer) => (clientBytes += data.length));
  client.pause();
  const { connection, handler } = await server.next();

  const chunk = Buffer.alloc(256 * 1024, 9);
  const total = 128;
  const results: boolean[] = [];
  for (let i = 0; i < total; i++) results.push(connection.write(chunk));
  // As over tcp: a frame into an empty queue is taken however large (one frame is not a congestion); every
  // later one finds the queue above the mark.
  assert.equal(results[0], true, 'the first frame, alone in the queue');
  assert.deepEqual(results.slice(1).filter((r) => r), [], 'every write behind it returns false');
  await delay(200);
  assert.equal(handler.drains, 0, 'no drain while the peer is not reading');
  assert.ok(connection.bufferedBytes > highWaterMark);

  client.resume();
  await waitFor(() => handler.drains > 0, 'drain', 10_000);
  assert.equal(handler.drains, 1);
  assert.ok(connection.bufferedBytes <= highWaterMark);
  await waitFor(() => clientBytes === total * chunk.length, 'all bytes at the client', 10_000);

  client.close();
  await handler.closed;
  await server.listener.close();
});

test('ws: pause stops delivery and resume restarts it', async () => {
  const server = await startListener({}, (connection) => connection.pause());
  const client = await dial(server.url);
  const { connection, handler } = await server.next();
  client.send(Buffer.from('one'));
  await delay(100);
  assert.equal(handler.chunks.length, 0, 'held while paused');
  connection.resume();
  await waitFor(() => handler.chunks.length === 1, 'delivery after resume');
  connection.pause();
  client.send(Buffer.from('two'));
  await delay(100);
  assert.equal(handler.chunks.length, 1);
  connection.resume();
  await waitFor(() => handler.chunks.length === 2, 'second delivery');
  assert.deepEqual(handler.chunks.map(String), ['one', 'two']);
  client.close();
  await handler.closed;
  await server.listener.close();
});

test('ws: close codes and exactly-once connectionOnClose', async (t) => {
  const server = await startListener();
  t.after(() => server.listener.close());

  await t.test('peer_closed on a close frame from the client', async () => {
    const client = await dial(server.url);
    const { connection, handler } = await server.next();
    client.close(1000, 'done');
    assert.deepEqual(await handler.closed, { code: 'peer_closed', detail: '1000 done' });
    connection.end('late');
    connection.destroy('later');
    assert.equal(connection.write(frame(20)), true);
    await nextTicks();
    assert.equal(handler.closes.length, 1);
  });

  await t.test('local on end(), with code 1000 and the reason in the close frame', async () => {
    const client = await dial(server.url);
    const received = collect(client);
    const { connection, handler } = await server.next();
    connection.write(frame(30, 'last'));
    connection.end('shutting down');
    const [code, reason] = (await once(client, 'close')) as [number, Buffer];
    assert.equal(code, 1000);
    assert.equal(reason.toString(), 'shutting down');
    assert.deepEqual(received, [frame(30, 'last')], 'queued frames are flushed before the close frame');
    assert.deepEqual(await handler.closed, { code: 'local', detail: 'shutting down' });
    await nextTicks();
    assert.equal(handler.closes.length, 1);
  });

  await t.test('local on destroy(); the peer sees an abnormal close', async () => {
    const client = await dial(server.url);
    const { connection, handler } = await server.next();
    connection.destroy('kicked');
    const [code] = (await once(client, 'close')) as [number];
    assert.equal(code, 1006);
    assert.deepEqual(await handler.closed, { code: 'local', detail: 'kicked' });
  });

  await t.test('reset when the client drops the connection', async () => {
    const client = await dial(server.url);
    const { handler } = await server.next();
    client.terminate();
    assert.equal((await handler.closed).code, 'reset');
    await nextTicks();
    assert.equal(handler.closes.length, 1);
  });

  await t.test('a long reason is cut to 123 bytes on a character boundary', async () => {
    const long = 'é'.repeat(100); // 200 bytes
    const cut = truncateCloseReason(long);
    assert.ok(Buffer.byteLength(cut) <= 123);
    assert.equal(cut, 'é'.repeat(61));
    const client = await dial(server.url);
    const { connection, handler } = await server.next();
    connection.end(long);
    const [code, reason] = (await once(client, 'close')) as [number, Buffer];
    assert.equal(code, 1000);
    assert.equal(reason.toString(), cut);
    assert.equal((await handler.closed).code, 'local');
  });
});

test('ws: listener close stops accepting but leaves open connections alone', async () => {
  const server = await startListener();
  const client = await dial(server.url);
  const received = collect(client);
  const { connection, handler } = await server.next();
  await server.listener.close();
  await assert.rejects(dial(server.url), { code: 'ECONNREFUSED' });
  connection.write(frame(21));
  await waitFor(() => received.length === 1, 'a message after listener close');
  client.close();
  assert.equal((await handler.closed).code, 'peer_closed');
});

test('wss: TLS round trip, with the client side wrapped in WsConnection', async () => {
  const { key, cert } = selfSignedCert();
  const server = await startListener({ tls: { key, cert } });
  assert.equal(server.listener.transport, 'wss');
  const raw = await dial(`wss://localhost:${server.port}/`, 'Socket.D', { ca: cert });
  assert.equal(raw.protocol, 'Socket.D');
  const client = new WsConnection(raw, { transport: 'wss', remoteAddress: '127.0.0.1', remotePort: server.port });
  const clientHandler = new RecordingHandler();
  client.start(clientHandler);
  const { connection, handler } = await server.next();
  assert.equal(connection.transport, 'wss');

  client.write(frame(10, 'connect'), Buffer.from('?x=1'));
  await waitFor(() => handler.chunks.length === 1, 'server message');
  assert.deepEqual(handler.chunks[0], Buffer.concat([frame(10, 'connect'), Buffer.from('?x=1')]));
  connection.write(frame(11, 'connack'));
  await waitFor(() => clientHandler.chunks.length === 1, 'client message');
  assert.deepEqual(clientHandler.chunks[0], frame(11, 'connack'));

  client.end('bye');
  assert.deepEqual(await clientHandler.closed, { code: 'local', detail: 'bye' });
  assert.equal((await handler.closed).code, 'peer_closed');
  await server.listener.close();
});

test('ws: writeRange, writeRanges and writeParts send exactly the bytes of their ranges, in order, server and client side', async () => {
  const server = await startListener();
  const raw = await dial(server.url, 'Socket.D');
  // The client side masks: the same calls through a client WsConnection.
  const client = new WsConnection(raw, { transport: 'ws', remoteAddress: '127.0.0.1', remotePort: server.port });
  const clientHandler = new RecordingHandler();
  client.start(clientHandler);
  const { connection, handler } = await server.next();
  const source = Buffer.concat([frame(40, 'a'.repeat(20)), frame(40, 'b'.repeat(300)), frame(41, 'c'.repeat(70 * 1024))]);
  const first = frame(40, 'a'.repeat(20)).length;
  const second = frame(40, 'b'.repeat(300)).length;
  const head = Buffer.concat([Buffer.alloc(5, 0xee), frame(48, 'new-head')]);
  const expected = [
    source.subarray(0, first),
    source.subarray(first, first + second),
    source.subarray(first + second),
    Buffer.concat([head.subarray(5), source.subarray(9, first)]),
    Buffer.concat([head.subarray(5), source.subarray(first + second + 9)]),
    source,
  ];
  for (const [side, receiver] of [[connection, clientHandler], [client, handler]] as const) {
    side.writeRange!(source, 0, first);
    side.writeRange!(source, first, first + second);
    // A large whole frame (written uncopied on the server side).
    side.writeRange!(source, first + second, source.length);
    side.writeRanges!(head, 5, head.length, source, 9, first);
    side.writeRanges!(head, 5, head.length, source, first + second + 9, source.length);
    side.writeParts!([source.subarray(0, 1000), source.subarray(1000, 40_000), source.subarray(40_000)], source.length);
    await waitFor(() => receiver.chunks.length === expected.length, 'six messages');
    assert.deepEqual(receiver.chunks.map((c) => c.length), expected.map((e) => e.length));
    receiver.chunks.forEach((chunk, i) => assert.ok(chunk.equals(expected[i]!), `message ${i}`));
  }
  client.end('bye');
  await handler.closed;
  await server.listener.close();
});
