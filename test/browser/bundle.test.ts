/**
 * The browser build (dist/browser/socketd-client.js, made by `npm run build:browser`): no Node built-in and no
 * Node transport inside, a reasonable size, and it works: loaded in Node with the `ws` package's WebSocket
 * standing in for the browser's, it talks to a broker and to a Node SDK client.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { WebSocket } from 'ws';
import { connect } from '../../src/client/index.js';
import type * as BrowserSdk from '../../src/client/browser.js';
import { eventually, ports, startTestBroker } from '../support/broker.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const BUNDLE = join(ROOT, 'dist', 'browser', 'socketd-client.js');
/** Generous: the bundle is about 65 KiB minified (a third of it the `buffer` package). */
const MAX_BYTES = 200 * 1024;

function loadBundle(): Promise<typeof BrowserSdk> {
  return import(pathToFileURL(BUNDLE).href) as Promise<typeof BrowserSdk>;
}

test('the browser bundle holds no Node built-in, no `ws` package and no Node transport, and is small', (t) => {
  const text = readFileSync(BUNDLE, 'utf8');
  const size = statSync(BUNDLE).size;
  const gzipped = gzipSync(text).length;
  t.diagnostic(`dist/browser/socketd-client.js: ${(size / 1024).toFixed(1)} KiB, ${(gzipped / 1024).toFixed(1)} KiB gzipped`);
  console.log(`browser bundle size: ${size} bytes (${gzipped} gzipped)`);
  assert.ok(size > 10_000, 'the bundle holds the SDK');
  assert.ok(size < MAX_BYTES, `the bundle is ${size} bytes, more than ${MAX_BYTES}`);

  for (const bad of [/\brequire\(\s*["'](node:)?(net|tls|dgram|crypto|http|https|fs|ws|buffer|events|stream)["']\s*\)/, /["']node:[a-z_/]+["']/,
    /\bfrom\s*["'](net|tls|dgram|ws)["']/, /\bimport\(\s*["'](net|tls|dgram|ws)["']\s*\)/, /\bprocess\.nextTick\b/]) {
    assert.doesNotMatch(text, bad);
  }
  assert.doesNotMatch(text, /^import\s/m, 'the bundle imports nothing: it is self-contained');

  // The source map names every module that went in.
  const sources = (JSON.parse(readFileSync(`${BUNDLE}.map`, 'utf8')) as { sources: string[] }).sources;
  assert.ok(sources.some((s) => s.endsWith('src/client/browser-ws.ts')), 'the browser transport is in');
  assert.ok(sources.some((s) => s.endsWith('node_modules/buffer/index.js')), 'the buffer package is in');
  for (const source of sources) {
    assert.doesNotMatch(source, /src\/client\/dial\.ts$|src\/client\/index\.ts$|src\/transport\/(tcp|udp|ws|memory)\.ts$|node_modules\/ws\//, `bundled: ${source}`);
  }
});

test('the browser bundle speaks ws to the broker (the ws package standing in for the browser WebSocket)', { timeout: 60_000 }, async () => {
  const sdk = await loadBundle();
  const broker = await startTestBroker();
  const p = ports(broker);
  const node = await connect(`sd:tcp://127.0.0.1:${p.tcp}`, { name: 'node', reconnect: false });
  const Ws = WebSocket as unknown as BrowserSdk.BrowserWebSocketConstructor;
  const web = await sdk.connectWith(sdk.browserDialer(Ws), `sd:ws://127.0.0.1:${p.ws}/`, { name: 'web', reconnect: false });
  try {
    assert.equal(web.transport, 'ws');
    const atWeb: string[] = [];
    const atNode: string[] = [];
    await web.on('room.1', (msg) => {
      atWeb.push(msg.text());
    }, { presence: true });
    await node.on('room.1', (msg) => {
      atNode.push(msg.text());
    });
    await node.on('svc.echo', (msg) => msg.reply(`echo:${msg.text()}`));

    node.send('room.1', 'from node');
    web.send('room.1', new TextEncoder().encode('from web')); // a plain Uint8Array as data
    await eventually(() => atWeb.length === 1 && atNode.length === 1, 5000, 'both messages');
    assert.deepEqual([atWeb, atNode], [['from node'], ['from web']]);

    const reply = await web.request('svc.echo', 'x'.repeat(100_000)); // a large frame: head and body joined
    assert.equal(reply.text(), `echo:${'x'.repeat(100_000)}`);
    assert.deepEqual((await web.presence('room.1')).map((e) => e.name).sort(), ['node', 'web']);
  } finally {
    await web.close();
    await node.close();
    await broker.close();
  }
  assert.equal(web.state, 'closed');
});

test('the browser entry refuses tcp and udp urls', async () => {
  const sdk = await loadBundle();
  for (const url of ['sd:tcp://127.0.0.1:8602', 'udp://127.0.0.1:8603']) {
    await assert.rejects(sdk.connect(url), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'invalid_argument');
      assert.match(error.message, /ws and wss only/);
      return true;
    });
  }
});

test('a browser client whose WebSocket cannot open fails with connect_failed', { timeout: 30_000 }, async () => {
  const sdk = await loadBundle();
  const Ws = WebSocket as unknown as BrowserSdk.BrowserWebSocketConstructor;
  const broker = await startTestBroker();
  const port = ports(broker).ws;
  await broker.close();
  await assert.rejects(sdk.connectWith(sdk.browserDialer(Ws), `ws://127.0.0.1:${port}/`, { connectTimeout: 5000 }), (error: Error & { code?: string }) => {
    assert.equal(error.code, 'connect_failed');
    return true;
  });
});
