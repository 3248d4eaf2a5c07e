/**
 * Helpers shared by the integration tests (test/integration): reference fixtures by name, clean shutdown of
 * clients, and the "nothing left behind" check on a running broker.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { Flag, encodeBare, encodeFrame } from '../../src/protocol/index.js';
import type { RunningServer } from '../../src/server.js';
import { loadReferenceFrames } from './fixtures.js';
import { RawClient, sid, type RawConnectOptions, type RawTransport } from './raw-client.js';
import { eventually, ports } from './broker.js';

export const TRANSPORTS: readonly RawTransport[] = ['tcp', 'ws', 'udp'];

/** The bytes of one captured reference frame, e.g. `fixture('a1')`. */
export function fixture(name: string): Buffer {
  const found = loadReferenceFrames().find((f) => f.name === name);
  if (found === undefined) throw new Error(`no reference frame '${name}'`);
  return found.bytes;
}

/** The broker's port for a transport. */
export function portOf(server: RunningServer, transport: RawTransport): number {
  return ports(server)[transport];
}

export function connect(server: RunningServer, transport: RawTransport, options: RawConnectOptions = {}): Promise<RawClient> {
  return RawClient.connect(transport, portOf(server, transport), options);
}

/**
 * Ends clients the way a well-behaved peer would: udp clients send Close first (udp has no connection to
 * drop), every socket is then closed.
 */
export function closeAll(...clients: (RawClient | undefined | null)[]): void {
  for (const c of clients) {
    if (c === undefined || c === null || c.closed) continue;
    if (c.transport === 'udp' && !c.closeReceived) {
      try {
        c.sendClose();
      } catch {
        // socket already gone
      }
    }
    c.close();
  }
}

/** Waits until the broker holds nothing: no session, connection, registry entry, name group, timer or stream. */
export async function assertBrokerEmpty(server: RunningServer, timeoutMs = 3000): Promise<void> {
  const b = server.broker;
  const snapshot = (): string =>
    `sessions=${b.sessionCount} connections=${b.connectionCount} registry=${b.registry.size} named=${b.registry.namedCount} ` +
    `names=${b.registry.nameCount} timers=${b.pendingTimers} streams=${b.stats.streamsOpen}`;
  try {
    await eventually(
      () =>
        b.sessionCount === 0 && b.connectionCount === 0 && b.registry.size === 0 && b.registry.namedCount === 0 &&
        b.registry.nameCount === 0 && b.pendingTimers === 0 && b.stats.streamsOpen === 0,
      timeoutMs,
      'an empty broker',
    );
  } catch {
    assert.fail(`broker still holds something: ${snapshot()}`);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Meta value from a `k=v&k=v` string. */
export function metaOf(metaString: string, key: string): string | undefined {
  for (const part of metaString.split('&')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq) === key) return part.slice(eq + 1);
  }
  return undefined;
}

/** Waits until the session count reaches `n` (sessions open or in their handshake). */
export function sessionsReach(server: RunningServer, n: number, timeoutMs = 3000): Promise<void> {
  return eventually(() => server.broker.sessionCount === n, timeoutMs, `${n} sessions (now ${server.broker.sessionCount})`);
}

/**
 * The reference capture's two sessions over tcp: `svc` connected with fixture a1 (`?@=svc`) and an anonymous
 * caller with fixture a2, both past their Connack, so fixtures c1, d1, d5 ... can be replayed verbatim.
 */
export async function referencePair(server: RunningServer): Promise<{ svc: RawClient; caller: RawClient }> {
  const port = portOf(server, 'tcp');
  const svc = await RawClient.open('tcp', port);
  const caller = await RawClient.open('tcp', port);
  svc.sendBytes(fixture('a1'));
  caller.sendBytes(fixture('a2'));
  await svc.nextFlag(Flag.Connack);
  await caller.nextFlag(Flag.Connack);
  return { svc, caller };
}

/**
 * A tcp session that completes its handshake and then never reads again (but pings every 100 ms, so it is not
 * idle): a slow consumer whose outbound queue fills.
 */
export async function stalledConsumer(port: number, name: string): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  const url = `tcp://127.0.0.1:${port}?@=${name}`;
  socket.write(encodeFrame({ flag: Flag.Connect, sid: sid(), event: url, meta: 'Socket.D=1.0', data: url }));
  await new Promise<void>((resolve) => socket.once('data', () => resolve()));
  socket.pause();
  const ping = encodeBare(Flag.Ping);
  const timer = setInterval(() => socket.write(ping), 100);
  socket.once('close', () => clearInterval(timer));
  return socket;
}
