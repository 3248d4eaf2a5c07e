/**
 * The admin page (/admin/, docs/operations.md section 6) in a real browser: headless Chromium (Debian's
 * `chromium`, driven by playwright-core) against a broker started as `npm start` does (bin/socketd-broker.js,
 * every port 0, read from the `broker_started` log line), with an admin token and a trusted-address list that
 * leaves the test's 127.0.0.1 out. The page and the JSON endpoints answer 401 without the token and 200 with
 * it; the page asks for the token, shows the sessions the test opens over tcp, ws and udp, its charts move
 * while the test publishes, disconnecting a session closes it (its client gets the Close), and a stopped
 * broker shows as unreachable. A second broker without a token shows the "not trusted" state.
 *
 * With UPDATE_SCREENSHOTS=1 the screenshots (1280x800 and 390x844) are written to docs/images/ (the README
 * shows them); otherwise to the temporary folder. Chromium is installed by .ci/run; without it the test fails
 * under CI and is skipped elsewhere.
 */
import { CHROMIUM, CHROMIUM_ARGS, requireChromium, skipWithoutChromium } from '../support/chromium.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { connect, type Client } from '../../src/client/index.js';
import { eventually } from '../support/broker.js';

const skip = skipWithoutChromium;

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const BIN = join(ROOT, 'bin/socketd-broker.js');
const SHOTS = process.env.UPDATE_SCREENSHOTS === '1' ? join(ROOT, 'docs/images') : tmpdir();
const TOKEN = 'dashboard-test-token';
/** The test runs on 127.0.0.1, which this list leaves out. */
const NOT_US = '[10.0.0.0/8]';


interface Ports {
  tcp: number;
  udp: number;
  ws: number;
  http: number;
}

/** bin/socketd-broker.js on 127.0.0.1, every port 0; the ports come from its `broker_started` log line. */
class BrokerProcess {
  private readonly child: ChildProcess;
  private stderr = '';
  readonly ports: Promise<Ports>;
  readonly exited: Promise<void>;

  constructor(env: Record<string, string>) {
    const clean: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SOCKETD_')) clean[k] = v;
    const local = '127.0.0.1';
    this.child = spawn(process.execPath, [BIN, '--tcp', '0', '--udp', '0', '--ws', '0', '--http', '0', '--log-level', 'info'], {
      cwd: ROOT,
      env: {
        ...clean,
        SOCKETD_LISTENERS__TCP__HOST: local,
        SOCKETD_LISTENERS__UDP__HOST: local,
        SOCKETD_LISTENERS__WS__HOST: local,
        SOCKETD_HTTP__HOST: local,
        ...env,
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.exited = new Promise((r) => this.child.on('exit', () => r()));
    this.ports = new Promise((resolvePorts, reject) => {
      const timer = setTimeout(() => reject(new Error(`no broker_started within 30 s: ${this.stderr}`)), 30_000);
      this.child.stderr!.on('data', (d: Buffer) => {
        this.stderr += d.toString();
        for (const line of this.stderr.split('\n')) {
          if (!line.includes('"broker_started"')) continue;
          const a = (JSON.parse(line) as { addresses: Record<string, { port: number }> }).addresses;
          clearTimeout(timer);
          resolvePorts({ tcp: a.tcp.port, udp: a.udp.port, ws: a.ws.port, http: a.http.port });
        }
      });
      void this.exited.then(() => reject(new Error(`the broker exited: ${this.stderr}`)));
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    await this.exited;
  }
}

async function launch(width: number, height: number): Promise<{ context: BrowserContext; page: Page; errors: string[]; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'socketd-chromium-'));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_ARGS],
    viewport: { width, height },
    // The page's Content-Security-Policy forbids evaluating strings, which waitForFunction does; the policy
    // itself is checked on the response.
    bypassCSP: true,
    timeout: 60_000,
  });
  const page = context.pages()[0] ?? await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  page.on('console', (message) => {
    // A 401 or a refused fetch is logged by Chromium itself; the page handles both.
    if (message.type() === 'error' && !/status of 401|ERR_CONNECTION_REFUSED|Failed to fetch/.test(message.text())) errors.push(message.text());
  });
  return { context, page, errors, dir };
}

async function status(url: string, token?: string): Promise<number> {
  const res = await fetch(url, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });
  await res.arrayBuffer();
  return res.status;
}

/** The chart's points and largest value, as the page writes them on the chart's box. */
async function chart(page: Page, id: string): Promise<{ points: number; max: number }> {
  const box = page.locator(`#chart-${id}`);
  return { points: Number(await box.getAttribute('data-points')), max: Number(await box.getAttribute('data-max')) };
}

async function shot(page: Page, name: string): Promise<string> {
  mkdirSync(SHOTS, { recursive: true });
  const path = join(SHOTS, name);
  await page.screenshot({ path });
  return path;
}

async function rowTexts(page: Page): Promise<string[]> {
  return page.locator('#sessions tbody tr').allInnerTexts();
}

test('the admin page: token, sessions over tcp, ws and udp, moving charts, disconnect, unreachable', { skip, timeout: 240_000 }, async (t) => {
  requireChromium();

  const broker = new BrokerProcess({ SOCKETD_ADMIN_TOKEN: TOKEN, SOCKETD_HTTP__ADMIN_TRUSTED: NOT_US });
  const clients: Client[] = [];
  let browser: Awaited<ReturnType<typeof launch>> | null = null;
  try {
    const p = await broker.ports;
    const base = `http://127.0.0.1:${p.http}`;

    // Not trusted, a token configured: 401 without it, 200 with it, for the page and the JSON endpoints.
    for (const path of ['/admin/', '/admin/api/overview', '/admin/api/sessions', '/admin/api/names', '/admin/api/subscriptions', '/connz', '/subsz', '/namez']) {
      assert.equal(await status(`${base}${path}`), 401, `${path} without the token`);
      assert.equal(await status(`${base}${path}`, 'not-the-token'), 401, `${path} with a wrong token`);
      assert.equal(await status(`${base}${path}`, TOKEN), 200, `${path} with the token`);
    }
    for (const path of ['/healthz', '/readyz', '/metrics', '/admin/admin.js', '/admin/admin.css', '/admin/uPlot.min.css']) {
      assert.equal(await status(`${base}${path}`), 200, `${path} is open`);
    }

    browser = await launch(1280, 800);
    const { page, errors } = browser;
    const response = await page.goto(`${base}/admin/`, { waitUntil: 'load', timeout: 30_000 });
    assert.equal(response?.status(), 401, 'the page without the token');
    assert.match(response?.headers()['content-security-policy'] ?? '', /default-src 'none'; script-src 'self'/);
    assert.equal(response?.headers()['x-frame-options'], 'DENY');
    assert.equal(await page.title(), 'socketd-broker admin');
    await page.waitForSelector('body[data-state="token"]', { timeout: 10_000 });
    assert.ok(await page.locator('#login').isVisible(), 'the page asks for the token');

    // A wrong token is refused and asked again; the right one opens the page.
    await page.fill('#token', 'not-the-token');
    await page.click('#login button[type="submit"]');
    await page.waitForSelector('#login-error:not([hidden])', { timeout: 10_000 });
    await page.fill('#token', TOKEN);
    await page.click('#login button[type="submit"]');
    await page.waitForSelector('body[data-state="live"]', { timeout: 10_000 });
    assert.equal(await page.evaluate("sessionStorage.getItem('socketd-admin-token')"), TOKEN, 'kept for the tab');
    assert.equal(await page.evaluate('document.cookie'), '', 'no cookie');
    assert.ok(!page.url().includes(TOKEN), 'no token in the URL');
    // The same page, asked for with the token, is 200.
    const withToken = await page.request.get(`${base}/admin/`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(withToken.status(), 200);

    // No sessions yet: the plain state.
    await page.click('#tabs a[data-view="sessions"]');
    await page.waitForSelector('#sessions-empty:not([hidden])', { timeout: 10_000 });
    assert.match(await page.textContent('#sessions-empty') ?? '', /No sessions yet/);

    // Sessions over tcp, ws and udp.
    const alice = await connect(`sd:tcp://127.0.0.1:${p.tcp}`, { name: 'alice', reconnect: false });
    const bob = await connect(`sd:ws://127.0.0.1:${p.ws}`, { name: 'bob', reconnect: false });
    const carol = await connect(`sd:udp://127.0.0.1:${p.udp}`, { name: 'carol', reconnect: false });
    clients.push(alice, bob, carol);
    let received = 0;
    await bob.on('orders.*', () => void received++, { group: 'workers' });
    await carol.on('orders.*', () => void received++, { group: 'workers' });
    await carol.on('chat.>', () => undefined);

    await page.waitForFunction(`document.querySelectorAll('#sessions tbody tr[data-id]').length === 3`, null, { timeout: 15_000 });
    const rows = await rowTexts(page);
    for (const [name, transport] of [['alice', 'tcp'], ['bob', 'ws'], ['carol', 'udp']]) {
      assert.ok(rows.some((r) => r.includes(name) && r.includes(transport)), `a row for ${name} over ${transport}: ${JSON.stringify(rows)}`);
    }
    assert.ok(await page.locator('#sessions-empty').isHidden());

    // The search narrows the table.
    await page.fill('#session-search', 'udp');
    await page.waitForFunction(`document.querySelectorAll('#sessions tbody tr[data-id]').length === 1`, null, { timeout: 10_000 });
    assert.match((await rowTexts(page))[0], /carol/);
    await page.fill('#session-search', '');
    await page.waitForFunction(`document.querySelectorAll('#sessions tbody tr[data-id]').length === 3`, null, { timeout: 10_000 });

    // The charts move while the test publishes.
    await page.click('#tabs a[data-view="overview"]');
    await page.waitForFunction(`Number(document.querySelector('#chart-sessions')?.getAttribute('data-max')) >= 1`, null, { timeout: 15_000 });
    const before = await chart(page, 'frames');
    let sent = 0;
    const until = Date.now() + 4000;
    while (Date.now() < until) {
      for (let i = 0; i < 20; i++) alice.send(`orders.o${sent++ % 7}`, `{"n":${sent}}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    await page.waitForFunction(`Number(document.querySelector('#chart-frames')?.getAttribute('data-max')) > 10`, null, { timeout: 15_000 });
    const after = await chart(page, 'frames');
    assert.ok(after.points > before.points, `the frames chart gained points: ${before.points} -> ${after.points}`);
    assert.ok(after.max > 10, `frames per second seen: ${after.max}`);
    const deliveries = await chart(page, 'deliveries');
    assert.ok(deliveries.max > 0, `deliveries per second seen: ${deliveries.max}`);
    const sessionsChart = await chart(page, 'sessions');
    assert.equal(sessionsChart.max, 1, 'one session per transport');
    await eventually(() => received > 0, 10_000, 'the queue group received');
    t.diagnostic(`published ${sent}, received ${received}; frames chart ${after.points} points, max ${after.max}/s`);
    await page.waitForTimeout(1500);
    t.diagnostic(`screenshot: ${await shot(page, 'admin-overview.png')}`);

    // Names and subscriptions.
    await page.click('#tabs a[data-view="routing"]');
    await page.waitForFunction(`document.querySelectorAll('#names tbody tr').length === 3`, null, { timeout: 10_000 });
    assert.deepEqual((await page.locator('#names tbody tr td:first-child').allInnerTexts()).sort(), ['@alice', '@bob', '@carol']);
    const patterns = await page.locator('#patterns tbody tr').allInnerTexts();
    assert.ok(patterns.some((r) => r.includes('orders.*') && r.includes('group workers') && r.includes('@bob') && r.includes('@carol')), JSON.stringify(patterns));
    assert.ok(patterns.some((r) => r.includes('chat.>') && r.includes('@carol')), JSON.stringify(patterns));

    // A session's detail, and disconnect with a reason: bob's client gets the Close.
    await page.click('#tabs a[data-view="sessions"]');
    await page.waitForFunction(`document.querySelectorAll('#sessions tbody tr[data-id]').length === 3`, null, { timeout: 10_000 });
    await page.locator('#sessions tbody tr', { hasText: 'bob' }).click();
    await page.waitForSelector('#detail:not([hidden])', { timeout: 10_000 });
    assert.equal(await page.textContent('#detail-title'), '@bob');
    assert.match(await page.textContent('#detail-subs') ?? '', /orders\.\*.*group workers/);
    assert.ok(await page.locator('#disconnect button').isEnabled(), 'actions are on: the broker has a token');
    t.diagnostic(`screenshot: ${await shot(page, 'admin-sessions.png')}`);
    const bobClosed = new Promise<{ reason?: string; closeCode?: number; message: string }>((r) => bob.events.on('disconnect', (e) => r(e)));
    await page.fill('#reason', 'moved to another shard');
    await page.click('#disconnect button[type="submit"]');
    const closed = await bobClosed;
    assert.equal(closed.reason, 'admin_disconnect');
    assert.equal(closed.closeCode, 1001);
    assert.match(closed.message, /moved to another shard/, closed.message);
    await page.waitForFunction(`document.querySelectorAll('#sessions tbody tr[data-id]').length === 2`, null, { timeout: 10_000 });
    assert.match(await page.textContent('#disconnect-note') ?? '', /Disconnected bob: moved to another shard/);
    assert.ok(!(await rowTexts(page)).some((r) => r.includes('bob')), 'bob is gone from the table');

    // A phone-sized screen: the sessions (with the outcome of the disconnect), then the overview.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(500);
    const sessionsOverflow = await page.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth');
    assert.ok(sessionsOverflow <= 0, `the sessions view fits the phone's screen (${sessionsOverflow} px too wide)`);
    t.diagnostic(`screenshot: ${await shot(page, 'admin-phone-sessions.png')}`);
    await page.click('#tabs a[data-view="overview"]');
    await page.waitForTimeout(1500);
    const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth');
    assert.ok(overflow <= 0, `nothing wider than the phone's screen (${overflow} px too wide)`);
    t.diagnostic(`screenshot: ${await shot(page, 'admin-phone.png')}`);

    assert.deepEqual(errors, [], 'no errors in the page');

    // The broker goes away: the page says so and keeps what it showed.
    for (const c of clients) await c.close();
    clients.length = 0;
    await broker.stop();
    await page.waitForSelector('body[data-state="unreachable"]', { timeout: 15_000 });
    assert.match(await page.textContent('#banner') ?? '', /Broker unreachable/);
    assert.ok(await page.locator('#charts .chart').first().isVisible(), 'the last charts stay');
  } finally {
    await browser?.context.close().catch(() => {});
    if (browser !== null) rmSync(browser.dir, { recursive: true, force: true });
    for (const c of clients) await c.close().catch(() => {});
    await broker.stop();
  }
});

test('the admin page without a token, from an address not on http.adminTrusted: 401 and a plain explanation', { skip, timeout: 120_000 }, async () => {
  requireChromium();

  const broker = new BrokerProcess({ SOCKETD_HTTP__ADMIN_TRUSTED: NOT_US });
  let browser: Awaited<ReturnType<typeof launch>> | null = null;
  try {
    const p = await broker.ports;
    const base = `http://127.0.0.1:${p.http}`;
    assert.equal(await status(`${base}/admin/api/overview`), 401);
    assert.equal(await status(`${base}/admin/api/overview`, 'anything'), 401, 'no token is configured: none is accepted');
    browser = await launch(1280, 800);
    const { page, errors } = browser;
    const response = await page.goto(`${base}/admin/`, { waitUntil: 'load', timeout: 30_000 });
    assert.equal(response?.status(), 401);
    await page.waitForSelector('body[data-state="untrusted"]', { timeout: 10_000 });
    assert.match(await page.textContent('#untrusted-text') ?? '', /127\.0\.0\.1 is not on http\.adminTrusted/);
    assert.ok(await page.locator('main').isHidden(), 'no data shown');
    assert.deepEqual(errors, []);
  } finally {
    await browser?.context.close().catch(() => {});
    if (browser !== null) rmSync(browser.dir, { recursive: true, force: true });
    await broker.stop();
  }
});

test('the admin page with the defaults, from loopback: no token asked, actions greyed out until a token is set', { skip, timeout: 120_000 }, async () => {
  requireChromium();

  const broker = new BrokerProcess({});
  let browser: Awaited<ReturnType<typeof launch>> | null = null;
  let client: Client | null = null;
  try {
    const p = await broker.ports;
    client = await connect(`sd:tcp://127.0.0.1:${p.tcp}`, { name: 'dave', reconnect: false });
    browser = await launch(1280, 800);
    const { page, errors } = browser;
    const response = await page.goto(`http://127.0.0.1:${p.http}/admin/#sessions`, { waitUntil: 'load', timeout: 30_000 });
    assert.equal(response?.status(), 200, 'loopback is trusted');
    await page.waitForSelector('body[data-state="live"]', { timeout: 10_000 });
    assert.ok(await page.locator('#forget').isHidden(), 'no token to forget');
    await page.locator('#sessions tbody tr', { hasText: 'dave' }).click();
    await page.waitForSelector('#detail:not([hidden])', { timeout: 10_000 });
    assert.ok(await page.locator('#disconnect button').isDisabled(), 'disconnect needs a token');
    assert.match(await page.textContent('#disconnect-note') ?? '', /set http\.adminToken/);
    assert.equal(await page.evaluate("fetch('./api/sessions/x/disconnect', { method: 'POST' }).then((r) => r.status)"), 403,
      'and the API refuses it too');
    assert.deepEqual(errors.filter((e) => !/status of 403/.test(e)), []);
  } finally {
    await browser?.context.close().catch(() => {});
    if (browser !== null) rmSync(browser.dir, { recursive: true, force: true });
    await client?.close();
    await broker.stop();
  }
});
