// Welcome, chat and application-level ping:
// - the first message on /ws/{room} is `system` with data.event "welcome", connection_id, user_id, room;
//   on /ws the room is absent or empty; every message has id, type, timestamp (RFC 3339 UTC, ms);
//   anonymous sockets: user_id is the connection id;
// - chat: delivered to every member including the sender, with a server-set URL-safe id, `from` = the
//   sender's connection id (client-supplied `from` / `id` ignored), timestamp, room; other rooms get
//   nothing; ids are unique and increase in arrival order within a room; an explicit "room" naming
//   the socket's room works;
// - {"type":"ping"} is answered by "pong" to that socket alone.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { withServer, killAll } from './lib/server.mjs';
import { connect, sleep, ID_RE, TS_RE, idsIncreasing } from './lib/client.mjs';
import { publish } from '../support/node/http.mjs';

after(killAll);


test('welcome on /ws/{room}: system/welcome with connection_id, user_id, room, id, timestamp', () =>
  withServer([], async (s, clients) => {
    const a = await connect(s, '/ws/general');
    clients.push(a);
    const w = a.welcome;
    assert.equal(w.type, 'system');
    assert.equal(w.data.event, 'welcome');
    assert.equal(typeof w.data.connection_id, 'string');
    assert.ok(w.data.connection_id.length > 0, 'connection_id non-empty');
    assert.equal(typeof w.data.user_id, 'string');
    assert.ok(w.data.user_id.length > 0, 'user_id non-empty');
    assert.equal(w.data.room, 'general');
    assert.equal(typeof w.id, 'string');
    assert.match(w.id, ID_RE);
    assert.match(w.timestamp, TS_RE);

    const b = await connect(s, '/ws/general');
    clients.push(b);
    assert.notEqual(b.connId, a.connId, 'connection ids are unique');
  }));

test('anonymous socket: welcome user_id is the connection id', () =>
  withServer([], async (s, clients) => {
    const a = await connect(s, '/ws/general');
    clients.push(a);
    assert.equal(a.welcome.data.user_id, a.welcome.data.connection_id);
  }));

test('welcome on /ws: room absent or empty', () =>
  withServer([], async (s, clients) => {
    const a = await connect(s, '/ws');
    clients.push(a);
    const room = a.welcome.data.room;
    assert.ok(room === undefined || room === null || room === '', `room should be absent/empty, got ${JSON.stringify(room)}`);
    assert.ok(a.welcome.room === undefined || a.welcome.room === null || a.welcome.room === '', 'envelope room absent/empty');
    assert.ok(a.connId);
  }));

test('chat reaches every member (sender included) with server-set id, from, timestamp, room', () =>
  withServer([], async (s, clients) => {
    const a = await connect(s, '/ws/r1');
    const b = await connect(s, '/ws/r1');
    const c = await connect(s, '/ws/r2');
    clients.push(a, b, c);
    a.send({ type: 'chat', id: 'client-chosen-id', from: 'mallory', data: { text: 'hi' } });
    const isHi = (m) => m.type === 'chat' && m.data?.text === 'hi';
    const ma = await a.next(isHi, 3000, 'chat at sender');
    const mb = await b.next(isHi, 3000, 'chat at peer');
    for (const m of [ma, mb]) {
      assert.equal(typeof m.id, 'string');
      assert.ok(m.id.length > 0, 'id non-empty');
      assert.match(m.id, ID_RE, 'id URL-safe');
      assert.notEqual(m.id, 'client-chosen-id', 'client-sent id is ignored');
      assert.equal(m.from, a.connId, 'from = sender connection id');
      assert.notEqual(m.from, 'mallory');
      assert.match(m.timestamp, TS_RE);
      assert.equal(m.room, 'r1');
      assert.deepEqual(m.data, { text: 'hi' });
    }
    assert.equal(ma.id, mb.id, 'same message, same id at every member');
    // The socket in r2 gets nothing: a round trip on it, then a quiet window.
    await c.roundTrip();
    await sleep(300);
    assert.deepEqual(c.seen((m) => m.type === 'chat'), [], 'other room must not see the chat');
  }));

test('chat ids are unique and increase in arrival order within a room', () =>
  withServer(['--rate-limit', '1000', '--rate-burst', '1000'], async (s, clients) => {
    const a = await connect(s, '/ws/ordered');
    const b = await connect(s, '/ws/ordered');
    const watcher = await connect(s, '/ws/ordered');
    clients.push(a, b, watcher);
    const N = 25;
    const pubs = [];
    for (let i = 0; i < N; i++) {
      a.send({ type: 'chat', data: { text: `a${i}` } });
      b.send({ type: 'chat', data: { text: `b${i}` } });
      if (i % 5 === 0) pubs.push(publish(s, { room: 'ordered', text: `p${i}` }));
    }
    await Promise.all(pubs);
    const total = 2 * N + pubs.length;
    const got = await watcher.nextN((m) => m.type === 'chat', total, 8000);
    const ids = got.map((m) => m.id);
    assert.equal(new Set(ids).size, ids.length, 'ids unique');
    assert.ok(idsIncreasing(ids), `ids must increase in arrival order: ${ids.join(' ')}`);
    // Each sender's messages arrive in the order sent.
    const aTexts = got.filter((m) => m.from === a.connId).map((m) => m.data.text);
    assert.deepEqual(aTexts, Array.from({ length: N }, (_, i) => `a${i}`));
    const bTexts = got.filter((m) => m.from === b.connId).map((m) => m.data.text);
    assert.deepEqual(bTexts, Array.from({ length: N }, (_, i) => `b${i}`));
  }));

test('chat with an explicit "room" the socket joined is delivered', () =>
  withServer([], async (s, clients) => {
    const a = await connect(s, '/ws/explicit');
    const b = await connect(s, '/ws/explicit');
    clients.push(a, b);
    a.send({ type: 'chat', room: 'explicit', data: { text: 'with room' } });
    const m = await b.next((x) => x.type === 'chat' && x.data?.text === 'with room');
    assert.equal(m.room, 'explicit');
    assert.equal(m.from, a.connId);
  }));

test('ping is answered by pong to that socket only', () =>
  withServer([], async (s, clients) => {
    const a = await connect(s, '/ws/pp');
    const b = await connect(s, '/ws/pp');
    clients.push(a, b);
    a.send({ type: 'ping' });
    const pong = await a.next({ type: 'pong' });
    assert.equal(pong.type, 'pong');
    assert.match(pong.timestamp, TS_RE);
    // b: its own round trip, then a quiet window; b must have exactly one pong (its own).
    await b.roundTrip();
    await sleep(300);
    assert.equal(b.seen({ type: 'pong' }).length, 1, 'pong goes to the pinging socket alone');
    assert.equal(a.seen({ type: 'pong' }).length, 1);
    // A ping's data comes back on its pong (a client pairs them by it).
    a.send({ type: 'ping', data: { ping: 7 } });
    const tagged = await a.next((m) => m.type === 'pong' && m.data !== undefined);
    assert.deepEqual(tagged.data, { ping: 7 });
    assert.equal(pong.data, undefined, 'a ping without data gets a pong without data');
  }));
