// A pod SIGKILLed (no goodbye): the other pods report its users offline within 15 s (contract:
// "when a pod dies without a goodbye, the other pods report its users offline within 15 s").
// Two users on pod B in a room shared with a watcher on pod A (one of them also in a second room).
// After B's SIGKILL: the watcher gets presence `offline` for each of them, in each room, within 15 s;
// GET /api/rooms/{room}/presence on pod A no longer lists them; GET /api/rooms on pod A counts only
// the live members; the surviving pod stays ready and its socket open.
// A user with an away tab on pod A and an online one on pod B, pod B killed: announced away.
// A pod SIGTERMed instead (a graceful shutdown): its socket closed with 1001, exit 0, and its user
// announced offline at once, long before the lease would expire.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, killAllRedis, waitFor } from './lib/redis.mjs';
import { startPod, startPods, killAllPods } from './lib/server.mjs';
import { connect, closeAll } from './lib/client.mjs';
import { get, presenceList } from './lib/http.mjs';
import { hs256 } from './lib/jwt.mjs';

after(() => {
  killAllPods();
  killAllRedis();
});

const presenceOf = (user, status) => (m) =>
  m.type === 'presence' && m.data?.user_id === user && (status === undefined || m.data?.status === status);

// Two pods on a fresh redis-server; pod B is the one the test kills. The clients in `clients` are
// closed and the pods' logs added to a failure.
async function withDoomedPair(prefix, args, fn) {
  const redis = await startRedis();
  const pods = await startPods(redis, 2, { prefix, args });
  const [a, b] = pods;
  const clients = [];
  let failed = true;
  try {
    await fn({ redis, a, b, clients });
    failed = false;
  } catch (e) {
    for (const p of pods) e.message += `\n${p.logTail(800)}`;
    throw e;
  } finally {
    closeAll(clients);
    // Pod A ran the dead pod's sweep: its exit must be clean too (reported unless the test failed).
    const stopError = await a.stop().then(() => null, (e) => e);
    await b.kill();
    await redis.stop();
    if (stopError && !failed) throw stopError;
  }
}

test('pod SIGKILLed: its users reported offline by another pod within 15 s (events and presence API)', { timeout: 60_000 }, () =>
  withDoomedPair('death', [], async ({ redis, a, b, clients }) => {
    const room = 'doomed';
    const room2 = 'doomed-2';
    const watcher = await connect(a, `/ws/${room}`);
    await watcher.join(room2);
    // Pod A receives a room once its subscription is active (asynchronous, after the first join).
    await waitFor(async () => (await redis.numsub(`realtime:room:${room}`)) >= 1 &&
      (await redis.numsub(`realtime:room:${room2}`)) >= 1, { timeoutMs: 5000, message: 'pod A subscribed' });
    const v1 = await connect(b, `/ws/${room}`);
    const v2 = await connect(b, `/ws/${room}`);
    await v2.join(room2);
    clients.push(watcher, v1, v2);

    // precondition: presence is cluster-wide before the kill
    for (const v of [v1, v2]) await watcher.next((m) => presenceOf(v.userId, 'online')(m) && m.room === room, 5000, `presence online of ${v.userId} (pod B) at pod A`);
    // (the presence API is checked after the kill, so that the offline events are judged on their own)
    let users;
    const listedBefore = await waitFor(
      async () => {
        users = (await presenceList(a, room)).map((u) => u.user_id);
        return users.includes(v1.userId) && users.includes(v2.userId);
      },
      { timeoutMs: 5000 },
    ).then(() => true, () => false);
    const usersBefore = users;

    await b.kill();
    const killedAt = Date.now();
    const DEADLINE = 15_000;

    const waits = [
      watcher.next((m) => presenceOf(v1.userId, 'offline')(m) && m.room === room, DEADLINE, `offline of ${v1.userId} in ${room}`),
      watcher.next((m) => presenceOf(v2.userId, 'offline')(m) && m.room === room, DEADLINE, `offline of ${v2.userId} in ${room}`),
      watcher.next((m) => presenceOf(v2.userId, 'offline')(m) && m.room === room2, DEADLINE, `offline of ${v2.userId} in ${room2}`),
    ];
    await Promise.all(waits); // within DEADLINE of the kill

    assert.ok(listedBefore, `presence API on pod A listed the users of pod B before the kill (got ${JSON.stringify(usersBefore)})`);
    await waitFor(
      async () => {
        users = (await presenceList(a, room)).map((u) => u.user_id);
        return !users.includes(v1.userId) && !users.includes(v2.userId);
      },
      { timeoutMs: Math.max(500, DEADLINE - (Date.now() - killedAt)), message: () => `presence API on pod A without the dead pod's users (got ${JSON.stringify(users)})` },
    );
    assert.ok(users.includes(watcher.userId), `the live watcher is still listed: ${JSON.stringify(users)}`);

    const rooms = (await get(a, '/api/rooms')).json?.rooms ?? [];
    const count = (r) => rooms.find((x) => x.room === r)?.members ?? 0;
    assert.equal(count(room), 1, `/api/rooms on pod A after the kill: ${JSON.stringify(rooms)}`);
    assert.equal(count(room2), 1, `/api/rooms on pod A after the kill: ${JSON.stringify(rooms)}`);

    assert.equal(watcher.seen(presenceOf(v1.userId, 'offline')).length, 1, 'one offline for a dead user');
    assert.equal(watcher.closed, null, 'the watcher on the surviving pod stays connected');
    await watcher.roundTrip();
    await a.waitReady(3000);
  }),
);

// Pod B SIGTERMed (a graceful shutdown, docs/OPERATIONS.md "Shutdown"): its socket is closed with
// 1001, it exits 0, and it removes its presence from Redis on the way out, so the watcher on pod A
// gets the user's offline at once. Within 5 s of the SIGTERM: the lease path (a lease of 10 s,
// renewed every 3 s, then a sweep) could announce it 7 s after at the earliest.
test('pod SIGTERMed: its socket closed with 1001, its users announced offline by another pod at once, exit 0', { timeout: 60_000 }, () =>
  withDoomedPair('sigterm', [], async ({ redis, a, b, clients }) => {
    const room = 'leaving';
    const watcher = await connect(a, `/ws/${room}`);
    clients.push(watcher);
    await waitFor(async () => (await redis.numsub(`realtime:room:${room}`)) >= 1, { timeoutMs: 5000, message: 'pod A subscribed' });
    const x = await connect(b, `/ws/${room}`);
    clients.push(x);
    await watcher.next((m) => presenceOf(x.userId, 'online')(m) && m.room === room, 5000, `presence online of ${x.userId} (pod B) at pod A`);

    const DEADLINE = 5_000;
    const stoppedAt = Date.now();
    const stopped = b.stop(); // SIGTERM; asserts exit 0 within 10 s
    const closed = await x.expectClose(DEADLINE);
    assert.equal(closed.code, 1001, `close code of the socket on pod B: ${JSON.stringify(closed)}`);
    await watcher.next(
      (m) => presenceOf(x.userId, 'offline')(m) && m.room === room,
      Math.max(1, DEADLINE - (Date.now() - stoppedAt)),
      `offline of ${x.userId} within ${DEADLINE} ms of pod B's SIGTERM`,
    );
    await stopped;
    assert.equal(b.exitInfo.code, 0);

    assert.equal(watcher.seen(presenceOf(x.userId, 'offline')).length, 1, 'one offline for the user');
    const users = (await presenceList(a, room)).map((u) => u.user_id);
    assert.ok(!users.includes(x.userId), `presence API on pod A without pod B's user: ${JSON.stringify(users)}`);
    assert.equal(watcher.closed, null, 'the watcher on the surviving pod stays connected');
    await watcher.roundTrip();
  }),
);

// A user with an away tab on pod A and an online one on pod B (its status: online). Pod B is
// SIGKILLed: once its lease expires the others see the user go `away` (what pod A still holds), not
// offline, within 15 s, and GET .../presence on pod A says away.
const SECRET = 'pod-death-secret';
test('pod SIGKILLed while its user keeps an away tab on another pod: announced away, not offline', { timeout: 60_000 }, () =>
  withDoomedPair('death-away', ['--jwt-secret', SECRET], async ({ redis, a, b, clients }) => {
    const room = 'doomed-away';
    const user = `ada-${Date.now()}`;
    const token = hs256({ sub: user }, SECRET);
    const watcher = await connect(a, `/ws/${room}`);
    clients.push(watcher);
    await waitFor(async () => (await redis.numsub(`realtime:room:${room}`)) >= 1, { timeoutMs: 5000, message: 'pod A subscribed' });
    const tabA = await connect(a, `/ws/${room}?token=${token}`);
    const tabB = await connect(b, `/ws/${room}?token=${token}`);
    clients.push(tabA, tabB);
    await watcher.next(presenceOf(user, 'online'), 5000, `presence online of ${user} at pod A`);
    tabA.send({ type: 'presence', data: { status: 'away' } });
    await waitFor(async () => (await redis.cmd('HGET', `realtime:presence:${room}`, `${a.podId}|${user}`)) === 'away', {
      timeoutMs: 5000,
      message: `pod A's entry of ${user}: away`,
    });
    await waitFor(async () => (await redis.cmd('HGET', `realtime:presence:${room}`, `${b.podId}|${user}`)) === 'online', {
      timeoutMs: 5000,
      message: `pod B's entry of ${user}: online`,
    });
    const statusOnA = async () => (await presenceList(a, room)).find((u) => u.user_id === user)?.status ?? 'offline';
    assert.equal(await statusOnA(), 'online', 'online while the tab on pod B is');

    await b.kill();
    const DEADLINE = 15_000;
    await watcher.next(presenceOf(user), DEADLINE, `presence of ${user} after pod B died`);
    await watcher.roundTrip();
    const statuses = watcher.seen(presenceOf(user)).map((m) => m.data.status);
    assert.deepEqual(statuses, ['online', 'away'], `events at pod A for ${user}`);
    assert.equal(await statusOnA(), 'away', 'GET presence on pod A once pod B is gone');
    assert.equal(tabA.closed, null, 'the away tab stays connected');
  }),
);

// Two live pods given one --pod-id would take each other's messages for their own echoes. The lease
// holds each process's token: the pod whose lease another renews reports it (an error, and /readyz
// 503 naming it), and is ready again once the other has gone.
test('two live pods with one --pod-id: the one whose lease the other took reports it, until the other is gone', { timeout: 60_000 }, async () => {
  const redis = await startRedis();
  const first = await startPod(redis, { podId: 'twin' });
  const second = await startPod(redis, { podId: 'twin', ready: false });
  try {
    let answer;
    await waitFor(async () => {
      answer = await get(first, '/readyz');
      return answer.status === 503;
    }, { timeoutMs: 10_000, message: 'the first pod reports its id taken' });
    assert.match(answer.text, /pod id twin is used by another live pod/);
    assert.match(first.stderr + first.stdout, /pod id twin is used by another live pod/);
    await second.waitReady();
    await second.stop();
    await first.waitReady(10_000);
  } finally {
    await first.stop();
    await redis.stop();
  }
});
