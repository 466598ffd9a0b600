// HTTP helpers for the cluster harness: the shared ones (../../support/node/http.mjs) with a 3 s
// timeout on every request, plus metric() and presenceList().

import * as http from '../../support/node/http.mjs';

const TIMEOUT = { timeoutMs: 3000 };

/** GET path on a pod; resolves {status, headers, text, json}. */
export const get = (pod, path, opts) => http.get(pod, path, { ...TIMEOUT, ...opts });
/** POST a JSON body to path on a pod. */
export const post = (pod, path, body, opts) => http.post(pod, path, body, { ...TIMEOUT, ...opts });
export const publish = (pod, body) => post(pod, '/api/publish', body);

/** Value of an unlabelled metric (or the sum over its label sets); undefined when absent. */
export async function metric(pod, name) {
  return http.metricSum(await http.metrics(pod, TIMEOUT), name);
}

/** GET /api/rooms/{room}/presence -> array of {user_id, status} (throws on a non-200). */
export async function presenceList(pod, room) {
  const r = await get(pod, `/api/rooms/${encodeURIComponent(room)}/presence`);
  if (r.status !== 200) throw new Error(`presence of ${room} on ${pod.podId}: ${r.status} ${r.text}`);
  return r.json?.users ?? [];
}
