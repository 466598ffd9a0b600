// HTTP helpers for the cluster harness (fetch, with a timeout) and a small Prometheus text reader.

/** GET path on a pod; resolves {status, text, json}. json is undefined when the body is not JSON. */
export async function get(pod, path, { timeoutMs = 3000, headers = {} } = {}) {
  const res = await fetch(pod.httpUrl + path, { headers, signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json };
}

/** POST a JSON body to path on a pod. */
export async function post(pod, path, body, { timeoutMs = 3000, headers = {} } = {}) {
  const res = await fetch(pod.httpUrl + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json };
}

export function publish(pod, body) {
  return post(pod, '/api/publish', body);
}

/** Value of an unlabelled metric (or the sum over its label sets); undefined when absent. */
export async function metric(pod, name) {
  const r = await get(pod, '/metrics');
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
  let sum;
  for (const line of r.text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line.trim());
    if (m && m[1] === name) sum = (sum ?? 0) + Number(m[3]);
  }
  return sum;
}

/** GET /api/rooms/{room}/presence -> array of {user_id, status} (throws on a non-200). */
export async function presenceList(pod, room) {
  const r = await get(pod, `/api/rooms/${encodeURIComponent(room)}/presence`);
  if (r.status !== 200) throw new Error(`presence of ${room} on ${pod.podId}: ${r.status} ${r.text}`);
  return r.json?.users ?? [];
}
