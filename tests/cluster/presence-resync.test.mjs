// Presence is live state, not history, so what a pod's subscription misses cannot be read back
// like room messages. A pod whose subscription was lost compares, once it is back, what its
// members were told with the room's presence in Redis, and sends them the differences:
// - pod B is stopped (SIGSTOP, well within its lease) and, while it is, Redis drops its
//   subscriber for a full output buffer (client-output-buffer-limit pubsub 64 KB, overflowed by
//   12 MB of messages to another room only B follows), so every presence message of that time is
//   lost to it;
// - meanwhile on pod A: ann leaves, carl turns away, dave joins; erin stays online;
// - after SIGCONT, B's member gets exactly those three changes (ann offline, carl away, dave
//   online; nothing for erin or itself), and B's GET agrees.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, killAllRedis, waitFor, sleep } from './lib/redis.mjs';
import { startPods, killAllPods } from './lib/server.mjs';
import { connect, closeAll } from './lib/client.mjs';
import { presenceList } from './lib/http.mjs';
import { hs256 } from './lib/jwt.mjs';

after(() => {
  killAllPods();
  killAllRedis();
});

const SECRET = 'presence-resync-secret';
const isPresence = (m) => m.type === 'presence';

test('a pod whose subscription was lost sends its members the presence changes they missed', { timeout: 60_000 }, async () => {
  const redis = await startRedis();
  const [a, b] = await startPods(redis, 2, { prefix: 'resync', args: ['--jwt-secret', SECRET] });
  const clients = [];
  try {
    const token = (user) => hs256({ sub: user, exp: Math.floor(Date.now() / 1000) + 600 }, SECRET);
    const join = async (pod, user) => {
      const c = await connect(pod, `/ws/room?token=${token(user)}`);
      clients.push(c);
      return c;
    };
    const watch = await join(b, 'watch');
    clients.push(await connect(b, `/ws/bulk?token=${token('bulk-reader')}`));
    const ann = await join(a, 'ann');
    const carl = await join(a, 'carl');
    await join(a, 'erin');
    for (const user of ['ann', 'carl', 'erin']) {
      await watch.next((m) => isPresence(m) && m.data.user_id === user && m.data.status === 'online', 5000, `${user} online`);
    }
    // B's snapshot of the room is read once its subscription is confirmed (a Redis round trip or
    // two; sanitizer builds are slower): give it that moment.
    await sleep(1000);
    watch.queue = watch.queue.filter((m) => !isPresence(m));  // its own "online" among them

    await redis.cmd('CONFIG', 'SET', 'client-output-buffer-limit', 'pubsub 64kb 64kb 0');
    b.proc.kill('SIGSTOP');
    try {
      // More than the kernel's socket buffers hold, to a room only B follows.
      const bulk = JSON.stringify({ type: 'chat', data: { text: 'b'.repeat(1 << 20) } });
      for (let i = 0; i < 12; ++i) await redis.cmd('PUBLISH', 'realtime:room:bulk', bulk);
      ann.close();
      carl.send({ type: 'presence', data: { status: 'away' } });
      await join(a, 'dave');
      // Every change is in Redis before B resumes.
      await waitFor(async () => {
        const users = (await presenceList(a, 'room')).map((u) => `${u.user_id}:${u.status}`).sort();
        return JSON.stringify(users) === JSON.stringify(['carl:away', 'dave:online', 'erin:online', 'watch:online']);
      }, { timeoutMs: 5000, message: 'the changes made on pod A' });
      await waitFor(async () => !(await redis.cmd('CLIENT', 'LIST', 'TYPE', 'pubsub')).includes(`name=realtime-sub-${b.podId} `), {
        timeoutMs: 5000, message: 'Redis dropping the stopped pod\'s subscriber',
      });
    } finally {
      b.proc.kill('SIGCONT');
    }
    await redis.cmd('CONFIG', 'SET', 'client-output-buffer-limit', 'pubsub 32mb 8mb 60');

    const got = [];
    const deadline = Date.now() + 8000;
    while (Date.now() < deadline) {
      const m = await watch.next(isPresence, Math.max(1, deadline - Date.now()), 'presence').catch(() => null);
      if (!m) break;
      got.push(`${m.data.user_id}:${m.data.status}`);
    }
    assert.deepEqual(got.sort(), ['ann:offline', 'carl:away', 'dave:online'], `presence sent to B's member: ${got}`);
    const users = (await presenceList(b, 'room')).map((u) => `${u.user_id}:${u.status}`).sort();
    assert.deepEqual(users, ['carl:away', 'dave:online', 'erin:online', 'watch:online']);
  } finally {
    closeAll(clients);
  }
});

// When Redis lost its data (restarted empty), no pod announces what the loss changed: a pod's part
// comes back by its rewrite, announcing nothing. A resync then must not take a pod that has not
// rewritten yet for users who left: it becomes a snapshot, and another is taken a renewal period
// later, once every pod's part is back. Pod A is stopped while Redis restarts empty, so B resyncs
// before A's users are back; B's member gets no presence message at all, and once A resumes, both
// pods list everyone again; a later loss of B's subscription sends nothing either.
test('after Redis restarted empty, a resync announces nothing for a pod that has not rewritten its part yet', { timeout: 60_000 }, async () => {
  const redis = await startRedis();
  const [a, b] = await startPods(redis, 2, { prefix: 'resync-empty', args: ['--jwt-secret', SECRET] });
  const clients = [];
  try {
    const token = (user) => hs256({ sub: user, exp: Math.floor(Date.now() / 1000) + 600 }, SECRET);
    const watch = await connect(b, `/ws/room?token=${token('watch')}`);
    const ann = await connect(a, `/ws/room?token=${token('ann')}`);
    clients.push(watch, ann);
    await watch.next((m) => isPresence(m) && m.data.user_id === 'ann' && m.data.status === 'online', 5000, 'ann online');
    await sleep(1000);  // B's snapshot, as above
    watch.queue = watch.queue.filter((m) => !isPresence(m));

    a.proc.kill('SIGSTOP');
    try {
      await redis.restart();
      // B is back: its subscription proven again (and its resync sent) while A's part is missing.
      await waitFor(async () => (await redis.cmd('CLIENT', 'LIST', 'TYPE', 'pubsub')).includes(`name=realtime-sub-${b.podId} `), {
        timeoutMs: 8000, message: 'B subscribed again',
      });
      await waitFor(async () => JSON.stringify((await presenceList(b, 'room')).map((u) => u.user_id)) === '["watch"]', {
        timeoutMs: 5000, message: 'B sees only its own user',
      });
      await sleep(1500);
    } finally {
      a.proc.kill('SIGCONT');
    }
    await waitFor(async () => {
      const users = (await presenceList(b, 'room')).map((u) => `${u.user_id}:${u.status}`).sort();
      return JSON.stringify(users) === JSON.stringify(['ann:online', 'watch:online']);
    }, { timeoutMs: 10_000, message: 'A rewrote its part: B lists ann again' });
    await sleep(1000);
    const sent = watch.queue.filter(isPresence).map((m) => `${m.data.user_id}:${m.data.status}`);
    assert.deepEqual(sent, [], 'no presence message for a loss nobody announced');

    // B takes a fresh snapshot once every pod has rewritten its part (a renewal period after the
    // loss): a later loss of B's subscription, with nothing changed, then sends nothing either.
    await sleep(4000);
    const subscriber = (await redis.cmd('CLIENT', 'LIST', 'TYPE', 'pubsub')).split('\n')
      .find((line) => line.includes(`name=realtime-sub-${b.podId} `));
    await redis.cmd('CLIENT', 'KILL', 'ID', /id=(\d+)/.exec(subscriber)[1]);
    await waitFor(async () => (await redis.cmd('CLIENT', 'LIST', 'TYPE', 'pubsub')).includes(`name=realtime-sub-${b.podId} `), {
      timeoutMs: 8000, message: 'B subscribed again',
    });
    await sleep(1500);
    const later = watch.queue.filter(isPresence).map((m) => `${m.data.user_id}:${m.data.status}`);
    assert.deepEqual(later, [], 'a resync with nothing changed sends nothing');
  } finally {
    closeAll(clients);
  }
});
