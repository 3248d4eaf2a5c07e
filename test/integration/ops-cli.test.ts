/**
 * The real command line: `node bin/socketd-broker.js` as a child process. --version, --help, invalid
 * configs, check-config, a real start on port 0 (ports read from the `broker_started` log line), and
 * graceful shutdown: SIGTERM sends Close (code=1001, reason=shutdown) to connected clients, one mid-request
 * included, and exits 0; the drain deadline is shutdown.drainMs; a second signal exits at once.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Flag, encodeFrame, type Frame } from '../../src/protocol/index.js';
import { RawClient } from '../support/raw-client.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const BIN = join(ROOT, 'bin/socketd-broker.js');
/** Generous: the machine has two cores and other suites may be running. */
const START_MS = 30_000;
const WAIT_MS = 10_000;

const dir = mkdtempSync(join(tmpdir(), 'socketd-ops-cli-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** Every listener on 127.0.0.1 (ports come from the flags). */
const LOCAL_CONFIG = file('local.yaml', [
  'listeners:',
  '  tcp: { host: 127.0.0.1 }',
  '  udp: { host: 127.0.0.1 }',
  '  ws: { host: 127.0.0.1 }',
  'http:',
  '  host: 127.0.0.1',
  '',
].join('\n'));
const PORT_FLAGS = ['--tcp', '0', '--udp', '0', '--ws', '0', '--http', '0'];

/** The environment without any SOCKETD_* of the caller's, plus `extra`. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SOCKETD_')) env[k] = v;
  return { ...env, ...extra };
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to its end. */
function runCli(args: string[], env: Record<string, string> = {}, timeoutMs = START_MS): Promise<Run> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`socketd-broker ${args.join(' ')} still running after ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout, stderr });
    });
  });
}

type LogLine = Record<string, unknown> & { event?: string };

/** A broker process started on port 0, its JSON log lines collected from stderr. */
class BrokerProcess {
  readonly lines: LogLine[] = [];
  stderr = '';
  stdout = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcess;
  private buffered = '';
  private waiters: { match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];

  constructor(args: string[], env: Record<string, string> = {}) {
    this.child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (d: Buffer) => (this.stdout += d.toString()));
    this.child.stderr!.on('data', (d: Buffer) => this.onStderr(d.toString()));
    this.exited = new Promise((r) => this.child.on('exit', (code, signal) => r({ code, signal })));
  }

  private onStderr(text: string): void {
    this.stderr += text;
    this.buffered += text;
    let nl: number;
    while ((nl = this.buffered.indexOf('\n')) !== -1) {
      const line = this.buffered.slice(0, nl);
      this.buffered = this.buffered.slice(nl + 1);
      if (!line.startsWith('{')) continue;
      let parsed: LogLine;
      try {
        parsed = JSON.parse(line) as LogLine;
      } catch {
        continue;
      }
      this.lines.push(parsed);
      for (const w of this.waiters.filter((w) => w.match(parsed))) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(parsed);
      }
    }
  }

  /** The first log line (past or future) with this event. */
  waitEvent(event: string, timeoutMs = WAIT_MS): Promise<LogLine> {
    const seen = this.lines.find((l) => l.event === event);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolvePromise, reject) => {
      const timer = setTimeout(() => reject(new Error(`no '${event}' log line within ${timeoutMs} ms; stderr:\n${this.stderr}`)), timeoutMs);
      const exitFirst = this.exited.then(({ code }) => reject(new Error(`exited (${code}) before '${event}'; stderr:\n${this.stderr}`)));
      void exitFirst;
      this.waiters.push({ match: (l) => l.event === event, resolve: (l) => {
        clearTimeout(timer);
        resolvePromise(l);
      } });
    });
  }

  /** Waits for `broker_started` and returns the bound ports. */
  async ports(): Promise<{ tcp: number; udp: number; ws: number; http: number }> {
    const line = await this.waitEvent('broker_started', START_MS);
    const a = line.addresses as Record<string, { host: string; port: number }>;
    for (const name of ['tcp', 'udp', 'ws', 'http']) {
      assert.equal(a[name].host, '127.0.0.1', `${name} bound on the configured host`);
      assert.ok(a[name].port > 0, `${name} got a real port`);
    }
    return { tcp: a.tcp.port, udp: a.udp.port, ws: a.ws.port, http: a.http.port };
  }

  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  /** Waits for the exit, failing after `timeoutMs`. */
  async exit(timeoutMs = WAIT_MS): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`still running after ${timeoutMs} ms; stderr:\n${this.stderr}`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

function metaOf(frame: Frame, key: string): string | undefined {
  return frame.meta(key) ?? undefined;
}

const isClose = (f: Frame): boolean => f.flag === Flag.Close;

test('--version prints package.json\'s version and exits 0', async () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  const run = await runCli(['--version']);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout.trim(), pkg.version);
  const short = await runCli(['-V']);
  assert.equal(short.stdout.trim(), pkg.version);
});

test('--help exits 0 and documents the flags, check-config and the environment', async () => {
  const run = await runCli(['--help']);
  assert.equal(run.code, 0, run.stderr);
  for (const word of ['--config', '--tcp', '--udp', '--ws', '--http', '--log-level', '--log-pretty', '--version', 'check-config', 'SOCKETD_TCP_PORT', 'SOCKETD_<SECTION>__<KEY>']) {
    assert.ok(run.stdout.includes(word), `--help mentions ${word}`);
  }
});

test('an unknown flag or a bad port exits non-zero before starting', async () => {
  const unknown = await runCli(['--bogus']);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /unknown option '--bogus'/);
  const badPort = await runCli(['--tcp', '99999']);
  assert.equal(badPort.code, 1);
  assert.match(badPort.stderr, /a port is an integer from 0 to 65535/);
});

test('an invalid config file: exit 2, one line on stderr naming the file and the path', async () => {
  const bad = file('bad-start.yaml', 'limits:\n  maxData: "1 MiB"\n');
  const run = await runCli(['--config', bad, ...PORT_FLAGS]);
  assert.equal(run.code, 2);
  const lines = run.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line: ${run.stderr}`);
  assert.equal(lines[0], `socketd-broker: invalid configuration (${bad}): limits.maxData: expected an integer, got string "1 MiB"`);
  assert.equal(run.stdout, '');
});

test('an invalid environment variable, a missing file, a YAML error, a cross-field error: exit 2, one line each', async () => {
  const env = await runCli(PORT_FLAGS, { SOCKETD_LIMITS__MAX_DATA: 'lots' });
  assert.equal(env.code, 2);
  assert.equal(env.stderr.trim(), 'socketd-broker: invalid configuration (environment): SOCKETD_LIMITS__MAX_DATA: limits.maxData: expected an integer, got string "lots"');

  const missing = join(dir, 'nope.yaml');
  const run = await runCli(['--config', missing]);
  assert.equal(run.code, 2);
  assert.equal(run.stderr.trim(), `socketd-broker: invalid configuration (${missing}): cannot read the file: ENOENT (no such file)`);

  const syntax = file('syntax.yaml', 'limits: [\n');
  const yamlRun = await runCli(['--config', syntax]);
  assert.equal(yamlRun.code, 2);
  assert.equal(yamlRun.stderr.trim().split('\n').length, 1);
  assert.match(yamlRun.stderr, /invalid configuration \(.*syntax\.yaml\): not valid YAML: /);

  const cross = file('cross.yaml', 'limits:\n  maxFrame: 1000\n  maxData: 2000\n');
  const crossRun = await runCli(['--config', cross]);
  assert.equal(crossRun.code, 2);
  assert.match(crossRun.stderr.trim(), /^socketd-broker: invalid configuration \(.*cross\.yaml\): limits\.maxData \(2000\) may not exceed limits\.maxFrame \(1000\)$/);
});

test('check-config: the embedded config is ok (exit 0); a bad file lists every problem with its path (exit 1)', async () => {
  const good = await runCli(['check-config', join(ROOT, 'config/broker.yaml')]);
  assert.equal(good.code, 0, good.stderr);
  assert.equal(good.stdout.trim(), `${join(ROOT, 'config/broker.yaml')}: ok`);

  const badFile = file('check-bad.yaml', 'foo: 1\nlisteners:\n  tcp:\n    port: 70000\nflow:\n  slowConsumerPolicy: block\n');
  const bad = await runCli(['check-config', badFile]);
  assert.equal(bad.code, 1);
  assert.equal(bad.stdout, '');
  assert.deepEqual(bad.stderr.trim().split('\n'), [
    `${badFile}: foo: unknown key (known: listeners, http, limits, timeouts, flow, fastPaths, log, shutdown, access, namespaces, cluster)`,
    `${badFile}: listeners.tcp.port: 70000 is outside 0..65535`,
    `${badFile}: flow.slowConsumerPolicy: expected one of disconnect, drop, got string "block"`,
    `${badFile}: invalid (3 problems)`,
  ]);

  const missing = await runCli(['check-config', join(dir, 'absent.yaml')]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /absent\.yaml: cannot read the file: ENOENT/);

  const noArg = await runCli(['check-config']);
  assert.notEqual(noArg.code, 0);
  assert.match(noArg.stderr, /missing required argument 'file'/);
});

test('a real start on port 0, then SIGTERM: the connected client gets Close 1001 shutdown and the process exits 0', { timeout: 90_000 }, async () => {
  const broker = new BrokerProcess(['--config', LOCAL_CONFIG, ...PORT_FLAGS]);
  let client: RawClient | undefined;
  try {
    const p = await broker.ports();
    const loaded = await broker.waitEvent('config_loaded');
    assert.equal(loaded.file, LOCAL_CONFIG);
    assert.equal(loaded.service, 'socketd-broker');
    assert.equal(typeof loaded.pid, 'number');
    assert.equal(typeof loaded.time, 'number');
    assert.equal(loaded.level, 30);

    const ready = await fetch(`http://127.0.0.1:${p.http}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { status: 'ready' });

    client = await RawClient.connect('tcp', p.tcp, { name: 'ops-client' });
    const open = await broker.waitEvent('session_open');
    assert.equal(open.name, 'ops-client');
    assert.equal(open.transport, 'tcp');

    broker.signal('SIGTERM');
    const close = await client.next(isClose, WAIT_MS);
    assert.equal(metaOf(close, 'code'), '1001');
    assert.equal(metaOf(close, 'reason'), 'shutdown');
    assert.equal(close.data.toString(), 'broker shutting down');
    await client.waitClosed(WAIT_MS);

    const { code, signal } = await broker.exit(WAIT_MS);
    assert.equal(signal, null);
    assert.equal(code, 0, broker.stderr);
    const events = broker.lines.map((l) => l.event);
    for (const e of ['config_loaded', 'broker_started', 'session_open', 'shutdown', 'session_close', 'broker_stopped']) {
      assert.ok(events.includes(e), `logged ${e}: ${events.join(', ')}`);
    }
    const closed = broker.lines.find((l) => l.event === 'session_close')!;
    assert.equal(closed.reason, 'shutdown');
    assert.equal((broker.lines.find((l) => l.event === 'shutdown')!).signal, 'SIGTERM');
  } finally {
    client?.close();
    broker.kill();
  }
});

test('SIGTERM with a requester mid-stream: its Request stays open (the responder never answers) and it gets the Close', { timeout: 90_000 }, async () => {
  const broker = new BrokerProcess(['--config', LOCAL_CONFIG, ...PORT_FLAGS]);
  let responder: RawClient | undefined;
  let requester: RawClient | undefined;
  try {
    const p = await broker.ports();
    responder = await RawClient.connect('ws', p.ws, { name: 'silent' });
    requester = await RawClient.connect('tcp', p.tcp, { name: 'asker' });
    const requestSid = requester.send({ flag: Flag.Request, event: 'question', meta: '@=silent', data: 'anyone?' });
    const forwarded = await responder.nextFlag(Flag.Request, WAIT_MS);
    assert.equal(forwarded.event, 'question');
    // The responder never answers: the request is open when the signal comes.
    broker.signal('SIGINT');
    const close = await requester.next(isClose, WAIT_MS);
    assert.equal(metaOf(close, 'code'), '1001');
    assert.equal(metaOf(close, 'reason'), 'shutdown');
    const responderClose = await responder.next(isClose, WAIT_MS);
    assert.equal(metaOf(responderClose, 'reason'), 'shutdown');
    assert.ok(!requester.frames.some((f) => f.sid === requestSid && f.flag === Flag.ReplyEnd), 'no answer was made up');
    const { code } = await broker.exit(WAIT_MS);
    assert.equal(code, 0, broker.stderr);
    assert.equal((broker.lines.find((l) => l.event === 'shutdown')!).signal, 'SIGINT');
  } finally {
    responder?.close();
    requester?.close();
    broker.kill();
  }
});

/** A tcp client that completes its handshake and then never closes its side (the broker must cut it off). */
async function stuckClient(port: number): Promise<net.Socket> {
  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  await new Promise<void>((r, j) => {
    socket.once('connect', r);
    socket.once('error', j);
  });
  socket.on('error', () => undefined);
  const url = `tcp://127.0.0.1:${port}?@=stuck`;
  socket.write(encodeFrame({ flag: Flag.Connect, sid: 'stuck-1', event: url, meta: 'Socket.D=1.0', data: url }));
  await new Promise<void>((r) => socket.once('data', () => r()));
  return socket;
}

test('the drain deadline is shutdown.drainMs: a client that never closes is cut off after it, exit 0', { timeout: 90_000 }, async () => {
  const broker = new BrokerProcess(['--config', LOCAL_CONFIG, ...PORT_FLAGS], { SOCKETD_SHUTDOWN__DRAIN_MS: '200' });
  let socket: net.Socket | undefined;
  try {
    const p = await broker.ports();
    socket = await stuckClient(p.tcp);
    await broker.waitEvent('session_open');
    const started = Date.now();
    broker.signal('SIGTERM');
    const { code } = await broker.exit(WAIT_MS);
    const elapsed = Date.now() - started;
    assert.equal(code, 0, broker.stderr);
    // The tcp transport itself would wait 5 s for the peer's FIN; the 200 ms deadline cuts that short.
    assert.ok(elapsed < 4_000, `exited ${elapsed} ms after SIGTERM`);
    assert.equal((broker.lines.find((l) => l.event === 'shutdown')!).drainMs, 200);
    // The broker ended its side (its Close went first); the client never did, and the process is gone.
    assert.equal(socket.readyState, 'writeOnly');
  } finally {
    socket?.destroy();
    broker.kill();
  }
});

test('a second signal during the drain exits at once with status 1', { timeout: 90_000 }, async () => {
  const broker = new BrokerProcess(['--config', LOCAL_CONFIG, ...PORT_FLAGS], { SOCKETD_SHUTDOWN__DRAIN_MS: '60000' });
  let socket: net.Socket | undefined;
  try {
    const p = await broker.ports();
    socket = await stuckClient(p.tcp);
    await broker.waitEvent('session_open');
    broker.signal('SIGTERM');
    await broker.waitEvent('shutdown');
    const started = Date.now();
    broker.signal('SIGTERM');
    const { code } = await broker.exit(WAIT_MS);
    assert.equal(code, 1);
    assert.ok(Date.now() - started < 3_000, 'at once');
    assert.ok(broker.lines.some((l) => l.event === 'forced_exit'), broker.stderr);
    assert.ok(!broker.lines.some((l) => l.event === 'broker_stopped'), 'did not wait for the drain');
  } finally {
    socket?.destroy();
    broker.kill();
  }
});

test('a signal during the start is not lost: the broker starts, then shuts down and exits 0', { timeout: 90_000 }, async () => {
  const broker = new BrokerProcess(['--config', LOCAL_CONFIG, ...PORT_FLAGS]);
  try {
    await broker.waitEvent('config_loaded', START_MS);
    broker.signal('SIGTERM');
    const { code, signal } = await broker.exit(WAIT_MS);
    assert.equal(signal, null, 'not killed by the signal');
    assert.equal(code, 0, broker.stderr);
    assert.ok(broker.lines.some((l) => l.event === 'shutdown'), broker.stderr);
  } finally {
    broker.kill();
  }
});

test('flags beat the environment, which beats the file (real process)', { timeout: 90_000 }, async () => {
  // A port already taken: if the environment's tcp port won over the --tcp 0 flag, the start would fail.
  const taken = net.createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
  const takenPort = (taken.address() as net.AddressInfo).port;
  try {
    // The file says log level error (no info lines); the environment says warn; the flag says info.
    const quiet = file('quiet.yaml', `${readFileSync(LOCAL_CONFIG, 'utf8')}log:\n  level: error\n`);
    const flagWins = new BrokerProcess(['--config', quiet, ...PORT_FLAGS, '--log-level', 'info'], {
      SOCKETD_LOG_LEVEL: 'warn', SOCKETD_TCP_PORT: String(takenPort), SOCKETD_BROKER_SERVICE_HOST: '10.0.0.1',
    });
    try {
      const p = await flagWins.ports();
      assert.notEqual(p.tcp, takenPort);
      const warning = await flagWins.waitEvent('config_warning');
      assert.equal(warning.level, 40);
      assert.match(String(warning.msg), /^SOCKETD_BROKER_SERVICE_HOST: not a socketd-broker setting, ignored/);
      flagWins.signal('SIGTERM');
      assert.equal((await flagWins.exit(WAIT_MS)).code, 0, flagWins.stderr);
    } finally {
      flagWins.kill();
    }
    // Without the flag, the environment's level (info) beats the file's (error): broker_started is logged.
    const envWins = new BrokerProcess(['--config', quiet, ...PORT_FLAGS], { SOCKETD_LOG_LEVEL: 'info' });
    try {
      await envWins.ports();
      envWins.signal('SIGTERM');
      assert.equal((await envWins.exit(WAIT_MS)).code, 0, envWins.stderr);
    } finally {
      envWins.kill();
    }
    // And the environment's tcp port, when no flag overrides it, is used: the taken port fails the start.
    const envPort = await runCli(['--config', quiet, '--udp', '0', '--ws', '0', '--http', '0'], { SOCKETD_TCP_PORT: String(takenPort) });
    assert.equal(envPort.code, 1);
    assert.match(envPort.stderr, /EADDRINUSE/);
  } finally {
    await new Promise<void>((r) => taken.close(() => r()));
  }
});

test('--log-pretty prints human-readable lines, not JSON', { timeout: 90_000 }, async () => {
  const broker = new BrokerProcess(['--config', LOCAL_CONFIG, ...PORT_FLAGS, '--log-pretty']);
  try {
    const until = Date.now() + START_MS;
    while (!broker.stderr.includes('socketd-broker listening')) {
      if (Date.now() > until) throw new Error(`no pretty start line: ${broker.stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    broker.signal('SIGTERM');
    assert.equal((await broker.exit(WAIT_MS)).code, 0, broker.stderr);
    assert.equal(broker.lines.length, 0, 'no JSON lines');
    assert.match(broker.stderr, /INFO.*socketd-broker listening/);
    assert.match(broker.stderr, /event: "broker_started"/);
    assert.match(broker.stderr, /socketd-broker stopped/);
  } finally {
    broker.kill();
  }
});
