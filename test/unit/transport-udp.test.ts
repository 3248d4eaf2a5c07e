import test from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { Flag, encodeFrame } from '../../src/protocol/index.js';
import { UdpListener, dialUdp, type Connection, type UdpListenerOptions } from '../../src/transport/index.js';
import { RecordingHandler, delay, frame, nextTicks, waitFor } from '../support/transport-helpers.js';

interface Accepted {
  connection: Connection;
  handler: RecordingHandler;
}

/** A well-formed Connect (the only datagram that opens a session), its URL in the event. */
function connectFrame(url = ''): Buffer {
  return encodeFrame({ flag: Flag.Connect, sid: 'c', event: url });
}

/**
 * A listener whose acceptor starts a RecordingHandler on each connection. With `validate` (the default) the
 * acceptor also plays the owner that accepted the peer's Connect, lifting the anti-amplification allowance.
 */
async function startListener(options: Partial<UdpListenerOptions> = {}, validate = true) {
  const accepted: Accepted[] = [];
  const listener = new UdpListener({ host: '127.0.0.1', port: 0, ...options }, (connection) => {
    const handler = new RecordingHandler();
    connection.start(handler);
    if (validate) connection.peerValidated?.();
    accepted.push({ connection, handler });
  });
  const address = await listener.listen();
  return { listener, port: address.port, accepted };
}

/** A raw dgram peer that records the datagrams it receives. */
async function peer(): Promise<{ socket: dgram.Socket; received: Buffer[]; port: number }> {
  const socket = dgram.createSocket('udp4');
  const received: Buffer[] = [];
  socket.on('message', (datagram: Buffer) => received.push(datagram));
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  return { socket, received, port: socket.address().port };
}

function send(socket: dgram.Socket, port: number, datagram: Buffer): Promise<void> {
  return new Promise((resolve, reject) => socket.send(datagram, port, '127.0.0.1', (error) => (error ? reject(error) : resolve())));
}

test('udp: datagrams round-trip, one frame per datagram', async () => {
  const server = await startListener();
  const client = await peer();
  const connect = connectFrame('tcp://x');
  await send(client.socket, server.port, connect);
  await waitFor(() => server.accepted[0]?.handler.chunks.length === 1, 'first datagram');
  const { connection, handler } = server.accepted[0]!;
  assert.equal(connection.transport, 'udp');
  assert.equal(connection.framing, 'message');
  assert.equal(connection.maxOutboundFrame, 2048);
  assert.equal(connection.remoteAddress, '127.0.0.1');
  assert.equal(connection.remotePort, client.port);
  assert.deepEqual(handler.chunks[0], connect);

  const head = frame(Flag.Connack, 'head|');
  const body = Buffer.from('body');
  assert.equal(connection.write(head, body), true);
  await waitFor(() => client.received.length === 1, 'reply datagram');
  assert.deepEqual(client.received[0], Buffer.concat([head, body]));

  // Frames written in one tick arrive as separate datagrams, in order.
  const frames: Buffer[] = [];
  for (let i = 0; i < 20; i++) frames.push(frame(Flag.Message, `m${i}`));
  for (const f of frames) connection.write(f);
  await waitFor(() => client.received.length === 21, 'twenty datagrams');
  assert.deepEqual(client.received.slice(1), frames);

  client.socket.close();
  await server.listener.close();
});

test('udp: two peers get two connections; a new Connect from the same peer replaces its connection', async () => {
  const server = await startListener();
  const a = await peer();
  const b = await peer();
  await send(a.socket, server.port, connectFrame('a'));
  await send(b.socket, server.port, connectFrame('b'));
  await waitFor(() => server.accepted.length === 2, 'two connections');
  assert.equal(server.listener.connectionCount, 2);
  const first = server.accepted.find((x) => x.connection.remotePort === a.port)!;
  assert.ok(first);

  // Non-Connect datagrams from a known peer go to its connection.
  await send(a.socket, server.port, frame(Flag.Ping));
  await waitFor(() => first.handler.chunks.length === 2, 'ping on the same connection');
  assert.equal(server.accepted.length, 2);

  await send(a.socket, server.port, connectFrame('a again'));
  await waitFor(() => server.accepted.length === 3, 'replacement connection');
  assert.deepEqual(await first.handler.closed, { code: 'replaced', detail: 'new Connect from the same address' });
  assert.equal(first.connection.closed, true);
  const replacement = server.accepted[2]!;
  assert.equal(replacement.connection.remotePort, a.port);
  await waitFor(() => replacement.handler.chunks.length === 1, 'Connect delivered to the new connection');
  assert.deepEqual(replacement.handler.chunks[0], connectFrame('a again'));
  assert.equal(first.handler.chunks.length, 2, 'the old connection got nothing more');
  assert.equal(server.listener.connectionCount, 2);
  await nextTicks();
  assert.equal(first.handler.closes.length, 1);

  a.socket.close();
  b.socket.close();
  await server.listener.close();
});

test('udp: a write larger than the datagram limit is refused, not sent', async () => {
  const server = await startListener({ maxDatagram: 512 });
  const client = await peer();
  await send(client.socket, server.port, connectFrame());
  await waitFor(() => server.accepted.length === 1, 'connection');
  const { connection } = server.accepted[0]!;
  assert.equal(connection.maxOutboundFrame, 512);

  assert.equal(connection.write(frame(Flag.Message), Buffer.alloc(600)), true);
  assert.equal((connection as unknown as { oversizeWrites: number }).oversizeWrites, 1);
  const exact = frame(Flag.Message, Buffer.alloc(512 - 8, 1));
  connection.write(exact);
  await waitFor(() => client.received.length === 1, 'the exact-size datagram');
  await delay(50);
  assert.equal(client.received.length, 1, 'the oversize frame never went out');
  assert.deepEqual(client.received[0], exact);

  client.socket.close();
  await server.listener.close();
});

test('udp: datagrams arriving while paused are dropped and counted', async () => {
  const server = await startListener();
  const client = await peer();
  await send(client.socket, server.port, connectFrame());
  await waitFor(() => server.accepted.length === 1, 'connection');
  const { connection, handler } = server.accepted[0]!;
  await waitFor(() => handler.chunks.length === 1, 'connect');

  connection.pause();
  await send(client.socket, server.port, frame(Flag.Message, 'lost'));
  await waitFor(() => server.listener.droppedWhilePaused === 1, 'a dropped datagram');
  assert.equal(handler.chunks.length, 1);

  connection.resume();
  await send(client.socket, server.port, frame(Flag.Message, 'kept'));
  await waitFor(() => handler.chunks.length === 2, 'delivery after resume');
  assert.deepEqual(handler.chunks[1], frame(Flag.Message, 'kept'));

  client.socket.close();
  await server.listener.close();
});

test('udp: end and destroy close locally once and release the session', async () => {
  const server = await startListener();
  const client = await peer();
  await send(client.socket, server.port, connectFrame());
  await waitFor(() => server.accepted.length === 1, 'connection');
  const { connection, handler } = server.accepted[0]!;

  connection.end('idle');
  assert.equal(server.listener.connectionCount, 0);
  assert.equal(connection.closed, true);
  assert.equal(handler.closes.length, 0, 'close is reported on a later tick, not from inside end()');
  assert.deepEqual(await handler.closed, { code: 'local', detail: 'idle' });
  connection.destroy('again');
  assert.equal(connection.write(frame(Flag.Ping)), true);
  await nextTicks();
  assert.equal(handler.closes.length, 1);

  // A Ping from that peer now has no session: dropped, unanswered; its next Connect starts a new session.
  await send(client.socket, server.port, frame(Flag.Ping));
  await waitFor(() => server.listener.droppedWithoutSession === 1, 'the stray Ping dropped');
  assert.equal(server.accepted.length, 1);
  await send(client.socket, server.port, connectFrame());
  await waitFor(() => server.accepted.length === 2, 'new session');
  assert.equal(server.listener.connectionCount, 1);
  const second = server.accepted[1]!;
  second.connection.destroy('kicked');
  assert.deepEqual(await second.handler.closed, { code: 'local', detail: 'kicked' });
  assert.equal(server.listener.connectionCount, 0);

  client.socket.close();
  await server.listener.close();
});

test('udp: listener close ends every remaining connection with listener_closed', async () => {
  const server = await startListener();
  const a = await peer();
  const b = await peer();
  await send(a.socket, server.port, connectFrame());
  await send(b.socket, server.port, connectFrame());
  await waitFor(() => server.accepted.length === 2, 'two connections');

  await server.listener.close();
  assert.equal(server.listener.connectionCount, 0);
  for (const { connection, handler } of server.accepted) {
    assert.equal((await handler.closed).code, 'listener_closed');
    assert.equal(connection.write(frame(Flag.Ping)), true, 'writes after close are ignored');
  }
  await nextTicks();
  for (const { handler } of server.accepted) assert.equal(handler.closes.length, 1);
  await server.listener.close(); // idempotent
  a.socket.close();
  b.socket.close();
});

test('udp: dialUdp gives a client-side connection to a listener', async () => {
  const server = await startListener();
  const client = await dialUdp('127.0.0.1', server.port);
  assert.equal(client.remotePort, server.port);
  assert.equal(client.framing, 'message');
  const clientHandler = new RecordingHandler();
  client.start(clientHandler);

  const hello = connectFrame('hello!');
  client.write(hello.subarray(0, hello.length - 1), hello.subarray(hello.length - 1));
  await waitFor(() => server.accepted[0]?.handler.chunks.length === 1, 'server datagram');
  const { connection, handler } = server.accepted[0]!;
  assert.deepEqual(handler.chunks[0], hello);
  connection.write(frame(Flag.Connack));
  await waitFor(() => clientHandler.chunks.length === 1, 'client datagram');
  assert.deepEqual(clientHandler.chunks[0], frame(Flag.Connack));
  assert.equal(client.write(Buffer.alloc(4096)), true);
  assert.equal(client.oversizeWrites, 1);

  client.end('bye');
  assert.deepEqual(await clientHandler.closed, { code: 'local', detail: 'bye' });
  await server.listener.close();
  assert.equal((await handler.closed).code, 'listener_closed');
});

test('udp: listen rejects when the port is taken, and close still succeeds', async () => {
  const first = await startListener();
  const second = new UdpListener({ host: '127.0.0.1', port: first.port }, () => assert.fail('no connection expected'));
  await assert.rejects(second.listen(), { code: 'EADDRINUSE' });
  await second.close();
  await first.listener.close();
});

test('the reporter hears of datagrams dropped while paused and of socket errors (nothing fails silently)', async () => {
  const drops: string[] = [];
  const errors: string[] = [];
  const accepted: Connection[] = [];
  const listener = new UdpListener({
    host: '127.0.0.1', port: 0,
    reporter: { listenerOnDrop: (_t, reason) => void drops.push(reason), listenerOnError: (_t, e) => void errors.push(e.message) },
  }, (c) => {
    accepted.push(c);
    c.start({ connectionOnData: () => undefined, connectionOnDrain: () => undefined, connectionOnInvalid: () => undefined, connectionOnClose: () => undefined });
    c.pause();
  });
  const { port } = await listener.listen();
  const client = dgram.createSocket('udp4');
  try {
    // The Connect opens the (paused) connection; the datagrams after it are dropped while it is paused.
    client.send(connectFrame(), port, '127.0.0.1');
    for (let i = 0; i < 3; i++) client.send(Buffer.from('hello'), port, '127.0.0.1');
    const until = Date.now() + 3000;
    while (drops.length < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    assert.ok(drops.length >= 2, `drops reported: ${drops.length}`);
    assert.ok(drops.every((r) => r === 'udp_paused'));
    assert.equal(listener.droppedWhilePaused, drops.length);
    assert.equal(accepted.length, 1);
    assert.deepEqual(errors, []);
  } finally {
    client.close();
    await listener.close();
  }
});

test('udp: datagrams of every kind from an address without a session open nothing, get no reply and are reported as strays', async () => {
  const strays: string[] = [];
  const server = await startListener({
    reporter: {
      listenerOnDrop: () => assert.fail('no drop expected'),
      listenerOnError: (_t, e) => assert.fail(e.message),
      listenerOnStray: (transport, reason, remote) => void strays.push(`${transport} ${reason} ${remote}`),
    },
  });
  const client = await peer();
  try {
    const kinds = [
      frame(Flag.Ping),
      Buffer.from('garbage'),
      Buffer.alloc(0),
      frame(Flag.Message, 'm'),
      encodeFrame({ flag: Flag.Reply, sid: 'x', event: 'e', data: 'r' }),
      encodeFrame({ flag: Flag.Close, meta: 'code=1000' }),
      // Connects that are not well-formed: no separators, a length prefix that lies, a datagram too large.
      frame(Flag.Connect, 'tcp://x'),
      Buffer.concat([connectFrame('x'), Buffer.from('!')]),
      encodeFrame({ flag: Flag.Connect, sid: 'c', event: 'x'.repeat(3000) }),
    ];
    for (const datagram of kinds) await send(client.socket, server.port, datagram);
    await waitFor(() => server.listener.droppedWithoutSession === kinds.length, 'every stray dropped');
    await delay(50);
    assert.equal(server.accepted.length, 0, 'no connection opened');
    assert.equal(server.listener.connectionCount, 0);
    assert.deepEqual(client.received, [], 'nothing sent back');
    assert.equal(strays.length, kinds.length);
    assert.ok(strays.every((s) => s === `udp udp_no_session 127.0.0.1:${client.port}`), strays.join(', '));
  } finally {
    client.socket.close();
    await server.listener.close();
  }
});

test('udp: before the owner validates the peer, a connection sends at most 3x the bytes it received', async () => {
  const drops: string[] = [];
  const server = await startListener({
    reporter: { listenerOnDrop: (_t, reason) => void drops.push(reason), listenerOnError: (_t, e) => assert.fail(e.message) },
  }, false);
  const client = await peer();
  try {
    const connect = connectFrame('udp://h');
    await send(client.socket, server.port, connect);
    await waitFor(() => server.accepted.length === 1, 'connection');
    const { connection } = server.accepted[0]!;
    assert.equal(connection.sendAllowance, 3 * connect.length);

    const tooLarge = frame(Flag.Close, Buffer.alloc(3 * connect.length - 7));
    assert.equal(tooLarge.length, 3 * connect.length + 1);
    connection.write(tooLarge);
    assert.deepEqual(drops, ['amplification_limit']);
    assert.equal(server.listener.amplificationRefusals, 1);
    const fits = frame(Flag.Close, Buffer.alloc(2 * connect.length - 8));
    connection.write(fits);
    assert.equal(connection.sendAllowance, connect.length);
    // Bytes received count too: a second datagram of the peer raises the allowance by three times its size.
    const ping = frame(Flag.Ping);
    await send(client.socket, server.port, ping);
    await waitFor(() => server.accepted[0]!.handler.chunks.length === 2, 'the Ping delivered');
    assert.equal(connection.sendAllowance, connect.length + 3 * ping.length);
    await waitFor(() => client.received.length === 1, 'the frame that fits');
    await delay(50);
    assert.deepEqual(client.received, [fits], 'the frame over the allowance never went out');

    connection.peerValidated?.();
    assert.equal(connection.sendAllowance, Infinity);
    connection.write(tooLarge);
    await waitFor(() => client.received.length === 2, 'any size once validated');
    assert.equal(server.listener.amplificationRefusals, 1);
  } finally {
    client.socket.close();
    await server.listener.close();
  }
});

test('udp: amplificationFactor 1 allows one byte out per byte in', async () => {
  const server = await startListener({ amplificationFactor: 1 }, false);
  const client = await peer();
  try {
    const connect = connectFrame('udp://h');
    await send(client.socket, server.port, connect);
    await waitFor(() => server.accepted.length === 1, 'connection');
    assert.equal(server.accepted[0]!.connection.sendAllowance, connect.length);
  } finally {
    client.socket.close();
    await server.listener.close();
  }
});
