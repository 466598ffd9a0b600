// Fan-out across pods: three realtime-server pods on one redis-server.
// - a welcome promises the subscriptions: PUBSUB NUMSUB, asked on an open Redis connection the
//   moment a client has its welcome, counts the pod on the socket's room and user channels (60
//   fresh sockets, some in no room); the previous server missed 5 of them in a run. Likewise a
//   pong that follows a join by message: the pod is subscribed to the room by then.
// - 1000 chat messages from three publishers, one per pod, reach every member on every pod exactly
//   once: no loss, no duplicate, each publisher's order kept (a sequence number in data); Redis
//   numbers the room's messages, so every member on every pod sees the same id for each message
//   and the ids in increasing order (publishers on three pods race for the numbers: the pods'
//   guesses of the next number miss, and the script must rebuild the item with the real id);
//   `from` is the publisher's user id everywhere, and the envelope has only the contract's fields
//   (no Redis-only "pod" leaking out).
// - a pod whose first member joins a room in use on another pod, both members publishing at once:
//   each gets every message from the first on, numbered 1, 2, 3, ... with no gap (30 rounds).
// - a third-party PUBLISH (the redis-cli binary) on realtime:room:R reaches the members on every pod
//   as a chat of room R with an id and a timestamp; a raw PUBLISH on realtime:global and
//   realtime:user:U does the same for /ws sockets and the sockets of U.
// - POST /api/publish on one pod reaches the other pods: room messages, notifications to a user by
//   user id (an anonymous socket's user id is its connection id), global broadcasts; each exactly
//   once, on the publishing pod too (its Redis echo dropped).
// "Exactly once" is judged after a barrier: a third-party PUBLISH on the same channel, issued once
// the message was seen on another pod, so any echo or second copy has arrived by then.
// Before cross-pod traffic the tests below also wait until every pod with members is subscribed
// (PUBSUB NUMSUB): that makes a failure of the welcome's promise show in the test above alone.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { redisCli } from './lib/redis.mjs';
import { clusterFixture } from './lib/fixture.mjs';
import { closeAll, redisBarrier } from './lib/client.mjs';
import { publish } from './lib/http.mjs';

let redis;
let pods;
const member = clusterFixture(3, { prefix: 'fan' }, (c) => ({ redis, pods } = c));

const TS_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const ID_RE = /^[A-Za-z0-9._-]+$/;

test('a welcome means the pod already receives the room and the user: PUBSUB NUMSUB asked at once counts it', async () => {
  // A join becomes a Redis subscription; the welcome waits for Redis to confirm it (and the user's
  // channel), so a message another pod publishes once the client has its welcome reaches it.
  const [a] = pods;
  const link = await redis.link();
  const late = [];
  try {
    for (let i = 0; i < 60; i++) {
      const room = `welcome-${i}`;
      const path = i % 10 === 9 ? '/ws' : `/ws/${room}`;
      const c = await member(a, path);
      const channels = [`realtime:user:${c.userId}`];
      if (path !== '/ws') channels.push(`realtime:room:${room}`);
      const r = await link.cmd('PUBSUB', 'NUMSUB', ...channels);
      for (let k = 0; k < r.length; k += 2) if (Number(r[k + 1]) !== 1) late.push(`${r[k]}: ${r[k + 1]}`);
      closeAll([c]);
    }
  } finally {
    link.close();
  }
  assert.deepEqual(late, [], 'channels not yet subscribed when the welcome arrived');
});

test('after a join by message, what the socket is sent next (a pong) comes once the pod receives the room', async () => {
  // A join has no answer of its own; the socket's output waits for Redis to confirm the room's
  // subscription, so a ping sent after the join is a join acknowledgement.
  const [a] = pods;
  const link = await redis.link();
  const c = await member(a, '/ws');
  const late = [];
  try {
    for (let i = 0; i < 40; i++) {
      const room = `joined-${i}`;
      c.send({ type: 'join', room });
      c.send({ type: 'ping' });
      await c.next((m) => m.type === 'pong', 5000, `pong after joining ${room}`);
      const [, n] = await link.cmd('PUBSUB', 'NUMSUB', `realtime:room:${room}`);
      if (Number(n) !== 1) late.push(`${room}: ${n}`);
    }
  } finally {
    link.close();
  }
  assert.deepEqual(late, [], 'rooms not yet subscribed when the pong arrived');
});

test('1000 messages from publishers on 3 pods reach every member on every pod exactly once, in per-publisher order', async () => {
  const room = 'fan-1000';
  const run = `r${Date.now()}`;
  // on each pod: one publisher (a member too: the sender gets its own messages) and one listener
  const publishers = [];
  const members = [];
  for (const pod of pods) {
    const p = await member(pod, `/ws/${room}`);
    const l = await member(pod, `/ws/${room}`);
    publishers.push(p);
    members.push(p, l);
  }
  await redis.waitNumsub(`realtime:room:${room}`, pods.length, 5000);

  const TOTAL = 1000;
  const counts = [334, 333, 333];
  const isOurs = (m) => m.type === 'chat' && m.data?.run === run && typeof m.data?.seq === 'number';
  const isFin = (m) => m.type === 'chat' && m.data?.run === run && m.data?.fin === true;

  publishers.forEach((p, k) => {
    for (let seq = 0; seq < counts[k]; seq++) p.send({ type: 'chat', data: { run, pub: k, seq } });
    p.send({ type: 'chat', data: { run, pub: k, fin: true } });
  });

  // every member: all 1000, then the three fins. Once every pod has every fin, each publisher pod's
  // PUBLISHes have all run in Redis; a barrier published after that flushes any echo of them.
  await Promise.all(
    members.map(async (m, i) => {
      await m.nextN(isOurs, TOTAL, 30_000, `chat messages on member ${i} (${m.pod.podId})`);
      await m.nextN(isFin, publishers.length, 10_000, `fin markers on member ${i} (${m.pod.podId})`);
    }),
  );
  await redisBarrier(redis, `realtime:room:${room}`, members);

  const idOf = (m) => new Map(m.seen(isOurs).map((x) => [`${x.data.pub}:${x.data.seq}`, x.id]));
  const reference = idOf(members[0]);
  members.forEach((m, i) => {
    const got = m.seen(isOurs);
    const where = `member ${i} on ${m.pod.podId}`;
    assert.equal(got.length, TOTAL, `${where}: ${got.length} messages (duplicates?)`);
    const ids = new Set(got.map((x) => x.id));
    assert.equal(ids.size, TOTAL, `${where}: ids not unique`);
    const mismatch = [...idOf(m)].find(([key, id]) => reference.get(key) !== id);
    assert.equal(mismatch, undefined, `${where}: message ${mismatch?.[0]} has id ${mismatch?.[1]}, member 0 saw ${reference.get(mismatch?.[0])}`);
    const seqs = got.map((x) => Number(String(x.id).split('-').pop()));
    const back = seqs.findIndex((q, j) => j > 0 && q <= seqs[j - 1]);
    assert.equal(back, -1, `${where}: ids not increasing at position ${back}: ${got.slice(Math.max(0, back - 2), back + 2).map((x) => x.id)}`);
    for (let k = 0; k < publishers.length; k++) {
      const seqs = got.filter((x) => x.data.pub === k).map((x) => x.data.seq);
      assert.equal(seqs.length, counts[k], `${where}: publisher ${k} count`);
      const firstBad = seqs.findIndex((s, j) => s !== j);
      assert.equal(firstBad, -1, `${where}: publisher ${k} order/loss/duplicate at position ${firstBad}: ${seqs.slice(Math.max(0, firstBad - 3), firstBad + 3)}`);
      const fromSet = new Set(got.filter((x) => x.data.pub === k).map((x) => x.from));
      assert.deepEqual([...fromSet], [publishers[k].userId], `${where}: "from" of publisher ${k}'s messages`);
    }
    const envelopeKeys = new Set(['id', 'type', 'room', 'from', 'data', 'timestamp']);
    for (const x of got.slice(0, 5).concat(got.slice(-5))) {
      assert.deepEqual(Object.keys(x).filter((k) => !envelopeKeys.has(k)), [], `${where}: envelope fields beyond the contract's: ${JSON.stringify(x)}`);
      assert.equal(x.room, room, `${where}: room of ${JSON.stringify(x)}`);
      assert.match(String(x.id), ID_RE);
      assert.match(String(x.timestamp), TS_RE);
    }
  });
  closeAll(members);
});

test('a pod new to a room in use: its member gets both pods\' messages from its first on, in id order, none missing', async () => {
  // The pod learns where its delivery of the room starts from the subscription, not from the
  // answer to its own first publish, which can overtake messages other pods had numbered before it.
  // The previous server lost some of them on the new pod in about 1 round of 10.
  const [a, b] = pods;
  const BURST = 5;
  const seqOf = (id) => Number(String(id).split('-').pop());
  for (let round = 0; round < 30; round++) {
    const room = `start-${Date.now()}-${round}`;
    const onB = await member(b, `/ws/${room}`);
    const onA = await member(a, `/ws/${room}`); // the room's first member on A
    for (let j = 0; j < BURST; j++) onB.send({ type: 'chat', room, data: { j } });
    for (let j = 0; j < BURST; j++) onA.send({ type: 'chat', room, data: { j } });
    for (const [who, c] of [['A', onA], ['B', onB]]) {
      const got = await c.nextN((m) => m.type === 'chat', 2 * BURST, 5000, `${who}'s messages in ${room}`);
      assert.deepEqual(got.map((m) => seqOf(m.id)), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
        `round ${round}, member on ${who}: ${got.map((m) => m.id)}`);
    }
    onA.close();
    onB.close();
  }
});

test('third-party PUBLISH (redis-cli) on realtime:room:R reaches members on every pod', async () => {
  const room = 'third-party';
  const ms = [];
  for (const pod of pods) ms.push(await member(pod, `/ws/${room}`));
  await redis.waitNumsub(`realtime:room:${room}`, pods.length, 5000);

  const text = `from outside ${Date.now()}`;
  const receivers = await redisCli(redis, ['PUBLISH', `realtime:room:${room}`, JSON.stringify({ type: 'chat', data: { text } })]);
  assert.equal(Number(receivers), pods.length, `redis-cli PUBLISH reached ${receivers} subscribers`);

  const got = await Promise.all(
    ms.map((m) => m.next((x) => x.type === 'chat' && x.data?.text === text, 3000, `third-party chat on ${m.pod.podId}`)),
  );
  for (const [i, x] of got.entries()) {
    const where = `pod ${pods[i].podId}: ${JSON.stringify(x)}`;
    assert.equal(x.room, room, `room filled in from the channel: ${where}`);
    assert.match(String(x.id ?? ''), ID_RE, `a server id on a third-party message: ${where}`);
    assert.match(String(x.timestamp ?? ''), TS_RE, `a timestamp on a third-party message: ${where}`);
  }
  // exactly once per member
  await redisBarrier(redis, `realtime:room:${room}`, ms);
  for (const m of ms) {
    assert.equal(m.seen((x) => x.type === 'chat' && x.data?.text === text).length, 1, `once on ${m.pod.podId}`);
  }
  closeAll(ms);
});

test("a third-party PUBLISH whose id looks like ours (msg-42, or one ahead in the room's own history) takes no place in the history", async () => {
  const room = 'third-party-ids';
  const ms = [];
  for (const pod of pods) ms.push(await member(pod, `/ws/${room}`));
  await redis.waitNumsub(`realtime:room:${room}`, pods.length, 5000);
  // A message of the room's own history, to learn its epoch.
  ms[1].send({ type: 'chat', room, data: { text: 'first' } });
  const first = await ms[0].next((x) => x.type === 'chat' && x.data?.text === 'first', 3000, 'first');
  const epoch = first.id.slice(0, first.id.lastIndexOf('-'));
  for (const id of ['msg-42', `${epoch}-${Number(first.id.split('-').pop()) + 20}`]) {
    await redis.publish(`realtime:room:${room}`, { id, type: 'chat', data: { text: `outside ${id}` } });
    const got = await ms[0].next((x) => x.data?.text === `outside ${id}`, 3000, `third-party ${id}`);
    assert.notEqual(got.id, id, 'the server gives it its own id');
    // Messages of the pods that follow still reach every member, in order.
    for (let j = 0; j < 3; j++) ms[1].send({ type: 'chat', room, data: { text: `after ${id} ${j}` } });
    for (const m of ms) {
      const after = await m.nextN((x) => x.type === 'chat' && String(x.data?.text).startsWith(`after ${id}`), 3, 3000, `after ${id} on ${m.pod.podId}`);
      assert.deepEqual(after.map((x) => x.data.text), [0, 1, 2].map((j) => `after ${id} ${j}`));
    }
  }
  closeAll(ms);
});

test('third-party PUBLISH on realtime:global and realtime:user:U reaches sockets on every pod', async () => {
  const lobby = [];
  for (const pod of pods) lobby.push(await member(pod, '/ws'));
  const target = await member(pods[2], '/ws');
  await redis.waitNumsub('realtime:global', pods.length, 5000);
  await redis.waitNumsub(`realtime:user:${target.userId}`, 1, 5000);

  const g = `global ${Date.now()}`;
  await redis.publish('realtime:global', { type: 'chat', data: { text: g } });
  await Promise.all(lobby.map((m) => m.next((x) => x.data?.text === g, 3000, `global from outside on ${m.pod.podId}`)));

  const n = `note ${Date.now()}`;
  await redis.publish(`realtime:user:${target.userId}`, { type: 'notification', data: { note: n } });
  const x = await target.next((y) => y.data?.note === n, 3000, 'user notification from outside');
  assert.equal(x.type, 'notification');
  await lobby[2].roundTrip();
  assert.equal(lobby[2].seen((y) => y.data?.note === n).length, 0, 'a notification to U reached another user');
  closeAll([...lobby, target]);
});

test("a third-party PUBLISH on realtime:global or realtime:user:U gets the pod's own id, whatever id it carries; a client command is never delivered", async () => {
  const lobby = [];
  for (const pod of pods) lobby.push(await member(pod, '/ws'));
  const target = await member(pods[1], '/ws');
  await redis.waitNumsub('realtime:global', pods.length, 5000);
  await redis.waitNumsub(`realtime:user:${target.userId}`, 1, 5000);
  const own = /^[a-z0-9]{8}-[gu][a-z0-9]+$/;

  // Not URL-safe (a client puts its last id into its next URL), too long, or twice the same.
  const given = ['has space/and?q=1&x#frag', 'x'.repeat(5000), 'dup', 'dup'];
  const tag = `ids ${Date.now()}`;
  for (const [i, id] of given.entries()) {
    await redis.publish('realtime:global', { id, type: 'chat', data: { text: `${tag} g${i}` } });
    await redis.publish(`realtime:user:${target.userId}`, { id, type: 'notification', data: { note: `${tag} u${i}` } });
  }
  for (const m of lobby) {
    const got = await m.nextN((x) => String(x.data?.text).startsWith(`${tag} g`), given.length, 3000, `globals on ${m.pod.podId}`);
    for (const x of got) assert.match(x.id, own, `a global's id on ${m.pod.podId}`);
    assert.equal(new Set(got.map((x) => x.id)).size, given.length, `ids unique on ${m.pod.podId}`);
  }
  const notes = await target.nextN((x) => String(x.data?.note).startsWith(`${tag} u`), given.length, 3000, 'notifications');
  for (const x of notes) assert.match(x.id, own, "a notification's id");
  assert.equal(new Set(notes.map((x) => x.id)).size, given.length, 'notification ids unique');

  // join, leave and auth are what clients send: dropped, whatever channel they come on.
  const room = 'third-party-commands';
  const inRoom = await member(pods[2], `/ws/${room}`);
  await redis.waitNumsub(`realtime:room:${room}`, 1, 5000);
  for (const type of ['join', 'leave', 'auth']) {
    await redis.publish('realtime:global', { type, room, data: { text: `${tag} ${type}` } });
    await redis.publish(`realtime:room:${room}`, { type, data: { text: `${tag} ${type}` } });
    await redis.publish(`realtime:user:${target.userId}`, { type, data: { text: `${tag} ${type}` } });
  }
  const after = `${tag} after`;
  await redis.publish('realtime:global', { type: 'chat', data: { text: after } });
  for (const m of [...lobby, target, inRoom]) {
    await m.next((x) => x.data?.text === after, 3000, `the marker on ${m.pod.podId}`);
    assert.deepEqual(m.seen((x) => ['join', 'leave', 'auth'].includes(x.type)), [], `no client command on ${m.pod.podId}`);
  }
  closeAll([...lobby, target, inRoom]);
});

test('POST /api/publish on pod A reaches pod B: room, user notification, global', async () => {
  const [a, b, c] = pods;
  const room = 'api-cross';
  const onA = await member(a, `/ws/${room}`); // on the publishing pod: its Redis echo must be dropped
  const onB = await member(b, `/ws/${room}`);
  const onC = await member(c, `/ws/${room}`);
  const userOnB = await member(b, '/ws');
  const lobbyC = await member(c, '/ws');
  await redis.waitNumsub(`realtime:room:${room}`, 3, 5000);
  await redis.waitNumsub(`realtime:user:${userOnB.userId}`, 1, 5000);
  await redis.waitNumsub('realtime:global', pods.length, 5000);

  // room
  const t = `api room ${Date.now()}`;
  let r = await publish(a, { room, text: t });
  assert.equal(r.status, 202, `publish room: ${r.status} ${r.text}`);
  for (const m of [onA, onB, onC]) {
    const x = await m.next((y) => y.type === 'chat' && y.data?.text === t, 3000, `API room chat on ${m.pod.podId}`);
    assert.equal(x.room, room);
  }
  await redisBarrier(redis, `realtime:room:${room}`, [onA, onB, onC]);
  for (const m of [onA, onB, onC]) assert.equal(m.seen((y) => y.data?.text === t).length, 1, `API room chat once on ${m.pod.podId}`);

  // user notification by user id (anonymous: the connection id)
  assert.ok(userOnB.userId, 'welcome has data.user_id');
  const note = `api note ${Date.now()}`;
  r = await publish(a, { user: userOnB.userId, type: 'notification', data: { note } });
  assert.equal(r.status, 202, `publish user: ${r.status} ${r.text}`);
  const x = await userOnB.next((y) => y.data?.note === note, 3000, 'API notification on pod B');
  assert.equal(x.type, 'notification');
  await redisBarrier(redis, `realtime:user:${userOnB.userId}`, [userOnB]);
  assert.equal(userOnB.seen((y) => y.data?.note === note).length, 1, 'notification once');
  await lobbyC.roundTrip();
  assert.equal(lobbyC.seen((y) => y.data?.note === note).length, 0, 'notification reached a different user');

  // global: /ws sockets and room sockets on the other pods
  const gt = `api global ${Date.now()}`;
  r = await publish(a, { type: 'chat', data: { text: gt } });
  assert.equal(r.status, 202, `publish global: ${r.status} ${r.text}`);
  const everyone = [onA, onB, onC, userOnB, lobbyC];
  for (const m of everyone) {
    await m.next((y) => y.data?.text === gt, 3000, `API global on ${m.pod.podId}`);
  }
  await redisBarrier(redis, 'realtime:global', everyone);
  for (const m of everyone) {
    assert.equal(m.seen((y) => y.data?.text === gt).length, 1, `global once on ${m.pod.podId}`);
  }
  closeAll(everyone);
});
