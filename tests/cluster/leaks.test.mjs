// Leaks: 2000 connect / join / leave / disconnect cycles over 200 rooms on two pods (50 at a time,
// half closed cleanly and half cut without a close frame), while one long-lived member per pod stays
// in room "keep". Afterwards, within 10 s:
// - PUBSUB CHANNELS realtime:* (room and user channels) and PUBSUB NUMSUB of every cycled room are
//   back to the baseline taken before the cycles (the keep room still subscribed by both pods);
// - the Redis keys under realtime:* (presence, rooms, leases, whatever exists) are back to baseline,
//   names and sizes of hashes / sets / sorted sets / lists, except a room's shared message history
//   (realtime:history|ids:{room}), which is kept on purpose for recovery: those keys must be
//   bounded (the history list at most a quarter over --history-size, the trim slack) and expire
//   (a TTL of at most 61 minutes);
// - each pod's realtime_connections_total and GET /api/rooms are back to baseline;
// and the keep room still delivers across pods.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, killAllRedis, waitFor } from './lib/redis.mjs';
import { startPods, killAllPods } from './lib/server.mjs';
import { connect, closeAll, pool } from './lib/client.mjs';
import { get, metric } from './lib/http.mjs';

after(() => {
  killAllPods();
  killAllRedis();
});

const HISTORY_KEY = /^realtime:(history|ids):/;

/** {key: "type:size"} for every key under realtime:* but the history (strings: just the type). */
async function keyShape(redis) {
  const keys = (await redis.scanKeys('realtime:*')).filter((k) => !HISTORY_KEY.test(k));
  if (keys.length === 0) return {};
  const types = await redis.pipeline(keys.map((k) => ['TYPE', k]));
  const sizeCmd = { hash: 'HLEN', set: 'SCARD', zset: 'ZCARD', list: 'LLEN' };
  const sizes = await redis.pipeline(keys.map((k, i) => (sizeCmd[types[i]] ? [sizeCmd[types[i]], k] : ['EXISTS', k])));
  const out = {};
  keys.forEach((k, i) => {
    if (types[i] === 'none') return; // expired between SCAN and TYPE
    out[k] = sizeCmd[types[i]] ? `${types[i]}:${sizes[i]}` : types[i];
  });
  return out;
}

/** The history keys: each must expire within the hour, and each list hold at most `limit`. */
async function checkHistoryKeys(redis, limit) {
  const keys = (await redis.scanKeys('realtime:*')).filter((k) => HISTORY_KEY.test(k));
  if (keys.length === 0) return 0;
  const ttls = await redis.pipeline(keys.map((k) => ['TTL', k]));
  const types = await redis.pipeline(keys.map((k) => ['TYPE', k]));
  const sizeOf = { list: 'LLEN', hash: 'HLEN' };
  const lengths = await redis.pipeline(keys.map((k, i) => [sizeOf[types[i]] ?? 'EXISTS', k]));
  keys.forEach((k, i) => {
    if (types[i] === 'none') return;
    assert.ok(ttls[i] > 0 && ttls[i] <= 3660, `${k} expires within the hour and a minute (TTL ${ttls[i]})`);
    if (types[i] === 'list') assert.ok(lengths[i] <= limit, `${k} holds ${lengths[i]} <= ${limit}`);
    if (types[i] === 'hash') assert.equal(lengths[i], 1, `${k} holds one field, the current epoch`);
  });
  return keys.length;
}

async function roomsList(pod) {
  const r = await get(pod, '/api/rooms');
  assert.equal(r.status, 200);
  return (r.json?.rooms ?? []).map((x) => `${x.room}=${x.members}`).sort();
}

test('2000 connect/join/leave/disconnect cycles: Redis subscriptions, keys and room state back to baseline', { timeout: 90_000 }, async (t) => {
  const redis = await startRedis();
  const pods = await startPods(redis, 2, { prefix: 'leak' });
  const clients = [];
  try {
    const keepers = [];
    for (const p of pods) {
      const k = await connect(p, '/ws/keep');
      keepers.push(k);
      clients.push(k);
    }
    await redis.waitNumsub('realtime:room:keep', 2, 5000);
    // settle: both keepers listed cluster-wide, on each pod, before the baseline is taken
    await waitFor(async () => (await Promise.all(pods.map(roomsList))).every((rooms) => rooms.includes('keep=2')), {
      timeoutMs: 5000,
      message: '/api/rooms showing keep=2 on both pods',
    });

    const baseChannels = await redis.channels('realtime:*');
    const baseKeep = await redis.numsub('realtime:room:keep');
    const baseKeys = await keyShape(redis);
    const baseConns = await Promise.all(pods.map((p) => metric(p, 'realtime_connections_total')));
    const baseRooms = await Promise.all(pods.map(roomsList));

    const ROOMS = 200;
    const CYCLES = 2000;
    const room = (i) => `leak-${i % ROOMS}`;
    const started = Date.now();
    // sample the subscriptions while cycling: proves the cycles really subscribe rooms
    let peakChannels = baseChannels.length;
    let cycling = true;
    const sampler = (async () => {
      while (cycling) {
        peakChannels = Math.max(peakChannels, (await redis.channels('realtime:room:*')).length);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    await pool(Array.from({ length: CYCLES }, (_, i) => i), 50, async (i) => {
      const pod = pods[i % pods.length];
      const c = await connect(pod, `/ws/${room(i)}`);
      c.send({ type: 'join', room: room(i + 7) });
      if (i % 3 === 0) c.send({ type: 'chat', room: room(i + 7), data: { i } });
      c.send({ type: 'leave', room: room(i + 7) });
      if (i % 4 === 0) c.send({ type: 'leave', room: room(i) });
      if (i % 2 === 0) {
        await c.roundTrip(10_000);
        c.close();
        await c.closePromise;
      } else {
        if (i % 4 === 1) await c.roundTrip(10_000);
        c.terminate(); // no close frame
      }
    });
    const cyclesMs = Date.now() - started;
    cycling = false;
    await sampler;
    t.diagnostic(`${CYCLES} cycles in ${cyclesMs} ms; peak room channels ${peakChannels}; baseline channels ${baseChannels.join(' ')}; baseline keys ${JSON.stringify(baseKeys)}`);
    assert.ok(peakChannels > baseChannels.filter((c) => c.startsWith('realtime:room:')).length, 'room channels were subscribed during the cycles');

    const cycled = Array.from({ length: ROOMS }, (_, i) => `realtime:room:leak-${i}`);
    let state;
    await waitFor(
      async () => {
        const channels = await redis.channels('realtime:*');
        const numsub = await redis.numsubMany(cycled);
        const leftover = Object.entries(numsub).filter(([, n]) => n !== 0);
        state = { extraChannels: channels.filter((c) => !baseChannels.includes(c)).slice(0, 10), missing: baseChannels.filter((c) => !channels.includes(c)), leftover: leftover.slice(0, 10), extraCount: channels.length - baseChannels.length };
        return state.extraChannels.length === 0 && state.missing.length === 0 && leftover.length === 0;
      },
      { timeoutMs: 10_000, intervalMs: 200, message: () => `Redis subscriptions back to baseline after ${CYCLES} cycles (${cyclesMs} ms): ${JSON.stringify(state)}` },
    );
    assert.equal(await redis.numsub('realtime:room:keep'), baseKeep, 'the keep room is still subscribed by both pods');

    let keys;
    await waitFor(
      async () => {
        keys = await keyShape(redis);
        return JSON.stringify(keys) === JSON.stringify(baseKeys);
      },
      { timeoutMs: 10_000, intervalMs: 200, message: () => {
        const extra = Object.keys(keys).filter((k) => !(k in baseKeys));
        const changed = Object.keys(baseKeys).filter((k) => keys[k] !== baseKeys[k]).map((k) => `${k}: ${baseKeys[k]} -> ${keys[k]}`);
        return `realtime:* keys back to baseline: ${extra.length} extra (${extra.slice(0, 8).join(', ')}), changed [${changed.slice(0, 8).join('; ')}]`;
      } },
    );
    const historyKeys = await checkHistoryKeys(redis, 125);  // --history-size 100 plus the trim slack
    assert.ok(historyKeys > 0, 'the chat of the cycles left a shared history (the check above is not vacuous)');

    let conns;
    await waitFor(
      async () => {
        conns = await Promise.all(pods.map((p) => metric(p, 'realtime_connections_total')));
        return conns.every((n, i) => n === baseConns[i]);
      },
      { timeoutMs: 10_000, intervalMs: 200, message: () => `realtime_connections_total back to ${baseConns} (now ${conns})` },
    );
    let rooms;
    await waitFor(
      async () => {
        rooms = await Promise.all(pods.map(roomsList));
        return JSON.stringify(rooms) === JSON.stringify(baseRooms);
      },
      { timeoutMs: 10_000, intervalMs: 200, message: () => `/api/rooms back to ${JSON.stringify(baseRooms)} (now ${JSON.stringify(rooms.map((r) => r.slice(0, 8)))})` },
    );

    // the long-lived members still talk across pods
    keepers[0].send({ type: 'chat', data: { text: 'still here' } });
    await keepers[1].next((m) => m.data?.text === 'still here', 3000, 'keep room chat across pods after the cycles');
    for (const k of keepers) assert.equal(k.closed, null);
  } catch (e) {
    for (const p of pods) e.message += `\n${p.logTail(600)}`;
    throw e;
  } finally {
    closeAll(clients);
    await Promise.all(pods.map((p) => p.stop().catch(() => p.kill())));
    await redis.stop();
  }
});
