// JSON WebSocket clients with message queues for the Node suites. Node built-ins only: the suites
// that use it pass their own WebSocket class (the npm `ws` package, from their node_modules):
//
//   import WebSocket from 'ws';
//   export const { Client, tryOpen, open, connect } = clientKit(WebSocket);
//
// open(url, {headers}) -> Client once the socket is open (rejects with .status/.body on a refused
// upgrade). tryOpen(url, {headers}) -> {ok: true, client} | {ok: false, status, body, headers}.
// connect(server, path) opens server.url + path and consumes the welcome (client.welcome, .connId,
// .userId, .server).
//
// Client: every text frame is parsed as JSON and kept in `history` (all) and an unconsumed queue.
// next(pred, timeoutMs) resolves with (and consumes) the first queued message matching pred, waiting
// up to a deadline; nextN(pred, n, timeoutMs); seen(pred) looks at history without consuming;
// roundTrip() sends a ping and waits for its pong (everything sent before it was read); join(room) /
// leave(room) do that round trip too; expectClose(timeoutMs) -> {code, reason}; `closed` is
// {code, reason} once closed; pings counts WebSocket-level pings.

import assert from 'node:assert/strict';
import { sleep } from './server.mjs';

export { sleep };

export const ID_RE = /^[A-Za-z0-9._-]+$/;
export const TS_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

// WebSocket readyState values (the same in every implementation).
const CONNECTING = 0;
const OPEN = 1;

/**
 * Poll fn() until it returns a truthy value (returned) or the deadline passes (then throws with
 * `message`, a string or a function). An error thrown by fn fails at once unless retryErrors is set
 * (then the last one is named in the timeout message).
 */
export async function waitFor(fn, { timeoutMs = 5000, intervalMs = 25, message = 'condition', retryErrors = false } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  let lastErr;
  for (;;) {
    try {
      last = await fn();
      lastErr = undefined;
      if (last) return last;
    } catch (e) {
      if (!retryErrors) throw e;
      lastErr = e;
    }
    if (Date.now() >= deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${typeof message === 'function' ? message() : message}` +
          (lastErr ? ` (last error: ${lastErr.message})` : ''),
      );
    }
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
        for (const w of this.waiters.splice(0)) w.reject(new Error(`socket ${url} closed (code ${code}) while waiting for ${w.desc}`));
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
    return this.ws.readyState === OPEN;
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
    if (this.closed) return Promise.reject(new Error(`socket ${this.url} already closed (code ${this.closed.code}) before ${desc}`));
    return new Promise((resolve, reject) => {
      const w = { pred: p, desc };
      const timer = setTimeout(() => {
        const k = this.waiters.indexOf(w);
        if (k >= 0) this.waiters.splice(k, 1);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${desc} on ${this.url}; unconsumed: ${JSON.stringify(this.queue).slice(0, 600)}`));
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

  /** n messages matching pred, in arrival order, all within timeoutMs. */
  async nextN(pred, n, timeoutMs = 5000, desc = 'messages') {
    const deadline = Date.now() + timeoutMs;
    const out = [];
    while (out.length < n) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out: got ${out.length}/${n} ${desc} on ${this.url}`);
      try {
        out.push(await this.next(pred, left, desc));
      } catch (e) {
        e.message += ` (got ${out.length}/${n})`;
        throw e;
      }
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
    return this.next({ type: 'pong' }, timeoutMs, 'pong');
  }

  async join(room) {
    this.send({ type: 'join', room });
    await this.roundTrip();
  }

  async leave(room) {
    this.send({ type: 'leave', room });
    await this.roundTrip();
  }

  /** Resolve {code, reason} when the socket closes; fails after timeoutMs. */
  async expectClose(timeoutMs = 5000) {
    let timer;
    const r = await Promise.race([this.closePromise, new Promise((res) => (timer = setTimeout(() => res(null), timeoutMs)))]);
    clearTimeout(timer);
    if (!r) throw new Error(`socket not closed within ${timeoutMs} ms`);
    return r;
  }

  close(code = 1000) {
    if (this.ws.readyState === OPEN || this.ws.readyState === CONNECTING) this.ws.close(code);
  }

  terminate() {
    this.ws.terminate();
  }
}

/** Client helpers bound to a WebSocket class (the `ws` package's: they use its events and options). */
export function clientKit(WebSocket) {
  /**
   * Try a WebSocket upgrade. Resolves {ok: true, client} or {ok: false, status, body, headers}
   * (status 0 and .error when the connection failed without an HTTP answer).
   */
  function tryOpen(url, { headers = {}, timeoutMs = 5000, wsOptions = {} } = {}) {
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
  async function open(url, opts) {
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
   * Sets client.welcome, client.connId, client.userId, client.server.
   */
  async function connect(server, path = '/ws', opts = {}) {
    const c = await open(server.url + path, opts);
    const first = await c.next(() => true, opts.welcomeTimeoutMs ?? 3000, 'the welcome message');
    assert.equal(first.type, 'system', `first message must be the welcome: ${JSON.stringify(first)}`);
    assert.equal(first.data?.event, 'welcome', `first message must be the welcome: ${JSON.stringify(first)}`);
    c.welcome = first;
    c.connId = first.data.connection_id;
    c.userId = first.data.user_id;
    c.server = server;
    return c;
  }

  return { Client, tryOpen, open, connect };
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

/** True when ids are strictly increasing in the given order (natural order: `e-2` before `e-10`). */
export function idsIncreasing(ids) {
  return ids.every((id, i) => i === 0 || naturalCompare(ids[i - 1], id) < 0);
}

/** Terminate every client given (ws Clients, or raw sockets with destroy()), ignoring errors. */
export function closeAll(clients) {
  for (const c of clients) {
    try {
      if (typeof c?.terminate === 'function') c.terminate();
      else c?.destroy?.();
    } catch {
      /* ignore */
    }
  }
}

/** Run async fn over items with at most `limit` in flight; resolves the results in order. */
export async function pool(items, limit, fn) {
  const out = new Array(items.length);
  let i = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (i < items.length) {
      const k = i++;
      out[k] = await fn(items[k], k);
    }
  });
  await Promise.all(workers);
  return out;
}
