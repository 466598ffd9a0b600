// Redis side of the cluster harness: a real redis-server on a free loopback port, and a tiny RESP
// client (no npm Redis package needed).
//
// startRedis() -> Redis {port, url, proc}; redis.cmd('PUBSUB', 'NUMSUB', ch) sends one command on a
// short-lived connection and resolves the decoded reply (errors reject). redis.kill() SIGKILLs the
// process, redis.restart() starts it again on the same port, redis.stop() ends it for good.
// Helpers: numsub(channel), channels(pattern), scanKeys(pattern), publish(channel, payload),
// waitNumsub(channel, predicate, timeoutMs); redis.link() keeps one connection open for quick asks.
//
// The binary is $REDIS_SERVER or /usr/bin/redis-server (else `redis-server` on PATH). Every server
// runs with --save '' --appendonly no in a fresh temporary directory.

import { spawn, execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { sleep, freePort } from '../../support/node/server.mjs';
import { waitFor as sharedWaitFor } from '../../support/node/client.mjs';

const running = new Set();
/** Working directories of every redis-server this process created, removed at exit at the latest. */
const dirs = new Set();

export { sleep, freePort } from '../../support/node/server.mjs';

/** Poll fn() until it returns a truthy value or the deadline passes (then throws with `message`). */
export function waitFor(fn, { timeoutMs = 5000, intervalMs = 50, message = 'condition' } = {}) {
  return sharedWaitFor(fn, { timeoutMs, intervalMs, message, retryErrors: true });
}

function redisBinary() {
  if (process.env.REDIS_SERVER) return process.env.REDIS_SERVER;
  if (fs.existsSync('/usr/bin/redis-server')) return '/usr/bin/redis-server';
  return 'redis-server';
}

export function redisCliBinary() {
  if (process.env.REDIS_CLI) return process.env.REDIS_CLI;
  if (fs.existsSync('/usr/bin/redis-cli')) return '/usr/bin/redis-cli';
  return 'redis-cli';
}

// ---------------------------------------------------------------------------------------------
// RESP

function encodeCommand(args) {
  const parts = [`*${args.length}\r\n`];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
    parts.push(`$${b.length}\r\n`, b, '\r\n');
  }
  return Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p))));
}

class RespError extends Error {}

/** Parse one RESP value from buf at offset; returns {value, offset} or null when incomplete. */
function parseReply(buf, off) {
  if (off >= buf.length) return null;
  const nl = buf.indexOf('\r\n', off);
  if (nl < 0) return null;
  const kind = String.fromCharCode(buf[off]);
  const line = buf.toString('utf8', off + 1, nl);
  const after = nl + 2;
  switch (kind) {
    case '+':
      return { value: line, offset: after };
    case '-':
      return { value: new RespError(line), offset: after };
    case ':':
      return { value: Number(line), offset: after };
    case '$': {
      const n = Number(line);
      if (n < 0) return { value: null, offset: after };
      if (buf.length < after + n + 2) return null;
      return { value: buf.toString('utf8', after, after + n), offset: after + n + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, offset: after };
      const arr = [];
      let o = after;
      for (let i = 0; i < n; i++) {
        const r = parseReply(buf, o);
        if (!r) return null;
        arr.push(r.value);
        o = r.offset;
      }
      return { value: arr, offset: o };
    }
    default:
      throw new Error(`bad RESP reply byte ${JSON.stringify(kind)}`);
  }
}

/**
 * Send several commands on one fresh connection, resolve their replies (RESP errors come back as
 * Error values in the array, not thrown).
 */
export function redisPipeline(port, commands, { timeoutMs = 3000 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    let off = 0;
    const replies = [];
    let done = false;
    const finish = (err, val) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(val);
    };
    const timer = setTimeout(() => finish(new Error(`redis ${port}: no reply within ${timeoutMs} ms`)), timeoutMs);
    sock.on('connect', () => sock.write(Buffer.concat(commands.map(encodeCommand))));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      try {
        for (;;) {
          const r = parseReply(buf, off);
          if (!r) break;
          replies.push(r.value);
          off = r.offset;
          if (replies.length === commands.length) return finish(null, replies);
        }
      } catch (e) {
        finish(e);
      }
    });
    sock.on('error', (e) => finish(e));
    sock.on('close', () => finish(new Error(`redis ${port}: connection closed before all replies`)));
  });
}

/**
 * A connection kept open: cmd() writes at once (no connect in between), so a test can ask Redis
 * something within microseconds of an event. Replies come back in order; close() ends it.
 */
export function redisLink(port) {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    const waiting = [];
    const fail = (err) => {
      while (waiting.length) waiting.shift().reject(err);
    };
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      let r;
      while (waiting.length && (r = parseReply(buf, 0))) {
        buf = buf.subarray(r.offset);
        const w = waiting.shift();
        if (r.value instanceof Error) w.reject(new Error(`redis: ${r.value.message}`));
        else w.resolve(r.value);
      }
    });
    sock.on('error', (e) => {
      fail(e);
      reject(e);
    });
    sock.on('close', () => fail(new Error(`redis ${port}: link closed`)));
    sock.on('connect', () =>
      resolve({
        cmd: (...args) =>
          new Promise((res, rej) => {
            waiting.push({ resolve: res, reject: rej });
            sock.write(encodeCommand(args));
          }),
        close: () => sock.destroy(),
      }),
    );
  });
}

/**
 * A subscriber of its own on `channel` (a third party watching what the pods publish there):
 * resolves once Redis confirmed the subscription, to {messages, next(pred, timeoutMs, what), close}.
 * next() resolves with the first message (a string) that matches pred and was not taken yet.
 */
export function redisSubscriber(port, channel) {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection({ host: '127.0.0.1', port });
    let buf = Buffer.alloc(0);
    const messages = [];
    let taken = 0;
    let wake = () => {};
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      let r;
      while ((r = parseReply(buf, 0))) {
        buf = buf.subarray(r.offset);
        const [kind, , payload] = r.value;
        if (kind === 'subscribe') {
          resolve({
            messages,
            close: () => sock.destroy(),
            async next(pred, timeoutMs = 5000, what = 'message') {
              const deadline = Date.now() + timeoutMs;
              for (;;) {
                for (let i = taken; i < messages.length; ++i) {
                  if (pred(messages[i])) {
                    taken = i + 1;
                    return messages[i];
                  }
                }
                const left = deadline - Date.now();
                if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} on ${channel}`);
                await new Promise((res) => {
                  const timer = setTimeout(res, left);
                  wake = () => {
                    clearTimeout(timer);
                    res();
                  };
                });
              }
            },
          });
        } else if (kind === 'message') {
          messages.push(String(payload));
          wake();
        }
      }
    });
    sock.on('error', reject);
    sock.on('connect', () => sock.write(encodeCommand(['SUBSCRIBE', channel])));
  });
}

/** One command; a RESP error rejects. */
export async function redisCmd(port, ...args) {
  const [r] = await redisPipeline(port, [args]);
  if (r instanceof Error) throw new Error(`redis ${args.join(' ')}: ${r.message}`);
  return r;
}

// ---------------------------------------------------------------------------------------------
// redis-server process

export class Redis {
  constructor(port) {
    this.port = port;
    this.url = `redis://127.0.0.1:${port}`;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rt-cluster-redis-'));
    dirs.add(this.dir);
    this.proc = null;
    this.log = '';
  }

  async _spawn(timeoutMs = 5000) {
    const args = [
      '--port', String(this.port),
      '--bind', '127.0.0.1',
      '--save', '',
      '--appendonly', 'no',
      '--protected-mode', 'no',
      '--dir', this.dir,
      '--loglevel', 'warning',
    ];
    const proc = spawn(redisBinary(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    running.add(proc);
    proc.exited = new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        running.delete(proc);
        resolve({ code, signal });
      });
      proc.on('error', (e) => {
        this.log += `\n[spawn error ${e.message}]`;
        running.delete(proc);
        resolve({ code: null, signal: null, error: e });
      });
    });
    for (const s of [proc.stdout, proc.stderr]) {
      s.setEncoding('utf8');
      s.on('data', (d) => {
        this.log = (this.log + d).slice(-20000);
      });
    }
    let exited = false;
    proc.exited.then(() => (exited = true));
    await waitFor(
      async () => {
        if (exited) throw new Error(`redis-server exited: ${this.log.slice(-1000)}`);
        return (await redisCmd(this.port, 'PING')) === 'PONG';
      },
      { timeoutMs, intervalMs: 30, message: `redis-server on port ${this.port} answering PING` },
    );
  }

  /** SIGKILL the server (no goodbye to clients) and wait until it is gone. */
  async kill() {
    const p = this.proc;
    if (!p) return;
    this.proc = null;
    try {
      p.kill('SIGKILL');
    } catch {
      /* gone */
    }
    await p.exited;
  }

  /** Start again on the same port (after kill()). */
  async restart() {
    if (this.proc) await this.kill();
    // the port may briefly be refused by a racing bind; retry a few times
    let lastErr;
    for (let i = 0; i < 5; i++) {
      try {
        await this._spawn();
        return;
      } catch (e) {
        lastErr = e;
        if (this.proc) await this.kill();
        await sleep(200);
      }
    }
    throw lastErr;
  }

  async stop() {
    await this.kill();
    removeDir(this.dir);
  }

  cmd(...args) {
    return redisCmd(this.port, ...args);
  }

  pipeline(commands) {
    return redisPipeline(this.port, commands);
  }

  /** A connection kept open (see redisLink). */
  link() {
    return redisLink(this.port);
  }

  /** PUBSUB NUMSUB for one channel -> number. */
  async numsub(channel) {
    const r = await this.cmd('PUBSUB', 'NUMSUB', channel);
    return Number(r[1]);
  }

  /** PUBSUB NUMSUB for several channels -> {channel: n}. */
  async numsubMany(channels) {
    if (channels.length === 0) return {};
    const r = await this.cmd('PUBSUB', 'NUMSUB', ...channels);
    const out = {};
    for (let i = 0; i < r.length; i += 2) out[r[i]] = Number(r[i + 1]);
    return out;
  }

  /** PUBSUB CHANNELS pattern -> sorted names. */
  async channels(pattern = '*') {
    return (await this.cmd('PUBSUB', 'CHANNELS', pattern)).sort();
  }

  /** Every key matching pattern (SCAN, not KEYS) -> sorted names. */
  async scanKeys(pattern = '*') {
    const out = new Set();
    let cursor = '0';
    do {
      const [next, keys] = await this.cmd('SCAN', cursor, 'MATCH', pattern, 'COUNT', '1000');
      for (const k of keys) out.add(k);
      cursor = next;
    } while (cursor !== '0');
    return [...out].sort();
  }

  /** PUBLISH -> number of subscribers that received it. */
  async publish(channel, payload) {
    return Number(await this.cmd('PUBLISH', channel, typeof payload === 'string' ? payload : JSON.stringify(payload)));
  }

  /** Wait until PUBSUB NUMSUB channel satisfies pred(n) (a number means "equals"). */
  async waitNumsub(channel, pred, timeoutMs = 5000) {
    const ok = typeof pred === 'number' ? (n) => n === pred : pred;
    let last;
    await waitFor(
      async () => {
        last = await this.numsub(channel);
        return ok(last);
      },
      { timeoutMs, intervalMs: 25, message: () => `PUBSUB NUMSUB ${channel} (last ${last})` },
    );
    return last;
  }
}

/** Start a redis-server on a free loopback port. */
export async function startRedis() {
  let lastErr;
  for (let i = 0; i < 3; i++) {
    const r = new Redis(await freePort());
    try {
      await r._spawn();
      return r;
    } catch (e) {
      lastErr = e;
      await r.stop();
    }
  }
  throw lastErr;
}

/** Run the redis-cli binary with args against redis; resolves stdout (trimmed). */
export function redisCli(redis, args, { timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    execFile(
      redisCliBinary(),
      ['-h', '127.0.0.1', '-p', String(redis.port), ...args],
      { timeout: timeoutMs },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`redis-cli ${args.join(' ')}: ${err.message} ${stderr}`));
        else resolve(stdout.trim());
      },
    );
  });
}

export function killAllRedis() {
  for (const p of running) {
    try {
      p.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
  running.clear();
}

function removeDir(dir) {
  dirs.delete(dir);
  try {
    fs.rmSync(dir, { recursive: true, force: true });
  } catch {
    /* ignore */
  }
}

// A test file that only kills its servers (or fails half-way) still leaves no directory behind.
process.on('exit', () => {
  killAllRedis();
  for (const dir of [...dirs]) removeDir(dir);
});
