/**
 * Units of what happens before a handshake (docs/security.md, docs/operations.md section 4.1): the Connect
 * predicate of connectionless transports, a Close cut to an anti-amplification allowance, and the summary
 * log of pre-handshake events.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import pino from 'pino';
import { DEFAULT_FRAME_LIMITS, Flag, connectOpener, decodeMessage, encodeBare, encodeFrame, Frame } from '../../src/protocol/index.js';
import { encodeClose, fitClose } from '../../src/broker/close-fit.js';
import { PreHandshakeLog } from '../../src/broker/pre-handshake-log.js';
import { BrokerStats } from '../../src/broker/stats.js';

const LIMITS = { ...DEFAULT_FRAME_LIMITS, maxFrame: 2048 };

test('connectOpener: only one whole, well-formed Connect within the limits opens a session', () => {
  const opens = connectOpener(LIMITS);
  const connect = encodeFrame({ flag: Flag.Connect, sid: 's', event: 'udp://h?@=svc', meta: 'token=x' });
  assert.equal(opens(connect), true);
  assert.equal(opens(encodeFrame({ flag: Flag.Connect })), true, 'the smallest Connect (14 bytes)');
  const refused: [string, Buffer][] = [
    ['empty', Buffer.alloc(0)],
    ['a bare Ping', encodeBare(Flag.Ping)],
    ['a Message', encodeFrame({ flag: Flag.Message, event: 'e' })],
    ['a Connack', encodeFrame({ flag: Flag.Connack, event: 'e' })],
    ['garbage', Buffer.from('GET / HTTP/1.1\r\n\r\n')],
    ['a bare Connect (8 bytes)', encodeBare(Flag.Connect)],
    ['a Connect with a trailing byte', Buffer.concat([connect, Buffer.from('!')])],
    ['a Connect cut short', connect.subarray(0, connect.length - 1)],
    ['a Connect over maxFrame', encodeFrame({ flag: Flag.Connect, event: 'x'.repeat(2100) })],
    ['a Connect with a sid over maxSid', encodeFrame({ flag: Flag.Connect, sid: 's'.repeat(65) })],
  ];
  for (const [what, datagram] of refused) assert.equal(opens(datagram), false, what);
  // A Connect with no separators after its prefix (what a sloppy scanner sends).
  const noSeparators = Buffer.alloc(20);
  noSeparators.writeInt32BE(20, 0);
  noSeparators.writeInt32BE(Flag.Connect, 4);
  assert.equal(opens(noSeparators), false);
});

test('fitClose: the full Close when it fits; else the text cut, then the reason dropped, then nothing', () => {
  const full = encodeClose(2001, 'invalid_name', 'the name is not valid: spaces');
  assert.deepEqual(fitClose(2001, 'invalid_name', 'the name is not valid: spaces', full.length), { frame: full, trimmed: false });

  const cut = fitClose(2001, 'invalid_name', 'the name is not valid: spaces', full.length - 5);
  assert.equal(cut.trimmed, true);
  assert.equal(cut.frame!.length, full.length - 5);
  const cutFrame = decodeMessage(cut.frame!, DEFAULT_FRAME_LIMITS) as Frame;
  assert.equal(cutFrame.flag, Flag.Close);
  assert.equal(cutFrame.meta('code'), '2001');
  assert.equal(cutFrame.meta('reason'), 'invalid_name');
  assert.equal(cutFrame.data.toString(), 'the name is not valid: s');

  const codeOnly = encodeFrame({ flag: Flag.Close, meta: 'code=2001' });
  const small = fitClose(2001, 'invalid_name', 'text', codeOnly.length + 3);
  assert.deepEqual(small, { frame: codeOnly, trimmed: true });
  assert.deepEqual(fitClose(2001, 'invalid_name', 'text', codeOnly.length - 1), { frame: null, trimmed: true });

  // A cut never splits a UTF-8 character: 'é' is two bytes.
  const accented = fitClose(1002, 'x', 'ééé', encodeFrame({ flag: Flag.Close, meta: 'code=1002&reason=x' }).length + 3);
  assert.equal((decodeMessage(accented.frame!, DEFAULT_FRAME_LIMITS) as Frame).data.toString(), 'é');
});

interface Line {
  level: number;
  msg: string;
  event: string;
  reason: string;
  count: number;
  transports: Record<string, number>;
  lastRemote?: string;
}

function capture(): { logger: pino.Logger; lines: Line[] } {
  const lines: Line[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const text of chunk.toString().split('\n')) if (text.length > 0) lines.push(JSON.parse(text) as Line);
      done();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines };
}

test('PreHandshakeLog: one line per reason per interval, counters for every event, warn only at the rate', async () => {
  const { logger, lines } = capture();
  const stats = new BrokerStats();
  let now = 1_000_000;
  const log = new PreHandshakeLog(logger, { intervalMs: 10_000, warnPerSecond: 100 }, stats, () => now);
  assert.equal(log.pending, false, 'no timer before anything happened');
  for (let i = 0; i < 1234; i++) log.count('udp', 'udp_no_session', `10.0.0.${i % 200}:5000`);
  for (let i = 0; i < 300; i++) log.count(i % 2 === 0 ? 'tcp' : 'ws', 'peer_closed', '127.0.0.1:1');
  assert.equal(log.pending, true);
  assert.equal(lines.length, 0, 'nothing logged while counting');
  now += 10_000;
  log.flush();
  await new Promise((r) => setImmediate(r));
  assert.equal(lines.length, 2);
  const [udp, bare] = lines;
  assert.equal(udp.msg, '1,234 udp datagrams without a session in the last 10 s');
  assert.equal(udp.level, 40, '123.4 per second is over the threshold: warn');
  assert.equal(udp.event, 'pre_handshake');
  assert.deepEqual(udp.transports, { udp: 1234 });
  assert.equal(udp.lastRemote, '10.0.0.33:5000');
  assert.equal(bare.msg, '300 connections closed before a Connect in the last 10 s');
  assert.equal(bare.level, 30, '30 per second: info');
  assert.deepEqual(bare.transports, { tcp: 150, ws: 150 });
  assert.equal(stats.preHandshake.get('udp|udp_no_session'), 1234);
  assert.equal(stats.preHandshake.get('tcp|peer_closed'), 150);
  assert.equal(log.pending, false, 'the timer is not re-armed while nothing happens');

  // An early flush (shutdown) divides by the whole interval, so a burst of 5 is no flood.
  log.count('tcp', 'handshake_timeout', '127.0.0.1:2');
  log.stop();
  await new Promise((r) => setImmediate(r));
  assert.equal(lines.length, 3);
  assert.equal(lines[2].level, 30);
  assert.equal(lines[2].reason, 'handshake_timeout');
  assert.equal(lines[2].msg, '1 connection without a Connect within the handshake timeout in the last 10 s');
  // After stop: still counted, no timer, no line.
  log.count('tcp', 'peer_closed', '127.0.0.1:3');
  assert.equal(log.pending, false);
  assert.equal(stats.preHandshake.get('tcp|peer_closed'), 151);
});

test('PreHandshakeLog: the timer fires by itself after intervalMs; stop() disarms it', async () => {
  const { logger, lines } = capture();
  const log = new PreHandshakeLog(logger, { intervalMs: 100, warnPerSecond: 0 }, new BrokerStats());
  for (let i = 0; i < 10_000; i++) log.count('udp', 'udp_no_session', 'x');
  const started = Date.now();
  while (lines.length === 0 && Date.now() - started < 2000) await new Promise((r) => setTimeout(r, 10));
  assert.equal(lines.length, 1);
  assert.equal(lines[0].count, 10_000);
  assert.equal(lines[0].level, 30, 'warnPerSecond 0 never warns');
  log.count('udp', 'udp_no_session', 'x');
  assert.equal(log.pending, true);
  log.stop();
  assert.equal(log.pending, false);
});
