/**
 * The client's outbound encoding: SidSource (sids as bytes and back) and FrameWriter (frames encoded into a
 * slab, batched per tick over stream transports). Every frame is compared byte for byte with the codec's
 * encodeFrame, the reference encoding.
 */
import test, { describe } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_FRAME_LIMITS, Flag, FrameDecoder, encodeBare, encodeFrame, type Frame, type FrameError } from '../../src/protocol/index.js';
import type { Connection, ConnectionHandler, Framing } from '../../src/transport/connection.js';
import { FrameWriter, answerHeadEnd } from '../../src/client/frame-writer.js';
import { SidSource } from '../../src/client/sids.js';
import { SocketdError } from '../../src/client/errors.js';

const PREFIX = '0123456789abcdef';

/** Records every write; `buffered` stands for the bytes a real transport would still hold. */
class RecordingConnection implements Connection {
  readonly transport = 'memory' as const;
  readonly remoteAddress = 'test';
  readonly remotePort = 0;
  readonly closed = false;
  writes: { head: Buffer; body: Buffer | undefined }[] = [];
  buffered = 0;
  full = false;
  ended = '';
  constructor(
    readonly framing: Framing,
    readonly maxOutboundFrame = Infinity,
  ) {}
  get bufferedBytes(): number {
    return this.buffered;
  }
  start(_handler: ConnectionHandler): void {}
  write(head: Buffer, body?: Buffer): boolean {
    this.writes.push({ head, body });
    return !this.full;
  }
  pause(): void {}
  resume(): void {}
  end(reason: string): void {
    this.ended = reason;
  }
  destroy(): void {}
  /** Everything written, in order, as one buffer. */
  bytes(): Buffer {
    return Buffer.concat(this.writes.flatMap((w) => (w.body === undefined ? [w.head] : [w.head, w.body])));
  }
}

function decodeAll(bytes: Buffer): Frame[] {
  const frames: Frame[] = [];
  const errors: FrameError[] = [];
  new FrameDecoder(DEFAULT_FRAME_LIMITS).push(bytes, { onFrame: (f) => void frames.push(f), onFrameError: (e) => void errors.push(e) });
  assert.deepEqual(errors, []);
  return frames;
}

const nextTick = (): Promise<void> => new Promise((resolve) => process.nextTick(resolve));

describe('client: SidSource', () => {
  test('sids are the prefix and a 16-hex counter; take() writes them, parse() reads them back', () => {
    const sids = new SidSource(PREFIX);
    const buf = Buffer.alloc(40);
    for (let n = 0; n < 300; n++) {
      assert.equal(sids.take(buf, 4), n);
      const text = buf.toString('latin1', 4, 36);
      assert.equal(text, PREFIX + n.toString(16).padStart(16, '0'));
      assert.equal(sids.text(n), text);
      assert.equal(sids.parse(buf, 4, 36), n);
    }
  });

  test('the counter carries across digits, 32 bits and up to 2^53', () => {
    for (const first of [0xf, 0xff, 0xfff_ffff, 0xffff_ffff, 0x1_0000_0000, 0xabc_def0_1234, Number.MAX_SAFE_INTEGER - 3]) {
      const sids = new SidSource(PREFIX, first);
      const buf = Buffer.alloc(32);
      for (let n = first; n < first + 3; n++) {
        assert.equal(sids.take(buf, 0), n);
        assert.equal(buf.toString('latin1'), PREFIX + n.toString(16).padStart(16, '0'), `sid ${n}`);
        assert.equal(sids.parse(buf, 0, 32), n);
      }
    }
  });

  test('takeText() and advance() consume a number like take()', () => {
    const sids = new SidSource(PREFIX);
    assert.equal(sids.takeText(), `${PREFIX}${'0'.repeat(16)}`);
    assert.equal(sids.advance(), 1);
    const buf = Buffer.alloc(32);
    assert.equal(sids.take(buf, 0), 2);
    assert.equal(buf.toString('latin1'), sids.text(2));
  });

  test('parse() refuses anything that is not exactly one of its sids', () => {
    const sids = new SidSource(PREFIX);
    const ok = Buffer.from(sids.text(26));
    assert.equal(sids.parse(ok, 0, 32), 26);
    const cases: [string, Buffer][] = [
      ['another prefix', Buffer.from(`f123456789abcdef${'0'.repeat(14)}1a`)],
      ['upper-case hex', Buffer.from(`${PREFIX}${'0'.repeat(14)}1A`)],
      ['a non-hex byte', Buffer.from(`${PREFIX}${'0'.repeat(14)}1g`)],
      ['a zero byte', Buffer.from(`${PREFIX}${'0'.repeat(14)}1\u0000`)],
      ['31 bytes', Buffer.from(`${PREFIX}${'0'.repeat(13)}1a`)],
      ['33 bytes', Buffer.from(`${PREFIX}${'0'.repeat(15)}1a`)],
    ];
    for (const [what, bytes] of cases) assert.equal(sids.parse(bytes, 0, bytes.length), -1, what);
    assert.throws(() => new SidSource('0123'));
    assert.throws(() => new SidSource('0123456789ABCDEF'));
    assert.notEqual(new SidSource().text(0), new SidSource().text(0), 'random prefixes');
  });
});

describe('client: FrameWriter', () => {
  const texts = [
    '',
    'bench.s1',
    'orders.created',
    'x'.repeat(64),
    'y'.repeat(65),
    'événement.ü',
    '事件.ok',
    'emoji.😀',
    'lone.\ud800.surrogate',
    'k=v&a=b',
    `${'long.'.repeat(30)}é`,
  ];

  for (const framing of ['stream', 'message'] as const) {
    test(`${framing}: frames are byte-identical to encodeFrame, whatever the event, meta and data`, async () => {
      const connection = new RecordingConnection(framing);
      const sids = new SidSource(PREFIX);
      const writer = new FrameWriter(connection, sids, Infinity);
      const expected: Buffer[] = [];
      const datas = [Buffer.alloc(0), Buffer.from('data'), Buffer.alloc(16 * 1024, 1), Buffer.alloc(16 * 1024 + 1, 2), Buffer.alloc(100_000, 3)];
      for (const event of texts) {
        for (const meta of texts) {
          for (const data of datas) {
            const flag = data.length % 2 === 0 ? Flag.Message : Flag.Request;
            const n = writer.frame(flag, event, meta, data);
            expected.push(encodeFrame({ flag, sid: sids.text(n), event, meta, data }));
          }
        }
      }
      await nextTick();
      assert.deepEqual(connection.bytes(), Buffer.concat(expected));
      if (framing === 'message') {
        // One write per frame: a message transport must get whole frames.
        assert.equal(connection.writes.length, expected.length);
        connection.writes.forEach((w, i) => assert.equal(w.head.length + (w.body?.length ?? 0), expected[i]!.length, `frame ${i}`));
      }
    });
  }

  test('stream: one tick of small frames is one write; large data is passed through, never copied', async () => {
    const connection = new RecordingConnection('stream');
    const writer = new FrameWriter(connection, new SidSource(PREFIX), Infinity);
    for (let i = 0; i < 10; i++) writer.frame(Flag.Message, 'a.b', '', Buffer.from(`m${i}`));
    assert.equal(connection.writes.length, 0, 'nothing is handed over before the tick ends');
    assert.equal(writer.bufferedBytes, 10 * encodeFrame({ flag: Flag.Message, sid: PREFIX + '0'.repeat(16), event: 'a.b', data: 'm0' }).length);
    await nextTick();
    assert.equal(connection.writes.length, 1);
    assert.equal(decodeAll(connection.bytes()).length, 10);

    const big = Buffer.alloc(16 * 1024 + 1, 7);
    writer.frame(Flag.Message, 'small', '', Buffer.from('s'));
    writer.frame(Flag.Message, 'big', '', big);
    assert.equal(connection.writes.length, 2, 'the batch goes out with the big frame\'s head');
    assert.equal(connection.writes[1]!.body, big, 'the data buffer itself');
    const frames = decodeAll(connection.bytes());
    assert.deepEqual(frames.map((f) => f.event), [...Array(10).fill('a.b'), 'small', 'big']);
  });

  test('stream: a full slab is handed over at once; frames keep their order across slabs and raw frames', async () => {
    const connection = new RecordingConnection('stream');
    const writer = new FrameWriter(connection, new SidSource(PREFIX), Infinity);
    const data = Buffer.alloc(1000, 9);
    const ping = encodeFrame({ flag: Flag.Ping });
    let snapshot: Buffer[] = [];
    for (let i = 0; i < 300; i++) {
      writer.frame(Flag.Message, `ev.${i}`, '', data);
      if (i % 50 === 0) writer.raw(ping);
      if (i === 150) snapshot = connection.writes.map((w) => Buffer.from(w.head));
    }
    assert.ok(snapshot.length >= 2 && connection.writes.length >= 4, `slabs handed over when full (${connection.writes.length})`);
    await nextTick();
    for (const w of connection.writes) assert.ok(w.head.length <= 64 * 1024);
    const frames = decodeAll(connection.bytes());
    assert.equal(frames.length, 306);
    assert.deepEqual(frames.filter((f) => f.flag === Flag.Message).map((f) => f.event), Array.from({ length: 300 }, (_, i) => `ev.${i}`));
    assert.equal(frames[1]!.flag, Flag.Ping);
    // Handed-over bytes are never written again.
    snapshot.forEach((bytes, i) => assert.deepEqual(connection.writes[i]!.head, bytes, `write ${i}`));
  });

  test('too_large and congested throw and queue nothing; full marks the writer until the link clears it', async () => {
    const udp = new RecordingConnection('message', 100);
    const writer = new FrameWriter(udp, new SidSource(PREFIX), Infinity);
    assert.throws(() => writer.frame(Flag.Message, 'e', '', Buffer.alloc(100)), (e: SocketdError) => e.code === 'too_large' && /limit \(100\)/.test(e.message));
    assert.equal(udp.writes.length, 0);
    writer.frame(Flag.Message, 'e', '', Buffer.alloc(40));
    assert.equal(udp.writes.length, 1);

    const tcp = new RecordingConnection('stream');
    const limited = new FrameWriter(tcp, new SidSource(PREFIX), 1000);
    limited.frame(Flag.Message, 'e', '', Buffer.alloc(400));
    limited.frame(Flag.Message, 'e', '', Buffer.alloc(400));
    assert.throws(() => limited.frame(Flag.Message, 'e', '', Buffer.alloc(400)), (e: SocketdError) => e.code === 'congested' && /holds 894 unsent/.test(e.message));
    tcp.buffered = 500;
    assert.throws(() => limited.frame(Flag.Message, 'e', '', Buffer.alloc(10)), (e: SocketdError) => e.code === 'congested');
    await nextTick();
    assert.equal(decodeAll(tcp.bytes()).length, 2);

    tcp.full = true;
    tcp.buffered = 0;
    limited.frame(Flag.Message, 'e', '', Buffer.alloc(1));
    assert.equal(limited.full, false, 'known at the hand-over');
    await nextTick();
    assert.equal(limited.full, true);
  });

  test('answers repeat the sid and event bytes as received, even when they are not valid UTF-8', async () => {
    const connection = new RecordingConnection('stream');
    const writer = new FrameWriter(connection, new SidSource(PREFIX), Infinity);
    const sid = Buffer.from([0x62, 0xff, 0x00, 0x00, 0x0a]); // 'b', an invalid byte, then 00 00 0A: the sid ends at the second zero
    const request = Buffer.concat([
      encodeFrame({ flag: Flag.Request, sid: 'x', event: 'placeholder', meta: 'timeout=5', data: 'q' }).subarray(0, 8),
      sid,
      Buffer.from('ev\u00ff', 'latin1'),
      Buffer.from([0x00, 0x0a]),
      Buffer.from('timeout=5'),
      Buffer.from([0x00, 0x0a]),
      Buffer.from('q'),
    ]);
    request.writeInt32BE(request.length, 0);
    const [decoded] = decodeAll(request);
    const headEnd = answerHeadEnd(decoded!.raw);
    assert.equal(headEnd, 8 + sid.length + 3 + 2);
    writer.answer(Flag.ReplyEnd, decoded!.raw, headEnd, decoded!.event, 'k=v', Buffer.from('answer'));
    writer.answer(Flag.Alarm, decoded!.raw, headEnd, decoded!.event, 'code=5000', Buffer.from('failed'));
    await nextTick();
    const [reply, alarm] = decodeAll(connection.bytes());
    assert.equal(reply!.flag, Flag.ReplyEnd);
    assert.deepEqual(reply!.raw.subarray(8, headEnd), request.subarray(8, headEnd));
    assert.equal(reply!.metaString, 'k=v');
    assert.equal(reply!.data.toString(), 'answer');
    assert.equal(alarm!.flag, Flag.Alarm);
    assert.equal(alarm!.meta('code'), '5000');
    assert.equal(alarm!.sid, decoded!.sid);

    assert.equal(answerHeadEnd(encodeBare(Flag.Ping)), -1, 'a bare frame has no separators');
  });

  test('end() hands the batch over before ending the connection', () => {
    const connection = new RecordingConnection('stream');
    const writer = new FrameWriter(connection, new SidSource(PREFIX), Infinity);
    writer.frame(Flag.Message, 'last', '', Buffer.from('words'));
    writer.raw(encodeFrame({ flag: Flag.Close, meta: 'code=1001' }));
    writer.end('bye');
    assert.equal(connection.ended, 'bye');
    assert.deepEqual(decodeAll(connection.bytes()).map((f) => f.flag), [Flag.Message, Flag.Close]);
  });
});
