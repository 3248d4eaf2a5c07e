/**
 * What traffic before a handshake costs the broker (docs/security.md, "Traffic before the handshake"):
 *
 *   node dist/bench/pre-handshake.js [--datagrams=6000] [--peers=20] [--bare=300] [--only=0..4]
 *
 * Starts the broker in this process (default config, listeners on 127.0.0.1, port 0) with its logger writing
 * into a counter, then plays a port scanner and a spoofing attacker: `--datagrams` stray udp datagrams (Pings,
 * garbage, Replies, Closes, Messages; none a Connect) from `--peers` sockets, `--bare` tcp connections opened
 * and closed without a byte, and one refused udp Connect (an invalid `@` name). Prints the bytes the broker
 * sent back per byte received, the log lines written (by level) and the counters, as one JSON object.
 * Loopback only, bounded in count and time.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import { configFrom } from '../src/config/load.js';
import { Flag, encodeBare, encodeFrame } from '../src/protocol/index.js';
import { startServer } from '../src/server.js';

function arg(name: string, fallback: number): number {
  const found = process.argv.find((a) => a.startsWith(`--${name}=`));
  return found === undefined ? fallback : Number(found.slice(name.length + 3));
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The stray datagrams: every kind a scanner or a spoofer would send, none a Connect. */
function strays(): Buffer[] {
  return [
    encodeBare(Flag.Ping),
    Buffer.from('garbage that is no frame at all'),
    encodeFrame({ flag: Flag.Reply, sid: 'nope', event: 'x', data: 'late' }),
    encodeFrame({ flag: Flag.Close, meta: 'code=1000' }),
    encodeFrame({ flag: Flag.Message, sid: 's', event: 'e', meta: '@=svc', data: 'hello' }),
  ];
}

async function main(): Promise<void> {
  const datagrams = arg('datagrams', 6000);
  const peerCount = arg('peers', 20);
  const bare = arg('bare', 300);
  const lines = { total: 0, bytes: 0, byLevel: {} as Record<string, number>, messages: [] as string[] };
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) {
        if (line.length === 0) continue;
        const parsed = JSON.parse(line) as { level: number; msg: string; event?: string };
        // The broker's own start and stop lines are not what the flood caused.
        if (parsed.event === 'broker_started' || parsed.event === 'broker_stopped') continue;
        lines.total++;
        lines.bytes += line.length + 1;
        const level = pino.levels.labels[parsed.level] ?? '?';
        lines.byLevel[level] = (lines.byLevel[level] ?? 0) + 1;
        if (lines.messages.length < 20) lines.messages.push(`${level}: ${parsed.msg}`);
      }
      done();
    },
  });
  const local = { enabled: true, host: '127.0.0.1', port: 0 };
  const config = configFrom({ listeners: { tcp: local, udp: local, ws: local }, http: { ...local, enabled: false } }, 'bench');
  const server = await startServer(config, { logger: pino({ level: 'info' }, sink) });
  const udpPort = server.addresses.udp!.port;
  const tcpPort = server.addresses.tcp!.port;

  let sent = 0;
  let received = 0;
  const peers: dgram.Socket[] = [];
  for (let i = 0; i < peerCount; i++) {
    const socket = dgram.createSocket('udp4');
    socket.on('message', (m) => {
      received += m.length;
    });
    await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
    peers.push(socket);
  }
  // --only=N sends only the N-th kind (0 Ping, 1 garbage, 2 Reply, 3 Close, 4 Message).
  const only = arg('only', -1);
  const kinds = only >= 0 ? [strays()[only]] : strays();
  for (let i = 0; i < datagrams; i++) {
    const datagram = kinds[i % kinds.length];
    sent += datagram.length;
    peers[i % peerCount].send(datagram, udpPort, '127.0.0.1');
    // Paced, so the kernel's socket buffers do not drop what the broker should see.
    if (i % 200 === 199) await sleep(5);
  }
  for (let i = 0; i < bare; i++) {
    const socket = net.connect(tcpPort, '127.0.0.1');
    await new Promise<void>((r) => socket.once('connect', () => r()));
    socket.destroy();
  }
  // A refused Connect: the refusal's size against the Connect's.
  const refusedSocket = dgram.createSocket('udp4');
  let refusedBack = 0;
  refusedSocket.on('message', (m) => {
    refusedBack += m.length;
  });
  await new Promise<void>((r) => refusedSocket.bind(0, '127.0.0.1', r));
  const connect = encodeFrame({ flag: Flag.Connect, sid: 'c', event: 'udp://h?@=x*' });
  refusedSocket.send(connect, udpPort, '127.0.0.1');
  await sleep(1000);

  // Shutdown writes the summary lines of the interval still open.
  await server.close(500);
  const stats = server.broker.stats;
  const result = {
    udp: { datagrams, peers: peerCount, bytesIn: sent, bytesBack: received, reflectedPerByte: Number((received / sent).toFixed(3)) },
    refusedConnect: { bytesIn: connect.length, bytesBack: refusedBack, ratio: Number((refusedBack / connect.length).toFixed(3)) },
    bareTcp: bare,
    logLines: lines,
    counters: {
      dropped: Object.fromEntries(stats.dropped),
      closes: Object.fromEntries(stats.closes),
      protocolErrors: Object.fromEntries(stats.protocolErrors),
      connections: Object.fromEntries(stats.connectionsByTransport),
    },
  };
  for (const socket of [...peers, refusedSocket]) socket.close();
  console.log(JSON.stringify(result, null, 2));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(2);
});
