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

// The sweep visits a thread's sessions a slice at a time (a tenth of the table per tenth of the
// period); every socket must still be pinged once per interval, not only those the first slices see.
test('with many sockets on each thread, every one is pinged every interval', () =>
  withServer(['--ping-interval', '1', '--pong-timeout', '3', '--threads', '2'], async (s, clients) => {
    const many = [];
    for (let batch = 0; batch < 6; batch++) {
      const opened = await Promise.all(
        Array.from({ length: 50 }, (_, i) => connect(s, `/ws/ka-many-${(batch * 50 + i) % 37}`)),
      );
      many.push(...opened);
      clients.push(...opened);
    }
    const start = many.map((c) => c.pings);
    // Two more pings each within 2 intervals, plus the sweep's period (250 ms) and slack.
    const fewest = () => Math.min(...many.map((c, i) => c.pings - start[i]));
    await waitFor(() => fewest() >= 2, { timeoutMs: 3500, message: 'two pings on each socket' }).catch((e) => {
      throw new Error(`${e.message}: the least pinged socket had ${fewest()} of ${many.length}`);
    });
    assert.ok(many.every((c) => c.isOpen), 'every socket (answering pings) stays open');
  }));
