/**
 * Debian's headless Chromium for the browser tests (test/browser): where it is, how it is started, and what a
 * test does when it is missing (skipped on a developer's machine with the install command; failed under CI,
 * where .ci/run installs it). SOCKETD_TEST_CHROMIUM points elsewhere (used to check the missing-browser paths).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';

export const CHROMIUM = process.env.SOCKETD_TEST_CHROMIUM ?? '/usr/bin/chromium';
export const INSTALL = 'apt-get install -y --no-install-recommends chromium';
export const chromiumMissing = !existsSync(CHROMIUM);
const inCi = process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false';

/** The `skip` option of a browser test: a reason on a developer's machine without Chromium, else false. */
export const skipWithoutChromium: string | false =
  chromiumMissing && !inCi ? `${CHROMIUM} is missing: install it with \`${INSTALL}\` (.ci/run does)` : false;

/** Fails the test (under CI) when Chromium is missing; call first in every browser test. */
export function requireChromium(): void {
  if (chromiumMissing) assert.fail(`${CHROMIUM} is missing, so the browser test cannot run: CI installs it in .ci/run (${INSTALL})`);
}

/**
 * Chromium's flags as root on a machine with no network beyond loopback: no sandbox, no GPU, and none of its
 * background connections (each would be refused, many at a time).
 */
export const CHROMIUM_ARGS: readonly string[] = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
