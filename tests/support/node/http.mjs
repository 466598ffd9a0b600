// HTTP helpers (fetch) against a started server ({httpUrl}), and a Prometheus text-format parser.
// Plain ES module on node built-ins only.

async function answer(res) {
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** GET path; resolves {status, headers, text, json} (json undefined when the body is not JSON). */
export async function get(server, path, { headers = {}, timeoutMs } = {}) {
  const signal = timeoutMs ? AbortSignal.timeout(timeoutMs) : undefined;
  return answer(await fetch(server.httpUrl + path, { headers, signal }));
}

/** POST a JSON value (or a raw string body) to path. */
export async function post(server, path, body, { headers = {}, timeoutMs } = {}) {
  const res = await fetch(server.httpUrl + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: timeoutMs ? AbortSignal.timeout(timeoutMs) : undefined,
  });
  return answer(res);
}

/** POST /api/publish. */
export function publish(server, body, opts) {
  return post(server, '/api/publish', body, opts);
}

/** Parse Prometheus text format into {samples: [{name, labels, value}], types: {name: type}, text}. */
export function parseMetrics(text) {
  const samples = [];
  const types = {};
  for (const line of text.split('\n')) {
    const l = line.trim();
    if (!l) continue;
    if (l.startsWith('#')) {
      const m = /^#\s*TYPE\s+(\S+)\s+(\S+)/.exec(l);
      if (m) types[m[1]] = m[2];
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$/.exec(l);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"/g;
      let lm;
      while ((lm = re.exec(m[3]))) labels[lm[1]] = lm[2];
    }
    const v = m[4] === '+Inf' ? Infinity : m[4] === '-Inf' ? -Infinity : Number(m[4]);
    samples.push({ name: m[1], labels, value: v });
  }
  return { samples, types, text };
}

/** GET /metrics and parse it (plus .contentType); throws on a non-200. */
export async function metrics(server, opts) {
  const r = await get(server, '/metrics', opts);
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
  const parsed = parseMetrics(r.text);
  parsed.contentType = r.headers.get('content-type');
  return parsed;
}

/** Sum of every sample whose name is exactly `name` (all label sets); undefined when absent. */
export function metricSum(parsed, name) {
  const s = parsed.samples.filter((x) => x.name === name);
  if (s.length === 0) return undefined;
  return s.reduce((a, x) => a + x.value, 0);
}

/**
 * Sum of every counter/gauge sample whose name contains `fragment` (histogram/summary parts
 * _bucket/_sum/_count excluded). undefined when none.
 */
export function metricSumMatching(parsed, fragment) {
  const s = parsed.samples.filter((x) => x.name.includes(fragment) && !/_(bucket|sum|count)$/.test(x.name));
  if (s.length === 0) return undefined;
  return s.reduce((a, x) => a + x.value, 0);
}
