#!/usr/bin/env node
// Entry point: the compiled CLI (npm install / npm ci builds dist/ through the `prepare` script).
import { main } from '../dist/src/cli/main.js';

main(process.argv).catch((error) => {
  process.stderr.write(`socketd-broker: ${error && error.message ? error.message : error}\n`);
  process.exit(1);
});
