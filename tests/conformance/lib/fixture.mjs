// Per-file fixture for the conformance suite: one server (max message 4096 bytes, rate limit out of
// the way so it does not mask framing behaviour) and a "witness": a normal client in a room that,
// after every protocol violation on another socket, must still chat and ping as if nothing happened.

import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer as startRealtime, SANITIZER_RE } from '../../support/node/server.mjs';
import { openClient, text, appPing, OP } from '../../support/node/raw.mjs';

export const MAX_MESSAGE = 4096;

/**
 * The server for the raw-socket suites (conformance and hostile): `--log-level warn` unless args name
 * a level, its whole output kept (the suites search it for sanitizer reports and leaked tokens).
 */
export function startServer(args = []) {
  return startRealtime(args, { logLevel: 'warn', startTimeoutMs: 15_000, tailChars: Infinity });
}

export function useServer(extraArgs = []) {
  const ctx = { server: null, witness: null, clients: new Set(), nonce: 0 };
  before(async () => {
    ctx.server = await startServer([
      '--max-message-bytes', String(MAX_MESSAGE),
      '--rate-limit', '100000',
      '--rate-burst', '100000',
      ...extraArgs,
    ]);
    ctx.witness = await openClient(ctx.server.port, '/ws/witness');
  });
  after(async () => {
    for (const c of ctx.clients) c.destroy();
    ctx.witness?.destroy();
    if (ctx.server) {
      const alive = ctx.server.alive();
      const exit = await ctx.server.terminate();
      assert.ok(alive, `server died during the suite: ${JSON.stringify(ctx.server.exitInfo)}`);
      assert.doesNotMatch(ctx.server.stderr, SANITIZER_RE, 'sanitizer report in server stderr');
      assert.equal(exit.code, 0, `server exit status after SIGTERM: ${JSON.stringify(exit)}`);
    }
  });

  /** A fresh client (welcome consumed), closed by the fixture at the end. */
  ctx.open = async (path = '/ws', opts = {}) => {
    const c = await openClient(ctx.server.port, path, opts);
    ctx.clients.add(c);
    return c;
  };

  /** The witness still chats (its own message comes back) and still answers app pings. */
  ctx.witnessOk = async () => {
    assert.ok(ctx.server.alive(), 'server process is gone');
    const n = ++ctx.nonce;
    await ctx.witness.send(text({ type: 'chat', room: 'witness', data: { n } }));
    const m = await ctx.witness.expectJson((x) => x.type === 'chat' && x.data && x.data.n === n, 2000);
    assert.equal(m.room, 'witness');
    await ctx.witness.send(text(appPing()));
    await ctx.witness.expectJson({ type: 'pong' }, 2000);
    ctx.witness.assertServerFramesValid();
  };

  /**
   * A protocol violation: opens a client, sends `bytes` (Buffer or array of Buffers sent one by one),
   * expects a close with `code` and the TCP close, then checks the witness.
   * opts.before(c): a function run after the welcome and before the bytes; opts.expectBefore: a list
   * of checks on the frames received before the close.
   */
  ctx.violation = async (bytes, code, { prefix, afterClose } = {}) => {
    const c = await ctx.open();
    if (prefix) await prefix(c);
    const list = Array.isArray(bytes) ? bytes : [bytes];
    for (const b of list) await c.send(b);
    const r = await c.expectClose(code, 2000);
    c.assertServerFramesValid();
    if (afterClose) await afterClose(r, c);
    await ctx.witnessOk();
    return r;
  };

  /** A valid exchange: sends bytes, expects n pong envelopes (default 1), socket still open after. */
  ctx.expectPongs = async (c, n = 1, timeoutMs = 2000) => {
    const out = [];
    for (let i = 0; i < n; i++) out.push(await c.expectJson({ type: 'pong' }, timeoutMs));
    return out;
  };

  /** Reads the next frames and asserts they are WebSocket pongs with these payloads, in order. */
  ctx.expectControlPongs = async (c, payloads, timeoutMs = 2000) => {
    for (const p of payloads) {
      let f;
      do f = await c.read(timeoutMs);
      while (f.op === OP.ping);
      assert.equal(f.op, OP.pong, `expected a pong frame, got op ${f.op} ${f.text ?? ''}`);
      assert.ok(f.fin, 'pong must be a final frame');
      assert.deepEqual(f.payload, Buffer.from(p), 'pong payload must echo the ping payload');
    }
  };
  return ctx;
}
