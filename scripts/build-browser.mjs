#!/usr/bin/env node
// Bundles the browser entry of the client SDK (src/client/browser.ts) into dist/browser/socketd-client.js:
// ESM, for browsers, WebSocket only. Node's Buffer (used by the codec) is provided by the `buffer` package,
// injected as the `Buffer` global and aliased for `buffer`/`node:buffer` imports. Run by `npm run build`.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outfile = path.join(root, 'dist/browser/socketd-client.js');

const result = await build({
  absWorkingDir: root,
  entryPoints: ['src/client/browser.ts'],
  outfile,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2022'],
  sourcemap: true,
  minify: process.env.SOCKETD_BROWSER_MINIFY !== '0',
  legalComments: 'eof',
  inject: ['scripts/browser-shims.js'],
  alias: { 'node:buffer': 'buffer' },
  metafile: true,
  logLevel: 'warning',
});

const bytes = Object.values(result.metafile.outputs).find((o) => o.entryPoint !== undefined)?.bytes ?? 0;
console.log(`browser bundle: ${path.relative(root, outfile)} (${(bytes / 1024).toFixed(1)} KiB)`);

// The admin page is a browser build too: built here so every caller of this script (npm run build, the
// Dockerfile) gets it.
await import('./build-admin.mjs');
