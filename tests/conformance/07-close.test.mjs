// RFC 6455 conformance, modelled on Autobahn|Testsuite section 7: close handling and close codes.
// A valid close is echoed (with the client's code, or 1000 / no payload for an empty close) and the
// server then closes the TCP connection; frames after a close are ignored; invalid codes fail with
// 1002, an invalid reason with 1007, a close payload over 125 bytes with 1002.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useServer } from './lib/fixture.mjs';
import { OP, frame, text, cont, ping, close, appPing, sleep } from '../support/node/raw.mjs';

const ctx = useServer();
const hex = (s) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** Sends bytes on a fresh client and expects the echoed close (code, or one of codes). */
async function echoed(bytes, codes) {
  const c = await ctx.open();
  await c.send(...(Array.isArray(bytes) ? bytes : [bytes]));
  const r = await c.expectClose(codes);
  c.assertServerFramesValid();
  return { ...r, c };
}

// ---- 7.1 basic close behaviour ----

test('7.1.1 app ping then close: pong envelope, then the close echoed, then TCP close', async () => {
  const c = await ctx.open();
  await c.send(text(appPing()));
  await ctx.expectPongs(c);
  await c.send(close(1000));
  const r = await c.expectClose(1000);
  assert.equal(r.before.length, 0);
});

test('7.1.2 two closes in a row: exactly one close echoed', async () => {
  const r = await echoed(Buffer.concat([close(1000), close(1000)]), 1000);
  assert.equal(r.c.frames.filter((f) => f.op === OP.close).length, 0, 'no second close frame');
});

test('7.1.3 ping after close: ignored (no pong)', async () => {
  const r = await echoed(Buffer.concat([close(1000), ping('after close')]), 1000);
  assert.equal(r.before.length, 0);
  assert.equal(r.c.frames.length, 0, 'nothing after the close');
});

test('7.1.4 text after close: ignored (no pong envelope)', async () => {
  const r = await echoed(Buffer.concat([close(1000), text(appPing())]), 1000);
  assert.equal(r.before.length, 0);
  assert.equal(r.c.frames.length, 0);
});

test('7.1.5 text fragment, close, continuation: close echoed, message never delivered', async () => {
  const r = await echoed(Buffer.concat([text('{"type":', { fin: false }), close(1000), cont('"ping"}')]), 1000);
  assert.equal(r.before.length, 0);
  assert.equal(r.c.frames.length, 0);
});

test('7.1.6 many app pings then close in one write: close echoed; any frame before it is a pong', async () => {
  const bytes = [];
  for (let i = 0; i < 50; i++) bytes.push(text(appPing(3000)));
  bytes.push(close(1000));
  const r = await echoed(Buffer.concat(bytes), 1000);
  for (const f of r.before) assert.equal(JSON.parse(f.text).type, 'pong');
});

test('7.1.7 close, then junk bytes and a reserved opcode: still a clean echo (ignored after close)', async () => {
  await echoed(Buffer.concat([close(1000), frame({ op: 3 }), Buffer.from('junk that is not a frame')]), 1000);
});

test('7.1.8 close sent byte by byte: echoed', async () => {
  const c = await ctx.open();
  await c.sendChopped(close(1000, 'bye'), 1);
  await c.expectClose(1000);
});

// ---- 7.3 close frame payload structure ----

test('7.3.1 close with empty payload: echo with 1000 or empty payload, then TCP close', async () => {
  await echoed(close(), [1000, null]);
});

test('7.3.2 close with a 1-byte payload: close 1002', async () => {
  await ctx.violation(frame({ op: OP.close, payload: Buffer.from([0x03]) }), 1002);
});

test('7.3.3 close with a status code and no reason: echoed', async () => {
  await echoed(close(1000), 1000);
});

test('7.3.4 close with code and reason: echoed code', async () => {
  await echoed(close(1000, 'Hello World!'), 1000);
});

test('7.3.5 close with a 123-byte reason (125-byte payload): echoed', async () => {
  await echoed(close(1000, 'x'.repeat(123)), 1000);
});

test('7.3.6 close with a 124-byte reason (126-byte payload): close 1002', async () => {
  await ctx.violation(close(1000, 'x'.repeat(124)), 1002);
});

// ---- 7.5 close reason UTF-8 ----

test('7.5.1 close reason with invalid UTF-8: close 1007', async () => {
  await ctx.violation(close(1000, hex('cebae1bdb9cf83cebcceb5eda080656469746564')), 1007);
});

test('7.5.2 close reason with a truncated code point: close 1007', async () => {
  await ctx.violation(close(1000, hex('48 69 e2 82')), 1007);
});

test('7.5.3 close reason with valid multibyte UTF-8: echoed', async () => {
  await echoed(close(1000, Buffer.from('κόσμε 😀 bye', 'utf8')), 1000);
});

// ---- 7.7 valid close codes: echoed ----

const validCodes = [
  ['7.7.1', 1000], ['7.7.2', 1001], ['7.7.3', 1002], ['7.7.4', 1003], ['7.7.5', 1007], ['7.7.6', 1008],
  ['7.7.7', 1009], ['7.7.8', 1010], ['7.7.9', 1011], ['7.7.10', 3000], ['7.7.11', 3999], ['7.7.12', 4000],
  ['7.7.13', 4999],
];
for (const [id, code] of validCodes) {
  test(`${id} close with valid code ${code}: echoed with ${code}`, async () => {
    await echoed(close(code, 'reason'), code);
    await ctx.witnessOk();
  });
}

// ---- 7.9, 7.13: invalid close codes: 1002 ----

const invalidCodes = [
  ['7.9.1', 0], ['7.9.2', 999], ['7.9.3', 1004], ['7.9.4', 1005], ['7.9.5', 1006], ['7.9.6', 1015],
  ['7.9.7', 1016], ['7.9.8', 1100], ['7.9.9', 2000], ['7.9.10', 2999], ['7.13.1', 5000], ['7.13.2', 65535],
];
for (const [id, code] of invalidCodes) {
  test(`${id} close with invalid code ${code}: close 1002`, async () => {
    await ctx.violation(close(code), 1002);
  });
}

// ---- 7.x: after the close ----

test('7.10.1 frames after the server answered a close are not processed', async () => {
  const c = await ctx.open();
  await c.send(close(1000));
  await c.expectClose(1000);
  await c.send(text(appPing()));
  await sleep(100);
  assert.equal(c.frames.length, 0);
  await ctx.witnessOk();
});

test('7.10.2 client close in a room: the other members see the user go offline', async () => {
  const a = await ctx.open('/ws/close-room');
  const b = await ctx.open('/ws/close-room');
  await a.send(close(1000));
  await a.expectClose(1000);
  const m = await b.expectJson((x) => x.type === 'presence' && x.data && x.data.status === 'offline' && x.data.user_id === a.welcome.data.user_id);
  assert.equal(m.room, 'close-room');
});
