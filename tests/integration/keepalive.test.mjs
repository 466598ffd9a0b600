// WebSocket-level keepalive (--ping-interval 1 --pong-timeout 3):
// - a ws client receives protocol pings (and, answering them automatically, stays open);
// - a raw TCP client that completes the handshake and never answers pings is closed within ~5 s;
// - a raw client that does answer pings with pongs stays open past the timeout.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { withServer, killAll } from './lib/server.mjs';
import { connect, waitFor } from './lib/client.mjs';
import { rawConnect, OP } from './lib/raw.mjs';

after(killAll);

test('pings every interval; a silent raw socket is closed, ponging clients stay', () =>
  withServer(['--ping-interval', '1', '--pong-timeout', '3'], async (s, clients) => {
    const good = await connect(s, '/ws/ka');
    clients.push(good);
    const silent = await rawConnect(s.port, '/ws/ka');
    clients.push(silent);
    const ponger = await rawConnect(s.port, '/ws/ka');
    ponger.autoPong = true;
    clients.push(ponger);
    const t0 = Date.now();

    await waitFor(() => good.pings >= 2, { timeoutMs: 3500, message: 'two protocol pings at the ws client' });
    // the silent client sees pings too, and never answers
    await silent.nextFrame((f) => f.opcode === OP.PING, 2500);

    const closed = await silent.waitEnd(7000);
    const elapsed = Date.now() - t0;
    assert.ok(closed, 'the silent socket must be closed');
    assert.ok(elapsed <= 6500, `closed within ~5 s (took ${elapsed} ms)`);
    assert.ok(elapsed >= 2500, `not closed before the pong timeout (took ${elapsed} ms)`);

    // the others are still fine, past the pong timeout
    assert.ok(good.isOpen, 'ws client (auto-pong) stays open');
    assert.equal(ponger.ended, false, 'raw client answering pings stays open');
    await good.roundTrip();
    ponger.sendJson({ type: 'ping' });
    await ponger.nextMessage((m) => m.type === 'pong', 3000);
  }));
