// Client mistakes answered with an `error` envelope {"error": text, "code": code}, socket kept open:
// - malformed JSON -> invalid_json (a following ping still gets pong);
// - unknown type -> unknown_type;
// - type "system" / "notification" from a client -> forbidden (and not broadcast);
// - a binary frame -> unsupported;
// - wrong field types ("room": 5 on chat, "room": [..] on join) -> invalid_message.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { withServer, killAll } from './lib/server.mjs';
import { connect, sleep, TS_RE } from './lib/client.mjs';

after(killAll);


async function expectError(client, code, what) {
  const e = await client.next({ type: 'error' }, 3000, `error ${code} for ${what}`);
  assert.equal(e.data?.code, code, `${what}: ${JSON.stringify(e)}`);
  assert.equal(typeof e.data.error, 'string', 'error carries human text');
  assert.ok(e.data.error.length > 0);
  assert.match(e.timestamp, TS_RE);
  assert.ok(e.id, 'error has an id');
  // the socket stays open and is still served
  await client.roundTrip();
  assert.ok(client.isOpen, `socket open after ${what}`);
  return e;
}

test('malformed JSON -> error invalid_json, socket stays open', () =>
  withServer([], async (s, clients) => {
    const a = await connect(s, '/ws/err');
    clients.push(a);
    a.send('{"type": "chat", ');
    await expectError(a, 'invalid_json', 'truncated JSON');
    a.send('not json at all');
    await expectError(a, 'invalid_json', 'plain text');
  }));

test('unknown type -> error unknown_type', () =>
  withServer([], async (s, clients) => {
    const a = await connect(s, '/ws/err');
    clients.push(a);
    a.send({ type: 'teleport', data: {} });
    await expectError(a, 'unknown_type', 'type teleport');
  }));

test('type system / notification from a client -> forbidden, not broadcast', () =>
  withServer([], async (s, clients) => {
    const a = await connect(s, '/ws/err');
    const b = await connect(s, '/ws/err');
    clients.push(a, b);
    a.send({ type: 'system', data: { event: 'welcome', text: 'spoof' } });
    await expectError(a, 'forbidden', 'type system');
    a.send({ type: 'notification', data: { text: 'spoof' } });
    await expectError(a, 'forbidden', 'type notification');
    await b.roundTrip();
    await sleep(200);
    assert.deepEqual(b.seen((m) => m.data?.text === 'spoof'), [], 'forbidden messages are not delivered');
  }));

test('binary frame -> error unsupported, socket stays open', () =>
  withServer([], async (s, clients) => {
    const a = await connect(s, '/ws/err');
    clients.push(a);
    a.sendBinary(Buffer.from(JSON.stringify({ type: 'chat', data: { text: 'bin' } })));
    await expectError(a, 'unsupported', 'binary frame');
  }));

test('wrong field types -> error invalid_message, socket stays open', () =>
  withServer([], async (s, clients) => {
    const a = await connect(s, '/ws/err');
    const b = await connect(s, '/ws/err');
    clients.push(a, b);
    a.send({ type: 'chat', room: 5, data: { text: 'numeric room' } });
    await expectError(a, 'invalid_message', '"room": 5');
    a.send({ type: 'join', room: ['err'] });
    await expectError(a, 'invalid_message', 'join with "room": [..]');
    await b.roundTrip();
    await sleep(200);
    assert.deepEqual(b.seen((m) => m.type === 'chat'), [], 'invalid messages are not delivered');
    // and a valid chat still works afterwards
    a.send({ type: 'chat', data: { text: 'fine' } });
    await b.next((m) => m.type === 'chat' && m.data?.text === 'fine');
  }));
