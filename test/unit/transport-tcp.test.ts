import test from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { TcpConnection, TcpListener, type Connection, type TcpListenerOptions } from '../../src/transport/index.js';
import { RecordingHandler, delay, frame, nextTicks, selfSignedCert, waitFor } from '../support/transport-helpers.js';

interface Accepted {
  connection: Connection;
  handler: RecordingHandler;
}

/** A listener on 127.0.0.1:0 whose acceptor starts each connection with a RecordingHandler. */
async function startListener(options: Partial<TcpListenerOptions> = {}, beforeStart?: (connection: Connection) => void) {
  const accepted: Accepted[] = [];
  const listener = new TcpListener({ host: '127.0.0.1', port: 0, ...options }, (connection) => {
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
  return { listener, port: address.port, host: address.host, next };
}

async function dial(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  return socket;
}

/** Collects everything a raw socket reads. */
function collect(socket: net.Socket): { bytes: () => Buffer; chunks: Buffer[] } {
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  return { bytes: () => Buffer.concat(chunks), chunks };
}

/** A TcpConnection around a dialed socket, started, and the RecordingHandler of the server's side. */
async function dialedPair() {
  const server = await startListener();
  const raw = await dial(server.port);
  const client = new TcpConnection(raw, { transport: 'tcp' });
  client.start(new RecordingHandler());
  const { handler } = await server.next();
  return { server, client, handler };
}

test('tcp: bytes round-trip between an accepted connection and a raw client', async () => {
  const server = await startListener();
  assert.equal(server.listener.transport, 'tcp');
  assert.equal(server.host, '127.0.0.1');
  assert.ok(server.port > 0);
  const client = await dial(server.port);
  const received = collect(client);
  const { connection, handler } = await server.next();
  assert.equal(connection.transport, 'tcp');
  assert.equal(connection.framing, 'stream');
  assert.equal(connection.remoteAddress, '127.0.0.1');
  assert.equal(connection.remotePort, client.localPort);
  assert.equal(connection.maxOutboundFrame, Infinity);

  const ping = frame(20);
  client.write(ping);
  await waitFor(() => handler.bytes.length === ping.length, 'inbound bytes');
  assert.deepEqual(handler.bytes, ping);

  const head = frame(40, 'head-');
  const body = Buffer.from('and the body');
  assert.equal(connection.write(head, body), true);
  await waitFor(() => received.bytes().length === head.length + body.length, 'outbound bytes');
  assert.deepEqual(received.bytes(), Buffer.concat([head, body]));

  client.end();
  assert.equal((await handler.closed).code, 'peer_closed');
  await server.listener.close();
});

test('tcp: frames written in one tick are coalesced into one socket write, in order', async () => {
  const server = await startListener();
  const raw = await dial(server.port);
  // The adapter also wraps dialed sockets (client side): spy on the socket it writes to.
  const client = new TcpConnection(raw, { transport: 'tcp' });
  let socketWrites = 0;
  const originalWrite = raw.write.bind(raw) as (chunk: Buffer) => boolean;
  (raw as unknown as { write: (chunk: Buffer) => boolean }).write = (chunk: Buffer) => {
    socketWrites++;
    return originalWrite(chunk);
  };
  const clientHandler = new RecordingHandler();
  client.start(clientHandler);
  const { handler } = await server.next();

  const frames: Buffer[] = [];
  for (let i = 0; i < 100; i++) frames.push(frame(40, `message number ${i}`));
  for (const f of frames) client.write(f);
  assert.equal(socketWrites, 0, 'nothing is written before the tick ends');
  assert.ok(client.bufferedBytes >= frames.reduce((n, f) => n + f.length, 0));
  const expected = Buffer.concat(frames);
  await waitFor(() => handler.bytes.length === expected.length, 'coalesced frames');
  assert.equal(socketWrites, 1, 'small frames of one tick go out in one write');
  assert.deepEqual(handler.bytes, expected);

  // Above the coalescing limit the frames are written one by one under cork, still in order.
  socketWrites = 0;
  const big: Buffer[] = [];
  for (let i = 0; i < 5; i++) big.push(frame(40, Buffer.alloc(40 * 1024, i)));
  for (const f of big) client.write(f.subarray(0, 8), f.subarray(8));
  const before = handler.bytes.length;
  const bigBytes = Buffer.concat(big);
  await waitFor(() => handler.bytes.length === before + bigBytes.length, 'large frames');
  assert.equal(socketWrites, 10);
  assert.deepEqual(handler.bytes.subarray(before), bigBytes);

  client.destroy('test done');
  assert.deepEqual(await clientHandler.closed, { code: 'local', detail: 'test done' });
  assert.equal((await handler.closed).code, 'peer_closed');
  await server.listener.close();
});

test('tcp: adjacent ranges of one chunk are merged and written without a copy; other writes keep their order', async () => {
  const server = await startListener();
  const raw = await dial(server.port);
  const client = new TcpConnection(raw, { transport: 'tcp' });
  const written: Buffer[] = [];
  const originalWrite = raw.write.bind(raw) as (chunk: Buffer) => boolean;
  (raw as unknown as { write: (chunk: Buffer) => boolean }).write = (chunk: Buffer) => {
    written.push(chunk);
    return originalWrite(chunk);
  };
  client.start(new RecordingHandler());
  const { handler } = await server.next();

  // A "received chunk" of 200 frames of 100 B (20,000 B), forwarded frame by frame, as the router does.
  const frames: Buffer[] = [];
  for (let i = 0; i < 200; i++) frames.push(frame(40, Buffer.alloc(100 - 8 - 6, 65 + (i % 26))));
  const chunk = Buffer.concat(frames);
  let at = 0;
  for (const f of frames) {
    assert.equal(client.writeRange(chunk, at, at + f.length), true);
    at += f.length;
  }
  assert.equal(client.bufferedBytes, chunk.length);
  await waitFor(() => handler.bytes.length === chunk.length, 'the forwarded run');
  assert.equal(written.length, 1, 'one write for the whole run');
  assert.equal(written[0]!.buffer, chunk.buffer, 'the write is a view of the chunk, not a copy');
  assert.deepEqual(handler.bytes, chunk);

  // Ranges that are not adjacent, or of another source, are separate entries; writes in between keep
  // their place. Small entries are gathered into one copy.
  written.length = 0;
  const other = Buffer.concat([frame(40, 'x'), frame(40, 'y')]);
  const own = frame(40, 'made by the broker');
  const first = frames[0]!.length;
  client.writeRange(chunk, 0, first); // frame 0
  client.writeRange(chunk, 2 * first, 3 * first); // frame 2: not adjacent to frame 0
  client.write(own);
  client.writeRange(chunk, 3 * first, 4 * first); // frame 3: adjacent to frame 2, but a write came between
  client.writeRange(other, 0, other.length);
  const expected = Buffer.concat([frames[0]!, frames[2]!, own, frames[3]!, other]);
  const before = handler.bytes.length;
  await waitFor(() => handler.bytes.length === before + expected.length, 'the mixed writes');
  assert.deepEqual(handler.bytes.subarray(before), expected);
  assert.equal(written.length, 1, 'small entries go out in one gathered write');

  client.destroy('test done');
  await handler.closed;
  await server.listener.close();
});

test('tcp: frames written as two ranges (a head from a slab, the body from a read chunk) arrive whole and in order', async () => {
  const { server, client, handler } = await dialedPair();
  // Bodies of several sizes: below and above the bytewise-copy limit (48 B), and large enough (64 KiB) for
  // the cork-and-write path. Heads are written one after another into one slab, as the broker's HeadSlab does.
  const slab = Buffer.alloc(64 * 1024);
  let used = 0;
  const expected: Buffer[] = [];
  const sizes = [10, 40, 47, 48, 49, 200, 70_000];
  const received = Buffer.concat([Buffer.from('prefix'), ...sizes.map((n) => Buffer.alloc(n, 97 + (n % 26)))]);
  let bodyAt = 6;
  let queued = 0;
  for (const n of sizes) {
    const sid = `s${n}`;
    const head = Buffer.concat([Buffer.alloc(8), Buffer.from(sid), Buffer.from([0, 0x0a])]);
    head.writeInt32BE(head.length + n, 0);
    head.writeInt32BE(49, 4);
    head.copy(slab, used);
    assert.equal(client.writeRanges(slab, used, used + head.length, received, bodyAt, bodyAt + n), true);
    queued += head.length + n;
    expected.push(head, received.subarray(bodyAt, bodyAt + n));
    used += head.length;
    bodyAt += n;
  }
  assert.equal(client.bufferedBytes, queued);
  const all = Buffer.concat(expected);
  await waitFor(() => handler.bytes.length === all.length, 'the re-headed frames');
  assert.deepEqual(handler.bytes, all);
  client.destroy('test done');
  await handler.closed;
  await server.listener.close();
});

test('tcp: tick after tick, long and short, the reused pending arrays keep every byte in order', async () => {
  const { server, client, handler } = await dialedPair();
  const expected: Buffer[] = [];
  // 2,000 entries (more than the kept array's 1,024), then a few, then many again: the long array is dropped,
  // the short ones swap back and forth.
  for (const [tick, entries] of [2000, 3, 1, 700, 2, 1500, 5].entries()) {
    for (let i = 0; i < entries; i++) {
      const f = frame(40, `tick ${tick} entry ${i}`);
      if (i % 3 === 0) client.write(f);
      else if (i % 3 === 1) client.write(f.subarray(0, 8), f.subarray(8));
      else client.writeRange(Buffer.concat([Buffer.from('xx'), f]), 2, 2 + f.length);
      expected.push(f);
    }
    await delay(1);
  }
  const all = Buffer.concat(expected);
  await waitFor(() => handler.bytes.length === all.length, 'every tick', 10_000);
  assert.deepEqual(handler.bytes, all);
  client.destroy('test done');
  await handler.closed;
  await server.listener.close();
});

test('tcp: write returns false above the high-water mark and drain follows once the peer reads', async () => {
  const highWaterMark = 64 * 1024;
  const server = await startListener({ highWaterMark });
  const client = await dial(server.port);
  client.pause();
  let clientBytes = 0;
  client.on('data', (chunk: Buffer) => (clientBytes += chunk.length));
  const { connection, handler } = await server.next();

  const chunk = Buffer.alloc(256 * 1024, 7);
  const total = 128; // 32 MiB: far more than loopback socket buffers hold while the client does not read
  const results: boolean[] = [];
  for (let i = 0; i < total; i++) results.push(connection.write(chunk));
  // A frame into an empty queue is taken however large (one frame is not a congestion); every later one
  // finds the queue above the mark.
  assert.equal(results[0], true, 'the first frame, alone in the queue');
  assert.deepEqual(results.slice(1).filter((r) => r), [], 'every write behind it returns false');
  await delay(200);
  assert.equal(handler.drains, 0, 'no drain while the peer is not reading');
  assert.ok(connection.bufferedBytes > highWaterMark);

  client.resume();
  await waitFor(() => handler.drains > 0, 'drain', 10_000);
  assert.equal(handler.drains, 1, 'drain is reported once');
  assert.ok(connection.bufferedBytes <= highWaterMark);
  await waitFor(() => clientBytes === total * chunk.length, 'all bytes at the client', 10_000);
  assert.equal(connection.write(chunk.subarray(0, 10)), true, 'below the mark again');

  client.destroy();
  await handler.closed;
  await server.listener.close();
});

test('tcp: with a mark below the socket\'s own, drain follows the flush', async () => {
  const server = await startListener({ highWaterMark: 1024 });
  const client = await dial(server.port);
  const received = collect(client);
  const { connection, handler } = await server.next();
  assert.equal(connection.write(Buffer.alloc(2048, 1)), true, 'alone in the queue');
  assert.equal(connection.write(Buffer.alloc(2048, 2)), false, 'behind another frame, above the mark');
  await waitFor(() => handler.drains === 1, 'drain after the flush');
  assert.equal(connection.bufferedBytes, 0);
  await waitFor(() => received.bytes().length === 4096, 'bytes at the client');
  await nextTicks();
  assert.equal(handler.drains, 1);
  client.end();
  await handler.closed;
  await server.listener.close();
});

test('tcp: pause stops delivery and resume restarts it', async () => {
  const server = await startListener({}, (connection) => connection.pause());
  const client = await dial(server.port);
  const { connection, handler } = await server.next();

  client.write(Buffer.from('while paused'));
  await delay(100);
  assert.equal(handler.chunks.length, 0, 'nothing delivered while paused (even a pause before start holds)');
  connection.resume();
  await waitFor(() => handler.bytes.toString() === 'while paused', 'delivery after resume');

  connection.pause();
  connection.pause(); // idempotent
  client.write(Buffer.from(' again'));
  await delay(100);
  assert.equal(handler.bytes.toString(), 'while paused');
  connection.resume();
  await waitFor(() => handler.bytes.toString() === 'while paused again', 'second delivery');

  client.end();
  assert.equal((await handler.closed).code, 'peer_closed');
  await server.listener.close();
});

test('tcp: close codes and exactly-once connectionOnClose', async (t) => {
  const server = await startListener();
  t.after(() => server.listener.close());

  await t.test('peer_closed when the client ends', async () => {
    const client = await dial(server.port);
    const { connection, handler } = await server.next();
    client.end();
    const event = await handler.closed;
    assert.equal(event.code, 'peer_closed');
    assert.equal(connection.closed, true);
    connection.end('late');
    connection.destroy('later');
    assert.equal(connection.write(frame(20)), true, 'writes after close are ignored');
    await nextTicks();
    assert.equal(handler.closes.length, 1);
  });

  await t.test('local on end(), after flushing what was queued', async () => {
    const client = await dial(server.port);
    const received = collect(client);
    const { connection, handler } = await server.next();
    const last = frame(30, 'goodbye');
    connection.write(last);
    connection.end('shutting down');
    assert.equal(connection.write(frame(40)), true, 'writes after end are ignored');
    await once(client, 'end');
    assert.deepEqual(received.bytes(), last);
    assert.deepEqual(await handler.closed, { code: 'local', detail: 'shutting down' });
    client.destroy();
    await nextTicks();
    assert.equal(handler.closes.length, 1);
  });

  await t.test('local on destroy()', async () => {
    const client = await dial(server.port);
    const { connection, handler } = await server.next();
    connection.destroy('kicked');
    assert.deepEqual(await handler.closed, { code: 'local', detail: 'kicked' });
    await once(client, 'close');
    connection.destroy('again');
    await nextTicks();
    assert.equal(handler.closes.length, 1);
  });

  await t.test('reset when the client resets the connection', async () => {
    const client = await dial(server.port);
    const { handler } = await server.next();
    client.resetAndDestroy();
    const event = await handler.closed;
    assert.equal(event.code, 'reset');
    await nextTicks();
    assert.equal(handler.closes.length, 1);
  });
});

test('tcp: listener close stops accepting but leaves open connections alone', async () => {
  const server = await startListener();
  const client = await dial(server.port);
  const received = collect(client);
  const { connection, handler } = await server.next();
  await server.listener.close();

  await assert.rejects(dial(server.port), { code: 'ECONNREFUSED' });
  connection.write(frame(21));
  await waitFor(() => received.bytes().length === 8, 'write after listener close');
  assert.equal(connection.closed, false);
  client.end();
  assert.equal((await handler.closed).code, 'peer_closed');
  await server.listener.close(); // idempotent
});

test('tcp: listen rejects when the port is taken', async () => {
  const first = await startListener();
  const second = new TcpListener({ host: '127.0.0.1', port: first.port }, () => assert.fail('no connection expected'));
  await assert.rejects(second.listen(), { code: 'EADDRINUSE' });
  await second.close();
  await first.listener.close();
});

test('tcps: TLS round trip; a client failing the handshake is never accepted', async () => {
  const { key, cert } = selfSignedCert();
  const server = await startListener({ tls: { key, cert } });
  const plain = await dial(server.port);
  plain.write(Buffer.from('not a TLS client hello\r\n\r\n'));
  plain.on('error', () => {});
  await once(plain, 'close');
  await nextTicks();
  assert.equal(server.listener.transport, 'tcps');
  const raw = tls.connect({ host: '127.0.0.1', port: server.port, ca: cert, servername: 'localhost' });
  await once(raw, 'secureConnect');
  // The client side wraps its TLS socket in the same adapter.
  const client = new TcpConnection(raw, { transport: 'tcps' });
  const clientHandler = new RecordingHandler();
  client.start(clientHandler);
  const { connection, handler } = await server.next();
  assert.equal(connection.transport, 'tcps');
  assert.equal(connection.remotePort, raw.localPort, 'the plain client was not handed over');

  client.write(frame(10, 'connect'), Buffer.from('!'));
  await waitFor(() => handler.bytes.length === 16, 'bytes at the server');
  assert.deepEqual(handler.bytes, Buffer.concat([frame(10, 'connect'), Buffer.from('!')]));
  connection.write(frame(11, 'connack'));
  await waitFor(() => clientHandler.bytes.length === 15, 'bytes at the client');
  assert.deepEqual(clientHandler.bytes, frame(11, 'connack'));

  client.end('bye');
  assert.deepEqual(await clientHandler.closed, { code: 'local', detail: 'bye' });
  assert.equal((await handler.closed).code, 'peer_closed');
  await server.listener.close();
});
