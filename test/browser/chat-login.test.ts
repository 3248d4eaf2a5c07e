/**
 * The example chat page with a login (docs/security.md section 6.3) in a real browser: headless Chromium loads
 * /examples/chat/?login=<examples/jwt-login.mjs>, the broker runs with access.jwt on the backend's secret. A
 * wrong password is refused by the backend; alice's token gets her into her room (talking with a Node
 * client, bob), and not into a room of someone else's (Alarm 4003 on the subscription).
 *
 * Chromium as in chat.test.ts: installed by .ci/run; without it the test fails under CI and is skipped
 * elsewhere.
 */
import { CHROMIUM, CHROMIUM_ARGS, requireChromium, skipWithoutChromium } from '../support/chromium.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { connect, type Client } from '../../src/client/index.js';
import { eventually, ports, startTestBroker } from '../support/broker.js';
import { postJson, startLoginBackend } from '../support/login-backend.js';

const skip = skipWithoutChromium;
const SECRET = 'browser-login-test-secret-0123456789abcdef';

test('the chat page with a login: a JWT per user, its own name and its rooms only', { skip, timeout: 180_000 }, async () => {
  requireChromium();
  process.env.SOCKETD_BROWSER_JWT_SECRET = SECRET;
  const login = await startLoginBackend(SECRET);
  const broker = await startTestBroker({ access: { anonymous: false, jwt: { secretEnv: 'SOCKETD_BROWSER_JWT_SECRET' } } });
  const p = ports(broker);
  const userDataDir = mkdtempSync(join(tmpdir(), 'socketd-chromium-login-'));
  let context: BrowserContext | null = null;
  let bob: Client | null = null;
  try {
    const bobToken = (await postJson(`${login.url}/login`, { name: 'bob', password: 'bob-pw' })).body.token as string;
    bob = await connect(`sd:tcp://127.0.0.1:${p.tcp}`, { name: 'bob', token: bobToken, reconnect: false });
    const heard: { from: string; text: string }[] = [];
    await bob.on('chat.room.team1', (m) => void heard.push(m.json()), { presence: true });

    context = await chromium.launchPersistentContext(userDataDir, { executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_ARGS], timeout: 60_000 });
    const page = context.pages()[0] ?? await context.newPage();
    const response = await page.goto(`http://127.0.0.1:${p.http}/examples/chat/?ws=${p.ws}&login=${encodeURIComponent(login.url)}`, { waitUntil: 'load', timeout: 30_000 });
    assert.equal(response?.status(), 200);
    assert.equal(await page.isVisible('#password'), true, 'login mode shows the password field');

    // A wrong password: the backend refuses, nothing reaches the broker.
    await page.fill('#room', 'team1');
    await page.fill('#nick', 'alice');
    await page.fill('#password', 'nope');
    await page.click('#join');
    await page.waitForSelector('body[data-state="error"]', { timeout: 20_000 });
    assert.match(await page.textContent('#status') ?? '', /unknown user or wrong password/);

    // alice in her room: the message reaches bob.
    await page.fill('#password', 'alice-pw');
    await page.click('#join');
    await page.waitForSelector('body[data-state="joined"]', { timeout: 20_000 });
    const session = [...broker.broker.allSessions()].find((s) => s.name === 'alice');
    assert.equal(session?.permissions.user, 'alice');
    await page.fill('#text', 'hello team1');
    await page.click('#send');
    await eventually(() => heard.length > 0, 10_000, 'bob hears alice');
    assert.deepEqual(heard, [{ from: 'alice', text: 'hello team1' }]);
    await page.click('#leave');
    await page.waitForSelector('body[data-state="idle"]', { timeout: 10_000 });

    // team2 is carol's room: alice's token does not let her subscribe to it.
    await page.fill('#room', 'team2');
    await page.click('#join');
    await page.waitForSelector('body[data-state="error"]', { timeout: 20_000 });
    assert.match(await page.textContent('#status') ?? '', /could not join/);
    assert.ok((broker.broker.stats.alarms.get(4003) ?? 0) >= 1, 'refused with Alarm 4003');
  } finally {
    await context?.close();
    await bob?.close();
    await broker.close();
    login.stop();
    rmSync(userDataDir, { recursive: true, force: true });
    delete process.env.SOCKETD_BROWSER_JWT_SECRET;
  }
});
