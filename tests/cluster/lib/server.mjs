// realtime-server pods for the cluster harness.
//
// Binary: $REALTIME_SERVER, else build/server/realtime-server of the repository this file lives in
// (or of /work/main), else the newest build*/server/realtime-server there.
//
// startPod(redis, {podId, args}) runs `realtime-server --listen 127.0.0.1:0 --redis <url> --pod-id ID
// --rate-limit 100000 --rate-burst 100000 ...args`, waits for `listening on HOST:PORT`, and (unless
// {ready: false}) for GET /readyz 200. Pod: {podId, port, url, httpUrl, proc, stdout, stderr, kill()
// (SIGKILL), stop() (SIGTERM, asserts exit 0 within 10 s), exitInfo}. startPods(redis, n) starts n
// pods named p0..p(n-1) with a per-file prefix. killAllPods() ends leftovers.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { get } from './http.mjs';
import { waitFor } from './redis.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..', '..');
const running = new Set();

let cachedBinary;

/** Path of the server binary under test. */
export function serverBinary() {
  if (cachedBinary) return cachedBinary;
  if (process.env.REALTIME_SERVER) {
    cachedBinary = path.resolve(process.env.REALTIME_SERVER);
    return cachedBinary;
  }
  for (const base of new Set([repoRoot, '/work/main'])) {
    const p = path.join(base, 'build', 'server', 'realtime-server');
    try {
      fs.accessSync(p, fs.constants.X_OK);
      cachedBinary = p;
      return cachedBinary;
    } catch {
      /* not built there */
    }
  }
  const found = [];
  for (const base of new Set([repoRoot, '/work/main'])) {
    let entries = [];
    try {
      entries = fs.readdirSync(base, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      if (!e.isDirectory() || !e.name.startsWith('build')) continue;
      const p = path.join(base, e.name, 'server', 'realtime-server');
      try {
        fs.accessSync(p, fs.constants.X_OK);
        found.push({ p, mtime: fs.statSync(p).mtimeMs });
      } catch {
        /* none here */
      }
    }
  }
  if (found.length === 0) {
    throw new Error('realtime-server not found: set REALTIME_SERVER or build it (build*/server/realtime-server)');
  }
  found.sort((a, b) => b.mtime - a.mtime);
  cachedBinary = found[0].p;
  return cachedBinary;
}

function serverEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('REALTIME_') || k === 'REDIS_URL') continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

const LISTENING_RE = /listening on (\S+):(\d+)/;

export async function startPod(redis, { podId, args = [], ready = true, startTimeoutMs = 10_000, readyTimeoutMs = 10_000 } = {}) {
  const argv = [
    '--listen', '127.0.0.1:0',
    '--redis', redis.url,
    '--pod-id', podId,
    '--rate-limit', '100000',
    '--rate-burst', '100000',
    ...args,
  ];
  const proc = spawn(serverBinary(), argv, { env: serverEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
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
    proc.on('error', (err) => {
      stderr += `\n[spawn error: ${err.message}]`;
      if (!exitInfo) {
        exitInfo = { code: null, signal: null, error: err };
        running.delete(proc);
        resolve(exitInfo);
      }
    });
  });
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-200_000);
  });
  const { port } = await new Promise((resolve, reject) => {
    let done = false;
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      proc.kill('SIGKILL');
      reject(new Error(`pod ${podId} did not print "listening on" within ${startTimeoutMs} ms\nstderr: ${stderr.slice(-2000)}`));
    }, startTimeoutMs);
    proc.stdout.on('data', (d) => {
      stdout = (stdout + d).slice(-200_000);
      if (done) return;
      const m = LISTENING_RE.exec(stdout);
      if (m) {
        done = true;
        clearTimeout(timer);
        resolve({ port: Number(m[2]) });
      }
    });
    exited.then((info) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(new Error(`pod ${podId} exited before listening (${info.code}/${info.signal})\nstderr: ${stderr.slice(-2000)}`));
    });
  });

  const pod = {
    podId,
    argv,
    proc,
    port,
    url: `ws://127.0.0.1:${port}`,
    httpUrl: `http://127.0.0.1:${port}`,
    exited,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    get exitInfo() {
      return exitInfo;
    },
    /** Last lines of the pod's output, for failure messages. */
    logTail(n = 1500) {
      return `[${podId}: ${pod.argv.join(' ')} (${serverBinary()})]\n[${podId} stdout] ${stdout.slice(-n)}\n[${podId} stderr] ${stderr.slice(-n)}`;
    },
    /** SIGKILL: the pod dies without a goodbye. */
    async kill() {
      if (!exitInfo) proc.kill('SIGKILL');
      await exited;
    },
    /** SIGTERM; asserts exit status 0 within timeoutMs. */
    async stop(timeoutMs = 10_000) {
      if (!exitInfo) proc.kill('SIGTERM');
      let timer;
      const info = await Promise.race([exited, new Promise((r) => (timer = setTimeout(() => r(null), timeoutMs)))]);
      clearTimeout(timer);
      if (!info) {
        proc.kill('SIGKILL');
        await exited;
        assert.fail(`pod ${podId} did not exit within ${timeoutMs} ms of SIGTERM\n${pod.logTail()}`);
      }
      assert.equal(info.signal, null, `pod ${podId} died of signal ${info.signal}\n${pod.logTail()}`);
      assert.equal(info.code, 0, `pod ${podId} exit status after SIGTERM\n${pod.logTail()}`);
      return info;
    },
    /** Wait for GET /readyz to answer `status` (200 by default). */
    async waitReady(timeoutMs = readyTimeoutMs, status = 200) {
      let last;
      await waitFor(
        async () => {
          last = (await get(pod, '/readyz')).status;
          return last === status;
        },
        { timeoutMs, intervalMs: 50, message: () => `pod ${podId} /readyz ${status} (last ${last})\n${pod.logTail(600)}` },
      );
    },
  };
  if (ready) await pod.waitReady();
  return pod;
}

let fileSeq = 0;

/** Start n pods on redis (in parallel), named `${prefix}-0`...; all ready. */
export async function startPods(redis, n, opts = {}) {
  const prefix = opts.prefix ?? `pod${process.pid}x${fileSeq++}`;
  return Promise.all(Array.from({ length: n }, (_, i) => startPod(redis, { ...opts, podId: `${prefix}-${i}` })));
}

export function killAllPods() {
  for (const p of running) {
    try {
      p.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
  running.clear();
}

process.on('exit', killAllPods);
