// WebSocket clients for the cluster harness, on the npm `ws` package.
//
// connect(pod, path) opens pod.url + path and consumes the welcome (client.welcome, .connId,
// .userId). Every text frame is parsed and kept in `history` and in an unconsumed queue;
// next(pred, timeoutMs) resolves with (and consumes) the first queued message matching pred,
// waiting until a deadline; nextN(pred, n, timeoutMs); seen(pred) looks at history without
// consuming. roundTrip() sends a ping and waits for its pong (everything sent before it was read by
// the pod). join(room) / leave(room) do that round trip too. `closed` is {code, reason} once closed.

import WebSocket from 'ws';
import assert from 'node:assert/strict';

/** Predicate from a partial object ({type, room, data: {...}}) or a function. */
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
    this.history = [];
    this.queue = [];
    this.waiters = [];
    this.closed = null;
    this.closePromise = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closed = { code, reason: reason.toString() };
        resolve(this.closed);
        for (const w of this.waiters.splice(0)) {
          clearTimeout(w.timer);
          w.reject(new Error(`socket ${this.url} closed (code ${code}) while waiting for ${w.desc}`));
        }
      });
    });
    ws.on('error', (err) => {
      this.lastError = err;
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      let msg;
      try {
        msg = JSON.parse(data.toString());
      } catch {
        return;
      }
      this.history.push(msg);
      const i = this.waiters.findIndex((w) => w.pred(msg));
      if (i >= 0) {
        const [w] = this.waiters.splice(i, 1);
        clearTimeout(w.timer);
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

  /** First unconsumed message matching pred, waiting up to timeoutMs. */
  next(pred = () => true, timeoutMs = 3000, desc = 'a message') {
    const p = match(pred);
    const i = this.queue.findIndex(p);
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0]);
    if (this.closed) return Promise.reject(new Error(`socket ${this.url} already closed (${this.closed.code}) while waiting for ${desc}`));
    return new Promise((resolve, reject) => {
      const w = { pred: p, resolve, reject, desc };
      w.timer = setTimeout(() => {
        const k = this.waiters.indexOf(w);
        if (k >= 0) this.waiters.splice(k, 1);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${desc} on ${this.url}`));
      }, timeoutMs);
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

  /** Every message received so far (consumed or not) matching pred. */
  seen(pred) {
    return this.history.filter(match(pred));
  }

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

  close(code = 1000) {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(code);
  }

  terminate() {
    this.ws.terminate();
  }
}

/** Open a socket (rejects when refused). */
export function open(url, { timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { handshakeTimeout: timeoutMs, perMessageDeflate: false });
    const client = new Client(ws, url);
    let settled = false;
    ws.once('open', () => {
      settled = true;
      resolve(client);
    });
    ws.once('unexpected-response', (req, res) => {
      if (settled) return;
      settled = true;
      req.destroy();
      reject(new Error(`upgrade to ${url} refused: ${res.statusCode}`));
    });
    ws.once('error', (err) => {
      if (settled) return;
      settled = true;
      reject(new Error(`upgrade to ${url} failed: ${err.message}`));
    });
  });
}

/** Open pod.url + path and consume the welcome. */
export async function connect(pod, path = '/ws', opts = {}) {
  const c = await open(pod.url + path, opts);
  const first = await c.next(() => true, opts.welcomeTimeoutMs ?? 3000, 'the welcome message');
  assert.equal(first.type, 'system', `first message must be the welcome: ${JSON.stringify(first)}`);
  assert.equal(first.data?.event, 'welcome', `first message must be the welcome: ${JSON.stringify(first)}`);
  c.welcome = first;
  c.connId = first.data.connection_id;
  c.userId = first.data.user_id;
  c.pod = pod;
  return c;
}

export function closeAll(clients) {
  for (const c of clients) {
    try {
      c?.terminate();
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

let barrierSeq = 0;

/**
 * A barrier through Redis: PUBLISH a chat {barrier: tag} on `channel` (a third-party publish) and
 * wait until every client in `members` has it. Redis runs commands one at a time and each pod's
 * subscriber reads in order, so once it arrives, anything PUBLISHed on that channel before it (for
 * example a pod's echo of its own message) has reached the pod too.
 */
export async function redisBarrier(redis, channel, members, timeoutMs = 5000) {
  const tag = `barrier-${process.pid}-${++barrierSeq}`;
  await redis.publish(channel, { type: 'chat', data: { barrier: tag } });
  await Promise.all(members.map((m) => m.next((x) => x.data?.barrier === tag, timeoutMs, `Redis barrier on ${channel} at ${m.pod?.podId ?? m.url}`)));
}
