// Rooms: join / leave and room-name validation.
// - a socket on /ws joins a room and receives its chat; a socket on /ws/{room} joins a second room
//   and receives both rooms' chat; leave stops delivery from that room only; join or leave with a
//   bad room name -> error bad_room and the socket stays open (leave of a room not joined:
//   not_in_room);
// - room names are 1..128 chars of A-Za-z0-9_-.: ; /ws/bad%20room, a 129-char name, /ws/a/b and
//   other bad names are refused with HTTP 400 before the upgrade; exactly 128 chars is accepted;
// - a plain GET (no upgrade) on /ws/{room} or /ws -> 400.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { withServer, killAll } from './lib/server.mjs';
import { connect, tryOpen, sleep } from './lib/client.mjs';
import { get } from '../support/node/http.mjs';

after(killAll);


const chatText = (t) => (m) => m.type === 'chat' && m.data?.text === t;

test('socket on /ws joins a room and receives its chat, chats into it', () =>
  withServer([], async (s, clients) => {
    const a = await connect(s, '/ws');
    const b = await connect(s, '/ws/lobby');
    clients.push(a, b);
    a.send({ type: 'join', room: 'lobby' });
    await a.roundTrip(); // the join was read before the pong
    b.send({ type: 'chat', data: { text: 'to lobby' } });
    const m = await a.next(chatText('to lobby'));
    assert.equal(m.room, 'lobby');
    assert.equal(m.from, b.connId);
    a.send({ type: 'chat', room: 'lobby', data: { text: 'from joined' } });
    const m2 = await b.next(chatText('from joined'));
    assert.equal(m2.room, 'lobby');
    assert.equal(m2.from, a.connId);
  }));

test('socket on /ws/{room} joins a second room and receives both; leave stops delivery', () =>
  withServer([], async (s, clients) => {
    const a = await connect(s, '/ws/one');
    const b = await connect(s, '/ws/two');
    const c = await connect(s, '/ws/one');
    clients.push(a, b, c);
    a.send({ type: 'join', room: 'two' });
    await a.roundTrip();
    b.send({ type: 'chat', data: { text: 'in two' } });
    c.send({ type: 'chat', data: { text: 'in one' } });
    assert.equal((await a.next(chatText('in two'))).room, 'two');
    assert.equal((await a.next(chatText('in one'))).room, 'one');

    a.send({ type: 'leave', room: 'two' });
    await a.roundTrip();
    // b also joins "one" so that its later chat in "one" is a barrier for its chat in "two".
    b.send({ type: 'join', room: 'one' });
    await b.roundTrip();
    b.send({ type: 'chat', room: 'two', data: { text: 'after leave' } });
    b.send({ type: 'chat', room: 'one', data: { text: 'barrier' } });
    await a.next(chatText('barrier'));
    await sleep(200);
    assert.deepEqual(a.seen(chatText('after leave')), [], 'no delivery from a room left');
    // a is still in "one"
    c.send({ type: 'chat', data: { text: 'still in one' } });
    await a.next(chatText('still in one'));
  }));

test('join or leave with a bad room name -> error bad_room, socket stays open', () =>
  withServer([], async (s, clients) => {
    const a = await connect(s, '/ws');
    clients.push(a);
    for (const type of ['join', 'leave']) {
      for (const bad of ['bad room', 'x'.repeat(129), 'a/b', 'caf\u00e9']) {
        const what = `${type} ${JSON.stringify(bad).slice(0, 20)}`;
        a.send({ type, room: bad });
        const e = await a.next({ type: 'error' }, 3000, `error for ${what}`);
        assert.equal(e.data.code, 'bad_room', `${what}: ${JSON.stringify(e)}`);
        assert.equal(typeof e.data.error, 'string');
        assert.ok(e.data.error.length > 0, 'human text present');
      }
    }
    // A well-formed name the socket is not in is another matter.
    a.send({ type: 'leave', room: 'elsewhere' });
    const e = await a.next({ type: 'error' }, 3000, 'error for leaving a room not joined');
    assert.equal(e.data.code, 'not_in_room', JSON.stringify(e));
    assert.equal(e.data.room, 'elsewhere', 'the error names the room');
    await a.roundTrip();
    assert.ok(a.isOpen);
  }));

test('bad room names are refused with 400 before the upgrade', () =>
  withServer([], async (s, clients) => {
    const bad = ['/ws/bad%20room', '/ws/' + 'a'.repeat(129), '/ws/a/b', '/ws/a@b', '/ws/a%2Fb', '/ws/caf%C3%A9'];
    for (const p of bad) {
      const r = await tryOpen(s.url + p);
      if (r.ok) clients.push(r.client);
      assert.equal(r.ok, false, `${p} must be refused`);
      assert.equal(r.status, 400, `${p} -> ${r.status}`);
    }
  }));

test('room names of exactly 128 chars and of every allowed character are accepted', () =>
  withServer([], async (s, clients) => {
    const long = 'R'.repeat(128);
    const a = await connect(s, '/ws/' + long);
    clients.push(a);
    assert.equal(a.welcome.data.room, long);
    const all = 'Az09_-.:x';
    const b = await connect(s, '/ws/' + all);
    clients.push(b);
    assert.equal(b.welcome.data.room, all);
    const c = await connect(s, '/ws/a');
    clients.push(c);
    assert.equal(c.welcome.data.room, 'a');
    // the same rule for join
    const d = await connect(s, '/ws');
    clients.push(d);
    d.send({ type: 'join', room: long });
    await d.roundTrip();
    assert.deepEqual(d.seen({ type: 'error' }), []);
    a.send({ type: 'chat', data: { text: 'long' } });
    await d.next(chatText('long'));
  }));

test('plain GET without upgrade on /ws/{room} and /ws -> 400', () =>
  withServer([], async (s) => {
    for (const p of ['/ws/room', '/ws']) {
      const r = await get(s, p);
      assert.equal(r.status, 400, `GET ${p} -> ${r.status}`);
    }
  }));
