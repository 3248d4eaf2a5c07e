/**
 * The package as users get it (README "Install", docs/client.md "Install"): `npm pack` (its `prepack` builds
 * dist/) in a copy of the checkout, then `npm install <tarball>` into an empty project in a temporary folder
 * outside the source tree, and from there only:
 * - the tarball holds the built server, SDK, browser bundle, declarations, CLI, default config, examples and
 *   docs, and no sources, tests, bench or source maps of sources it does not ship;
 * - `node_modules/.bin/socketd-broker` answers --version, --help and check-config on the shipped config, and
 *   so does the command `npm install -g` of the tarball installs;
 * - the installed broker starts on free ports and the installed SDK does a request/reply and a
 *   publish/subscribe round trip through it from an ESM script;
 * - a TypeScript consumer type-checks with tsc against the installed declarations (moduleResolution node16
 *   and bundler), then runs;
 * - importing `socketd-broker/client` loads nothing of the broker, pino, prom-client, commander or yaml.
 * npm reads the registry with --prefer-offline: a warm npm cache makes the install take seconds.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { clientViolations, modulesLoadedBy } from '../support/load-trace.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };
/** The repository's own TypeScript compiler, run with node. */
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
/** @types/node of the repository, so the consumer's install is served from the npm cache. */
const TYPES_NODE = (JSON.parse(readFileSync(join(ROOT, 'node_modules', '@types', 'node', 'package.json'), 'utf8')) as { version: string }).version;
/** Generous: npm and tsc on a two-core machine shared with other suites. */
const STEP_MS = 120_000;

// Realpath: on macOS the temporary folder is reached through a symlink, and module URLs are real paths.
const work = realpathSync(mkdtempSync(join(tmpdir(), 'socketd-package-')));
const checkout = join(work, 'checkout');
const packDir = join(work, 'pack');
const project = join(work, 'project');
const installed = join(project, 'node_modules', PKG.name);
const globalPrefix = join(work, 'global');
let broker: ChildProcess | null = null;

test.after(async () => {
  if (broker !== null && broker.exitCode === null && broker.signalCode === null) {
    const exited = new Promise((r) => broker!.once('exit', r));
    broker.kill('SIGTERM');
    const timer = setTimeout(() => broker?.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
  rmSync(work, { recursive: true, force: true });
});

/**
 * The environment for npm and the installed package: without the npm_* variables of an enclosing `npm test`
 * (its package, lifecycle and local prefix), except where npm keeps its cache and settings; without the
 * caller's SOCKETD_* and the test runner's own variable.
 */
function cleanEnv(): NodeJS.ProcessEnv {
  const keep = /^npm_config_(cache|userconfig|globalconfig|cafile|registry|proxy|https_proxy|noproxy|strict_ssl)$/i;
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^npm_/i.test(k) && !keep.test(k)) continue;
    if (k.startsWith('SOCKETD_') || k === 'NODE_TEST_CONTEXT' || k === 'INIT_CWD') continue;
    env[k] = v;
  }
  return env;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], cwd: string, timeoutMs = STEP_MS): Promise<Run> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} still running after ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
  });
}

/** Runs to the end and requires exit 0. */
async function ok(command: string, args: string[], cwd: string): Promise<Run> {
  const r = await run(command, args, cwd);
  assert.equal(r.code, 0, `${command} ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** npm: the one that runs this suite under `npm test`, else npm from PATH. */
function npm(args: string[], cwd: string): Promise<Run> {
  const cli = process.env.npm_execpath;
  return cli !== undefined && /npm-cli\.js$/.test(cli) ? ok(process.execPath, [cli, ...args], cwd) : ok('npm', args, cwd);
}

function write(path: string, text: string): string {
  writeFileSync(path, text);
  return path;
}

/** What goes into the copy `npm pack` runs in: the checkout without its builds, dependencies, tests and bench. */
const NOT_COPIED = new Set(['.git', 'node_modules', 'dist', 'test', 'bench']);

let tarball = '';
let tarFiles: string[] = [];

test('npm pack builds the package in a copy of the checkout; npm install puts it into an empty project and -g into a prefix', { timeout: 4 * STEP_MS }, async (t) => {
  // The copy leaves out test/ and bench/ so the build prepack runs compiles the sources only (the tarball
  // ships neither); node_modules is the checkout's, linked.
  cpSync(ROOT, checkout, {
    recursive: true,
    filter: (src) => {
      const rel = relative(ROOT, src);
      return !NOT_COPIED.has(rel.split(sep)[0]!) && !rel.endsWith('.tgz');
    },
  });
  symlinkSync(join(ROOT, 'node_modules'), join(checkout, 'node_modules'), 'junction');
  mkdirSync(packDir);
  await npm(['pack', '--pack-destination', packDir], checkout);
  const tgz = readdirSync(packDir).filter((f) => f.endsWith('.tgz'));
  assert.deepEqual(tgz, [`${PKG.name}-${PKG.version}.tgz`]);
  tarball = join(packDir, tgz[0]!);
  const listing = await ok('tar', ['-tzf', tarball], work);
  tarFiles = listing.stdout.split('\n').filter((l) => l !== '' && !l.endsWith('/')).map((l) => l.replace(/^package\//, ''));
  t.diagnostic(`${tgz[0]}: ${(statSync(tarball).size / 1000).toFixed(1)} kB, ${tarFiles.length} files`);

  mkdirSync(project);
  write(join(project, 'package.json'), JSON.stringify({ name: 'socketd-consumer', version: '1.0.0', private: true, type: 'module' }, null, 2));
  // The project's install and a global one (`npm install -g --prefix`), side by side.
  await Promise.all([
    npm(['install', '--no-audit', '--no-fund', '--prefer-offline', tarball, `@types/node@${TYPES_NODE}`], project),
    npm(['install', '-g', '--prefix', globalPrefix, '--no-audit', '--no-fund', '--prefer-offline', tarball], work),
  ]);
  assert.ok(existsSync(join(installed, 'package.json')));
  assert.ok(relative(ROOT, project).startsWith('..'), 'the project is outside the checkout');
});

test('the tarball ships the build, the CLI, the default config, the examples and the docs, and nothing else', async () => {
  assert.ok(tarFiles.length > 0, 'packed');
  for (const file of [
    'package.json', 'README.md', 'LICENSE', 'CHANGELOG.md', 'bin/socketd-broker.js', 'config/broker.yaml',
    'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/cli/main.js', 'dist/src/client/index.js',
    'dist/src/client/index.d.ts', 'dist/src/client/browser.d.ts', 'dist/src/protocol/index.js', 'dist/src/protocol/index.d.ts',
    'dist/browser/socketd-client.js', 'examples/web/index.html', 'docs/client.md', 'docs/operations.md',
  ]) {
    assert.ok(tarFiles.includes(file), `${file} is in the tarball`);
  }
  const misplaced = tarFiles.filter((f) => /^(src|test|bench|scripts|deploy|dist\/test|dist\/bench|docs\/notes)\//.test(f) || f.endsWith('.ts') && !f.endsWith('.d.ts'));
  assert.deepEqual(misplaced, [], 'no sources, tests, bench, build scripts or deployment files');
  // dist/src's maps point at src/*.ts, which is not shipped; the browser bundle's map embeds its sources.
  const maps = tarFiles.filter((f) => f.endsWith('.map'));
  assert.deepEqual(maps, ['dist/browser/socketd-client.js.map']);
  const browserMap = JSON.parse(readFileSync(join(installed, maps[0]!), 'utf8')) as { sources: string[]; sourcesContent?: (string | null)[] };
  assert.equal(browserMap.sourcesContent?.length, browserMap.sources.length);
  assert.ok(browserMap.sourcesContent.every((s) => typeof s === 'string' && s.length > 0));
  // Every JavaScript module of dist/src has its declarations.
  for (const js of tarFiles.filter((f) => f.startsWith('dist/src/') && f.endsWith('.js'))) {
    assert.ok(tarFiles.includes(js.replace(/\.js$/, '.d.ts')), `${js} has its .d.ts`);
  }

  // The same rules against this checkout's dist/, which holds the compiled tests and bench (this file is
  // one of them): `files` keeps them out.
  const dry = await npm(['pack', '--dry-run', '--json', '--ignore-scripts'], ROOT);
  const listed = (JSON.parse(dry.stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
  assert.ok(existsSync(join(ROOT, 'dist', 'test')));
  assert.deepEqual(listed.filter((f) => /^dist\/(test|bench)\//.test(f) || (f.endsWith('.map') && !f.startsWith('dist/browser/'))), []);
});

test('the installed CLI: --version, --help and check-config on the shipped config', async () => {
  const bin = join(project, 'node_modules', '.bin', 'socketd-broker');
  const version = await ok(bin, ['--version'], project);
  assert.equal(version.stdout.trim(), PKG.version);
  const help = await ok(bin, ['--help'], project);
  assert.match(help.stdout, /^Usage: socketd-broker /);
  assert.match(help.stdout, /check-config/);
  const shipped = join(installed, 'config', 'broker.yaml');
  const check = await ok(bin, ['check-config', shipped], project);
  assert.equal(check.stdout.trim(), `${shipped}: ok`);
  const bad = write(join(project, 'bad.yaml'), 'limits:\n  maxData: -1\n');
  const refused = await run(bin, ['check-config', bad], project);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /limits\.maxData/);
});

test('npm install -g of the tarball gives a working socketd-broker command', async () => {
  const bin = process.platform === 'win32' ? join(globalPrefix, 'socketd-broker.cmd') : join(globalPrefix, 'bin', 'socketd-broker');
  const help = await ok(bin, ['--help'], work);
  assert.match(help.stdout, /^Usage: socketd-broker /);
  const version = await ok(bin, ['--version'], work);
  assert.equal(version.stdout.trim(), PKG.version);
});

interface Ports {
  tcp: number;
  udp: number;
  ws: number;
  http: number;
}

let ports: Promise<Ports> | null = null;

/** Starts the installed broker once, every listener on 127.0.0.1 and a free port; its ports from the log. */
function startBroker(): Promise<Ports> {
  ports ??= new Promise<Ports>((resolvePromise, reject) => {
    const config = write(join(project, 'local.yaml'), [
      'listeners:',
      '  tcp: { host: 127.0.0.1 }',
      '  udp: { host: 127.0.0.1 }',
      '  ws: { host: 127.0.0.1 }',
      'http:',
      '  host: 127.0.0.1',
      '',
    ].join('\n'));
    const bin = join(project, 'node_modules', '.bin', 'socketd-broker');
    const child = spawn(bin, ['--config', config, '--tcp', '0', '--udp', '0', '--ws', '0', '--http', '0'], {
      cwd: project,
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    broker = child;
    let log = '';
    let scanned = 0; // log[0, scanned) holds whole lines already looked at
    const timer = setTimeout(() => reject(new Error(`no broker_started within ${STEP_MS} ms: ${log}`)), STEP_MS);
    const onData = (d: Buffer): void => {
      log += d.toString();
      const end = log.lastIndexOf('\n') + 1;
      for (const line of log.slice(scanned, end).split('\n')) {
        if (!line.includes('"broker_started"')) continue;
        const a = (JSON.parse(line) as { addresses: Record<keyof Ports, { port: number }> }).addresses;
        clearTimeout(timer);
        resolvePromise({ tcp: a.tcp.port, udp: a.udp.port, ws: a.ws.port, http: a.http.port });
      }
      scanned = Math.max(scanned, end);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the broker exited (${code}): ${log}`));
    });
  });
  return ports;
}

/** The same round trips in the ESM script and in the TypeScript consumer: tcp, ws and udp clients. */
const EXPECTED = {
  reply: { echo: { n: 1 }, by: 'svc' },
  published: { event: 'orders.created', data: { id: 42 }, meta: 't-1' },
};

test('the installed broker runs and the installed SDK talks through it from an ESM script', async () => {
  const p = await startBroker();
  const script = write(join(project, 'client.mjs'), `
import { connect, json } from 'socketd-broker/client';
const [tcp, udp, ws] = process.argv.slice(2).map(Number);
const options = { reconnect: false, heartbeatInterval: 0 };
const svc = await connect('sd:ws://127.0.0.1:' + ws + '/', { ...options, name: 'svc', onDirect: (msg) => msg.replyEnd(json({ echo: msg.json(), by: 'svc' })) });
const subscriber = await connect('sd:udp://127.0.0.1:' + udp, options);
const caller = await connect('sd:tcp://127.0.0.1:' + tcp, options);
const reply = await caller.request('hello', json({ n: 1 }), { to: 'svc', timeout: 10000 });
let deliver;
const published = new Promise((resolve) => (deliver = resolve));
await subscriber.on('orders.*', (msg) => deliver({ event: msg.event, data: msg.json(), meta: msg.meta.trace }));
caller.send('orders.created', json({ id: 42 }), { meta: { trace: 't-1' } });
const result = { resolved: import.meta.resolve('socketd-broker/client'), reply: reply.json(), published: await published };
await Promise.all([svc.close(), subscriber.close(), caller.close()]);
process.stdout.write(JSON.stringify(result));
`);
  const out = await ok(process.execPath, [script, String(p.tcp), String(p.udp), String(p.ws)], project);
  const result = JSON.parse(out.stdout) as { resolved: string } & typeof EXPECTED;
  assert.equal(result.resolved, pathToFileURL(join(installed, 'dist', 'src', 'client', 'index.js')).href);
  assert.deepEqual({ reply: result.reply, published: result.published }, EXPECTED);

  // The http side of the installed package: health, and the example page with the shipped browser bundle.
  const health = await fetch(`http://127.0.0.1:${p.http}/healthz`);
  assert.equal(health.status, 200);
  const page = await fetch(`http://127.0.0.1:${p.http}/examples/chat/`);
  assert.equal(page.status, 200);
  assert.equal(await page.text(), readFileSync(join(installed, 'examples', 'web', 'index.html'), 'utf8'));
  const bundle = await fetch(`http://127.0.0.1:${p.http}/examples/chat/socketd-client.js`);
  assert.equal(bundle.status, 200);
  assert.equal(await bundle.text(), readFileSync(join(installed, 'dist', 'browser', 'socketd-client.js'), 'utf8'));
});

/** A consumer that uses every entry point's declarations; the never-called function holds type errors tsc must find. */
const CONSUMER_TS = `
import { connect, json, SocketdError, type Client, type IncomingMessage, type Reply } from 'socketd-broker/client';
import { Flag, type Frame } from 'socketd-broker/protocol';
import type { BrokerConfig, RunningServer } from 'socketd-broker';
import type { connect as browserConnect } from 'socketd-broker/browser';

const [tcp, ws] = process.argv.slice(2).map(Number) as [number, number];
const options = { reconnect: false as const, heartbeatInterval: 0 };
const svc: Client = await connect(\`sd:ws://127.0.0.1:\${ws}/\`, {
  ...options,
  name: 'svc',
  onDirect: (msg: IncomingMessage) => msg.replyEnd(json({ echo: msg.json<{ n: number }>(), by: 'svc' })),
});
const caller: Client = await connect(\`sd:tcp://127.0.0.1:\${tcp}\`, options);
const reply: Reply = await caller.request('hello', json({ n: 1 }), { to: 'svc', timeout: 10_000 });
let refused = '';
try {
  await caller.request('hello', json({ n: 2 }), { to: 'nobody', timeout: 10_000 });
} catch (error) {
  if (error instanceof SocketdError) refused = \`\${error.code} \${error.alarmCode}\`;
}
await Promise.all([svc.close(), caller.close()]);
const flag: number = Flag.Request;
process.stdout.write(JSON.stringify({ reply: reply.json<{ echo: { n: number }; by: string }>(), refused, flag }));

export function typeErrors(client: Client, config: BrokerConfig, server: RunningServer, frame: Frame, browser: typeof browserConnect): void {
  // @ts-expect-error request's event is a string
  void client.request(42);
  // @ts-expect-error connect's options have no such key
  void connect('sd:tcp://127.0.0.1:1', { nameTypo: 'x' });
  // @ts-expect-error the config's http.port is a number
  const port: string = config.http.port;
  // @ts-expect-error close() returns a promise
  const closed: number = server.close();
  // @ts-expect-error a frame's flag is a number
  const f: string = frame.flag;
  // @ts-expect-error the browser's connect takes a url string
  void browser(1);
  void port; void closed; void f;
}
`;

test('a TypeScript consumer type-checks against the installed declarations (node16 and bundler) and runs', async () => {
  write(join(project, 'consumer.ts'), CONSUMER_TS);
  // skipLibCheck as `tsc --init` sets it (checking all of @types/node would take most of this test's time);
  // the declarations' own imports are checked by declarationImports() below instead.
  const common = { target: 'ES2022', strict: true, skipLibCheck: true, types: ['node'], noUnusedLocals: true };
  write(join(project, 'tsconfig.node16.json'), JSON.stringify({
    compilerOptions: { ...common, module: 'Node16', moduleResolution: 'Node16', outDir: 'out' },
    files: ['consumer.ts'],
  }));
  write(join(project, 'tsconfig.bundler.json'), JSON.stringify({
    compilerOptions: { ...common, module: 'ESNext', moduleResolution: 'Bundler', noEmit: true },
    files: ['consumer.ts'],
  }));
  const [node16, bundler] = await Promise.all([
    run(process.execPath, [TSC, '-p', 'tsconfig.node16.json', '--listFiles'], project),
    run(process.execPath, [TSC, '-p', 'tsconfig.bundler.json', '--listFiles'], project),
  ]);
  for (const [name, r] of [['node16', node16], ['bundler', bundler]] as const) {
    assert.equal(r.code, 0, `tsc (${name}) found errors:\n${r.stdout}${r.stderr}`);
    // The declarations came from the installed package.
    for (const entry of ['client/index.d.ts', 'protocol/index.d.ts', 'index.d.ts', 'client/browser.d.ts']) {
      assert.ok(r.stdout.split('\n').includes(join(installed, 'dist', 'src', entry)), `${name} read ${entry}: ${r.stdout}`);
    }
  }

  // What the entry points' declarations import from outside the package resolves in the consumer's project:
  // node's own modules (from @types/node) or a dependency that ships its declarations.
  for (const specifier of declarationImports(['index.d.ts', 'client/index.d.ts', 'protocol/index.d.ts', 'client/browser.d.ts'])) {
    if (specifier.startsWith('node:')) continue;
    const manifest = JSON.parse(readFileSync(join(project, 'node_modules', specifier, 'package.json'), 'utf8')) as { types?: string; typings?: string };
    assert.ok(manifest.types ?? manifest.typings, `${specifier}, imported by the declarations, ships its types`);
  }

  const p = await startBroker();
  const out = await ok(process.execPath, [join(project, 'out', 'consumer.js'), String(p.tcp), String(p.ws)], project);
  assert.deepEqual(JSON.parse(out.stdout), { reply: EXPECTED.reply, refused: 'alarm 4004', flag: 41 });
});

/**
 * The bare specifiers (packages, node: modules) that the installed declarations reachable from `entries`
 * (paths under dist/src) import, following their relative imports: import/export statements (doc comment
 * lines start with `*` and do not count) and inline `import("x")` types.
 */
function declarationImports(entries: string[]): Set<string> {
  const base = join(installed, 'dist', 'src');
  const bare = new Set<string>();
  const seen = new Set<string>();
  const queue = entries.map((e) => join(base, e));
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    const statements = [...text.matchAll(/^\s*(?:import|export)\b[^;]*?from\s+['"]([^'"]+)['"]/gm)];
    const inline = [...text.matchAll(/\bimport\(["']([^"']+)["']\)/g)]; // tsc's `import("x").T` types
    for (const m of [...statements, ...inline]) {
      const specifier = m[1]!;
      if (specifier.startsWith('.')) queue.push(resolve(dirname(file), specifier.replace(/\.js$/, '.d.ts')));
      else bare.add(specifier.split('/').slice(0, specifier.startsWith('@') ? 2 : 1).join('/'));
    }
  }
  assert.ok(seen.size > entries.length, 'the declarations import one another');
  return bare;
}

test('importing the installed socketd-broker/client loads nothing of the broker, pino, prom-client, commander or yaml', () => {
  const loaded = modulesLoadedBy('socketd-broker/client', project, cleanEnv());
  const entry = pathToFileURL(join(installed, 'dist', 'src', 'client', 'index.js')).href;
  assert.ok(loaded.includes(entry), `the installed entry is traced: ${loaded.join(' ')}`);
  assert.ok(loaded.some((u) => u.startsWith(pathToFileURL(join(project, 'node_modules', 'ws')).href + '/')), 'ws, from the project');
  assert.deepEqual(clientViolations(loaded), []);
  // Nothing came from the checkout.
  assert.deepEqual(loaded.filter((u) => u.startsWith(pathToFileURL(ROOT).href + '/')), []);
});
