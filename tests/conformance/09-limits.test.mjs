// RFC 6455 conformance, modelled on the limits of Autobahn|Testsuite section 9, against a server
// started with --max-message-bytes 4096: a message (one frame or all its fragments) of exactly the
// limit is accepted; one byte more closes with 1009, as soon as the length is announced; bulk traffic
// at the limit is answered in full and in order.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useServer, MAX_MESSAGE } from './lib/fixture.mjs';
import { OP, frame, text, cont, binary, ping, appPingOfSize } from '../support/node/raw.mjs';

const ctx = useServer();

function fragmentsOf(buf, size, { op = OP.text } = {}) {
  const out = [];
  for (let i = 0; i < buf.length; i += size) {
    const part = buf.subarray(i, i + size);
    const fin = i + size >= buf.length;
    out.push(i === 0 ? frame({ op, payload: part, fin }) : cont(part, { fin }));
  }
  return Buffer.concat(out);
}

test('9.1.1 text message of exactly --max-message-bytes in one frame: pong', async () => {
  const c = await ctx.open();
  await c.send(text(appPingOfSize(MAX_MESSAGE)));
  await ctx.expectPongs(c);
});

test('9.1.2 text message one byte over the limit in one frame: close 1009', async () => {
  await ctx.violation(text(appPingOfSize(MAX_MESSAGE + 1)), 1009);
});

test('9.1.3 header announcing limit+1 bytes, no payload sent: close 1009 at once', async () => {
  const whole = text(appPingOfSize(MAX_MESSAGE + 1));
  await ctx.violation(whole.subarray(0, 8), 1009);
});

test('9.1.4 text message at the limit in 4 fragments: pong', async () => {
  const c = await ctx.open();
  await c.send(fragmentsOf(appPingOfSize(MAX_MESSAGE), MAX_MESSAGE / 4));
  await ctx.expectPongs(c);
});

test('9.1.5 text message of limit+1 bytes in 5 fragments: close 1009', async () => {
  await ctx.violation(fragmentsOf(appPingOfSize(MAX_MESSAGE + 1), MAX_MESSAGE / 4), 1009);
});

test('9.1.6 limit-sized first fragment, then a 1-byte continuation: close 1009', async () => {
  const first = text(appPingOfSize(MAX_MESSAGE), { fin: false });
  await ctx.violation([first, cont(' ')], 1009);
});

test('9.1.7 text message at the limit in 1-byte fragments (4096 frames): pong', async () => {
  const c = await ctx.open();
  await c.send(fragmentsOf(appPingOfSize(MAX_MESSAGE), 1));
  await ctx.expectPongs(c, 1, 5000);
});

test('9.1.8 text message of limit+1 in 1-byte fragments: close 1009', async () => {
  await ctx.violation(fragmentsOf(appPingOfSize(MAX_MESSAGE + 1), 1), 1009, {});
});

test('9.1.9 64-bit length of 2^62 announced: close 1009 at once', async () => {
  const h = frame({ op: OP.text, payload: '', len: 2 ** 52, lenBytes: 8 });
  h.writeBigUInt64BE(1n << 62n, 2);
  await ctx.violation(h, 1009);
});

test('9.1.10 64-bit length with the most significant bit set: close 1002', async () => {
  const h = frame({ op: OP.text, payload: '', len: 0, lenBytes: 8 });
  h.writeBigUInt64BE(0x8000000000000010n, 2);
  await ctx.violation(h, 1002);
});

test('9.1.11 32-bit-sized length 0xFFFFFFFF announced: close 1009', async () => {
  await ctx.violation(frame({ op: OP.text, payload: '', len: 0xffffffff, lenBytes: 8 }), 1009);
});

test('9.1.12 binary message of limit+1 bytes: close 1009', async () => {
  await ctx.violation(binary(Buffer.alloc(MAX_MESSAGE + 1, 7)), 1009);
});

test('9.1.13 fragmented binary message over the limit: close 1009', async () => {
  await ctx.violation(fragmentsOf(Buffer.alloc(MAX_MESSAGE * 2, 7), 1000, { op: OP.binary }), 1009);
});

test('9.1.14 two limit-sized messages back to back: two pongs', async () => {
  const c = await ctx.open();
  await c.send(text(appPingOfSize(MAX_MESSAGE)), text(appPingOfSize(MAX_MESSAGE)));
  await ctx.expectPongs(c, 2);
});

test('9.1.15 limit-sized message of multibyte UTF-8: pong', async () => {
  const c = await ctx.open();
  const base = Buffer.from('{"type":"ping","x":"');
  const end = Buffer.from('"}');
  const fill = Buffer.from('κόσμε😀'.repeat(400), 'utf8');
  let body = Buffer.concat([base, fill]);
  // Cut the filler at a code point boundary so that the message is exactly the limit.
  let n = MAX_MESSAGE - end.length;
  while ((body[n] & 0xc0) === 0x80) n--;
  body = Buffer.concat([body.subarray(0, n), end]);
  const pad = MAX_MESSAGE - body.length;
  body = Buffer.concat([body, Buffer.alloc(pad, 0x20)]);
  assert.equal(body.length, MAX_MESSAGE);
  await c.send(text(body));
  await ctx.expectPongs(c);
});

test('9.1.16 control frames are not counted against the message limit', async () => {
  const c = await ctx.open();
  const msg = appPingOfSize(MAX_MESSAGE);
  const half = MAX_MESSAGE / 2;
  await c.send(text(msg.subarray(0, half), { fin: false }), ping('x'.repeat(125)), cont(msg.subarray(half)));
  await ctx.expectControlPongs(c, ['x'.repeat(125)]);
  await ctx.expectPongs(c);
});

// ---- 9.2 .. 9.4: bulk traffic at and under the limit ----

test('9.2.1 100 messages of 4000 bytes in one write: 100 pongs', async () => {
  const c = await ctx.open();
  const m = text(appPingOfSize(4000));
  await c.send(Buffer.concat(Array.from({ length: 100 }, () => m)));
  await ctx.expectPongs(c, 100, 5000);
});

test('9.2.2 1000 small messages in one write: 1000 pongs', async () => {
  const c = await ctx.open();
  const m = text(appPingOfSize(20));
  await c.send(Buffer.concat(Array.from({ length: 1000 }, () => m)));
  await ctx.expectPongs(c, 1000, 10000);
});

for (const [id, size] of [['9.3.1', 64], ['9.3.2', 256], ['9.3.3', 1024], ['9.3.4', 4095]]) {
  test(`${id} limit-sized message in fragments of ${size} bytes: pong`, async () => {
    const c = await ctx.open();
    await c.send(fragmentsOf(appPingOfSize(MAX_MESSAGE), size));
    await ctx.expectPongs(c);
  });
}

for (const [id, chunk] of [['9.4.1', 7], ['9.4.2', 1000]]) {
  test(`${id} limit-sized message written in ${chunk}-byte TCP chunks: pong`, async () => {
    const c = await ctx.open();
    await c.sendChopped(text(appPingOfSize(MAX_MESSAGE)), chunk);
    await ctx.expectPongs(c, 1, 5000);
  });
}

test('9.5.1 500 pings with 125-byte payloads: 500 pongs in order', async () => {
  const c = await ctx.open();
  const payloads = Array.from({ length: 500 }, (_, i) => String(i).padStart(125, '.'));
  await c.send(Buffer.concat(payloads.map((p) => ping(p))));
  await ctx.expectControlPongs(c, payloads, 5000);
});
