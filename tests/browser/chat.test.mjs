// The chat page served by realtime-server, in headless Chromium: two people chat, the server is
// stopped and started again, both pages reconnect by themselves and show what they missed.
//
// With redis-server installed, the server runs with --redis and a second pod on the same Redis takes
// the "while you were away" publish: shared history is what lets a restarted server replay it.
// Without Redis a restarted server has no history, so that part is skipped and the page must say
// that messages may be missing instead.
//
// Run: npm install && npm test (in tests/browser). Environment:
//   REALTIME_SERVER=path        the server binary (default: newest build*/server/ or build/<preset>/server/realtime-server)
//   CHROMIUM=path               the browser (default /usr/bin/chromium; never downloaded)
//   REALTIME_TEST_REDIS=0       do not start redis-server even if installed
//   REALTIME_WEB_FROM_TREE=1    serve web/index.html and realtime-client.js from the working tree
//                               instead of the copies embedded in the binary (no rebuild needed)
// Screenshots land in tests/browser/artifacts/ (not committed).
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { REPO, findServer, publish, restartServer, startRedis, startServer } from './lib/server.mjs';
import { chromiumMissing, instrument, launch, webFiles } from './lib/browser.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ARTIFACTS = path.join(HERE, 'artifacts');
const SERVER = findServer();
const SKIP = !SERVER ? 'realtime-server binary not built (set REALTIME_SERVER)' : chromiumMissing();

const room = `lobby-${Math.random().toString(36).slice(2, 8)}`;

// The online list of `page` shows an entry containing `name`.
async function seesOnline(page, name) {
  await page.locator('#online li', { hasText: name }).first().waitFor({ timeout: 10000 });
}

async function seesMessage(page, text, who) {
  const item = page.locator('#log li', { hasText: text }).first();
  await item.waitFor({ timeout: 10000 });
  if (who) assert.equal((await item.locator('.who').textContent()).trim(), who);
  return item;
}

async function bannerState(page) {
  return page.locator('#banner').getAttribute('data-state');
}

test('two people chat; the server restarts; both pages reconnect and recover', { skip: SKIP, timeout: 120000 }, async (t) => {
  const redis = await startRedis();
  t.after(() => redis && redis.terminate());
  const args = redis ? ['--redis', redis.url] : [];
  let server = await startServer(SERVER, { args });
  t.after(() => server.terminate());
  const port = server.port;

  const browser = await launch();
  t.after(() => browser.close());
  const note = await webFiles(browser.context, server.httpUrl, REPO);
  if (note) t.diagnostic(note);
  const ann = browser.context.pages()[0] || (await browser.context.newPage());
  const bob = await browser.context.newPage();
  const annLog = instrument(ann);
  const bobLog = instrument(bob);

  await t.test('a shared link opens the room directly; the form joins from a ?room= link', async () => {
    await ann.goto(`${server.httpUrl}/#room=${room}&name=Ann`);
    await ann.locator('#chat').waitFor();
    assert.equal(await ann.locator('#room-title').textContent(), `#${room}`);

    await bob.goto(`${server.httpUrl}/?room=${room}`);
    await bob.getByLabel('Your name').fill('Bob');
    assert.equal(await bob.getByLabel('Room').inputValue(), room, 'room prefilled from the link');
    await bob.getByRole('button', { name: 'Join' }).click();
    await bob.locator('#chat').waitFor();
    assert.match(new URL(bob.url()).hash, new RegExp(`room=${room}&name=Bob`), 'the hash makes a shareable link');
  });

  await t.test('each sees the other online, by name', async () => {
    await seesOnline(ann, 'Bob');
    await seesOnline(bob, 'Ann');
    await seesOnline(ann, 'Ann (you)');
    assert.equal(await ann.locator('#online-count').textContent(), '(2)');
  });

  await t.test('a message sent by one is shown on both pages', async () => {
    await ann.getByRole('textbox', { name: 'Message' }).fill('Hello Bob!');
    await ann.getByRole('button', { name: 'Send' }).click();
    await seesMessage(bob, 'Hello Bob!', 'Ann');
    const mine = await seesMessage(ann, 'Hello Bob!', 'Ann');
    assert.match(await mine.getAttribute('class'), /mine/);
    assert.match((await mine.locator('time').textContent()).trim(), /\d/);
    await bob.getByRole('textbox', { name: 'Message' }).fill('Hi Ann');
    await bob.getByRole('textbox', { name: 'Message' }).press('Enter');
    await seesMessage(ann, 'Hi Ann', 'Bob');
  });

  await t.test('away toggle shows on the other page', async () => {
    await bob.getByRole('checkbox', { name: 'Away' }).check();
    await ann.locator('#online li[data-status=away]', { hasText: 'Bob' }).waitFor({ timeout: 10000 });
    await bob.getByRole('checkbox', { name: 'Away' }).uncheck();
    await ann.locator('#online li[data-status=online]', { hasText: 'Bob' }).waitFor({ timeout: 10000 });
  });

  let recoveredState = null;
  await t.test('server stopped: both pages say they are reconnecting', async () => {
    const exit = await server.terminate('SIGTERM');
    assert.equal(exit.code, 0, `server exit after SIGTERM: ${JSON.stringify(exit)}`);
    for (const page of [ann, bob]) {
      await page.locator('#banner[data-state=reconnecting]').waitFor({ timeout: 10000 });
      assert.match(await page.locator('#banner-text').textContent(), /Reconnecting/);
      assert.ok(await page.getByRole('button', { name: 'Retry now' }).isVisible());
    }
  });

  let awayId = null;
  if (redis) {
    // Published while both pages are disconnected, through another pod that shares the Redis history.
    const pod = await startServer(SERVER, { args });
    try {
      awayId = (await publish(pod, { room, text: 'Published while you were away' })).id;
    } finally {
      await pod.terminate();
    }
  }

  await t.test('server started again on the same port: both pages reconnect by themselves', async () => {
    server = await restartServer(SERVER, port, args);
    for (const page of [ann, bob]) {
      await page.waitForFunction(() => window.chat && window.chat.client.state === 'open', null, { timeout: 45000 });
      // The banner ends in one of: recovered (server replayed), missing (it could not).
      await page.locator('#banner[data-state=recovered], #banner[data-state=missing]').waitFor({ state: 'attached', timeout: 15000 });
    }
    recoveredState = await bannerState(ann);
  });

  await t.test('a message published while they were away is shown after recovery', async (st) => {
    assert.ok(await ann.evaluate(() => window.chat.recoveries.length > 0), 'the server sent "recovered"');
    if (!redis) {
      assert.equal(recoveredState, 'missing');
      assert.match(await ann.locator('#banner-text').textContent(), /may be missing/);
      st.skip('no redis-server: a restarted server has no history to replay');
      return;
    }
    const recoveries = await ann.evaluate(() => window.chat.recoveries);
    assert.equal(
      recoveredState,
      'recovered',
      `the restarted server answered ${JSON.stringify(recoveries)} for an id issued before the restart; ` +
        'with --redis the contract has history shared through Redis, so it should replay the message ' +
        `(banner: ${await ann.locator('#banner-text').textContent()})`,
    );
    // The published message; the other page's reconnect announcement, if replayed, is not shown
    // and not counted.
    assert.equal(await ann.locator('#banner-text').textContent(), 'Reconnected. 1 missed message restored.');
    for (const page of [ann, bob]) await seesMessage(page, 'Published while you were away');
    assert.ok(awayId);
    // Chat goes on after the restart.
    await bob.getByRole('textbox', { name: 'Message' }).fill('Back again');
    await bob.getByRole('button', { name: 'Send' }).click();
    await seesMessage(ann, 'Back again', 'Bob');
  });

  await t.test('after the reconnect, names are known again (connection ids changed)', async () => {
    await seesOnline(ann, 'Bob');
    await seesOnline(bob, 'Ann');
    assert.equal(await ann.locator('#online li', { hasText: 'guest' }).count(), 0);
    assert.equal(await bob.locator('#online li', { hasText: 'guest' }).count(), 0);
  });

  await t.test('screenshots for a visual check', async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    await ann.screenshot({ path: path.join(ARTIFACTS, 'chat.png') });
    await bob.setViewportSize({ width: 390, height: 780 });
    await bob.screenshot({ path: path.join(ARTIFACTS, 'chat-phone.png') });
  });

  await t.test('the page loads nothing from elsewhere and throws no errors', async () => {
    for (const log of [annLog, bobLog]) {
      const foreign = log.requests.filter((u) => !u.startsWith(`http://127.0.0.1:${port}/`) && !u.startsWith(`ws://127.0.0.1:${port}/`));
      assert.deepEqual(foreign, []);
      // Chromium logs refused WebSocket connects while the server is down; those are expected.
      const errors = log.errors.filter((e) => !/WebSocket connection to .* failed/.test(e));
      assert.deepEqual(errors, []);
    }
  });
});

test('phone layout: the page fits a narrow screen and has labelled controls', { skip: SKIP, timeout: 60000 }, async (t) => {
  const server = await startServer(SERVER);
  t.after(() => server.terminate());
  const browser = await launch();
  t.after(() => browser.close());
  const note = await webFiles(browser.context, server.httpUrl, REPO);
  if (note) t.diagnostic(note);
  const page = await browser.context.newPage();
  await page.setViewportSize({ width: 360, height: 640 });
  await page.goto(`${server.httpUrl}/#room=phone&name=Pat`);
  await page.waitForFunction(() => window.chat && window.chat.client.state === 'open', null, { timeout: 10000 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.equal(overflow, 0, 'no horizontal scrolling');
  for (const label of ['Message', 'Away']) assert.equal(await page.getByLabel(label, { exact: true }).count(), 1, `control labelled ${label}`);
  assert.equal(await page.getByRole('log', { name: 'Messages' }).count(), 1);
  assert.equal(await page.getByRole('status').count(), 1, 'connection banner is a live region');
  const viewport = await page.locator('meta[name=viewport]').getAttribute('content');
  assert.match(viewport, /width=device-width/);
  await page.getByRole('textbox', { name: 'Message' }).fill('From a phone');
  await page.getByRole('textbox', { name: 'Message' }).press('Enter');
  await seesMessage(page, 'From a phone', 'Pat');
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, 'phone.png') });
});
