// Hostile input: a client allowed to chat writes to room after room (join, 20 messages of 50 KB,
// leave). Each room keeps its history for an hour after its last message, and the number of rooms
// is not capped, so without a budget the pod keeps all of it (60 MB here). With --history-bytes
// 8 MiB the rooms' histories stay within it: the server's count says so, and its RSS grows by far
// less than what was written.

import assert from 'node:assert/strict';
import { useBattery, text, appPing } from './lib/battery.mjs';
import { get, metrics, metricSum } from '../support/node/http.mjs';

const BUDGET = 8 << 20;
const ctx = useBattery(['--history-bytes', String(BUDGET), '--rate-limit', '100000', '--rate-burst', '100000']);

const CLIENTS = 6;
const ROOMS = 10;
const MESSAGES = 20;
const chat = (room, n) => text(JSON.stringify({ type: 'chat', room, data: { text: `${n} ${'h'.repeat(50_000)}` } }));

ctx.hostile(`historyflood.1 ${CLIENTS} clients × ${ROOMS} new rooms × ${MESSAGES} messages of 50 KB: the histories stay within --history-bytes`, async () => {
  const server = ctx.server;
  const rss0 = ctx.server.rssKiB();
  await Promise.all(Array.from({ length: CLIENTS }, async (_, c) => {
    const client = await ctx.open('/ws');
    for (let r = 0; r < ROOMS; ++r) {
      const room = `flood-${c}-${r}`;
      client.send(text(JSON.stringify({ type: 'join', room })));
      for (let n = 0; n < MESSAGES; ++n) client.send(chat(room, n));
      client.send(text(JSON.stringify({ type: 'leave', room })));
      await client.send(text(appPing()));
      await client.expectJson({ type: 'pong' }, 10_000);  // all of it taken
      client.frames.length = 0;
    }
    client.destroy();
  }));
  const written = CLIENTS * ROOMS * MESSAGES * 50_000;
  const m = await metrics(server);
  const retained = metricSum(m, 'realtime_room_retained_bytes');
  assert.ok(retained <= BUDGET, `the rooms hold ${retained} bytes (budget ${BUDGET})`);
  assert.ok(metricSum(m, 'realtime_history_evictions_total') > 0, 'histories were dropped');
  const grew = (ctx.server.rssKiB() - rss0) * 1024;
  assert.ok(grew < written / 2, `RSS grew ${grew} bytes for ${written} written`);
  assert.equal((await get(server, '/healthz')).status, 200);
});
