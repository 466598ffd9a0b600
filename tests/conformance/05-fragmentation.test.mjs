// RFC 6455 conformance, modelled on Autobahn|Testsuite section 5: fragmentation, control frames
// interleaved in fragmented messages, continuation frames out of place.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useServer } from './lib/fixture.mjs';
import { OP, frame, text, cont, ping, pong, close, appPing } from '../support/node/raw.mjs';

const ctx = useServer();

/** Splits buf into n fragments (text first, continuations after; FIN on the last). */
function fragments(buf, n, opts = {}) {
  const out = [];
  const size = Math.ceil(buf.length / n);
  for (let i = 0; i < n; i++) {
    const part = buf.subarray(i * size, Math.min(buf.length, (i + 1) * size));
    const fin = i === n - 1;
    out.push(i === 0 ? text(part, { fin, ...opts }) : cont(part, { fin, ...opts }));
  }
  return out;
}

test('5.1 ping fragmented into 2 frames: close 1002', async () => {
  await ctx.violation([frame({ op: OP.ping, payload: 'frag1', fin: false }), frame({ op: OP.cont, payload: 'frag2' })], 1002);
});

test('5.2 pong fragmented into 2 frames: close 1002', async () => {
  await ctx.violation([frame({ op: OP.pong, payload: 'frag1', fin: false }), frame({ op: OP.cont, payload: 'frag2' })], 1002);
});

test('5.3 text message in 2 fragments: pong', async () => {
  const c = await ctx.open();
  await c.send(...fragments(appPing(), 2));
  await ctx.expectPongs(c);
});

test('5.4 text message in 2 fragments, sent byte by byte: pong', async () => {
  const c = await ctx.open();
  await c.sendChopped(Buffer.concat(fragments(appPing(), 2)), 1);
  await ctx.expectPongs(c);
});

test('5.5 text message in 1-byte fragments (15 frames): pong', async () => {
  const c = await ctx.open();
  const p = appPing();
  await c.send(...fragments(p, p.length));
  await ctx.expectPongs(c);
});

test('5.6 text in 2 fragments with a ping between: pong frame first, then the pong envelope', async () => {
  const c = await ctx.open();
  const [a, b] = fragments(appPing(), 2);
  await c.send(a, ping('ping payload'), b);
  await ctx.expectControlPongs(c, ['ping payload']);
  const j = await c.readJson();
  assert.equal(j.type, 'pong');
});

test('5.7 as 5.6, sent in 3-byte chunks: pong frame, then the pong envelope', async () => {
  const c = await ctx.open();
  const [a, b] = fragments(appPing(), 2);
  await c.sendChopped(Buffer.concat([a, ping('ping payload'), b]), 3);
  await ctx.expectControlPongs(c, ['ping payload']);
  assert.equal((await c.readJson()).type, 'pong');
});

test('5.8 as 5.6, sent byte by byte: pong frame, then the pong envelope', async () => {
  const c = await ctx.open();
  const [a, b] = fragments(appPing(), 2);
  await c.sendChopped(Buffer.concat([a, ping('ping payload'), b]), 1);
  await ctx.expectControlPongs(c, ['ping payload']);
  assert.equal((await c.readJson()).type, 'pong');
});

test('5.9 continuation (FIN) without a message started, then a text: close 1002', async () => {
  const r = await ctx.violation(Buffer.concat([cont('non-continuation payload'), text(appPing())]), 1002);
  assert.equal(r.before.length, 0, 'the text after the bad continuation is not processed');
});

test('5.10 as 5.9, sent in 1-byte chunks: close 1002', async () => {
  const c = await ctx.open();
  await c.sendChopped(Buffer.concat([cont('non-continuation payload'), text(appPing())]), 1);
  const r = await c.expectClose(1002);
  assert.equal(r.before.length, 0);
  await ctx.witnessOk();
});

test('5.11 continuation (not FIN) without a message started: close 1002', async () => {
  await ctx.violation(cont('fragment', { fin: false }), 1002);
});

test('5.12 continuation (not FIN) without start, then text: close 1002', async () => {
  await ctx.violation(Buffer.concat([cont('fragment', { fin: false }), text(appPing())]), 1002);
});

test('5.13 continuation with empty payload without start: close 1002', async () => {
  await ctx.violation(cont(''), 1002);
});

test('5.14 continuation after a complete message: close 1002', async () => {
  const c = await ctx.open();
  await c.send(text(appPing()));
  await ctx.expectPongs(c);
  await c.send(cont('late fragment'));
  await c.expectClose(1002);
  await ctx.witnessOk();
});

test('5.15 text, continuation, continuation, continuation after the message ended: close 1002', async () => {
  const c = await ctx.open();
  const [a, b] = fragments(appPing(), 2);
  await c.send(a, b);
  await ctx.expectPongs(c);
  await c.send(cont('fragment3', { fin: false }), cont('fragment4'));
  await c.expectClose(1002);
  await ctx.witnessOk();
});

test('5.16 repeated (continuation without start, text, continuation): close 1002 at the first', async () => {
  const bytes = [];
  for (let i = 0; i < 2; i++) bytes.push(cont('fragment1', { fin: false }), text('fragment2', { fin: false }), cont('fragment3'));
  const r = await ctx.violation(Buffer.concat(bytes), 1002);
  assert.equal(r.before.length, 0);
});

test('5.17 as 5.16 with FIN on every frame: close 1002', async () => {
  const bytes = [];
  for (let i = 0; i < 2; i++) bytes.push(cont('fragment1'), text('fragment2'), cont('fragment3'));
  await ctx.violation(Buffer.concat(bytes), 1002);
});

test('5.18 text (not FIN), then a new text frame (FIN) inside the message: close 1002', async () => {
  await ctx.violation([text('{"type":', { fin: false }), text('"ping"}')], 1002);
});

test('5.19 text in 5 fragments with 2 pings between, 1 s apart: pongs in order, then the envelope', async () => {
  const c = await ctx.open();
  const f = fragments(appPing(), 5);
  await c.send(f[0], f[1]);
  await c.send(ping('pongme 1!'));
  await ctx.expectControlPongs(c, ['pongme 1!']);
  await c.send(f[2], f[3]);
  await c.send(ping('pongme 2!'));
  await ctx.expectControlPongs(c, ['pongme 2!']);
  await c.send(f[4]);
  assert.equal((await c.readJson()).type, 'pong');
});

test('5.20 as 5.19, sent byte by byte: pongs in order, then the envelope', async () => {
  const c = await ctx.open();
  const f = fragments(appPing(), 5);
  await c.sendChopped(Buffer.concat([f[0], f[1], ping('pongme 1!'), f[2], f[3], ping('pongme 2!'), f[4]]), 1);
  await ctx.expectControlPongs(c, ['pongme 1!', 'pongme 2!']);
  assert.equal((await c.readJson()).type, 'pong');
});

test('5.21 text in 3 fragments with an unsolicited pong between: pong envelope only', async () => {
  const c = await ctx.open();
  const f = fragments(appPing(), 3);
  await c.send(f[0], pong('unsolicited'), f[1], f[2]);
  assert.equal((await c.readJson()).type, 'pong');
  await c.expectSilence(150);
});

test('5.22 text fragments with empty first and last fragments: pong', async () => {
  const c = await ctx.open();
  await c.send(text('', { fin: false }), cont(appPing(), { fin: false }), cont(''));
  await ctx.expectPongs(c);
});

test('5.23 text message of all-empty fragments: invalid_json error, socket open', async () => {
  const c = await ctx.open();
  await c.send(text('', { fin: false }), cont('', { fin: false }), cont(''));
  const e = await c.expectJson({ type: 'error' });
  assert.equal(e.data.code, 'invalid_json');
  await c.roundTrip();
});

test('5.24 fragmented text with 5 pings between each of 4 fragments: 15 pongs, then the envelope', async () => {
  const c = await ctx.open();
  const f = fragments(appPing(), 4);
  const bytes = [];
  const payloads = [];
  for (let i = 0; i < 4; i++) {
    bytes.push(f[i]);
    if (i < 3) for (let k = 0; k < 5; k++) {
      const p = `p${i}-${k}`;
      payloads.push(p);
      bytes.push(ping(p));
    }
  }
  await c.send(Buffer.concat(bytes));
  await ctx.expectControlPongs(c, payloads);
  assert.equal((await c.readJson()).type, 'pong');
});

test('5.25 binary (not FIN) then text frame inside the message: close 1002', async () => {
  await ctx.violation([frame({ op: OP.binary, payload: Buffer.from([1]), fin: false }), text(appPing())], 1002);
});

test('5.26 close frame inside a fragmented message: the close is echoed', async () => {
  const c = await ctx.open();
  const [a, b] = fragments(appPing(), 2);
  await c.send(a, close(1000), b);
  const r = await c.expectClose(1000);
  assert.equal(r.before.length, 0, 'the unfinished message is not delivered');
  await ctx.witnessOk();
});

test('5.27 text with a fragmented ping inside a fragmented message: close 1002', async () => {
  const [a, b] = fragments(appPing(), 2);
  await ctx.violation([a, frame({ op: OP.ping, payload: 'x', fin: false }), b], 1002);
});

test('5.28 two fragmented messages back to back: two pongs', async () => {
  const c = await ctx.open();
  await c.send(...fragments(appPing(), 3), ...fragments(appPing(3), 4));
  await ctx.expectPongs(c, 2);
});
