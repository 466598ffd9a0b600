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
//   stand at: a client that resumes from one resumes from there; so do a pong's and an error's, a
//   notification's and a global broadcast's, on a socket in a room (in none: recovered false),
//   each naming exactly the last message of the room the socket got before it, under concurrent
//   traffic, over many rooms, and after a leave dropped the room's unsent messages; the welcome of
//   a resuming socket names none (its replay follows it).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { withServer, killAll } from './lib/server.mjs';
import { connect, sleep } from './lib/client.mjs';
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


// The I/O thread a room's sockets live on: HubCore::room_shard, std::hash<std::string_view> of the
// name (libstdc++'s _Hash_bytes, 64-bit) modulo the threads.
const M64 = (0xc6a4a793n << 32n) + 0x5bd1e995n;
const MASK64 = (1n << 64n) - 1n;
const shiftMix = (v) => v ^ (v >> 47n);
function homeThread(room, threads) {
  const bytes = Buffer.from(room);
  let hash = 0xc70f6907n ^ ((BigInt(bytes.length) * M64) & MASK64);
  const aligned = bytes.length & ~7;
  for (let p = 0; p < aligned; p += 8) {
    hash = ((hash ^ ((shiftMix((bytes.readBigUInt64LE(p) * M64) & MASK64) * M64) & MASK64)) * M64) & MASK64;
  }
  if (bytes.length & 7) {
    let tail = 0n;
    for (let n = bytes.length - 1; n >= aligned; n--) tail = (tail << 8n) + BigInt(bytes[n]);
    hash = ((hash ^ tail) * M64) & MASK64;
  }
  return Number(shiftMix((shiftMix(hash) * M64) & MASK64) % BigInt(threads));
}
const roomsOn = (thread, prefix, count) => {
  const rooms = [];
  for (let i = 0; rooms.length < count; i++) if (homeThread(`${prefix}${i}`, 2) === thread) rooms.push(`${prefix}${i}`);
  return rooms;
};

test('a global broadcast named in many rooms at once names in each the last message its sockets got, while another thread publishes to them', { timeout: 60_000 }, () =>
  withServer(['--threads', '2', '--rate-limit', '1000000', '--rate-burst', '1000000'], async (s, clients) => {
    // 600 quiet rooms on thread 0, so that naming one broadcast for each takes a while; meanwhile
    // sockets on thread 1 keep publishing to six watched rooms on thread 0.
    const quiet = roomsOn(0, 'quiet-', 600);
    for (let i = 0; i < quiet.length; i += 50) {
      clients.push(...(await Promise.all(quiet.slice(i, i + 50).map((room) => connect(s, `/ws/${room}`)))));
    }
    const watched = roomsOn(0, 'watched-', 6);
    const watchers = [];
    for (const room of watched) watchers.push(await connect(s, `/ws/${room}`));
    const talkers = await Promise.all(roomsOn(1, 'talk-', 2).map((room) => connect(s, `/ws/${room}`)));
    clients.push(...watchers, ...talkers);
    for (const t of talkers) for (const room of watched) await t.join(room);
    let going = true;
    const chats = talkers.map((t) => (async () => {
      for (let i = 0; going; i++) {
        t.send({ type: 'chat', room: watched[i % watched.length], data: { text: `c${i}` } });
        if (i % 60 === 59) await t.roundTrip(10_000);
      }
    })());
    const ticks = (async () => {
      for (let i = 0; going; i++) await publish(s, { type: 'system', data: { event: 'tick', i } });
    })();
    await sleep(4000);
    going = false;
    await Promise.all([...chats, ticks]);
    let named = 0;
    for (const w of watchers) {
      await w.roundTrip(20_000);
      let last = w.welcome.data.last_id;
      for (const m of w.seen(() => true)) {
        if (m.type === 'chat') {
          last = m.id;
        } else if (m.type === 'system' && m.data?.event === 'tick') {
          assert.equal(m.id.slice(0, m.id.indexOf('.')), last, `in ${w.welcome.data.room}, a tick after ${last}: ${m.id}`);
          named++;
        }
      }
    }
    assert.ok(named > 30, `${named} ticks checked`);
    for (const c of clients) c.history = [];
  }));

test('the welcome of a socket that resumes names no position: its replay comes after it', () =>
  withServer([], async (s, clients) => {
    const ids = [];
    for (const text of ['w1', 'w2', 'w3']) ids.push((await publish(s, { room: 'resumed', text })).json.id);
    const again = await connect(s, `/ws/resumed?last_id=${ids[0]}`);
    clients.push(again);
    assert.doesNotMatch(again.welcome.id, /^[0-9a-z]{8}-\d+\./, `the welcome names no position: ${again.welcome.id}`);
    await again.next(chat('w3'));
    const rec = await again.next(event('recovered'));
    assert.deepEqual([rec.data.recovered, rec.data.replayed], [true, 2]);
  }));

test('a leave drops the room\'s unsent messages, and a pong queued behind them then names the last one the socket got', { timeout: 60_000 }, () =>
  withServer(['--send-queue-bytes', String(256 << 20), '--rate-limit', '1000000', '--rate-burst', '1000000'], async (s, clients) => {
    const slow = await connect(s, '/ws/dropped');
    const talker = await connect(s, '/ws/dropped');
    clients.push(slow, talker);
    slow.ws._socket.pause(); // reads nothing: what the kernel cannot hold waits in the server's queue
    const filler = 'x'.repeat(8000);
    const sent = 3000; // ~24 MB, more than the loopback's socket buffers
    for (let i = 1; i <= sent; i++) {
      talker.send({ type: 'chat', data: { text: `d${i}`, filler } });
      if (i % 100 === 0) await talker.roundTrip(10_000);
    }
    await talker.roundTrip(10_000);
    slow.send({ type: 'ping' });
    slow.send({ type: 'leave', room: 'dropped' }); // (read long before the queue ahead of the pong drains)
    slow.ws._socket.resume();
    const pong = await slow.next({ type: 'pong' }, 30_000);
    const chats = slow.seen((m) => m.type === 'chat');
    assert.ok(chats.length < sent, `some of the room's messages were still queued at the leave (got ${chats.length} of ${sent})`);
    const last = chats.at(-1)?.id ?? slow.welcome.data.last_id;
    assert.equal(pong.id.slice(0, pong.id.indexOf('.')), last, `the pong names the last message received, ${last}: ${pong.id}`);
  }));

test('a notification about a room names that room\'s position, if the socket is in it; about another, none', () =>
  withServer([], async (s, clients) => {
    const a = await connect(s, '/ws/first');
    clients.push(a);
    await a.join('second');
    const m = (await publish(s, { room: 'second', text: 's1' })).json.id;
    await a.next(chat('s1'));
    assert.equal((await publish(s, { user: a.userId, room: 'second', type: 'notification', data: { k: 1 } })).status, 202);
    assert.equal((await publish(s, { user: a.userId, room: 'elsewhere', type: 'notification', data: { k: 2 } })).status, 202);
    const about = await a.next((x) => x.type === 'notification' && x.data?.k === 1);
    const other = await a.next((x) => x.type === 'notification' && x.data?.k === 2);
    assert.equal(about.id.slice(0, about.id.indexOf('.')), m, `about "second": its position, ${m}: ${about.id}`);
    assert.match(other.id, /^[0-9a-z]{8}-u[0-9a-z]+$/, `about a room the socket is not in: ${other.id}`);
  }));
