/**
 * The tcp adapter's detection of the Python client's length-prefixed framing (src/transport/tcp-framing.ts,
 * docs/clients.md "Python"): the decision on every chunking of the first bytes, the inbound reader and the
 * outbound writer on every split, and TcpConnection over real sockets with detection on.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import {
  LengthPrefixReader,
  LengthPrefixSocket,
  TcpFramingDetector,
  TcpListener,
  detectTcpFraming,
  type Connection,
  type TcpFraming,
  type TcpSocketSink,
} from '../../src/transport/index.js';
import { Flag, encodeFrame } from '../../src/protocol/index.js';
import { RecordingHandler, delay, waitFor } from '../support/transport-helpers.js';
import { prng, randomChunks } from '../support/fixtures.js';

const URL = 'tcp://127.0.0.1:8602/?@=py';
const CONNECT = encodeFrame({ flag: Flag.Connect, sid: 'a'.repeat(32), event: URL, meta: 'Socket.D=1.0', data: URL });

function prefixed(frame: Buffer): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(frame.length, 0);
  return Buffer.concat([p, frame]);
}

/** Every way to cut `buf` into consecutive non-empty chunks (2^(n-1) of them). */
function* everyChunking(buf: Buffer): Generator<Buffer[]> {
  const n = buf.length;
  for (let mask = 0; mask < 1 << (n - 1); mask++) {
    const chunks: Buffer[] = [];
    let start = 0;
    for (let i = 1; i < n; i++) {
      if (mask & (1 << (i - 1))) {
        chunks.push(buf.subarray(start, i));
        start = i;
      }
    }
    chunks.push(buf.subarray(start));
    yield chunks;
  }
}

/** Feeds chunks to a detector; returns the framing and after how many bytes it was decided. */
function detectChunks(chunks: Buffer[]): { framing: TcpFraming | null; at: number; kept: Buffer[] } {
  const detector = new TcpFramingDetector();
  let at = 0;
  for (const chunk of chunks) {
    at += chunk.length;
    const framing = detector.push(chunk);
    if (framing !== null) return { framing, at, kept: detector.chunks };
  }
  return { framing: null, at, kept: detector.chunks };
}

test('detectTcpFraming: standard at byte 8, prefixed at byte 12, look-alikes standard', () => {
  const py = prefixed(CONNECT);
  for (let n = 0; n < 8; n++) assert.equal(detectTcpFraming(CONNECT.subarray(0, n)), null, `standard, ${n} bytes`);
  assert.equal(detectTcpFraming(CONNECT.subarray(0, 8)), 'standard');
  for (let n = 0; n < 12; n++) assert.equal(detectTcpFraming(py.subarray(0, n)), null, `prefixed, ${n} bytes`);
  assert.equal(detectTcpFraming(py.subarray(0, 12)), 'length_prefixed');
  assert.equal(detectTcpFraming(py), 'length_prefixed');
  // A repeated length whose inner frame is no Connect: left to the standard decoder.
  const ping = prefixed(encodeFrame({ flag: Flag.Message, sid: 's', event: 'e', meta: '', data: 'x'.repeat(100) }));
  assert.equal(detectTcpFraming(ping), 'standard');
  // A repeated 10 is a standard Connect header (and no valid frame in either framing).
  const tens = Buffer.from([0, 0, 0, 10, 0, 0, 0, 10, 0, 0, 0, 10]);
  assert.equal(detectTcpFraming(tens), 'standard');
  // Anything else at bytes 4-7 is standard, whatever follows.
  assert.equal(detectTcpFraming(Buffer.from([0, 0, 0, 20, 0, 0, 0, 21])), 'standard');
});

test('TcpFramingDetector: every chunking of the first 14 bytes decides at the same byte, chunks kept whole', () => {
  const cases: [string, Buffer, TcpFraming, number][] = [
    ['standard Connect', CONNECT.subarray(0, 14), 'standard', 8],
    ['prefixed Connect', prefixed(CONNECT).subarray(0, 14), 'length_prefixed', 12],
    ['look-alike', prefixed(encodeFrame({ flag: Flag.Message, sid: 's', event: 'e', meta: '', data: 'x'.repeat(100) })).subarray(0, 14), 'standard', 12],
  ];
  for (const [what, head, expected, decideAt] of cases) {
    let chunkings = 0;
    for (const chunks of everyChunking(head)) {
      chunkings++;
      const { framing, at, kept } = detectChunks(chunks);
      assert.equal(framing, expected, `${what}: ${chunks.map((c) => c.length).join('+')}`);
      // Decided by the chunk that brought byte `decideAt`, not later.
      const bytesBefore = at - chunks[kept.length - 1]!.length;
      assert.ok(bytesBefore < decideAt && at >= decideAt, `${what}: decided at ${at} (${chunks.map((c) => c.length).join('+')})`);
      assert.deepEqual(kept, chunks.slice(0, kept.length), 'the chunks themselves, in order');
    }
    assert.equal(chunkings, 1 << 13);
  }
});

/** A handler that records what the reader hands on, and what it reports invalid. */
function readAll(chunks: Buffer[]): RecordingHandler {
  const reader = new LengthPrefixReader();
  const handler = new RecordingHandler();
  for (const chunk of chunks) reader.push(chunk, handler);
  return handler;
}

const FRAMES = [
  CONNECT,
  encodeFrame({ flag: Flag.Message, sid: 'm1', event: 'hello', meta: '@=svc', data: 'hi' }),
  Buffer.from([0, 0, 0, 8, 0, 0, 0, Flag.Ping]),
  encodeFrame({ flag: Flag.Request, sid: 'r1', event: 'big', meta: '@=svc', data: Buffer.alloc(3000, 7) }),
];
const WIRE = Buffer.concat(FRAMES.map(prefixed));
const PLAIN = Buffer.concat(FRAMES);

test('LengthPrefixReader: strips every prefix on every chunking of the first 16 bytes and random chunkings', () => {
  for (const head of everyChunking(WIRE.subarray(0, 16))) {
    const handler = readAll([...head, WIRE.subarray(16)]);
    assert.deepEqual(handler.invalid, []);
    assert.ok(handler.bytes.equals(PLAIN));
  }
  const random = prng(16);
  for (let round = 0; round < 200; round++) {
    const handler = readAll(randomChunks(WIRE, random, 1 + (round % 40)));
    assert.deepEqual(handler.invalid, []);
    assert.ok(handler.bytes.equals(PLAIN), `round ${round}`);
  }
  // Byte by byte too.
  const bytewise = readAll([...WIRE].map((b) => Buffer.from([b])));
  assert.ok(bytewise.bytes.equals(PLAIN));
  // In one chunk, frames are handed on as views of it (no copy).
  const whole = readAll([WIRE]);
  assert.equal(whole.chunks.length, FRAMES.length);
  assert.ok(whole.chunks.every((c) => c.buffer === WIRE.buffer));
});

test('LengthPrefixReader: a prefix unlike the frame\'s own length stops reading; a length below 8 goes to the decoder', () => {
  const frame = FRAMES[1]!;
  const wrong = Buffer.concat([Buffer.from([0, 0, 0, frame.length + 1]), frame, prefixed(FRAMES[2]!)]);
  for (const chunks of [[wrong], [...wrong].map((b) => Buffer.from([b]))]) {
    const handler = readAll(chunks);
    assert.deepEqual(handler.invalid.map((i) => i.code), ['length_prefix_mismatch']);
    assert.equal(handler.bytes.length, 0, 'nothing of it handed on');
  }
  const tiny = Buffer.from([0, 0, 0, 4, 0, 0, 0, 4, 1, 2, 3, 4, 5]);
  for (const chunks of [[tiny], [...tiny].map((b) => Buffer.from([b]))]) {
    const handler = readAll(chunks);
    assert.deepEqual(handler.invalid, []);
    // Its length word alone, so the decoder refuses it (frame_length_invalid) as on a standard connection.
    assert.deepEqual(handler.bytes, Buffer.from([0, 0, 0, 4]));
  }
});

/** A socket stand-in that records the bytes and which of them went to the kernel in one (uncorked) batch. */
class FakeSocket implements TcpSocketSink {
  writableLength = 0;
  writableNeedDrain = false;
  destroyed = false;
  destroyError: Error | undefined;
  corked = 0;
  readonly batches: Buffer[][] = [];
  private batch: Buffer[] = [];
  callbacks = 0;

  write(chunk: Buffer, callback?: () => void): boolean {
    this.batch.push(chunk);
    if (callback !== undefined) this.callbacks++;
    if (this.corked === 0) this.release();
    return true;
  }

  cork(): void {
    this.corked++;
  }

  uncork(): void {
    if (--this.corked === 0) this.release();
  }

  private release(): void {
    if (this.batch.length > 0) this.batches.push(this.batch);
    this.batch = [];
  }

  get bytes(): Buffer {
    return Buffer.concat(this.batches.flat());
  }

  end(): void {}
  destroy(error?: Error): void {
    this.destroyed = true;
    this.destroyError = error;
  }
  pause(): void {}
  resume(): void {}
}

/** Checks that each prefixed frame lies within one batch (one writev / write call). */
function assertFramesWhole(sink: FakeSocket, frames: Buffer[]): void {
  const batches = sink.batches.map((b) => Buffer.concat(b));
  let batch = 0;
  let offset = 0;
  for (const frame of frames) {
    const wanted = prefixed(frame);
    while (batch < batches.length && offset === batches[batch]!.length) {
      batch++;
      offset = 0;
    }
    assert.ok(batch < batches.length, 'a batch for every frame');
    assert.ok(offset + wanted.length <= batches[batch]!.length, 'the prefixed frame lies within one batch');
    assert.ok(batches[batch]!.subarray(offset, offset + wanted.length).equals(wanted));
    offset += wanted.length;
  }
}

test('LengthPrefixSocket: [L][frame] for every frame, one batch per prefixed frame, on every split of the stream', () => {
  // Whole frames in one write (the adapter's single and gathered writes).
  const one = new FakeSocket();
  new LengthPrefixSocket(one).write(PLAIN, () => undefined);
  assert.ok(one.bytes.equals(WIRE));
  assertFramesWhole(one, FRAMES);
  assert.equal(one.callbacks, 1);
  // The adapter's corked path: writes that split frames anywhere, inside one cork.
  for (let cut = 1; cut < 40; cut++) {
    for (const second of [cut + 1, cut + 3, cut + 200]) {
      const sink = new FakeSocket();
      const socket = new LengthPrefixSocket(sink);
      socket.cork();
      socket.write(PLAIN.subarray(0, cut));
      socket.write(PLAIN.subarray(cut, second));
      socket.write(PLAIN.subarray(second), () => undefined);
      socket.uncork();
      assert.ok(sink.bytes.equals(WIRE), `cut at ${cut}, ${second}`);
      assertFramesWhole(sink, FRAMES);
    }
  }
  // Bytes that are no frame destroy the socket with the reason instead of losing the framing.
  const bad = new FakeSocket();
  assert.equal(new LengthPrefixSocket(bad).write(Buffer.from([0, 0, 0, 2, 9, 9])), false);
  assert.equal(bad.destroyed, true);
  assert.match(String(bad.destroyError), /frame length of 2/);
});

// ----- TcpConnection over real sockets, detection on ------------------------------------------------------

async function detectingListener() {
  const accepted: { connection: Connection; handler: RecordingHandler }[] = [];
  const framings: string[] = [];
  const listener = new TcpListener(
    { host: '127.0.0.1', port: 0, detectFraming: true, onFraming: (transport, framing) => framings.push(`${transport}|${framing}`) },
    (connection) => {
      const handler = new RecordingHandler();
      connection.start(handler);
      accepted.push({ connection, handler });
    },
  );
  const { port } = await listener.listen();
  const next = async () => {
    await waitFor(() => accepted.length > 0, 'an accepted connection');
    return accepted.shift()!;
  };
  return { listener, port, next, framings };
}

async function dial(port: number): Promise<{ socket: net.Socket; received: () => Buffer }> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.setNoDelay(true);
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  return { socket, received: () => Buffer.concat(chunks) };
}

/** Writes `bytes` one byte per write with a pause between, so the adapter reads them as separate chunks. */
async function dribble(socket: net.Socket, bytes: Buffer): Promise<void> {
  for (const b of bytes) {
    socket.write(Buffer.from([b]));
    await delay(2);
  }
}

test('TcpConnection with detection: a standard client, its first bytes one at a time, is untouched both ways', async () => {
  const server = await detectingListener();
  const client = await dial(server.port);
  try {
    const { connection, handler } = await server.next();
    await dribble(client.socket, CONNECT.subarray(0, 12));
    client.socket.write(CONNECT.subarray(12));
    await waitFor(() => handler.bytes.length === CONNECT.length, 'the Connect');
    assert.ok(handler.bytes.equals(CONNECT));
    assert.deepEqual(server.framings, ['tcp|standard']);
    const reply = FRAMES[1]!;
    connection.write(reply);
    connection.writeRange!(PLAIN, 0, CONNECT.length);
    await waitFor(() => client.received().length === reply.length + CONNECT.length, 'the frames back');
    assert.ok(client.received().equals(Buffer.concat([reply, CONNECT])), 'no prefix');
  } finally {
    client.socket.destroy();
    await server.listener.close();
  }
});

test('TcpConnection with detection: a prefixed client, first bytes one at a time; every write path answers prefixed', async () => {
  const server = await detectingListener();
  const client = await dial(server.port);
  try {
    const { connection, handler } = await server.next();
    const wire = WIRE;
    await dribble(client.socket, wire.subarray(0, 16));
    client.socket.write(wire.subarray(16));
    await waitFor(() => handler.bytes.length === PLAIN.length, 'the frames, stripped');
    assert.ok(handler.bytes.equals(PLAIN));
    assert.deepEqual(server.framings, ['tcp|length_prefixed']);

    const big = encodeFrame({ flag: Flag.Message, sid: 'b', event: 'big', meta: '', data: Buffer.alloc(200 * 1024, 3) });
    const head = FRAMES[1]!;
    connection.write(head);
    connection.write(big.subarray(0, 20), big.subarray(20));
    connection.writeRange!(PLAIN, 0, PLAIN.length); // four frames in one range
    connection.writeRanges!(head, 0, 10, head, 10, head.length);
    connection.writeParts!([big.subarray(0, 2), big.subarray(2, 70_000), big.subarray(70_000)], big.length);
    const expected = Buffer.concat([head, big, ...FRAMES, head, big].map(prefixed));
    await waitFor(() => client.received().length >= expected.length, 'everything back', 5000);
    assert.ok(client.received().equals(expected));
  } finally {
    client.socket.destroy();
    await server.listener.close();
  }
});

test('TcpConnection with detection: end() before the first bytes waits for them, so a refusal is read in the peer\'s framing', async () => {
  const server = await detectingListener();
  const close = encodeFrame({ flag: Flag.Close, sid: '', event: '', meta: 'code=2001&reason=too_many_connections', data: 'full' });
  // A prefixed client: the Close comes back prefixed, then the FIN.
  const py = await dial(server.port);
  const first = await server.next();
  first.connection.write(close);
  first.connection.end('too_many_connections');
  await delay(50);
  assert.equal(py.received().length, 0, 'nothing before the framing is known');
  py.socket.write(prefixed(CONNECT));
  await once(py.socket, 'end');
  assert.ok(py.received().equals(prefixed(close)));
  py.socket.destroy();
  // A silent client: after the wait, the Close goes out standard.
  const silent = await dial(server.port);
  const second = await server.next();
  second.connection.write(close);
  const started = Date.now();
  second.connection.end('too_many_connections');
  await once(silent.socket, 'end');
  assert.ok(Date.now() - started >= 900, 'waited for the first bytes');
  assert.ok(silent.received().equals(close));
  silent.socket.destroy();
  assert.deepEqual(server.framings, ['tcp|length_prefixed'], 'the silent one is counted as neither');
  await server.listener.close();
});

test('TcpConnection without detection: a prefixed Connect reaches the handler as it is', async () => {
  const listener = new TcpListener({ host: '127.0.0.1', port: 0 }, (connection) => {
    const handler = new RecordingHandler();
    connection.start(handler);
    handlers.push(handler);
  });
  const handlers: RecordingHandler[] = [];
  const { port } = await listener.listen();
  const client = await dial(port);
  try {
    client.socket.write(prefixed(CONNECT));
    await waitFor(() => handlers.length === 1 && handlers[0]!.bytes.length === CONNECT.length + 4, 'the bytes');
    assert.ok(handlers[0]!.bytes.equals(prefixed(CONNECT)));
  } finally {
    client.socket.destroy();
    await listener.close();
  }
});
