// Hostile input: slowloris. An upgrade whose headers are dripped one byte every 400 ms never
// completes; the server's handshake timeout (10 s by default) must end the socket (checked within
// 12 s), and the server keeps serving everyone else meanwhile. One such case only: it takes ~10 s.

import assert from 'node:assert/strict';
import net from 'node:net';
import { useBattery, upgradeRequest, sleep } from './lib/battery.mjs';

const ctx = useBattery();

ctx.hostile('slow.1 upgrade headers dripped 1 byte / 400 ms: closed by the handshake timeout within 12 s, no 101', async () => {
  const req = Buffer.from(upgradeRequest('/ws/slow'), 'latin1');
  const sock = net.connect({ port: ctx.port(), host: '127.0.0.1' });
  let received = '';
  let closedAt = null;
  sock.on('data', (d) => {
    received += d.toString('latin1');
  });
  sock.on('error', () => {});
  const closed = new Promise((resolve) => sock.on('close', () => {
    closedAt = Date.now();
    resolve();
  }));
  await new Promise((r) => sock.on('connect', r));
  const t0 = Date.now();
  // Drip while checking, every 2 s, that others are still served.
  let i = 0;
  let nextCheck = t0 + 2000;
  while (closedAt === null && Date.now() - t0 < 12000 && i < req.length - 2) {
    if (!sock.destroyed) sock.write(req.subarray(i, i + 1));
    i++;
    await Promise.race([sleep(400), closed]);
    if (Date.now() >= nextCheck && closedAt === null) {
      await ctx.healthy();
      nextCheck = Date.now() + 2000;
    }
  }
  if (closedAt === null) await Promise.race([closed, sleep(Math.max(0, 12000 - (Date.now() - t0)))]);
  sock.destroy();
  assert.ok(closedAt !== null, `dripping socket still open after ${Date.now() - t0} ms (${i} bytes sent)`);
  const took = closedAt - t0;
  assert.ok(took <= 12000, `closed after ${took} ms`);
  assert.doesNotMatch(received, /101 Switching/);
});
