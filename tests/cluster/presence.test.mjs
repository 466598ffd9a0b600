// Cluster-wide presence and rooms, three pods on one redis-server (contract: "Presence is
// cluster-wide"; GET /api/rooms and /api/rooms/{room}/presence answer "across pods").
// - a user joining a room on pod B is announced `online` to members on pod A, and `offline` once
//   when it leaves;
// - GET /api/rooms/{room}/presence on pod C (no member of the room there) lists the users of pods A
//   and B, and drops a user who left;
// - GET /api/rooms on every pod counts the members of every pod, and forgets the room once empty;
// - one user (same JWT subject) with sockets on pods A and B: members on pod C get one `online`,
//   nothing when the first socket closes, and one `offline` when the last one does;
// - a socket that set "away" while in no room, then joins one, is announced online, then away;
// - one user with a tab on pod A and one on pod B: its status is derived from both (online while
//   either is online, away when both are), announced at each change only, and the same in GET
//   /api/rooms/{room}/presence on every pod; the online tab leaving while the other is away makes
//   the user away (announced), the away tab leaving keeps it online;
// - one user with a tab on pod A and one on pod B, turning away and online at the same moment,
//   round after round: members on every pod get the same events, in the order the changes were
//   made (each a change: never the same status twice in a row), and are left with the user online;
// - a member count in Redis that is not a number (another program's write): GET /api/rooms still
//   answers, without it, and the pod lives on; 50 requests at once read Redis once or twice (the
//   other pods' counts are read at most once a second);
// - after FLUSHALL (data lost, no connection dropped) each pod finds its lease gone and rewrites its
//   member counts and presence: within 6 s both pods list every pod's members again.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from './lib/redis.mjs';
import { clusterFixture } from './lib/fixture.mjs';
import { closeAll, redisBarrier } from './lib/client.mjs';
import { get, metric, presenceList } from './lib/http.mjs';
import { hs256 } from './lib/jwt.mjs';

const SECRET = 'cluster-presence-secret';
let redis;
let pods;
const member = clusterFixture(3, { prefix: 'pres', args: ['--jwt-secret', SECRET] }, (c) => ({ redis, pods } = c));

const presenceOf = (user, status) => (m) =>
  m.type === 'presence' && m.data?.user_id === user && (status === undefined || m.data?.status === status);

async function roomMembers(pod, room) {
  const r = await get(pod, '/api/rooms');
  if (r.status !== 200) throw new Error(`/api/rooms on ${pod.podId}: ${r.status}`);
  return r.json?.rooms?.find((x) => x.room === room)?.members ?? 0;
}

test('presence events cross pods: a user joining on pod B is announced online at pod A, and offline when it leaves', async () => {
  const [a, b] = pods;
  const room = 'pres-events';
  const onA = await member(a, `/ws/${room}`);
  const onB = await member(b, `/ws/${room}`);
  const m = await onA.next(presenceOf(onB.userId, 'online'), 5000, 'presence online of a user on pod B, at pod A');
  assert.equal(m.room, room, `presence event room: ${JSON.stringify(m)}`);
  onB.close();
  await onA.next(presenceOf(onB.userId, 'offline'), 5000, 'presence offline of the user who left pod B, at pod A');
  await onA.roundTrip();
  assert.equal(onA.seen(presenceOf(onB.userId, 'offline')).length, 1, 'offline announced once');
  closeAll([onA]);
});

test('GET /api/rooms/{room}/presence on a pod without members lists the users of the other pods, and drops a user who left', async () => {
  const [a, b, c] = pods;
  const room = 'pres-api';
  const onA = await member(a, `/ws/${room}`);
  const onB = await member(b, `/ws/${room}`);
  await onA.next(presenceOf(onB.userId, 'online'), 5000, 'presence online of the user on pod B, at pod A');
  let users;
  await waitFor(
    async () => {
      users = await presenceList(c, room);
      const ids = users.map((u) => u.user_id);
      return ids.includes(onA.userId) && ids.includes(onB.userId);
    },
    { timeoutMs: 5000, message: () => `presence on pod C listing the users of pods A and B (got ${JSON.stringify(users)})` },
  );
  for (const u of users) assert.equal(u.status, 'online', `status of ${u.user_id}`);
  onB.close();
  await onA.next(presenceOf(onB.userId, 'offline'), 5000, 'presence offline of the user who left pod B, at pod A');
  await waitFor(
    async () => {
      users = await presenceList(c, room);
      return !users.some((u) => u.user_id === onB.userId) && users.some((u) => u.user_id === onA.userId);
    },
    { timeoutMs: 5000, message: () => `presence on pod C without the user who left (got ${JSON.stringify(users)})` },
  );
  closeAll([onA]);
});

test('GET /api/rooms on any pod counts the members of every pod', async () => {
  const [a, b] = pods;
  const room = 'rooms-api';
  const onA = await member(a, `/ws/${room}`);
  const onB1 = await member(b, `/ws/${room}`);
  const onB2 = await member(b, `/ws/${room}`);
  let counts;
  await waitFor(
    async () => {
      counts = await Promise.all(pods.map((p) => roomMembers(p, room)));
      return counts.every((n) => n === 3);
    },
    { timeoutMs: 5000, message: () => `${room} with 3 members on pods A, B, C (got ${JSON.stringify(counts)})` },
  );
  onB2.close();
  await waitFor(
    async () => {
      counts = await Promise.all(pods.map((p) => roomMembers(p, room)));
      return counts.every((n) => n === 2);
    },
    { timeoutMs: 5000, message: () => `${room} with 2 members on pods A, B, C after one left (got ${JSON.stringify(counts)})` },
  );
  closeAll([onA, onB1]);
  await waitFor(
    async () => {
      counts = await Promise.all(pods.map((p) => roomMembers(p, room)));
      return counts.every((n) => n === 0);
    },
    { timeoutMs: 5000, message: () => `${room} gone from /api/rooms on every pod after all left (got ${JSON.stringify(counts)})` },
  );
});

test('a user away before joining a room on pod B is announced online then away at pod A, and listed away on pod C', async () => {
  const [a, b, c] = pods;
  const room = 'pres-away-join';
  const watcher = await member(a, `/ws/${room}`);
  const late = await member(b, '/ws');
  late.send({ type: 'presence', data: { status: 'away' } }); // in no room yet
  await late.roundTrip();
  late.send({ type: 'join', room });
  await watcher.next(presenceOf(late.userId, 'away'), 5000, 'presence away of the user who joined on pod B, at pod A');
  const statuses = watcher.seen(presenceOf(late.userId)).map((m) => m.data.status);
  assert.deepEqual(statuses, ['online', 'away'], 'the join\'s online comes first, then the status');
  let users;
  await waitFor(
    async () => {
      users = await presenceList(c, room);
      return users.some((u) => u.user_id === late.userId && u.status === 'away');
    },
    { timeoutMs: 5000, message: () => `presence on pod C listing the user away (got ${JSON.stringify(users)})` },
  );
  closeAll([watcher, late]);
});

test('one user with sockets on two pods: one online, one offline, for members on a third pod', async () => {
  const [a, b, c] = pods;
  const room = 'pres-dedupe';
  const user = `alice-${Date.now()}`;
  const token = hs256({ sub: user }, SECRET);
  const watcher = await member(c, `/ws/${room}`);
  const helperA = await member(a, `/ws/${room}`);
  const tab1 = await member(a, `/ws/${room}?token=${token}`);
  assert.equal(tab1.userId, user, 'welcome user_id is the token subject');
  await watcher.next(presenceOf(user, 'online'), 5000, `presence online of ${user} (socket on pod A) at pod C`);
  const tab2 = await member(b, `/ws/${room}?token=${token}`);
  // barrier: tab2's chat reaches the watcher, so its join was handled
  tab2.send({ type: 'chat', data: { text: 'tab2 here' } });
  await watcher.next((m) => m.data?.text === 'tab2 here', 5000, 'chat of the second tab at pod C');

  const connsA = await metric(a, 'realtime_connections_total');
  tab1.close();
  await tab1.closePromise;
  let now;
  await waitFor(async () => (now = await metric(a, 'realtime_connections_total')) < connsA, {
    timeoutMs: 5000,
    message: () => `pod A connection gauge to drop after closing tab 1 (${connsA} -> ${now})`,
  });
  // barrier: a later chat from pod A has crossed to pod C
  helperA.send({ type: 'chat', data: { text: 'after tab1 closed' } });
  await watcher.next((m) => m.data?.text === 'after tab1 closed', 5000, 'barrier chat from pod A');
  assert.equal(watcher.seen(presenceOf(user, 'offline')).length, 0, `offline announced while a tab on pod B is still open: ${JSON.stringify(watcher.seen(presenceOf(user)))}`);

  tab2.close();
  await watcher.next(presenceOf(user, 'offline'), 5000, `presence offline of ${user} after the last tab closed`);
  await watcher.roundTrip();
  assert.equal(watcher.seen(presenceOf(user, 'online')).length, 1, `online events for ${user}: ${JSON.stringify(watcher.seen(presenceOf(user)))}`);
  assert.equal(watcher.seen(presenceOf(user, 'offline')).length, 1, `offline events for ${user}: ${JSON.stringify(watcher.seen(presenceOf(user)))}`);
  closeAll([watcher, helperA]);
});

// A user's status in a room is derived from all its sockets there, on every pod: online while any
// is online, away when all are, offline when none is left; an event exactly when that changes, and
// GET /api/rooms/{room}/presence gives the same status on every pod.
async function tabsFixture(room, user) {
  const [c, d] = pods;
  const token = hs256({ sub: user }, SECRET);
  const wC = await member(c, `/ws/${room}`);
  const wD = await member(d, `/ws/${room}`);
  const tab1 = await member(c, `/ws/${room}?token=${token}`);
  await wC.next(presenceOf(user, 'online'), 5000, `presence online of ${user} at pod C`);
  await wD.next(presenceOf(user, 'online'), 5000, `presence online of ${user} at pod D`);
  const tab2 = await member(d, `/ws/${room}?token=${token}`);
  const field = (pod) => redis.cmd('HGET', `realtime:presence:${room}`, `${pod.podId}|${user}`);
  // Pod D's own entry of the user: what it derived from its sockets (the pods' state in Redis).
  const podDEntry = (want) =>
    waitFor(async () => (await field(d)) === want, { timeoutMs: 5000, message: `pod D's entry of ${user} in ${room}: ${want}` });
  await podDEntry('online');
  // Both pods' GET agree on the user's status.
  const agreed = async (want, what) => {
    let got;
    await waitFor(
      async () => {
        got = await Promise.all(pods.map(async (p) => (await presenceList(p, room)).find((u) => u.user_id === user)?.status ?? 'offline'));
        return got.every((s) => s === want);
      },
      { timeoutMs: 5000, message: () => `${what}: ${user} ${want} on every pod (got ${JSON.stringify(got)})` },
    );
  };
  const events = (w) => w.seen(presenceOf(user)).map((m) => m.data.status);
  return { c, d, wC, wD, tab1, tab2, podDEntry, agreed, events };
}

test('one user, a tab on each pod, one of them away: online on every pod; the away tab leaving keeps it online', async () => {
  const user = `erin-${Date.now()}`;
  const room = 'pres-tabs-away';
  const { wC, wD, tab1, tab2, podDEntry, agreed, events } = await tabsFixture(room, user);
  tab2.send({ type: 'presence', data: { status: 'away' } });
  await podDEntry('away');
  await agreed('online', 'tab 2 (pod D) away, tab 1 (pod C) online');
  // The online tab turns away too: away, announced; back online: announced.
  tab1.send({ type: 'presence', data: { status: 'away' } });
  await wC.next(presenceOf(user, 'away'), 5000, 'presence away at pod C once every tab is away');
  await wD.next(presenceOf(user, 'away'), 5000, 'presence away at pod D once every tab is away');
  await agreed('away', 'both tabs away');
  tab1.send({ type: 'presence', data: { status: 'online' } });
  await wC.next(presenceOf(user, 'online'), 5000, 'presence online at pod C when tab 1 is back');
  await wD.next(presenceOf(user, 'online'), 5000, 'presence online at pod D when tab 1 is back');
  await agreed('online', 'tab 1 back online');
  // The away tab leaves: the user stays online (it never stopped being online: no event).
  tab2.close();
  await podDEntry(null);
  await agreed('online', 'the away tab left');
  await Promise.all([wC.roundTrip(), wD.roundTrip()]);
  for (const w of [wC, wD]) assert.deepEqual(events(w), ['online', 'away', 'online'], `events at ${w.pod.podId}`);
  tab1.close();
  await wC.next(presenceOf(user, 'offline'), 5000, 'presence offline at pod C after the last tab');
  await wD.next(presenceOf(user, 'offline'), 5000, 'presence offline at pod D after the last tab');
  await agreed('offline', 'every tab closed');
});

test('one user, a tab on each pod: the online tab leaving while the other is away makes the user away, announced', async () => {
  const user = `erin-${Date.now()}`;
  const room = 'pres-tabs-left';
  const { wC, wD, tab1, tab2, podDEntry, agreed, events } = await tabsFixture(room, user);
  tab2.send({ type: 'presence', data: { status: 'away' } });
  await podDEntry('away');
  await agreed('online', 'tab 2 (pod D) away, tab 1 (pod C) online');
  await Promise.all([wC.roundTrip(), wD.roundTrip()]);
  for (const w of [wC, wD]) assert.deepEqual(events(w), ['online'], `no event while tab 1 is online, at ${w.pod.podId}`);
  tab1.close();
  await wC.next(presenceOf(user, 'away'), 5000, 'presence away at pod C when the online tab left');
  await wD.next(presenceOf(user, 'away'), 5000, 'presence away at pod D when the online tab left');
  await agreed('away', 'the online tab left, the away one stays');
  tab2.close();
  await wC.next(presenceOf(user, 'offline'), 5000, 'presence offline at pod C after the last tab');
  await wD.next(presenceOf(user, 'offline'), 5000, 'presence offline at pod D after the last tab');
  await agreed('offline', 'every tab closed');
  for (const w of [wC, wD]) assert.deepEqual(events(w), ['online', 'away', 'offline'], `events at ${w.pod.podId}`);
});

// Each round one tab turns away while the other turns back online, both at once: when the away
// change is made first, the user is announced away, then online; when the online one is, nothing.
// A pod that published a change only after its script answered could be overtaken by the other
// pod's later change, leaving members with "online, away": the user shown away while online.
test('one user, tabs on two pods changing at the same moment: every member gets the changes in order, round after round', async () => {
  const [a, b, c] = pods;
  const room = 'pres-race';
  const user = `fay-${Date.now()}`;
  const token = hs256({ sub: user }, SECRET);
  const watchers = [await member(a, `/ws/${room}`), await member(b, `/ws/${room}`), await member(c, `/ws/${room}`)];
  const tabA = await member(a, `/ws/${room}?token=${token}`);
  await Promise.all(watchers.map((w) => w.next(presenceOf(user, 'online'), 5000, `presence online of ${user} at ${w.pod.podId}`)));
  const tabB = await member(b, `/ws/${room}?token=${token}`);
  const entries = () => Promise.all([a, b].map((p) => redis.cmd('HGET', `realtime:presence:${room}`, `${p.podId}|${user}`)));
  const settled = (want) =>
    waitFor(async () => JSON.stringify(await entries()) === JSON.stringify(want), { timeoutMs: 5000, message: `the pods' entries of ${user}: ${want}` });
  tabB.send({ type: 'presence', data: { status: 'away' } });
  await settled(['online', 'away']);
  const ROUNDS = 80;
  for (let round = 0; round < ROUNDS; round++) {
    const [goesAway, comesBack] = round % 2 === 0 ? [tabA, tabB] : [tabB, tabA];
    goesAway.send({ type: 'presence', data: { status: 'away' } });
    comesBack.send({ type: 'presence', data: { status: 'online' } });
    await settled(round % 2 === 0 ? ['away', 'online'] : ['online', 'away']);
  }
  await redisBarrier(redis, `realtime:room:${room}`, watchers);
  const events = watchers.map((w) => w.seen(presenceOf(user)).map((m) => m.data.status));
  const twice = events[0].findIndex((s, i) => i > 0 && s === events[0][i - 1]);
  assert.equal(twice, -1, `the same status twice in a row at ${a.podId}: ${events[0].join(' ')}`);
  assert.equal(events[0].at(-1), 'online', `last event at ${a.podId}: ${events[0].join(' ')}`);
  assert.ok(events[0].length > 1, `some rounds announced away then online at ${a.podId}: ${events[0].join(' ')}`);
  for (let k = 1; k < watchers.length; k++) {
    assert.deepEqual(events[k], events[0], `events at ${watchers[k].pod.podId} (${events[k].join(' ')}) against ${a.podId}`);
  }
  for (const p of pods) {
    assert.equal((await presenceList(p, room)).find((u) => u.user_id === user)?.status, 'online', `GET presence on ${p.podId}`);
  }
  closeAll([tabA, tabB, ...watchers]);
});

// Two sockets of one user on one pod hand a room back and forth (one joins as the other leaves):
// the pod's part in Redis is written as its hub has the user when the write is made, not as each
// socket saw it. Before, the two I/O threads' writes could land in either order, and an "offline"
// written last left the user out of the cluster's presence (told offline on every pod, missing
// from GET on the others) while its socket was in the room.
test('a user handing a room between its two sockets on one pod stays online in the cluster', async () => {
  const [a, b] = pods;
  const room = 'pres-handover';
  const user = 'handover-user';
  const token = hs256({ sub: user }, SECRET);
  const watcher = await member(b, `/ws/${room}`);
  // Sockets of /ws are served by the thread that accepted them, one after the other: two threads.
  const tabs = [await member(a, `/ws?token=${token}`), await member(a, `/ws?token=${token}`)];
  await tabs[0].join(room);
  const inRedis = async () => (await redis.cmd('HGET', `realtime:presence:${room}`, `${a.podId}|${user}`)) === 'online';
  for (let i = 0; i < 150; i++) {
    const [from, to] = i % 2 === 0 ? tabs : [tabs[1], tabs[0]];
    to.send({ type: 'join', room });
    from.send({ type: 'leave', room });
    await Promise.all([from.roundTrip(), to.roundTrip()]);
    // Written as the hub has it once both writes are made (a lost one stays lost: nothing else
    // changes meanwhile).
    await waitFor(inRedis, { timeoutMs: 2000, intervalMs: 5, message: `handover ${i}: the user online in the pod's part in Redis` });
  }
  for (const pod of pods) {
    await waitFor(async () => (await presenceList(pod, room)).some((u) => u.user_id === user && u.status === 'online'), {
      message: `the user listed online on ${pod.podId}`,
    });
  }
  await redisBarrier(redis, `realtime:room:${room}`, [watcher]);
  const told = watcher.seen(presenceOf(user));
  assert.equal(told.at(-1)?.data.status, 'online', `last told: ${JSON.stringify(told.slice(-3).map((m) => m.data.status))}`);
  closeAll([watcher, ...tabs]);
});

test('a member count in Redis that is not a number is skipped by GET /api/rooms', async () => {
  const [a] = pods;
  await redis.cmd('SET', 'realtime:pod:intruder', '1', 'PX', '10000');
  await redis.cmd('SADD', 'realtime:pods', 'intruder');
  await redis.cmd('HSET', 'realtime:pod:intruder:rooms', 'bogus-count', '1e400', 'word-count', 'two', 'fine-count', '2');
  try {
    // (The other pods' counts are read at most once a second: an earlier answer may still stand.)
    let listed = {};
    await waitFor(async () => {
      const r = await get(a, '/api/rooms');
      assert.equal(r.status, 200, `GET /api/rooms: ${r.status} ${r.text}`);
      listed = Object.fromEntries(r.json.rooms.map((x) => [x.room, x.members]));
      return listed['fine-count'] === 2;
    }, { timeoutMs: 5000, message: () => `fine-count listed: ${JSON.stringify(listed)}` });
    assert.equal(listed['bogus-count'], undefined, JSON.stringify(listed));
    assert.equal(listed['word-count'], undefined, JSON.stringify(listed));
    assert.equal((await get(a, '/healthz')).status, 200, 'the pod lives on');
  } finally {
    await redis.cmd('SREM', 'realtime:pods', 'intruder');
    await redis.cmd('DEL', 'realtime:pod:intruder', 'realtime:pod:intruder:rooms');
  }
});

test('GET /api/rooms reads the other pods\' counts from Redis at most once a second, however many ask', async () => {
  const [a] = pods;
  const evals = async () => Number(/cmdstat_eval:calls=(\d+)/.exec(String(await redis.cmd('INFO', 'commandstats')))?.[1] ?? 0);
  const before = await evals();
  const answers = await Promise.all(Array.from({ length: 50 }, () => get(a, '/api/rooms')));
  assert.ok(answers.every((r) => r.status === 200));
  // (The pods' own scripts run meanwhile too: a lease sweep, a presence change.)
  const calls = (await evals()) - before;
  assert.ok(calls < 10, `${calls} EVAL calls for 50 requests`);
});

test('after FLUSHALL every pod rewrites its members and presence within 6 s (the lease found gone)', async () => {
  const [a, b] = pods;
  const room = 'pres-flush';
  const onA = await member(a, `/ws/${room}`);
  const onB = await member(b, `/ws/${room}`);
  const complete = async () => {
    const views = await Promise.all(
      [a, b].map(async (p) => ({ members: await roomMembers(p, room), users: (await presenceList(p, room)).map((u) => u.user_id).sort() })),
    );
    const want = [onA.userId, onB.userId].sort();
    return { ok: views.every((v) => v.members === 2 && JSON.stringify(v.users) === JSON.stringify(want)), views };
  };
  let last;
  await waitFor(async () => (last = await complete()).ok, { timeoutMs: 5000, message: () => `both pods see both members before the flush (${JSON.stringify(last?.views)})` });
  await redis.cmd('FLUSHALL');
  await waitFor(async () => (last = await complete()).ok, {
    timeoutMs: 6000,
    intervalMs: 200,
    message: () => `both pods list both members 6 s after FLUSHALL (${JSON.stringify(last?.views)})`,
  });
  assert.equal(await redis.cmd('HGET', `realtime:pod:${a.podId}:rooms`, room), '1', "pod A's member count rewritten");
  closeAll([onA, onB]);
});
