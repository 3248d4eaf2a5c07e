#!/usr/bin/env node
// Entry point: the compiled CLI. In a checkout, `npm ci` builds dist/ (the `prepare` script); the package
// tarball ships it built (`prepack`).
import { main } from '../dist/src/cli/main.js';

main(process.argv).catch((error) => {
  process.stderr.write(`socketd-broker: ${error && error.message ? error.message : error}\n`);
  process.exit(1);
});
