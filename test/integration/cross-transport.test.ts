/**
 * Any transport to any transport (spec §2), and the size limits that differ between them (spec §1, §6):
 * udp datagrams above the datagram size, targets that cannot carry a frame, a lowered data limit on tcp.
 */
import test, { after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Flag, encodeFrame, type Frame } from '../../src/protocol/index.js';
import type { RunningServer } from '../../src/server.js';
import type { RawTransport } from '../support/raw-client.js';
import { startTestBroker, eventually } from '../support/broker.js';
import { TRANSPORTS, closeAll, connect, metaOf } from '../support/integration.js';

const code = (f: Frame): string | undefined => metaOf(f.metaString, 'code');

describe('every sender transport to every receiver transport', () => {
  let server: RunningServer;
  before(async () => {
    server = await startTestBroker({ timeouts: { requestMs: 1000, idleMs: 10_000, handshakeMs: 1000 } });
  });
  after(async () => {
    await server.close();
  });

  for (const from of TRANSPORTS) {
    for (const to of TRANSPORTS) {
      test(`${from} -> ${to}: a Message, and a Request answered by Reply`, async () => {
        const name = `rx-${from}-${to}`;
        const receiver = await connect(server, to, { name });
        const sender = await connect(server, from);
        try {
          await eventually(() => server.broker.registry.group(name)?.members.length === 1, 1000, name);
          const data = Buffer.from(`payload ${from}->${to} \u00e9\u4e2d`, 'utf8');
          sender.send({ flag: Flag.Message, event: 'cross.msg', meta: `@=${name}&k=v`, data });
          const msg = await receiver.nextFlag(Flag.Message);
          assert.equal(msg.event, 'cross.msg');
          assert.equal(msg.metaString, `@=${name}&k=v`);
          assert.deepEqual(msg.data, data);

          const reqSid = sender.send({ flag: Flag.Request, event: 'cross.req', meta: `@=${name}`, data: 'ping?' });
          const req = await receiver.nextFlag(Flag.Request);
          assert.equal(req.data.toString(), 'ping?');
          receiver.send({ flag: Flag.Reply, sid: req.sid, event: 'cross.req', meta: 'from=' + to, data: 'pong!' });
          const reply = await sender.nextFor(reqSid);
          assert.equal(reply.flag, Flag.ReplyEnd);
          assert.equal(reply.event, 'cross.req');
          assert.equal(reply.metaString, `from=${to}`);
          assert.equal(reply.data.toString(), 'pong!');
          assert.equal(sender.frames.length + receiver.frames.length, 0, 'nothing else arrived');
        } finally {
          closeAll(receiver, sender);
        }
        await eventually(() => server.broker.sessionCount === 0 && server.broker.pendingTimers === 0, 2000, 'released');
      });
    }
  }
});

describe('large frames forwarded as the chunks they arrived in (Frame.parts)', () => {
  // Both forwardMessageBytes settings: with it on, a large Message goes out as its parts untouched; with it
  // off (and for Requests and replies always) the broker joins the parts to re-head the frame.
  for (const forwardMessageBytes of [true, false]) {
    test(`tcp and ws: 1 MiB Messages by event and @, a 300 KiB Request and reply (forwardMessageBytes ${forwardMessageBytes})`, async () => {
      const server = await startTestBroker({ fastPaths: { forwardMessageBytes }, timeouts: { requestMs: 5000, idleMs: 10_000, handshakeMs: 2000 } });
      const tcpRx = await connect(server, 'tcp', { name: 'big-rx' });
      const wsRx = await connect(server, 'ws');
      const sender = await connect(server, 'tcp');
      try {
        const sub = wsRx.send({ flag: Flag.Request, event: '$sub', meta: 'event=big.>' });
        assert.equal((await wsRx.nextFor(sub)).flag, Flag.ReplyEnd);
        const payloads = [0, 1, 2].map((i) => Buffer.alloc(1024 * 1024 + i * 7, 97 + i).fill(i, 5000, 6000));
        for (const [i, data] of payloads.entries()) {
          sender.send({ flag: Flag.Message, event: 'big.m', meta: `n=${i}`, data });
          sender.send({ flag: Flag.Message, event: 'big.direct', meta: `@=big-rx&n=${i}`, data });
        }
        for (const [i, data] of payloads.entries()) {
          const viaEvent = await wsRx.nextFlag(Flag.Message);
          assert.equal(viaEvent.metaString, `n=${i}`);
          assert.ok(viaEvent.data.equals(data), `event-routed payload ${i} intact`);
          const viaName = await tcpRx.nextFlag(Flag.Message);
          assert.equal(viaName.metaString, `@=big-rx&n=${i}`);
          assert.ok(viaName.data.equals(data), `@-routed payload ${i} intact`);
        }
        const question = Buffer.alloc(300 * 1024, 0x51);
        const answer = Buffer.alloc(300 * 1024 + 3, 0x41);
        const reqSid = sender.send({ flag: Flag.Request, event: 'big.q', meta: '@=big-rx', data: question });
        const req = await tcpRx.nextFlag(Flag.Request);
        assert.ok(req.data.equals(question));
        tcpRx.send({ flag: Flag.ReplyEnd, sid: req.sid, event: 'big.q', data: answer });
        const reply = await sender.nextFor(reqSid);
        assert.equal(reply.flag, Flag.ReplyEnd);
        assert.ok(reply.data.equals(answer));
      } finally {
        closeAll(tcpRx, wsRx, sender);
        await server.close();
      }
    });
  }
});

describe('framing', () => {
  for (const to of TRANSPORTS) {
    // udp: fewer, so the receiving socket's buffer cannot overflow on a loaded machine.
    const count = to === 'udp' ? 40 : 200;
    test(`tcp -> ${to}: ${count} frames in one write, then one frame byte by byte, arrive in order and byte-exact`, async () => {
      const server = await startTestBroker({ timeouts: { requestMs: 1000, idleMs: 10_000, handshakeMs: 1000 } });
      const target = await connect(server, to, { name: 'svc' });
      const sender = await connect(server, 'tcp');
      try {
        const frames = Array.from({ length: count }, (_, i) =>
          encodeFrame({ flag: Flag.Message, sid: `s${i}`, event: 'seq', meta: `@=svc&i=${i}`, data: `n${i}` }));
        sender.sendBytes(Buffer.concat(frames));
        const last = encodeFrame({ flag: Flag.Message, sid: 'slow', event: 'seq', meta: `@=svc&i=${count}`, data: 'dribbled' });
        for (const byte of last) {
          sender.sendBytes(Buffer.from([byte]));
          await new Promise((r) => setImmediate(r));
        }
        const got: Frame[] = [];
        for (let i = 0; i <= count; i++) got.push(await target.nextFlag(Flag.Message));
        for (let i = 0; i < count; i++) assert.deepEqual(got[i].raw, frames[i], `frame ${i}`);
        assert.deepEqual(got[count].raw, last);
      } finally {
        closeAll(target, sender);
        await server.close();
      }
    });
  }
});

describe('size limits across transports', () => {
  const big = (n: number): Buffer => Buffer.alloc(n, 0x61);

  test('udp: a frame larger than the datagram size (2048) gets Alarm 4013; the session goes on', async () => {
    const server = await startTestBroker({ timeouts: { requestMs: 1000, idleMs: 10_000, handshakeMs: 1000 } });
    const svc = await connect(server, 'tcp', { name: 'svc' });
    const client = await connect(server, 'udp');
    try {
      const s = client.send({ flag: Flag.Message, event: 'huge', meta: '@=svc', data: big(3000) });
      const alarm = await client.nextFor(s);
      assert.equal(alarm.flag, Flag.Alarm);
      assert.equal(code(alarm), '4013');
      assert.equal(alarm.event, 'huge');
      assert.equal(alarm.metaString, '@=svc&code=4013');
      assert.equal(svc.frames.length, 0, 'nothing forwarded');
      // The session is still open: a Request goes through.
      const reqSid = client.send({ flag: Flag.Request, event: 'small', meta: '@=svc', data: 'ok?' });
      const req = await svc.nextFlag(Flag.Request);
      svc.send({ flag: Flag.ReplyEnd, sid: req.sid, event: 'small', data: 'ok' });
      assert.equal((await client.nextFor(reqSid)).data.toString(), 'ok');
      assert.equal(server.broker.sessionCount, 2);
      // Just at the limit is fine.
      const header = 8 + 32 + 2 + 'fits'.length + 2 + '@=svc'.length + 2;
      client.send({ flag: Flag.Message, event: 'fits', meta: '@=svc', data: big(2048 - header) });
      const fits = await svc.nextFlag(Flag.Message);
      assert.equal(fits.raw.length, 2048);
    } finally {
      closeAll(svc, client);
      await server.close();
    }
  });

  for (const from of ['tcp', 'ws'] as const) {
    test(`${from} -> udp target: a Message larger than 2048 bytes gets Alarm 4013 to the sender`, async () => {
      const server = await startTestBroker({ timeouts: { requestMs: 1000, idleMs: 10_000, handshakeMs: 1000 } });
      const target = await connect(server, 'udp', { name: 'svc' });
      const sender = await connect(server, from);
      try {
        const s = sender.send({ flag: Flag.Message, event: 'huge', meta: '@=svc', data: big(3000) });
        const alarm = await sender.nextFor(s);
        assert.equal(alarm.flag, Flag.Alarm);
        assert.equal(code(alarm), '4013');
        assert.equal(alarm.metaString, '@=svc&code=4013');
        assert.match(alarm.data.toString(), /udp/);
        // A Request too large for the udp target is refused the same way, and opens no stream.
        const r = sender.send({ flag: Flag.Request, event: 'huge', meta: '@=svc', data: big(3000) });
        const alarm2 = await sender.nextFor(r);
        assert.equal(code(alarm2), '4013');
        assert.equal(server.broker.pendingTimers, 0);
        assert.equal(server.broker.stats.streamsOpen, 0);
        // Small frames still reach it.
        sender.send({ flag: Flag.Message, event: 'small', meta: '@=svc', data: 'hi' });
        assert.equal((await target.nextFlag(Flag.Message)).data.toString(), 'hi');
        assert.equal(target.frames.filter((f) => f.event === 'huge').length, 0);
      } finally {
        closeAll(target, sender);
        await server.close();
      }
    });
  }

  test('fan-out @=svc* to tcp and udp members: the tcp member gets a large Message, the sender Alarm 4013 for the udp one', async () => {
    const server = await startTestBroker({ timeouts: { requestMs: 1000, idleMs: 10_000, handshakeMs: 1000 } });
    const tcpMember = await connect(server, 'tcp', { name: 'svc' });
    const udpMember = await connect(server, 'udp', { name: 'svc' });
    const sender = await connect(server, 'ws');
    try {
      await eventually(() => server.broker.registry.group('svc')?.members.length === 2, 1000, '2 members');
      const s = sender.send({ flag: Flag.Message, event: 'huge', meta: '@=svc*', data: big(3000) });
      const alarm = await sender.nextFor(s);
      assert.equal(code(alarm), '4013');
      const got = await tcpMember.nextFlag(Flag.Message);
      assert.equal(got.data.length, 3000);
      assert.deepEqual(await udpMember.collect(100), []);
    } finally {
      closeAll(tcpMember, udpMember, sender);
      await server.close();
    }
  });

  test('a reply too large for a udp requester: the requester gets Alarm 4013 instead of silence', async () => {
    const server = await startTestBroker({ timeouts: { requestMs: 2000, idleMs: 10_000, handshakeMs: 1000 } });
    const svc = await connect(server, 'tcp', { name: 'svc' });
    const requester = await connect(server, 'udp');
    try {
      const s = requester.send({ flag: Flag.Request, event: 'get', meta: '@=svc', data: 'big please' });
      const req = await svc.nextFlag(Flag.Request);
      svc.send({ flag: Flag.ReplyEnd, sid: req.sid, event: 'get', data: big(3000) });
      const alarm = await requester.nextFor(s, 1000);
      assert.equal(alarm.flag, Flag.Alarm);
      assert.equal(code(alarm), '4013');
      await eventually(() => server.broker.pendingTimers === 0 && server.broker.stats.streamsOpen === 0, 1000, 'stream ended');
    } finally {
      closeAll(svc, requester);
      await server.close();
    }
  });

  for (const transport of ['tcp', 'ws'] as const satisfies readonly RawTransport[]) {
    test(`${transport}: data over a lowered limit (maxData 1000) gets Alarm 4013 and the connection keeps working`, async () => {
      const server = await startTestBroker({ limits: { maxData: 1000 }, timeouts: { requestMs: 1000, idleMs: 10_000, handshakeMs: 1000 } });
      const svc = await connect(server, 'ws', { name: 'svc' });
      const client = await connect(server, transport);
      try {
        const s = client.send({ flag: Flag.Request, event: 'big', meta: '@=svc&a=b', data: big(1001) });
        const alarm = await client.nextFor(s);
        assert.equal(alarm.flag, Flag.Alarm);
        assert.equal(code(alarm), '4013');
        assert.equal(alarm.event, 'big');
        assert.equal(alarm.metaString, '@=svc&a=b&code=4013');
        assert.equal(svc.frames.length, 0);
        // A frame right behind it on the same connection is read correctly.
        const okSid = client.send({ flag: Flag.Request, event: 'small', meta: '@=svc', data: big(1000) });
        const req = await svc.nextFlag(Flag.Request);
        assert.equal(req.data.length, 1000);
        svc.send({ flag: Flag.ReplyEnd, sid: req.sid, event: 'small', data: 'fine' });
        assert.equal((await client.nextFor(okSid)).data.toString(), 'fine');
        assert.equal(client.closed, false);
        assert.equal(server.broker.sessionCount, 2);
      } finally {
        closeAll(svc, client);
        await server.close();
      }
    });
  }

  test('tcp: an over-limit frame split across many writes is skipped and the next frame still decodes', async () => {
    const server = await startTestBroker({ limits: { maxData: 1000 }, timeouts: { requestMs: 1000, idleMs: 10_000, handshakeMs: 1000 } });
    const svc = await connect(server, 'tcp', { name: 'svc' });
    const client = await connect(server, 'tcp');
    try {
      const tooBig = encodeFrame({ flag: Flag.Message, sid: 'x1', event: 'big', meta: '@=svc', data: big(5000) });
      const next = encodeFrame({ flag: Flag.Message, sid: 'x2', event: 'next', meta: '@=svc', data: 'after' });
      const all = Buffer.concat([tooBig, next]);
      for (let i = 0; i < all.length; i += 700) {
        client.sendBytes(all.subarray(i, i + 700));
        await new Promise((r) => setImmediate(r));
      }
      const alarm = await client.nextFor('x1');
      assert.equal(code(alarm), '4013');
      const msg = await svc.nextFlag(Flag.Message);
      assert.equal(msg.event, 'next');
      assert.equal(msg.data.toString(), 'after');
    } finally {
      closeAll(svc, client);
      await server.close();
    }
  });
});
