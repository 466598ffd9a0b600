// Running the real realtime-server binary (and other helper processes) from Node test suites.
// Plain ES module on node built-ins only, shared by every Node suite of the repository.
//
// Binary: $REALTIME_SERVER, else build/server/realtime-server of this repository, else the newest
// build*/server/ or build/<preset>/server/realtime-server there. serverBinary() throws when there
// is none; findServerBinary() returns null instead (for suites that skip without a build).
//
// startProcess(bin, argv, {ready}) spawns a child, keeps draining stdout and stderr for its whole
// life (a bounded tail is kept for messages) and resolves once `ready` matches its output.
// startServer(args, opts) runs `realtime-server --listen 127.0.0.1:0 ...args`, waits for the
// `listening on HOST:PORT` line and returns {bin, argv, proc, host, port, url, httpUrl, stdout,
// stderr, output, exitInfo, exited, alive(), rssKiB(), waitExit(), stop(), terminate(), kill()}.
// stop() sends SIGTERM and asserts exit status 0 within 10 s; terminate(signal) only reports the
// exit; kill() is SIGKILL. killAll() ends every process started here that is still running.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const BINARY = path.join('server', 'realtime-server');

const running = new Set();

function executable(p) {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

/** Path of the server binary under test, or null when there is none. */
export function findServerBinary() {
  if (process.env.REALTIME_SERVER) {
    const p = path.resolve(process.env.REALTIME_SERVER);
    return fs.existsSync(p) ? p : null;
  }
  const direct = path.join(repoRoot, 'build', BINARY);
  if (executable(direct)) return direct;
  // The newest of build*/server/realtime-server and build/<preset>/server/realtime-server.
  const dirs = [];
  const subdirs = (dir) => {
    try {
      return fs.readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => path.join(dir, e.name));
    } catch {
      return [];
    }
  };
  for (const dir of subdirs(repoRoot)) if (path.basename(dir).startsWith('build')) dirs.push(dir);
  dirs.push(...subdirs(path.join(repoRoot, 'build')));
  const found = [];
  for (const dir of dirs) {
    const p = path.join(dir, BINARY);
    if (executable(p)) found.push({ p, mtime: fs.statSync(p).mtimeMs });
  }
  found.sort((a, b) => b.mtime - a.mtime);
  return found[0]?.p ?? null;
}

let cachedBinary;

/** Path of the server binary under test ($REALTIME_SERVER as given); throws when none is found. */
export function serverBinary() {
  if (cachedBinary) return cachedBinary;
  if (process.env.REALTIME_SERVER) return (cachedBinary = path.resolve(process.env.REALTIME_SERVER));
  const p = findServerBinary();
  if (!p) throw new Error('realtime-server binary not found: set REALTIME_SERVER or build it (build*/server/realtime-server)');
  return (cachedBinary = p);
}

/** Our environment without REALTIME_* / REDIS_URL (the server reads REDIS_URL), plus `extra`. */
export function serverEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('REALTIME_') || k === 'REDIS_URL') continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

// Lines a sanitizer prints when it finds something (ASan, UBSan, LSan).
export const SANITIZER_RE = /(ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:|SUMMARY: \w+Sanitizer)/;

// `listening on 127.0.0.1:PORT` or `listening on [::1]:PORT`.
export const LISTENING_RE = /listening on (\[[^\]]*\]|[^\s:]+):(\d+)/;

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Spawn bin with argv and resolve once `ready` (a RegExp) matches what it printed (stdout only, or
 * stdout + stderr with readyOn: 'both'). Both pipes are drained for the whole life of the process;
 * the last `tailChars` characters of each are kept (Infinity keeps everything).
 * Resolves the handle, with `.ready` the match; rejects with the output tail when the process exits
 * first or `startTimeoutMs` passes (the process is then killed).
 */
export async function startProcess(bin, argv, opts = {}) {
  const { env = serverEnv(), ready, readyOn = 'stdout', what = path.basename(bin), startTimeoutMs = 10_000, tailChars = 1_000_000 } = opts;
  const proc = spawn(bin, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(proc);
  const cap = (s) => (s.length > tailChars * 2 ? s.slice(-tailChars) : s);
  let stdout = '';
  let stderr = '';
  let output = '';
  let exitInfo = null;
  const exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      exitInfo = { code, signal };
      running.delete(proc);
      resolve(exitInfo);
    });
    // spawn failures (e.g. the binary is being rebuilt) are reported, not thrown as uncaught
    proc.on('error', (err) => {
      stderr += `\n[spawn error: ${err.message}]`;
      if (!exitInfo) {
        exitInfo = { code: null, signal: null, error: err };
        running.delete(proc);
        resolve(exitInfo);
      }
    });
  });
  const tail = (n = 2000) => `args: ${argv.join(' ')}\nstdout: ${stdout.slice(-n)}\nstderr: ${stderr.slice(-n)}`;
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  let onOutput = () => {};
  proc.stdout.on('data', (d) => {
    stdout = cap(stdout + d);
    output = cap(output + d);
    onOutput(readyOn === 'stderr' ? '' : d);
  });
  proc.stderr.on('data', (d) => {
    stderr = cap(stderr + d);
    output = cap(output + d);
    onOutput(readyOn === 'stdout' ? '' : d);
  });

  const handle = {
    bin,
    argv,
    proc,
    what,
    exited,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    /** stdout and stderr interleaved as they arrived. */
    get output() {
      return output;
    },
    get exitInfo() {
      return exitInfo;
    },
    alive: () => exitInfo === null,
    tail,
    /** Resident set size of the process in KiB (null when it is gone). */
    rssKiB() {
      try {
        const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${proc.pid}/status`, 'utf8'));
        return m ? Number(m[1]) : null;
      } catch {
        return null;
      }
    },
    /** Wait for exit (without signalling) up to timeoutMs; resolves {code, signal} or null on timeout. */
    async waitExit(timeoutMs = 10_000) {
      if (exitInfo) return exitInfo;
      let timer;
      const r = await Promise.race([exited, new Promise((res) => (timer = setTimeout(() => res(null), timeoutMs)))]);
      clearTimeout(timer);
      return r;
    },
    /** SIGTERM; asserts a clean exit (no signal, status 0) within timeoutMs. */
    async stop(timeoutMs = 10_000) {
      if (!exitInfo) proc.kill('SIGTERM');
      const info = await handle.waitExit(timeoutMs);
      if (!info) {
        proc.kill('SIGKILL');
        await exited;
        assert.fail(`${what} did not exit within ${timeoutMs} ms of SIGTERM\n${tail()}`);
      }
      assert.equal(info.signal, null, `${what} died of signal ${info.signal}\n${tail()}`);
      assert.equal(info.code, 0, `${what} exit status after SIGTERM\n${tail()}`);
      return info;
    },
    /** Send `signal` (unless it has exited), SIGKILL after killAfterMs; resolves {code, signal}. */
    async terminate(signal = 'SIGTERM', killAfterMs = 12_000) {
      if (!exitInfo) proc.kill(signal);
      const timer = setTimeout(() => proc.kill('SIGKILL'), killAfterMs);
      const info = await exited;
      clearTimeout(timer);
      return info;
    },
    /** SIGKILL: the process dies without a goodbye. Resolves once it has exited. */
    async kill() {
      if (!exitInfo) proc.kill('SIGKILL');
      await exited;
    },
  };

  if (!ready) return handle;
  handle.ready = await new Promise((resolve, reject) => {
    let done = false;
    let seen = '';
    const finish = (fn, v) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      onOutput = () => {};
      fn(v);
    };
    const timer = setTimeout(() => {
      if (done) return;
      proc.kill('SIGKILL');
      finish(reject, new Error(`${what} did not print ${ready} within ${startTimeoutMs} ms\n${tail()}`));
    }, startTimeoutMs);
    onOutput = (d) => {
      seen += d;
      const m = ready.exec(seen);
      if (m) finish(resolve, m);
    };
    exited.then((info) =>
      finish(reject, new Error(`${what} exited before it was ready (code ${info.code}, signal ${info.signal})\n${tail()}`)),
    );
  });
  return handle;
}

/**
 * Start the server. `args` are appended after `--listen 127.0.0.1:0` (or `--listen opts.listen`).
 * opts: bin (default serverBinary()), env (added to serverEnv()), logLevel (`--log-level` put first
 * unless args name one), startTimeoutMs, tailChars, what. Resolves once `listening on` is read.
 */
export async function startServer(args = [], opts = {}) {
  const bin = opts.bin ?? serverBinary();
  const level = opts.logLevel && !args.includes('--log-level') ? ['--log-level', opts.logLevel] : [];
  const argv = ['--listen', opts.listen ?? '127.0.0.1:0', ...level, ...args];
  const s = await startProcess(bin, argv, {
    env: serverEnv(opts.env),
    ready: LISTENING_RE,
    what: opts.what ?? 'server',
    startTimeoutMs: opts.startTimeoutMs,
    tailChars: opts.tailChars,
  });
  s.host = s.ready[1].replace(/^\[|\]$/g, '');
  s.port = Number(s.ready[2]);
  s.url = `ws://127.0.0.1:${s.port}`;
  s.httpUrl = `http://127.0.0.1:${s.port}`;
  return s;
}

/** startServer on a fixed port again (the old process has exited); retries while the port is busy. */
export async function restartServer(port, args = [], opts = {}, { retryForMs = 10_000, intervalMs = 100 } = {}) {
  const deadline = Date.now() + retryForMs;
  for (;;) {
    try {
      return await startServer(args, { ...opts, listen: `127.0.0.1:${port}` });
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(intervalMs);
    }
  }
}

/**
 * Run the binary with exactly `args` (no --listen added) expecting it to exit by itself.
 * Resolves {code, signal, stdout, stderr, timedOut}.
 */
export async function runExpectingExit(args, { env, timeoutMs = 5_000, bin = serverBinary() } = {}) {
  const p = await startProcess(bin, args, { env: serverEnv(env), tailChars: Infinity });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    p.proc.kill('SIGKILL');
  }, timeoutMs);
  const { code, signal } = await new Promise((resolve) => p.proc.on('close', (c, s) => resolve({ code: c, signal: s })));
  clearTimeout(timer);
  return { code, signal, stdout: p.stdout, stderr: p.stderr, timedOut };
}

/** Kill every process this module started that is still running. */
export function killAll() {
  for (const p of running) {
    try {
      p.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
  running.clear();
}

process.on('exit', killAll);
// A signal (a cancelled CI run, a kill of the test runner) would end this process without its
// 'exit' listeners, leaving its servers (and tests/cluster's redis-servers) running: exit instead.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => process.exit(128 + os.constants.signals[signal]));
}
