/**
 * The example page on the broker's HTTP port (http.serveExamples): /examples/chat/ serves examples/web and the
 * browser bundle from dist/browser with their content types, nothing else, and is off with the flag.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { ports, startTestBroker } from '../support/broker.js';

interface Got {
  status: number;
  type: string;
  location: string;
  body: string;
}

/** A raw GET: the path goes out as written (fetch would normalize `..`). */
function get(port: number, path: string, method = 'GET'): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({
        status: res.statusCode ?? 0,
        type: String(res.headers['content-type'] ?? ''),
        location: String(res.headers.location ?? ''),
        body,
      }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('/examples/chat/ serves the page, its script and the browser bundle', async () => {
  const broker = await startTestBroker();
  try {
    const port = ports(broker).http;
    const page = await get(port, '/examples/chat/');
    assert.equal(page.status, 200);
    assert.equal(page.type, 'text/html; charset=utf-8');
    assert.match(page.body, /<script type="module" src="\.\/chat\.js">/);
    assert.equal((await get(port, '/examples/chat/index.html')).body, page.body);

    const script = await get(port, '/examples/chat/chat.js');
    assert.equal(script.status, 200);
    assert.equal(script.type, 'text/javascript; charset=utf-8');
    assert.match(script.body, /from '\.\/socketd-client\.js'/);

    const bundle = await get(port, '/examples/chat/socketd-client.js');
    assert.equal(bundle.status, 200);
    assert.equal(bundle.type, 'text/javascript; charset=utf-8');
    assert.match(bundle.body, /sourceMappingURL=socketd-client\.js\.map/);
    const map = await get(port, '/examples/chat/socketd-client.js.map');
    assert.equal(map.type, 'application/json; charset=utf-8');

    const head = await get(port, '/examples/chat/chat.js', 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');

    const bare = await get(port, '/examples/chat');
    assert.equal(bare.status, 301);
    assert.equal(bare.location, '/examples/chat/');

    assert.equal((await get(port, '/healthz')).status, 200, 'the other routes are untouched');
  } finally {
    await broker.close();
  }
});

test('/examples/chat/ serves nothing outside examples/web and the bundle', async () => {
  const broker = await startTestBroker();
  try {
    const port = ports(broker).http;
    for (const path of [
      '/examples/chat/../../package.json',
      '/examples/chat/%2e%2e/%2e%2e/package.json',
      '/examples/chat/..%2f..%2fpackage.json',
      '/examples/chat/..%2f..%2fdist%2fsrc%2fserver.js',
      '/examples/chat/%2fetc%2fpasswd',
      '/examples/chat/..%5c..%5cpackage.json',
      '/examples/chat/chat.js%00.html',
      '/examples/chat/nope.js',
      '/examples/chat/socketd-client.d.ts',
      '/examples/chat/%E0%A4%A',
      '/examples/',
      '/examples/im-chat.mjs',
    ]) {
      const got = await get(port, path);
      assert.ok(got.status === 404 || got.status === 400, `${path}: ${got.status}`);
      assert.doesNotMatch(got.body, /"name": "socketd-broker"|root:|startServer/, path);
    }
  } finally {
    await broker.close();
  }
});

test('http.serveExamples: false turns the page off', async () => {
  const broker = await startTestBroker({ http: { serveExamples: false } });
  try {
    const port = ports(broker).http;
    assert.equal((await get(port, '/examples/chat/')).status, 404);
    assert.equal((await get(port, '/examples/chat/socketd-client.js')).status, 404);
  } finally {
    await broker.close();
  }
});
