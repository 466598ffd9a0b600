// RFC 6455 conformance, modelled on Autobahn|Testsuite section 6: UTF-8 handling in text messages.
//
// Observable outcomes: a text message that is valid UTF-8 but not JSON gets an `invalid_json` error
// envelope (the socket stays open); valid UTF-8 inside a JSON ping gets a `pong`; invalid UTF-8,
// whole, in a fragment, or split across fragments, fails the connection with 1007. Fail-fast cases
// (6.4.x) hold back the rest of the message and expect the close before it is sent.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useServer } from './lib/fixture.mjs';
import { text, cont, ping, sleep } from '../support/node/raw.mjs';

const ctx = useServer();
const hex = (s) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const kosme = hex('ce ba e1 bd b9 cf 83 ce bc ce b5');

/** 1-byte fragments: text (not FIN), continuations, the last one FIN. */
function byteFragments(buf) {
  const out = [];
  for (let i = 0; i < buf.length; i++) {
    const part = buf.subarray(i, i + 1);
    const fin = i === buf.length - 1;
    out.push(i === 0 ? text(part, { fin }) : cont(part, { fin }));
  }
  return Buffer.concat(out);
}

/** JSON ping carrying the bytes in a string field. */
const wrapped = (bytes) => Buffer.concat([Buffer.from('{"type":"ping","x":"'), bytes, Buffer.from('"}')]);

async function expectAcceptedRaw(bytes) {
  const c = await ctx.open();
  await c.send(bytes);
  const e = await c.expectJson({ type: 'error' });
  assert.equal(e.data.code, 'invalid_json', 'valid UTF-8 that is not JSON: invalid_json, not a close');
  await c.roundTrip();
}

// ---- 6.1 empty payloads ----

test('6.1.1 text message with empty payload: accepted (invalid_json), socket open', async () => {
  await expectAcceptedRaw(text(''));
});

test('6.1.2 fragmented text message of 3 empty fragments: accepted', async () => {
  await expectAcceptedRaw(Buffer.concat([text('', { fin: false }), cont('', { fin: false }), cont('')]));
});

test('6.1.3 fragmented text message: empty, non-empty, empty: accepted', async () => {
  await expectAcceptedRaw(Buffer.concat([text('', { fin: false }), cont('middle frame payload', { fin: false }), cont('')]));
});

// ---- 6.2 valid UTF-8 in one frame and fragmented at every byte ----

const hello = Buffer.from('Hello-µ@ßöäüàá-UTF-8!!', 'utf8');

test('6.2.1 valid UTF-8 in one frame (JSON ping): pong', async () => {
  const c = await ctx.open();
  await c.send(text(wrapped(hello)));
  await ctx.expectPongs(c);
});

test('6.2.2 valid UTF-8 in 2 fragments split at a code point boundary: pong', async () => {
  const c = await ctx.open();
  const w = wrapped(hello);
  const cut = w.indexOf(Buffer.from('µ', 'utf8'));
  await c.send(text(w.subarray(0, cut), { fin: false }), cont(w.subarray(cut)));
  await ctx.expectPongs(c);
});

test('6.2.3 valid UTF-8 in 1-byte fragments (code points split across frames): pong', async () => {
  const c = await ctx.open();
  await c.send(byteFragments(wrapped(hello)));
  await ctx.expectPongs(c);
});

test('6.2.4 "κόσμε" in 1-byte fragments: pong', async () => {
  const c = await ctx.open();
  await c.send(byteFragments(wrapped(kosme)));
  await ctx.expectPongs(c);
});

test('6.2.5 "κόσμε" split into 2 fragments at every byte offset: pong each time', async () => {
  const c = await ctx.open();
  const w = wrapped(kosme);
  const start = w.indexOf(kosme);
  for (let cut = start; cut <= start + kosme.length; cut++) {
    await c.send(text(w.subarray(0, cut), { fin: false }), cont(w.subarray(cut)));
  }
  await ctx.expectPongs(c, kosme.length + 1);
});

// ---- 6.3 invalid UTF-8 ----

const kosmeEdited = hex('cebae1bdb9cf83cebcceb5eda080656469746564');

test('6.3.1 invalid UTF-8 text in one frame ("κόσμε" + surrogate + "edited"): close 1007', async () => {
  await ctx.violation(text(kosmeEdited), 1007);
});

test('6.3.2 same payload in 1-byte fragments: close 1007', async () => {
  await ctx.violation(byteFragments(kosmeEdited), 1007);
});

test('6.3.3 invalid UTF-8 inside a JSON ping: close 1007, not invalid_json', async () => {
  const r = await ctx.violation(text(wrapped(hex('ed a0 80'))), 1007);
  assert.equal(r.before.length, 0);
});

// ---- 6.4 fail fast ----

test('6.4.1 3 fragments, the 2nd invalid; the 3rd held back: close 1007 before it is sent', async () => {
  const c = await ctx.open();
  await c.send(text(kosme, { fin: false }), cont(hex('f4 90 80 80'), { fin: false }));
  await c.expectClose(1007, 1500);
  await c.send(cont(Buffer.from('edited')));
  await ctx.witnessOk();
});

test('6.4.2 as 6.4.1, the invalid sequence straddling fragments 1 and 2: close 1007', async () => {
  const c = await ctx.open();
  await c.send(text(Buffer.concat([kosme, hex('f4')]), { fin: false }), cont(hex('90 80 80'), { fin: false }));
  await c.expectClose(1007, 1500);
  await ctx.witnessOk();
});

test('6.4.3 one frame, the invalid bytes in its first part, the rest held back: close 1007', async () => {
  const c = await ctx.open();
  const payload = Buffer.concat([kosme, hex('f4 90 80 80'), Buffer.from('edited')]);
  const whole = text(payload);
  const headerAndKey = 2 + 4;
  // Header, mask key and the payload up to and including the invalid bytes; the rest never sent.
  await c.send(whole.subarray(0, headerAndKey + kosme.length + 4));
  await c.expectClose(1007, 1500);
  await ctx.witnessOk();
});

test('6.4.4 as 6.4.3, the first invalid byte alone in its own write: close 1007', async () => {
  const c = await ctx.open();
  const payload = Buffer.concat([kosme, hex('f4 90 80 80'), Buffer.from('edited')]);
  const whole = text(payload);
  await c.send(whole.subarray(0, 6 + kosme.length));
  await sleep(100);
  await c.send(whole.subarray(6 + kosme.length, 6 + kosme.length + 1));
  await sleep(50);
  await c.send(whole.subarray(6 + kosme.length + 1, 6 + kosme.length + 2));
  await c.expectClose(1007, 1500);
  await ctx.witnessOk();
});

test('6.4.5 fail fast inside a large announced frame (4000 bytes), bad byte early: close 1007', async () => {
  const c = await ctx.open();
  const payload = Buffer.alloc(4000, 0x61);
  payload[10] = 0xff;
  await c.send(text(payload).subarray(0, 4 + 4 + 20));
  await c.expectClose(1007, 1500);
  await ctx.witnessOk();
});

// ---- 6.5 .. 6.10, 6.22, 6.23: valid code points and boundaries ----

const valid = [
  ['6.5.1', 'κόσμε', 'ce ba e1 bd b9 cf 83 ce bc ce b5'],
  ['6.5.2', 'emoji U+1F600', 'f0 9f 98 80'],
  ['6.7.1', 'first 1-byte U+0000', '00'],
  ['6.7.2', 'first 2-byte U+0080', 'c2 80'],
  ['6.7.3', 'first 3-byte U+0800', 'e0 a0 80'],
  ['6.7.4', 'first 4-byte U+10000', 'f0 90 80 80'],
  ['6.9.1', 'last 1-byte U+007F', '7f'],
  ['6.9.2', 'last 2-byte U+07FF', 'df bf'],
  ['6.9.3', 'last 3-byte U+FFFF', 'ef bf bf'],
  ['6.9.4', 'last 4-byte U+10FFFF', 'f4 8f bf bf'],
  ['6.10.1', 'U+D7FF', 'ed 9f bf'],
  ['6.10.2', 'U+E000', 'ee 80 80'],
  ['6.10.3', 'U+FFFD', 'ef bf bd'],
  ['6.22.1', 'noncharacter U+FFFE', 'ef bf be'],
  ['6.22.2', 'noncharacter U+FDD0', 'ef b7 90'],
  ['6.22.3', 'noncharacter U+1FFFE', 'f0 9f bf be'],
  ['6.22.4', 'noncharacter U+10FFFE', 'f4 8f bf be'],
  ['6.23.1', 'BOM U+FEFF', 'ef bb bf'],
];

for (const [id, name, bytes] of valid) {
  test(`${id} valid UTF-8 ${name}: accepted in one frame and in 1-byte fragments`, async () => {
    const b = hex(bytes);
    await expectAcceptedRaw(text(b));
    await expectAcceptedRaw(byteFragments(Buffer.concat([Buffer.from('x'), b, Buffer.from('y')])));
  });
}

test('6.5.3 valid code points inside a JSON ping (excluding controls): pong', async () => {
  const c = await ctx.open();
  const inJson = valid.filter(([, , b]) => !['00', '7f'].includes(b)).map(([, , b]) => hex(b));
  await c.send(text(wrapped(Buffer.concat(inJson))));
  await ctx.expectPongs(c);
});

// ---- 6.6 all prefixes of "κόσμε": cut inside a code point is invalid at the end of the message ----

test('6.6.x every prefix of "κόσμε" as a whole message: complete ones accepted, cut ones 1007', async () => {
  const bounds = new Set([0, 2, 5, 7, 9, 11]);
  for (let n = 1; n <= kosme.length; n++) {
    const p = kosme.subarray(0, n);
    if (bounds.has(n)) {
      await expectAcceptedRaw(text(p));
    } else {
      await ctx.violation(text(p), 1007);
    }
  }
});

// ---- 6.8, 6.11 .. 6.21: invalid sequences ----

const invalid = [
  ['6.8.1', '5-byte sequence U+200000', 'f8 88 80 80 80'],
  ['6.8.2', '6-byte sequence U+4000000', 'fc 84 80 80 80 80'],
  ['6.11.1', 'U+110000 (above the range)', 'f4 90 80 80'],
  ['6.11.2', 'U+1FFFFF', 'f7 bf bf bf'],
  ['6.12.1', 'lone continuation 80', '80'],
  ['6.12.2', 'lone continuation bf', 'bf'],
  ['6.12.3', '2 continuations', '80 bf'],
  ['6.12.4', '6 continuations', '80 bf 80 bf 80 bf'],
  ['6.13.1', 'lonely 2-byte start then space', 'c2 20'],
  ['6.13.2', 'lonely 3-byte start then space', 'e0 20'],
  ['6.13.3', 'lonely 4-byte start then space', 'f0 20'],
  ['6.13.4', 'lonely 5-byte start then space', 'f8 20'],
  ['6.14.1', '2-byte sequence, last byte missing (mid message)', 'df 41'],
  ['6.14.2', '3-byte sequence, last byte missing (mid message)', 'ef bf 41'],
  ['6.14.3', '4-byte sequence, last byte missing (mid message)', 'f4 8f bf 41'],
  ['6.14.4', '3-byte sequence truncated at message end', 'ef bf'],
  ['6.14.5', '4-byte sequence truncated at message end', 'f0 9f 98'],
  ['6.15.1', 'concatenated incomplete sequences', 'c0 e0 80 f0 80 80 f8 80 80 80 fc 80 80 80 80 df ef bf f7 bf bf'],
  ['6.16.1', 'impossible byte fe', 'fe'],
  ['6.16.2', 'impossible byte ff', 'ff'],
  ['6.16.3', 'fe fe ff ff', 'fe fe ff ff'],
  ['6.17.1', 'overlong "/" in 2 bytes', 'c0 af'],
  ['6.17.2', 'overlong "/" in 3 bytes', 'e0 80 af'],
  ['6.17.3', 'overlong "/" in 4 bytes', 'f0 80 80 af'],
  ['6.17.4', 'overlong "/" in 5 bytes', 'f8 80 80 80 af'],
  ['6.18.1', 'maximum overlong 2 bytes', 'c1 bf'],
  ['6.18.2', 'maximum overlong 3 bytes', 'e0 9f bf'],
  ['6.18.3', 'maximum overlong 4 bytes', 'f0 8f bf bf'],
  ['6.19.1', 'overlong NUL 2 bytes', 'c0 80'],
  ['6.19.2', 'overlong NUL 3 bytes', 'e0 80 80'],
  ['6.19.3', 'overlong NUL 4 bytes', 'f0 80 80 80'],
  ['6.20.1', 'surrogate U+D800', 'ed a0 80'],
  ['6.20.2', 'surrogate U+DB7F', 'ed ad bf'],
  ['6.20.3', 'surrogate U+DB80', 'ed ae 80'],
  ['6.20.4', 'surrogate U+DBFF', 'ed af bf'],
  ['6.20.5', 'surrogate U+DC00', 'ed b0 80'],
  ['6.20.6', 'surrogate U+DF80', 'ed be 80'],
  ['6.20.7', 'surrogate U+DFFF', 'ed bf bf'],
  ['6.21.1', 'paired surrogates U+D800 U+DC00', 'ed a0 80 ed b0 80'],
  ['6.21.2', 'paired surrogates U+DBFF U+DFFF', 'ed af bf ed bf bf'],
  ['6.21.3', 'valid text then ff', '48 65 6c 6c 6f ff'],
];

for (const [id, name, bytes] of invalid) {
  test(`${id} invalid UTF-8: ${name}: close 1007 (one frame, and 1-byte fragments)`, async () => {
    const b = hex(bytes);
    await ctx.violation(text(b), 1007);
    if (b.length > 1) await ctx.violation(byteFragments(b), 1007);
  });
}

// ---- split code points across fragments ----

test('6.24.1 code point split across fragments, completed correctly: pong', async () => {
  const c = await ctx.open();
  const w = wrapped(hex('f0 9f 98 80'));
  const at = w.indexOf(hex('f0')) + 2; // f0 9f | 98 80
  await c.send(text(w.subarray(0, at), { fin: false }), cont(w.subarray(at)));
  await ctx.expectPongs(c);
});

test('6.24.2 code point split across fragments, second half invalid: close 1007', async () => {
  await ctx.violation([text(Buffer.from([0x41, 0xe2, 0x82]), { fin: false }), cont(Buffer.from([0x41, 0x41]))], 1007);
});

test('6.24.3 fragment ends mid code point and the message ends there: close 1007', async () => {
  await ctx.violation([text(Buffer.from('abc'), { fin: false }), cont(hex('e2 82'))], 1007);
});

test('6.24.4 surrogate split across 3 fragments: close 1007', async () => {
  await ctx.violation([text(hex('41 ed'), { fin: false }), cont(hex('a0'), { fin: false }), cont(hex('80'))], 1007);
});

test('6.24.5 split code point with a ping between the fragments: pong frame, then pong envelope', async () => {
  const c = await ctx.open();
  const w = wrapped(kosme);
  const at = w.indexOf(kosme) + 1;
  await c.send(text(w.subarray(0, at), { fin: false }), ping('mid'), cont(w.subarray(at)));
  await ctx.expectControlPongs(c, ['mid']);
  assert.equal((await c.readJson()).type, 'pong');
});
