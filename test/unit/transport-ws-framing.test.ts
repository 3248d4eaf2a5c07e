/**
 * WsConnection's own WebSocket framing: outbound frames built (and masked on the client side) by the adapter,
 * inbound binary frames cut by it, everything else left to ws's Receiver. The peers here write raw bytes, so
 * headers, masks, 16/64-bit lengths and reads that split frames anywhere are exercised directly.
 */
import test, { type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type net from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import type { Connection } from '../../src/transport/index.js';
import { WsConnection, maskCopy, unmaskInPlace, writeWsHeader, wsHeaderLength } from '../../src/transport/ws.js';
import { WsListener } from '../../src/transport/ws-listener.js';
import { RecordingHandler, delay, frame, waitFor } from '../support/transport-helpers.js';
import { prng } from '../support/fixtures.js';

/** A WebSocket frame built independently of the adapter (RFC 6455 §5.2). */
function wsFrame(opcode: number, payload: Buffer, options: { fin?: boolean; key?: Buffer | null } = {}): Buffer {
  const fin = options.fin ?? true;
  const key = options.key ?? null;
  const length = payload.length;
  const lengthBytes = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const header = Buffer.alloc(2 + lengthBytes + (key === null ? 0 : 4));
  header[0] = (fin ? 0x80 : 0) | opcode;
  header[1] = (key === null ? 0 : 0x80) | (length < 126 ? length : length < 65536 ? 126 : 127);
  if (lengthBytes === 2) header.writeUInt16BE(length, 2);
  if (lengthBytes === 8) header.writeBigUInt64BE(BigInt(length), 2);
  if (key === null) return Buffer.concat([header, payload]);
  key.copy(header, 2 + lengthBytes);
  const masked = Buffer.alloc(length);
  for (let i = 0; i < length; i++) masked[i] = payload[i]! ^ key[i & 3]!;
  return Buffer.concat([header, masked]);
}

function pattern(length: number, seed: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) out[i] = (i * 131 + seed * 7 + (i >> 8)) & 0xff;
  return out;
}

/** Cuts `bytes` into pieces of 1..maxPiece bytes. */
function pieces(bytes: Buffer, random: () => number, maxPiece: number): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < bytes.length; ) {
    const n = Math.min(bytes.length - at, 1 + Math.floor(random() * maxPiece));
    out.push(bytes.subarray(at, at + n));
    at += n;
  }
  return out;
}

async function writeInPieces(socket: net.Socket, chunks: Buffer[]): Promise<void> {
  for (const chunk of chunks) {
    socket.write(chunk);
    // Let the server read most pieces separately.
    await new Promise((resolve) => setImmediate(resolve));
  }
}

function rawSocket(ws: WebSocket): net.Socket {
  return (ws as unknown as { _socket: net.Socket })._socket;
}

/** A WsListener and a raw ws client connected to it; both are torn down when the test ends, passed or not. */
/** A plain ws server on port 0 and a raw ws client connected to it (the client-side tests wrap `raw`). */
async function clientPair(t: TestContext, serverOptions: { maxPayload?: number } = {}) {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, ...serverOptions });
  await once(server, 'listening');
  t.after(() => {
    for (const peer of server.clients) peer.terminate();
    server.close();
  });
  const port = (server.address() as net.AddressInfo).port;
  const serverSide = once(server, 'connection') as Promise<[WebSocket]>;
  const raw = new WebSocket(`ws://127.0.0.1:${port}/`);
  await once(raw, 'open');
  const [peer] = await serverSide;
  return { port, raw, peer };
}

/** Records large messages delivered as parts too, in one sequence with the whole ones. */
class PartsRecordingHandler extends RecordingHandler {
  /** Per message in arrival order: how many parts it came in (1 for connectionOnData). */
  readonly partCounts: number[] = [];

  override connectionOnData(data: Buffer): void {
    this.partCounts.push(1);
    super.connectionOnData(data);
  }

  connectionOnParts(parts: readonly Buffer[], size: number): void {
    assert.equal(parts.reduce((n, p) => n + p.length, 0), size, 'the parts add up to the size');
    this.partCounts.push(parts.length);
    super.connectionOnData(Buffer.concat(parts));
  }
}

async function serverPair(t: TestContext, maxPayload = 1024 * 1024, makeHandler: () => RecordingHandler = () => new RecordingHandler()) {
  const accepted: { connection: Connection; handler: RecordingHandler }[] = [];
  const listener = new WsListener({ host: '127.0.0.1', port: 0, maxPayload }, (connection) => {
    const handler = makeHandler();
    connection.start(handler);
    accepted.push({ connection, handler });
  });
  const { port } = await listener.listen();
  const client = new WebSocket(`ws://127.0.0.1:${port}/`, 'Socket.D');
  t.after(async () => {
    client.terminate();
    for (const { connection } of accepted) connection.destroy('test over');
    await listener.close();
  });
  await once(client, 'open');
  await waitFor(() => accepted.length === 1, 'the accepted connection');
  return { listener, client, ...accepted[0]! };
}

test('ws framing: headers for 7-bit, 16-bit and 64-bit lengths, as RFC 6455 lays them out', () => {
  for (const length of [0, 1, 125, 126, 127, 65535, 65536, 70000]) {
    for (const masked of [false, true]) {
      const out = Buffer.alloc(14, 0xee);
      const end = writeWsHeader(out, 0, length, masked);
      assert.equal(end, wsHeaderLength(length, masked));
      const reference = wsFrame(2, Buffer.alloc(length), { key: masked ? Buffer.from([1, 2, 3, 4]) : null });
      const fixed = wsHeaderLength(length, masked) - (masked ? 4 : 0);
      assert.deepEqual(out.subarray(0, fixed), reference.subarray(0, fixed), `header of ${length} bytes, masked ${masked}`);
    }
  }
});

test('ws framing: fresh masking keys, and maskCopy / unmaskInPlace agree with the RFC for every length and phase', () => {
  const keys = new Set<string>();
  for (let i = 0; i < 64; i++) {
    const out = Buffer.alloc(6);
    writeWsHeader(out, 0, 1, true);
    keys.add(out.subarray(2, 6).toString('hex'));
  }
  assert.ok(keys.size > 60, 'a new key per frame');

  for (const length of [0, 1, 2, 3, 4, 5, 127, 255, 256, 257, 258, 259, 1000, 4099]) {
    for (const phase of [0, 1, 2, 3]) {
      for (const offset of [6, 7, 8, 9]) {
        const source = pattern(length, phase);
        const copy = Buffer.from(source);
        const out = Buffer.alloc(length + 16);
        out.set([0x9a, 0x01, 0xfe, 0x37], 0);
        maskCopy(source, out, offset, 0, phase);
        assert.deepEqual(source, copy, 'the source is not modified');
        for (let i = 0; i < length; i++) {
          if (out[offset + i] !== (source[i]! ^ out[(phase + i) & 3]!)) assert.fail(`byte ${i} of ${length}, phase ${phase}, offset ${offset}`);
        }
        if (phase === 0) {
          unmaskInPlace(out, offset, offset + length, 0);
          assert.deepEqual(out.subarray(offset, offset + length), source, `unmask ${length} at ${offset}`);
        }
      }
    }
  }
});

test('ws framing: the server cuts masked binary frames of every size from reads split anywhere', async (t) => {
  const { listener, client, handler } = await serverPair(t);
  const random = prng(7);
  const payloads = [1, 14, 125, 126, 200, 255, 256, 300, 4096, 65535, 65536, 100_000].map((n, i) => pattern(n, i));
  const wire = Buffer.concat(payloads.map((p, i) => wsFrame(2, p, { key: Buffer.from([i, 0x55, 0xaa, 0xff - i]) })));
  // Byte by byte for the first part (headers split everywhere), then pieces of up to 3 KiB.
  const split = [...pieces(wire.subarray(0, 600), random, 1), ...pieces(wire.subarray(600), random, 3000)];
  await writeInPieces(rawSocket(client), split);
  await waitFor(() => handler.chunks.length === payloads.length, 'every message', 10_000);
  assert.deepEqual(handler.chunks, payloads);

  // A zero masking key, and many frames in one read.
  const many = Array.from({ length: 500 }, (_, i) => pattern(20 + (i % 50), i));
  rawSocket(client).write(Buffer.concat(many.map((p) => wsFrame(2, p, { key: Buffer.alloc(4) }))));
  await waitFor(() => handler.chunks.length === payloads.length + many.length, 'the batch');
  assert.deepEqual(handler.chunks.slice(payloads.length), many);

  client.close(1000, 'bye');
  assert.deepEqual(await handler.closed, { code: 'peer_closed', detail: '1000 bye' });
  await listener.close();
});

test('ws framing: a large message over several reads goes to connectionOnParts unjoined and unmasked at every phase', async (t) => {
  const { listener, client, handler } = await serverPair(t, 1024 * 1024, () => new PartsRecordingHandler());
  const parts = handler as PartsRecordingHandler;
  const random = prng(11);
  // Large ones (64 KiB and more) between small ones; odd sizes so that the parts start at every key phase.
  const payloads = [70_001, 300, 65_536, 200_003, 1, 131_075].map((n, i) => pattern(n, i + 3));
  const wire = Buffer.concat(payloads.map((p, i) => wsFrame(2, p, { key: Buffer.from([0x11 * i, 0x5a, 0xa5, 0xff - i]) })));
  await writeInPieces(rawSocket(client), pieces(wire, random, 7000));
  await waitFor(() => handler.chunks.length === payloads.length, 'every message', 10_000);
  assert.deepEqual(handler.chunks, payloads);
  const counts = parts.partCounts;
  for (const i of [0, 2, 3, 5]) assert.ok(counts[i]! > 1, `message ${i} (${payloads[i]!.length} B) came in parts: ${counts.join(',')}`);
  assert.equal(counts[1], 1);
  assert.equal(counts[4], 1);

  // A large message written at once (one or more reads): the same bytes either way.
  const whole = pattern(80_000, 99);
  await writeInPieces(rawSocket(client), [wsFrame(2, whole, { key: Buffer.from([1, 2, 3, 4]) })]);
  await waitFor(() => handler.chunks.length === payloads.length + 1, 'the whole one', 10_000);
  assert.deepEqual(handler.chunks.at(-1), whole);

  client.close(1000, 'bye');
  assert.deepEqual(await handler.closed, { code: 'peer_closed', detail: '1000 bye' });
  await listener.close();
});

test('ws framing: ping, fragments and text between binary frames keep their order and their ws handling', async (t) => {
  const { listener, client, handler } = await serverPair(t);
  const pongs: Buffer[] = [];
  client.on('pong', (data: Buffer) => pongs.push(data));
  const key = Buffer.from([3, 1, 4, 1]);
  const wire = Buffer.concat([
    wsFrame(2, Buffer.from('one'), { key }),
    wsFrame(9, Buffer.from('are you there'), { key }),
    wsFrame(2, Buffer.from('two'), { key }),
    wsFrame(2, Buffer.from('frag-a|'), { key, fin: false }),
    wsFrame(9, Buffer.from('mid-fragment ping'), { key }),
    wsFrame(0, Buffer.from('frag-b|'), { key, fin: false }),
    wsFrame(0, Buffer.from('frag-c'), { key }),
    wsFrame(2, Buffer.from('three'), { key }),
    wsFrame(1, Buffer.from('some text'), { key }),
    wsFrame(2, Buffer.from('four'), { key }),
  ]);
  // Once in one read, once in small pieces.
  rawSocket(client).write(wire);
  await waitFor(() => handler.chunks.length === 5 && handler.invalid.length === 1, 'first round');
  await writeInPieces(rawSocket(client), pieces(wire, prng(3), 5));
  await waitFor(() => handler.chunks.length === 10 && handler.invalid.length === 2, 'second round');
  const expected = ['one', 'two', 'frag-a|frag-b|frag-c', 'three', 'four'];
  assert.deepEqual(handler.chunks.map(String), [...expected, ...expected]);
  assert.equal(handler.invalid[0]!.code, 'ws_text_message');
  await waitFor(() => pongs.length === 4, 'pongs');
  assert.deepEqual(pongs.map(String), ['are you there', 'mid-fragment ping', 'are you there', 'mid-fragment ping']);

  client.close();
  await handler.closed;
  await listener.close();
});

test('ws framing: data and a close frame in one read: the data is delivered, then the close', async (t) => {
  const { listener, client, connection, handler } = await serverPair(t);
  const received: Buffer[] = [];
  client.on('message', (data: Buffer) => received.push(data));
  const key = Buffer.from([9, 9, 9, 9]);
  const close = Buffer.concat([Buffer.from([0x03, 0xe8]), Buffer.from('done')]);
  // The frames wait in the paused connection; on resume they are read before the frame written just before
  // resume() is flushed (poll before setImmediate). That frame must still go out before ws's answering close.
  connection.pause();
  rawSocket(client).write(Buffer.concat([wsFrame(2, Buffer.from('a'), { key }), wsFrame(2, Buffer.from('b'), { key }), wsFrame(8, close, { key })]));
  await delay(50);
  connection.write(frame(40, 'before the close'));
  connection.resume();
  assert.deepEqual(await handler.closed, { code: 'peer_closed', detail: '1000 done' });
  assert.deepEqual(handler.chunks.map(String), ['a', 'b']);
  assert.deepEqual(received, [frame(40, 'before the close')]);
  await listener.close();
});

test('ws framing: an oversize message closes with 1009 and an unmasked one with 1002, as ws does', async (t) => {
  for (const [bad, status] of [
    [wsFrame(2, Buffer.alloc(2000), { key: Buffer.from([1, 2, 3, 4]) }), 1009],
    [wsFrame(2, Buffer.from('not masked')), 1002],
  ] as const) {
    const { listener, client, handler } = await serverPair(t, 1024);
    rawSocket(client).write(Buffer.concat([wsFrame(2, Buffer.from('fine'), { key: Buffer.from([5, 6, 7, 8]) }), bad.subarray(0, 20)]));
    const [code] = (await once(client, 'close')) as [number];
    assert.equal(code, status);
    assert.equal((await handler.closed).code, 'error');
    assert.deepEqual(handler.chunks.map(String), ['fine']);
    await listener.close();
  }
});

test('ws framing: the client side masks what it writes and cuts unmasked frames from the server', async (t) => {
  const { port, raw, peer } = await clientPair(t, { maxPayload: 1 << 20 });
  const atServer: Buffer[] = [];
  peer.on('message', (data: Buffer) => atServer.push(data));
  const client = new WsConnection(raw, { transport: 'ws', remoteAddress: '127.0.0.1', remotePort: port });
  const handler = new RecordingHandler();
  client.start(handler);

  // Outbound: head lengths that are not multiples of 4 shift the key phase of the body; sizes cross every
  // length form and the word-wise masking threshold.
  const sent: Buffer[] = [];
  for (const [headLength, bodyLength] of [[8, 0], [9, 1], [10, 120], [11, 300], [13, 70_000], [8, 65_527]] as const) {
    const head = pattern(headLength, headLength);
    const body = pattern(bodyLength, bodyLength + 1);
    client.write(head, bodyLength === 0 ? undefined : body);
    sent.push(Buffer.concat([head, bodyLength === 0 ? Buffer.alloc(0) : body]));
  }
  await waitFor(() => atServer.length === sent.length, 'messages at the server');
  assert.deepEqual(atServer, sent);

  // Inbound: unmasked frames from the server, split anywhere.
  const payloads = [3, 125, 126, 1000, 70_000].map((n, i) => pattern(n, 40 + i));
  const serverSocket = rawSocket(peer);
  await writeInPieces(serverSocket, pieces(Buffer.concat(payloads.map((p) => wsFrame(2, p))), prng(11), 700));
  await waitFor(() => handler.chunks.length === payloads.length, 'messages at the client', 10_000);
  assert.deepEqual(handler.chunks, payloads);

  // A masked frame from a server is a protocol error (RFC 6455 §5.1): ws closes with 1002.
  serverSocket.write(wsFrame(2, Buffer.from('masked'), { key: Buffer.from([1, 1, 1, 1]) }));
  assert.equal((await handler.closed).code, 'error');
  assert.equal(handler.chunks.length, payloads.length);
});

test('ws framing: frames still buffered in a paused socket when it closes are delivered once', async (t) => {
  const { client, connection, handler } = await serverPair(t);
  connection.pause();
  const key = Buffer.from([7, 0, 7, 0]);
  rawSocket(client).write(Buffer.concat([wsFrame(2, Buffer.from('x'), { key }), wsFrame(2, Buffer.from('y'), { key })]));
  // Node reads into the paused socket's buffer up to its high-water mark; then the peer resets.
  await delay(50);
  rawSocket(client).resetAndDestroy();
  assert.equal((await handler.closed).code, 'reset');
  assert.deepEqual(handler.chunks.map(String), ['x', 'y']);
});

test('ws framing: where ws keeps reading by itself (its listener not found), frames still precede its close frame', async (t) => {
  const { port, raw, peer } = await clientPair(t);
  const atServer: string[] = [];
  peer.on('message', (data: Buffer) => atServer.push(data.toString()));
  const peerClosed = once(peer, 'close');

  // Hide ws's 'data' listener behind a wrapper: the adapter cannot find it and leaves reading to ws.
  const socket = rawSocket(raw);
  const wsOnData = socket.listeners('data')[0] as (chunk: Buffer) => void;
  socket.removeListener('data', wsOnData);
  socket.on('data', function wrapped(this: net.Socket, chunk: Buffer) {
    wsOnData.call(this, chunk);
  });
  const client = new WsConnection(raw, { transport: 'ws', remoteAddress: '127.0.0.1', remotePort: port });
  assert.equal((client as unknown as { receiver: unknown }).receiver, null, 'ws reads by itself');
  const handler = new RecordingHandler();
  client.start(handler);

  client.write(Buffer.from('first'));
  await waitFor(() => atServer.length === 1, 'a first message');
  // As in the server-side test: the close frame waits in the paused socket and is read before the tick ends.
  client.pause();
  peer.close(1000, 'bye');
  await delay(50);
  client.write(Buffer.from('before the close'));
  client.resume();
  assert.deepEqual(await handler.closed, { code: 'peer_closed', detail: '1000 bye' });
  await peerClosed;
  assert.deepEqual(atServer, ['first', 'before the close']);
});
