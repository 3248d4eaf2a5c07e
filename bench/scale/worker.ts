/**
 * A client process of the scale bench (bench/scale.ts): opens its share of the sessions from its own loopback
 * source address, each named, with the bench's raw client (bench/lib/raw-socketd.ts); refused handshakes
 * (the broker's handshake rate limit) are retried after a random 200-600 ms. Every open connection pings
 * every `pingMs`, spread evenly over the period (a 50 ms tick pings its slice), until 'quiet'.
 * Messages from the orchestrator: 'go' (open), 'quiet' (stop pinging), 'stop' (close all and report).
 * With `system: 'nats'` every session is a raw NATS connection to nats-server instead (nats-link.ts).
 */
import { FLAG, PING, RawLink, connectFrame, frameMeta } from '../lib/raw-socketd.js';
import { NatsLink } from './nats-link.js';

export interface WorkerConfig {
  system: 'socketd' | 'nats';
  host: string;
  tcpPort: number;
  wsPort: number;
  localAddress: string;
  tcp: number;
  ws: number;
  /** Handshakes in flight at a time. */
  concurrency: number;
  pingMs: number;
  prefix: string;
}

const config = JSON.parse(process.argv[2]!) as WorkerConfig;
const TICK_MS = 50;
/** What the pinging and the stop need of a session, whichever the system. */
interface Pingable {
  ping(): void;
  close(): void;
}
const links: Pingable[] = [];
let pongs = 0;
let refused = 0;
let failed = 0;
const closedByServer: Record<string, number> = {};
let stopping = false;
let ticker: NodeJS.Timeout | null = null;

function send(message: object): void {
  process.send?.(message);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Opens one named session; resolves with its link, or null when refused or failed (the caller retries). */
async function openOne(transport: 'tcp' | 'ws', name: string): Promise<Pingable | null> {
  if (config.system === 'nats') return openNats(name);
  const port = transport === 'tcp' ? config.tcpPort : config.wsPort;
  const link = new RawLink({ host: config.host, port, transport, localAddress: config.localAddress });
  try {
    await link.opened;
  } catch {
    failed++;
    return null;
  }
  return new Promise((resolve) => {
    let settled = false;
    link.onFrame = (flag, buf, start, end) => {
      if (flag === FLAG.Connack && !settled) {
        settled = true;
        link.onFrame = (f, b, s, e) => {
          if (f === FLAG.Pong) pongs++;
          else if (f === FLAG.Close) {
            const reason = /reason=([^&]*)/.exec(frameMeta(b.subarray(s, e)))?.[1] ?? 'close';
            closedByServer[reason] = (closedByServer[reason] ?? 0) + 1;
          }
        };
        link.onClose = () => {
          if (!stopping) closedByServer['connection_closed'] = (closedByServer['connection_closed'] ?? 0) + 1;
        };
        resolve({ ping: () => link.send(PING), close: () => link.close() });
      } else if (flag === FLAG.Close && !settled) {
        settled = true;
        if (frameMeta(buf.subarray(start, end)).includes('handshake_rate_limited')) refused++;
        else failed++;
        link.close();
        resolve(null);
      }
    };
    link.onClose = () => {
      if (!settled) {
        settled = true;
        failed++;
        resolve(null);
      }
    };
    link.send(connectFrame(`sd:${transport}://${config.host}:${port}/`, name));
  });
}

async function openNats(name: string): Promise<Pingable | null> {
  const link = new NatsLink(config.host, config.tcpPort, config.localAddress, name);
  try {
    await link.opened;
  } catch {
    failed++;
    link.close();
    return null;
  }
  link.onPong = () => pongs++;
  link.onClose = () => {
    if (!stopping) closedByServer['connection_closed'] = (closedByServer['connection_closed'] ?? 0) + 1;
  };
  return link;
}

async function openAll(): Promise<void> {
  const plan: ('tcp' | 'ws')[] = [];
  // Interleaved, so both transports open at the same pace.
  for (let i = 0; i < Math.max(config.tcp, config.ws); i++) {
    if (i < config.tcp) plan.push('tcp');
    if (i < config.ws) plan.push('ws');
  }
  let next = 0;
  const opener = async (): Promise<void> => {
    while (next < plan.length) {
      const i = next++;
      for (let attempt = 0; ; attempt++) {
        const link = await openOne(plan[i]!, `${config.prefix}-${i}`);
        if (link !== null) {
          links.push(link);
          break;
        }
        if (attempt > 200) throw new Error(`session ${i}: gave up after ${attempt} attempts`);
        await sleep(200 + Math.random() * 400);
      }
    }
  };
  await Promise.all(Array.from({ length: config.concurrency }, opener));
}

function startPinging(): void {
  const slices = Math.max(1, Math.round(config.pingMs / TICK_MS));
  let tick = 0;
  ticker = setInterval(() => {
    const slice = tick++ % slices;
    for (let i = slice; i < links.length; i += slices) links[i]!.ping();
  }, TICK_MS);
}

process.on('message', (m: { type: string }) => {
  if (m.type === 'go') {
    // Sessions ping from the moment they are open, as clients do (a slow opening must not idle them out).
    startPinging();
    openAll().then(
      () => send({ type: 'opened', at: Date.now(), sessions: links.length, refused, failed }),
      (error: Error) => send({ type: 'error', message: error.message }),
    );
  } else if (m.type === 'quiet') {
    if (ticker !== null) clearInterval(ticker);
    ticker = null;
    send({ type: 'quiet', pongs });
  } else if (m.type === 'stop') {
    stopping = true;
    if (ticker !== null) clearInterval(ticker);
    for (const link of links) link.close();
    const cpu = process.cpuUsage();
    send({ type: 'result', sessions: links.length, pongs, refused, failed, closedByServer, cpuMs: (cpu.user + cpu.system) / 1000 });
    setTimeout(() => process.exit(0), 500);
  }
});
process.on('disconnect', () => process.exit(0));
send({ type: 'ready' });
