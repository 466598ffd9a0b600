// Room positions on a single pod: a client is told where it joined a room, so it can resume the
// room even when no message of it has reached it yet.
// - the welcome of /ws/{room} carries last_id, the id after which every message of the room
//   reaches the socket ("<epoch>-0" in a room without messages); the room's next message has the
//   next number in that epoch;
// - a client that left a quiet room (its only member) resumes from that position: the messages
//   published meanwhile are replayed, recovered: true;
// - a join message is answered by system "joined" with the room's position, before any message of
//   the room; a second join of the same room is not answered;
// - recovered carries last_id too: the last replayed id, or the room's position when the resume
//   failed (also from a last_id that is not even decodable), and resuming from it later works;
// - the ids of presence messages, of the welcome, of joined and of recovered name the position they
//   stand at: a client that resumes from one resumes from there; so do a pong's and an error's, on
//   a socket in a room (in none: recovered false).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { withServer, killAll } from './lib/server.mjs';
import { connect } from './lib/client.mjs';
import { publish } from '../support/node/http.mjs';

after(killAll);

const event = (name) => (m) => m.type === 'system' && m.data?.event === name;
const chat = (text) => (m) => m.type === 'chat' && m.data?.text === text;
const epochOf = (id) => id.slice(0, id.lastIndexOf('-'));
const seqOf = (id) => Number(id.slice(id.lastIndexOf('-') + 1));

test('the welcome gives the room position; a client resumes a quiet room it was alone in', () =>
  withServer([], async (s, clients) => {
    const first = await connect(s, '/ws/quiet');
    clients.push(first);
    const start = first.welcome.data.last_id;
    assert.match(start, /^[0-9a-z]{8}-0$/, `a new room's position: ${JSON.stringify(first.welcome)}`);
    first.close();
    await first.expectClose();

    const published = [];
    for (const text of ['q1', 'q2']) {
      const r = await publish(s, { room: 'quiet', text });
      assert.equal(r.status, 202);
      published.push(r.json.id);
    }
    assert.deepEqual(published, [`${epochOf(start)}-1`, `${epochOf(start)}-2`], 'numbered on from the position');

    const again = await connect(s, `/ws/quiet?last_id=${encodeURIComponent(start)}`);
    clients.push(again);
    assert.equal(again.welcome.data.last_id, undefined, 'a resuming socket gets its position with recovered');
    const got = [await again.next(chat('q1')), await again.next(chat('q2'))];
    const rec = await again.next(event('recovered'));
    assert.deepEqual([rec.data.recovered, rec.data.replayed, rec.data.last_id], [true, 2, published[1]]);
    assert.deepEqual(got.map((m) => m.id), published);
  }));

test('a join is answered by "joined" with the position; later messages follow it', () =>
  withServer([], async (s, clients) => {
    const talker = await connect(s, '/ws/busy');
    const c = await connect(s, '/ws');
    clients.push(talker, c);
    const before = (await publish(s, { room: 'busy', text: 'before' })).json.id;
    await talker.next(chat('before'));

    c.send({ type: 'join', room: 'busy' });
    const joined = await c.next(event('joined'));
    assert.equal(joined.room, 'busy');
    assert.equal(joined.data.last_id, before, 'the last message before the join');
    c.send({ type: 'join', room: 'busy' });
    talker.send({ type: 'chat', data: { text: 'after' } });
    const next = await c.next(chat('after'));
    assert.equal(next.id, `${epochOf(before)}-${seqOf(before) + 1}`);
    assert.equal(c.history.filter(event('joined')).length, 1, 'a second join is not answered');
    assert.equal(c.seen(chat('before')).length, 0, 'nothing from before the join');

    // Left, and resumed from the last id it got: what it missed meanwhile.
    c.send({ type: 'leave', room: 'busy' });
    await c.roundTrip();
    await publish(s, { room: 'busy', text: 'missed' });
    c.send({ type: 'join', room: 'busy', last_id: next.id });
    await c.next(chat('missed'));
    const rec = await c.next(event('recovered'));
    assert.deepEqual([rec.data.recovered, rec.data.replayed], [true, 1]);
  }));

test('a failed resume still gives the room position, from which the next resume works', () =>
  withServer([], async (s, clients) => {
    const talker = await connect(s, '/ws/lost');
    clients.push(talker);
    const last = (await publish(s, { room: 'lost', text: 'm1' })).json.id;
    // A last id that is not even decodable is answered like any unknown one.
    for (const bad of ['%zz', 'a%2']) {
      const odd = await connect(s, `/ws/lost?last_id=${bad}`);
      clients.push(odd);
      const r = await odd.next(event('recovered'), 3000, `recovered for last_id=${bad}`);
      assert.deepEqual([r.data.recovered, r.data.replayed, r.data.last_id], [false, 0, last]);
    }
    const c = await connect(s, '/ws/lost?last_id=zzzzzzzz-7');
    clients.push(c);
    const rec = await c.next(event('recovered'));
    assert.deepEqual([rec.data.recovered, rec.data.replayed, rec.data.last_id], [false, 0, last]);
    c.close();
    await c.expectClose();

    const missed = (await publish(s, { room: 'lost', text: 'm2' })).json.id;
    const again = await connect(s, `/ws/lost?last_id=${encodeURIComponent(rec.data.last_id)}`);
    clients.push(again);
    assert.equal((await again.next(chat('m2'))).id, missed);
    const rec2 = await again.next(event('recovered'));
    assert.deepEqual([rec2.data.recovered, rec2.data.replayed, rec2.data.last_id], [true, 1, missed]);
  }));

// The seed's client resumes from the id of the last message it got, whatever it was: a presence
// message, its welcome, a "joined" or a "recovered" name the room's position they stand at.
test('a client resumes from the id of a presence message, of its welcome, of joined or of recovered', () =>
  withServer([], async (s, clients) => {
    const a = await connect(s, '/ws/ids');
    clients.push(a);
    assert.equal((await publish(s, { room: 'ids', text: 'm1' })).status, 202);
    await a.next(chat('m1'));
    const b = await connect(s, '/ws/ids');
    clients.push(b);
    const online = await a.next((m) => m.type === 'presence' && m.data?.user_id === b.userId);
    const welcome = b.welcome;
    const c = await connect(s, '/ws');
    clients.push(c);
    c.send({ type: 'join', room: 'ids' });
    const joined = await c.next(event('joined'));
    assert.equal((await publish(s, { room: 'ids', text: 'm2' })).status, 202);
    await c.next(chat('m2'));
    let rec;
    for (const [what, id] of [['presence', online.id], ['welcome', welcome.id], ['joined', joined.id]]) {
      assert.match(id, /^[A-Za-z0-9_.-]+$/, `${what} id ${id} is URL-safe`);
      const again = await connect(s, `/ws/ids?last_id=${id}`);
      clients.push(again);
      await again.next(chat('m2'));
      rec = await again.next(event('recovered'));
      assert.deepEqual([rec.data.recovered, rec.data.replayed], [true, 1], `from the ${what}'s id ${id}`);
      assert.equal(again.seen((m) => m.type === 'chat').length, 1, `only m2 from the ${what}'s id`);
    }
    // The recovered message's own id resumes from its last_id.
    assert.equal((await publish(s, { room: 'ids', text: 'm3' })).status, 202);
    const later = await connect(s, `/ws/ids?last_id=${rec.id}`);
    clients.push(later);
    await later.next(chat('m3'));
    const rec3 = await later.next(event('recovered'));
    assert.deepEqual([rec3.data.recovered, rec3.data.replayed], [true, 1], `from recovered's id ${rec.id}`);
    // A pong and an error name the position of the socket's room as well: the seed's client keeps
    // the id of every message, and in a quiet room its last one is often a pong. m3 was numbered
    // before the ping was read: the pong stands after it.
    a.send({ type: 'ping' });
    const pong = await a.next({ type: 'pong' });
    a.send({ type: 'no-such-type' });
    const error = await a.next((m) => m.type === 'error');
    const order = a.seen((m) => m.type === 'pong' || (m.type === 'chat' && m.data?.text === 'm3'));
    assert.deepEqual(order.map((m) => m.type), ['chat', 'pong'], 'm3 reached the socket before the pong');
    assert.equal((await publish(s, { room: 'ids', text: 'm4' })).status, 202);
    for (const [what, id] of [['pong', pong.id], ['error', error.id]]) {
      assert.match(id, /^[A-Za-z0-9_.-]+$/, `${what} id ${id} is URL-safe`);
      const again = await connect(s, `/ws/ids?last_id=${id}`);
      clients.push(again);
      await again.next(chat('m4'));
      const got = await again.next(event('recovered'));
      assert.deepEqual([got.data.recovered, got.data.replayed], [true, 1], `from the ${what}'s id ${id}`);
      assert.deepEqual(again.seen((m) => m.type === 'chat').map((m) => m.data.text), ['m4'], `only m4 from the ${what}'s id`);
    }
    // A socket in no room: its pong names no position, and resuming from it answers recovered: false.
    const roomless = await connect(s, '/ws');
    clients.push(roomless);
    roomless.send({ type: 'ping' });
    const bare = await roomless.next({ type: 'pong' });
    const lost = await connect(s, `/ws/ids?last_id=${bare.id}`);
    clients.push(lost);
    assert.equal((await lost.next(event('recovered'))).data.recovered, false);
  }));

test('a client resumes from the id of a notification or a global broadcast it got last', () =>
  withServer([], async (s, clients) => {
    const a = await connect(s, '/ws/news');
    clients.push(a);
    assert.equal((await publish(s, { room: 'news', text: 'n1' })).status, 202);
    assert.equal((await publish(s, { user: a.userId, type: 'notification', data: { note: 'yours' } })).status, 202);
    assert.equal((await publish(s, { type: 'system', data: { event: 'announcement', text: 'all' } })).status, 202);
    const note = await a.next((m) => m.type === 'notification');
    const all = await a.next((m) => m.type === 'system' && m.data?.text === 'all');
    const n1 = a.seen(chat('n1'))[0];
    for (const m of [note, all]) assert.equal(m.id.slice(0, m.id.indexOf('.')), n1.id, `${m.type} names n1's position: ${m.id}`);
    assert.equal((await publish(s, { room: 'news', text: 'n2' })).status, 202);
    for (const [what, id] of [['notification', note.id], ['global broadcast', all.id]]) {
      assert.match(id, /^[A-Za-z0-9_.-]+$/, `${what} id ${id} is URL-safe`);
      const again = await connect(s, `/ws/news?last_id=${id}`);
      clients.push(again);
      await again.next(chat('n2'));
      const rec = await again.next(event('recovered'));
      assert.deepEqual([rec.data.recovered, rec.data.replayed], [true, 1], `from the ${what}'s id ${id}`);
      assert.deepEqual(again.seen((m) => m.type === 'chat').map((m) => m.data.text), ['n2'], `only n2 from the ${what}'s id`);
    }
  }));

test('under concurrent traffic each pong, notification and global broadcast names the last room message the socket got before it', { timeout: 60_000 }, () =>
  withServer(['--threads', '2', '--rate-limit', '1000000', '--rate-burst', '1000000'], async (s, clients) => {
    // The room's messages, the notifications and the broadcasts come from separate connections at
    // once, so one I/O thread's batch holds some of each, and room messages numbered before a
    // notification was named can still wait behind it in the batch.
    const a = await connect(s, '/ws/mixed');
    const talker = await connect(s, '/ws/mixed');
    clients.push(a, talker);
    let going = true;
    const chats = (async () => {
      for (let i = 0; going; i++) {
        talker.send({ type: 'chat', data: { text: `c${i}` } });
        if (i % 20 === 19) await talker.roundTrip();
      }
    })();
    const notes = (async () => {
      for (let i = 0; going; i++) {
        await publish(s, i % 2 ? { user: a.userId, type: 'notification', data: { i } } : { type: 'system', data: { event: 'tick', i } });
      }
    })();
    const pings = (async () => {
      while (going) {
        a.send({ type: 'ping' });
        await a.next({ type: 'pong' }, 5000).catch(() => {});
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 3000));
    going = false;
    await Promise.all([chats, notes, pings]);
    await a.roundTrip();
    let last = a.welcome.data.last_id;
    let named = 0;
    for (const m of a.seen(() => true)) {
      if (m.type === 'chat') {
        last = m.id;
      } else if (m.type === 'pong' || m.type === 'notification' || (m.type === 'system' && m.data?.event === 'tick')) {
        assert.equal(m.id.slice(0, m.id.indexOf('.')), last, `a ${m.type} after ${last}: ${m.id}`);
        named++;
      }
    }
    assert.ok(named > 50, `${named} named messages checked`);
  }));

