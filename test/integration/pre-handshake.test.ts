/**
 * Traffic before the handshake costs nothing (docs/security.md section 7, docs/operations.md section 4.1),
 * over real sockets: stray udp datagrams get no answer and open no session, a refused udp Connect is answered
 * within 3x its bytes (RFC 9000 section 8.1), and a flood of strays and bare tcp connects writes a bounded
 * number of log lines while the counters count every one.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import pino from 'pino';
import { DEFAULT_FRAME_LIMITS, Flag, Frame, decodeMessage, encodeBare, encodeFrame } from '../../src/protocol/index.js';
import { RawClient } from '../support/raw-client.js';
import { eventually, ports, startTestBroker } from '../support/broker.js';

/** A udp socket bound to `host` (127.0.0.x: a fresh source address) that records what it receives. */
async function udpPeer(host = '127.0.0.1'): Promise<{ socket: dgram.Socket; received: Buffer[] }> {
  const socket = dgram.createSocket('udp4');
  const received: Buffer[] = [];
  socket.on('message', (m: Buffer) => received.push(m));
  socket.bind(0, host);
  await once(socket, 'listening');
  return { socket, received };
}

function sendTo(socket: dgram.Socket, port: number, datagram: Buffer): Promise<void> {
  return new Promise((resolve, reject) => socket.send(datagram, port, '127.0.0.1', (e) => (e ? reject(e) : resolve())));
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Every kind of datagram a scanner, a late client or a spoofer sends, none of them a well-formed Connect. */
function strays(): [string, Buffer][] {
  const connect = encodeFrame({ flag: Flag.Connect, sid: 'c', event: 'udp://h' });
  const noSeparators = Buffer.alloc(20);
  noSeparators.writeInt32BE(20, 0);
  noSeparators.writeInt32BE(Flag.Connect, 4);
  return [
    ['Ping', encodeBare(Flag.Ping)],
    ['Pong', encodeBare(Flag.Pong)],
    ['bare Close', encodeBare(Flag.Close)],
    ['Close', encodeFrame({ flag: Flag.Close, meta: 'code=1000' })],
    ['Message', encodeFrame({ flag: Flag.Message, sid: 's', event: 'e', meta: '@=svc', data: 'hi' })],
    ['Request', encodeFrame({ flag: Flag.Request, sid: 's', event: 'e', data: 'q' })],
    ['Subscribe', encodeFrame({ flag: Flag.Subscribe, sid: 's', event: '$sub', data: 'a.>' })],
    ['Reply', encodeFrame({ flag: Flag.Reply, sid: 'unknown', event: 'e', data: 'late' })],
    ['ReplyEnd', encodeFrame({ flag: Flag.ReplyEnd, sid: 'unknown', event: 'e' })],
    ['Alarm', encodeFrame({ flag: Flag.Alarm, sid: 'x', meta: 'code=4004' })],
    ['Connack', encodeFrame({ flag: Flag.Connack, sid: 'c', meta: 'Socket.D=1.0' })],
    ['unknown flag', encodeFrame({ flag: 99, event: 'x' })],
    ['garbage', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')],
    ['one byte', Buffer.from([0])],
    ['empty', Buffer.alloc(0)],
    ['Connect, length prefix lies', Buffer.concat([connect, Buffer.from('!')])],
    ['Connect without separators', noSeparators],
    ['bare Connect', encodeBare(Flag.Connect)],
    ['Connect over the datagram size', encodeFrame({ flag: Flag.Connect, sid: 'c', event: 'x'.repeat(2100) })],
  ];
}

test('udp: stray datagrams of every kind from fresh addresses get no reply and create no session', async () => {
  const server = await startTestBroker();
  const port = ports(server).udp;
  const peers = await Promise.all([2, 3, 4, 5, 6].map((n) => udpPeer(`127.0.0.${n}`)));
  peers.push(await udpPeer(), await udpPeer());
  try {
    const kinds = strays();
    let sent = 0;
    for (const [, datagram] of kinds) {
      for (const peer of peers) {
        await sendTo(peer.socket, port, datagram);
        sent++;
      }
    }
    await eventually(() => server.broker.stats.dropped.get('udp_no_session') === sent, 3000, `${sent} strays counted`);
    await sleep(100);
    for (const peer of peers) assert.deepEqual(peer.received, [], `nothing sent to ${peer.socket.address().address}`);
    assert.equal(server.broker.sessionCount, 0);
    assert.equal(server.broker.connectionCount, 0);
    assert.equal(server.broker.stats.connectionsByTransport.get('udp'), undefined, 'no udp connection accepted');
    assert.equal(server.broker.stats.bytesOut, 0);
    assert.equal(server.broker.stats.preHandshake.get('udp|udp_no_session'), sent);

    // The same addresses can still open a session with a real Connect afterwards.
    const client = await RawClient.connect('udp', port, { name: 'late' });
    client.sendClose();
    client.close();
  } finally {
    for (const peer of peers) peer.socket.close();
    await server.close();
  }
});

/** Sends `connect` from a fresh socket; resolves with every datagram received within `ms`. */
async function answersTo(port: number, connect: Buffer, ms = 300): Promise<Buffer[]> {
  const peer = await udpPeer();
  try {
    await sendTo(peer.socket, port, connect);
    await sleep(ms);
    return peer.received;
  } finally {
    peer.socket.close();
  }
}

function closeOf(datagram: Buffer): Frame {
  const frame = decodeMessage(datagram, DEFAULT_FRAME_LIMITS);
  assert.ok(frame instanceof Frame, 'a well-formed frame');
  assert.equal(frame.flag, Flag.Close);
  return frame;
}

test('udp: a refused Connect is answered within 3x its bytes (cut to fit), or not at all', async () => {
  const server = await startTestBroker();
  const port = ports(server).udp;
  try {
    // An invalid name: the full Close (code, reason, a sentence) is about 5x this Connect.
    const small = encodeFrame({ flag: Flag.Connect, event: 'udp://h?@=a*' });
    const answers = await answersTo(port, small);
    assert.equal(answers.length, 1);
    const bytesBack = answers[0].length;
    assert.ok(bytesBack <= 3 * small.length, `${bytesBack} bytes back for ${small.length} received`);
    const close = closeOf(answers[0]);
    assert.equal(close.meta('code'), '2001');
    assert.equal(server.broker.stats.amplificationLimited.get('trimmed'), 1);
    assert.equal(server.broker.stats.handshakesRefused.get('invalid_name'), 1);

    // A Connect large enough for the whole refusal gets it whole.
    const large = encodeFrame({ flag: Flag.Connect, sid: 'c'.repeat(40), event: `udp://h?@=a*&pad=${'p'.repeat(60)}`, meta: 'Socket.D=1.0' });
    const full = await answersTo(port, large);
    assert.equal(full.length, 1);
    assert.ok(full[0].length <= 3 * large.length);
    assert.equal(closeOf(full[0]).meta('reason'), 'invalid_name');
    assert.match(closeOf(full[0]).data.toString(), /is not valid/);
    assert.equal(server.broker.stats.amplificationLimited.get('trimmed'), 1, 'not cut');
    await eventually(() => server.broker.sessionCount === 0, 1000, 'the refused sessions released');
  } finally {
    await server.close();
  }
});

test('udp: a refusal at accept (connection limit) also stays within 3x; an accepted Connect still gets its Connack', async () => {
  const server = await startTestBroker({ limits: { maxConnections: 1 } });
  const p = ports(server);
  const holder = await RawClient.connect('tcp', p.tcp);
  try {
    const connect = encodeFrame({ flag: Flag.Connect, event: 'udp://h' });
    const answers = await answersTo(p.udp, connect);
    assert.equal(answers.length, 1);
    assert.ok(answers[0].length <= 3 * connect.length, `${answers[0].length} bytes back for ${connect.length}`);
    assert.equal(closeOf(answers[0]).meta('code'), '2001');
    assert.equal(server.broker.stats.connectionsRefused.get('too_many_connections'), 1);
    holder.close();
    await eventually(() => server.broker.connectionCount === 0, 2000, 'the holder gone');
    // The smallest Connect is accepted, and its Connack is not cut.
    const accepted = await answersTo(p.udp, connect);
    assert.equal(accepted.length, 1);
    const connack = decodeMessage(accepted[0], DEFAULT_FRAME_LIMITS) as Frame;
    assert.equal(connack.flag, Flag.Connack);
    assert.equal(connack.metaString, 'Socket.D=1.0');
  } finally {
    holder.close();
    await server.close();
  }
});

test('udp: with amplificationFactor 1 a refusal that cannot fit is not sent, and counted', async () => {
  const server = await startTestBroker({ listeners: { udp: { enabled: true, host: '127.0.0.1', port: 0, amplificationFactor: 1 } } });
  try {
    const connect = encodeFrame({ flag: Flag.Connect, event: 'u?@=a*' });
    assert.ok(connect.length < encodeFrame({ flag: Flag.Close, meta: 'code=2001' }).length);
    assert.deepEqual(await answersTo(ports(server).udp, connect), []);
    assert.equal(server.broker.stats.amplificationLimited.get('not_sent'), 1);
    assert.equal(server.broker.stats.handshakesRefused.get('invalid_name'), 1);
    await eventually(() => server.broker.sessionCount === 0, 1000, 'the refused session released');
  } finally {
    await server.close();
  }
});

interface LogLine {
  level: number;
  event?: string;
  reason?: string;
  count?: number;
  perSecond?: number;
  transports?: Record<string, number>;
  msg: string;
}

test('a flood of 6,000 stray datagrams and 300 bare tcp connects: every one counted, a bounded number of log lines', async () => {
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const text of chunk.toString().split('\n')) if (text.length > 0) lines.push(JSON.parse(text) as LogLine);
      done();
    },
  });
  const intervalMs = 250;
  const warnPerSecond = 500;
  const server = await startTestBroker({ log: { preHandshake: { intervalMs, warnPerSecond } } }, { logger: pino({ level: 'info' }, sink) });
  const p = ports(server);
  const peers = await Promise.all(Array.from({ length: 20 }, (_, i) => udpPeer(`127.0.0.${1 + (i % 10)}`)));
  const started = Date.now();
  try {
    const kinds = strays().map(([, d]) => d);
    const DATAGRAMS = 6000;
    const BATCH = 200;
    for (let sent = 0; sent < DATAGRAMS;) {
      for (let i = 0; i < BATCH; i++, sent++) peers[sent % peers.length].socket.send(kinds[sent % kinds.length], p.udp, '127.0.0.1');
      // Paced by what the broker has counted, so no datagram is lost in a full socket buffer.
      const target = sent;
      await eventually(() => (server.broker.stats.dropped.get('udp_no_session') ?? 0) >= target, 5000, `${target} strays counted`);
    }
    const BARE = 300;
    for (let i = 0; i < BARE; i += 30) {
      await Promise.all(Array.from({ length: 30 }, async () => {
        const socket = net.connect(p.tcp, '127.0.0.1');
        await once(socket, 'connect');
        socket.end();
        await once(socket, 'close');
      }));
    }
    await eventually(() => server.broker.connectionCount === 0 && (server.broker.stats.connectionsByTransport.get('tcp') ?? 0) === BARE, 3000, 'every bare connect seen and closed');
    const elapsed = Date.now() - started;
    for (const peer of peers) assert.deepEqual(peer.received, []);
    await server.close();

    const stats = server.broker.stats;
    assert.equal(stats.dropped.get('udp_no_session'), DATAGRAMS);
    assert.equal(stats.preHandshake.get('udp|udp_no_session'), DATAGRAMS);
    let bareCounted = 0;
    for (const [key, n] of stats.preHandshake) if (key.startsWith('tcp|')) bareCounted += n;
    assert.equal(bareCounted, BARE);

    // The log: no line per connection or datagram, one summary per reason per interval.
    const summaries = lines.filter((l) => l.event === 'pre_handshake');
    const others = lines.filter((l) => l.event !== 'pre_handshake' && l.event !== 'broker_started' && l.event !== 'broker_stopped');
    assert.deepEqual(others.map((l) => l.msg), [], 'nothing else logged');
    const reasons = new Set(summaries.map((l) => l.reason));
    const intervals = Math.ceil(elapsed / intervalMs) + 2;
    assert.ok(summaries.length <= intervals * reasons.size, `${summaries.length} summary lines for ${elapsed} ms (${reasons.size} reasons)`);
    assert.ok(summaries.length < 100, `${summaries.length} lines for 6,300 events`);
    const sum = (reason: string): number => summaries.filter((l) => l.reason === reason).reduce((n, l) => n + (l.count ?? 0), 0);
    assert.equal(sum('udp_no_session'), DATAGRAMS, 'the summaries add up to every datagram');
    let bareLogged = 0;
    for (const l of summaries) bareLogged += l.transports?.tcp ?? 0;
    assert.equal(bareLogged, BARE);
    for (const l of summaries) {
      assert.equal(l.level, (l.perSecond ?? 0) >= warnPerSecond ? 40 : 30, `warn only at ${warnPerSecond}/s: ${JSON.stringify(l)}`);
    }
    assert.ok(summaries.some((l) => /udp datagrams without a session/.test(l.msg)));
  } finally {
    for (const peer of peers) peer.socket.close();
    await server.close();
  }
});
