#!/usr/bin/env node
// The `prepare` script. npm runs it after `npm install` / `npm ci` in a checkout, and this builds dist/ there
// so `npm start` works right after. npm also runs it during `npm pack` and `npm publish`, right after
// `prepack` has emptied and built dist/: building twice would only cost time, so it does nothing then.
// (A tarball install never runs it: the tarball ships the built dist/.)
import { spawnSync } from 'node:child_process';

const command = process.env.npm_command;
if (command === 'pack' || command === 'publish') {
  console.log(`prepare: dist/ was built by prepack (npm ${command})`);
  process.exit(0);
}
// npm_execpath is the npm that runs this script; outside npm, `npm` from PATH.
const execpath = process.env.npm_execpath;
const result = execpath
  ? spawnSync(process.execPath, [execpath, 'run', 'build'], { stdio: 'inherit' })
  : spawnSync('npm', ['run', 'build'], { stdio: 'inherit', shell: process.platform === 'win32' });
if (result.error) throw result.error;
process.exit(result.status ?? 1);
