// Hostile inputs on the WebSocket side: deep and huge JSON, injection-shaped room names, bad JWTs
// (server started with --jwt-secret s), bad frames, connection-slot accounting. After each input a
// fresh client is served within 1 s.

import assert from 'node:assert/strict';
import {
  useBattery, startServer, jwt, now, secretsSeen, text, frame, cont, close, OP, HandshakeError, httpExchange, sleep, RawClient,
} from './lib/battery.mjs';

const ctx = useBattery();

/** Upgrade expected to be refused with `codes`. */
async function refused(path, codes, headers = {}) {
  const list = Array.isArray(codes) ? codes : [codes];
  try {
    const c = await RawClient.open(ctx.port(), { path, headers });
    c.destroy();
    assert.fail(`upgrade to ${JSON.stringify(path)} accepted; expected ${list.join('|')}`);
  } catch (e) {
    if (!(e instanceof HandshakeError)) throw e;
    assert.ok(list.includes(e.status), `upgrade to ${JSON.stringify(path).slice(0, 120)}: expected ${list.join('|')}, got ${e.status} ${e.body}`);
  }
}

/** Sends one text message on a fresh socket; returns the first error envelope (or null) and checks the socket is still open. */
async function errorFor(payload, path = '/ws') {
  const c = await ctx.open(path);
  await c.send(text(payload));
  const e = await c.expectJson((m) => m.type === 'error' || m.type === 'chat' || m.type === 'pong', 3000);
  await c.roundTrip(2000); // still open
  c.destroy();
  return e;
}

// ---- deep and huge JSON ----

ctx.hostile('json.1 chat data nested 100 deep: invalid_json, socket open', async () => {
  const e = await errorFor(`{"type":"chat","data":${'['.repeat(100)}${']'.repeat(100)}}`, '/ws/json');
  assert.equal(e.type, 'error');
  assert.equal(e.data.code, 'invalid_json');
});

ctx.hostile('json.2 chat data nested 10000 deep: invalid_json, socket open', async () => {
  const e = await errorFor(`{"type":"chat","data":${'['.repeat(10000)}${']'.repeat(10000)}}`, '/ws/json');
  assert.equal(e.data.code, 'invalid_json');
});

ctx.hostile('json.3 objects nested 10000 deep: invalid_json', async () => {
  const e = await errorFor(`{"type":"chat","data":${'{"a":'.repeat(10000)}1${'}'.repeat(10000)}}`, '/ws/json');
  assert.equal(e.data.code, 'invalid_json');
});

ctx.hostile('json.4 60000 unclosed brackets: invalid_json', async () => {
  const e = await errorFor('['.repeat(60000));
  assert.equal(e.data.code, 'invalid_json');
});

ctx.hostile('json.5 (control) nesting 32 deep is accepted and delivered', async () => {
  const e = await errorFor(`{"type":"chat","data":${'['.repeat(31)}${']'.repeat(31)}}`, '/ws/json');
  assert.equal(e.type, 'chat');
});

ctx.hostile('json.6 a 60 KB array under the size limit: delivered as chat', async () => {
  const arr = '[' + Array.from({ length: 30000 }, () => '0').join(',') + ']';
  const e = await errorFor(`{"type":"chat","data":{"a":${arr}}}`, '/ws/json');
  assert.equal(e.type, 'chat');
  assert.equal(e.data.a.length, 30000);
});

ctx.hostile('json.7 object with 4000 keys: delivered as chat', async () => {
  const keys = Array.from({ length: 4000 }, (_, i) => `"k${i}":${i}`).join(',');
  const e = await errorFor(`{"type":"chat","data":{${keys}}}`, '/ws/json');
  assert.equal(e.type, 'chat');
});

ctx.hostile('json.8 10000 escaped \\u0000 characters in a string: delivered, escaped again', async () => {
  const e = await errorFor(`{"type":"chat","data":{"s":"${'\\u0000'.repeat(10000)}"}}`, '/ws/json');
  assert.equal(e.type, 'chat');
  assert.equal(e.data.s.length, 10000);
});

ctx.hostile('json.9 absurd numbers (1e999999, 400-digit integer, -0): no crash, socket open', async () => {
  const c = await ctx.open('/ws/json');
  for (const n of ['1e999999', '9'.repeat(400), '-0', '1e-999999']) {
    await c.send(text(`{"type":"chat","data":{"n":${n}}}`));
  }
  await c.roundTrip(2000);
});

ctx.hostile('json.10 lone surrogate escape "\\ud800" in a string: an error or a chat, never a close', async () => {
  const e = await errorFor('{"type":"chat","data":{"s":"\\ud800"}}', '/ws/json');
  assert.ok(e.type === 'error' || e.type === 'chat');
});

ctx.hostile('json.11 duplicate "type" keys: answered (error or one of them), socket open', async () => {
  const c = await ctx.open('/ws/json');
  await c.send(text('{"type":"ping","type":"system"}'));
  await c.roundTrip(2000);
});

ctx.hostile('json.12 type "\\u0000ping" and "PING": unknown_type', async () => {
  for (const t of ['\\u0000ping', 'PING', 'ping ', '']) {
    const e = await errorFor(`{"type":"${t}"}`);
    assert.equal(e.data.code, 'unknown_type', `type ${JSON.stringify(t)}`);
  }
});

ctx.hostile('json.13 client-sent id, from and timestamp are ignored (no spoofing)', async () => {
  const c = await ctx.open('/ws/spoof');
  await c.send(text({ type: 'chat', id: 'zzzz-999', from: 'admin', timestamp: '1999-01-01T00:00:00.000Z', data: { x: 1 } }));
  const m = await c.expectJson({ type: 'chat' });
  assert.notEqual(m.id, 'zzzz-999');
  assert.equal(m.from, c.welcome.data.user_id);
  assert.notEqual(m.timestamp, '1999-01-01T00:00:00.000Z');
});

ctx.hostile('json.14 server-only types from a client (system, notification, error): forbidden', async () => {
  for (const t of ['system', 'notification', 'error']) {
    const e = await errorFor({ type: t, data: { event: 'welcome' } });
    assert.equal(e.data.code, 'forbidden');
  }
});

// ---- injection-shaped room names ----

const badRoomPaths = [
  ['room.1', '/ws/..%2F..%2Fetc%2Fpasswd'],
  ['room.2', '/ws/../../etc/passwd'],
  ['room.3', '/ws/a%00b'],
  ['room.4', '/ws/*'],
  ['room.5', '/ws/realtime:room:*'],
  ['room.6', '/ws/a%0D%0ASet-Cookie:%20x=1'],
  ['room.7', '/ws/%C3%A9t%C3%A9'],
  ['room.8', `/ws/${'r'.repeat(129)}`],
  ['room.9', '/ws/%zz'],
  ['room.10', '/ws/a%2Fb'],
  ['room.11', '/ws/a b'.replace(' ', '%20')],
  ['room.12', '/ws/{room}'],
  ['room.13', '/ws/%252e%252e'],
];
for (const [id, path] of badRoomPaths) {
  ctx.hostile(`${id} upgrade to ${path.slice(0, 60)}: 400`, async () => {
    await refused(path, 400);
  });
}

ctx.hostile('room.14 (control) "a:b" and a 128-character name are valid rooms', async () => {
  const a = await ctx.open('/ws/a:b');
  assert.equal(a.welcome.data.room, 'a:b');
  const long = 'r'.repeat(128);
  const b = await ctx.open(`/ws/${long}`);
  assert.equal(b.welcome.data.room, long);
  a.destroy();
  b.destroy();
});

const badJoins = [
  ['room.15', '../x'],
  ['room.16', 'realtime:room:*'],
  ['room.17', 'a\r\nPUBLISH realtime:global x'],
  ['room.18', 'été'],
  ['room.19', ''],
  ['room.20', 'r'.repeat(129)],
  ['room.21', 'a\u0000b'],
  ['room.22', 'realtime:global '],
];
for (const [id, room] of badJoins) {
  ctx.hostile(`${id} join / chat / leave with room ${JSON.stringify(room).slice(0, 40)}: bad_room, socket open`, async () => {
    const c = await ctx.open('/ws/inject');
    for (const type of ['join', 'chat']) {
      await c.send(text({ type, room, data: { x: 1 } }));
      const e = await c.expectJson({ type: 'error' });
      assert.equal(e.data.code, 'bad_room', `${type} ${JSON.stringify(room)}: ${JSON.stringify(e)}`);
    }
    await c.roundTrip();
  });
}

ctx.hostile('room.23 join with a room of the wrong type (number, object): invalid_message', async () => {
  for (const room of [5, { a: 1 }, ['x']]) {
    const e = await errorFor({ type: 'join', room });
    assert.equal(e.data.code, 'invalid_message', JSON.stringify(room));
  }
});

ctx.hostile('room.24 last_id shaped like a path or a Redis pattern: accepted, recovered false', async () => {
  const c = await ctx.open('/ws/recov?last_id=..%2F..%2F*%0D%0A');
  const r = await c.expectJson((m) => m.type === 'system' && m.data && m.data.event === 'recovered');
  assert.equal(r.data.recovered, false);
});

ctx.hostile('room.25 64 joins then more: too_many_rooms, and the rooms are released on close', async () => {
  const c = await ctx.open('/ws');
  // Under the default rate limit (burst 40), joins are sent in two batches.
  for (let i = 0; i < 36; i++) await c.send(text({ type: 'join', room: `many-${i}` }));
  await sleep(1700);
  for (let i = 36; i < 70; i++) await c.send(text({ type: 'join', room: `many-${i}` }));
  const e = await c.expectJson((m) => m.type === 'error' && m.data.code === 'too_many_rooms', 3000);
  assert.equal(e.data.room, 'many-64', 'the error names the first room refused');
  c.destroy();
  // The close reaches the server a moment later: wait (up to 5 s) for the rooms to go.
  let left;
  for (let i = 0; i < 100; i++) {
    const rooms = JSON.parse((await httpExchange(ctx.port(), 'GET /api/rooms HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).body).rooms;
    left = rooms.filter((r) => r.room.startsWith('many-'));
    if (left.length === 0) break;
    await sleep(50);
  }
  assert.deepEqual(left, []);
});

// ---- bad tokens (--jwt-secret s) ----

const sub = 'user-42';
const tokens = {
  garbage: 'garbage',
  none: jwt({ sub, exp: now() + 3600 }, { header: { alg: 'none', typ: 'JWT' }, signature: '' }),
  noneCaps: jwt({ sub, exp: now() + 3600 }, { header: { alg: 'NONE', typ: 'JWT' }, signature: '' }),
  expired: jwt({ sub, exp: now() - 3600 }),
  wrongSig: jwt({ sub, exp: now() + 3600 }, { secret: 'not-the-secret' }),
  rsHeader: jwt({ sub, exp: now() + 3600 }, { header: { alg: 'RS256', typ: 'JWT' } }),
  hs512: jwt({ sub, exp: now() + 3600 }, { header: { alg: 'HS512', typ: 'JWT' } }),
  notYet: jwt({ sub, nbf: now() + 3600, exp: now() + 7200 }),
  dots: '..',
  noSub: jwt({ exp: now() + 3600 }),
  long: jwt({ sub, exp: now() + 3600, pad: 'p'.repeat(5000) }, { secret: 'other' }),
  truncated: jwt({ sub, exp: now() + 3600 }).slice(0, -5),
};
for (const t of Object.values(tokens)) if (t.length > 8) secretsSeen.add(t);

const tokenCases = [
  ['jwt.1', 'garbage token in ?token=', 'garbage'],
  ['jwt.2', 'alg "none"', 'none'],
  ['jwt.3', 'alg "NONE"', 'noneCaps'],
  ['jwt.4', 'expired an hour ago', 'expired'],
  ['jwt.5', 'signed with another secret', 'wrongSig'],
  ['jwt.6', 'RS256 header, HMAC signature (key confusion)', 'rsHeader'],
  ['jwt.7', 'HS512 header (algorithm not configured)', 'hs512'],
  ['jwt.8', 'nbf an hour ahead', 'notYet'],
  ['jwt.9', 'three empty segments ".."', 'dots'],
  ['jwt.10', '5 KB token with a bad signature', 'long'],
  ['jwt.11', 'truncated signature', 'truncated'],
];
for (const [id, what, key] of tokenCases) {
  ctx.hostile(`${id} ${what}: 401 (query) and 401 (Authorization: Bearer)`, async () => {
    await refused(`/ws/secure?token=${encodeURIComponent(tokens[key])}`, 401);
    await refused('/ws/secure', 401, { Authorization: `Bearer ${tokens[key]}` });
  });
}

ctx.hostile('jwt.12 token without "sub": 401', async () => {
  await refused(`/ws/secure?token=${tokens.noSub}`, 401);
});

ctx.hostile('jwt.13 (control) a valid HS256 token: 101, user id from "sub", not from the client', async () => {
  const good = jwt({ sub, exp: now() + 3600 });
  secretsSeen.add(good);
  const c = await ctx.open(`/ws/secure?token=${good}&user_id=admin`);
  assert.equal(c.welcome.data.user_id, sub);
  await c.send(text({ type: 'chat', from: 'admin', data: {} }));
  const m = await c.expectJson({ type: 'chat' });
  assert.equal(m.from, sub);
});

ctx.hostile('jwt.14 in-band auth with garbage, alg none and another user: refused, socket open', async () => {
  const good = jwt({ sub, exp: now() + 3600 });
  const c = await ctx.open(`/ws/secure?token=${good}`);
  for (const [t, code] of [['garbage', 'invalid_token'], [tokens.none, 'invalid_token'], [tokens.expired, 'invalid_token'], [jwt({ sub: 'someone-else', exp: now() + 3600 }), 'forbidden']]) {
    await c.send(text({ type: 'auth', token: t }));
    const e = await c.expectJson({ type: 'error' });
    assert.equal(e.data.code, code, `auth with ${t.slice(0, 20)}`);
  }
  await c.roundTrip();
});

ctx.hostile('jwt.15 a refused token never reaches the log', async () => {
  const marker = jwt({ sub: 'log-probe', exp: now() - 100000 });
  secretsSeen.add(marker);
  await refused(`/ws/secure?token=${marker}&last_id=x`, 401);
  await sleep(100);
  const out = ctx.server.stdout + ctx.server.stderr;
  assert.ok(!out.includes(marker), 'token found in the server output');
  assert.ok(!out.includes(marker.split('.')[2]), 'token signature found in the server output');
});

// ---- bad frames beyond the conformance suite ----

ctx.hostile('frame.1 random bytes after the upgrade: close 1002', async () => {
  const c = await ctx.open();
  await c.send(Buffer.from(Array.from({ length: 256 }, (_, i) => (i * 37 + 3) & 0x7f | (i === 0 ? 0x00 : 0))));
  await c.expectClose([1002, 1009, 1007]);
});

ctx.hostile('frame.2 64-bit length 2^63-1: close 1002 or 1009 at once', async () => {
  const c = await ctx.open();
  const h = frame({ op: OP.text, payload: '', len: 0, lenBytes: 8 });
  h.writeBigUInt64BE(0x7fffffffffffffffn, 2);
  await c.send(h);
  await c.expectClose([1002, 1009]);
});

ctx.hostile('frame.3 1 GiB announced in a text frame: close 1009 before any payload', async () => {
  const c = await ctx.open();
  await c.send(frame({ op: OP.text, payload: '', len: 2 ** 30, lenBytes: 8 }));
  await c.expectClose(1009);
});

ctx.hostile('frame.4 100 sockets each with an unfinished fragmented message just under the limit', async () => {
  const cs = await Promise.all(Array.from({ length: 100 }, () => ctx.raw()));
  const part = text(Buffer.alloc(30000, 0x20), { fin: false });
  const part2 = cont(Buffer.alloc(30000, 0x20), { fin: false });
  for (const c of cs) await c.send(part, part2);
  await ctx.healthy();
  for (const c of cs) c.destroy();
});

ctx.hostile('frame.5 close with a 125-byte reason of invalid UTF-8: close 1007', async () => {
  const c = await ctx.open();
  await c.send(close(1000, Buffer.alloc(123, 0xff)));
  await c.expectClose(1007);
});

// ---- connection slots ----

ctx.hostile('slot.1 --max-connections 5: the 6th upgrade gets 503, and slots come back after violations and drops', async () => {
  const s = await startServer(['--max-connections', '5']);
  try {
    for (let round = 0; round < 3; round++) {
      const cs = await Promise.all(Array.from({ length: 5 }, () => RawClient.open(s.port, { path: '/ws' })));
      try {
        await RawClient.open(s.port, { path: '/ws' });
        assert.fail('6th upgrade accepted');
      } catch (e) {
        assert.ok(e instanceof HandshakeError, String(e));
        assert.equal(e.status, 503);
        assert.match(e.body, /capacity/);
      }
      // Release every slot a different way: protocol error, close frame, TCP drop.
      await cs[0].send(frame({ op: 3 }));
      await cs[1].send(close(1000));
      await cs[2].send(frame({ op: OP.text, payload: '', len: 2 ** 40, lenBytes: 8 }));
      cs[3].destroy();
      await cs[4].send(text(Buffer.from([0xff])));
      await sleep(300);
      for (const c of cs) c.destroy();
      await sleep(100);
    }
    assert.ok(s.alive());
  } finally {
    await s.terminate();
  }
});
