/**
 * The example chat page in a real browser: headless Chromium (Debian's `chromium`, driven by playwright-core)
 * loads /examples/chat/ from the broker's HTTP port. The page uses the browser build of the SDK
 * (dist/browser/socketd-client.js) over ws, joins a room and talks with a Node SDK client over tcp: messages
 * both ways, private messages both ways, and presence on both sides.
 *
 * Chromium is installed by .ci/run. Without /usr/bin/chromium the test fails under CI (CI is set) and is
 * skipped elsewhere, with the install line as the reason.
 */
import { CHROMIUM, CHROMIUM_ARGS, requireChromium, skipWithoutChromium } from '../support/chromium.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { connect, type Client } from '../../src/client/index.js';
import { eventually, ports, startTestBroker } from '../support/broker.js';

const skip = skipWithoutChromium;


const ROOM = 'lobby';
const ROOM_EVENT = `chat.room.${ROOM}`;

async function memberNames(page: Page): Promise<string[]> {
  return page.locator('#members li').allTextContents();
}

/** Waits until an element matching `selector` has exactly `text` as its text. */
async function waitForItem(page: Page, selector: string, text: string): Promise<void> {
  const exact = new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
  await page.locator(selector).filter({ hasText: exact }).first().waitFor({ timeout: 10_000 });
}

async function messageTexts(page: Page): Promise<string[]> {
  return page.locator('#messages li').allTextContents();
}

test('the example chat page (browser build over ws) and a Node SDK client talk in a room', { skip, timeout: 180_000 }, async (t) => {
  requireChromium();

  const broker = await startTestBroker();
  const p = ports(broker);
  const userDataDir = mkdtempSync(join(tmpdir(), 'socketd-chromium-'));
  let context: BrowserContext | null = null;
  let bob: Client | null = null;
  try {
    // The Node side: bob, over tcp, in the room with presence.
    bob = await connect(`sd:tcp://127.0.0.1:${p.tcp}`, { name: 'bob', reconnect: false });
    const fromPage: { from: string; text: string }[] = [];
    const direct: { from: string; text: string }[] = [];
    const joins: string[] = [];
    bob.onPresence((n) => {
      if (n.event === ROOM_EVENT && n.kind === 'join') joins.push(n.name);
    });
    bob.onDirect((msg) => {
      direct.push(msg.json());
    });
    await bob.on(ROOM_EVENT, (msg) => {
      fromPage.push(msg.json());
    }, { presence: true });

    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [...CHROMIUM_ARGS],
      viewport: { width: 1000, height: 640 },
      timeout: 60_000,
    });
    const page = context.pages()[0] ?? await context.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') pageErrors.push(message.text());
    });

    const url = `http://127.0.0.1:${p.http}/examples/chat/?ws=${p.ws}`;
    const response = await page.goto(url, { waitUntil: 'load', timeout: 30_000 });
    assert.equal(response?.status(), 200, `GET ${url}`);
    assert.equal(await page.title(), 'socketd-broker chat');

    // Join as alice.
    await page.fill('#room', ROOM);
    await page.fill('#nick', 'alice');
    await page.click('#join');
    await page.waitForSelector('body[data-state="joined"]', { timeout: 20_000 });
    assert.match(await page.textContent('#status') ?? '', /in #lobby as alice/);

    // Presence: the page lists both, bob saw alice join, and the broker's presence names both.
    await waitForItem(page, '#members li', 'alice');
    await waitForItem(page, '#members li', 'bob');
    assert.deepEqual((await memberNames(page)).sort(), ['alice', 'bob']);
    await eventually(() => joins.includes('alice'), 10_000, 'bob sees alice join');
    assert.deepEqual((await bob.presence(ROOM_EVENT)).map((e) => e.name).sort(), ['alice', 'bob']);

    // Node -> page.
    bob.send(ROOM_EVENT, JSON.stringify({ from: 'bob', text: 'hello from node' }));
    await waitForItem(page, '#messages li', 'bob:hello from node');

    // Page -> Node.
    await page.fill('#text', 'hello from the browser');
    await page.click('#send');
    await eventually(() => fromPage.length > 0, 10_000, 'bob receives the page\'s message');
    assert.deepEqual(fromPage, [{ from: 'alice', text: 'hello from the browser' }]);

    // Private messages both ways.
    await page.fill('#text', '/msg bob just for you');
    await page.press('#text', 'Enter');
    await eventually(() => direct.length > 0, 10_000, 'bob receives the private message');
    assert.deepEqual(direct, [{ from: 'alice', text: 'just for you' }]);
    bob.send('chat.private', JSON.stringify({ from: 'bob', text: 'got it' }), { to: 'alice' });
    await waitForItem(page, '#messages li.private', 'bob → you:got it');

    const texts = await messageTexts(page);
    for (const line of ['alice:hello from the browser', 'bob:hello from node', 'you → bob:just for you', 'bob → you:got it']) {
      assert.ok(texts.includes(line), `the message list shows '${line}': ${JSON.stringify(texts)}`);
    }

    const shot = join(tmpdir(), `socketd-chat-${process.pid}.png`);
    await page.screenshot({ path: shot, fullPage: true });
    t.diagnostic(`screenshot: ${shot}`);

    // Leaving: bob sees alice go.
    await page.click('#leave');
    await page.waitForSelector('body[data-state="idle"]', { timeout: 10_000 });
    await eventually(() => broker.broker.sessionCount === 1, 10_000, 'the page\'s session is closed');
    assert.deepEqual((await bob.presence(ROOM_EVENT)).map((e) => e.name), ['bob']);

    assert.deepEqual(pageErrors, [], 'no errors in the page');
  } finally {
    await context?.close().catch(() => {});
    rmSync(userDataDir, { recursive: true, force: true });
    await bob?.close();
    await broker.close();
  }
});
