// Presence (anonymous users: without a JWT every socket is its own user, so the several-tabs-of-one-
// user dedupe needs tokens and is not covered here):
// - when B joins A's room, A gets presence {status: online, user_id: B} for that room;
// - when B closes, A gets presence offline for B exactly once;
// - {"type":"presence","data":{"status":"away"}} -> room members get presence away for the sender;
//   an invalid status -> error invalid_message, socket open; a status set before a join holds in the
//   room joined (online, then away);
// - GET /api/rooms/{room}/presence -> {"room", "users": [{"user_id", "status"}]}; bad room -> 400;
//   a large room's list (16 KiB or more) is made at most once a second, the same answer for every
//   request of that second (a member who left shows after it), a small room's for each request;
// - one user (JWT) with two tabs: online while either tab is online, away when both are, an event
//   only when that changes (the online tab leaving while the other is away: away);
// - a socket in 64 rooms toggling its status as fast as it can: the changes are held to the rate
//   limit counted in room events (a change in 64 rooms costs 64), the rest refused with
//   rate_limited; the members are left with the status the socket last had accepted.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { withServer, killAll } from './lib/server.mjs';
import { connect, sleep, waitFor, TS_RE } from './lib/client.mjs';
import { get } from '../support/node/http.mjs';
import { createHmac } from 'node:crypto';

after(killAll);


const presenceOf = (user, status) => (m) =>
  m.type === 'presence' && m.data?.user_id === user && (status === undefined || m.data?.status === status);

test('a user joining the room is announced online to the members', () =>
  withServer([], async (s, clients) => {
    const a = await connect(s, '/ws/pres');
    clients.push(a);
    const b = await connect(s, '/ws/pres');
    clients.push(b);
    const m = await a.next(presenceOf(b.userId, 'online'), 3000, 'presence online for B');
    assert.equal(m.room, 'pres');
    assert.deepEqual(Object.keys(m.data).sort(), ['status', 'user_id']);
    assert.match(m.timestamp, TS_RE);
    assert.ok(m.id);
  }));

test('joining via {"type":"join"} also announces online', () =>
  withServer([], async (s, clients) => {
    const a = await connect(s, '/ws/pj');
    const b = await connect(s, '/ws');
    clients.push(a, b);
    b.send({ type: 'join', room: 'pj' });
    const m = await a.next(presenceOf(b.userId, 'online'), 3000, 'presence online after join');
    assert.equal(m.room, 'pj');
  }));

test('closing a socket announces offline to the room exactly once', () =>
  withServer([], async (s, clients) => {
    const a = await connect(s, '/ws/bye');
    clients.push(a);
    const b = await connect(s, '/ws/bye');
    await a.next(presenceOf(b.userId, 'online'));
    b.close();
    const m = await a.next(presenceOf(b.userId, 'offline'), 3000, 'presence offline for B');
    assert.equal(m.room, 'bye');
    // barrier: another member comes and goes online; then a quiet window
    const c = await connect(s, '/ws/bye');
    clients.push(c);
    await a.next(presenceOf(c.userId, 'online'));
    await sleep(300);
    assert.equal(a.seen(presenceOf(b.userId, 'offline')).length, 1, 'offline announced exactly once');
    assert.equal(a.seen(presenceOf(b.userId, 'online')).length, 1, 'online announced exactly once');
  }));

test('leave announces offline to the room left', () =>
  withServer([], async (s, clients) => {
    const a = await connect(s, '/ws/lv');
    const b = await connect(s, '/ws');
    clients.push(a, b);
    b.send({ type: 'join', room: 'lv' });
    await a.next(presenceOf(b.userId, 'online'));
    b.send({ type: 'leave', room: 'lv' });
    const m = await a.next(presenceOf(b.userId, 'offline'));
    assert.equal(m.room, 'lv');
  }));

test('presence away reaches room members; invalid status -> error invalid_message', () =>
  withServer([], async (s, clients) => {
    const a = await connect(s, '/ws/aw');
    const b = await connect(s, '/ws/aw');
    clients.push(a, b);
    await a.next(presenceOf(b.userId, 'online'));
    a.send({ type: 'presence', data: { status: 'away' } });
    const m = await b.next(presenceOf(a.userId, 'away'), 3000, 'presence away for A');
    assert.equal(m.room, 'aw');

    a.send({ type: 'presence', data: { status: 'dancing' } });
    const e = await a.next({ type: 'error' }, 3000, 'error for an invalid status');
    assert.equal(e.data.code, 'invalid_message');
    await a.roundTrip();
    // back online
    a.send({ type: 'presence', data: { status: 'online' } });
    await b.next(presenceOf(a.userId, 'online'), 3000, 'presence online again for A');
    assert.equal(b.seen(presenceOf(a.userId, 'dancing')).length, 0);
  }));

test('a status set before a join holds in the room joined: online, then away', () =>
  withServer([], async (s, clients) => {
    const a = await connect(s, '/ws/aj');
    const b = await connect(s, '/ws');
    clients.push(a, b);
    b.send({ type: 'presence', data: { status: 'away' } }); // in no room yet
    await b.roundTrip();
    b.send({ type: 'join', room: 'aj' });
    await a.next(presenceOf(b.userId, 'online'), 3000, 'presence online for B');
    const m = await a.next(presenceOf(b.userId, 'away'), 3000, 'presence away for B after its join');
    assert.equal(m.room, 'aj');
    const r = await get(s, '/api/rooms/aj/presence');
    assert.deepEqual(
      r.json.users.filter((u) => u.user_id === b.userId).map((u) => u.status),
      ['away'],
    );
    // Back online: the next room joined announces online only.
    b.send({ type: 'presence', data: { status: 'online' } });
    await a.next(presenceOf(b.userId, 'online'), 3000, 'presence online again for B');
    const c = await connect(s, '/ws/aj2');
    clients.push(c);
    b.send({ type: 'join', room: 'aj2' });
    await c.next(presenceOf(b.userId, 'online'), 3000, 'presence online for B in aj2');
    await b.roundTrip();
    await c.roundTrip();
    assert.equal(c.seen(presenceOf(b.userId, 'away')).length, 0);
  }));

test('GET /api/rooms/{room}/presence lists users with their status; bad room -> 400', () =>
  withServer([], async (s, clients) => {
    const a = await connect(s, '/ws/pl');
    const b = await connect(s, '/ws/pl');
    const other = await connect(s, '/ws/elsewhere');
    clients.push(a, b, other);
    a.send({ type: 'presence', data: { status: 'away' } });
    await b.next(presenceOf(a.userId, 'away'));
    const r = await waitFor(
      async () => {
        const x = await get(s, '/api/rooms/pl/presence');
        return x.status === 200 && x.json?.users?.some((u) => u.user_id === a.userId && u.status === 'away') ? x : null;
      },
      { timeoutMs: 3000, message: 'presence API showing A away' },
    );
    assert.match(r.headers.get('content-type') ?? '', /application\/json/);
    assert.equal(r.json.room, 'pl');
    assert.ok(Array.isArray(r.json.users));
    const users = [...r.json.users].sort((x, y) => (x.user_id < y.user_id ? -1 : 1));
    const expected = [
      { user_id: a.userId, status: 'away' },
      { user_id: b.userId, status: 'online' },
    ].sort((x, y) => (x.user_id < y.user_id ? -1 : 1));
    assert.deepEqual(users.map(({ user_id, status }) => ({ user_id, status })), expected);

    for (const p of ['/api/rooms/bad%20room/presence', `/api/rooms/${'a'.repeat(129)}/presence`]) {
      const bad = await get(s, p);
      assert.equal(bad.status, 400, `${p.slice(0, 40)} -> ${bad.status}`);
    }
  }));

function hs256(secret, claims) {
  const b64 = (x) => Buffer.from(JSON.stringify(x)).toString('base64url');
  const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ exp: Math.floor(Date.now() / 1000) + 3600, ...claims })}`;
  return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`;
}

test('a large room\'s presence is one answer for a second, a small room\'s made for each request', { timeout: 30000 }, () =>
  withServer(['--jwt-secret', 'big-secret'], async (s, clients) => {
    // Users of 200-byte ids: 80 of them make a list of ~19 KB, past the 16 KiB from which it is
    // reused.
    const idOf = (i) => `${String(i).padStart(3, '0')}${'u'.repeat(197)}`;
    const members = [];
    for (let i = 0; i < 80; i++) {
      members.push(await connect(s, `/ws/big?token=${hs256('big-secret', { sub: idOf(i) })}`));
    }
    clients.push(...members);
    const listed = async () => (await get(s, '/api/rooms/big/presence')).text;
    const idsIn = (text) => JSON.parse(text).users.map((u) => u.user_id);
    await waitFor(async () => idsIn(await listed()).length === members.length, {
      message: 'the 80 members listed',
    });
    // Made once the answer read above is stale, a list stands for the next second: a member who
    // leaves within it is still listed. (Only a round that fits well inside the second counts; a
    // slower one, on a loaded machine, is run again.)
    let leaver = 0;
    for (;;) {
      assert.ok(leaver < 5, 'no round within the fresh second');
      await sleep(1100);
      const started = Date.now();
      const made = await listed();
      assert.ok(made.length >= 16384, `a list of ${made.length} bytes`);
      assert.ok(idsIn(made).includes(idOf(leaver)));
      members[leaver].close();
      await members[79].next(presenceOf(idOf(leaver), 'offline'), 3000, 'the leave announced');
      const again = await listed();
      if (Date.now() - started < 800) {
        assert.equal(again, made, 'the same answer within the second');
        break;
      }
      leaver++;
    }
    // Past the second, the list is made again: without the leaver.
    await sleep(1100);
    assert.ok(!idsIn(await listed()).includes(idOf(leaver)), 'the leave shown after the second');

    // A small room's list shows a leave at once.
    const a = await connect(s, '/ws/few');
    const b = await connect(s, '/ws/few');
    clients.push(a, b);
    await a.next(presenceOf(b.userId, 'online'));
    const few = async () => idsIn((await get(s, '/api/rooms/few/presence')).text);
    assert.deepEqual((await few()).sort(), [a.userId, b.userId].sort());
    b.close();
    await a.next(presenceOf(b.userId, 'offline'), 3000, 'the leave announced');
    assert.deepEqual(await few(), [a.userId]);
  }));

async function statusOf(s, room, user) {
  const r = await get(s, `/api/rooms/${room}/presence`);
  return r.json?.users?.find((u) => u.user_id === user)?.status ?? 'offline';
}

test('a user with several tabs: online while any tab is online, away when all are, an event at each change', () =>
  withServer(['--jwt-secret', 'tabs-secret'], async (s, clients) => {
    const room = 'tabs';
    const token = hs256('tabs-secret', { sub: 'erin' });
    const watcher = await connect(s, `/ws/${room}`);
    const tab1 = await connect(s, `/ws/${room}?token=${token}`);
    const tab2 = await connect(s, `/ws/${room}?token=${token}`);
    clients.push(watcher, tab1, tab2);
    await watcher.next(presenceOf('erin', 'online'), 3000, 'presence online for erin');
    const events = () => watcher.seen(presenceOf('erin')).map((m) => m.data.status);

    // One tab away, the other online: erin stays online, and nothing is announced.
    tab2.send({ type: 'presence', data: { status: 'away' } });
    await tab2.roundTrip();
    await watcher.roundTrip();
    assert.equal(await statusOf(s, room, 'erin'), 'online', 'one tab online: erin online');
    // The away tab leaves: erin still online.
    tab2.send({ type: 'leave', room });
    await tab2.roundTrip();
    assert.equal(await statusOf(s, room, 'erin'), 'online', 'the away tab left: erin online');
    assert.deepEqual(events(), ['online'], 'no event while a tab stays online');

    // It comes back (still away): nothing changes. The online tab turns away: away; back: online.
    tab2.send({ type: 'join', room });
    await tab2.roundTrip();
    tab1.send({ type: 'presence', data: { status: 'away' } });
    await watcher.next(presenceOf('erin', 'away'), 3000, 'presence away once every tab is away');
    assert.equal(await statusOf(s, room, 'erin'), 'away');
    tab1.send({ type: 'presence', data: { status: 'online' } });
    await watcher.next(presenceOf('erin', 'online'), 3000, 'presence online when a tab is back');
    assert.equal(await statusOf(s, room, 'erin'), 'online');

    // The online tab leaves while the away one stays: away, announced.
    tab1.close();
    await watcher.next(presenceOf('erin', 'away'), 3000, 'presence away when the online tab left');
    assert.equal(await statusOf(s, room, 'erin'), 'away');
    tab2.close();
    await watcher.next(presenceOf('erin', 'offline'), 3000, 'presence offline when the last tab left');
    await watcher.roundTrip();
    assert.deepEqual(events(), ['online', 'away', 'online', 'away', 'offline']);
  }));

test('a status change in many rooms is held to the rate limit counted in room events', { timeout: 30000 }, () =>
  // Rate 20/s, burst 500: 127 joins and 10 toggles all pass the message bucket. Counted in room
  // events (64 per change in 64 rooms), the same burst allows 7 changes at once (7 x 64 <= 500).
  withServer(['--rate-limit', '20', '--rate-burst', '500'], async (s, clients) => {
    const rooms = Array.from({ length: 64 }, (_, i) => `pr-${i}`);
    const toggler = await connect(s, `/ws/${rooms[0]}`);
    const watcher = await connect(s, `/ws/${rooms[0]}`);
    clients.push(toggler, watcher);
    for (const room of rooms.slice(1)) {
      toggler.send({ type: 'join', room });
      watcher.send({ type: 'join', room });
    }
    await toggler.roundTrip();
    await watcher.roundTrip();
    const events = () => watcher.seen((m) => m.type === 'presence' && m.data?.user_id === toggler.userId && m.data.status !== 'online');
    const inLastRoom = () => watcher.seen((m) => m.type === 'presence' && m.data?.user_id === toggler.userId && m.room === rooms[63]).map((m) => m.data.status);
    const before = events().length;
    const beforeLast = inLastRoom().length;
    for (let i = 0; i < 10; i++) toggler.send({ type: 'presence', data: { status: i % 2 === 0 ? 'away' : 'online' } });
    await toggler.next((m) => m.type === 'error' && m.data?.code === 'rate_limited', 3000, 'rate_limited for the toggles past the limit');
    await toggler.roundTrip();
    await watcher.roundTrip();
    const changes = inLastRoom().slice(beforeLast);
    // The 7 accepted changes.
    assert.deepEqual(changes, ['away', 'online', 'away', 'online', 'away', 'online', 'away'], `presence of the toggler in ${rooms[63]}`);
    assert.equal(events().length - before, 4 * 64, 'away events over the 64 rooms');
    const listed = await get(s, `/api/rooms/${rooms[63]}/presence`);
    assert.equal(listed.json.users.find((u) => u.user_id === toggler.userId)?.status, 'away');
  }));
