// Presence when a pod rewrites its part of the cluster state (PROTOCOL.md "Presence", OPERATIONS.md
// "When Redis fails"): the rewrite announces what it changes in a user's cluster-wide status, and
// nothing else. Two pods on one redis-server, a watcher on pod A, the user on pod B.
// - pod B stopped (SIGSTOP) past its lease: pod A sweeps it and announces its user offline; once
//   pod B resumes (SIGCONT) it finds its lease gone, rewrites its part, and the user is announced
//   online again within a few seconds, on both pods, and GET .../presence lists it on both;
// - FLUSHALL: nothing was announced for the loss, so the rewrite announces nothing either (the
//   members never saw the users leave), and both pods list them again;
// - pod B's connections to Redis killed (CLIENT KILL, the lease kept): pod B reconnects and rewrites
//   its part, which changes nothing, so no presence event is sent.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from './lib/redis.mjs';
import { clusterFixture } from './lib/fixture.mjs';
import { presenceList } from './lib/http.mjs';

let redis;
let pods;
const member = clusterFixture(2, { prefix: 'rewrite' }, (c) => ({ redis, pods } = c));

const presenceOf = (user, status) => (m) =>
  m.type === 'presence' && m.data?.user_id === user && (status === undefined || m.data?.status === status);

// The user's status in `room` by GET /api/rooms/{room}/presence on every pod, once all say `want`.
async function agreed(room, user, want, what, timeoutMs = 5000) {
  let got;
  await waitFor(
    async () => {
      got = await Promise.all(pods.map(async (p) => (await presenceList(p, room)).find((u) => u.user_id === user)?.status ?? 'offline'));
      return got.every((s) => s === want);
    },
    { timeoutMs, intervalMs: 100, message: () => `${what}: ${user} ${want} on every pod (got ${JSON.stringify(got)})` },
  );
}

// A watcher on pod A and a helper on pod B, then the user on pod B, announced online to both.
async function setup(room) {
  const [a, b] = pods;
  const watcher = await member(a, `/ws/${room}`);
  const helper = await member(b, `/ws/${room}`);
  await watcher.next(presenceOf(helper.userId, 'online'), 5000, 'the helper on pod B announced at pod A');
  const user = await member(b, `/ws/${room}`);
  await watcher.next(presenceOf(user.userId, 'online'), 5000, 'the user on pod B announced at pod A');
  await helper.next(presenceOf(user.userId, 'online'), 5000, 'the user on pod B announced at pod B');
  await agreed(room, user.userId, 'online', 'before');
  const events = (w) => w.seen(presenceOf(user.userId)).map((m) => m.data.status);
  return { a, b, watcher, helper, user, events };
}

// Every presence event sent before this call has reached `w`: a new user joins on pod B (its
// presence goes through pod B's command connection after whatever it queued before) and is seen.
async function barrier(w, room) {
  const probe = await member(pods[1], `/ws/${room}`);
  await w.next(presenceOf(probe.userId, 'online'), 5000, 'barrier: a later join on pod B announced');
  await w.roundTrip();
}

test('pod B stopped past its lease: its user announced offline, then online again once it resumes', { timeout: 60_000 }, async () => {
  const room = 'rewrite-stop';
  const { b, watcher, helper, user, events } = await setup(room);
  b.proc.kill('SIGSTOP');
  let resumed = false;
  try {
    await watcher.next(presenceOf(user.userId, 'offline'), 16_000, 'offline of the stopped pod\'s user at pod A (the sweep)');
    await agreed(room, user.userId, 'offline', 'pod B swept', 1000).catch(() => {}); // pod B cannot answer: informative only
    b.proc.kill('SIGCONT');
    resumed = true;
    await watcher.next(presenceOf(user.userId, 'online'), 6000, 'online of the user at pod A after pod B resumed');
    await agreed(room, user.userId, 'online', 'pod B resumed');
    await barrier(watcher, room);
    assert.deepEqual(events(watcher), ['online', 'offline', 'online'], 'events at pod A');
    // Pod B's own members: whatever they were told of the sweep, they end with online.
    await barrier(helper, room);
    const atB = events(helper);
    assert.equal(atB.at(-1), 'online', `events at pod B: ${JSON.stringify(atB)}`);
    assert.equal(user.closed, null, 'the user\'s socket stayed open');
  } catch (e) {
    for (const p of pods) e.message += `\n${p.logTail(1500)}`;
    throw e;
  } finally {
    if (!resumed) b.proc.kill('SIGCONT');
  }
});

test('FLUSHALL: the pods rewrite their part, and no presence event is sent for it', { timeout: 30_000 }, async () => {
  const room = 'rewrite-flush';
  const { a, b, watcher, helper, user, events } = await setup(room);
  await redis.cmd('FLUSHALL');
  // Both pods rewrote their part (the lease found gone at the next renewal, every 3 s).
  await waitFor(async () => (await redis.cmd('HGET', `realtime:pod:${b.podId}:rooms`, room)) === '2' &&
    (await redis.cmd('HGET', `realtime:pod:${a.podId}:rooms`, room)) === '1', { timeoutMs: 6000, message: 'both pods rewrote their member counts' });
  await agreed(room, user.userId, 'online', 'after FLUSHALL');
  await agreed(room, watcher.userId, 'online', 'after FLUSHALL (the watcher)');
  await barrier(watcher, room);
  await barrier(helper, room);
  assert.deepEqual(events(watcher), ['online'], 'events at pod A');
  assert.deepEqual(events(helper), ['online'], 'events at pod B');
  assert.equal(helper.seen(presenceOf(watcher.userId)).length, 0, 'no event for the watcher at pod B');
});

test('pod B\'s Redis connections killed (lease kept): it rewrites its part, and no presence event is sent', { timeout: 30_000 }, async () => {
  const room = 'rewrite-kill';
  const { b, watcher, helper, events } = await setup(room);
  const ours = (list) =>
    String(list)
      .split('\n')
      .map((line) => ({ id: /\bid=(\d+)/.exec(line)?.[1], name: /\bname=(\S*)/.exec(line)?.[1] ?? '' }))
      .filter((c) => c.id && c.name.includes(b.podId));
  const before = ours(await redis.cmd('CLIENT', 'LIST'));
  assert.ok(before.some((c) => c.name === `realtime-pub-${b.podId}`), `pod B's command connection: ${JSON.stringify(before)}`);
  // A room pod B no longer has: gone once the rewrite ran (it proves the rewrite happened).
  await redis.cmd('HSET', `realtime:pod:${b.podId}:rooms`, 'rewrite-ghost', '3');
  for (const c of before) await redis.cmd('CLIENT', 'KILL', 'ID', c.id);
  let now;
  await waitFor(
    async () => {
      now = ours(await redis.cmd('CLIENT', 'LIST'));
      return now.some((c) => c.name === `realtime-pub-${b.podId}` && !before.some((o) => o.id === c.id));
    },
    { timeoutMs: 5000, message: () => `pod B's command connection back (${JSON.stringify(now)})` },
  );
  await waitFor(async () => (await redis.cmd('HGET', `realtime:pod:${b.podId}:rooms`, 'rewrite-ghost')) === null, {
    timeoutMs: 5000,
    message: 'pod B rewrote its part after the reconnect',
  });
  await pods[1].waitReady(5000);
  await barrier(watcher, room);
  await barrier(helper, room);
  assert.deepEqual(events(watcher), ['online'], 'events at pod A');
  assert.deepEqual(events(helper), ['online'], 'events at pod B');
});
