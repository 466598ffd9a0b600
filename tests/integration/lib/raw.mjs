// Raw TCP WebSocket client for tests that must misbehave on the wire: hand-built frames
// (unmasked, reserved opcodes, bad UTF-8, oversized control frames), never answering pings, or
// never reading at all (slow consumer). Framing and the handshake are the shared ones
// (../../support/node/raw.mjs); RawSocket keeps every server frame in `frames` and finds in it.
//
// rawConnect(port, path, {headers}) does the HTTP/1.1 upgrade by hand, checks 101 and
// Sec-WebSocket-Accept, and returns a RawSocket that parses the server's frames into `frames`.

import crypto from 'node:crypto';
import { frame, parseServerFrames, upgrade } from '../../support/node/raw.mjs';

export const OP = { CONT: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa };

/** Encode one frame. mask: true (client default) or false; rsv: bits 0..7 placed in RSV1-3. */
export function encodeFrame({ opcode = OP.TEXT, payload = Buffer.alloc(0), fin = true, mask = true, rsv = 0 } = {}) {
  return frame({ op: opcode, payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload), fin, mask, rsv, maskKey: crypto.randomBytes(4) });
}

export class RawSocket {
  constructor(sock, leftover) {
    this.sock = sock;
    this.buf = leftover ?? Buffer.alloc(0);
    this.frames = []; // {fin, opcode, payload}
    this.closeFrame = null; // {code, reason}
    this.ended = false; // TCP closed by peer (or errored)
    this.bytesReceived = this.buf.length;
    this.waiters = [];
    this.autoPong = false;
    this.endPromise = new Promise((resolve) => {
      const done = () => {
        this.ended = true;
        resolve();
        this._notify();
      };
      sock.on('end', done);
      sock.on('close', done);
      sock.on('error', (e) => {
        this.error = e;
        done();
      });
    });
    sock.on('data', (d) => {
      this.bytesReceived += d.length;
      this.buf = Buffer.concat([this.buf, d]);
      this._parse();
    });
    this._parse();
  }

  _parse() {
    const state = { buf: this.buf };
    for (const f of parseServerFrames(state)) {
      const { fin, opcode, payload, masked } = f;
      this.frames.push({ fin, opcode, payload, masked });
      if (opcode === OP.CLOSE && !this.closeFrame) {
        this.closeFrame = f.code !== null ? { code: f.code, reason: payload.subarray(2).toString() } : { code: 1005, reason: '' };
      }
      if (opcode === OP.PING && this.autoPong && !this.sock.destroyed) {
        this.sock.write(encodeFrame({ opcode: OP.PONG, payload }));
      }
    }
    this.buf = state.buf;
    this._notify();
  }

  _notify() {
    for (const w of this.waiters.slice()) {
      const r = w.check();
      if (r !== undefined) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(r);
      }
    }
  }

  _wait(check, timeoutMs, desc) {
    const r = check();
    if (r !== undefined) return Promise.resolve(r);
    return new Promise((resolve, reject) => {
      const w = { check };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`raw socket: timed out after ${timeoutMs} ms waiting for ${desc}`));
      }, timeoutMs);
      w.resolve = (v) => {
        clearTimeout(timer);
        resolve(v);
      };
      this.waiters.push(w);
    });
  }

  /** Text frames parsed as JSON, in order. */
  messages() {
    const out = [];
    for (const f of this.frames) {
      if (f.opcode !== OP.TEXT) continue;
      try {
        out.push(JSON.parse(f.payload.toString()));
      } catch {
        /* ignore */
      }
    }
    return out;
  }

  /** Wait for a parsed text message matching pred. */
  nextMessage(pred, timeoutMs = 3000) {
    return this._wait(() => this.messages().find(pred), timeoutMs, 'a matching text message');
  }

  /** Wait for a frame matching pred. */
  nextFrame(pred, timeoutMs = 3000) {
    return this._wait(() => this.frames.find(pred), timeoutMs, 'a matching frame');
  }

  /** Wait for the server's close frame: {code, reason}. Fails if TCP ends without one. */
  waitCloseFrame(timeoutMs = 5000) {
    return this._wait(
      () => {
        if (this.closeFrame) return this.closeFrame;
        if (this.ended) return null;
        return undefined;
      },
      timeoutMs,
      'a close frame',
    );
  }

  /** Wait until the TCP connection is closed by the peer. Resolves true, or false on timeout. */
  async waitEnd(timeoutMs = 5000) {
    let timer;
    const r = await Promise.race([
      this.endPromise.then(() => true),
      new Promise((res) => {
        timer = setTimeout(() => res(false), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    return r;
  }

  write(buf) {
    this.sock.write(buf);
  }

  sendFrame(opts) {
    this.sock.write(encodeFrame(opts));
  }

  sendText(text, opts = {}) {
    this.sendFrame({ opcode: OP.TEXT, payload: Buffer.from(text), ...opts });
  }

  sendJson(obj, opts = {}) {
    this.sendText(JSON.stringify(obj), opts);
  }

  pause() {
    this.sock.pause();
  }

  resume() {
    this.sock.resume();
  }

  destroy() {
    this.sock.destroy();
  }
}

/**
 * Connect with a hand-made HTTP upgrade. Resolves a RawSocket after a 101 with the right
 * Sec-WebSocket-Accept; rejects (err.status, err.head) otherwise.
 */
export async function rawConnect(port, path = '/ws', { headers = {}, host = '127.0.0.1', timeoutMs = 5000 } = {}) {
  const { sock, rest } = await upgrade(port, { path, host, timeoutMs, headers: { Host: `${host}:${port}`, ...headers } });
  return new RawSocket(sock, rest);
}
