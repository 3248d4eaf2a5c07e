/**
 * The parts of the client that sit behind a small owner interface (docs/client.md "Life: heartbeat,
 * reconnect, close", "Flow control"): the reconnect Backoff, the PressureGate, the Heartbeat and one connect
 * attempt (Handshake), each driven here through a fake owner. The client as a whole is tested against the
 * real broker in test/integration/client-*.test.ts.
 */
import test, { describe } from 'node:test';
import assert from 'node:assert/strict';
import { Flag } from '../../src/protocol/flags.js';
import type { Frame } from '../../src/protocol/frame.js';
import { FrameDecoder, encodeFrame } from '../../src/protocol/codec.js';
import { DEFAULT_FRAME_LIMITS } from '../../src/protocol/limits.js';
import type { Connection, ConnectionHandler } from '../../src/transport/connection.js';
import { connectWith } from '../../src/client/client.js';
import type { Dial, DialOptions, Dialer } from '../../src/client/dialer.js';
import { SocketdError } from '../../src/client/errors.js';
import { Backoff, type ReconnectOwner } from '../../src/client/reconnect.js';
import { PressureGate, type PressureOwner } from '../../src/client/pressure.js';
import { Heartbeat, type HeartbeatOwner } from '../../src/client/heartbeat.js';
import { Handshake, type HandshakeOwner } from '../../src/client/handshake.js';
import type { Link } from '../../src/client/link.js';
import type { ClientState } from '../../src/client/options.js';
import { TickClock } from '../../src/client/tick.js';
import { parseClientUrl } from '../../src/client/url.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// The pressure and heartbeat timers are unref'd (they must not keep a process alive): this one keeps the
// test's event loop running while a test awaits them.
const keepAlive = setInterval(() => undefined, 1000);
test.after(() => clearInterval(keepAlive));

function decodeOne(bytes: Buffer): Frame {
  const frames: Frame[] = [];
  new FrameDecoder(DEFAULT_FRAME_LIMITS).push(bytes, {
    onFrame: (frame: Frame) => frames.push(frame),
    onFrameError: (error: Error) => assert.fail(error),
  });
  assert.equal(frames.length, 1);
  return frames[0]!;
}

describe('client: Backoff', () => {
  const options = { enabled: true, initialDelay: 10, maxDelay: 35, factor: 2, jitter: 0 };

  test('delays grow by the factor up to maxDelay; succeeded() reports the attempts and starts over', () => {
    let calls = 0;
    const backoff = new Backoff({ _reconnectNow: async () => void calls++ }, options);
    try {
      assert.deepEqual(backoff.schedule(), { attempt: 1, delay: 10 });
      backoff.cancel();
      assert.deepEqual(backoff.schedule(), { attempt: 2, delay: 20 });
      backoff.cancel();
      assert.deepEqual(backoff.schedule(), { attempt: 3, delay: 35 });
      backoff.cancel();
      assert.equal(backoff.succeeded(), 3);
      assert.deepEqual(backoff.schedule(), { attempt: 1, delay: 10 });
    } finally {
      backoff.cancel();
    }
    assert.equal(calls, 0, 'cancelled timers never fire');
  });

  test('jitter spreads each delay within 1 ± jitter', () => {
    const backoff = new Backoff({ _reconnectNow: async () => undefined }, { ...options, maxDelay: 1000, jitter: 0.5 });
    const delays: number[] = [];
    for (let i = 0; i < 50; i++) {
      delays.push(backoff.schedule().delay);
      backoff.cancel();
      backoff.succeeded();
    }
    assert.ok(delays.every((d) => d >= 5 && d <= 15), delays.join(' '));
    assert.ok(new Set(delays).size > 1, 'the delays differ');
  });

  test('the timer calls the owner once it is due', async () => {
    const owner: ReconnectOwner & { calls: number } = {
      calls: 0,
      async _reconnectNow() {
        this.calls++;
        backoff.fired();
      },
    };
    const backoff = new Backoff(owner, options);
    backoff.schedule();
    await sleep(30);
    assert.equal(owner.calls, 1);
  });
});

class FakePressureOwner implements PressureOwner {
  full = false;
  state: ClientState = 'open';
  constructor(private readonly gate: () => PressureGate) {}
  get pressured(): boolean {
    return this.gate().held || this.full;
  }
}

describe('client: PressureGate', () => {
  test('held for `hold` ms after the last Pressure, then the waiters resolve', async () => {
    let gate!: PressureGate;
    const owner = new FakePressureOwner(() => gate);
    gate = new PressureGate(owner, 30);
    gate.onPressure();
    assert.equal(owner.pressured, true);
    let last = 0;
    const waiting = gate.wait().then(() => performance.now() - last);
    await sleep(10);
    gate.onPressure(); // a second Pressure extends the hold
    last = performance.now();
    const heldFor = await waiting;
    // Without the extension it would wake 20 ms after the last Pressure (timers may fire ~1 ms early).
    assert.ok(heldFor >= 25, `woken ${heldFor} ms after the last Pressure`);
    assert.equal(gate.held, false);
  });

  test('a full socket keeps the waiters waiting after the hold; wake() once it drained resolves them', async () => {
    let gate!: PressureGate;
    const owner = new FakePressureOwner(() => gate);
    gate = new PressureGate(owner, 1);
    owner.full = true;
    gate.onPressure();
    let woken = false;
    const waiting = gate.wait().then(() => {
      woken = true;
    });
    await sleep(10);
    assert.equal(woken, false);
    owner.full = false;
    gate.wake();
    await waiting;
  });

  test('reset() (the client closed) clears the hold and resolves the waiters even while pressured', async () => {
    let gate!: PressureGate;
    const owner = new FakePressureOwner(() => gate);
    gate = new PressureGate(owner, 60_000);
    owner.full = true;
    gate.onPressure();
    const waiting = gate.wait();
    owner.state = 'closed';
    gate.reset();
    await waiting;
    assert.equal(gate.held, false);
  });
});

interface FakeLink {
  lastReceived: number;
  closeError: SocketdError | null;
  isClosed: boolean;
  written: Buffer[];
  destroyed: string[];
  writer: { raw(bytes: Buffer): void };
  connection: { destroy(reason: string): void; start(handler: unknown): void };
}

function fakeLink(): FakeLink {
  const link: FakeLink = {
    lastReceived: 0,
    closeError: null,
    isClosed: false,
    written: [],
    destroyed: [],
    writer: { raw: (bytes) => void link.written.push(bytes) },
    connection: {
      destroy: (reason) => {
        link.destroyed.push(reason);
        link.isClosed = true;
      },
      start: () => undefined,
    },
  };
  return link;
}

describe('client: Heartbeat', () => {
  test('pings while frames arrive; drops the link after 2.5 silent intervals', async () => {
    const link = fakeLink();
    const clock = new TickClock();
    const owner: HeartbeatOwner = { _liveLink: () => (link.isClosed ? null : (link as unknown as Link)) };
    const heartbeat = new Heartbeat(owner, 20, clock);
    link.lastReceived = clock.now();
    heartbeat.start();
    try {
      await sleep(30);
      assert.ok(link.written.length >= 1, 'a Ping went out');
      assert.equal(decodeOne(link.written[0]!).flag, Flag.Ping);
      await sleep(100);
      assert.deepEqual(link.destroyed, ['heartbeat timeout']);
      assert.equal(link.closeError?.code, 'connection_lost');
    } finally {
      heartbeat.stop();
    }
  });

  test('interval 0 starts no timer; no live link, no Ping', async () => {
    const link = fakeLink();
    const off = new Heartbeat({ _liveLink: () => link as unknown as Link }, 0, new TickClock());
    off.start();
    const none = new Heartbeat({ _liveLink: () => null }, 5, new TickClock());
    none.start();
    await sleep(20);
    none.stop();
    assert.equal(link.written.length, 0);
  });
});

/** A dial the test settles by hand. */
function manualDialer(): { dialer: Dialer; dials: { resolve(c: Connection): void; reject(e: SocketdError): void; cancelled: string[] }[] } {
  const dials: { resolve(c: Connection): void; reject(e: SocketdError): void; cancelled: string[] }[] = [];
  const dialer: Dialer = (_target, _options: DialOptions): Dial => {
    let resolve!: (c: Connection) => void;
    let reject!: (e: SocketdError) => void;
    const promise = new Promise<Connection>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const entry = { resolve, reject, cancelled: [] as string[] };
    dials.push(entry);
    return { promise, cancel: (reason) => void entry.cancelled.push(reason) };
  };
  return { dialer, dials };
}

class FakeHandshakeOwner implements HandshakeOwner {
  current: Handshake | null = null;
  done: Link | null = null;
  links: FakeLink[] = [];
  _newLink(): Link {
    const link = fakeLink();
    this.links.push(link);
    return link as unknown as Link;
  }
  _handshakeEnded(hs: Handshake): void {
    if (this.current === hs) this.current = null;
  }
  _handshakeDone(_hs: Handshake, link: Link): void {
    this.done = link;
  }
}

function attempt(owner: FakeHandshakeOwner, dialer: Dialer, timeout = 1000): { hs: Handshake; result: Promise<string> } {
  let hs!: Handshake;
  const result = new Promise<void>((resolve, reject) => {
    hs = new Handshake(owner, 'sid-1', resolve, reject);
    owner.current = hs;
    hs.start(dialer, parseClientUrl('sd:tcp://127.0.0.1:9/'), { maxDatagram: 2048, maxPayload: 1 << 20 }, timeout, 'Socket.D=1.0');
  }).then(() => 'ok', (error: SocketdError) => error.code);
  return { hs, result };
}

const fakeConnection = (link: () => FakeLink | undefined): Connection =>
  ({ start: () => undefined, destroy: (reason: string) => link()?.destroyed.push(reason) }) as unknown as Connection;

describe('client: Handshake', () => {
  test('sends Connect on the new link, and the Connack hands the link to the owner', async () => {
    const owner = new FakeHandshakeOwner();
    const { dialer, dials } = manualDialer();
    const { hs, result } = attempt(owner, dialer);
    dials[0]!.resolve(fakeConnection(() => owner.links[0]));
    await sleep(0);
    const connect = decodeOne(owner.links[0]!.written[0]!);
    assert.equal(connect.flag, Flag.Connect);
    assert.equal(connect.sid, 'sid-1');
    assert.equal(connect.metaString, 'Socket.D=1.0');
    hs.onFrame(decodeOne(encodeFrame({ flag: Flag.Connack, sid: 'sid-1' })));
    assert.equal(await result, 'ok');
    assert.equal(owner.done, owner.links[0] as unknown as Link);
    assert.equal(owner.current, null);
  });

  test('a Close refuses the attempt with its code; the attempt ends once', async () => {
    const owner = new FakeHandshakeOwner();
    const { dialer, dials } = manualDialer();
    const { hs, result } = attempt(owner, dialer);
    dials[0]!.resolve(fakeConnection(() => owner.links[0]));
    await sleep(0);
    hs.onFrame(decodeOne(encodeFrame({ flag: Flag.Close, meta: 'code=4001&reason=auth', data: 'bad token' })));
    hs.fail(new SocketdError('connect_failed', 'later'));
    assert.equal(await result, 'handshake_refused');
    assert.deepEqual(owner.links[0]!.destroyed, ['bad token']);
    assert.equal(owner.done, null);
  });

  test('no Connack within the timeout: connect_timeout, the dial cancelled; a late dial is destroyed', async () => {
    const owner = new FakeHandshakeOwner();
    const { dialer, dials } = manualDialer();
    const { result } = attempt(owner, dialer, 10);
    assert.equal(await result, 'connect_timeout');
    assert.equal(owner.current, null);
    assert.equal(dials[0]!.cancelled.length, 1);
    const destroyed: string[] = [];
    dials[0]!.resolve({ destroy: (reason: string) => void destroyed.push(reason) } as unknown as Connection);
    await sleep(0);
    assert.deepEqual(destroyed, ['handshake abandoned']);
    assert.equal(owner.links.length, 0, 'no link for an abandoned attempt');
  });

  test('a failed dial rejects with its error', async () => {
    const owner = new FakeHandshakeOwner();
    const { dialer, dials } = manualDialer();
    const { result } = attempt(owner, dialer);
    dials[0]!.reject(new SocketdError('connect_failed', 'refused'));
    assert.equal(await result, 'connect_failed');
  });
});

/** A stream connection the test drives by hand: the client's writes are kept, the broker's bytes pushed in. */
class ScriptedConnection {
  readonly transport = 'tcp';
  readonly framing = 'stream';
  readonly remoteAddress = '127.0.0.1';
  readonly remotePort = 9;
  readonly maxOutboundFrame = Infinity;
  readonly bufferedBytes = 0;
  closed = false;
  handler: ConnectionHandler | null = null;
  written: Buffer[] = [];
  start(handler: ConnectionHandler): void {
    this.handler = handler;
  }
  write(head: Buffer, body?: Buffer): boolean {
    this.written.push(body === undefined ? head : Buffer.concat([head, body]));
    return true;
  }
  end(reason: string): void {
    this.close(reason);
  }
  destroy(reason: string): void {
    this.close(reason);
  }
  close(detail: string): void {
    if (this.closed) return;
    this.closed = true;
    this.handler?.connectionOnClose('peer_closed', detail);
  }
}

const refTimeouts = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

describe('client: life over a scripted connection', () => {
  test('close() from a `reconnecting` listener leaves no reconnect timer behind', async () => {
    const conn = new ScriptedConnection();
    const dialer: Dialer = () => ({ promise: Promise.resolve(conn as unknown as Connection), cancel: () => undefined });
    const started = connectWith(dialer, 'sd:tcp://127.0.0.1:9', { reconnect: { initialDelay: 60_000, jitter: 0 }, heartbeatInterval: 0 });
    for (let i = 0; i < 10 && conn.written.length === 0; i++) await sleep(0);
    assert.equal(decodeOne(conn.written[0]!).flag, Flag.Connect);
    conn.handler!.connectionOnData(encodeFrame({ flag: Flag.Connack, sid: decodeOne(conn.written[0]!).sid }));
    const client = await started;
    assert.equal(client.state, 'open');
    const before = refTimeouts();
    const attempts: number[] = [];
    client.events.on('reconnecting', ({ attempt }) => {
      attempts.push(attempt);
      void client.close();
    });
    const closed = client.events.next('close');
    conn.close('the broker went away');
    await closed;
    assert.deepEqual(attempts, [1]);
    assert.equal(client.state, 'closed');
    // The attempt's 60 s timer would keep the process alive after close().
    assert.equal(refTimeouts(), before);
  });
});
