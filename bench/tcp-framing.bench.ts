/**
 * Standard tcp clients with and without `listeners.tcp.detectPythonFraming` (docs/clients.md, "Python"): the
 * detection decides once per connection, so the broker's CPU per forwarded message must not change. One
 * publisher streams 128-byte Messages `@=sub` to one subscriber over loopback; the broker runs in a child
 * process whose CPU time is measured over the stream. Rounds alternate the two settings.
 *
 *   node dist/bench/tcp-framing.bench.js [--messages=300000] [--rounds=6]
 */
import { fork, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { DEFAULT_FRAME_LIMITS, Flag, FrameDecoder, encodeFrame, type FrameSink } from '../src/protocol/index.js';
import { startServer } from '../src/server.js';
import { configFrom } from '../src/config/load.js';

const arg = (name: string): string | undefined => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const MESSAGES = Number(arg('messages') ?? 300_000);
const ROUNDS = Number(arg('rounds') ?? 6);
const BATCH = 100;

/** Child: the broker, tcp only, detection as told; reports its CPU time between 'start' and 'stop'. */
async function broker(detect: boolean): Promise<void> {
  const local = { enabled: true, host: '127.0.0.1', port: 0 };
  const config = configFrom({
    listeners: { tcp: { ...local, detectPythonFraming: detect }, udp: { ...local, enabled: false }, ws: { ...local, enabled: false } },
    http: { ...local, enabled: false },
  }, 'bench');
  const server = await startServer(config, { logger: pino({ level: 'silent' }) });
  let from = process.cpuUsage();
  process.on('message', (m) => {
    if (m === 'start') from = process.cpuUsage();
    if (m === 'stop') {
      const used = process.cpuUsage(from);
      process.send!({ cpuMs: (used.user + used.system) / 1000 });
      void server.close(100).then(() => process.exit(0));
    }
  });
  process.send!({ port: server.addresses.tcp!.port });
}

interface Peer {
  socket: net.Socket;
  frames: () => number;
}

async function peer(port: number, name: string): Promise<Peer> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.setNoDelay(true);
  const url = `tcp://127.0.0.1:${port}/?@=${name}`;
  socket.write(encodeFrame({ flag: Flag.Connect, sid: 'c', event: url, meta: 'Socket.D=1.0', data: url }));
  let frames = 0;
  const decoder = new FrameDecoder(DEFAULT_FRAME_LIMITS);
  const sink: FrameSink = { onFrame: () => void frames++, onFrameError: () => undefined };
  socket.on('data', (chunk: Buffer) => decoder.push(chunk, sink));
  return { socket, frames: () => frames };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function round(detect: boolean): Promise<{ detect: boolean; ms: number; cpuUsPerMessage: number }> {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['--broker', detect ? 'on' : 'off']);
  const [{ port }] = (await once(child, 'message')) as [{ port: number }];
  const sub = await peer(port, 'sub');
  const pub = await peer(port, 'pub');
  while (sub.frames() < 1 || pub.frames() < 1) await new Promise((r) => setTimeout(r, 5)); // the Connacks
  const message = encodeFrame({ flag: Flag.Message, sid: 'x'.repeat(20), event: 'tick', meta: '@=sub', data: Buffer.alloc(128, 1) });
  const batch = Buffer.concat(Array<Buffer>(BATCH).fill(message));
  child.send('start');
  const started = Date.now();
  let sent = 0;
  while (sent < MESSAGES) {
    if (!pub.socket.write(batch)) await once(pub.socket, 'drain');
    sent += BATCH;
    // At most 20,000 in flight: the broker's queues stay below their high-water mark.
    while (sub.frames() - 1 < sent - 20_000) await tick();
  }
  while (sub.frames() - 1 < MESSAGES) await new Promise((r) => setTimeout(r, 1));
  const ms = Date.now() - started;
  child.send('stop');
  const [{ cpuMs }] = (await once(child, 'message')) as [{ cpuMs: number }];
  pub.socket.destroy();
  sub.socket.destroy();
  return { detect, ms, cpuUsPerMessage: (cpuMs * 1000) / MESSAGES };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function main(): Promise<void> {
  const at = process.argv.indexOf('--broker');
  if (at !== -1) return broker(process.argv[at + 1] === 'on');
  const results: Awaited<ReturnType<typeof round>>[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    for (const detect of r % 2 === 0 ? [false, true] : [true, false]) {
      const result = await round(detect);
      results.push(result);
      console.log(`detectPythonFraming ${detect ? 'on ' : 'off'}: ${MESSAGES} messages in ${result.ms} ms, broker CPU ${result.cpuUsPerMessage.toFixed(3)} us/message`);
    }
  }
  for (const detect of [false, true]) {
    const cpu = results.filter((x) => x.detect === detect).map((x) => x.cpuUsPerMessage);
    console.log(`detectPythonFraming ${detect ? 'on ' : 'off'}: median ${median(cpu).toFixed(3)} us/message (${cpu.map((c) => c.toFixed(3)).join(', ')})`);
  }
}

await main();
