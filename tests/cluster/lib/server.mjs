// realtime-server pods for the cluster harness, on the shared server harness
// (../../support/node/server.mjs: binary lookup, start, SIGTERM-and-assert-exit-0 stop, SIGKILL).
//
// startPod(redis, {podId, args}) runs `realtime-server --listen 127.0.0.1:0 --redis <url> --pod-id ID
// --rate-limit 100000 --rate-burst 100000 ...args`, waits for `listening on HOST:PORT`, and (unless
// {ready: false}) for GET /readyz 200. Pod: {podId, port, url, httpUrl, proc, stdout, stderr, kill()
// (SIGKILL), stop() (SIGTERM, asserts exit 0 within 10 s), exitInfo, logTail(), waitReady()}.
// startPods(redis, n) starts n pods named p0..p(n-1) with a per-file prefix. killAllPods() ends
// leftovers.

import { startServer, killAll } from '../../support/node/server.mjs';
import { get } from './http.mjs';
import { waitFor } from './redis.mjs';

export { serverBinary } from '../../support/node/server.mjs';

export async function startPod(redis, { podId, args = [], ready = true, startTimeoutMs = 10_000, readyTimeoutMs = 10_000 } = {}) {
  const pod = await startServer(
    ['--redis', redis.url, '--pod-id', podId, '--rate-limit', '100000', '--rate-burst', '100000', ...args],
    { what: `pod ${podId}`, startTimeoutMs, tailChars: 200_000 },
  );
  pod.podId = podId;
  /** Last lines of the pod's output, for failure messages. */
  pod.logTail = (n = 1500) =>
    `[${podId}: ${pod.argv.join(' ')} (${pod.bin})]\n[${podId} stdout] ${pod.stdout.slice(-n)}\n[${podId} stderr] ${pod.stderr.slice(-n)}`;
  /** Wait for GET /readyz to answer `status` (200 by default). */
  pod.waitReady = async (timeoutMs = readyTimeoutMs, status = 200) => {
    let last;
    await waitFor(
      async () => {
        last = (await get(pod, '/readyz')).status;
        return last === status;
      },
      { timeoutMs, intervalMs: 50, message: () => `pod ${podId} /readyz ${status} (last ${last})\n${pod.logTail(600)}` },
    );
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

export const killAllPods = killAll;
