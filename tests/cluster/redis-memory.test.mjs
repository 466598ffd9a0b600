// Redis under its own memory limit, configured as OPERATIONS.md recommends (`maxmemory` with
// `maxmemory-policy volatile-lru`): a flood of messages into 3000 new rooms (~12 MB of history
// into a Redis capped at 8 MB) makes Redis evict the idlest histories and numberings, which all
// carry a TTL, and never what the pods' membership and presence are made of, which carry none.
// Meanwhile and afterwards:
// - a room in use across two pods delivers every message, once and in order, and no publish fails
//   (realtime_redis_publish_errors stays 0);
// - GET /api/rooms and presence still list the room's members on both pods, and both pods stay in
//   realtime:pods;
// - Redis evicted keys (the flood went past the limit) and stayed within it (with `noeviction`
//   instead, the room in use stops: its publishes fail with OOM; `allkeys-lru` passed too in the
//   runs tried, its sampling missing the few membership keys: that volatile-lru never evicts them
//   is Redis's documented rule, not something this test tells apart);
// - the latest flooded room keeps its history: a client recovers from its first message.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, killAllRedis, waitFor } from './lib/redis.mjs';
import { startPods, killAllPods } from './lib/server.mjs';
import { connect, closeAll, pool } from './lib/client.mjs';
import { get, metric, publish, presenceList } from './lib/http.mjs';
import { hs256 } from './lib/jwt.mjs';

after(() => {
  killAllPods();
  killAllRedis();
});

const SECRET = 'redis-memory-secret';
const MAXMEMORY = 8 << 20;
const info = async (redis, field) => Number(new RegExp(`${field}:(\\d+)`).exec(await redis.cmd('INFO', 'all'))[1]);

test('Redis at maxmemory with volatile-lru evicts idle histories; rooms in use, membership and presence are untouched', { timeout: 120_000 }, async () => {
  const redis = await startRedis();
  await redis.cmd('CONFIG', 'SET', 'maxmemory', String(MAXMEMORY));
  await redis.cmd('CONFIG', 'SET', 'maxmemory-policy', 'volatile-lru');
  const pods = await startPods(redis, 2, { prefix: 'mem', args: ['--jwt-secret', SECRET] });
  const clients = [];
  try {
    const token = (user) => hs256({ sub: user, exp: Math.floor(Date.now() / 1000) + 600 }, SECRET);
    const ann = await connect(pods[0], `/ws/live?token=${token('ann')}`);
    const bob = await connect(pods[1], `/ws/live?token=${token('bob')}`);
    clients.push(ann, bob);
    await redis.waitNumsub('realtime:room:live', 2, 5000);

    const text = 'f'.repeat(2000);
    const firstIds = new Map();
    const flood = pool(Array.from({ length: 3000 }, (_, i) => i), 16, async (i) => {
      for (let k = 0; k < 2; ++k) {
        const r = await publish(pods[i % 2], { room: `flood-${i}`, text });
        assert.equal(r.status, 202, `flood-${i}: ${r.text}`);
        if (k === 0) firstIds.set(i, r.json.id);
      }
    });
    const sent = [];
    const live = (async () => {
      for (let n = 0; n < 300; ++n) {
        bob.send({ type: 'chat', data: { text: `live-${n}` } });
        sent.push(`live-${n}`);
        await new Promise((res) => setTimeout(res, 10));
      }
    })();
    await Promise.all([flood, live]);

    const got = [];
    while (got.length < sent.length) {
      const m = await ann.next((x) => x.type === 'chat' && x.data?.text?.startsWith('live-'), 10_000, `live message ${got.length}`);
      got.push(m.data.text);
    }
    assert.deepEqual(got, sent, 'every message of the room in use, once and in order');

    const evicted = await info(redis, 'evicted_keys');
    assert.ok(evicted > 0, `Redis evicted keys (evicted_keys ${evicted})`);
    const used = await info(redis, 'used_memory');
    assert.ok(used <= MAXMEMORY * 1.1, `used_memory ${used} within maxmemory ${MAXMEMORY}`);
    for (const p of pods) assert.equal(await metric(p, 'realtime_redis_publish_errors'), 0);

    const podsSet = (await redis.cmd('SMEMBERS', 'realtime:pods')).sort();
    assert.deepEqual(podsSet, pods.map((p) => p.podId).sort(), 'both pods stay live');
    for (const p of pods) {
      const rooms = (await get(p, '/api/rooms')).json.rooms;
      assert.deepEqual(rooms.find((r) => r.room === 'live'), { room: 'live', members: 2 }, `rooms on ${p.podId}`);
      const users = (await presenceList(p, 'live')).map((u) => `${u.user_id}:${u.status}`).sort();
      assert.deepEqual(users, ['ann:online', 'bob:online'], `presence on ${p.podId}`);
    }

    const latest = await connect(pods[0], `/ws/flood-2999?last_id=${encodeURIComponent(firstIds.get(2999))}`);
    clients.push(latest);
    const rec = await latest.next((m) => m.type === 'system' && m.data?.event === 'recovered', 5000);
    assert.deepEqual([rec.data.recovered, rec.data.replayed], [true, 1], JSON.stringify(rec.data));
  } finally {
    closeAll(clients);
  }
});
