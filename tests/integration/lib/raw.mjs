// Raw TCP WebSocket client (node:net) for tests that must misbehave on the wire: hand-built frames
// (unmasked, reserved opcodes, bad UTF-8, oversized control frames), never answering pings, or
// never reading at all (slow consumer).
//
// rawConnect(port, path, {headers}) does the HTTP/1.1 upgrade by hand, checks 101 and
// Sec-WebSocket-Accept, and returns a RawSocket that parses the server's frames into `frames`.

import net from 'node:net';
import crypto from 'node:crypto';

export const OP = { CONT: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa };

/** Encode one frame. mask: true (client default) or false; rsv: bits 0..7 placed in RSV1-3. */
export function encodeFrame({ opcode = OP.TEXT, payload = Buffer.alloc(0), fin = true, mask = true, rsv = 0 } = {}) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const len = data.length;
  let header;
  if (len < 126) {
    header = Buffer.alloc(2);
    header[1] = len;
  } else if (len < 65536) {
    header = Buffer.alloc(4);
    header[1] = 126;
    header.writeUInt16BE(len, 2);
  } else {
    header = Buffer.alloc(10);
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(len), 2);
  }
  header[0] = (fin ? 0x80 : 0) | ((rsv & 0x7) << 4) | (opcode & 0x0f);
  if (!mask) return Buffer.concat([header, data]);
  header[1] |= 0x80;
  const key = crypto.randomBytes(4);
  const masked = Buffer.alloc(len);
  for (let i = 0; i < len; i++) masked[i] = data[i] ^ key[i & 3];
  return Buffer.concat([header, key, masked]);
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
    for (;;) {
      const b = this.buf;
      if (b.length < 2) break;
      const fin = (b[0] & 0x80) !== 0;
      const opcode = b[0] & 0x0f;
      const masked = (b[1] & 0x80) !== 0;
      let len = b[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) break;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) break;
        len = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      let key;
      if (masked) {
        if (b.length < off + 4) break;
        key = b.subarray(off, off + 4);
        off += 4;
      }
      if (b.length < off + len) break;
      let payload = Buffer.from(b.subarray(off, off + len));
      if (masked) for (let i = 0; i < payload.length; i++) payload[i] ^= key[i & 3];
      this.buf = b.subarray(off + len);
      const frame = { fin, opcode, payload, masked };
      this.frames.push(frame);
      if (opcode === OP.CLOSE && !this.closeFrame) {
        this.closeFrame = payload.length >= 2
          ? { code: payload.readUInt16BE(0), reason: payload.subarray(2).toString() }
          : { code: 1005, reason: '' };
      }
      if (opcode === OP.PING && this.autoPong && !this.sock.destroyed) {
        this.sock.write(encodeFrame({ opcode: OP.PONG, payload }));
      }
    }
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
export function rawConnect(port, path = '/ws', { headers = {}, host = '127.0.0.1', timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const key = crypto.randomBytes(16).toString('base64');
    const sock = net.connect({ port, host });
    sock.setNoDelay(true);
    let head = Buffer.alloc(0);
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error('raw handshake timed out'));
    }, timeoutMs);
    const onData = (d) => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      sock.removeListener('data', onData);
      sock.removeListener('error', onError);
      clearTimeout(timer);
      const text = head.subarray(0, end).toString('latin1');
      const leftover = head.subarray(end + 4);
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      const accept = crypto
        .createHash('sha1')
        .update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11')
        .digest('base64');
      const acceptHdr = /\r\nsec-websocket-accept:\s*(\S+)/i.exec(text)?.[1];
      if (status !== 101 || acceptHdr !== accept) {
        sock.destroy();
        const e = new Error(`raw handshake failed: ${text.split('\r\n')[0]} (accept ${acceptHdr} vs ${accept})`);
        e.status = status;
        e.head = text;
        reject(e);
        return;
      }
      resolve(new RawSocket(sock, Buffer.from(leftover)));
    };
    const onError = (e) => {
      clearTimeout(timer);
      reject(e);
    };
    sock.on('data', onData);
    sock.on('error', onError);
    sock.on('connect', () => {
      const extra = Object.entries(headers)
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('');
      sock.write(
        `GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`,
      );
    });
  });
}

/** Send a raw HTTP request and read the whole answer (connection: close). Resolves {status, head, body}. */
export function rawHttp(port, requestText, { host = '127.0.0.1', timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host });
    let data = Buffer.alloc(0);
    const timer = setTimeout(() => {
      sock.destroy();
      finish();
    }, timeoutMs);
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const text = data.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      const head = end >= 0 ? text.slice(0, end) : text;
      const body = end >= 0 ? text.slice(end + 4) : '';
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0);
      resolve({ status, head, body });
    };
    sock.on('connect', () => sock.write(requestText));
    sock.on('data', (d) => {
      data = Buffer.concat([data, d]);
    });
    sock.on('end', finish);
    sock.on('close', finish);
    sock.on('error', (e) => {
      if (data.length) finish();
      else {
        clearTimeout(timer);
        done = true;
        reject(e);
      }
    });
  });
}
