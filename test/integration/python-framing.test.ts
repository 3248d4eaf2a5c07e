/**
 * The Python reference client's tcp framing (docs/clients.md, "Python"), spoken byte for byte over real tcp
 * against the real broker on port 0: every frame with an extra 4-byte length in front, `[L][frame]`. The
 * frames are the codec's, the prefix is added and checked by RawClient.openPython, independently of the
 * broker's own reader and writer. Standard clients share the listener throughout.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { Flag, encodeFrame } from '../../src/protocol/index.js';
import type { RunningServer } from '../../src/server.js';
import { RawClient, sid } from '../support/raw-client.js';
import { eventually, ports, startTestBroker, type TestBrokerConfig } from '../support/broker.js';
import { closeAll, connect, metaOf } from '../support/integration.js';

const WAIT_MS = 10_000;

async function withBroker(fn: (server: RunningServer) => Promise<void>, overrides: TestBrokerConfig = {}): Promise<void> {
  const server = await startTestBroker(overrides);
  try {
    await fn(server);
  } finally {
    await server.close(500);
  }
}

/** A Python-framed client past its Connack (the Connect as that client sends it: URL in event and data). */
async function python(server: RunningServer, name?: string): Promise<RawClient> {
  const client = await RawClient.openPython(ports(server).tcp);
  await client.handshake(ports(server).tcp, name === undefined ? {} : { name });
  return client;
}

/** Every frame the client received had a prefix equal to its own length, and there were `atLeast` of them. */
function assertPrefixed(client: RawClient, atLeast: number): void {
  assert.deepEqual(client.prefixErrors, []);
  assert.ok(client.prefixedFrames >= atLeast, `${client.prefixedFrames} prefixed frames, expected at least ${atLeast}`);
}

function framingCount(server: RunningServer, framing: string): number {
  return server.broker.stats.connectionsByFraming.get(`tcp|${framing}`) ?? 0;
}

test('python framing: handshake, bytes on the wire: the Connack is prefixed with its own length', async () => {
  await withBroker(async (server) => {
    const socket = net.connect(ports(server).tcp, '127.0.0.1');
    await once(socket, 'connect');
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    try {
      const url = `tcp://127.0.0.1:${ports(server).tcp}/?@=py`;
      const connect = encodeFrame({ flag: Flag.Connect, sid: sid(), event: url, meta: 'Socket.D=1.0', data: url });
      const prefix = Buffer.alloc(4);
      prefix.writeUInt32BE(connect.length, 0);
      // As the Python client writes it: the prefix and the frame in two writes.
      socket.write(prefix);
      socket.write(connect);
      // The Connack is the Connect with flag 11 (docs/protocol.md 3.1), prefixed.
      const connack = Buffer.from(connect);
      connack.writeInt32BE(Flag.Connack, 4);
      const expected = Buffer.concat([prefix, connack]);
      await eventually(() => Buffer.concat(received).length >= expected.length, WAIT_MS, 'the Connack');
      assert.deepEqual(Buffer.concat(received), expected);
      assert.equal(framingCount(server, 'length_prefixed'), 1);
      assert.equal(framingCount(server, 'standard'), 0);
      assert.equal(server.broker.registry.nameCount, 1);
      const metrics = await (await fetch(`http://127.0.0.1:${ports(server).http}/metrics`)).text();
      assert.match(metrics, /^socketd_connections_by_framing_total\{transport="tcp",framing="length_prefixed"\} 1$/m);
    } finally {
      socket.destroy();
    }
  });
});

test('python framing: send, request and subscribe both ways with a standard tcp client on the same listener', async () => {
  await withBroker(async (server) => {
    const py = await python(server, 'py');
    const std = await connect(server, 'tcp', { name: 'std' });
    try {
      assert.equal(framingCount(server, 'length_prefixed'), 1);
      assert.equal(framingCount(server, 'standard'), 1);

      // send: Python -> standard, and standard -> Python
      py.send({ flag: Flag.Message, event: 'hello', meta: '@=std', data: 'from py' });
      assert.equal((await std.nextFlag(Flag.Message, WAIT_MS)).data.toString(), 'from py');
      std.send({ flag: Flag.Message, event: 'hello', meta: '@=py', data: 'from std' });
      assert.equal((await py.nextFlag(Flag.Message, WAIT_MS)).data.toString(), 'from std');

      // request: Python asks, standard answers
      const q = py.send({ flag: Flag.Request, event: 'ask', meta: '@=std', data: 'q1' });
      const req = await std.nextFlag(Flag.Request, WAIT_MS);
      std.send({ flag: Flag.ReplyEnd, sid: req.sid, event: req.event, data: 're:q1' });
      const answer = await py.nextFor(q, WAIT_MS);
      assert.equal(answer.flag, Flag.ReplyEnd);
      assert.equal(answer.data.toString(), 're:q1');

      // request: standard asks, Python answers
      const q2 = std.send({ flag: Flag.Request, event: 'ask', meta: '@=py', data: 'q2' });
      const req2 = await py.nextFlag(Flag.Request, WAIT_MS);
      py.send({ flag: Flag.ReplyEnd, sid: req2.sid, event: req2.event, data: 're:q2' });
      assert.equal((await std.nextFor(q2, WAIT_MS)).data.toString(), 're:q2');

      // subscribe: Python subscribes, standard streams three Replies and a ReplyEnd; they come back in order
      const s = py.send({ flag: Flag.Subscribe, event: 'feed', meta: '@=std', data: 's1' });
      const sub = await std.nextFlag(Flag.Subscribe, WAIT_MS);
      for (let i = 0; i < 3; i++) std.send({ flag: Flag.Reply, sid: sub.sid, event: sub.event, data: `part${i}` });
      std.send({ flag: Flag.ReplyEnd, sid: sub.sid, event: sub.event, data: 'end' });
      const parts: string[] = [];
      for (let i = 0; i < 4; i++) parts.push((await py.nextFor(s, WAIT_MS)).data.toString());
      assert.deepEqual(parts, ['part0', 'part1', 'part2', 'end']);

      // subscribe: standard subscribes, Python streams
      const s2 = std.send({ flag: Flag.Subscribe, event: 'feed', meta: '@=py', data: 's2' });
      const sub2 = await py.nextFlag(Flag.Subscribe, WAIT_MS);
      for (let i = 0; i < 3; i++) py.send({ flag: Flag.Reply, sid: sub2.sid, event: sub2.event, data: `p${i}` });
      py.send({ flag: Flag.ReplyEnd, sid: sub2.sid, event: sub2.event, data: 'e' });
      const parts2: string[] = [];
      for (let i = 0; i < 4; i++) parts2.push((await std.nextFor(s2, WAIT_MS)).data.toString());
      assert.deepEqual(parts2, ['p0', 'p1', 'p2', 'e']);

      // Ping: the bare Pong comes back prefixed too
      py.ping();
      await py.nextFlag(Flag.Pong, WAIT_MS);
      assertPrefixed(py, 7);
      assert.deepEqual(std.errors, []);
    } finally {
      closeAll(py, std);
    }
  });
});

test('python framing: a 200 KiB message both ways, and a burst of small frames in one read', async () => {
  await withBroker(async (server) => {
    const py = await python(server, 'py');
    const py2 = await python(server, 'py2');
    const std = await connect(server, 'tcp', { name: 'std' });
    try {
      const big = Buffer.alloc(200 * 1024);
      for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
      py.send({ flag: Flag.Message, event: 'big', meta: '@=std', data: big });
      const atStd = await std.nextFlag(Flag.Message, WAIT_MS);
      assert.ok(atStd.data.equals(big), 'the standard client got the 200 KiB intact');
      std.send({ flag: Flag.Message, event: 'big', meta: '@=py', data: big });
      assert.ok((await py.nextFlag(Flag.Message, WAIT_MS)).data.equals(big), 'the Python client got the 200 KiB intact');
      py.send({ flag: Flag.Message, event: 'big', meta: '@=py2', data: big });
      assert.ok((await py2.nextFlag(Flag.Message, WAIT_MS)).data.equals(big), 'Python to Python, 200 KiB intact');

      // 200 small frames written at once reach the broker in few reads and leave it gathered into few writes:
      // each must still carry its own prefix.
      const burst = Buffer.concat(Array.from({ length: 200 }, (_, i) => {
        const f = encodeFrame({ flag: Flag.Message, sid: sid(), event: 'tick', meta: '@=py', data: `n${i}` });
        const p = Buffer.alloc(4);
        p.writeUInt32BE(f.length, 0);
        return Buffer.concat([p, f]);
      }));
      py2.sendRawPrefixed(burst);
      const got: string[] = [];
      for (let i = 0; i < 200; i++) got.push((await py.next((f) => f.event === 'tick', WAIT_MS)).data.toString());
      assert.deepEqual(got, Array.from({ length: 200 }, (_, i) => `n${i}`));
      // 1000 frames of 1 KB from a standard client: read in large chunks, forwarded as merged ranges of them,
      // flushed through the corked path (over 64 KiB per flush); the prefixes are found frame by frame.
      const pad = 'y'.repeat(1000);
      std.sendBytes(Buffer.concat(Array.from({ length: 1000 }, (_, i) =>
        encodeFrame({ flag: Flag.Message, sid: sid(), event: 'bulk', meta: '@=py', data: `${i}:${pad}` }))));
      for (let i = 0; i < 1000; i++) {
        const f = await py.next((x) => x.event === 'bulk', WAIT_MS);
        assert.equal(f.data.toString(), `${i}:${pad}`);
      }
      assertPrefixed(py, 1202);
      assertPrefixed(py2, 2);
    } finally {
      closeAll(py, py2, std);
    }
  });
});

test('python framing: a fragmented message (3 fragments) from and to a Python client', async () => {
  await withBroker(async (server) => {
    const py = await python(server, 'py');
    const std = await connect(server, 'tcp', { name: 'std' });
    try {
      const parts = ['a'.repeat(1500), 'b'.repeat(1500), 'c'.repeat(700)];
      const total = parts.join('').length;
      const send = (from: RawClient, to: string): void => {
        const fragSid = sid();
        from.send({ flag: Flag.Message, sid: fragSid, event: 'file', meta: `@=${to}&Data-Fragment-Idx=1&Data-Fragment-Total=3&Data-Length=${total}`, data: parts[0] });
        from.send({ flag: Flag.Message, sid: fragSid, event: 'file', meta: 'Data-Fragment-Idx=2&Data-Fragment-Total=3', data: parts[1] });
        from.send({ flag: Flag.Message, sid: fragSid, event: 'file', meta: 'Data-Fragment-Idx=3&Data-Fragment-Total=3', data: parts[2] });
      };
      send(py, 'std');
      const atStd = [];
      for (let i = 0; i < 3; i++) atStd.push(await std.nextFlag(Flag.Message, WAIT_MS));
      assert.deepEqual(atStd.map((f) => f.data.toString()), parts);
      assert.deepEqual(atStd.map((f) => metaOf(f.metaString, 'Data-Fragment-Idx')), ['1', '2', '3']);
      assert.equal(new Set(atStd.map((f) => f.sid)).size, 1);

      send(std, 'py');
      const atPy = [];
      for (let i = 0; i < 3; i++) atPy.push(await py.nextFlag(Flag.Message, WAIT_MS));
      assert.deepEqual(atPy.map((f) => f.data.toString()), parts);
      assert.deepEqual(atPy.map((f) => metaOf(f.metaString, 'Data-Fragment-Idx')), ['1', '2', '3']);
      assertPrefixed(py, 4);
    } finally {
      closeAll(py, std);
    }
  });
});

test('python framing: limits, Alarm and Close work the same, in the prefixed framing', async () => {
  await withBroker(async (server) => {
    const py = await python(server, 'py');
    try {
      // Alarm 4013 for data above limits.maxData, the connection goes on.
      const s = py.send({ flag: Flag.Message, event: 'e', meta: '@=nobody', data: 'x'.repeat(2000) });
      const alarm = await py.nextFor(s, WAIT_MS);
      assert.equal(alarm.flag, Flag.Alarm);
      assert.equal(metaOf(alarm.metaString, 'code'), '4013');
      // Alarm for a name nobody holds.
      const s2 = py.send({ flag: Flag.Message, event: 'e', meta: '@=nobody', data: 'x' });
      const alarm2 = await py.nextFor(s2, WAIT_MS);
      assert.equal(alarm2.flag, Flag.Alarm);
      // A frame above limits.maxFrame: Close 1002 frame_too_large, prefixed, at its length word.
      const header = Buffer.alloc(12);
      header.writeInt32BE(100_000, 0);
      header.writeInt32BE(100_000, 4);
      header.writeInt32BE(Flag.Message, 8);
      py.sendRawPrefixed(header);
      const close = await py.nextFlag(Flag.Close, WAIT_MS);
      assert.equal(metaOf(close.metaString, 'code'), '1002');
      assert.equal(metaOf(close.metaString, 'reason'), 'frame_too_large');
      await py.waitClosed(WAIT_MS);
      assertPrefixed(py, 4);
    } finally {
      closeAll(py);
    }
  }, { limits: { maxData: 1000, maxFrame: 4096 } });
});

test('python framing: a refusal at accept (connections per IP) reaches the Python client prefixed', async () => {
  await withBroker(async (server) => {
    const first = await python(server, 'a');
    const second = await RawClient.openPython(ports(server).tcp);
    try {
      // The broker refuses at accept, before any byte: the Close waits for the Connect to show the framing.
      second.send({ flag: Flag.Connect, sid: sid(), event: `tcp://127.0.0.1:${ports(server).tcp}/`, meta: 'Socket.D=1.0', data: '' });
      const close = await second.nextFlag(Flag.Close, WAIT_MS);
      assert.equal(metaOf(close.metaString, 'code'), '2001');
      assert.equal(metaOf(close.metaString, 'reason'), 'too_many_connections_from_ip');
      await second.waitClosed(WAIT_MS);
      assertPrefixed(second, 1);
    } finally {
      closeAll(first, second);
    }
  }, { limits: { maxConnectionsPerIp: 1 } });
});

test('python framing: a prefix that differs from the frame\'s own length is refused: Close 1002 length_prefix_mismatch', async () => {
  await withBroker(async (server) => {
    const py = await python(server, 'py');
    try {
      const f = encodeFrame({ flag: Flag.Message, sid: sid(), event: 'e', meta: '@=py', data: 'x' });
      const wrong = Buffer.alloc(4);
      wrong.writeUInt32BE(f.length + 1, 0);
      py.sendRawPrefixed(Buffer.concat([wrong, f, Buffer.from('!')]));
      const close = await py.nextFlag(Flag.Close, WAIT_MS);
      assert.equal(metaOf(close.metaString, 'reason'), 'length_prefix_mismatch');
      await py.waitClosed(WAIT_MS);
      assert.equal(py.frames.filter((x) => x.flag === Flag.Message).length, 0, 'nothing of it was routed');
    } finally {
      closeAll(py);
    }
  });
});

test('python framing: garbage that merely looks like it is refused as on a standard connection', async () => {
  await withBroker(async (server) => {
    // first int = second int, but the frame inside is not a Connect: the standard decoder refuses it.
    const std = await RawClient.open('tcp', ports(server).tcp);
    try {
      // Its length (147) is no flag, so the standard decoder stops at byte 8, as it always did.
      const ping = encodeFrame({ flag: Flag.Message, sid: sid(), event: 'e', meta: '', data: 'x'.repeat(100) });
      assert.equal(ping.length, 147);
      const prefix = Buffer.alloc(4);
      prefix.writeUInt32BE(ping.length, 0);
      std.sendBytes(Buffer.concat([prefix, ping]));
      const close = await std.nextFlag(Flag.Close, WAIT_MS);
      assert.equal(metaOf(close.metaString, 'code'), '1002');
      assert.equal(metaOf(close.metaString, 'reason'), 'flag_unknown');
      await std.waitClosed(WAIT_MS);
      assert.equal(framingCount(server, 'length_prefixed'), 0);
      assert.equal(framingCount(server, 'standard'), 1);
    } finally {
      closeAll(std);
    }
  });
});

test('python framing: with listeners.tcp.detectPythonFraming false the prefixed client is refused as garbage, standard clients work', async () => {
  await withBroker(async (server) => {
    // Read with the standard framing: the refusal is a standard Close.
    const py = await RawClient.open('tcp', ports(server).tcp);
    const std = await connect(server, 'tcp', { name: 'std' });
    const std2 = await connect(server, 'tcp', { name: 'std2' });
    try {
      const url = `tcp://127.0.0.1:${ports(server).tcp}/?@=py`;
      const connectFrame = encodeFrame({ flag: Flag.Connect, sid: sid(), event: url, meta: 'Socket.D=1.0', data: url });
      const prefix = Buffer.alloc(4);
      prefix.writeUInt32BE(connectFrame.length, 0);
      py.sendBytes(Buffer.concat([prefix, connectFrame]));
      const close = await py.nextFlag(Flag.Close, WAIT_MS);
      assert.equal(metaOf(close.metaString, 'code'), '1002');
      assert.equal(metaOf(close.metaString, 'reason'), 'flag_unknown');
      await py.waitClosed(WAIT_MS);
      std.send({ flag: Flag.Message, event: 'hello', meta: '@=std2', data: 'hi' });
      assert.equal((await std2.nextFlag(Flag.Message, WAIT_MS)).data.toString(), 'hi');
      assert.equal(server.broker.stats.connectionsByFraming.size, 0, 'nothing counted with detection off');
    } finally {
      closeAll(py, std, std2);
    }
  }, { listeners: { tcp: { enabled: true, host: '127.0.0.1', port: 0, detectPythonFraming: false } } });
});

test('the Connack comes before any Alarm, and Replies in order, even when Connect and Requests share one write (standard and prefixed)', async () => {
  await withBroker(async (server) => {
    const svc = await connect(server, 'tcp', { name: 'svc' });
    try {
      for (const framing of ['standard', 'length_prefixed'] as const) {
        const client = framing === 'standard' ? await RawClient.open('tcp', ports(server).tcp) : await RawClient.openPython(ports(server).tcp);
        try {
          const url = `tcp://127.0.0.1:${ports(server).tcp}/`;
          const frames = [
            encodeFrame({ flag: Flag.Connect, sid: sid(), event: url, meta: 'Socket.D=1.0', data: url }),
            encodeFrame({ flag: Flag.Request, sid: 'r-nobody', event: 'ask', meta: '@=nobody', data: 'q' }),
            encodeFrame({ flag: Flag.Subscribe, sid: 's-svc', event: 'feed', meta: '@=svc', data: 's' }),
          ];
          const wire = framing === 'standard' ? Buffer.concat(frames) : Buffer.concat(frames.map((f) => {
            const p = Buffer.alloc(4);
            p.writeUInt32BE(f.length, 0);
            return Buffer.concat([p, f]);
          }));
          if (framing === 'standard') client.sendBytes(wire);
          else client.sendRawPrefixed(wire);
          const sub = await svc.nextFlag(Flag.Subscribe, WAIT_MS);
          for (let i = 0; i < 5; i++) svc.send({ flag: Flag.Reply, sid: sub.sid, event: sub.event, data: `r${i}` });
          svc.send({ flag: Flag.ReplyEnd, sid: sub.sid, event: sub.event, data: 'end' });
          const seen = await client.collect(300);
          await eventually(() => seen.length + client.frames.length >= 8, WAIT_MS, 'every answer');
          const all = [...seen, ...client.frames.splice(0)];
          assert.equal(all[0]!.flag, Flag.Connack, `${framing}: the Connack first`);
          assert.equal(all.filter((f) => f.flag === Flag.Alarm).length, 1);
          const replies = all.filter((f) => f.sid === 's-svc').map((f) => f.data.toString());
          assert.deepEqual(replies, ['r0', 'r1', 'r2', 'r3', 'r4', 'end'], `${framing}: replies in order`);
        } finally {
          closeAll(client);
        }
      }
    } finally {
      closeAll(svc);
    }
  });
});
