// Cluster-wide presence and rooms, three pods on one redis-server (contract: "Presence is
// cluster-wide"; GET /api/rooms and /api/rooms/{room}/presence answer "across pods").
// - a user joining a room on pod B is announced `online` to members on pod A, and `offline` once
//   when it leaves;
// - GET /api/rooms/{room}/presence on pod C (no member of the room there) lists the users of pods A
//   and B, and drops a user who left;
// - GET /api/rooms on every pod counts the members of every pod, and forgets the room once empty;
// - one user (same JWT subject) with sockets on pods A and B: members on pod C get one `online`,
//   nothing when the first socket closes, and one `offline` when the last one does;
// - a socket that set "away" while in no room, then joins one, is announced online, then away.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from './lib/redis.mjs';
import { clusterFixture } from './lib/fixture.mjs';
import { closeAll } from './lib/client.mjs';
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
