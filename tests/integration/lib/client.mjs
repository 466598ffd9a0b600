// WebSocket client helper for the integration suite, on the npm `ws` package.
//
// open(url, {headers}) -> Client once the socket is open (rejects with .status/.body on a refused
// upgrade). tryOpen(url, {headers}) -> {ok: true, client} | {ok: false, status, body, headers}.
// connect(server, path) opens a socket and consumes the welcome (`client.welcome`, `client.connId`,
// `client.userId`).
//
// Client: every text frame is parsed as JSON and kept in `history` (all) and an unconsumed queue.
// next(pred, timeoutMs) resolves with (and consumes) the first queued message matching pred, waiting
// up to a deadline; expectClose(timeoutMs) -> {code, reason}; pings counts WebSocket-level pings.

import WebSocket from 'ws';
import assert from 'node:assert/strict';

export const ID_RE = /^[A-Za-z0-9._-]+$/;
export const TS_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Poll fn() until it returns a truthy value or the deadline passes; returns the last value. */
export async function waitFor(fn, { timeoutMs = 5000, intervalMs = 25, message = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${message}`);
    await sleep(intervalMs);
  }
}

/** Builds a predicate from a partial object: type / room / data fields / custom fn. */
export function match(spec) {
  if (typeof spec === 'function') return spec;
  return (m) => {
    if (!m || typeof m !== 'object') return false;
    for (const [k, v] of Object.entries(spec)) {
      if (k === 'data') {
        if (!m.data || typeof m.data !== 'object') return false;
        for (const [dk, dv] of Object.entries(v)) if (m.data[dk] !== dv) return false;
      } else if (m[k] !== v) return false;
    }
    return true;
  };
}

export class Client {
  constructor(ws, url) {
    this.ws = ws;
    this.url = url;
    this.history = []; // every parsed message, in arrival order
    this.queue = []; // not yet consumed by next()
    this.nonJson = []; // text frames that were not JSON, binary frames
    this.pings = 0;
    this.waiters = [];
    this.closed = null;
    this.closePromise = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closed = { code, reason: reason.toString() };
        resolve(this.closed);
        for (const w of this.waiters.splice(0)) w.reject(new Error(`socket closed (code ${code}) while waiting for ${w.desc}`));
      });
    });
    ws.on('error', (err) => {
      this.lastError = err;
    });
    ws.on('ping', () => {
      this.pings++;
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary) {
        this.nonJson.push(data);
        return;
      }
      let msg;
      try {
        msg = JSON.parse(data.toString());
      } catch {
        this.nonJson.push(data.toString());
        return;
      }
      this.history.push(msg);
      const i = this.waiters.findIndex((w) => w.pred(msg));
      if (i >= 0) {
        const [w] = this.waiters.splice(i, 1);
        w.resolve(msg);
      } else {
        this.queue.push(msg);
      }
    });
  }

  get isOpen() {
    return this.ws.readyState === WebSocket.OPEN;
  }

  send(obj) {
    this.ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
  }

  sendBinary(buf) {
    this.ws.send(buf, { binary: true });
  }

  /** Resolve with the first (unconsumed) message matching pred within timeoutMs. */
  next(pred = () => true, timeoutMs = 3000, desc) {
    const p = match(pred);
    desc = desc ?? (typeof pred === 'function' ? 'a matching message' : JSON.stringify(pred));
    const i = this.queue.findIndex(p);
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0]);
    if (this.closed) return Promise.reject(new Error(`socket already closed (code ${this.closed.code}) before ${desc}`));
    return new Promise((resolve, reject) => {
      const w = { pred: p, desc };
      const timer = setTimeout(() => {
        const k = this.waiters.indexOf(w);
        if (k >= 0) this.waiters.splice(k, 1);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${desc}; unconsumed: ${JSON.stringify(this.queue).slice(0, 600)}`));
      }, timeoutMs);
      w.resolve = (m) => {
        clearTimeout(timer);
        resolve(m);
      };
      w.reject = (e) => {
        clearTimeout(timer);
        reject(e);
      };
      this.waiters.push(w);
    });
  }

  /** Collect n messages matching pred (in arrival order). */
  async nextN(pred, n, timeoutMs = 5000) {
    const deadline = Date.now() + timeoutMs;
    const out = [];
    while (out.length < n) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out: got ${out.length}/${n} messages`);
      out.push(await this.next(pred, left));
    }
    return out;
  }

  /** Every message received so far (consumed or not) that matches pred. */
  seen(pred) {
    return this.history.filter(match(pred));
  }

  /** A ping/pong round trip on this socket: proves it is open and everything sent before was read. */
  async roundTrip(timeoutMs = 3000) {
    this.send({ type: 'ping' });
    return this.next({ type: 'pong' }, timeoutMs);
  }

  /** Resolve {code, reason} when the socket closes; fails after timeoutMs. */
  async expectClose(timeoutMs = 5000) {
    let timer;
    const r = await Promise.race([
      this.closePromise,
      new Promise((res) => {
        timer = setTimeout(() => res(null), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (!r) throw new Error(`socket not closed within ${timeoutMs} ms`);
    return r;
  }

  close(code = 1000) {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(code);
  }

  terminate() {
    this.ws.terminate();
  }
}

/**
 * Try a WebSocket upgrade. Resolves {ok: true, client} or {ok: false, status, body, headers}
 * (status 0 and .error when the connection failed without an HTTP answer).
 */
export function tryOpen(url, { headers = {}, timeoutMs = 5000, wsOptions = {} } = {}) {
  return new Promise((resolve) => {
    let settled = false;
    const ws = new WebSocket(url, { headers, handshakeTimeout: timeoutMs, perMessageDeflate: false, ...wsOptions });
    const client = new Client(ws, url);
    const finish = (v) => {
      if (settled) return;
      settled = true;
      resolve(v);
    };
    ws.once('open', () => finish({ ok: true, client }));
    ws.once('unexpected-response', (req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      const done = () => {
        finish({ ok: false, status: res.statusCode, body, headers: res.headers });
        req.destroy();
      };
      res.on('end', done);
      res.on('error', done);
      res.on('close', done);
    });
    ws.once('error', (err) => {
      setImmediate(() => finish({ ok: false, status: 0, body: '', error: err }));
    });
  });
}

/** Open a socket or throw (error has .status and .body for refused upgrades). */
export async function open(url, opts) {
  const r = await tryOpen(url, opts);
  if (!r.ok) {
    const e = new Error(`WebSocket upgrade to ${url} refused: status ${r.status} ${r.body ?? ''} ${r.error?.message ?? ''}`);
    e.status = r.status;
    e.body = r.body;
    throw e;
  }
  return r.client;
}

/**
 * Open `server.url + path` and consume the welcome, which must be the first message.
 * Sets client.welcome, client.connId, client.userId.
 */
export async function connect(server, path = '/ws', opts = {}) {
  const c = await open(server.url + path, opts);
  const first = await c.next(() => true, opts.welcomeTimeoutMs ?? 3000, 'the welcome message');
  assert.equal(first.type, 'system', `first message must be the welcome: ${JSON.stringify(first)}`);
  assert.equal(first.data?.event, 'welcome', `first message must be the welcome: ${JSON.stringify(first)}`);
  c.welcome = first;
  c.connId = first.data.connection_id;
  c.userId = first.data.user_id;
  return c;
}

/** Compare ids: strictly increasing under plain string order or under natural (numeric-chunk) order. */
function naturalCompare(a, b) {
  const ta = a.match(/\d+|\D+/g) ?? [];
  const tb = b.match(/\d+|\D+/g) ?? [];
  for (let i = 0; i < Math.min(ta.length, tb.length); i++) {
    const x = ta[i];
    const y = tb[i];
    const dx = /^\d/.test(x);
    const dy = /^\d/.test(y);
    if (dx && dy) {
      const bx = BigInt(x);
      const by = BigInt(y);
      if (bx !== by) return bx < by ? -1 : 1;
    } else if (x !== y) return x < y ? -1 : 1;
  }
  return ta.length - tb.length;
}

/** True when ids are strictly increasing in the given order (lexicographic or natural order). */
export function idsIncreasing(ids) {
  const lex = ids.every((id, i) => i === 0 || ids[i - 1] < id);
  const nat = ids.every((id, i) => i === 0 || naturalCompare(ids[i - 1], id) < 0);
  return lex || nat;
}

/** Close every client given, ignoring errors. */
export function closeAll(clients) {
  for (const c of clients) {
    try {
      c?.terminate();
    } catch {
      /* ignore */
    }
  }
}
