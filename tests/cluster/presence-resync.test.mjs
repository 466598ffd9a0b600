// Presence is live state, not history, so what a pod's subscription misses cannot be read back
// like room messages. A pod whose subscription was lost compares, once it is back, what its
// members were told with the room's presence in Redis, and sends them the differences. The test
// watches pod B's control channel from a subscriber of its own: B's snapshots and resyncs are
// published there, so each step waits for the one it needs instead of for time.
// - pod B is stopped (SIGSTOP, well within its lease) and, while it is, Redis drops its
//   subscriber for a full output buffer (client-output-buffer-limit pubsub 64 KB, overflowed by
//   12 MB of messages to another room only B follows), so every presence message of that time is
//   lost to it;
// - meanwhile on pod A: ann leaves, carl turns away, dave joins; erin stays online;
// - after SIGCONT, B's member gets exactly those three changes (ann offline, carl away, dave
//   online; nothing for erin or itself), and B's GET agrees.
// - Redis restarted empty while pod A is stopped: B's resync (A's part not rewritten yet) sends
//   nothing, and what B's member was told stays what later messages compare with: ann leaving
//   after A rewrote its part is announced, once; a later resync with nothing changed sends nothing.
// - Redis down, a user on pod A leaving meanwhile (A cannot announce it), Redis back empty: once
//   the pods have rewritten their part, B's members are sent what the loss hid (cat offline), and
//   nothing for the users still there; a pod that comes back after that compare (stopped) has its
//   users announced again (ann offline, then online).
// - a room first joined on B while B's subscriber cannot reconnect: B reads the room's presence at
//   once (its snapshot could not come), and the resync once the subscriber is back sends the
//   member what it missed meanwhile (ann offline).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, killAllRedis, waitFor, redisSubscriber } from './lib/redis.mjs';
import { startPods, killAllPods } from './lib/server.mjs';
import { connect, closeAll, redisBarrier } from './lib/client.mjs';
import { presenceList } from './lib/http.mjs';
import { hs256 } from './lib/jwt.mjs';

after(() => {
  killAllPods();
  killAllRedis();
});

const SECRET = 'presence-resync-secret';
const isPresence = (m) => m.type === 'presence';
const presenceSent = (client) => client.queue.filter(isPresence).map((m) => `${m.data.user_id}:${m.data.status}`);
const sync = (kind, room) => (m) => m.startsWith(`presence-sync\n${kind}\n${room}`);
const statuses = async (pod, room) => (await presenceList(pod, room)).map((u) => `${u.user_id}:${u.status}`).sort();
const token = (user) => hs256({ sub: user, exp: Math.floor(Date.now() / 1000) + 600 }, SECRET);
const subscriberOf = async (redis, pod) =>
  (await redis.cmd('CLIENT', 'LIST', 'TYPE', 'pubsub')).split('\n').find((line) => line.includes(`name=realtime-sub-${pod.podId} `));

/** Two pods on a fresh Redis, a subscriber on B's control channel, and B's member `watch` in `room`. */
async function setUp(prefix, clients) {
  const redis = await startRedis();
  const [a, b] = await startPods(redis, 2, { prefix, args: ['--jwt-secret', SECRET] });
  const control = await redisSubscriber(redis.port, `realtime:control:${b.podId}`);
  const join = async (pod, user, room = 'room') => {
    const c = await connect(pod, `/ws/${room}?token=${token(user)}`);
    clients.push(c);
    return c;
  };
  const watch = await join(b, 'watch');
  await control.next(sync('snapshot', 'room'), 5000, "B's snapshot of the room");
  return { redis, a, b, control, join, watch };
}

test('a pod whose subscription was lost sends its members the presence changes they missed', { timeout: 60_000 }, async () => {
  const clients = [];
  const { redis, a, b, control, join, watch } = await setUp('resync', clients);
  try {
    await join(b, 'bulk-reader', 'bulk');
    const ann = await join(a, 'ann');
    const carl = await join(a, 'carl');
    await join(a, 'erin');
    for (const user of ['ann', 'carl', 'erin']) {
      await watch.next((m) => isPresence(m) && m.data.user_id === user && m.data.status === 'online', 5000, `${user} online`);
    }
    watch.queue = watch.queue.filter((m) => !isPresence(m)); // its own "online" among them

    await redis.cmd('CONFIG', 'SET', 'client-output-buffer-limit', 'pubsub 64kb 64kb 0');
    b.proc.kill('SIGSTOP');
    try {
      // More than the kernel's socket buffers hold, to a room only B follows.
      const bulk = JSON.stringify({ type: 'chat', data: { text: 'b'.repeat(1 << 20) } });
      for (let i = 0; i < 12; ++i) await redis.cmd('PUBLISH', 'realtime:room:bulk', bulk);
      await waitFor(async () => !(await subscriberOf(redis, b)), { timeoutMs: 5000, message: "Redis dropping the stopped pod's subscriber" });
      ann.close();
      carl.send({ type: 'presence', data: { status: 'away' } });
      await join(a, 'dave');
      // Every change is in Redis before B resumes.
      await waitFor(async () => JSON.stringify(await statuses(a, 'room')) === JSON.stringify(['carl:away', 'dave:online', 'erin:online', 'watch:online']), {
        timeoutMs: 5000, message: 'the changes made on pod A',
      });
    } finally {
      b.proc.kill('SIGCONT');
    }
    await redis.cmd('CONFIG', 'SET', 'client-output-buffer-limit', 'pubsub 32mb 8mb 60');

    await control.next(sync('resync', 'room'), 10_000, "B's resync of the room");
    // B delivers the differences as it reads the resync, before anything published after it.
    await redisBarrier(redis, 'realtime:room:room', [watch]);
    assert.deepEqual(presenceSent(watch).sort(), ['ann:offline', 'carl:away', 'dave:online']);
    assert.deepEqual(await statuses(b, 'room'), ['carl:away', 'dave:online', 'erin:online', 'watch:online']);
  } finally {
    control.close();
    closeAll(clients);
  }
});

// When Redis lost its data (restarted empty), no pod announces what the loss changed: a pod's part
// comes back by its rewrite, announcing nothing. A resync then must not take a pod that has not
// rewritten yet for users who left: read in another epoch, it only takes the epoch, and what B's
// members were told stays what later messages compare with. Pod A is stopped while Redis restarts
// empty, so B resyncs before A's users are back (B is stopped through the restart too, so that
// this test's subscriber to its control channel is back first); B's member gets no presence
// message for the loss; once A resumes, ann leaving is announced to it, once.
test('after Redis restarted empty, a resync announces nothing for a pod that has not rewritten its part yet', { timeout: 60_000 }, async () => {
  const clients = [];
  let { redis, a, b, control, join, watch } = await setUp('resync-empty', clients);
  try {
    const ann = await join(a, 'ann');
    await watch.next((m) => isPresence(m) && m.data.user_id === 'ann' && m.data.status === 'online', 5000, 'ann online');
    watch.queue = watch.queue.filter((m) => !isPresence(m));

    a.proc.kill('SIGSTOP');
    try {
      // B is stopped too until this test's subscriber is back on the new Redis, so that B's resync
      // cannot come before it.
      b.proc.kill('SIGSTOP');
      try {
        await redis.restart();
        control.close();
        control = await redisSubscriber(redis.port, `realtime:control:${b.podId}`);
      } finally {
        b.proc.kill('SIGCONT');
      }
      // B back, A's part missing: B's resync is read in another epoch than its snapshot was (or
      // in none yet): B takes the epoch and sends nothing.
      await control.next((m) => sync('resync', 'room')(m) && !m.includes('\nann\t'), 10_000, "B's resync without A's part");
      await redisBarrier(redis, 'realtime:room:room', [watch]);
    } finally {
      a.proc.kill('SIGCONT');
    }
    await waitFor(async () => JSON.stringify(await statuses(b, 'room')) === JSON.stringify(['ann:online', 'watch:online']), {
      timeoutMs: 10_000, message: 'A rewrote its part: B lists ann again',
    });
    assert.deepEqual(presenceSent(watch), [], 'no presence message for a loss nobody announced');

    // What B's members were told still stands: ann leaving now is announced to them (B's resync
    // did not take the partial view for what they know).
    ann.close();
    await watch.next((m) => isPresence(m) && m.data.user_id === 'ann' && m.data.status === 'offline', 5000, 'ann offline');
    // A later loss of B's subscription, with nothing changed since, sends nothing more.
    await redis.cmd('CLIENT', 'KILL', 'ID', /id=(\d+)/.exec(await subscriberOf(redis, b))[1]);
    await control.next(sync('resync', 'room'), 10_000, "B's resync after its subscriber was killed");
    await redisBarrier(redis, 'realtime:room:room', [watch]);
    assert.deepEqual(presenceSent(watch), [], 'nothing after ann offline (taken above): not twice, nothing else');
  } finally {
    control.close();
    closeAll(clients);
  }
});

test('after Redis restarted empty, a user who left while it was down is announced offline once the pods rewrote', { timeout: 60_000 }, async () => {
  const clients = [];
  let { redis, a, b, control, join, watch } = await setUp('resync-left', clients);
  try {
    const ann = await join(a, 'ann');
    const cat = await join(a, 'cat');
    for (const user of ['ann', 'cat']) {
      await watch.next((m) => isPresence(m) && m.data.user_id === user && m.data.status === 'online', 5000, `${user} online`);
    }
    watch.queue = watch.queue.filter((m) => !isPresence(m));
    await redis.kill();
    cat.close();
    await cat.expectClose();
    await redis.restart();
    control.close();
    control = await redisSubscriber(redis.port, `realtime:control:${b.podId}`);
    await waitFor(async () => JSON.stringify(await statuses(b, 'room')) === JSON.stringify(['ann:online', 'watch:online']), {
      timeoutMs: 10_000, message: 'both pods rewrote their part: ann and watch',
    });
    await watch.next((m) => isPresence(m) && m.data.user_id === 'cat' && m.data.status === 'offline', 15_000, 'cat offline');
    await redisBarrier(redis, 'realtime:room:room', [watch]);
    assert.deepEqual(presenceSent(watch), [], 'cat offline alone: nothing for ann or watch, still there');
    assert.ok(ann.closed === undefined || ann.closed === null, 'ann still connected');
  } finally {
    control.close();
    closeAll(clients);
  }
});

test('FLUSHALL, then a user leaves before its pod finds its part gone: announced offline on both pods once they rewrote, and nothing for those still there', { timeout: 60_000 }, async () => {
  const clients = [];
  const { redis, a, control, join, watch } = await setUp('resync-flush', clients);
  try {
    const watchA = await join(a, 'watcha');
    const ann = await join(a, 'ann');
    const cat = await join(a, 'cat');
    for (const user of ['watcha', 'ann', 'cat']) {
      await watch.next((m) => isPresence(m) && m.data.user_id === user && m.data.status === 'online', 5000, `${user} online on B`);
    }
    for (const user of ['ann', 'cat']) {
      await watchA.next((m) => isPresence(m) && m.data.user_id === user && m.data.status === 'online', 5000, `${user} online on A`);
    }
    for (const w of [watch, watchA]) w.queue = w.queue.filter((m) => !isPresence(m));
    // No connection drops: each pod finds its part gone at its next lease renewal (every 3 s).
    await redis.cmd('FLUSHALL');
    cat.close();
    await cat.expectClose();
    for (const [w, where] of [[watch, 'B'], [watchA, 'A']]) {
      await w.next((m) => isPresence(m) && m.data.user_id === 'cat' && m.data.status === 'offline', 15_000, `cat offline on ${where}`);
      await redisBarrier(redis, 'realtime:room:room', [w]);
      assert.deepEqual(presenceSent(w), [], `cat offline alone on ${where}: nothing for the users still there`);
    }
    assert.ok(ann.closed === undefined || ann.closed === null, 'ann still connected');
  } finally {
    control.close();
    closeAll(clients);
  }
});

test('after Redis restarted empty, a pod back only after the others compared has its users announced again', { timeout: 60_000 }, async () => {
  const clients = [];
  let { redis, a, b, control, join, watch } = await setUp('resync-late', clients);
  try {
    await join(a, 'ann');
    await watch.next((m) => isPresence(m) && m.data.user_id === 'ann' && m.data.status === 'online', 5000, 'ann online');
    watch.queue = watch.queue.filter((m) => !isPresence(m));
    a.proc.kill('SIGSTOP');
    try {
      await redis.restart();
      control.close();
      control = await redisSubscriber(redis.port, `realtime:control:${b.podId}`);
      // B compares once the pods had time to rewrite: A has not, and ann is gone for the cluster.
      await watch.next((m) => isPresence(m) && m.data.user_id === 'ann' && m.data.status === 'offline', 15_000, 'ann offline');
    } finally {
      a.proc.kill('SIGCONT');
    }
    await watch.next((m) => isPresence(m) && m.data.user_id === 'ann' && m.data.status === 'online', 10_000, 'ann online again');
    assert.deepEqual(await statuses(b, 'room'), ['ann:online', 'watch:online']);
    await redisBarrier(redis, 'realtime:room:room', [watch]);
    assert.deepEqual(presenceSent(watch), [], 'once each');
  } finally {
    control.close();
    closeAll(clients);
  }
});

// A room's first member on pod B while B's subscriber is down (Redis refuses its reconnection: the
// clients' cap reached): the snapshot, published through the subscription, could not come, so B
// reads the room's presence at once instead; ann leaves on pod A meanwhile, which B cannot hear;
// once B's subscriber is back, its resync sends the member ann's offline.
test("a room first joined while the pod's subscriber is down: the change it missed is sent by the resync", { timeout: 60_000 }, async () => {
  const clients = [];
  const { redis, a, b, control, join } = await setUp('resync-down', clients);
  const admin = await redis.link();
  try {
    const ann = await join(a, 'ann', 'late');
    await waitFor(async () => (await statuses(a, 'late')).includes('ann:online'), { timeoutMs: 5000, message: 'ann online' });
    const subscriber = /id=(\d+)/.exec(await subscriberOf(redis, b))[1];
    const connected = Number(/connected_clients:(\d+)/.exec(String(await admin.cmd('INFO', 'clients')))[1]);
    await admin.cmd('CONFIG', 'SET', 'maxclients', String(connected - 1));
    try {
      await admin.cmd('CLIENT', 'KILL', 'ID', subscriber);
      await waitFor(async () => (await fetch(`${b.httpUrl}/readyz`)).status === 503, { timeoutMs: 5000, message: "B's fan-out down" });
      const watch = await join(b, 'watch', 'late');
      // B's read of the room went out before its write of watch's presence, on one connection.
      await waitFor(async () => (await statuses(b, 'late')).includes('watch:online'), { timeoutMs: 5000, message: 'watch listed on B' });
      ann.close();
      await waitFor(async () => JSON.stringify(await statuses(a, 'late')) === JSON.stringify(['watch:online']), { timeoutMs: 5000, message: 'ann gone' });
      await admin.cmd('CONFIG', 'SET', 'maxclients', '10000');
      await control.next(sync('resync', 'late'), 15_000, "B's resync of the room");
      await redisBarrier(redis, 'realtime:room:late', [watch]);
      assert.ok(presenceSent(watch).includes('ann:offline'), `presence sent to watch: ${presenceSent(watch)}`);
      assert.ok(!presenceSent(watch).includes('ann:online'), `presence sent to watch: ${presenceSent(watch)}`);
      assert.deepEqual(await statuses(b, 'late'), ['watch:online']);
    } finally {
      await admin.cmd('CONFIG', 'SET', 'maxclients', '10000');
    }
  } finally {
    admin.close();
    control.close();
    closeAll(clients);
  }
});
