// Hostile inputs at the HTTP layer: oversized headers, malformed upgrades, request smuggling shapes
// on /api/publish, bad publish bodies. After each input a fresh client is served within 1 s.

import assert from 'node:assert/strict';
import { useBattery, httpExchange, httpRequest, upgradeRequest, makeKey } from './lib/battery.mjs';

const ctx = useBattery();
const ex = (bytes, opts) => httpExchange(ctx.port(), bytes, opts);

/** Asserts an HTTP status among `codes` and that no upgrade happened. */
function status(r, codes, what) {
  const list = Array.isArray(codes) ? codes : [codes];
  assert.ok(list.includes(r.status), `${what}: expected ${list.join('|')}, got ${r.status} ${JSON.stringify(r.raw.toString('latin1').slice(0, 200))}`);
}

// ---- header size ----

ctx.hostile('hdr.1 one 9 KiB header on an upgrade: 431 (or 400)', async () => {
  const r = await ex(upgradeRequest('/ws', { headers: { 'X-Big': 'a'.repeat(9 * 1024) } }));
  status(r, [431, 400], 'oversized header');
});

ctx.hostile('hdr.2 200 headers of 60 bytes (12 KiB total): 431 (or 400)', async () => {
  const headers = {};
  for (let i = 0; i < 200; i++) headers[`X-H${i}`] = 'v'.repeat(54);
  const r = await ex(upgradeRequest('/ws', { headers }));
  status(r, [431, 400], 'too many header bytes');
});

ctx.hostile('hdr.3 10 KiB request target: 431, 414 or 400', async () => {
  const r = await ex(`GET /ws/room?x=${'a'.repeat(10 * 1024)} HTTP/1.1\r\nHost: x\r\n\r\n`);
  status(r, [431, 414, 400], 'oversized request line');
});

ctx.hostile('hdr.4 a header streamed without end (1 MiB): the connection is ended, nothing buffered', async () => {
  const chunks = ['GET /ws HTTP/1.1\r\nHost: x\r\nX-Endless: '];
  for (let i = 0; i < 64; i++) chunks.push('b'.repeat(16 * 1024));
  const rss0 = ctx.server.rssKiB();
  const t0 = Date.now();
  const r = await ex(chunks, { timeoutMs: 4000 });
  assert.ok(r.closed && Date.now() - t0 < 3000, 'connection ended by the server');
  assert.ok(r.status === 0 || r.status === 431 || r.status === 400, `status ${r.status}`);
  assert.ok(ctx.server.rssKiB() - rss0 < 4096, 'the endless header was not buffered');
});

ctx.hostile('hdr.4b a header streamed without end, client still sending: the client gets to read the 431 (lingering close)', async () => {
  // RFC 9112 9.6: a server closing while the client is still sending should half-close and drain
  // (a lingering close), or the client's TCP stack receives a reset and discards the response.
  // Five tries: without a lingering close, the response is lost at random (a race with the reset).
  const chunks = ['GET /ws HTTP/1.1\r\nHost: x\r\nX-Endless: '];
  for (let i = 0; i < 8; i++) chunks.push('b'.repeat(16 * 1024));
  const seen = [];
  for (let k = 0; k < 5; k++) seen.push((await ex(chunks, { timeoutMs: 4000 })).status);
  assert.ok(seen.every((s) => s === 431 || s === 400), `statuses seen by the client in 5 tries: ${seen.join(', ')} (0: reset, response lost)`);
});

ctx.hostile('hdr.5 (control) 7 KiB of headers on an upgrade: accepted (101)', async () => {
  const c = await ctx.raw({ headers: { 'X-Pad': 'p'.repeat(7 * 1024) } });
  c.destroy();
});

ctx.hostile('hdr.6 8 KiB Cookie header on /api/publish: 431 (or 400)', async () => {
  const r = await ex(httpRequest('POST', '/api/publish', { headers: { Cookie: 'c='.padEnd(8300, 'z') }, body: { room: 'a', text: 'x' } }));
  status(r, [431, 400], 'oversized cookie');
});

// ---- malformed upgrades ----

ctx.hostile('up.1 unknown method FOO with upgrade headers: no upgrade (4xx)', async () => {
  const r = await ex(upgradeRequest('/ws', { method: 'FOO' }));
  status(r, [400, 405, 501], 'bad method');
});

ctx.hostile('up.2 POST with upgrade headers: no upgrade (4xx)', async () => {
  const r = await ex(upgradeRequest('/ws', { method: 'POST' }));
  status(r, [400, 405], 'POST upgrade');
});

ctx.hostile('up.3 HTTP/1.0 upgrade: 400', async () => {
  const r = await ex(upgradeRequest('/ws', { httpVersion: 'HTTP/1.0' }));
  status(r, 400, 'HTTP/1.0 upgrade');
});

ctx.hostile('up.4 missing Sec-WebSocket-Key: 400', async () => {
  const r = await ex(upgradeRequest('/ws', { headers: { 'Sec-WebSocket-Key': null } }));
  status(r, 400, 'no key');
});

ctx.hostile('up.5 Sec-WebSocket-Key of the wrong length (20 random bytes): 400', async () => {
  const r = await ex(upgradeRequest('/ws', { key: Buffer.alloc(20, 7).toString('base64') }));
  status(r, 400, 'bad key length');
});

ctx.hostile('up.6 Sec-WebSocket-Key not base64: 400', async () => {
  const r = await ex(upgradeRequest('/ws', { key: '!!!!!!!!!!!!!!!!!!!!!!==' }));
  status(r, 400, 'non-base64 key');
});

ctx.hostile('up.7 Sec-WebSocket-Version 8: 426 with Sec-WebSocket-Version: 13', async () => {
  const r = await ex(upgradeRequest('/ws', { version: '8' }));
  status(r, 426, 'version 8');
  assert.equal(r.headers['sec-websocket-version'], '13');
});

ctx.hostile('up.8 missing Sec-WebSocket-Version: 426 (or 400)', async () => {
  const r = await ex(upgradeRequest('/ws', { version: null }));
  status(r, [426, 400], 'no version');
});

ctx.hostile('up.9 Upgrade: websocket without Connection: Upgrade: 400', async () => {
  const r = await ex(upgradeRequest('/ws', { headers: { Connection: null } }));
  status(r, 400, 'no Connection: Upgrade');
});

ctx.hostile('up.10 Connection: Upgrade without an Upgrade header: 400', async () => {
  const r = await ex(upgradeRequest('/ws', { headers: { Upgrade: null } }));
  status(r, 400, 'no Upgrade');
});

ctx.hostile('up.11 binary junk instead of a request: 400 or closed', async () => {
  const junk = Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 73 + 11) & 0xff));
  const r = await ex(junk);
  assert.ok(r.status === 400 || (r.status === 0 && r.closed), `junk: got ${r.status}`);
});

ctx.hostile('up.12 request line without HTTP version: 400 or closed', async () => {
  const r = await ex('GET /ws\r\n\r\n');
  assert.ok(r.status === 400 || (r.status === 0 && r.closed), `got ${r.status}`);
});

ctx.hostile('up.13 NUL byte in a header value: 400', async () => {
  const r = await ex(upgradeRequest('/ws', { headers: { 'X-Nul': 'a\u0000b' } }));
  status(r, 400, 'NUL in header');
});

ctx.hostile('up.14 header line without a colon: 400', async () => {
  const r = await ex('GET /ws HTTP/1.1\r\nHost: x\r\nthis is not a header\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
  status(r, 400, 'no colon');
});

ctx.hostile('up.15 obsolete line folding in the upgrade headers: 400', async () => {
  const req = upgradeRequest('/ws').replace('Upgrade: websocket\r\n', 'Upgrade: web\r\n socket\r\n');
  const r = await ex(req);
  status(r, 400, 'obs-fold');
});

ctx.hostile('up.16 absolute-form target pointing at /ws elsewhere: no upgrade', async () => {
  const r = await ex(upgradeRequest('http://evil.example/ws/x'));
  status(r, [400, 404], 'absolute-form');
});

ctx.hostile('up.17 Origin from another site: 403', async () => {
  const r = await ex(upgradeRequest('/ws', { headers: { Origin: 'http://evil.example' } }));
  status(r, 403, 'foreign origin');
});

ctx.hostile('up.18 Origin "null" (sandboxed page) with the default policy: 403', async () => {
  const r = await ex(upgradeRequest('/ws', { headers: { Origin: 'null' } }));
  status(r, 403, 'null origin');
});

ctx.hostile('up.19 raw 0xFF bytes in the request target: 400', async () => {
  const head = Buffer.from('GET /ws/\xff\xfe HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ' + makeKey() + '\r\n\r\n', 'latin1');
  const r = await ex(head);
  status(r, 400, 'raw 0xFF in target');
});

ctx.hostile('up.20 two Sec-WebSocket-Key headers: refused or answered for one key, never a crash', async () => {
  const r = await ex(upgradeRequest('/ws', { headers: { 'Sec-WebSocket-Key': [makeKey(), makeKey()] } }));
  status(r, [400, 101], 'duplicate keys');
});

// ---- request smuggling shapes on /api/publish ----

const body = JSON.stringify({ room: 'smuggle', text: 'hi' });

ctx.hostile('smug.1 Content-Length and Transfer-Encoding: chunked together: one 400, connection closed', async () => {
  const smuggled = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n';
  const chunked = `${Buffer.byteLength(body).toString(16)}\r\n${body}\r\n0\r\n\r\n${smuggled}`;
  const req = `POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n${chunked}`;
  const r = await ex(req);
  status(r, 400, 'CL+TE');
  assert.equal(r.responses, 1, `exactly one response (no smuggled request answered); got ${r.responses}`);
});

ctx.hostile('smug.2 negative Content-Length: 400', async () => {
  const r = await ex(`POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n${body}`);
  status(r, 400, 'negative CL');
});

ctx.hostile('smug.3 two different Content-Length headers: 400', async () => {
  const r = await ex(`POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\nContent-Length: 3\r\n\r\n${body}`);
  status(r, 400, 'duplicate CL');
});

ctx.hostile('smug.4 Content-Length with trailing garbage ("12abc"): 400', async () => {
  const r = await ex(`POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n${body}`);
  status(r, 400, 'bad CL');
});

ctx.hostile('smug.5 chunked body with an invalid chunk size: 400', async () => {
  const r = await ex(`POST /api/publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n${body}\r\n0\r\n\r\n`);
  status(r, 400, 'bad chunk size');
});

ctx.hostile('smug.6 Transfer-Encoding "chunked, identity" with Content-Length: 400 (or 501) and connection closed', async () => {
  // RFC 9112 6.3: chunked not the final coding of a request: 400, then close.
  const r = await ex(`POST /api/publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
  status(r, [400, 501], 'chunked, identity + CL');
  assert.ok(r.closed, 'connection closed after the refusal');
});

ctx.hostile('smug.9 Transfer-Encoding "gzip" with Content-Length: 400 or 501, connection closed', async () => {
  const r = await ex(`POST /api/publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
  status(r, [400, 501], 'gzip + CL');
  assert.ok(r.closed, 'connection closed after the refusal');
});

for (const [id, te] of [['smug.10', 'xchunked'], ['smug.11', 'chunked, identity'], ['smug.12', 'gzip']]) {
  ctx.hostile(`${id} Transfer-Encoding "${te}" without Content-Length, body = a second request: the body is never run as a request`, async () => {
    const listener = await ctx.open('/ws/smuggle-victim');
    await listener.expectJson({ type: 'presence' }); // its own arrival in the room
    const inner = '{"room":"smuggle-victim","text":"smuggled"}';
    const smuggled = `POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Length: ${inner.length}\r\n\r\n${inner}`;
    const r = await ex(`POST /api/publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ${te}\r\n\r\n${smuggled}`, { idleMs: 400 });
    status(r, [400, 501], te);
    assert.equal(r.responses, 1, `one response only; got: ${JSON.stringify(r.raw.toString('latin1'))}`);
    await listener.expectSilence(300);
    listener.destroy();
  });
}

ctx.hostile('smug.7 Content-Length of 10^20: 413 or 400 at once', async () => {
  const r = await ex(`POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000000000000000\r\n\r\n${body}`);
  status(r, [413, 400], 'huge CL');
});

ctx.hostile('smug.8 chunk size overflowing 64 bits: 400 or 413', async () => {
  const r = await ex(`POST /api/publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n${body}\r\n0\r\n\r\n`);
  status(r, [400, 413], 'chunk size overflow');
});

// A chunk-size line, or a trailer line, that never ends: the parser asks for more, and what it has
// not taken stays in the read buffer, which is bounded (headers + 64 KiB): the request is refused
// long before the stream ends, and the stream is not buffered. No API key is needed to send it.
for (const [id, what, head] of [
  ['smug.13', 'a chunk extension', 'POST /api/publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;'],
  ['smug.14', 'a trailer', 'POST /api/publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: '],
]) {
  ctx.hostile(`${id} ${what} streamed without end (32 MiB): refused, nothing buffered`, async () => {
    const chunks = [head];
    for (let i = 0; i < 512; i++) chunks.push('a'.repeat(64 * 1024));
    const rss0 = ctx.server.rssKiB();
    const r = await ex(chunks, { timeoutMs: 8000 });
    assert.ok(r.closed, 'connection ended by the server');
    assert.ok(r.status === 0 || r.status === 400, `status ${r.status}`);
    const grown = ctx.server.rssKiB() - rss0;
    assert.ok(grown < 8192, `${what} was buffered: RSS grew by ${grown} KiB`);
  });
}

// ---- publish bodies ----

ctx.hostile('pub.1 body over --max-message-bytes (70000 bytes): 413', async () => {
  const big = JSON.stringify({ room: 'a', text: 'x'.repeat(70000) });
  const r = await ex(httpRequest('POST', '/api/publish', { body: big }), { timeoutMs: 4000 });
  status(r, 413, 'oversized body');
});

ctx.hostile('pub.2 chunked body over the limit: 413', async () => {
  const piece = 'x'.repeat(16000);
  let chunked = '';
  for (let i = 0; i < 5; i++) chunked += `${piece.length.toString(16)}\r\n${piece}\r\n`;
  chunked += '0\r\n\r\n';
  const r = await ex(`POST /api/publish HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${chunked}`, { timeoutMs: 4000 });
  status(r, 413, 'oversized chunked body');
});

const badBodies = [
  ['pub.3', 'not JSON', 'hello world'],
  ['pub.4', 'a JSON array', '[1,2,3]'],
  ['pub.5', 'JSON null', 'null'],
  ['pub.6', 'empty body', ''],
  ['pub.7', 'room of the wrong type', '{"room":5,"text":"x"}'],
  ['pub.8', 'text of the wrong type', '{"room":"a","text":{"x":1}}'],
  ['pub.9', 'user of the wrong type', '{"user":["u"],"text":"x"}'],
  ['pub.10', 'type of the wrong type', '{"room":"a","type":7,"data":{}}'],
  ['pub.11', 'truncated JSON', '{"room":"a","text":"x'],
  ['pub.12', 'nesting 10000 deep', '{"room":"a","data":' + '['.repeat(10000) + ']'.repeat(10000) + '}'],
  ['pub.13', 'room with a wildcard', '{"room":"realtime:room:*","text":"x"}'],
  ['pub.14', 'room with CRLF', '{"room":"a\\r\\nPUBLISH realtime:global x","text":"x"}'],
  ['pub.15', 'room of 129 characters', `{"room":"${'r'.repeat(129)}","text":"x"}`],
  ['pub.16', 'user with control characters', '{"user":"u\\r\\nx","text":"x"}'],
  ['pub.17', 'room "../"', '{"room":"../etc","text":"x"}'],
];
for (const [id, what, b] of badBodies) {
  ctx.hostile(`${id} publish with ${what}: 400`, async () => {
    const r = await ex(httpRequest('POST', '/api/publish', { headers: { 'Content-Type': 'application/json' }, body: b }));
    status(r, 400, what);
    assert.ok(r.body.length > 0 && JSON.parse(r.body).error, `JSON error body: ${r.body}`);
  });
}

ctx.hostile('pub.18 body of invalid UTF-8: 400', async () => {
  const b = Buffer.concat([Buffer.from('{"room":"a","text":"'), Buffer.from([0xc0, 0xaf, 0xed, 0xa0, 0x80]), Buffer.from('"}')]);
  const r = await ex(httpRequest('POST', '/api/publish', { body: b }));
  status(r, 400, 'invalid UTF-8');
});

ctx.hostile('pub.19 GET /api/publish: 405', async () => {
  const r = await ex(httpRequest('GET', '/api/publish'));
  status(r, 405, 'GET publish');
});

ctx.hostile('pub.20 (control) a 60 KB JSON array under the limit: 202', async () => {
  const arr = '[' + Array.from({ length: 20000 }, () => '0').join(',') + ']';
  const r = await ex(httpRequest('POST', '/api/publish', { body: `{"room":"big","type":"chat","data":{"a":${arr}}}` }));
  status(r, 202, 'large array');
});

ctx.hostile('pres.1 presence of "*" / "../" / "%00": 400', async () => {
  for (const room of ['%2A', '..%2F..%2Fetc', 'a%00b', 'realtime:room:%2A']) {
    const r = await ex(`GET /api/rooms/${room}/presence HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    status(r, 400, `presence of ${room}`);
  }
});
