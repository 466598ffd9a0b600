// Graceful shutdown:
// - SIGTERM (and SIGINT) with open sockets: each socket receives close code 1001, the process exits 0
//   within 10 s;
// - a server started at once on the same port binds it (SO_REUSEADDR), whatever the old connections'
//   state.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, killAll } from './lib/server.mjs';
import { connect, closeAll } from './lib/client.mjs';
import { get } from '../support/node/http.mjs';

after(killAll);

for (const signal of ['SIGTERM', 'SIGINT']) {
  test(`${signal} closes every socket with 1001 and exits 0; the port is reusable at once`, async () => {
    const s = await startServer();
    const clients = [];
    let s2;
    try {
      clients.push(await connect(s, '/ws/x'), await connect(s, '/ws/y'), await connect(s, '/ws'));
      // some traffic so the connections are not idle
      clients[0].send({ type: 'chat', data: { text: 'before shutdown' } });
      await clients[0].next({ type: 'chat' });
      const t0 = Date.now();
      s.proc.kill(signal);
      const closes = await Promise.all(clients.map((c) => c.expectClose(10_000)));
      for (const c of closes) assert.equal(c.code, 1001, `close code ${c.code}`);
      const info = await s.waitExit(10_000);
      assert.ok(info, 'process exits within 10 s');
      assert.equal(info.signal, null);
      assert.equal(info.code, 0);
      assert.ok(Date.now() - t0 <= 10_000);

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
