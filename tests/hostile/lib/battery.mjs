// Fixture for the hostile-input battery. One server per test file (started with --jwt-secret s and
// the given flags, debug logging so every log path runs). Every input is a test made with
// hostile(name, fn): after fn, a fresh client must connect and get a pong within 1 s, and the process
// must be alive. At the end: no sanitizer report in stderr, no token in the logs, memory bounded,
// clean exit on SIGTERM.
//
// Run the battery against an ASan/UBSan build by pointing REALTIME_SERVER at it.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { SANITIZER_RE } from '../../support/node/server.mjs';
import { startServer } from '../../conformance/lib/fixture.mjs';
import { openClient, RawClient, text, appPing } from '../../support/node/raw.mjs';

export * from '../../support/node/raw.mjs';
export { startServer };

export const JWT_SECRET = 's';

const b64u = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');

/** A JWT: header and claims objects, HMAC-SHA256 with `secret` (or a raw signature string). */
export function jwt(claims, { header = { alg: 'HS256', typ: 'JWT' }, secret = JWT_SECRET, signature } = {}) {
  const signing = `${b64u(header)}.${b64u(claims)}`;
  const sig = signature ?? crypto.createHmac('sha256', secret).update(signing).digest('base64url');
  return `${signing}.${sig}`;
}
export const now = () => Math.floor(Date.now() / 1000);

/** Secrets that must never appear in the server's output. */
export const secretsSeen = new Set();

export function useBattery(args = [], { rssLimitMiB = 256 } = {}) {
  const ctx = { server: null, clients: new Set(), count: 0 };
  before(async () => {
    ctx.server = await startServer(['--jwt-secret', JWT_SECRET, '--log-level', 'debug', ...args]);
    ctx.rss0 = ctx.server.rssKiB();
  });
  after(async () => {
    for (const c of ctx.clients) c.destroy();
    if (!ctx.server) return;
    const alive = ctx.server.alive();
    const rss = ctx.server.rssKiB();
    const exit = await ctx.server.terminate();
    const out = ctx.server.stdout + ctx.server.stderr;
    assert.ok(alive, `server died during the battery: ${JSON.stringify(ctx.server.exitInfo)}; stderr tail: ${ctx.server.stderr.slice(-2000)}`);
    assert.doesNotMatch(ctx.server.stderr, SANITIZER_RE, 'sanitizer report in server stderr');
    for (const s of secretsSeen) assert.ok(!out.includes(s), `a token reached the server log: ${s.slice(0, 40)}...`);
    assert.ok(rss === null || rss < rssLimitMiB * 1024, `server RSS ${rss} KiB after the battery (limit ${rssLimitMiB} MiB)`);
    assert.equal(exit.code, 0, `exit status after SIGTERM: ${JSON.stringify(exit)}`);
  });

  ctx.port = () => ctx.server.port;

  ctx.open = async (path = '/ws', opts = {}) => {
    const c = await openClient(ctx.server.port, path, opts);
    ctx.clients.add(c);
    return c;
  };
  ctx.raw = async (opts = {}) => {
    const c = await RawClient.open(ctx.server.port, opts);
    ctx.clients.add(c);
    return c;
  };

  /** Process alive, and a fresh client gets welcome + pong within 1 s. */
  ctx.healthy = async (budgetMs = 1000) => {
    assert.ok(ctx.server.alive(), `server process died: ${JSON.stringify(ctx.server.exitInfo)}; stderr tail: ${ctx.server.stderr.slice(-1500)}`);
    const t0 = Date.now();
    const c = await openClient(ctx.server.port, '/ws', { timeoutMs: budgetMs });
    try {
      await c.send(text(appPing()));
      await c.expectJson({ type: 'pong' }, Math.max(1, budgetMs - (Date.now() - t0)));
    } finally {
      c.destroy();
    }
    const took = Date.now() - t0;
    assert.ok(took <= budgetMs, `fresh client served in ${took} ms (budget ${budgetMs} ms)`);
    assert.doesNotMatch(ctx.server.stderr, SANITIZER_RE, 'sanitizer report in server stderr');
  };

  /** One hostile input: fn(ctx), then the health check. */
  ctx.hostile = (name, fn, opts = {}) =>
    test(name, opts, async (t) => {
      ctx.count++;
      await fn(t);
      await ctx.healthy();
    });
  return ctx;
}
