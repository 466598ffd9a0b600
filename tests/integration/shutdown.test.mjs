// Graceful shutdown:
// - SIGTERM (and SIGINT, and SIGHUP: a closed terminal) with open sockets: each socket receives close code 1001, the process exits 0
//   within 10 s;
// - a server started at once on the same port binds it (SO_REUSEADDR), whatever the old connections'
//   state;
// - POST /api/publish during the shutdown answers 503 (or the connection fails), never 202 once the
//   members have their 1001: such a message would reach nobody;
// - a second signal during the shutdown ends the process at once, with 128 + the signal.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, killAll } from './lib/server.mjs';
import { connect, closeAll, waitFor } from './lib/client.mjs';
import { RawClient } from '../support/node/raw.mjs';
import { get } from '../support/node/http.mjs';

after(killAll);

test('POST /api/publish during the shutdown is refused with 503, never accepted for nobody', async () => {
  const s = await startServer();
  const member = await connect(s, '/ws/gone');
  let closedAt = 0;
  member.ws.on('close', () => { closedAt = Date.now(); });
  let stop = false;
  const acceptedAfterClose = [];
  const statuses = new Set();
  const loop = async () => {
    while (!stop) {
      try {
        // Judged by when the request was sent: an answer the server gave before the 1001 may be
        // read after the member saw its close (another connection, read in any order).
        const sentAt = Date.now();
        const r = await fetch(`${s.httpUrl}/api/publish`, { method: 'POST', body: '{"room":"gone","text":"late"}' });
        await r.text();
        statuses.add(r.status);
        if (r.status === 202 && closedAt && sentAt > closedAt) acceptedAfterClose.push(r.status);
      } catch {
        stop = true; // the server has gone
      }
    }
  };
  const loops = [loop(), loop(), loop()];
  await new Promise((r) => setTimeout(r, 200));
  s.proc.kill('SIGTERM');
  const info = await s.waitExit(10_000);
  stop = true;
  await Promise.all(loops);
  assert.equal(info?.code, 0);
  assert.ok(statuses.has(202), 'publishes were accepted before the signal');
  assert.deepEqual(acceptedAfterClose, [], 'nothing accepted after the member was closed');
});

for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  test(`${signal} closes every socket with 1001 and exits 0; the port is reusable at once`, async () => {
    const s = await startServer();
    const clients = [];
    let s2;
    try {
      clients.push(await connect(s, '/ws/x'), await connect(s, '/ws/y'), await connect(s, '/ws'));
      // some traffic so the connections are not idle
      clients[0].send({ type: 'chat', data: { text: 'before shutdown' } });
      await clients[0].next({ type: 'chat' });
      s.proc.kill(signal);
      const closes = await Promise.all(clients.map((c) => c.expectClose(10_000)));
      for (const c of closes) assert.equal(c.code, 1001, `close code ${c.code}`);
      const info = await s.waitExit(10_000);
      assert.ok(info, 'process exits within 10 s');
      assert.equal(info.signal, null);
      assert.equal(info.code, 0);

      s2 = await startServer([], { listen: `127.0.0.1:${s.port}` });
      assert.equal(s2.port, s.port, 'the new server binds the same port');
      assert.equal((await get(s2, '/healthz')).status, 200);
      const c = await connect(s2, '/ws/again');
      clients.push(c);
    } finally {
      closeAll(clients);
      s.kill();
      if (s2) await s2.stop();
    }
  });
}

test('a second signal while stopping ends the process at once (exit 128 + the signal)', async () => {
  // Sockets that never answer the close keep a graceful stop waiting for its deadline.
  const s = await startServer();
  const silent = [];
  for (let i = 0; i < 3; i++) silent.push(await RawClient.open(s.port, { path: '/ws/silent' }));
  s.proc.kill('SIGTERM');
  await waitFor(() => s.output.includes('closing every socket'), { message: 'the shutdown began' });
  s.proc.kill('SIGINT');
  const info = await s.waitExit(10_000);
  for (const c of silent) c.destroy();
  assert.equal(info?.code, 130, `exit ${JSON.stringify(info)}; ${s.output.slice(-500)}`);
  assert.match(s.output, /signal 2 again: exiting/);
});
