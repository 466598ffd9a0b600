// Runs realtime-server (and, when available, a throwaway redis-server) for the browser tests.
// Binary: $REALTIME_SERVER, else the newest build*/**/realtime-server under the repository.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

export function findServer() {
  if (process.env.REALTIME_SERVER) return existsSync(process.env.REALTIME_SERVER) ? process.env.REALTIME_SERVER : null;
  const found = [];
  const walk = (dir, depth) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory() && depth < 4 && e.name !== 'CMakeFiles' && e.name !== '_deps') walk(p, depth + 1);
      else if (e.isFile() && e.name === 'realtime-server') found.push({ p, mtime: statSync(p).mtimeMs });
    }
  };
  for (const d of readdirSync(REPO)) if (d.startsWith('build')) walk(path.join(REPO, d), 0);
  found.sort((a, b) => b.mtime - a.mtime);
  return found[0] ? found[0].p : null;
}

function which(cmd) {
  for (const dir of (process.env.PATH || '').split(':')) {
    const p = path.join(dir, cmd);
    if (dir && existsSync(p)) return p;
  }
  return null;
}

// Starts a child and resolves once a line of its output matches `ready`.
function startChild(bin, args, ready, what) {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const started = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} not ready in 10 s:\n${output}`)), 10000);
    const onData = (chunk) => {
      output += chunk;
      const m = ready.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    };
    child.stdout.setEncoding('utf8').on('data', onData);
    child.stderr.setEncoding('utf8').on('data', onData);
    child.once('error', (err) => reject(err));
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code ?? signal}) before it was ready:\n${output}`));
    });
  });
  const stop = async (signal = 'SIGTERM') => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 12000);
    const r = await exited;
    clearTimeout(timer);
    return r;
  };
  return { child, started, exited, stop, output: () => output };
}

export async function startServer(bin, { port = 0, args = [] } = {}) {
  const proc = startChild(
    bin,
    ['--listen', `127.0.0.1:${port}`, '--log-level', 'warn', ...args],
    /listening on \[?([^\s\]]+?)\]?:(\d+)/,
    'realtime-server',
  );
  let m;
  try {
    m = await proc.started;
  } catch (err) {
    await proc.stop('SIGKILL');
    throw err;
  }
  const p = Number(m[2]);
  return { ...proc, port: p, http: `http://127.0.0.1:${p}`, args };
}

// Starts the server again on `port` (the old process has exited); retries briefly if the port is busy.
export async function restartServer(bin, port, args) {
  const deadline = Date.now() + 10000;
  for (;;) {
    try {
      return await startServer(bin, { port, args });
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

async function freePort() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

// A private, memory-only redis-server on a free loopback port; null when redis-server is not installed
// or REALTIME_TEST_REDIS=0.
export async function startRedis() {
  if (process.env.REALTIME_TEST_REDIS === '0') return null;
  const bin = which('redis-server');
  if (!bin) return null;
  const port = await freePort();
  const proc = startChild(
    bin,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'yes'],
    /Ready to accept connections/,
    'redis-server',
  );
  await proc.started;
  return { ...proc, port, url: `redis://127.0.0.1:${port}` };
}

export async function publish(server, body) {
  const res = await fetch(`${server.http}/api/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status !== 202) throw new Error(`publish answered ${res.status}: ${text}`);
  return JSON.parse(text);
}
