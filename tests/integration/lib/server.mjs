// Harness for the integration suite: finds and starts the real `realtime-server` binary.
//
// Binary: $REALTIME_SERVER, else the newest executable named `realtime-server` anywhere under
// /work/main/build*/ (or <repo>/build*/ relative to this file).
//
// startServer(args, {env}) runs `realtime-server --listen 127.0.0.1:0 ...args`, waits for the
// `listening on HOST:PORT` line on stdout and returns {port, host, url, httpUrl, proc, stop(), ...}.
// stop() sends SIGTERM and asserts exit status 0 within 10 s. killAll() kills leftovers (use it in
// after()). runExpectingExit(args) runs the binary expecting it to exit by itself (bad flags).
// withServer(args, fn) runs fn(server, clients) against a fresh server, then closes the clients and
// stops the server (asserting exit 0 when fn passed; when fn failed its error is the one reported).

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..', '..');

const running = new Set();

function findExecutables(dir, name, depth, out) {
  if (depth < 0) return;
  let entries;
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name === 'CMakeFiles' || e.name === '_deps' || e.name === 'node_modules') continue;
      findExecutables(p, name, depth - 1, out);
    } else if (e.isFile() && e.name === name) {
      try {
        fs.accessSync(p, fs.constants.X_OK);
        out.push({ p, mtime: fs.statSync(p).mtimeMs });
      } catch {
        /* not executable */
      }
    }
  }
}

let cachedBinary;

/** Path of the server binary under test. Throws with a clear message when none is found. */
export function serverBinary() {
  if (cachedBinary) return cachedBinary;
  if (process.env.REALTIME_SERVER) {
    cachedBinary = path.resolve(process.env.REALTIME_SERVER);
    return cachedBinary;
  }
  const roots = new Set();
  for (const base of ['/work/main', repoRoot]) {
    let entries = [];
    try {
      entries = fs.readdirSync(base, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      if (e.isDirectory() && e.name.startsWith('build')) roots.add(path.join(base, e.name));
    }
  }
  const found = [];
  for (const r of roots) findExecutables(r, 'realtime-server', 6, found);
  if (found.length === 0) {
    throw new Error(
      'realtime-server binary not found: set REALTIME_SERVER or build it under build*/ in the repository',
    );
  }
  found.sort((a, b) => b.mtime - a.mtime);
  cachedBinary = found[0].p;
  return cachedBinary;
}

/** The environment for the server: ours without any REALTIME_* / REDIS_URL, plus `extra`. */
function serverEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('REALTIME_') || k === 'REDIS_URL') continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

const LISTENING_RE = /listening on (\S+):(\d+)/;

/**
 * Start the server. `args` are appended after `--listen 127.0.0.1:0` unless `opts.listen` is given
 * (then `--listen opts.listen` is used instead). Resolves once the `listening on` line is read.
 */
export async function startServer(args = [], opts = {}) {
  const bin = serverBinary();
  const listen = opts.listen ?? '127.0.0.1:0';
  const argv = ['--listen', listen, ...args];
  const proc = spawn(bin, argv, { env: serverEnv(opts.env), stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(proc);

  let stdout = '';
  let stderr = '';
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
  // Keep draining both pipes for the whole life of the process so logging never blocks it.
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => {
    stderr += d;
    if (stderr.length > 4_000_000) stderr = stderr.slice(-1_000_000);
  });

  const timeoutMs = opts.startTimeoutMs ?? 10_000;
  const { host, port } = await new Promise((resolve, reject) => {
    let done = false;
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      proc.kill('SIGKILL');
      reject(new Error(`server did not print "listening on" within ${timeoutMs} ms\nargs: ${argv.join(' ')}\nstdout: ${stdout.slice(-2000)}\nstderr: ${stderr.slice(-2000)}`));
    }, timeoutMs);
    proc.stdout.on('data', (d) => {
      stdout += d;
      if (stdout.length > 4_000_000) stdout = stdout.slice(-1_000_000);
      if (done) return;
      const m = LISTENING_RE.exec(stdout);
      if (m) {
        done = true;
        clearTimeout(timer);
        resolve({ host: m[1], port: Number(m[2]) });
      }
    });
    exited.then((info) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(new Error(`server exited before listening (code ${info.code}, signal ${info.signal})\nargs: ${argv.join(' ')}\nstdout: ${stdout.slice(-2000)}\nstderr: ${stderr.slice(-2000)}`));
    });
  });

  const server = {
    bin,
    argv,
    proc,
    host,
    port,
    url: `ws://127.0.0.1:${port}`,
    httpUrl: `http://127.0.0.1:${port}`,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    get exitInfo() {
      return exitInfo;
    },
    exited,
    /** Wait for exit (without signalling) up to timeoutMs; resolves {code, signal} or null on timeout. */
    async waitExit(timeoutMs = 10_000) {
      if (exitInfo) return exitInfo;
      let timer;
      const r = await Promise.race([
        exited,
        new Promise((res) => {
          timer = setTimeout(() => res(null), timeoutMs);
        }),
      ]);
      clearTimeout(timer);
      return r;
    },
    /** SIGTERM; asserts a clean exit (status 0) within timeoutMs. */
    async stop(timeoutMs = 10_000) {
      if (!exitInfo) proc.kill('SIGTERM');
      const info = await server.waitExit(timeoutMs);
      if (!info) {
        proc.kill('SIGKILL');
        await exited;
        assert.fail(`server did not exit within ${timeoutMs} ms of SIGTERM\nstderr: ${stderr.slice(-2000)}`);
      }
      assert.equal(info.signal, null, `server died of signal ${info.signal}\nstderr: ${stderr.slice(-2000)}`);
      assert.equal(info.code, 0, `server exit status after SIGTERM\nstderr: ${stderr.slice(-2000)}`);
      return info;
    },
    kill() {
      if (!exitInfo) proc.kill('SIGKILL');
    },
  };
  return server;
}

/**
 * Run the binary with exactly `args` (no --listen added) expecting it to exit by itself.
 * Resolves {code, signal, stdout, stderr, timedOut}.
 */
export async function runExpectingExit(args, { env, timeoutMs = 5_000 } = {}) {
  const proc = spawn(serverBinary(), args, { env: serverEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(proc);
  let stdout = '';
  let stderr = '';
  proc.on('error', (err) => {
    stderr += `\n[spawn error: ${err.message}]`;
  });
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stdout.on('data', (d) => (stdout += d));
  proc.stderr.on('data', (d) => (stderr += d));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill('SIGKILL');
  }, timeoutMs);
  const { code, signal } = await new Promise((resolve) =>
    proc.on('close', (code, signal) => resolve({ code, signal })),
  );
  clearTimeout(timer);
  running.delete(proc);
  return { code, signal, stdout, stderr, timedOut };
}

/** Kill every server process this harness started and that is still running. */
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

/**
 * Start a server with `args`, run fn(server, clients), then close every client pushed into `clients`
 * (ws Clients or RawSockets) and stop the server. A failure of fn is reported as is (with the
 * server's exit trouble, if any, appended); when fn passed, stop() asserts a clean exit.
 */
export async function withServer(args, fn, opts = {}) {
  const s = await startServer(args, opts);
  const clients = [];
  let failure;
  try {
    await fn(s, clients);
  } catch (e) {
    failure = e;
  }
  for (const c of clients) {
    try {
      if (typeof c?.terminate === 'function') c.terminate();
      else c?.destroy?.();
    } catch {
      /* ignore */
    }
  }
  if (!failure) {
    await s.stop();
    return;
  }
  try {
    await s.stop();
  } catch (stopErr) {
    failure.message += `\n(also: ${stopErr.message.split('\n')[0]})`;
  }
  if (s.exitInfo && s.exitInfo.signal && s.exitInfo.signal !== 'SIGTERM') {
    failure.message += `\n(server died: signal ${s.exitInfo.signal}; stderr tail: ${s.stderr.slice(-500)})`;
  }
  throw failure;
}
