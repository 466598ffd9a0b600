// The chat page in corners chat.test.mjs does not reach: odd names and rooms from a link, a wrong
// clock, what the banners count and say, a narrow screen. Each test runs its own server and
// browser (no Redis needed). Run and environment: see chat.test.mjs.
import test from 'node:test';
import assert from 'node:assert/strict';

import { REPO, findServer, startServer } from './lib/server.mjs';
import { chromiumMissing, instrument, launch, webFiles } from './lib/browser.mjs';

const SERVER = findServer();
const SKIP = !SERVER ? 'realtime-server binary not built (set REALTIME_SERVER)' : chromiumMissing();

// A server (with `args`) and a browser, both stopped when the test ends.
async function setUp(t, args = []) {
  const server = await startServer(SERVER, { args });
  t.after(() => server.terminate());
  const browser = await launch();
  t.after(() => browser.close());
  const note = await webFiles(browser.context, server.httpUrl, REPO);
  if (note) t.diagnostic(note);
  return { server, context: browser.context };
}

// A new tab in `room` as `name`, its socket open.
async function openChat(context, server, room, name, { before } = {}) {
  const page = await context.newPage();
  const log = instrument(page);
  if (before) await before(page);
  await page.goto(`${server.httpUrl}/#${new URLSearchParams({ room, name })}`);
  await page.waitForFunction(() => window.chat && window.chat.client.state === 'open', null, { timeout: 10000 });
  return Object.assign(page, { log });
}

async function say(page, text) {
  await page.getByRole('textbox', { name: 'Message' }).fill(text);
  await page.getByRole('textbox', { name: 'Message' }).press('Enter');
}

async function seesMessage(page, text, who) {
  const item = page.locator('#log li', { hasText: text }).first();
  await item.waitFor({ timeout: 10000 });
  if (who !== undefined) assert.equal((await item.locator('.who').textContent()).trim(), who);
}

async function seesOnline(page, name) {
  await page.locator('#online li', { hasText: name }).first().waitFor({ timeout: 10000 });
}

const uniqueRoom = (prefix) => `${prefix}-${Math.random().toString(36).slice(2, 8)}`;

test('a name from a link longer than 40 characters is cut between characters, and its messages go through', { skip: SKIP, timeout: 60000 }, async (t) => {
  const { server, context } = await setUp(t);
  const name = `a${'😀'.repeat(25)}`; // 51 UTF-16 units: unit 40 is the first half of an emoji
  const page = await openChat(context, server, uniqueRoom('emoji'), name);
  const cut = `a${'😀'.repeat(19)}`;
  assert.equal(await page.evaluate(() => window.chat.session.name), cut);
  await say(page, 'hello from an emoji name');
  await seesMessage(page, 'hello from an emoji name', cut);
  assert.notEqual(await page.locator('#banner').getAttribute('data-state'), 'error', await page.locator('#banner-text').textContent());
});

test('rooms "." and ".." are rooms of their own, with names and presence', { skip: SKIP, timeout: 60000 }, async (t) => {
  const { server, context } = await setUp(t);
  const ann = await openChat(context, server, '.', 'Ann');
  const bob = await openChat(context, server, '..', 'Bob');
  const cat = await openChat(context, server, '.', 'Cat');
  assert.equal(await ann.locator('#room-title').textContent(), '#.');
  assert.equal(await bob.locator('#room-title').textContent(), '#..');
  await say(ann, 'in the dot room');
  await seesMessage(cat, 'in the dot room', 'Ann');
  await say(bob, 'in the dot-dot room');
  await seesMessage(bob, 'in the dot-dot room', 'Bob');
  await seesOnline(ann, 'Cat');
  await seesOnline(cat, 'Ann');
  assert.equal(await cat.locator('#online-count').textContent(), '(2)');
  assert.equal(await cat.locator('#log li', { hasText: 'dot-dot' }).count(), 0, 'nothing of ".." in "."');
  const rooms = await (await fetch(`${server.httpUrl}/api/rooms`)).json();
  assert.deepEqual(rooms.rooms.map((r) => [r.room, r.members]), [['.', 2], ['..', 1]]);

  // No presence list to fetch after a reconnect: the members are asked again, and who left while
  // Ann was away is gone from her list.
  const dan = await openChat(context, server, '.', 'Dan');
  await seesOnline(ann, 'Dan');
  await ann.evaluate(() => window.chat.client.close());
  await dan.close();
  await say(cat, 'while Ann was away');
  await ann.evaluate(() => window.chat.client.connect());
  await ann.locator('#banner[data-state=recovered]').waitFor({ timeout: 10000 });
  await seesMessage(ann, 'while Ann was away', 'Cat');
  await seesOnline(ann, 'Cat');
  assert.equal(await ann.locator('#online-count').textContent(), '(2)');
  for (const page of [ann, bob, cat]) assert.deepEqual(page.log.errors, []);
});

test('a member whose clock is a minute fast still tells a newcomer her name', { skip: SKIP, timeout: 60000 }, async (t) => {
  const { server, context } = await setUp(t);
  const room = uniqueRoom('clock');
  const fastClock = (page) => page.addInitScript(() => {
    const Real = Date;
    const now = () => Real.now() + 60000;
    globalThis.Date = class extends Real {
      constructor(...args) {
        if (args.length) super(...args);
        else super(now());
      }
      static now() {
        return now();
      }
    };
  });
  const ann = await openChat(context, server, room, 'Ann', { before: fastClock });
  const bob = await openChat(context, server, room, 'Bob');
  await seesOnline(bob, 'Ann');
  await seesOnline(ann, 'Bob');
  assert.equal(await bob.locator('#online li', { hasText: 'guest' }).count(), 0);
});

test('"missed messages restored" counts only the messages the page shows', { skip: SKIP, timeout: 60000 }, async (t) => {
  const { server, context } = await setUp(t);
  const room = uniqueRoom('count');
  const ann = await openChat(context, server, room, 'Ann');
  const bob = await openChat(context, server, room, 'Bob');
  await seesOnline(ann, 'Bob');
  await ann.evaluate(() => window.chat.client.close());
  await ann.waitForFunction(() => window.chat.client.state === 'closed');
  // While Ann is away: one message she will see, and one "here" announcement she will not.
  await bob.evaluate((r) => window.chat.client.send(r, { event: 'here', name: 'Bob' }), room);
  await say(bob, 'while Ann was away');
  await seesMessage(bob, 'while Ann was away');
  await ann.evaluate(() => window.chat.client.connect());
  await ann.locator('#banner[data-state=recovered]').waitFor({ timeout: 10000 });
  await seesMessage(ann, 'while Ann was away', 'Bob');
  assert.equal(await ann.locator('#banner-text').textContent(), 'Reconnected. 1 missed message restored.');
});

test('"Change room" offers this tab\'s name, not the one another tab saved last', { skip: SKIP, timeout: 60000 }, async (t) => {
  const { server, context } = await setUp(t);
  const room = uniqueRoom('change');
  const ann = await openChat(context, server, room, 'Ann');
  await openChat(context, server, room, 'Bob'); // same browser: it saves "Bob" as the name
  await ann.getByRole('button', { name: 'Change room' }).click();
  assert.equal(await ann.getByLabel('Your name').inputValue(), 'Ann');
  assert.equal(await ann.getByLabel('Room').inputValue(), room);
});

test('a long room name fits a 375 px phone screen', { skip: SKIP, timeout: 60000 }, async (t) => {
  const { server, context } = await setUp(t);
  const room = 'verylongroomname'.repeat(6); // 96 characters
  const page = await context.newPage();
  await page.setViewportSize({ width: 375, height: 700 });
  await page.goto(`${server.httpUrl}/#${new URLSearchParams({ room, name: 'Maximilian Alexander von Habsburg-Lothr' })}`);
  await page.waitForFunction(() => window.chat && window.chat.client.state === 'open', null, { timeout: 10000 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.equal(overflow, 0, 'no horizontal scrolling');
  assert.equal(await page.locator('#room-title').textContent(), `#${room}`, 'the whole name is in the page');
});

test('a page that never connected does not say its connection was lost', { skip: SKIP, timeout: 60000 }, async (t) => {
  const { server, context } = await setUp(t, ['--max-connections', '1']);
  const room = uniqueRoom('full');
  await openChat(context, server, room, 'Ann'); // takes the only socket
  const bob = await context.newPage();
  await bob.goto(`${server.httpUrl}/#room=${room}&name=Bob`);
  await bob.locator('#banner[data-state=reconnecting]').waitFor({ timeout: 10000 });
  const text = await bob.locator('#banner-text').textContent();
  assert.doesNotMatch(text, /lost/i);
  assert.match(text, /cannot connect/i);
  assert.ok(await bob.getByRole('button', { name: 'Retry now' }).isVisible());
});

// The texts of the log's message lines, in order.
const logTexts = (page) => page.locator('#log li .body').allTextContents();

test('a reload shows the conversation as it was and what was said meanwhile, each line once', { skip: SKIP, timeout: 60000 }, async (t) => {
  const { server, context } = await setUp(t);
  const room = uniqueRoom('reload');
  const ann = await openChat(context, server, room, 'Ann');
  const bob = await openChat(context, server, room, 'Bob');
  await seesOnline(ann, 'Bob');
  await say(ann, 'from Ann before');
  await say(bob, 'from Bob before');
  await seesMessage(ann, 'from Bob before', 'Bob');
  assert.deepEqual(await logTexts(ann), ['from Ann before', 'from Bob before']);
  const bobEvents = await bob.locator('#log li.event').allTextContents();

  // Away (the page unloaded) while Bob speaks; then the same link again, in the same tab.
  await ann.goto('about:blank');
  await say(bob, 'while Ann was gone');
  await seesMessage(bob, 'while Ann was gone');
  await ann.goto(`${server.httpUrl}/#${new URLSearchParams({ room, name: 'Ann' })}`);
  await ann.locator('#banner[data-state=recovered]').waitFor({ timeout: 10000 });
  assert.equal(await ann.locator('#banner-text').textContent(), 'Reconnected. 1 missed message restored.');
  assert.deepEqual(await logTexts(ann), ['from Ann before', 'from Bob before', 'while Ann was gone']);
  assert.equal(await ann.locator('#log li.mine .body').allTextContents().then((t) => t.join('|')), 'from Ann before');
  assert.equal(await ann.locator('#log li.event', { hasText: 'You joined.' }).count(), 1);

  // Her new connection is known by name, and she did not "join" a second time.
  await say(ann, 'from Ann after');
  await seesMessage(bob, 'from Ann after', 'Ann');
  await seesMessage(ann, 'from Ann after');
  await seesOnline(bob, 'Ann');
  assert.deepEqual(await bob.locator('#log li.event').allTextContents(), bobEvents);

  // A plain reload: the same lines, none twice, nothing missed.
  await ann.reload();
  await ann.locator('#banner[data-state=recovered]').waitFor({ timeout: 10000 });
  assert.equal(await ann.locator('#banner-text').textContent(), 'Reconnected. Nothing was missed.');
  assert.deepEqual(await logTexts(ann), ['from Ann before', 'from Bob before', 'while Ann was gone', 'from Ann after']);
  assert.equal(await ann.locator('#log li.mine').count(), 2, 'her lines from both connections are hers');

  // Another name in the same tab starts afresh.
  await ann.goto(`${server.httpUrl}/#${new URLSearchParams({ room, name: 'Cleo' })}`);
  await ann.waitForFunction(() => window.chat && window.chat.client.state === 'open', null, { timeout: 10000 });
  assert.deepEqual(await logTexts(ann), []);
  assert.deepEqual(ann.log.errors, []);
});
