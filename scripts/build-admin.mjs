#!/usr/bin/env node
// Builds the admin page (docs/operations.md section 6) into dist/admin: the page's script with uPlot bundled in
// (ESM, minified, uPlot's MIT notice as a banner), the page, its styles and uPlot's styles. The broker
// serves these files at /admin/ (src/http/admin/admin-routes.ts); they ship in the package, so users build
// nothing and the page loads nothing from elsewhere. Run by scripts/build-browser.mjs (`npm run build`).
import { build } from 'esbuild';
import { copyFile, mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const source = path.join(root, 'src/http/admin/page');
const out = path.join(root, 'dist/admin');
const require = createRequire(import.meta.url);

await mkdir(out, { recursive: true });
const result = await build({
  absWorkingDir: root,
  entryPoints: [path.join(source, 'admin.js')],
  outfile: path.join(out, 'admin.js'),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2020'],
  minify: process.env.SOCKETD_BROWSER_MINIFY !== '0',
  legalComments: 'eof',
  // uPlot's header is a plain comment, which minifying drops: its notice goes first in the bundle.
  banner: { js: `/*! uPlot v${require('uplot/package.json').version} (μPlot), Copyright (c) 2025 Leon Sorokin, MIT License, https://github.com/leeoniya/uPlot */` },
  metafile: true,
  logLevel: 'warning',
});
await copyFile(path.join(source, 'index.html'), path.join(out, 'index.html'));
await copyFile(path.join(source, 'admin.css'), path.join(out, 'admin.css'));
await copyFile(path.join(path.dirname(require.resolve('uplot')), 'uPlot.min.css'), path.join(out, 'uPlot.min.css'));

const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
console.log(`admin page: ${path.relative(root, out)}/ (script ${(bytes / 1024).toFixed(1)} KiB)`);
