// Hostile inputs: floods and connection abuse. Default limits (rate 20/s, burst 40, send queue
// 1 MiB, max message 64 KiB). After each input a fresh client is served within 1 s.

import assert from 'node:assert/strict';
import net from 'node:net';
import { useBattery, text, binary, ping, pong, frame, cont, close, appPing, sleep, OP, upgradeRequest, httpExchange } from './lib/battery.mjs';

const ctx = useBattery();

/** Collects every JSON message on c for ms; returns them. */
async function drain(c, ms) {
  const out = [];
  const deadline = Date.now() + ms;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    try {
      const f = await c.read(left);
      if (f.op === OP.text) out.push(JSON.parse(f.text));
      else if (f.op === OP.close) out.push({ close: f.code });
    } catch {
      break;
    }
  }
  return out;
}

ctx.hostile('flood.1 5000 app pings in one write: rate-limited (<= burst + refill answered), few rate_limited errors, socket open', async () => {
  const c = await ctx.open();
  const t0 = Date.now();
  await c.send(Buffer.concat(Array.from({ length: 5000 }, () => text(appPing()))));
  const got = await drain(c, 1200);
  const secs = (Date.now() - t0) / 1000;
  const pongs = got.filter((m) => m.type === 'pong').length;
  const limited = got.filter((m) => m.type === 'error' && m.data.code === 'rate_limited').length;
  assert.ok(pongs >= 40 && pongs <= 40 + Math.ceil(20 * secs) + 2, `pongs answered: ${pongs}`);
  assert.ok(limited >= 1 && limited <= 3, `rate_limited errors: ${limited} (at most one per second)`);
  assert.ok(!got.some((m) => m.close), 'a flood is throttled, not closed');
});

ctx.hostile('flood.2 3000 chats into a room: another member receives at most burst + refill', async () => {
  const a = await ctx.open('/ws/flood-room');
  const b = await ctx.open('/ws/flood-room');
  const t0 = Date.now();
  await a.send(Buffer.concat(Array.from({ length: 3000 }, (_, i) => text({ type: 'chat', data: { i } }))));
  const got = await drain(b, 1200);
  const secs = (Date.now() - t0) / 1000;
  const chats = got.filter((m) => m.type === 'chat').length;
  assert.ok(chats >= 40 && chats <= 40 + Math.ceil(20 * secs) + 2, `chats delivered: ${chats}`);
});

ctx.hostile('flood.3 2000 invalid-JSON messages: error replies are rate-limited too', async () => {
  const c = await ctx.open();
  await c.send(Buffer.concat(Array.from({ length: 2000 }, () => text('{not json'))));
  const got = await drain(c, 800);
  const errors = got.filter((m) => m.type === 'error').length;
  assert.ok(errors <= 70, `error envelopes sent back for 2000 bad messages: ${errors}`);
});

ctx.hostile('flood.4 1000 binary frames: "unsupported" replies are rate-limited like other messages', async () => {
  const c = await ctx.open();
  await c.send(Buffer.concat(Array.from({ length: 1000 }, () => binary(Buffer.from([1, 2, 3])))));
  const got = await drain(c, 800);
  const errors = got.filter((m) => m.type === 'error').length;
  assert.ok(errors >= 1, 'binary frames are answered with "unsupported"');
  assert.ok(errors <= 70, `error envelopes sent back for 1000 binary frames: ${errors} (the rate limit counts every message)`);
  const codes = new Set(got.filter((m) => m.type === 'error').map((m) => m.data.code));
  assert.deepEqual([...codes].sort(), ['rate_limited', 'unsupported'], 'the flood is told it is rate limited, as a text flood is');
});

ctx.hostile('flood.5 10000 WebSocket pings (read): every one answered with a pong, in order', async () => {
  const c = await ctx.open();
  await c.send(Buffer.concat(Array.from({ length: 10000 }, (_, i) => ping(String(i)))));
  for (let i = 0; i < 10000; i++) {
    const f = await c.read(3000);
    assert.equal(f.op, OP.pong);
    if (i % 997 === 0) assert.equal(f.payload.toString(), String(i));
  }
});

ctx.hostile('flood.6 ping flood from a client that never reads: server memory stays bounded (send queue limit)', async () => {
  const c = await ctx.open();
  c.sock.pause(); // never read: pongs pile up on the server
  const rss0 = ctx.server.rssKiB();
  const chunk = Buffer.concat(Array.from({ length: 1000 }, () => ping('x'.repeat(125))));
  let sent = 0;
  const deadline = Date.now() + 15000;
  while (sent < 40e6 && Date.now() < deadline && !c.sock.destroyed) {
    const ok = c.sock.write(chunk);
    sent += chunk.length;
    if (!ok) {
      const drained = await Promise.race([new Promise((r) => c.sock.once('drain', () => r(true))), sleep(2000).then(() => false)]);
      if (!drained) break; // the server stopped reading: that bounds memory too
    }
  }
  await sleep(300);
  const grown = ctx.server.rssKiB() - rss0;
  c.destroy();
  assert.ok(grown < 24 * 1024, `server RSS grew by ${grown} KiB while a non-reading client sent ${(sent / 1e6).toFixed(1)} MB of pings (send queue limit is 1 MiB)`);
});

ctx.hostile('flood.7 unsolicited pong flood (20000 frames): ignored, socket open', async () => {
  const c = await ctx.open();
  await c.send(Buffer.concat(Array.from({ length: 20000 }, () => pong('unsolicited'))));
  await sleep(200);
  const r = await c.roundTrip(2000);
  assert.equal(r.type, 'pong');
});

ctx.hostile('flood.8 200 sockets upgrade at once, then vanish without a close frame', async () => {
  const cs = await Promise.all(Array.from({ length: 200 }, () => ctx.raw({ path: '/ws/churn' })));
  for (const c of cs) c.destroy();
  await sleep(300);
});

ctx.hostile('flood.9 300 sockets each in its own room, then gone: no room is left behind', async () => {
  const cs = [];
  for (let i = 0; i < 300; i += 50) {
    cs.push(...(await Promise.all(Array.from({ length: 50 }, (_, k) => ctx.raw({ path: `/ws/ephemeral-${i + k}` })))));
  }
  for (const c of cs) c.destroy();
  const deadline = Date.now() + 3000;
  let rooms;
  do {
    await sleep(100);
    rooms = JSON.parse((await httpExchange(ctx.port(), 'GET /api/rooms HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).body).rooms;
  } while (rooms.some((r) => r.room.startsWith('ephemeral-')) && Date.now() < deadline);
  assert.deepEqual(rooms.filter((r) => r.room.startsWith('ephemeral-')), []);
});

ctx.hostile('flood.10 500 TCP connects reset at once (no request)', async () => {
  await Promise.all(Array.from({ length: 500 }, () => new Promise((resolve) => {
    const s = net.connect({ port: ctx.port(), host: '127.0.0.1' });
    s.on('connect', () => {
      s.resetAndDestroy ? s.resetAndDestroy() : s.destroy();
      resolve();
    });
    s.on('error', resolve);
  })));
});

ctx.hostile('flood.11 1000 pipelined GET /healthz on one connection', async () => {
  const req = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n';
  const r = await httpExchange(ctx.port(), req.repeat(999) + 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { timeoutMs: 5000, idleMs: 1500 });
  assert.equal(r.status, 200);
  assert.ok(r.responses >= 1);
});

ctx.hostile('flood.12 200 half-open upgrades (partial request line) held while a fresh client is served', async () => {
  const socks = await Promise.all(Array.from({ length: 200 }, () => new Promise((resolve) => {
    const s = net.connect({ port: ctx.port(), host: '127.0.0.1' }, () => {
      s.write('GET /ws/half HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgra');
      resolve(s);
    });
    s.on('error', () => {});
  })));
  try {
    await ctx.healthy();
  } finally {
    for (const s of socks) s.destroy();
  }
});

ctx.hostile('flood.13 100 upgraded sockets holding half a frame header, and 100 holding half a 60 KB message', async () => {
  const a = await Promise.all(Array.from({ length: 100 }, () => ctx.raw()));
  for (const c of a) await c.send(Buffer.from([0x81]));
  const b = await Promise.all(Array.from({ length: 100 }, () => ctx.raw()));
  const big = text(Buffer.alloc(60000, 0x20));
  for (const c of b) await c.send(big.subarray(0, 30000));
  await ctx.healthy();
  for (const c of [...a, ...b]) c.destroy();
});

ctx.hostile('flood.14 100 sockets upgrade and never read while the room is flooded by publishes', async () => {
  const cs = await Promise.all(Array.from({ length: 100 }, () => ctx.raw({ path: '/ws/deaf' })));
  for (const c of cs) c.sock.pause();
  const body = JSON.stringify({ room: 'deaf', type: 'chat', data: { pad: 'x'.repeat(8000) } });
  const req = `POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  // 200 publishes of 8 KB to 100 deaf members: 160 MB if nothing were bounded.
  await httpExchange(ctx.port(), req.repeat(199) + req.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n'), { timeoutMs: 8000, idleMs: 1000 });
  await sleep(300);
  await ctx.healthy();
  for (const c of cs) c.destroy();
});

ctx.hostile('flood.15 fragmented message of 10000 tiny fragments with a ping after each: answered', async () => {
  const c = await ctx.open();
  const parts = [text('{"type":"ping"', { fin: false })];
  for (let i = 0; i < 10000; i++) parts.push(cont(' ', { fin: false }), ping(''));
  parts.push(cont('}'));
  await c.send(Buffer.concat(parts));
  let pongs = 0;
  for (;;) {
    const f = await c.read(5000);
    if (f.op === OP.pong) pongs++;
    else if (f.op === OP.text) {
      assert.equal(JSON.parse(f.text).type, 'pong');
      break;
    } else assert.fail(`unexpected frame op ${f.op} code ${f.code}`);
  }
  assert.equal(pongs, 10000);
});

ctx.hostile('flood.16 close-frame storm: 300 sockets send a close and vanish before the echo', async () => {
  const cs = await Promise.all(Array.from({ length: 300 }, () => ctx.raw()));
  for (const c of cs) {
    c.send(close(1000));
    c.destroy();
  }
  await sleep(200);
});
