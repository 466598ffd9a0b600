// WebSocket protocol handling on the wire (raw TCP client with hand-built frames):
// - violations fail the connection with the RFC 6455 close code: unmasked client frame -> 1002,
//   invalid UTF-8 in a text frame -> 1007, ping with a 200-byte payload -> 1002, reserved opcode -> 1002,
//   RSV bit without an extension -> 1002, continuation without a start -> 1002, fragmented ping -> 1002;
//   in every case a normal client in the same room keeps chatting;
// - valid but unusual framing works: a chat split in fragments with a ping in between, a close
//   handshake initiated by the client (the server answers with a close frame and ends TCP).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { withServer, killAll } from './lib/server.mjs';
import { connect } from './lib/client.mjs';
import { rawConnect, OP } from './lib/raw.mjs';

after(killAll);

const chat = (text) => Buffer.from(JSON.stringify({ type: 'chat', data: { text } }));

const violations = [
  {
    name: 'unmasked client frame',
    code: 1002,
    send: (r) => r.sendFrame({ opcode: OP.TEXT, payload: chat('unmasked'), mask: false }),
  },
  {
    name: 'invalid UTF-8 in a text frame',
    code: 1007,
    send: (r) =>
      r.sendFrame({
        opcode: OP.TEXT,
        payload: Buffer.concat([Buffer.from('{"type":"chat","data":{"text":"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}}')]),
      }),
  },
  {
    name: 'ping with a 200-byte payload',
    code: 1002,
    send: (r) => r.sendFrame({ opcode: OP.PING, payload: Buffer.alloc(200, 0x61) }),
  },
  {
    name: 'reserved opcode 0x3',
    code: 1002,
    send: (r) => r.sendFrame({ opcode: 0x3, payload: Buffer.from('x') }),
  },
  {
    name: 'reserved control opcode 0xB',
    code: 1002,
    send: (r) => r.sendFrame({ opcode: 0xb, payload: Buffer.from('x') }),
  },
  {
    name: 'RSV1 set without a negotiated extension',
    code: 1002,
    send: (r) => r.sendFrame({ opcode: OP.TEXT, payload: chat('rsv'), rsv: 4 }),
  },
  {
    name: 'continuation frame without a start',
    code: 1002,
    send: (r) => r.sendFrame({ opcode: OP.CONT, payload: chat('orphan') }),
  },
  {
    name: 'fragmented ping',
    code: 1002,
    send: (r) => r.sendFrame({ opcode: OP.PING, payload: Buffer.from('ab'), fin: false }),
  },
];

for (const v of violations) {
  test(`${v.name} -> close ${v.code}; a normal client keeps chatting`, () =>
    withServer([], async (s, clients) => {
      const a = await connect(s, '/ws/wire');
      const b = await connect(s, '/ws/wire');
      clients.push(a, b);
      const raw = await rawConnect(s.port, '/ws/wire');
      clients.push(raw);
      await raw.nextMessage((m) => m.data?.event === 'welcome', 3000);
      v.send(raw);
      const cf = await raw.waitCloseFrame(5000);
      assert.ok(cf, 'the server sends a close frame before closing TCP');
      assert.equal(cf.code, v.code, `close code ${cf.code} (${cf.reason})`);
      assert.ok(await raw.waitEnd(5000), 'TCP closed after the close frame');
      // the others are unaffected
      a.send({ type: 'chat', data: { text: 'still here' } });
      await b.next((m) => m.type === 'chat' && m.data?.text === 'still here');
      await a.next((m) => m.type === 'chat' && m.data?.text === 'still here');
      assert.ok(a.isOpen && b.isOpen);
    }));
}

test('a chat split in fragments, with a ping in between, is delivered whole; the ping is ponged', () =>
  withServer([], async (s, clients) => {
    const b = await connect(s, '/ws/frag');
    clients.push(b);
    const raw = await rawConnect(s.port, '/ws/frag');
    clients.push(raw);
    await raw.nextMessage((m) => m.data?.event === 'welcome', 3000);
    const whole = chat('fragmented hello');
    raw.sendFrame({ opcode: OP.TEXT, payload: whole.subarray(0, 10), fin: false });
    raw.sendFrame({ opcode: OP.PING, payload: Buffer.from('probe') });
    raw.sendFrame({ opcode: OP.CONT, payload: whole.subarray(10, 20), fin: false });
    raw.sendFrame({ opcode: OP.CONT, payload: whole.subarray(20), fin: true });
    const pong = await raw.nextFrame((f) => f.opcode === OP.PONG, 3000);
    assert.equal(pong.payload.toString(), 'probe', 'pong echoes the ping payload');
    assert.equal(pong.masked, false, 'server frames are not masked');
    await b.next((m) => m.type === 'chat' && m.data?.text === 'fragmented hello');
    await raw.nextMessage((m) => m.type === 'chat' && m.data?.text === 'fragmented hello', 3000);
  }));

test('client-initiated close: the server answers with a close frame and ends TCP', () =>
  withServer([], async (s, clients) => {
    const raw = await rawConnect(s.port, '/ws/bye');
    clients.push(raw);
    await raw.nextMessage((m) => m.data?.event === 'welcome', 3000);
    const payload = Buffer.alloc(2);
    payload.writeUInt16BE(1000, 0);
    raw.sendFrame({ opcode: OP.CLOSE, payload });
    const cf = await raw.waitCloseFrame(3000);
    assert.ok(cf, 'close frame answered');
    assert.equal(cf.code, 1000);
    assert.ok(await raw.waitEnd(5000), 'TCP closed');
  }));
