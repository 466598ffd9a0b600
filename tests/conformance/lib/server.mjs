// Starts the real realtime-server binary for a test file.
//
// Binary: $REALTIME_SERVER, else <repo>/build/server/realtime-server.
// startServer(args) runs `realtime-server --listen 127.0.0.1:0 ...args`, waits for the stdout line
// `listening on HOST:PORT` and returns {host, port, proc, alive(), stdout(), stderr(), rssKiB(), stop()}.
// stop() sends SIGTERM and resolves with the exit status (SIGKILL after 10 s).

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..', '..');

export function serverBinary() {
  if (process.env.REALTIME_SERVER) return path.resolve(process.env.REALTIME_SERVER);
  return path.join(repoRoot, 'build', 'server', 'realtime-server');
}

// Lines a sanitizer prints when it finds something (ASan, UBSan, LSan).
export const SANITIZER_RE = /(ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:|SUMMARY: \w+Sanitizer)/;

export async function startServer(args = [], { env = {}, timeoutMs = 15000 } = {}) {
  const bin = serverBinary();
  if (!fs.existsSync(bin)) throw new Error(`realtime-server not found at ${bin}: set REALTIME_SERVER`);
  const defaults = args.includes('--log-level') ? [] : ['--log-level', 'warn'];
  const proc = spawn(bin, ['--listen', '127.0.0.1:0', ...defaults, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let exit = null;
  const exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      exit = { code, signal };
      resolve(exit);
    });
  });
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => {
    stderr += d;
  });
  proc.stdout.setEncoding('utf8');
  const addr = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not print "listening on" within ${timeoutMs} ms; stderr: ${stderr}`)), timeoutMs);
    proc.stdout.on('data', (d) => {
      stdout += d;
      const m = /listening on ([^\s:]+|\[[^\]]+\]):(\d+)/.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve({ host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2]) });
      }
    });
    exited.then((e) => {
      clearTimeout(timer);
      reject(new Error(`server exited early (${JSON.stringify(e)}); stderr: ${stderr}`));
    });
  });
  return {
    ...addr,
    proc,
    args,
    alive: () => exit === null,
    exitInfo: () => exit,
    stderr: () => stderr,
    stdout: () => stdout,
    rssKiB() {
      try {
        const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${proc.pid}/status`, 'utf8'));
        return m ? Number(m[1]) : null;
      } catch {
        return null;
      }
    },
    async stop() {
      if (exit) return exit;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10000);
      const e = await exited;
      clearTimeout(timer);
      return e;
    },
  };
}
