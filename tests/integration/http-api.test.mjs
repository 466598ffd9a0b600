// HTTP API:
// - POST /api/publish {"room","text"} -> 202 {"id"}; members get chat with data {"text"} and that id;
//   {"room","type":"chat","data"} -> chat with that data; {"user": U, ...} -> notification to every
//   socket of user U only; no room and no user -> every socket (room sockets and /ws sockets);
//   bad JSON / bad body -> 400; bad room -> 400; body over the limit -> 413;
// - --api-key k: missing or wrong Authorization -> 401; "Bearer k" -> 202;
// - GET /api/rooms -> {"rooms":[{"room","members"}]};
// - GET /healthz 200; GET /readyz 200 without Redis; GET / is an HTML page.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { withServer, killAll } from './lib/server.mjs';
import { connect, sleep, waitFor, ID_RE, TS_RE } from './lib/client.mjs';
import { get, post, publish } from '../support/node/http.mjs';
import { httpExchange } from '../support/node/raw.mjs';

after(killAll);


test('publish {"room","text"} -> 202 {"id"}, members get a chat with data {"text"}', () =>
  withServer([], async (s, clients) => {
    const a = await connect(s, '/ws/news');
    const b = await connect(s, '/ws/news');
    const other = await connect(s, '/ws/sports');
    clients.push(a, b, other);
    const r = await publish(s, { room: 'news', text: 'hello' });
    assert.equal(r.status, 202, r.text);
    assert.equal(typeof r.json?.id, 'string', `202 body ${r.text}`);
    assert.match(r.json.id, ID_RE);
    for (const c of [a, b]) {
      const m = await c.next((x) => x.type === 'chat' && x.data?.text === 'hello');
      assert.deepEqual(m.data, { text: 'hello' });
      assert.equal(m.room, 'news');
      assert.equal(m.id, r.json.id, 'delivered id = id answered by the API');
      assert.match(m.timestamp, TS_RE);
    }
    await other.roundTrip();
    await sleep(200);
    assert.deepEqual(other.seen({ type: 'chat' }), []);
  }));

test('publish {"room","type":"chat","data"} delivers that data', () =>
  withServer([], async (s, clients) => {
    const a = await connect(s, '/ws/typed');
    clients.push(a);
    const r = await publish(s, { room: 'typed', type: 'chat', data: { x: 1 } });
    assert.equal(r.status, 202, r.text);
    const m = await a.next((x) => x.type === 'chat' && x.data?.x === 1);
    assert.deepEqual(m.data, { x: 1 });
    assert.equal(m.room, 'typed');
  }));

test('publish {"user": U} -> notification to every socket of U, and only them', () =>
  withServer([], async (s, clients) => {
    const target = await connect(s, '/ws/team');
    const peer = await connect(s, '/ws/team');
    const lone = await connect(s, '/ws');
    clients.push(target, peer, lone);
    const r = await publish(s, { user: target.userId, type: 'notification', data: { note: 'for you' } });
    assert.equal(r.status, 202, r.text);
    const m = await target.next((x) => x.type === 'notification');
    assert.equal(m.data?.note, 'for you');
    assert.match(m.timestamp, TS_RE);
    assert.ok(m.id);
    // barrier: a global broadcast published after it reaches everyone; nobody else got the notification
    const g = await publish(s, { type: 'notification', data: { note: 'barrier' } });
    assert.equal(g.status, 202, g.text);
    for (const c of [target, peer, lone]) await c.next((x) => x.data?.note === 'barrier');
    await sleep(150);
    assert.deepEqual(peer.seen((x) => x.data?.note === 'for you'), []);
    assert.deepEqual(lone.seen((x) => x.data?.note === 'for you'), []);
    assert.equal(target.seen((x) => x.data?.note === 'for you').length, 1);
  }));

test('publish {"user": U, "room": R} -> a notification about R to U alone', () =>
  withServer([], async (s, clients) => {
    const target = await connect(s, '/ws/team');
    const peer = await connect(s, '/ws/team');
    clients.push(target, peer);
    const r = await publish(s, { user: target.userId, room: 'team', text: 'about the room' });
    assert.equal(r.status, 202, r.text);
    const m = await target.next((x) => x.data?.text === 'about the room');
    assert.equal(m.type, 'notification', 'not a chat the other members never saw');
    assert.equal(m.room, 'team');
    await peer.roundTrip();
    assert.deepEqual(peer.seen((x) => x.data?.text === 'about the room'), []);
  }));

test('publish {"user": U} reaches a socket of U on /ws (no room)', () =>
  withServer([], async (s, clients) => {
    const lone = await connect(s, '/ws');
    clients.push(lone);
    const r = await publish(s, { user: lone.userId, type: 'notification', data: { note: 'direct' } });
    assert.equal(r.status, 202, r.text);
    const m = await lone.next((x) => x.type === 'notification');
    assert.equal(m.data?.note, 'direct');
  }));

test('publish with no room and no user reaches every socket, /ws sockets included', () =>
  withServer([], async (s, clients) => {
    const a = await connect(s, '/ws/r1');
    const b = await connect(s, '/ws/r2');
    const c = await connect(s, '/ws');
    clients.push(a, b, c);
    const r = await publish(s, { type: 'system', data: { event: 'announcement', text: 'to all' } });
    assert.equal(r.status, 202, r.text);
    // The answer's id, "<tag>-g<n>": a socket in a room gets it naming its room's position in
    // front ("<epoch>-<seq>.g<tag><n>", a resume point), a socket in none as it is.
    const [tag, n] = r.json?.id.split('-g') ?? [];
    for (const [x, room] of [[a, 'r1'], [b, 'r2'], [c, null]]) {
      const m = await x.next((y) => y.data?.text === 'to all', 3000, 'global broadcast');
      assert.equal(m.type, 'system');
      if (room) {
        assert.equal(m.id, `${x.welcome.data.last_id}.g${tag}${n}`, `in ${room}: the position of its welcome`);
      } else {
        assert.equal(m.id, r.json?.id);
      }
    }
  }));

test('publish: bad JSON, bad body, bad room -> 400; too large -> 413', () =>
  withServer(['--max-message-bytes', '1024'], async (s, clients) => {
    const a = await connect(s, '/ws/ok');
    clients.push(a);
    const cases = [
      ['{"room": "ok", "text": ', 'truncated JSON'],
      ['not json', 'plain text'],
      ['[1,2,3]', 'an array'],
      [{ room: 5, text: 'x' }, 'numeric room'],
      [{ room: 'bad room', text: 'x' }, 'room with a space'],
      [{ room: 'a'.repeat(129), text: 'x' }, '129-char room'],
      [{ room: 'a/b', text: 'x' }, 'room with a slash'],
      // A misspelt field would send it elsewhere (no room, no user: to everyone) or empty.
      [{ usr: a.userId, text: 'x' }, '"usr" for "user"', /unknown field "usr"/],
      [{ rom: 'ok', text: 'x' }, '"rom" for "room"', /unknown field "rom"/],
      [{ room: 'ok', txt: 'x' }, '"txt" for "text"', /unknown field "txt"/],
      [{ room: 'ok', text: 'x', data: { y: 1 } }, 'text and data', /not both/],
      [{ room: 'ok', type: 'presence', data: { status: 'banana', user_id: 'u' } }, 'presence data', /presence/],
      [{ room: 'ok', type: 'presence', data: { status: 'away', user_id: 'u', extra: 1 } }, 'presence data with more', /presence/],
      // A null target (a backend's missing value) would be a global broadcast: refused.
      [{ user: null, text: 'private note' }, 'user null', /"user" may not be null/],
      [{ room: null, user: null, type: 'notification', data: { text: 'reset link' } }, 'room and user null', /may not be null/],
    ];
    for (const [body, what, reason] of cases) {
      const r = await publish(s, body);
      assert.equal(r.status, 400, `${what} -> ${r.status} ${r.text}`);
      if (reason) assert.match(r.json?.error ?? r.text, reason, what);
    }
    const big = await publish(s, { room: 'ok', text: 'y'.repeat(5000) });
    assert.equal(big.status, 413, `oversized body -> ${big.status}`);
    await a.roundTrip();
    await sleep(100);
    assert.deepEqual(a.seen({ type: 'chat' }), [], 'nothing refused was delivered');
    assert.deepEqual(a.seen({ type: 'notification' }), [], 'nothing refused was delivered');
    assert.deepEqual(a.seen((x) => x.type === 'presence' && x.data?.user_id === 'u'), [], 'nothing refused was delivered');
  }));

test('--api-key: missing or wrong Authorization -> 401, Bearer key -> 202', () =>
  withServer(['--api-key', 'sekrit'], async (s, clients) => {
    const a = await connect(s, '/ws/keyed');
    clients.push(a);
    const none = await publish(s, { room: 'keyed', text: 'no key' });
    assert.equal(none.status, 401);
    const wrong = await publish(s, { room: 'keyed', text: 'wrong key' }, { headers: { Authorization: 'Bearer nope' } });
    assert.equal(wrong.status, 401);
    const prefix = await publish(s, { room: 'keyed', text: 'prefix' }, { headers: { Authorization: 'Bearer sekri' } });
    assert.equal(prefix.status, 401);
    const bare = await publish(s, { room: 'keyed', text: 'bare' }, { headers: { Authorization: 'sekrit' } });
    assert.equal(bare.status, 401);
    const ok = await publish(s, { room: 'keyed', text: 'with key' }, { headers: { Authorization: 'Bearer sekrit' } });
    assert.equal(ok.status, 202, ok.text);
    await a.next((m) => m.type === 'chat' && m.data?.text === 'with key');
    assert.deepEqual(a.seen((m) => m.type === 'chat' && m.data?.text !== 'with key'), []);
  }));

test('without --api-key the publish API needs no Authorization', () =>
  withServer([], async (s) => {
    const r = await publish(s, { room: 'open', text: 'x' });
    assert.equal(r.status, 202, r.text);
  }));

test('GET /api/rooms -> {"rooms":[{"room","members"}]}', () =>
  withServer([], async (s, clients) => {
    const r0 = await get(s, '/api/rooms');
    assert.equal(r0.status, 200);
    assert.deepEqual(r0.json, { rooms: [] });
    const a = await connect(s, '/ws/alpha');
    const b = await connect(s, '/ws/alpha');
    const c = await connect(s, '/ws/beta');
    const d = await connect(s, '/ws'); // in no room
    clients.push(a, b, c, d);
    const sorted = (x) => [...(x.json?.rooms ?? [])].sort((p, q) => (p.room < q.room ? -1 : 1));
    const r = await get(s, '/api/rooms');
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /application\/json/);
    assert.deepEqual(Object.keys(r.json), ['rooms']);
    assert.deepEqual(sorted(r), [
      { room: 'alpha', members: 2 },
      { room: 'beta', members: 1 },
    ]);
    // d joins beta, c leaves it by closing
    d.send({ type: 'join', room: 'beta' });
    await d.roundTrip();
    c.close();
    await waitFor(
      async () => {
        const x = await get(s, '/api/rooms');
        const rooms = sorted(x);
        return JSON.stringify(rooms) === JSON.stringify([{ room: 'alpha', members: 2 }, { room: 'beta', members: 1 }]) &&
          x;
      },
      { timeoutMs: 3000, message: 'room counts after join + close' },
    );
    a.close();
    b.close();
    await waitFor(
      async () => {
        const x = await get(s, '/api/rooms');
        return JSON.stringify(sorted(x)) === JSON.stringify([{ room: 'beta', members: 1 }]);
      },
      { timeoutMs: 3000, message: 'empty room alpha to disappear' },
    );
  }));

test('GET /healthz 200, /readyz 200 without Redis, / is HTML', () =>
  withServer([], async (s) => {
    assert.equal((await get(s, '/healthz')).status, 200);
    assert.equal((await get(s, '/readyz')).status, 200);
    const page = await get(s, '/');
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(page.text, /<html|<!doctype html/i);
  }));

test('a refused HEAD (no upgrade on /ws/{room}) gets the headers alone', () =>
  withServer([], async (s) => {
    const r = await httpExchange(s.port, 'HEAD /ws/lobby HTTP/1.1\r\nHost: x\r\n\r\n');
    const text = r.raw.toString('latin1');
    assert.match(text, /^HTTP\/1\.1 400 /, text);
    assert.match(text, /\r\ncontent-length: [1-9]\d*\r\n/i, text);
    assert.ok(text.endsWith('\r\n\r\n'), `no body after the headers: ${JSON.stringify(text)}`);
  }));

test('unknown path -> 404 for any method; a known one with the wrong method -> 405 with Allow', () =>
  withServer([], async (s) => {
    assert.equal((await get(s, '/no/such/thing')).status, 404);
    for (const path of ['/no/such/thing', '/api/publish/', '/api/publishx']) {
      assert.equal((await post(s, path, { room: 'a', text: 'x' })).status, 404, `POST ${path}`);
    }
    for (const path of ['/metrics', '/api/rooms', '/api/rooms/a/presence']) {
      const r = await post(s, path, {});
      assert.equal(r.status, 405, `POST ${path}`);
      assert.equal(r.headers.get('allow'), 'GET, HEAD');
    }
  }));
