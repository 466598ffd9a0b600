// Runs realtime-server (and, when available, a throwaway redis-server) for the browser tests, on the
// shared harness (../../support/node/server.mjs). Binary: findServer() (null when none is built).
import { existsSync } from 'node:fs';
import path from 'node:path';
import * as harness from '../../support/node/server.mjs';
import * as http from '../../support/node/http.mjs';

export const REPO = harness.repoRoot;
export const findServer = harness.findServerBinary;

function which(cmd) {
  for (const dir of (process.env.PATH || '').split(':')) {
    const p = path.join(dir, cmd);
    if (dir && existsSync(p)) return p;
  }
  return null;
}

/** realtime-server on 127.0.0.1:port (0: any), `--log-level warn` unless args name a level. */
export function startServer(bin, { port = 0, args = [] } = {}) {
  return harness.startServer(args, { bin, listen: `127.0.0.1:${port}`, logLevel: 'warn', what: 'realtime-server' });
}

// Starts the server again on `port` (the old process has exited); retries briefly if the port is busy.
export function restartServer(bin, port, args) {
  return harness.restartServer(port, args, { bin, logLevel: 'warn', what: 'realtime-server' }, { intervalMs: 200 });
}

// A private, memory-only redis-server on a free loopback port; null when redis-server is not installed
// or REALTIME_TEST_REDIS=0.
export async function startRedis() {
  if (process.env.REALTIME_TEST_REDIS === '0') return null;
  const bin = which('redis-server');
  if (!bin) return null;
  const port = await harness.freePort();
  const proc = await harness.startProcess(
    bin,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'yes'],
    { env: process.env, ready: /Ready to accept connections/, readyOn: 'both', what: 'redis-server' },
  );
  proc.port = port;
  proc.url = `redis://127.0.0.1:${port}`;
  return proc;
}

export async function publish(server, body) {
  const r = await http.publish(server, body);
  if (r.status !== 202) throw new Error(`publish answered ${r.status}: ${r.text}`);
  return JSON.parse(r.text);
}
