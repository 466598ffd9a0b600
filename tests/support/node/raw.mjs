// Raw RFC 6455 on node:net for the Node suites: every byte on the wire is built here, so a test can
// send exactly what it means (bad bits, lying lengths, chopped frames, unmasked frames), do the
// HTTP upgrade by hand, and see the server's frames as they are. Node built-ins only.
//
// frame({op, payload, fin, rsv, mask, maskKey, len}) -> Buffer: one client frame (masked by default).
// upgradeRequest(path, {headers, key, version, omit}) -> string: a hand-made HTTP/1.1 upgrade.
// upgrade(port, {path, headers, extra, request}) -> {sock, res, rest} after a 101 with the right
//   Sec-WebSocket-Accept (HandshakeError otherwise). parseServerFrames(state) -> frames read off
//   state.buf ({fin, rsv, op, opcode, masked, payload, code, reason, text}).
// RawClient.open(port, {path, headers, extra}) -> RawClient after a 101 (extra: bytes sent in the
//   same write as the request). openClient(port, path) also consumes the welcome.
// RawClient: read(ms) next server frame in order; readJson(ms); expectJson(pred, ms) skipping other
//   frames; expectClose(codes, ms) -> {code, reason, before} and waits for the TCP close;
//   expectSilence(ms); send(buf); sendChopped(buf, chunk, delayMs).
// httpExchange(port, bytes, opts) -> {status, headers, body, raw, closed}: one raw HTTP exchange.

import net from 'node:net';
import crypto from 'node:crypto';
import assert from 'node:assert/strict';
import { sleep } from './server.mjs';

export { sleep };

export const OP = { cont: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa };
export const RSV1 = 4;
export const RSV2 = 2;
export const RSV3 = 1;
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export function toBuf(p) {
  if (p === undefined || p === null) return Buffer.alloc(0);
  if (Buffer.isBuffer(p)) return p;
  if (p instanceof Uint8Array) return Buffer.from(p);
  if (typeof p === 'object') return Buffer.from(JSON.stringify(p), 'utf8');
  return Buffer.from(String(p), 'utf8');
}

let maskCounter = 0x37fa213d;
function nextMaskKey() {
  // Deterministic, never zero, changes per frame: reproducible bytes on the wire.
  maskCounter = (Math.imul(maskCounter, 1103515245) + 12345) >>> 0;
  return Buffer.from([(maskCounter >>> 24) | 1, maskCounter >>> 16, maskCounter >>> 8, maskCounter]);
}

/**
 * One client frame. op: opcode (0..15); payload: Buffer | string | object (JSON); fin (default true);
 * rsv: 3-bit value (RSV1=4, RSV2=2, RSV3=1); mask (default true); maskKey: 4-byte Buffer;
 * len: the payload length announced in the header (default: the real one); lenBytes: force the
 * 16-bit (2) or 64-bit (8) encoding.
 */
export function frame({ op, payload, fin = true, rsv = 0, mask = true, maskKey, len, lenBytes } = {}) {
  const body = toBuf(payload);
  const announced = len ?? body.length;
  const b0 = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (op & 0x0f);
  let header;
  const mbit = mask ? 0x80 : 0;
  if (lenBytes === undefined) lenBytes = announced < 126 ? 0 : announced <= 0xffff ? 2 : 8;
  if (lenBytes === 0) {
    header = Buffer.from([b0, mbit | announced]);
  } else if (lenBytes === 2) {
    header = Buffer.from([b0, mbit | 126, (announced >> 8) & 0xff, announced & 0xff]);
  } else {
    header = Buffer.alloc(10);
    header[0] = b0;
    header[1] = mbit | 127;
    header.writeBigUInt64BE(BigInt(announced), 2);
  }
  if (!mask) return Buffer.concat([header, body]);
  const key = maskKey ?? nextMaskKey();
  const masked = Buffer.alloc(body.length);
  for (let i = 0; i < body.length; i++) masked[i] = body[i] ^ key[i & 3];
  return Buffer.concat([header, key, masked]);
}

export const text = (payload, opts = {}) => frame({ op: OP.text, payload, ...opts });
export const cont = (payload, opts = {}) => frame({ op: OP.cont, payload, ...opts });
export const ping = (payload, opts = {}) => frame({ op: OP.ping, payload, ...opts });
export const pong = (payload, opts = {}) => frame({ op: OP.pong, payload, ...opts });
export const binary = (payload, opts = {}) => frame({ op: OP.binary, payload, ...opts });
/** A close frame: code (undefined = empty payload) and reason (string or Buffer). */
export function close(code, reason = '', opts = {}) {
  if (code === undefined) return frame({ op: OP.close, ...opts });
  const r = toBuf(reason);
  const p = Buffer.alloc(2 + r.length);
  p.writeUInt16BE(code, 0);
  r.copy(p, 2);
  return frame({ op: OP.close, payload: p, ...opts });
}

/** The application-level ping: answered by a `pong` envelope. pad: trailing spaces (valid JSON). */
export function appPing(pad = 0, extra = '') {
  return Buffer.from(`{"type":"ping"${extra}}` + ' '.repeat(pad), 'utf8');
}
/** An app ping of exactly n bytes. */
export function appPingOfSize(n) {
  const base = appPing();
  assert.ok(n >= base.length, `app ping needs at least ${base.length} bytes`);
  return appPing(n - base.length);
}

export function makeKey() {
  return crypto.randomBytes(16).toString('base64');
}
export function acceptFor(key) {
  return crypto.createHash('sha1').update(key + GUID).digest('base64');
}

/**
 * A hand-made upgrade request. headers: extra headers (object; a value of null omits a default);
 * version: Sec-WebSocket-Version (default 13); httpVersion: default 'HTTP/1.1'; method: 'GET'.
 */
export function upgradeRequest(path = '/ws', { headers = {}, key = makeKey(), version = '13', httpVersion = 'HTTP/1.1', method = 'GET' } = {}) {
  const h = {
    Host: '127.0.0.1',
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': key,
    'Sec-WebSocket-Version': version,
    ...headers,
  };
  let s = `${method} ${path} ${httpVersion}\r\n`;
  for (const [k, v] of Object.entries(h)) {
    if (v === null || v === undefined) continue;
    for (const one of Array.isArray(v) ? v : [v]) s += `${k}: ${one}\r\n`;
  }
  return s + '\r\n';
}

/** Parses one HTTP response head + Content-Length body from buf; null when incomplete. */
export function parseHttpResponse(buf) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const head = buf.subarray(0, end).toString('latin1');
  const lines = head.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
  if (!m) return { status: -1, headers: {}, body: '', headEnd: end + 4, rest: buf.subarray(end + 4), statusLine: lines[0] };
  const headers = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  const status = Number(m[1]);
  let bodyLen = 0;
  if (status !== 101 && headers['content-length'] !== undefined) bodyLen = Number(headers['content-length']);
  if (buf.length < end + 4 + bodyLen) return null;
  return {
    status,
    statusLine: lines[0],
    headers,
    body: buf.subarray(end + 4, end + 4 + bodyLen).toString('utf8'),
    rest: buf.subarray(end + 4 + bodyLen),
  };
}

export class HandshakeError extends Error {
  constructor(res, raw) {
    super(`upgrade refused: ${res ? `${res.status} ${res.body}` : 'no HTTP answer'}`);
    this.status = res ? res.status : 0;
    this.body = res ? res.body : '';
    this.headers = res ? res.headers : {};
    this.raw = raw;
    this.head = raw ? raw.toString('latin1').split('\r\n\r\n')[0] : '';
  }
}

/**
 * Server frame parser over an accumulating buffer: takes every complete frame off state.buf.
 * Close frames get .code (null when empty) and .reason; text frames .text.
 */
export function parseServerFrames(state) {
  const out = [];
  for (;;) {
    const b = state.buf;
    if (b.length < 2) break;
    const fin = (b[0] & 0x80) !== 0;
    const rsv = (b[0] >> 4) & 7;
    const op = b[0] & 0x0f;
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
    if (masked) off += 4;
    if (b.length < off + len) break;
    let payload = Buffer.from(b.subarray(off, off + len));
    if (masked) {
      const key = b.subarray(off - 4, off);
      for (let i = 0; i < payload.length; i++) payload[i] ^= key[i & 3];
    }
    state.buf = b.subarray(off + len);
    const f = { fin, rsv, op, opcode: op, masked, payload };
    if (op === OP.close) {
      f.code = payload.length >= 2 ? payload.readUInt16BE(0) : null;
      f.reason = payload.length > 2 ? payload.subarray(2).toString('utf8') : '';
    }
    if (op === OP.text) f.text = payload.toString('utf8');
    out.push(f);
  }
  return out;
}

export function describe(f) {
  if (!f) return 'nothing';
  const names = { 0: 'cont', 1: 'text', 2: 'binary', 8: 'close', 9: 'ping', 10: 'pong' };
  const n = names[f.op] ?? `op${f.op}`;
  if (f.op === OP.close) return `close(${f.code}${f.reason ? `, "${f.reason}"` : ''})`;
  if (f.op === OP.text) return `text ${f.text.slice(0, 200)}`;
  return `${n}[${f.payload.length}]`;
}

/**
 * Opens a TCP connection and performs the WebSocket upgrade by hand. opts: path, headers, extra
 * (Buffer sent right after the request in the same write), request (a full custom request string),
 * timeoutMs, host, key. Resolves {sock, res, rest} (rest: bytes read past the 101 head) after a 101
 * with the right Sec-WebSocket-Accept and `Upgrade: websocket`; rejects with HandshakeError (its
 * .status, .body, .head) on any other answer.
 */
export function upgrade(port, { path = '/ws', headers = {}, extra, request, timeoutMs = 3000, host = '127.0.0.1', key } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host });
    sock.setNoDelay(true);
    let buf = Buffer.alloc(0);
    const k = key ?? makeKey();
    const timer = setTimeout(() => {
      cleanup();
      sock.destroy();
      reject(new Error(`upgrade timed out after ${timeoutMs} ms; got ${JSON.stringify(buf.toString('latin1').slice(0, 300))}`));
    }, timeoutMs);
    const onData = (d) => {
      buf = Buffer.concat([buf, d]);
      const res = parseHttpResponse(buf);
      if (!res) return;
      cleanup();
      if (res.status !== 101) {
        sock.destroy();
        reject(new HandshakeError(res, buf));
        return;
      }
      try {
        assert.equal(res.headers['sec-websocket-accept'], acceptFor(k), 'Sec-WebSocket-Accept');
        assert.equal((res.headers.upgrade || '').toLowerCase(), 'websocket');
      } catch (e) {
        sock.destroy();
        reject(e);
        return;
      }
      resolve({ sock, res, rest: Buffer.from(res.rest) });
    };
    const onEnd = () => {
      cleanup();
      reject(new HandshakeError(parseHttpResponse(buf), buf));
    };
    const onErr = (e) => {
      cleanup();
      reject(e);
    };
    function cleanup() {
      clearTimeout(timer);
      sock.off('data', onData);
      sock.off('close', onEnd);
      sock.off('error', onErr);
    }
    sock.on('data', onData);
    sock.on('close', onEnd);
    sock.on('error', onErr);
    sock.on('connect', () => {
      const req = Buffer.from(request ?? upgradeRequest(path, { headers, key: k }), 'latin1');
      sock.write(extra ? Buffer.concat([req, extra]) : req);
    });
  });
}

export class RawClient {
  constructor(sock, leftover = Buffer.alloc(0)) {
    this.sock = sock;
    this.state = { buf: Buffer.alloc(0) };
    this.frames = [];
    this.waiter = null;
    this.tcpClosed = false;
    this.tcpError = null;
    this.badServerFrames = []; // server frames that were masked or had RSV bits
    this.closedPromise = new Promise((resolve) => {
      sock.on('close', () => {
        this.tcpClosed = true;
        resolve();
        this.wake();
      });
    });
    sock.on('error', (e) => {
      this.tcpError = e;
    });
    sock.on('data', (d) => this.onData(d));
    if (leftover.length) this.onData(leftover);
  }

  onData(d) {
    this.state.buf = this.state.buf.length ? Buffer.concat([this.state.buf, d]) : Buffer.from(d);
    for (const f of parseServerFrames(this.state)) {
      if (f.masked || f.rsv) this.badServerFrames.push(f);
      this.frames.push(f);
    }
    this.wake();
  }

  wake() {
    const w = this.waiter;
    if (w) {
      this.waiter = null;
      w();
    }
  }

  /**
   * Opens a socket and performs the upgrade (see upgrade()); resolves a RawClient.
   * Throws HandshakeError when the answer is not 101 (its .status, .body).
   */
  static async open(port, opts = {}) {
    const { sock, rest } = await upgrade(port, opts);
    return new RawClient(sock, rest);
  }

  send(...bufs) {
    const b = Buffer.concat(bufs.map(toBuf));
    return new Promise((resolve) => {
      if (this.sock.destroyed || !this.sock.writable) return resolve(false);
      this.sock.write(b, () => resolve(true));
    });
  }

  /** Writes buf in pieces of `chunk` bytes, waiting delayMs between them. */
  async sendChopped(buf, chunk = 1, delayMs = 0) {
    for (let i = 0; i < buf.length; i += chunk) {
      await this.send(buf.subarray(i, i + chunk));
      if (delayMs) await sleep(delayMs);
      else await new Promise((r) => setImmediate(r));
    }
  }

  async waitEvent(deadline) {
    const left = deadline - Date.now();
    if (left <= 0) return false;
    let timer;
    await new Promise((resolve) => {
      this.waiter = resolve;
      timer = setTimeout(resolve, left);
    });
    clearTimeout(timer);
    return true;
  }

  /** The next server frame in arrival order, or throws after timeoutMs. */
  async read(timeoutMs = 2000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.frames.length) return this.frames.shift();
      if (this.tcpClosed) throw new Error('connection closed while waiting for a frame');
      if (!(await this.waitEvent(deadline))) throw new Error(`no frame within ${timeoutMs} ms`);
    }
  }

  /** The next text frame, parsed as JSON (server pings are skipped; anything else fails). */
  async readJson(timeoutMs = 2000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = await this.read(Math.max(1, deadline - Date.now()));
      if (f.op === OP.ping) continue;
      assert.equal(f.op, OP.text, `expected a text frame, got ${describe(f)}`);
      return JSON.parse(f.text);
    }
  }

  /** Reads until a JSON message matching pred ({type, ...} or function); other frames are skipped. */
  async expectJson(pred, timeoutMs = 2000) {
    const p = typeof pred === 'function' ? pred : (m) => Object.entries(pred).every(([k, v]) => (k === 'data' ? Object.entries(v).every(([dk, dv]) => m.data && m.data[dk] === dv) : m[k] === v));
    const deadline = Date.now() + timeoutMs;
    const skipped = [];
    for (;;) {
      let f;
      try {
        f = await this.read(Math.max(1, deadline - Date.now()));
      } catch (e) {
        throw new Error(`${e.message} waiting for ${typeof pred === 'function' ? 'a match' : JSON.stringify(pred)}; skipped: ${skipped.join(' | ').slice(0, 600)}`);
      }
      if (f.op === OP.close) throw new Error(`got ${describe(f)} waiting for ${JSON.stringify(pred)}; skipped: ${skipped.join(' | ')}`);
      if (f.op === OP.text) {
        const m = JSON.parse(f.text);
        if (p(m)) return m;
      }
      skipped.push(describe(f));
    }
  }

  /** Sends an app ping and waits for the pong envelope. */
  async roundTrip(timeoutMs = 2000) {
    await this.send(text(appPing()));
    return this.expectJson({ type: 'pong' }, timeoutMs);
  }

  /**
   * Reads frames until a close frame; asserts its code is one of `codes` (number, array, or null for
   * "empty payload allowed" in an array); then waits for the TCP connection to close.
   * Returns {code, reason, before} (before: frames received ahead of the close).
   */
  async expectClose(codes, timeoutMs = 2000, { tcp = true } = {}) {
    const want = Array.isArray(codes) ? codes : [codes];
    const deadline = Date.now() + timeoutMs;
    const before = [];
    for (;;) {
      let f;
      try {
        f = await this.read(Math.max(1, deadline - Date.now()));
      } catch (e) {
        throw new Error(`expected close ${want.join('|')}: ${e.message}; frames before: ${before.map(describe).join(' | ').slice(0, 600)}`);
      }
      if (f.op !== OP.close) {
        before.push(f);
        continue;
      }
      assert.ok(want.includes(f.code), `expected close ${want.join('|')}, got ${describe(f)}; frames before: ${before.map(describe).join(' | ').slice(0, 400)}`);
      if (tcp) await this.expectTcpClose(Math.max(200, deadline - Date.now()));
      return { code: f.code, reason: f.reason, before };
    }
  }

  async expectTcpClose(timeoutMs = 2000) {
    let timer;
    const ok = await Promise.race([
      this.closedPromise.then(() => true),
      new Promise((r) => {
        timer = setTimeout(() => r(false), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    assert.ok(ok, `TCP connection still open ${timeoutMs} ms after the close frame`);
  }

  /** Asserts no frame arrives within ms (server pings excepted). */
  async expectSilence(ms = 300) {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      const f = this.frames.find((x) => x.op !== OP.ping);
      if (f) assert.fail(`expected no frame, got ${describe(f)}`);
      await this.waitEvent(deadline);
    }
    const f = this.frames.find((x) => x.op !== OP.ping);
    if (f) assert.fail(`expected no frame, got ${describe(f)}`);
  }

  assertServerFramesValid() {
    assert.deepEqual(this.badServerFrames.map(describe), [], 'server frames must be unmasked with RSV bits clear');
  }

  destroy() {
    this.sock.destroy();
  }
}

/** Opens a socket on path and consumes the welcome; returns the client with .welcome. */
export async function openClient(port, path = '/ws', opts = {}) {
  const c = await RawClient.open(port, { path, ...opts });
  c.welcome = await c.expectJson({ type: 'system' }, opts.timeoutMs ?? 3000);
  assert.equal(c.welcome.data?.event, 'welcome');
  return c;
}

/**
 * A raw HTTP exchange: connects, writes bytes (string or Buffer, or an array of chunks written with
 * gapMs between them), and collects what comes back until the connection closes or idleMs passes
 * after the first complete response. Resolves {status, headers, body, raw, closed, responses}.
 */
export function httpExchange(port, bytes, { timeoutMs = 3000, idleMs = 300, gapMs = 0, host = '127.0.0.1' } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host });
    let raw = Buffer.alloc(0);
    let closed = false;
    let done = false;
    let idleTimer;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(idleTimer);
      const res = parseHttpResponse(raw);
      const responses = (raw.toString('latin1').match(/HTTP\/1\.[01] \d{3}/g) || []).length;
      sock.destroy();
      resolve({ status: res ? res.status : 0, headers: res ? res.headers : {}, body: res ? res.body : '', raw, closed, responses });
    };
    const timer = setTimeout(finish, timeoutMs);
    sock.on('data', (d) => {
      raw = Buffer.concat([raw, d]);
      if (parseHttpResponse(raw)) {
        clearTimeout(idleTimer);
        idleTimer = setTimeout(finish, idleMs);
      }
    });
    sock.on('error', () => {});
    sock.on('close', () => {
      closed = true;
      finish();
    });
    sock.on('connect', async () => {
      const chunks = Array.isArray(bytes) ? bytes : [bytes];
      for (const c of chunks) {
        if (sock.destroyed) return;
        sock.write(typeof c === 'string' ? Buffer.from(c, 'latin1') : c);
        if (gapMs) await sleep(gapMs);
      }
    });
  });
}

/** An HTTP/1.1 request string with a body (Content-Length added unless headers say otherwise). */
export function httpRequest(method, path, { headers = {}, body, contentLength = true } = {}) {
  const b = body === undefined ? null : toBuf(body);
  let s = `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n`;
  for (const [k, v] of Object.entries(headers)) {
    for (const one of Array.isArray(v) ? v : [v]) s += `${k}: ${one}\r\n`;
  }
  if (b && contentLength) s += `Content-Length: ${b.length}\r\n`;
  s += 'Connection: close\r\n\r\n';
  const head = Buffer.from(s, 'latin1');
  return b ? Buffer.concat([head, b]) : head;
}
