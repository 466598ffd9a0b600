// Recovery through the shared history (two pods, one Redis):
// - a client that got message X on pod A and reconnects to pod B with ?last_id=X receives the
//   messages published after X (on either pod), in order, then recovered: true, then live traffic;
// - ids are ordered cluster-wide: messages published on both pods carry one sequence;
// - after FLUSHALL (a lost history) the same last_id answers recovered: false, and new messages
//   start a new epoch; a client that had recovered just before gets that epoch's messages from 1;
// - after SCRIPT FLUSH the pods send their scripts whole again, and nothing stays on one pod;
// - a replay larger than the pod's send queue (--send-queue-bytes 64 KB here) reaches a client that
//   reads, without a slow-consumer close;
// - a recovery reads from Redis only what the client needs: a join with the latest id of a room
//   whose history is large makes Redis send the pod a small fraction of it (INFO stats
//   total_net_output_bytes), and a resume from a middle id about the messages after it, exactly;
// - positions: the welcome (and "joined", and recovered) tell a client where it joined a room, from
//   the shared history, so a quiet room (no message yet) is resumed on any pod; both pods give the
//   same position; a failed resume gives one to resume from next time;
// - presence names a position even when it is the first news of the room on its pod (the socket's
//   own online, on connect, on join and after a resume), and stays unique across pod restarts;
//   a pong and an error name one too, so a client whose last message was one resumes on any pod.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clusterFixture } from './lib/fixture.mjs';
import { publish } from './lib/http.mjs';
import { startPod } from './lib/server.mjs';
import { connect } from './lib/client.mjs';
import { waitFor } from './lib/redis.mjs';

let redis;
let pods;
// A small send queue: a replay larger than it must still go through to a client that reads.
const member = clusterFixture(2, { prefix: 'rec', args: ['--send-queue-bytes', '65536'] }, (c) => ({ redis, pods } = c));

const chat = (text) => (m) => m.type === 'chat' && m.data?.text === text;
const recoveredMsg = (m) => m.type === 'system' && m.data?.event === 'recovered';
const seqOf = (id) => Number(id.slice(id.lastIndexOf('-') + 1));
const epochOf = (id) => id.slice(0, id.lastIndexOf('-'));

test('a client recovers on the other pod: the messages after its last id, in order, then live', async () => {
  const [a, b] = pods;
  const room = `rec-${Date.now()}`;
  const first = await member(a, `/ws/${room}`);
  assert.equal((await publish(a, { room, text: 'm1' })).status, 202);
  const m1 = await first.next(chat('m1'), 3000, 'm1');
  first.close();
  await first.expectClose();

  // Published while it is away, from both pods: one sequence for the room.
  for (const [pod, text] of [[b, 'm2'], [a, 'm3'], [b, 'm4']]) {
    assert.equal((await publish(pod, { room, text })).status, 202);
  }
  const again = await member(b, `/ws/${room}?last_id=${encodeURIComponent(m1.id)}`);
  const replayed = [];
  for (const text of ['m2', 'm3', 'm4']) replayed.push(await again.next(chat(text), 5000, text));
  const rec = await again.next(recoveredMsg, 5000, 'recovered');
  assert.equal(rec.data.recovered, true);
  assert.equal(rec.data.replayed, 3);
  // The replayed envelopes are what live delivery gives: no field the pods use among themselves.
  for (const m of replayed) {
    assert.deepEqual(Object.keys(m).sort(), Object.keys(m1).sort(), `replayed fields: ${JSON.stringify(m)}`);
    assert.equal(m.pod, undefined);
  }
  const ids = [m1.id, ...replayed.map((m) => m.id)];
  assert.ok(ids.every((id) => epochOf(id) === epochOf(m1.id)), `one epoch: ${ids}`);
  assert.deepEqual(ids.map(seqOf), [1, 2, 3, 4].map((n) => seqOf(m1.id) + n - 1), `consecutive: ${ids}`);
  // Nothing replayed arrives twice, and live traffic follows.
  assert.equal((await publish(a, { room, text: 'live' })).status, 202);
  await again.next(chat('live'), 5000, 'live');
  const chats = again.history.filter((m) => m.type === "chat").map((m) => `${m.data.text}@${m.id}`);
  assert.equal(chats.length, 4, `m2, m3, m4, live: none doubled: ${chats}`);
});

test('a recovery reads from Redis only the messages after the last id, not the whole history', async () => {
  const [a, b] = pods;
  const room = `recread-${Date.now()}`;
  const pad = 'h'.repeat(40_000);
  const ids = [];
  for (let i = 0; i < 40; i++) {
    const res = await publish(a, { room, type: 'chat', data: { i, pad } });
    assert.equal(res.status, 202);
    ids.push(res.json.id);
  }
  const historyBytes = 40 * pad.length;  // ~1.6 MB in realtime:history:{room}
  const sentByRedis = async () => {
    const stats = await redis.cmd('INFO', 'stats');
    const match = /total_net_output_bytes:(\d+)/.exec(stats);
    assert.ok(match, `INFO stats: ${stats}`);
    return Number(match[1]);
  };
  // The common reconnect: the client saw the latest message, nothing to replay.
  const before = await sentByRedis();
  const latest = await member(b, `/ws/${room}?last_id=${encodeURIComponent(ids.at(-1))}`);
  const rec = await latest.next(recoveredMsg, 5000, 'recovered');
  assert.deepEqual([rec.data.recovered, rec.data.replayed], [true, 0]);
  const forLatest = (await sentByRedis()) - before;
  assert.ok(forLatest < historyBytes / 20, `Redis sent ${forLatest} bytes for a join with the latest id (history ${historyBytes})`);

  // A resume from the middle gets exactly the messages after its id, and Redis sends about those.
  const from = 29;
  const before2 = await sentByRedis();
  const middle = await member(a, `/ws/${room}?last_id=${encodeURIComponent(ids[from])}`);
  const got = await middle.nextN((m) => m.type === 'chat', ids.length - from - 1, 10_000, 'replayed chats');
  const rec2 = await middle.next(recoveredMsg, 5000, 'recovered');
  assert.deepEqual([rec2.data.recovered, rec2.data.replayed], [true, ids.length - from - 1]);
  assert.deepEqual(got.map((m) => m.id), ids.slice(from + 1));
  assert.deepEqual(got.map((m) => m.data.i), Array.from({ length: ids.length - from - 1 }, (_, k) => from + 1 + k));
  const forMiddle = (await sentByRedis()) - before2;
  const needed = (ids.length - from - 1) * pad.length;
  assert.ok(forMiddle < needed + historyBytes / 20, `Redis sent ${forMiddle} bytes for a replay of ${needed}`);

  // Live traffic follows both, once.
  assert.equal((await publish(b, { room, type: 'chat', data: { i: 'live' } })).status, 202);
  for (const c of [latest, middle]) {
    await c.next((m) => m.type === 'chat' && m.data?.i === 'live', 5000, 'live');
    const chats = c.history.filter((m) => m.type === 'chat').map((m) => m.data.i);
    assert.equal(new Set(chats).size, chats.length, `none doubled: ${chats}`);
  }
  console.log(`recovery read: ${forLatest} bytes for the latest id, ${forMiddle} for 10 of 40 messages (history ${historyBytes})`);
});

test('a resume from an id older than the history kept is not recovered, and one from another epoch neither', async () => {
  // --history-size 100 (the default): the first of 130 messages is gone (the list is trimmed back
  // to 100 once it passes 125), the 40th is still kept.
  const [a, b] = pods;
  const room = `recold-${Date.now()}`;
  const ids = [];
  for (let i = 0; i < 130; i++) {
    const res = await publish(i % 2 ? a : b, { room, type: 'chat', data: { i } });
    assert.equal(res.status, 202);
    ids.push(res.json.id);
  }
  const old = await member(b, `/ws/${room}?last_id=${encodeURIComponent(ids[0])}`);
  const rec = await old.next(recoveredMsg, 5000, 'recovered');
  assert.deepEqual([rec.data.recovered, rec.data.replayed], [false, 0]);
  assert.equal(old.history.filter((m) => m.type === 'chat').length, 0, 'nothing replayed');

  const kept = await member(a, `/ws/${room}?last_id=${encodeURIComponent(ids[29])}`);
  const got = await kept.nextN((m) => m.type === 'chat', 100, 10_000, 'replayed chats');
  assert.deepEqual(got.map((m) => m.id), ids.slice(30));
  const rec2 = await kept.next(recoveredMsg, 5000, 'recovered');
  assert.deepEqual([rec2.data.recovered, rec2.data.replayed], [true, 100]);
  const edge = await member(b, `/ws/${room}?last_id=${encodeURIComponent(ids[28])}`);
  const rec3 = await edge.next(recoveredMsg, 5000, 'recovered');
  assert.deepEqual([rec3.data.recovered, rec3.data.replayed], [false, 0], 'one message past what is kept');

  const other = await member(a, `/ws/${room}?last_id=${encodeURIComponent(`zzzzzzzz-${seqOf(ids[0])}`)}`);
  const rec4 = await other.next(recoveredMsg, 5000, 'recovered');
  assert.deepEqual([rec4.data.recovered, rec4.data.replayed], [false, 0]);
  const ahead = await member(b, `/ws/${room}?last_id=${encodeURIComponent(`${epochOf(ids[0])}-${seqOf(ids.at(-1)) + 5}`)}`);
  const rec5 = await ahead.next(recoveredMsg, 5000, 'recovered');
  assert.deepEqual([rec5.data.recovered, rec5.data.replayed], [false, 0]);
});

test('a replay from the shared history larger than the send queue reaches a client that reads', async () => {
  const [a, b] = pods;
  const room = `recbig-${Date.now()}`;
  const pad = 'r'.repeat(4000);
  const ids = [];
  for (let i = 0; i < 40; i++) {
    const res = await publish(a, { room, type: 'chat', data: { i, pad } });
    assert.equal(res.status, 202);
    ids.push(res.json.id);
  }
  // 39 messages of ~4 KB after the first (~156 KB) into a 64 KB queue, on the other pod.
  const c = await member(b, `/ws/${room}?last_id=${encodeURIComponent(ids[0])}`);
  const got = await c.nextN((m) => m.type === 'chat', 39, 10_000, 'replayed chats');
  assert.deepEqual(got.map((m) => m.id), ids.slice(1));
  const rec = await c.next(recoveredMsg, 5000, 'recovered');
  assert.deepEqual([rec.data.recovered, rec.data.replayed], [true, 39]);
  assert.equal(c.closed, null, `closed: ${JSON.stringify(c.closed)}`);
});

test('after FLUSHALL the history is gone: recovered false, and a new epoch', async () => {
  const [a, b] = pods;
  const room = `flush-${Date.now()}`;
  const c = await member(a, `/ws/${room}`);
  assert.equal((await publish(a, { room, text: 'before' })).status, 202);
  const before = await c.next(chat('before'), 3000, 'before');

  await redis.cmd('FLUSHALL');
  const late = await member(b, `/ws/${room}?last_id=${encodeURIComponent(before.id)}`);
  const rec = await late.next(recoveredMsg, 5000, 'recovered');
  assert.equal(rec.data.recovered, false, 'a lost history cannot vouch for the gap');
  assert.equal(rec.data.replayed, 0);

  assert.equal((await publish(a, { room, text: 'after' })).status, 202);
  const after = await late.next(chat('after'), 5000, 'after');
  assert.notEqual(epochOf(after.id), epochOf(before.id), `new epoch: ${before.id} -> ${after.id}`);
});

test('after FLUSHALL a pod that knew the old epoch numbers in the one the other pod started', async () => {
  // Each pod remembers the epoch Redis last numbered a room in; after the loss, the first pod to
  // publish starts a new epoch, and the other must follow it rather than resume the lost one.
  const [a, b] = pods;
  const room = `stale-${Date.now()}`;
  const c = await member(a, `/ws/${room}`);
  for (const [pod, text] of [[a, 'a1'], [b, 'b1']]) {
    assert.equal((await publish(pod, { room, text })).status, 202);
  }
  const a1 = await c.next(chat('a1'), 3000, 'a1');
  const b1 = await c.next(chat('b1'), 3000, 'b1');
  assert.equal(epochOf(b1.id), epochOf(a1.id), 'both pods numbered in one epoch');

  await redis.cmd('FLUSHALL');
  const got = [];
  for (const [pod, text] of [[b, 'b2'], [a, 'a2'], [a, 'a3'], [b, 'b3']]) {
    assert.equal((await publish(pod, { room, text })).status, 202);
    got.push(await c.next(chat(text), 5000, text));
  }
  const epoch = epochOf(got[0].id);
  assert.notEqual(epoch, epochOf(a1.id), 'a new epoch after the loss');
  assert.ok(got.every((m) => epochOf(m.id) === epoch), `one new epoch: ${got.map((m) => m.id)}`);
  assert.deepEqual(got.map((m) => seqOf(m.id)), [1, 2, 3, 4], `numbered from 1: ${got.map((m) => m.id)}`);
  assert.deepEqual(await redis.cmd('HKEYS', `realtime:ids:${room}`), [epoch], 'one epoch field in the numbering');
});

test('after SCRIPT FLUSH the pods send their scripts whole again: nothing is published only locally', async () => {
  // Each pod calls its scripts by SHA-1 and sends one whole only when Redis answers NOSCRIPT (its
  // first use, a restart, a flush): the socket and API paths, the recovery read and the position.
  const [a, b] = pods;
  const room = `noscript-${Date.now()}`;
  const onA = await member(a, `/ws/${room}`);
  const onB = await member(b, `/ws/${room}`);
  await redis.waitNumsub(`realtime:room:${room}`, 2, 5000);
  assert.equal((await publish(a, { room, text: 's0' })).status, 202);
  const s0 = await onB.next(chat('s0'), 3000, 's0');

  await redis.cmd('SCRIPT', 'FLUSH');
  onA.send({ type: 'chat', data: { text: 's1' } });
  await onB.next(chat('s1'), 5000, 's1 from a socket on a');
  assert.equal((await publish(b, { room, text: 's2' })).status, 202);
  await onA.next(chat('s2'), 5000, 's2 from the API of b');
  onB.send({ type: 'chat', data: { text: 's3' } });
  const s3 = await onA.next(chat('s3'), 5000, 's3 from a socket on b');
  const ids = [s0, ...['s1', 's2'].map((text) => onA.history.find(chat(text))), s3].map((m) => m.id);
  assert.deepEqual(ids.map(seqOf), [0, 1, 2, 3].map((n) => seqOf(s0.id) + n), `one sequence: ${ids}`);
  assert.ok(ids.every((id) => epochOf(id) === epochOf(s0.id)), `one epoch: ${ids}`);

  await redis.cmd('SCRIPT', 'FLUSH');
  const again = await member(b, `/ws/${room}?last_id=${encodeURIComponent(s0.id)}`);
  const replayed = await again.nextN((m) => m.type === 'chat', 3, 5000, 'replayed');
  assert.deepEqual(replayed.map((m) => m.id), ids.slice(1));
  const rec = await again.next(recoveredMsg, 5000, 'recovered');
  assert.deepEqual([rec.data.recovered, rec.data.replayed], [true, 3]);
  await redis.cmd('SCRIPT', 'FLUSH');
  const fresh = await member(a, `/ws/${room}-new`);
  assert.match(fresh.welcome.data.last_id, /^[0-9a-z]{8}-0$/, `a new room's position: ${JSON.stringify(fresh.welcome)}`);
});

test('a client that recovered with nothing to replay gets the whole new history after Redis lost its data', async () => {
  // Its recovery skips frames up to its last id's number, in that id's history; a new history
  // numbers from 1 again, and those numbers must not be taken for the replayed ones.
  const [a, b] = pods;
  const room = `renum-${Date.now()}`;
  const c = await member(a, `/ws/${room}`);
  for (const text of ['o1', 'o2', 'o3']) assert.equal((await publish(a, { room, text })).status, 202);
  const o3 = await c.next(chat('o3'), 3000, 'o3');
  const late = await member(a, `/ws/${room}?last_id=${encodeURIComponent(o3.id)}`);
  const rec = await late.next(recoveredMsg, 5000, 'recovered');
  assert.equal(rec.data.recovered, true);
  assert.equal(rec.data.replayed, 0);

  await redis.cmd('FLUSHALL');
  const texts = ['n1', 'n2', 'n3', 'n4', 'n5'];
  for (const [i, text] of texts.entries()) {
    assert.equal((await publish(i % 2 ? b : a, { room, text })).status, 202);
  }
  const got = [];
  for (const text of texts) got.push(await late.next(chat(text), 5000, text));
  assert.notEqual(epochOf(got[0].id), epochOf(o3.id), 'a new history');
  assert.deepEqual(got.map((m) => seqOf(m.id)), [1, 2, 3, 4, 5], `numbered from 1: ${got.map((m) => m.id)}`);
});

test('a pod whose guess of the next number is stale publishes with the number Redis gave', async () => {
  // A pod sends the id it expects Redis to give (the last one it saw plus one); when the room's
  // sequence moved on without it (here: advanced by hand, as a publish whose echo has not arrived
  // yet would), the stored, published and locally delivered copies all carry the real id.
  const [a, b] = pods;
  const room = `guess-${Date.now()}`;
  const onA = await member(a, `/ws/${room}`);
  const onB = await member(b, `/ws/${room}`);
  await redis.waitNumsub(`realtime:room:${room}`, 2, 5000);
  assert.equal((await publish(a, { room, text: 'g1' })).status, 202);
  const g1 = await onA.next(chat('g1'), 3000, 'g1');
  await onB.next(chat('g1'), 3000, 'g1 on b');

  await redis.cmd('HINCRBY', `realtime:ids:${room}`, epochOf(g1.id), '5');
  assert.equal((await publish(a, { room, text: 'g2' })).status, 202);
  assert.equal((await publish(a, { room, text: 'g3' })).status, 202);
  const g2 = await onA.next(chat('g2'), 3000, 'g2');
  const g3 = await onA.next(chat('g3'), 3000, 'g3');
  assert.equal(g2.id, `${epochOf(g1.id)}-${seqOf(g1.id) + 6}`, `the real number after the jump: ${g1.id} -> ${g2.id}`);
  assert.equal(g3.id, `${epochOf(g1.id)}-${seqOf(g1.id) + 7}`, `and the guess is right again: ${g3.id}`);
  assert.equal((await onB.next(chat('g2'), 3000, 'g2 on b')).id, g2.id, 'the other pod got the same id');
  assert.equal((await onB.next(chat('g3'), 3000, 'g3 on b')).id, g3.id, 'the other pod got the same id');
  const stored = (await redis.cmd('LRANGE', `realtime:history:${room}`, '-2', '-1')).map((item) => JSON.parse(item).id);
  assert.deepEqual(stored, [g2.id, g3.id], 'the history holds the real ids');
});

test('a quiet room is resumed on the other pod from the position its welcome gave', async () => {
  const [a, b] = pods;
  const room = `quiet-${Date.now()}`;
  const first = await member(a, `/ws/${room}`);
  const start = first.welcome.data.last_id;
  assert.match(start, /^[0-9a-z]{8}-0$/, `a new room's position: ${JSON.stringify(first.welcome)}`);
  // The other pod, joining by message, is told the same position.
  const other = await member(b, '/ws');
  other.send({ type: 'join', room });
  const joined = await other.next((m) => m.type === 'system' && m.data?.event === 'joined', 5000, 'joined');
  assert.deepEqual([joined.room, joined.data.last_id], [room, start]);
  first.close();
  await first.expectClose();

  const published = [];
  for (const [pod, text] of [[b, 'q1'], [a, 'q2']]) {
    const r = await publish(pod, { room, text });
    assert.equal(r.status, 202);
    published.push(r.json.id);
  }
  assert.deepEqual(published, [1, 2].map((n) => `${epochOf(start)}-${n}`), 'numbered on from the position');
  const again = await member(b, `/ws/${room}?last_id=${encodeURIComponent(start)}`);
  const got = [await again.next(chat('q1'), 5000, 'q1'), await again.next(chat('q2'), 5000, 'q2')];
  const rec = await again.next(recoveredMsg, 5000, 'recovered');
  assert.deepEqual([rec.data.recovered, rec.data.replayed, rec.data.last_id], [true, 2, published[1]]);
  assert.deepEqual(got.map((m) => m.id), published);
});

test('a joining client is told the last id before its membership; a failed resume gives a position too', async () => {
  const [a, b] = pods;
  const room = `pos-${Date.now()}`;
  const talker = await member(a, `/ws/${room}`);
  const ids = [];
  for (const text of ['p1', 'p2']) ids.push((await publish(b, { room, text })).json.id);
  await talker.next(chat('p2'), 5000, 'p2');
  // A pod following the room already, and one new to it, give the same position.
  for (const pod of [a, b]) {
    const c = await member(pod, `/ws/${room}`);
    assert.equal(c.welcome.data.last_id, ids[1], `position on ${pod.port}`);
  }
  const lost = await member(b, `/ws/${room}?last_id=${epochOf(ids[0])}x-1`);
  const rec = await lost.next(recoveredMsg, 5000, 'recovered');
  assert.deepEqual([rec.data.recovered, rec.data.last_id], [false, ids[1]]);
  lost.close();
  await lost.expectClose();
  const missed = (await publish(a, { room, text: 'p3' })).json.id;
  const again = await member(a, `/ws/${room}?last_id=${encodeURIComponent(rec.data.last_id)}`);
  assert.equal((await again.next(chat('p3'), 5000, 'p3')).id, missed);
  const rec2 = await again.next(recoveredMsg, 5000, 'recovered');
  assert.deepEqual([rec2.data.recovered, rec2.data.replayed, rec2.data.last_id], [true, 1, missed]);
});

test('a history started again after its keys were lost gets a TTL', async () => {
  // The pod renews a room's TTL with its first publish in a minute; a history list created again
  // within that minute (the keys lost, a join's read starting a new epoch) must get one anyway.
  const [a] = pods;
  const room = `ttl-${Date.now()}`;
  assert.equal((await publish(a, { room, text: 't1' })).status, 202);
  await redis.cmd('DEL', `realtime:ids:${room}`, `realtime:history:${room}`);
  const c = await member(a, `/ws/${room}`);
  assert.match(c.welcome.data.last_id, /-0$/, 'a new epoch, started by the join');
  assert.equal((await publish(a, { room, text: 't2' })).status, 202);
  await c.next(chat('t2'), 5000, 't2');
  const ttl = Number(await redis.cmd('TTL', `realtime:history:${room}`));
  assert.ok(ttl > 3000, `the history's TTL: ${ttl}`);
});

// A recovery on a pod whose subscriber is down (Redis refuses its reconnection: the clients' cap
// reached): its read of the history cannot follow the room's subscription, yet what other pods
// publish after it reaches the client once the subscriber is back, read back from the history.
test('a recovery while the pod cannot subscribe: what follows the read reaches the client once it can', { timeout: 60_000 }, async () => {
  const [a, b] = pods;
  const room = `recdown-${Date.now()}`;
  const ids = [];
  for (const text of ['d1', 'd2', 'd3']) ids.push((await publish(b, { room, text })).json.id);
  // One connection kept open for the commands below, as new ones are refused at the cap.
  const admin = await redis.link();
  const subscriberOfA = async () =>
    (await admin.cmd('CLIENT', 'LIST', 'TYPE', 'pubsub')).split('\n').find((line) => line.includes(`name=realtime-sub-${a.podId} `));
  const connected = Number(/connected_clients:(\d+)/.exec(String(await admin.cmd('INFO', 'clients')))[1]);
  await admin.cmd('CONFIG', 'SET', 'maxclients', String(connected - 1));
  try {
    await admin.cmd('CLIENT', 'KILL', 'ID', /id=(\d+)/.exec(await subscriberOfA())[1]);
    await waitFor(async () => (await fetch(`${a.httpUrl}/readyz`)).status === 503, { timeoutMs: 5000, message: "A's fan-out down" });
    const c = await member(a, `/ws/${room}?last_id=${encodeURIComponent(ids[2])}`);
    const rec = await c.next(recoveredMsg, 10_000, 'recovered');
    assert.deepEqual([rec.data.recovered, rec.data.replayed], [true, 0]);
    for (const text of ['d4', 'd5']) assert.equal((await publish(b, { room, text })).status, 202);
    await admin.cmd('CONFIG', 'SET', 'maxclients', '10000');
    await waitFor(async () => (await fetch(`${a.httpUrl}/readyz`)).status === 200, { timeoutMs: 10_000, message: "A's fan-out back" });
    assert.equal((await publish(b, { room, text: 'd6' })).status, 202);
    const got = await c.nextN((m) => m.type === 'chat', 3, 10_000, 'd4, d5, d6');
    assert.deepEqual(got.map((m) => m.data.text), ['d4', 'd5', 'd6']);
    assert.deepEqual(got.map((m) => seqOf(m.id)), [4, 5, 6].map((n) => seqOf(ids[0]) + n - 1));
  } finally {
    await admin.cmd('CONFIG', 'SET', 'maxclients', '10000');
    admin.close();
  }
});

test('a client resumes on the other pod from the id of a presence message it got last', async () => {
  const [a, b] = pods;
  const room = `recpres-${Date.now()}`;
  const first = await member(a, `/ws/${room}`);
  assert.equal((await publish(b, { room, text: 'p1' })).status, 202);
  await first.next(chat('p1'), 5000, 'p1');
  const other = await member(b, `/ws/${room}`);
  const online = await first.next((m) => m.type === 'presence' && m.data?.user_id === other.userId, 5000, 'presence');
  first.close();
  await first.expectClose();
  assert.equal((await publish(a, { room, text: 'p2' })).status, 202);
  const again = await member(b, `/ws/${room}?last_id=${encodeURIComponent(online.id)}`);
  await again.next(chat('p2'), 5000, 'p2');
  const rec = await again.next(recoveredMsg, 5000, 'recovered');
  assert.deepEqual([rec.data.recovered, rec.data.replayed], [true, 1], `from ${online.id}`);
  assert.equal(again.history.filter((m) => m.type === 'chat').length, 1, 'p2 only');
});

test('a client resumes on the other pod from the id of a pong, an error, a notification or a global broadcast it got last', async () => {
  const [a, b] = pods;
  const room = `recpong-${Date.now()}`;
  const first = await member(a, `/ws/${room}`);
  assert.equal((await publish(b, { room, text: 'q1' })).status, 202);
  await first.next(chat('q1'), 5000, 'q1');
  first.send({ type: 'ping' });
  const pong = await first.next((m) => m.type === 'pong', 5000, 'pong');
  first.send({ type: 'no-such-type' });
  const error = await first.next((m) => m.type === 'error', 5000, 'error');
  // Published on the other pod: they reach pod A through Redis.
  assert.equal((await publish(b, { user: first.userId, type: 'notification', data: { note: 'q' } })).status, 202);
  const note = await first.next((m) => m.type === 'notification', 5000, 'notification');
  const all = await publish(b, { type: 'system', data: { event: 'announcement', text: `all ${room}` } });
  assert.equal(all.status, 202);
  const global = await first.next((m) => m.type === 'system' && m.data?.text === `all ${room}`, 5000, 'global broadcast');
  first.close();
  await first.expectClose();
  assert.equal((await publish(a, { room, text: 'q2' })).status, 202);
  const named = [['pong', pong.id, 'd'], ['error', error.id, 'd'], ['notification', note.id, 'u'], ['global broadcast', global.id, 'g']];
  for (const [what, id, kind] of named) {
    assert.match(id, new RegExp(`^[0-9a-z]{8}-\\d+\\.${kind}[0-9a-z]+$`), `the ${what}'s id names a position`);
    const again = await member(b, `/ws/${room}?last_id=${id}`);
    await again.next(chat('q2'), 5000, 'q2');
    const rec = await again.next(recoveredMsg, 5000, 'recovered');
    assert.deepEqual([rec.data.recovered, rec.data.replayed], [true, 1], `from the ${what}'s id ${id}`);
    assert.deepEqual(again.history.filter((m) => m.type === 'chat').map((m) => m.data.text), ['q2'], 'q2 only');
    again.close();
    await again.expectClose();
  }
});

// A presence id naming a room position: "<epoch>-<seq>.p<tag><n>".
const POSITIONED = /^[0-9a-z]{8}-\d+\.p[0-9a-z]+$/;
const ownPresence = (c) => (m) => m.type === 'presence' && m.data?.user_id === c.userId && m.data?.status === 'online';

test('a socket\'s own presence in a room new to its pod names the position: on connect, on join and after a resume', async () => {
  const [a, b] = pods;
  const room = `recown-${Date.now()}`;
  const joined = `${room}-j`;
  const first = await member(a, `/ws/${room}`);
  const online = await first.next(ownPresence(first), 5000, 'own presence');
  assert.match(online.id, POSITIONED);
  await first.join(joined);
  const onlineJoined = await first.next((m) => ownPresence(first)(m) && m.room === joined, 5000, 'own presence on join');
  assert.match(onlineJoined.id, POSITIONED);
  first.close();
  await first.expectClose();

  // Resumed from each (its last message in that room), on the other pod: what came since, once.
  assert.equal((await publish(a, { room, text: 'q1' })).status, 202);
  assert.equal((await publish(a, { room: joined, text: 'j1' })).status, 202);
  const again = await member(b, `/ws/${room}?last_id=${encodeURIComponent(online.id)}`);
  await again.next(chat('q1'), 5000, 'q1');
  let rec = await again.next(recoveredMsg, 5000, 'recovered');
  assert.deepEqual([rec.data.recovered, rec.data.replayed], [true, 1], `from ${online.id}`);
  // Its own presence after the resume comes after the replay, and names the replay's end.
  const onlineAgain = await again.next(ownPresence(again), 5000, 'own presence after the resume');
  assert.match(onlineAgain.id, POSITIONED);
  assert.equal(onlineAgain.id.slice(0, onlineAgain.id.indexOf('.')), rec.data.last_id);
  again.send({ type: 'join', room: joined, last_id: onlineJoined.id });
  await again.next(chat('j1'), 5000, 'j1');
  rec = await again.next((m) => recoveredMsg(m) && m.room === joined, 5000, 'recovered (join)');
  assert.deepEqual([rec.data.recovered, rec.data.replayed], [true, 1], `from ${onlineJoined.id}`);

  // And from the presence it got last: nothing again, and what comes next.
  again.close();
  await again.expectClose();
  assert.equal((await publish(b, { room, text: 'q2' })).status, 202);
  const third = await member(a, `/ws/${room}?last_id=${encodeURIComponent(onlineAgain.id)}`);
  await third.next(chat('q2'), 5000, 'q2');
  rec = await third.next(recoveredMsg, 5000, 'recovered (third)');
  assert.deepEqual([rec.data.recovered, rec.data.replayed], [true, 1], `from ${onlineAgain.id}`);
  assert.equal(third.history.filter((m) => m.type === 'chat').length, 1, 'q2 only');
});

test('presence ids stay unique when a pod restarts: the same events at the same position get new ids', async () => {
  const room = `recuniq-${Date.now()}`;
  const runs = [];
  for (const run of [0, 1]) {
    const pod = await startPod(redis, { podId: `recuniq-${run}` });
    try {
      const ids = [];
      const c1 = await connect(pod, `/ws/${room}`);
      await c1.next(ownPresence(c1), 5000, 'own presence');
      // Members come and go: each event's id as c1 gets it.
      for (let i = 0; i < 5; i++) {
        const c2 = await connect(pod, `/ws/${room}`);
        const presenceOf = (status) => (m) => m.type === 'presence' && m.data?.user_id === c2.userId && m.data?.status === status;
        ids.push((await c1.next(presenceOf('online'), 5000, 'online')).id);
        c2.close();
        ids.push((await c1.next(presenceOf('offline'), 5000, 'offline')).id);
      }
      c1.close();
      await c1.expectClose();
      for (const id of ids) assert.match(id, POSITIONED);
      runs.push(ids);
    } finally {
      await pod.stop();
    }
  }
  // The room is quiet: both runs stand at the same position; only the pod's tag tells them apart.
  const position = (id) => id.slice(0, id.indexOf('.'));
  assert.equal(position(runs[0][0]), position(runs[1][0]));
  const again = runs[1].filter((id) => runs[0].includes(id));
  assert.deepEqual(again, [], `ids given twice: ${runs[0]} / ${runs[1]}`);
});
