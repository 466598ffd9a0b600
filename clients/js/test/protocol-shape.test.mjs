// Protocol-shape checks against a tiny scripted WebSocket server that records request URLs and
// frames: what the client puts on the wire on reconnect (last_id, joins, token), and how it reacts
// to each close code. Behaviour against the real server is in server.test.mjs.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { WebSocket, WebSocketServer } from 'ws';

import { RealtimeClient } from '../realtime-client.js';

const WAIT_MS = 5000;

// Resolves when predicate() becomes truthy; checked after every recorded event, no fixed sleeps.
class Recorder {
  constructor() {
    this.waiters = new Set();
  }
  changed() {
    for (const w of [...this.waiters]) {
      const v = w.predicate();
      if (v) {
        this.waiters.delete(w);
        clearTimeout(w.timer);
        w.resolve(v);
      }
    }
  }
  until(predicate, what = 'condition', ms = WAIT_MS) {
    const v = predicate();
    if (v) return Promise.resolve(v);
    return new Promise((resolve, reject) => {
      const w = { predicate, resolve };
      w.timer = setTimeout(() => {
        this.waiters.delete(w);
        reject(new Error(`timed out waiting for ${what}`));
      }, ms);
      this.waiters.add(w);
    });
  }
}

class FakeServer extends Recorder {
  // Like realtime-server, it sends each socket a welcome first (the client sends nothing before
  // it); { welcome: false } leaves that to the test, `welcomeData` adds to its data.
  static async start(options = {}, { welcome = true, welcomeData = {} } = {}) {
    const s = new FakeServer();
    s.wss = new WebSocketServer({ host: '127.0.0.1', port: 0, ...options });
    await once(s.wss, 'listening');
    s.url = `ws://127.0.0.1:${s.wss.address().port}`;
    s.conns = [];
    s.onConnection = null;
    s.wss.on('connection', (ws, req) => {
      const conn = { ws, url: req.url, frames: [], closed: false };
      s.conns.push(conn);
      ws.on('message', (data) => {
        conn.frames.push(JSON.parse(String(data)));
        s.changed();
      });
      ws.on('close', () => {
        conn.closed = true;
        s.changed();
      });
      if (welcome) {
        const room = decodeURIComponent(/^\/ws\/([^?]*)/.exec(req.url)?.[1] ?? '') || undefined;
        const n = s.conns.length;
        ws.send(envelope('system', room, { event: 'welcome', connection_id: `c${n}`, user_id: `c${n}`, room, ...welcomeData }, `w-d${n}`));
      }
      if (s.onConnection) s.onConnection(conn);
      s.changed();
    });
    return s;
  }
  conn(i, what) {
    return this.until(() => this.conns[i], what || `connection #${i + 1}`);
  }
  frame(conn, predicate, what) {
    return this.until(() => conn.frames.find(predicate), what);
  }
  async stop() {
    for (const c of this.conns) c.ws.terminate();
    await new Promise((resolve) => this.wss.close(resolve));
  }
}

// A FakeServer and a client of it, open: the client, its recorded events, and the server's side of
// its socket (both closed when the test ends).
async function openClient(t, opts) {
  const server = await FakeServer.start();
  t.after(() => server.stop());
  const client = makeClient(server, opts);
  t.after(() => client.close());
  const ev = watch(client);
  const c = await server.conn(0);
  await ev.until(() => ev.states.at(-1) === 'open', 'open');
  return { server, client, ev, c };
}

let nextId = 1;
function envelope(type, room, data, id = String(nextId++)) {
  return JSON.stringify({ id, type, room, from: 'c-x', data, timestamp: new Date().toISOString() });
}

// Records a client's events so tests can wait on them.
function watch(client) {
  const rec = new Recorder();
  rec.states = [];
  rec.stateDetails = [];
  rec.errors = [];
  rec.messages = [];
  rec.recovered = [];
  rec.presence = [];
  client.on('state', (s, d) => {
    rec.states.push(s);
    rec.stateDetails.push(d);
    rec.changed();
  });
  client.on('error', (e) => (rec.errors.push(e), rec.changed()));
  client.on('message', (m) => (rec.messages.push(m), rec.changed()));
  client.on('recovered', (r) => (rec.recovered.push(r), rec.changed()));
  client.on('presence', (p) => (rec.presence.push(p), rec.changed()));
  return rec;
}

function makeClient(server, opts = {}) {
  return new RealtimeClient({
    url: server.url,
    WebSocket,
    backoff: { initialMs: 20, maxMs: 200 },
    heartbeatMs: 0,
    ...opts,
  });
}

test('first connect: /ws/{first room} without last_id, other rooms joined in-band', async (t) => {
  const server = await FakeServer.start();
  t.after(() => server.stop());
  const client = makeClient(server, { rooms: ['alpha', 'beta', 'gamma'] });
  t.after(() => client.close());
  const c = await server.conn(0);
  assert.equal(c.url, '/ws/alpha');
  await server.until(() => c.frames.length >= 2, 'two joins');
  assert.deepEqual(c.frames, [
    { type: 'join', room: 'beta' },
    { type: 'join', room: 'gamma' },
  ]);
});

test('rooms "." and "..": the socket opens on /ws and joins them in-band, resuming with last_id on join', async (t) => {
  const server = await FakeServer.start();
  t.after(() => server.stop());
  const client = makeClient(server, { rooms: ['.', '..', 'x'] });
  t.after(() => client.close());
  const ev = watch(client);
  const c1 = await server.conn(0);
  assert.equal(c1.url, '/ws', 'no /ws/. (a URL path resolves it to /ws/)');
  client.send('.', 'hi');
  await server.until(() => c1.frames.length >= 4, 'joins and chat');
  assert.deepEqual(c1.frames, [
    { type: 'join', room: '.' },
    { type: 'join', room: '..' },
    { type: 'join', room: 'x' },
    { type: 'chat', room: '.', data: { text: 'hi' } },
  ]);
  c1.ws.send(envelope('system', '.', { event: 'joined', last_id: 'e-0' }, 'j-d1'));
  c1.ws.send(envelope('chat', '.', { text: 'one' }, 'e-1'));
  await ev.until(() => ev.messages.length === 1, 'message of "."');
  c1.ws.close(1001, 'going away');
  const c2 = await server.conn(1);
  assert.equal(c2.url, '/ws');
  await server.until(() => c2.frames.length >= 3, 'joins on reconnect');
  assert.deepEqual(c2.frames[0], { type: 'join', room: '.', last_id: 'e-1' });
  assert.deepEqual(c2.frames[1], { type: 'join', room: '..' }, 'no position given: joined without one');
});

test('no rooms: connects to /ws', async (t) => {
  const server = await FakeServer.start();
  t.after(() => server.stop());
  const client = makeClient(server);
  t.after(() => client.close());
  const c = await server.conn(0);
  assert.equal(c.url, '/ws');
});

test('reconnect resumes every room from its last id (URL-encoded) and calls the token provider again', async (t) => {
  const server = await FakeServer.start();
  t.after(() => server.stop());
  let calls = 0;
  const client = makeClient(server, {
    rooms: ['alpha', 'beta'],
    token: async () => `tok-${++calls}`,
  });
  t.after(() => client.close());
  const ev = watch(client);

  const c1 = await server.conn(0);
  assert.equal(c1.url, '/ws/alpha?token=tok-1');
  await server.frame(c1, (f) => f.type === 'join', 'join beta');
  assert.equal(c1.frames[0].last_id, undefined, 'no last_id before any message');

  c1.ws.send(envelope('system', 'alpha', { event: 'welcome', connection_id: 'c1', user_id: 'c1', room: 'alpha' }, 'w-d1'));
  c1.ws.send(envelope('chat', 'alpha', { text: 'one' }, 'a1'));
  c1.ws.send(envelope('chat', 'alpha', { text: 'two' }, 'a 2/&x'));
  c1.ws.send(envelope('presence', 'alpha', { status: 'online', user_id: 'u9' }, 'p-3')); // not history
  c1.ws.send(envelope('chat', 'beta', { text: 'b' }, 'b-7'));
  c1.ws.send(envelope('notification', 'beta', { text: 'n' }, 'b-8'));
  await ev.until(() => ev.messages.length === 4, 'four messages');
  assert.equal(client.lastId('alpha'), 'a 2/&x');
  assert.equal(client.lastId('beta'), 'b-8');

  c1.ws.close(1001, 'going away');
  const c2 = await server.conn(1);
  assert.equal(c2.url, '/ws/alpha?token=tok-2&last_id=a+2%2F%26x');
  assert.ok(!c2.url.includes('undefined'));
  const join = await server.frame(c2, (f) => f.type === 'join', 'join on reconnect');
  assert.deepEqual(join, { type: 'join', room: 'beta', last_id: 'b-8' });
  await ev.until(() => ev.states.at(-1) === 'open', 'open again');
  assert.deepEqual(ev.states, ['connecting', 'open', 'reconnecting', 'open']);
  assert.equal(calls, 2, 'provider called once per connect');

  // The server's recovery report becomes the `recovered` event; a replayed duplicate is dropped.
  c2.ws.send(envelope('chat', 'beta', { text: 'b' }, 'b-8'));
  c2.ws.send(envelope('chat', 'beta', { text: 'c' }, 'b-9'));
  c2.ws.send(envelope('system', 'beta', { event: 'recovered', recovered: true, replayed: 1 }, 's-d1'));
  await ev.until(() => ev.recovered.length === 1, 'recovered event');
  assert.deepEqual(
    ev.messages.slice(4).map((m) => m.id),
    ['b-9'],
  );
  assert.equal(ev.recovered[0].room, 'beta');
  assert.equal(ev.recovered[0].recovered, true);
  assert.equal(ev.recovered[0].replayed, 1);
  assert.equal(client.lastId('beta'), 'b-9');
});

test('lastIds option: the very first connection already resumes', async (t) => {
  const server = await FakeServer.start();
  t.after(() => server.stop());
  const client = makeClient(server, { rooms: ['r1', 'r2', 'r3'], lastIds: { r1: 'x1', r2: 'x2', r3: undefined } });
  t.after(() => client.close());
  const c = await server.conn(0);
  assert.equal(c.url, '/ws/r1?last_id=x1');
  await server.until(() => c.frames.length >= 2, 'joins');
  assert.deepEqual(c.frames, [
    { type: 'join', room: 'r2', last_id: 'x2' },
    { type: 'join', room: 'r3' },
  ]);
});

test('join/leave while open, and rooms kept across reconnects (left rooms are not rejoined)', async (t) => {
  const server = await FakeServer.start();
  t.after(() => server.stop());
  const client = makeClient(server, { rooms: ['home'] });
  t.after(() => client.close());
  const ev = watch(client);
  const c1 = await server.conn(0);
  await ev.until(() => client.state === 'open', 'open');
  client.join('extra');
  client.join('gone');
  client.leave('gone');
  await server.until(() => c1.frames.length >= 3, 'three frames');
  assert.deepEqual(c1.frames, [
    { type: 'join', room: 'extra' },
    { type: 'join', room: 'gone' },
    { type: 'leave', room: 'gone' },
  ]);
  assert.deepEqual(client.rooms, ['home', 'extra']);
  assert.throws(() => client.join('bad room'), TypeError);
  c1.ws.close(1012);
  const c2 = await server.conn(1);
  await server.until(() => c2.frames.length >= 1, 'rejoin');
  assert.deepEqual(c2.frames, [{ type: 'join', room: 'extra' }]);
});

test('traffic of a room already on the way when leave() is called is dropped, and no resume point is kept', async (t) => {
  const server = await FakeServer.start();
  t.after(() => server.stop());
  const client = makeClient(server, { rooms: ['home', 'busy'] });
  t.after(() => client.close());
  const ev = watch(client);
  const c1 = await server.conn(0);
  await ev.until(() => client.state === 'open', 'open');
  c1.ws.send(envelope('chat', 'busy', { text: 'one' }, 'e1-1'));
  await ev.until(() => ev.messages.length === 1, 'first message');
  client.leave('busy');
  // Sent by the server before it read the leave.
  c1.ws.send(envelope('chat', 'busy', { text: 'two' }, 'e1-2'));
  c1.ws.send(envelope('presence', 'busy', { status: 'online', user_id: 'u2' }, 'tag-p1'));
  // A notification to the user that names a room it is not in is still delivered.
  c1.ws.send(envelope('notification', 'busy', { text: 'for you' }, 'tag-u1'));
  c1.ws.send(envelope('chat', 'home', { text: 'barrier' }, 'e2-1'));
  await ev.until(() => ev.messages.some((m) => m.data?.text === 'barrier'), 'barrier');
  assert.deepEqual(ev.messages.map((m) => m.data.text), ['one', 'for you', 'barrier']);
  assert.equal(client.lastId('busy'), undefined);
  client.join('busy');
  const join = await server.frame(c1, (f) => f.type === 'join' && f.room === 'busy' && c1.frames.indexOf(f) > 1, 'join again');
  assert.deepEqual(join, { type: 'join', room: 'busy' });
});

test('the socket\'s room left while the socket is connecting is left once it is open', async (t) => {
  let hold = false;
  const server = await FakeServer.start({
    verifyClient: (_info, done) => (hold ? setTimeout(() => done(true), 300) : done(true)),
  });
  t.after(() => server.stop());
  const client = makeClient(server, { rooms: ['alpha', 'beta'] });
  t.after(() => client.close());
  const ev = watch(client);
  const c1 = await server.conn(0);
  await ev.until(() => client.state === 'open', 'open');
  hold = true;
  c1.ws.close(1001);
  await ev.until(() => ev.states.at(-1) === 'reconnecting', 'reconnecting');
  await new Promise((r) => setTimeout(r, 150)); // the next socket's upgrade is being held
  client.leave('alpha');
  const c2 = await server.conn(1);
  assert.equal(c2.url, '/ws/alpha');
  await server.until(() => c2.frames.length >= 2, 'leave and join');
  assert.deepEqual(c2.frames, [
    { type: 'leave', room: 'alpha' },
    { type: 'join', room: 'beta' },
  ]);
});

test('after a reconnect, a room that gave no id to resume from is reported not recovered', async (t) => {
  const server = await FakeServer.start();
  t.after(() => server.stop());
  const client = makeClient(server, { rooms: ['home', 'quiet'] });
  t.after(() => client.close());
  const ev = watch(client);
  const c1 = await server.conn(0);
  await ev.until(() => client.state === 'open', 'open');
  c1.ws.send(envelope('chat', 'home', { text: 'hi' }, 'e1-1'));
  await ev.until(() => ev.messages.length === 1, 'a message in home');
  assert.equal(ev.recovered.length, 0, 'nothing to report on the first connection');
  c1.ws.close(1001);
  await ev.until(() => ev.states.at(-1) === 'reconnecting', 'reconnecting');
  client.join('later'); // joined while disconnected: it missed nothing
  await ev.until(() => ev.states.at(-1) === 'open', 'open again');
  await ev.until(() => ev.recovered.length === 1, 'the client\'s report');
  assert.deepEqual(ev.recovered[0], { room: 'quiet', recovered: false, replayed: 0, reason: 'no_resume_point', lastId: null, envelope: null });
  const c2 = await server.conn(1);
  assert.equal(c2.url, '/ws/home?last_id=e1-1');
  // The server's own answer for home comes as before; nothing more from the client.
  c2.ws.send(envelope('system', 'home', { event: 'recovered', recovered: true, replayed: 0 }, 'tag-d1'));
  await ev.until(() => ev.recovered.length === 2, 'the server\'s recovered');
  assert.deepEqual(ev.recovered.map((r) => r.room), ['quiet', 'home']);
});

test('the positions in welcome, joined and recovered become resume points: a quiet room is resumed', async (t) => {
  const server = await FakeServer.start({}, { welcome: false });
  t.after(() => server.stop());
  const client = makeClient(server, { rooms: ['home', 'quiet'] });
  t.after(() => client.close());
  const ev = watch(client);
  const joined = [];
  client.on('joined', (j) => (joined.push(j), ev.changed()));
  const welcomes = [];
  client.on('welcome', (w) => (welcomes.push(w), ev.changed()));
  const c1 = await server.conn(0);
  c1.ws.send(envelope('system', 'home', { event: 'welcome', connection_id: 'c1', user_id: 'u', room: 'home', last_id: 'e1-0' }, 'tag-d1'));
  await ev.until(() => welcomes.length === 1, 'welcome');
  await ev.until(() => client.state === 'open', 'open');
  assert.equal(welcomes[0].lastId, 'e1-0');
  assert.equal(client.lastId('home'), 'e1-0');
  c1.ws.send(envelope('system', 'quiet', { event: 'joined', last_id: 'q7-4' }, 'tag-d2'));
  // The answer to a join of a room the client is no longer in is dropped.
  c1.ws.send(envelope('system', 'gone', { event: 'joined', last_id: 'g1-2' }, 'tag-d3'));
  c1.ws.send(envelope('system', 'home', { event: 'joined', last_id: 'e1-0' }, 'tag-d4'));
  await ev.until(() => joined.length === 2, 'joined');
  assert.deepEqual(joined.map((j) => [j.room, j.lastId]), [['quiet', 'q7-4'], ['home', 'e1-0']]);
  assert.deepEqual(client.lastIds, { home: 'e1-0', quiet: 'q7-4' });
  assert.equal(ev.messages.length, 0, 'joined is not a message');
  // A message numbered before the position (on its way when the client joined) is delivered,
  // and the resume point does not move back for it; one after it moves it on.
  c1.ws.send(envelope('chat', 'quiet', { text: 'older' }, 'q7-3'));
  c1.ws.send(envelope('chat', 'quiet', { text: 'newer' }, 'q7-5'));
  c1.ws.send(envelope('chat', 'quiet', { text: 'late' }, 'q7-2'));
  await ev.until(() => ev.messages.length === 3, 'three messages');
  assert.equal(client.lastId('quiet'), 'q7-5');

  c1.ws.close(1001);
  await ev.until(() => ev.states.at(-1) === 'reconnecting', 'reconnecting');
  const c2 = await server.conn(1);
  c2.ws.send(envelope('system', 'home', { event: 'welcome', connection_id: 'c2', user_id: 'u', room: 'home' }, 'tag-d9'));
  await ev.until(() => ev.states.at(-1) === 'open', 'open again');
  assert.equal(c2.url, '/ws/home?last_id=e1-0');
  await server.frame(c2, (f) => f.type === 'join', 'the join of quiet');
  assert.deepEqual(c2.frames.find((f) => f.type === 'join'), { type: 'join', room: 'quiet', last_id: 'q7-5' });
  // A failed resume gives the position to resume from next time.
  c2.ws.send(envelope('system', 'quiet', { event: 'recovered', recovered: false, replayed: 0, last_id: 'q8-0' }, 'tag-d5'));
  await ev.until(() => ev.recovered.length === 1, 'recovered');
  assert.equal(ev.recovered[0].lastId, 'q8-0');
  assert.equal(client.lastId('quiet'), 'q8-0');
  assert.ok(!ev.recovered.some((r) => r.reason === 'no_resume_point'), 'every room had a resume point');
});

test('a message delivered before a leave is not delivered again after a re-join', async (t) => {
  const server = await FakeServer.start();
  t.after(() => server.stop());
  const client = makeClient(server, { rooms: ['home', 'x'] });
  t.after(() => client.close());
  const ev = watch(client);
  const c = await server.conn(0);
  await ev.until(() => client.state === 'open', 'open');
  c.ws.send(envelope('chat', 'x', { text: 'one' }, 'a1-1'));
  await ev.until(() => ev.messages.length === 1, 'one');
  client.leave('x');
  client.join('x');
  await server.until(() => c.frames.filter((f) => f.room === 'x').length >= 3, 'leave and join');
  // Sent again to the re-joined socket (messages from just before its join), then a new one.
  c.ws.send(envelope('chat', 'x', { text: 'one' }, 'a1-1'));
  c.ws.send(envelope('chat', 'x', { text: 'two' }, 'a1-2'));
  await ev.until(() => ev.messages.some((m) => m.data.text === 'two'), 'two');
  assert.deepEqual(ev.messages.map((m) => m.data.text), ['one', 'two']);
});

test('messages sent while disconnected are queued (bounded) and flushed in order on open', async (t) => {
  const server = await FakeServer.start();
  t.after(() => server.stop());
  const client = makeClient(server, { rooms: ['q'], maxQueue: 3, autoConnect: false });
  t.after(() => client.close());
  assert.equal(client.send('q', 'one'), false);
  assert.equal(client.send('q', { text: 'two', name: 'N' }), false);
  assert.equal(client.send(undefined, 'three'), false);
  assert.throws(() => client.send('q', 'four'), (e) => e.code === 'queue_full');
  assert.equal(client.queued, 3);
  await client.connect();
  const c = await server.conn(0);
  await server.until(() => c.frames.length >= 3, 'flush');
  assert.deepEqual(c.frames, [
    { type: 'chat', room: 'q', data: { text: 'one' } },
    { type: 'chat', room: 'q', data: { text: 'two', name: 'N' } },
    { type: 'chat', room: 'q', data: { text: 'three' } }, // no room: the first, named when queued
  ]);
  assert.equal(client.queued, 0);
  assert.equal(client.send('q', 'live'), true);
});

test('leave() drops the messages queued for the room', async (t) => {
  const server = await FakeServer.start();
  t.after(() => server.stop());
  const client = makeClient(server, { rooms: ['x', 'q'], autoConnect: false });
  t.after(() => client.close());
  client.send('x', 'to x');
  client.send(undefined, 'to the first room, x'); // named when queued: it must not go to q
  client.send('q', 'to q');
  client.leave('x');
  assert.equal(client.queued, 1);
  await client.connect();
  const c = await server.conn(0);
  await server.until(() => c.frames.some((f) => f.type === 'chat'), 'flush');
  assert.equal(client.queued, 0);
  assert.deepEqual(c.frames.filter((f) => f.type === 'chat'), [{ type: 'chat', room: 'q', data: { text: 'to q' } }]);
});

test('away status is restored after a reconnect', async (t) => {
  const server = await FakeServer.start();
  t.after(() => server.stop());
  const client = makeClient(server, { rooms: ['s'] });
  t.after(() => client.close());
  const c1 = await server.conn(0);
  await client.connect();
  client.setStatus('away');
  await server.frame(c1, (f) => f.type === 'presence', 'presence');
  assert.deepEqual(c1.frames[0], { type: 'presence', data: { status: 'away' } });
  assert.throws(() => client.setStatus('offline'), TypeError);
  c1.ws.close(1001);
  const c2 = await server.conn(1);
  const f = await server.frame(c2, (fr) => fr.type === 'presence', 'presence after reconnect');
  assert.deepEqual(f, { type: 'presence', data: { status: 'away' } });
});

test('ping resolves on pong and rejects after its timeout', async (t) => {
  const server = await FakeServer.start();
  t.after(() => server.stop());
  let answer = true;
  server.onConnection = (conn) => {
    conn.ws.on('message', (d) => {
      if (answer && JSON.parse(String(d)).type === 'ping') conn.ws.send(envelope('pong', undefined, undefined));
    });
  };
  const client = makeClient(server, { rooms: ['p'] });
  t.after(() => client.close());
  await assert.rejects(client.ping(), (e) => e.code === 'not_connected');
  await client.connect();
  const rtt = await client.ping();
  assert.ok(rtt >= 0 && rtt < 1000);
  answer = false;
  await assert.rejects(client.ping(100), (e) => e.code === 'ping_timeout');
});

test('a late pong of a ping that timed out does not answer the next ping', async (t) => {
  const server = await FakeServer.start();
  t.after(() => server.stop());
  // Like realtime-server, the pong carries the ping's data; the first pong comes after 300 ms, the
  // second ping is never answered.
  let pings = 0;
  server.onConnection = (conn) => {
    conn.ws.on('message', (d) => {
      const frame = JSON.parse(String(d));
      if (frame.type !== 'ping' || ++pings > 1) return;
      setTimeout(() => conn.ws.send(envelope('pong', undefined, frame.data)), 300);
    });
  };
  const client = makeClient(server, { rooms: ['p'] });
  t.after(() => client.close());
  await client.connect();
  await assert.rejects(client.ping(100), (e) => e.code === 'ping_timeout');
  await assert.rejects(client.ping(600), (e) => e.code === 'ping_timeout', 'the first ping\'s pong does not answer the second');
  assert.equal(pings, 2);
});

test('close() drops a socket whose peer does not answer the close handshake', async (t) => {
  const server = await FakeServer.start();
  t.after(() => server.stop());
  const client = makeClient(server, { rooms: ['d'] });
  await client.connect();
  const conn = await server.conn(0);
  // The peer stops reading frames (bytes are discarded): no close frame comes back, while the
  // TCP connection's end is still seen.
  conn.ws._socket.removeAllListeners('data');
  conn.ws._socket.on('data', () => {});
  const started = Date.now();
  await client.close();
  const waited = Date.now() - started;
  assert.ok(waited >= 1500 && waited < 5000, `close() resolved after ${waited} ms`);
  await server.until(() => conn.closed, 'the server side to see the TCP connection dropped', 3000);
});

test('token_expiring makes the client send a fresh token in-band', async (t) => {
  const server = await FakeServer.start();
  t.after(() => server.stop());
  let n = 0;
  const client = makeClient(server, { rooms: ['t'], token: () => `jwt-${++n}` });
  t.after(() => client.close());
  const c = await server.conn(0);
  await client.connect();
  c.ws.send(envelope('system', 't', { event: 'token_expiring', expires_at: new Date(Date.now() + 5000).toISOString() }));
  const auth = await server.frame(c, (f) => f.type === 'auth', 'auth frame');
  assert.deepEqual(auth, { type: 'auth', token: 'jwt-2' });
  assert.equal(server.conns.length, 1, 'no reconnect needed');
});

test('4001 with a provider: reconnects at once with a new token', async (t) => {
  const server = await FakeServer.start();
  t.after(() => server.stop());
  let n = 0;
  const client = makeClient(server, { rooms: ['t'], token: () => `jwt-${++n}`, backoff: { initialMs: 5000, maxMs: 30000 } });
  t.after(() => client.close());
  const ev = watch(client);
  const c1 = await server.conn(0);
  await client.connect();
  c1.ws.close(4001, 'token_expired');
  const c2 = await server.conn(1, 'reconnect without backoff wait');
  assert.equal(c2.url, '/ws/t?token=jwt-2');
  await ev.until(() => ev.states.at(-1) === 'open', 'open');
  const rec = ev.stateDetails[ev.states.indexOf('reconnecting')];
  assert.equal(rec.code, 4001);
  assert.equal(rec.delayMs, 0);
});

test('4001 with a fixed token: stops with a token_expired error', async (t) => {
  const server = await FakeServer.start();
  t.after(() => server.stop());
  const client = makeClient(server, { rooms: ['t'], token: 'static' });
  const ev = watch(client);
  const c1 = await server.conn(0);
  assert.equal(c1.url, '/ws/t?token=static');
  await client.connect();
  c1.ws.close(4001, 'token_expired');
  await ev.until(() => client.state === 'closed', 'closed');
  assert.equal(ev.errors.at(-1).code, 'token_expired');
  assert.equal(ev.errors.at(-1).closeCode, 4001);
  assert.equal(server.conns.length, 1);
});

for (const code of [1008, 4003]) {
  test(`close ${code} (policy): stops, emits error, does not reconnect`, async (t) => {
    const server = await FakeServer.start();
    t.after(() => server.stop());
    const client = makeClient(server, { rooms: ['t'] });
    const ev = watch(client);
    const opened = client.connect();
    const c1 = await server.conn(0);
    await opened;
    const waiter = client.connect(); // already open: resolves
    await waiter;
    c1.ws.close(code, 'forbidden');
    await ev.until(() => client.state === 'closed', 'closed');
    const err = ev.errors.at(-1);
    assert.equal(err.code, 'policy_violation');
    assert.equal(err.closeCode, code);
    assert.equal(err.reason, 'forbidden');
    assert.equal(server.conns.length, 1);
  });
}

for (const code of [1001, 1006, 1011, 1013]) {
  test(`close ${code}: reconnects with backoff`, async (t) => {
    const server = await FakeServer.start();
    t.after(() => server.stop());
    const client = makeClient(server, { rooms: ['t'], random: () => 0.5, backoff: { initialMs: 100, maxMs: 1000 } });
    t.after(() => client.close());
    const ev = watch(client);
    const c1 = await server.conn(0);
    await client.connect();
    if (code === 1006) c1.ws.terminate();
    else c1.ws.close(code);
    await server.conn(1);
    await ev.until(() => ev.states.at(-1) === 'open', 'open');
    const detail = ev.stateDetails[ev.states.indexOf('reconnecting')];
    assert.equal(detail.code, code);
    assert.equal(detail.delayMs, 50, 'random 0.5 of the first window (100 ms)');
    assert.equal(detail.attempt, 1);
  });
}

test('backoff grows while connections fail and resets after stableAfterMs of uptime', async (t) => {
  const server = await FakeServer.start();
  t.after(() => server.stop());
  let dropFirst = 4;
  server.onConnection = (conn) => {
    if (dropFirst-- > 0) setImmediate(() => conn.ws.close(1011));
  };
  const client = makeClient(server, {
    rooms: ['b'],
    random: () => 0.999,
    backoff: { initialMs: 10, maxMs: 60 },
    stableAfterMs: 150,
  });
  t.after(() => client.close());
  const ev = watch(client);
  await server.until(() => server.conns.length === 5, 'five connections');
  const delays = ev.stateDetails.filter((d, i) => ev.states[i] === 'reconnecting').map((d) => d.delayMs);
  assert.deepEqual(delays, [9, 19, 39, 59], 'windows 10, 20, 40, then capped at 60');
  // Stay up past stableAfterMs, then drop: the schedule starts again from the first window.
  await new Promise((r) => setTimeout(r, 250));
  server.conns[4].ws.close(1011);
  await server.conn(5);
  const last = ev.stateDetails.filter((d, i) => ev.states[i] === 'reconnecting').at(-1);
  assert.equal(last.delayMs, 9);
  assert.equal(last.attempt, 1);
});

test('a connection that drops before stableAfterMs does not reset the backoff', async (t) => {
  const server = await FakeServer.start();
  t.after(() => server.stop());
  server.onConnection = (conn) => {
    setTimeout(() => conn.ws.close(1011), 30);
  };
  const client = makeClient(server, { rooms: ['b'], random: () => 0.999, backoff: { initialMs: 10, maxMs: 1000 }, stableAfterMs: 10000 });
  t.after(() => client.close());
  const ev = watch(client);
  await server.until(() => server.conns.length === 4, 'four connections');
  const attempts = ev.stateDetails.filter((d, i) => ev.states[i] === 'reconnecting').map((d) => d.attempt);
  assert.deepEqual(attempts.slice(0, 3), [1, 2, 3]);
});

test('an upgrade refused with 403 stops the client; 503 is retried', async (t) => {
  let status = 403;
  const server = await FakeServer.start({
    verifyClient: (info, cb) => (status ? cb(false, status, 'no') : cb(true)),
  });
  t.after(() => server.stop());
  const client = makeClient(server, { rooms: ['h'] });
  const ev = watch(client);
  await assert.rejects(client.connect(), (e) => e.code === 'handshake_refused' && e.status === 403);
  assert.equal(client.state, 'closed');

  status = 503;
  const client2 = makeClient(server, { rooms: ['h'] });
  t.after(() => client2.close());
  const ev2 = watch(client2);
  await ev2.until(() => ev2.states.filter((s) => s === 'reconnecting').length >= 2, 'retries');
  assert.equal(ev2.errors[0].status, 503);
  status = 0;
  await client2.connect();
  assert.equal(client2.state, 'open');
  assert.ok(ev.errors.length >= 1);
});

test('close() stops for good: no reconnect, state closed, connect() can start again', async (t) => {
  const server = await FakeServer.start();
  t.after(() => server.stop());
  const client = makeClient(server, { rooms: ['c'] });
  const ev = watch(client);
  await client.connect();
  await client.close();
  assert.equal(client.state, 'closed');
  assert.equal(ev.states.at(-1), 'closed');
  await server.until(() => server.conns[0].closed, 'server saw the close');
  assert.throws(() => client.send('c', 'x'), (e) => e.code === 'closed');
  await client.connect();
  assert.equal(server.conns.length, 2);
  await client.close();
});

test('a server that never completes the upgrade hits the connect timeout and is retried', async (t) => {
  const net = await import('node:net');
  const sockets = [];
  const blackhole = net.createServer((s) => sockets.push(s));
  await new Promise((r) => blackhole.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    blackhole.close();
  });
  const client = new RealtimeClient({
    url: `ws://127.0.0.1:${blackhole.address().port}`,
    rooms: ['z'],
    WebSocket,
    connectTimeoutMs: 100,
    heartbeatMs: 0,
    backoff: { initialMs: 10, maxMs: 20 },
  });
  t.after(() => client.close());
  const ev = watch(client);
  await ev.until(() => ev.states.filter((s) => s === 'reconnecting').length >= 2, 'two retries');
  assert.equal(ev.stateDetails[1].reason, 'connect timeout');
});

test('listeners: on() returns an unsubscribe, once() fires once, a throwing listener does not break others', async (t) => {
  const server = await FakeServer.start();
  t.after(() => server.stop());
  const client = makeClient(server, { rooms: ['l'], autoConnect: false });
  t.after(() => client.close());
  const seen = [];
  const off = client.on('state', (s) => seen.push(`a:${s}`));
  client.once('state', (s) => seen.push(`once:${s}`));
  const origListeners = process.listeners('uncaughtException');
  let caught = null;
  process.removeAllListeners('uncaughtException');
  process.once('uncaughtException', (e) => {
    caught = e;
  });
  t.after(() => {
    for (const l of origListeners) process.on('uncaughtException', l);
  });
  const offThrower = client.on('state', () => {
    offThrower(); // throw once: one uncaughtException expected
    throw new Error('listener bug');
  });
  await client.connect();
  off();
  await client.close();
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(seen, ['a:connecting', 'once:connecting', 'a:open']);
  assert.equal(caught && caught.message, 'listener bug');
});

test('Node without a WebSocket option fails clearly', () => {
  if (globalThis.WebSocket) return; // a runtime with a global WebSocket needs no option
  assert.throws(() => new RealtimeClient({ url: 'ws://127.0.0.1:1' }), /WebSocket/);
});

test('after a fatal close, send() throws "closed" and close() changes nothing more', async (t) => {
  const server = await FakeServer.start({ verifyClient: (info, cb) => cb(false, 403, 'no') });
  t.after(() => server.stop());
  const client = makeClient(server, { rooms: ['h'] });
  const ev = watch(client);
  await assert.rejects(client.connect(), (e) => e.code === 'handshake_refused');
  assert.throws(() => client.send('h', 'lost?'), (e) => e.code === 'closed');
  assert.equal(client.queued, 0);
  const states = ev.states.length;
  await client.close();
  await client.close();
  assert.equal(ev.states.length, states, 'no second "closed"');
});

test('reconnect() or connect() not awaited, then close(): no unhandled rejection', async (t) => {
  const server = await FakeServer.start({ verifyClient: (info, cb) => cb(false, 503, 'busy') });
  t.after(() => server.stop());
  const unhandled = [];
  const onUnhandled = (reason) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  t.after(() => process.off('unhandledRejection', onUnhandled));
  const client = makeClient(server, { rooms: ['h'], autoConnect: false });
  const ev = watch(client);
  client.connect(); // a "Retry now" button: nobody awaits these
  await ev.until(() => ev.states.includes('reconnecting'), 'reconnecting');
  client.reconnect();
  await client.close();
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(unhandled, []);
});

test('the heartbeat keeps a socket that brings traffic though its pongs are late, and drops a silent one', async (t) => {
  const server = await FakeServer.start();
  t.after(() => server.stop());
  let talking = true;
  server.onConnection = (conn) => {
    const timer = setInterval(() => talking && conn.ws.send(envelope('chat', 'hb', { text: 'tick' })), 40);
    conn.ws.on('close', () => clearInterval(timer));
  };
  // Pings are never answered.
  const client = makeClient(server, { rooms: ['hb'], heartbeatMs: 100, pingTimeoutMs: 150 });
  t.after(() => client.close());
  const ev = watch(client);
  await client.connect();
  await ev.until(() => ev.messages.length >= 20, 'traffic for ~0.8 s', 5000);
  assert.deepEqual(ev.states, ['connecting', 'open'], 'not dropped while traffic comes');
  talking = false;
  await ev.until(() => ev.states.includes('reconnecting'), 'dropped once silent', 5000);
  assert.equal(ev.stateDetails[ev.states.indexOf('reconnecting')].reason, 'heartbeat timeout');
});

test('a room joined while the socket waits for its welcome is not reported as unresumable', async (t) => {
  const server = await FakeServer.start({}, { welcome: false });
  t.after(() => server.stop());
  const client = makeClient(server, { rooms: ['home'] });
  t.after(() => client.close());
  const ev = watch(client);
  const welcome = (c, n) => c.ws.send(envelope('system', 'home', { event: 'welcome', connection_id: `c${n}`, user_id: 'u', room: 'home' }, `w-d${n}`));
  const c1 = await server.conn(0);
  welcome(c1, 1);
  await ev.until(() => client.state === 'open', 'open');
  c1.ws.send(envelope('chat', 'home', { text: 'hi' }, 'e1-1'));
  await ev.until(() => ev.messages.length === 1, 'a message in home');
  c1.ws.close(1001);
  const c2 = await server.conn(1);
  // The new socket open, no welcome yet (nothing to wait on but its state).
  for (let i = 0; i < 400 && !(client._ws && client._ws.readyState === WebSocket.OPEN); i++) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  assert.equal(client._ws.readyState, WebSocket.OPEN);
  assert.notEqual(client.state, 'open', 'no welcome yet');
  client.join('fresh'); // joined on this socket: it missed nothing
  welcome(c2, 2);
  await server.frame(c2, (f) => f.type === 'join' && f.room === 'fresh', 'the join of fresh');
  await ev.until(() => client.state === 'open', 'open again');
  assert.deepEqual(ev.recovered, []);
});

test("ids of the server's own messages (a letter and a base-36 number after the dash) are not resume points", async (t) => {
  const { client, ev, c } = await openClient(t, { rooms: ['n2'] });
  c.ws.send(envelope('chat', 'n2', { text: 'm' }, 'e1-5'));
  // A notification to the user naming the room, past the server's 10th such id: "-u8v".
  c.ws.send(envelope('notification', 'n2', { text: 'n' }, '6vlryoez-u8v'));
  c.ws.send(envelope('system', 'n2', { event: 'note' }, '6vlryoez-d1z'));
  // One naming a room the client is not in is delivered all the same.
  c.ws.send(envelope('notification', 'elsewhere', { text: 'e' }, '6vlryoez-u8w'));
  await ev.until(() => ev.messages.length === 3, 'three messages');
  assert.equal(client.lastId('n2'), 'e1-5');
  assert.equal(client.lastId('elsewhere'), undefined);
});

test('a late message of a history the resume point left does not move it back', async (t) => {
  const { client, ev, c } = await openClient(t, { rooms: ['r'] });
  c.ws.send(envelope('chat', 'r', { n: 1 }, 'old-5'));
  c.ws.send(envelope('chat', 'r', { n: 2 }, 'new-1')); // Redis lost the old history: a new one
  c.ws.send(envelope('chat', 'r', { n: 3 }, 'old-6')); // late, of the old one
  c.ws.send(envelope('chat', 'r', { n: 4 }, 'new-2'));
  await ev.until(() => ev.messages.length === 4, 'four messages');
  assert.equal(client.lastId('r'), 'new-2');
  c.ws.send(envelope('chat', 'r', { n: 5 }, 'old-7'));
  await ev.until(() => ev.messages.length === 5, 'five messages');
  assert.equal(client.lastId('r'), 'new-2');
});

test('off(event, fn) removes a listener added with once(event, fn)', async () => {
  const client = new RealtimeClient({ url: 'ws://127.0.0.1:9', WebSocket, autoConnect: false });
  let calls = 0;
  const fn = () => ++calls;
  client.once('custom', fn);
  client.off('custom', fn);
  client._emit('custom');
  assert.equal(calls, 0);
  client.once('custom', fn);
  client._emit('custom');
  client._emit('custom');
  assert.equal(calls, 1);
  client.close();
});

test('a token provider that never answers counts as failed at the connect timeout: reconnecting goes on', async (t) => {
  const server = await FakeServer.start();
  t.after(() => server.stop());
  let calls = 0;
  const client = makeClient(server, {
    rooms: ['t'],
    connectTimeoutMs: 100,
    token: () => {
      calls += 1;
      return calls < 3 ? new Promise(() => {}) : 'tok';
    },
  });
  t.after(() => client.close());
  const ev = watch(client);
  await ev.until(() => ev.states.at(-1) === 'open', 'open after two hung providers');
  assert.equal(calls, 3);
  assert.equal(ev.errors.filter((e) => e.code === 'token_provider_failed').length, 2);
  const c = await server.conn(0);
  assert.match(c.url, /token=tok/);
});

test('status changes past the server\'s pace for them wait, and only the latest goes', async (t) => {
  // The server counts a change once per room (64 here) against its rate in room events, with room
  // for one change in 64 rooms at once: a second change right after would be refused.
  const server = await FakeServer.start({}, { welcome: false });
  t.after(() => server.stop());
  const rooms = Array.from({ length: 64 }, (_, i) => `s${i}`);
  const client = makeClient(server, { rooms });
  t.after(() => client.close());
  const ev = watch(client);
  const c = await server.conn(0);
  c.ws.send(envelope('system', 's0', { event: 'welcome', connection_id: 'c1', user_id: 'c1', room: 's0', rate_limit: 1000, rate_burst: 10 }, 'w-d1'));
  await ev.until(() => ev.states.at(-1) === 'open', 'open');
  const presence = () => c.frames.filter((f) => f.type === 'presence').map((f) => f.data.status);
  // Changes that undo each other while the first still waits behind the joins: nothing goes.
  client.setStatus('away');
  client.setStatus('online');
  // Chat goes after every control frame waiting: once it is in, nothing of them is left.
  client.send('s0', 'after the joins');
  await server.frame(c, (f) => f.type === 'chat', 'the chat after the joins');
  assert.equal(c.frames.filter((f) => f.type === 'join').length, 63);
  assert.deepEqual(presence(), []);
  client.setStatus('away');
  await server.until(() => presence().length === 1, 'the first change');
  client.setStatus('online');
  client.setStatus('away');
  client.setStatus('online');
  await server.until(() => presence().length === 2, 'two presence frames');
  assert.deepEqual(presence(), ['away', 'online']); // the first at once, then the latest, 64 ms on
  assert.equal(client.status, 'online');
});

test('notifications naming rooms the client is not in are delivered and not remembered', async (t) => {
  const { client, ev, c } = await openClient(t, { rooms: ['home'] });
  for (let i = 0; i < 300; i++) c.ws.send(envelope('notification', `dm-${i}`, { n: i }, `tag-u${i.toString(36)}`));
  await ev.until(() => ev.messages.length === 300, '300 notifications');
  assert.deepEqual([...client._seen.keys()].filter((room) => room.startsWith('dm-')), []);
});

// Until the client's current socket is open (the WebSocket's own state: nothing to wait on before
// the welcome but polling it).
async function socketOpen(client) {
  for (let i = 0; i < 400 && !(client._ws && client._ws.readyState === WebSocket.OPEN); i++) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  assert.equal(client._ws.readyState, WebSocket.OPEN);
}

test('a chat frame over the welcome\'s max_message_bytes is never written: send() throws, the queue drops it with an error', async (t) => {
  // {"type":"chat","data":{"text":""},"room":"big"} is 47 bytes: 20 bytes of text fit.
  const server = await FakeServer.start({}, { welcomeData: { max_message_bytes: 67 } });
  t.after(() => server.stop());
  const client = makeClient(server, { rooms: ['big'], autoConnect: false });
  t.after(() => client.close());
  const ev = watch(client);
  assert.equal(client.send('big', 'one'), false);
  assert.equal(client.send('big', 'é'.repeat(11)), false); // 11 characters but 22 bytes: over
  assert.equal(client.send('big', 'x'.repeat(20)), false); // exactly the limit
  await client.connect();
  const c = await server.conn(0);
  await server.until(() => c.frames.length === 2, 'two frames');
  await ev.until(() => ev.errors.length === 1, 'the error for the dropped one');
  assert.deepEqual(c.frames.map((f) => f.data.text), ['one', 'x'.repeat(20)]);
  const [err] = ev.errors;
  assert.equal(err.code, 'message_too_big');
  assert.equal(err.room, 'big');
  assert.equal(err.frame, JSON.stringify({ type: 'chat', data: { text: 'é'.repeat(11) }, room: 'big' }));
  // Known now: refused at once, and nothing goes out.
  assert.throws(() => client.send('big', 'é'.repeat(11)), (e) => e.code === 'message_too_big' && e.room === 'big');
  assert.equal(client.send('big', 'two'), true);
  await server.until(() => c.frames.length === 3, 'the third frame');
  assert.equal(c.frames[2].data.text, 'two');
  assert.equal(client.queued, 0);
  assert.deepEqual(ev.states, ['connecting', 'open']);
});

test('close() while the token provider hangs leaves no timer behind: Node exits at once', () => {
  const script = `
    import { RealtimeClient } from ${JSON.stringify(new URL('../realtime-client.js', import.meta.url).href)};
    const client = new RealtimeClient({ url: 'ws://127.0.0.1:9', WebSocket: class {}, token: () => new Promise(() => {}), connectTimeoutMs: 30000 });
    await new Promise((resolve) => setTimeout(resolve, 50));
    await client.close();
    console.log(client.state);`;
  const started = Date.now();
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 10000 });
  assert.equal(run.status, 0, `exit status ${run.status} after ${Date.now() - started} ms ${run.stderr}`);
  assert.equal(run.stdout.trim(), 'closed');
  assert.ok(Date.now() - started < 5000, `exited after ${Date.now() - started} ms`);
});

test('a join still waiting to go out when its socket dropped is not reported as unresumable', async (t) => {
  const server = await FakeServer.start({}, { welcome: false });
  t.after(() => server.stop());
  const client = makeClient(server, { rooms: ['home'] });
  t.after(() => client.close());
  const ev = watch(client);
  const c1 = await server.conn(0);
  await socketOpen(client); // open, but no welcome: frames wait for it
  client.join('later');
  c1.ws.close(1001);
  const c2 = await server.conn(1);
  c2.ws.send(envelope('system', 'home', { event: 'welcome', connection_id: 'c2', user_id: 'u', room: 'home' }, 'w-d2'));
  await ev.until(() => client.state === 'open', 'open');
  await server.frame(c2, (f) => f.type === 'join' && f.room === 'later', 'the join of later');
  assert.deepEqual(c1.frames, [], 'nothing went out on the first socket');
  assert.deepEqual(ev.recovered, []);
});

test('leave(): what is still on its way for the room is dropped, whoever published it; what was sent to the user is not', async (t) => {
  const { client, ev, c } = await openClient(t, { rooms: ['a', 'b'] });
  await client.leave('b');
  // A message another program PUBLISHed to the room's channel has a pod's own id, not a history id.
  c.ws.send(envelope('chat', 'b', { n: 'external' }, 'zz9ab7cd-d5'));
  c.ws.send(envelope('chat', 'b', { n: 'history' }, 'ep-7'));
  c.ws.send(envelope('system', 'b', { event: 'topic' }, 'ep-7.dzz9ab7cd3'));
  c.ws.send(envelope('notification', 'b', { n: 'about b' }, 'ep-7.uzz9ab7cd4'));
  c.ws.send(envelope('chat', 'b', { n: 'to the user' }, 'zz9ab7cd-u6'));
  c.ws.send(envelope('chat', 'a', { n: 'barrier' }, 'ep2-1'));
  await ev.until(() => ev.messages.some((m) => m.data.n === 'barrier'), 'the barrier');
  assert.deepEqual(ev.messages.map((m) => m.data.n), ['about b', 'to the user', 'barrier']);
});

test("the welcome's position is the resume point by the time 'open' is emitted", async (t) => {
  const server = await FakeServer.start({}, { welcomeData: { last_id: 'ep-4' } });
  t.after(() => server.stop());
  const client = makeClient(server, { rooms: ['a'] });
  t.after(() => client.close());
  const seen = [];
  client.on('state', (s) => {
    if (s === 'open') seen.push(client.lastIds);
  });
  const ev = watch(client);
  await ev.until(() => ev.states.at(-1) === 'open', 'open');
  assert.deepEqual(seen, [{ a: 'ep-4' }]);
});

test('a ping that timed out before it could be sent is not sent: the chat behind it goes first', async (t) => {
  // One frame a second, none spare: the first ping goes at once, the next wait for tokens.
  const server = await FakeServer.start({}, { welcomeData: { rate_limit: 1, rate_burst: 1 } });
  t.after(() => server.stop());
  const client = makeClient(server, { rooms: ['a'] });
  t.after(() => client.close());
  const ev = watch(client);
  await ev.until(() => ev.states.at(-1) === 'open', 'open');
  const c = await server.conn(0);
  const failed = await Promise.allSettled(Array.from({ length: 4 }, () => client.ping(20)));
  assert.deepEqual(failed.map((f) => f.reason?.code), ['ping_timeout', 'ping_timeout', 'ping_timeout', 'ping_timeout']);
  client.send('a', { n: 'after the pings' });
  await server.frame(c, (f) => f.type === 'chat', 'the chat');
  assert.deepEqual(c.frames.map((f) => f.type), ['ping', 'chat'], 'only the ping sent before its timeout');
});

test('a url the client cannot open is refused by the constructor, not at every reconnect', () => {
  for (const url of ['localhost', 'localhost:8080/', '//localhost:8080', 'ftp://host', '/ws']) {
    assert.throws(() => new RealtimeClient({ url, WebSocket, autoConnect: false }), TypeError, url);
  }
  for (const url of ['ws://h:1', 'wss://h', 'http://h:8080/', 'https://h/base?tenant=x']) {
    new RealtimeClient({ url, WebSocket, autoConnect: false }).close();
  }
});

test('close() before the first connection drops what send() queued', async (t) => {
  const server = await FakeServer.start();
  t.after(() => server.stop());
  const client = makeClient(server, { rooms: ['q'], autoConnect: false });
  t.after(() => client.close());
  client.send('q', 'queued before close 1');
  client.send('q', 'queued before close 2');
  await client.close();
  const ev = watch(client);
  client.connect();
  const c = await server.conn(0);
  await ev.until(() => ev.states.at(-1) === 'open', 'open');
  client.send('q', 'after connect');
  await server.frame(c, (f) => f.type === 'chat', 'the chat sent after connect');
  assert.deepEqual(c.frames.filter((f) => f.type === 'chat').map((f) => f.data.text), ['after connect']);
});

for (const call of ['close', 'reconnect']) {
  test(`${call}() from an 'envelope' listener at the welcome: the old socket opens nothing, and no timer is left`, async (t) => {
    const server = await FakeServer.start();
    t.after(() => server.stop());
    const client = makeClient(server, { rooms: ['e'], heartbeatMs: 1000 });
    t.after(() => client.close());
    const ev = watch(client);
    let done;
    await new Promise((resolve) => {
      client.on('envelope', (m) => {
        if (done === undefined && m.data?.event === 'welcome') {
          done = client[call]();
          resolve();
        }
      });
    });
    if (call === 'reconnect') {
      await done;
      assert.equal(client.state, 'open');
      assert.equal(client._ws.readyState, WebSocket.OPEN);
      assert.equal(server.conns.length, 2);
    } else {
      await done;
      assert.deepEqual(ev.states, ['connecting', 'closed']);
    }
    await client.close();
    assert.deepEqual(Object.entries(client._timers).filter(([, timer]) => timer !== null), []);
  });
}

test("the application's system messages in a room are 'system' events, whatever their event says", async (t) => {
  const { client, c } = await openClient(t, { rooms: ['s'] });
  const systems = [];
  const welcomes = [];
  const joined = [];
  client.on('system', (m) => systems.push(m.data.event));
  client.on('welcome', (w) => welcomes.push(w));
  client.on('joined', (j) => joined.push(j));
  const connectionId = client.connectionId;
  for (const [i, event] of ['welcome', 'joined', 'recovered', 'token_expiring', 'token_refreshed'].entries()) {
    c.ws.send(envelope('system', 's', { event, text: 'from the application' }, `abcd1234-${i + 1}`));
  }
  // The same with a pod's direct id (numbered while Redis was away, or another program's).
  for (const [i, event] of ['welcome', 'joined', 'recovered', 'token_expiring', 'token_refreshed'].entries()) {
    c.ws.send(envelope('system', 's', { event, text: 'from the application' }, `abcd1234-5.dq2w8e0r1${i}`));
  }
  c.ws.send(envelope('chat', 's', { text: 'last' }, 'abcd1234-6'));
  await new Promise((resolve) => client.on('message', (m) => m.data.text === 'last' && resolve()));
  const all = ['welcome', 'joined', 'recovered', 'token_expiring', 'token_refreshed'];
  assert.deepEqual(systems, [...all, ...all]);
  assert.deepEqual([welcomes, joined], [[], []]);
  assert.equal(client.connectionId, connectionId);
  assert.equal(client.lastIds.s, 'abcd1234-6');
});

test('a close after which the client does not reconnect names the chat it drops (unsent)', async (t) => {
  // A burst of 1 at 1/s: the first message goes, the others wait in the queue.
  const server = await FakeServer.start({}, { welcomeData: { rate_limit: 1, rate_burst: 1 } });
  t.after(() => server.stop());
  const client = makeClient(server, { rooms: ['u'] });
  t.after(() => client.close());
  const ev = watch(client);
  await client.connect();
  const c = await server.conn(0);
  assert.equal(client.send('u', 'one'), true);
  assert.equal(client.send('u', 'two'), false);
  assert.equal(client.send('u', { text: 'three', n: 3 }), false);
  await server.frame(c, (f) => f.type === 'chat', 'the first chat');
  c.ws.close(1008, 'forbidden');
  await ev.until(() => client.state === 'closed', 'closed');
  const err = ev.errors.at(-1);
  assert.equal(err.code, 'policy_violation');
  assert.deepEqual(err.unsent, [
    { room: 'u', data: { text: 'two' } },
    { room: 'u', data: { text: 'three', n: 3 } },
  ]);
  assert.equal(client.queued, 0);
});

// A link gone without a sign (no FIN): a message sent on a socket silent for a while asks at once
// whether it still answers, so the dead link is found within pingTimeoutMs of the send rather
// than at the next heartbeat. One that brought something lately is not asked.
test('a send on a socket silent for a while probes it; a dead link is dropped, a live one kept', async (t) => {
  const { server, client, ev, c } = await openClient(t, { rooms: ['quiet'], heartbeatMs: 60000, pingTimeoutMs: 200 });
  client.send('quiet', 'fresh');
  await server.frame(c, (f) => f.type === 'chat' && f.data.text === 'fresh', 'the first chat');
  assert.deepEqual(c.frames.filter((f) => f.type === 'ping'), [], 'a socket heard from lately is not asked');
  // Silent for 6 s (as the client sees it): the next send asks. The fake server never answers.
  client._lastReceived = Date.now() - 6000;
  client.send('quiet', 'into the void');
  await server.frame(c, (f) => f.type === 'ping', 'a probe right behind the send');
  await ev.until(() => ev.states.includes('reconnecting'), 'the dead link dropped');
  assert.equal(ev.stateDetails[ev.states.indexOf('reconnecting')].reason, 'heartbeat timeout');
});

// The browser's `online` (a new network): an open socket is asked at once and dropped when it does
// not answer; a client waiting out its backoff retries at once.
test('the network coming back (online) probes an open socket and cuts a backoff short', async (t) => {
  const target = new EventTarget();
  const saved = [globalThis.addEventListener, globalThis.removeEventListener];
  globalThis.addEventListener = target.addEventListener.bind(target);
  globalThis.removeEventListener = target.removeEventListener.bind(target);
  t.after(() => ([globalThis.addEventListener, globalThis.removeEventListener] = saved));
  const { server, client, ev, c } = await openClient(t, {
    rooms: ['net'],
    heartbeatMs: 60000,
    pingTimeoutMs: 200,
    backoff: { initialMs: 60000, maxMs: 60000 },
  });
  target.dispatchEvent(new Event('online'));
  await server.frame(c, (f) => f.type === 'ping', 'a probe on online');
  await ev.until(() => ev.states.includes('reconnecting'), 'the unanswering socket dropped');
  // Waiting out a minute's backoff: `online` retries now.
  await ev.until(() => client._timers.reconnect !== null, 'a retry scheduled');
  target.dispatchEvent(new Event('online'));
  await server.conn(1, 'a new socket at once');
});
