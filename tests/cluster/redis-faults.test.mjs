// Redis faults under two pods (each test has its own redis-server and pods).
// - redis-server SIGKILLed while a publisher on pod A streams chat into a room shared with pod B,
//   then started again on the same port: members on A get every message exactly once and in order
//   (local delivery goes on during the outage); no socket is closed on either pod; A's
//   realtime_redis_publish_errors increases and realtime_redis_up drops to 0; /readyz answers 503
//   on both pods during the outage and 200 after; cross-pod delivery to B is back within 5 s of Redis
//   answering again, and what B gets is duplicate-free and in the publisher's order; a socket
//   opened on A during the outage, in a room new to A, is welcomed without waiting for Redis.
// - redis-server SIGKILLed and started again at once (an outage well within the 2 s a pod holds its
//   room messages for a lost connection): a member on pod B gets every message published on A,
//   once and in order, but those whose call was in flight at the kill (each counted as a publish
//   error on A); A's members get every one.
// - Redis down past the 2 s hold while four sockets on pod A publish fast: when the held messages
//   are delivered locally, each publisher's later messages come after them (a member on A gets
//   every message of each publisher once and in order).
// - CLIENT KILL TYPE pubsub: every active room channel (and realtime:global) is subscribed again by
//   both pods within 2 s (PUBSUB NUMSUB) and messages cross the pods again in every room, user
//   notifications and global broadcasts included.
// - subscriptions killed (CLIENT KILL TYPE pubsub) while a pod streams into a room: a member on the
//   other pod gets every message once and in order (what its pod's subscription missed is read back
//   from the room's shared history), also a message published while the subscription was down and
//   followed by nothing.
// - CLIENT KILL of the connections a pod's I/O threads publish through (one per thread, named
//   realtime-pub-<pod>-<thread>): messages published right after it still reach the other pod once
//   and in order, with the same ids on both pods and no publish error (the Redis thread's connection
//   takes them until the thread's own is back, here held off by Redis's maxclients so that the
//   stream switches back mid-way); every thread's connection is back within 5 s and carries the
//   rooms again.
// - a pod that has just started (listening, not ready yet): a room message taken by POST
//   /api/publish at once reaches a member on another pod and the room's shared history (it waits
//   for the pod's first Redis connection instead of being numbered by the pod alone).
// - a pod started while Redis is down: /healthz 200, /readyz 503 (with a reason in the body) until
//   Redis answers, then 200 within 10 s of it answering; it serves WebSockets meanwhile.
// - a pod stopped by SIGTERM logs no warning nor error (the fan-out it takes down itself is logged
//   at info).
// - a pod pointed at a read-only replica: the log names the READONLY error, not a refused AUTH,
//   SELECT or PING.
// - Redis refusing the pod's password: /readyz 503 names the AUTH failure, and each of the pod's
//   connections logs its failed attempts once per 5 s, not once per attempt.
// - Redis restarted empty while both pods stream into a room: once the pods are back, members on
//   both pods get every message of the new epoch, from its first, once and in order (a pod that was
//   following the room takes the new history from 1 and reads back what its subscription missed,
//   the messages both pods held during the outage included).
// - Redis restarted from an older snapshot (SAVE, three more messages, SIGKILL, restart): every
//   room starts a new epoch, so messages published on either pod afterwards reach both pods' members
//   (none is taken for one already delivered), no id repeats, and a client resuming from the last
//   message the snapshot knows is told recovered: false (it missed the three after it).
// - FLUSHALL: the pods record the run again (realtime:run, within a lease renewal), so a reconnect
//   on the same Redis afterwards keeps the rooms' numbering.
// - Redis restarted empty (no persistence): the cluster state is written again by the pods, so
//   GET /api/rooms and /api/rooms/{room}/presence on either pod list every pod's members within 5 s.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, killAllRedis, sleep, waitFor } from './lib/redis.mjs';
import { startPod, startPods, killAllPods } from './lib/server.mjs';
import { connect, closeAll, redisBarrier } from './lib/client.mjs';
import { get, metric, publish, presenceList } from './lib/http.mjs';
import { metrics as metricsOf } from '../support/node/http.mjs';

after(() => {
  killAllPods();
  killAllRedis();
});

/** Start redis + n pods, run fn, then tear down (pods must exit 0 on SIGTERM when fn passed). */
async function withCluster(n, prefix, fn, args = []) {
  const redis = await startRedis();
  const clients = [];
  let pods = [];
  let failure;
  try {
    pods = await startPods(redis, n, { prefix, args });
    await fn({ redis, pods, clients });
  } catch (e) {
    failure = e;
  }
  closeAll(clients);
  try {
    await Promise.all(pods.map((p) => p.stop()));
  } catch (e) {
    if (!failure) failure = e;
  }
  await redis.stop();
  if (failure) {
    for (const p of pods) failure.message += `\n${p.logTail(800)}`;
    throw failure;
  }
}

/**
 * A publisher and a member on pod a and a member on pod b in `room`, and a stream of chat from the
 * publisher, one every 10 ms with an increasing data.seq. stop() ends it; finish() then sends a
 * fin, waits until it crossed and the pods' echoes are flushed (a Redis barrier), checks that both
 * members on pod a got every seq exactly once and in order, and that the member on b got no
 * duplicate nor disorder; it returns the seqs b got and the last seq sent.
 */
async function streamAcrossPods({ redis, a, b, room, clients }) {
  const pub = await connect(a, `/ws/${room}`);
  const localMember = await connect(a, `/ws/${room}`);
  const remoteMember = await connect(b, `/ws/${room}`);
  clients.push(pub, localMember, remoteMember);
  await redis.waitNumsub(`realtime:room:${room}`, 2, 5000);
  const isSeq = (m) => m.type === 'chat' && typeof m.data?.seq === 'number';
  let seq = 0;
  let streaming = true;
  const streamer = (async () => {
    while (streaming) {
      pub.send({ type: 'chat', data: { seq: seq++ } });
      await sleep(10);
    }
  })();
  const stop = async () => {
    streaming = false;
    await streamer;
  };
  const finish = async () => {
    const last = seq - 1;
    pub.send({ type: 'chat', data: { fin: true } });
    // once the fin crossed to B, every PUBLISH of A's before it has run in Redis; the barrier then
    // flushes any echo of them on both pods
    await remoteMember.next((x) => x.type === 'chat' && x.data?.fin === true, 5000, 'fin on the remote member');
    await redisBarrier(redis, `realtime:room:${room}`, [pub, localMember, remoteMember]);
    for (const [name, m] of [['publisher', pub], ['local member', localMember]]) {
      await m.next((x) => x.type === 'chat' && x.data?.fin === true, 5000, `fin on the ${name}`);
      const seqs = m.seen(isSeq).map((x) => x.data.seq);
      const bad = seqs.findIndex((s, j) => s !== j);
      assert.equal(bad, -1, `${name} on A: loss/duplicate/disorder at position ${bad}: ${seqs.slice(Math.max(0, bad - 3), bad + 3)}`);
      assert.equal(seqs.length, last + 1, `${name} on A: got ${seqs.length} of ${last + 1}`);
    }
    const rseqs = remoteMember.seen(isSeq).map((x) => x.data.seq);
    const rbad = rseqs.findIndex((s, j) => j > 0 && s <= rseqs[j - 1]);
    assert.equal(rbad, -1, `member on B: duplicate or disorder at position ${rbad}: ${rseqs.slice(Math.max(0, rbad - 3), rbad + 3)}`);
    return { rseqs, last };
  };
  return { pub, localMember, remoteMember, isSeq, sent: () => seq, stop, finish };
}

test('Redis SIGKILLed mid-stream and restarted: no loss/duplicate locally, no socket closed, errors counted, readyz 503 then 200, cross-pod back within 5 s', { timeout: 60_000 }, (t) =>
  withCluster(2, 'fault', async ({ redis, pods, clients }) => {
    const [a, b] = pods;
    const stream = await streamAcrossPods({ redis, a, b, room: 'outage', clients });
    const { pub, remoteMember, isSeq } = stream;
    const errorsBefore = (await metric(a, 'realtime_redis_publish_errors')) ?? 0;

    try {
      // cross-pod works before the fault
      await remoteMember.next((m) => isSeq(m) && m.data.seq >= 20, 5000, 'cross-pod stream before the outage');

      await redis.kill();
      const killedAt = Date.now();

      // during the outage: both pods unready, publish errors counted, Redis reported down
      let lastA;
      let lastB;
      await waitFor(
        async () => {
          lastA = (await get(a, '/readyz')).status;
          lastB = (await get(b, '/readyz')).status;
          return lastA === 503 && lastB === 503;
        },
        { timeoutMs: 8000, intervalMs: 100, message: () => `/readyz 503 on both pods during the outage (A ${lastA}, B ${lastB})` },
      );
      let errs;
      await waitFor(
        async () => {
          errs = await metric(a, 'realtime_redis_publish_errors');
          return errs > errorsBefore;
        },
        { timeoutMs: 5000, intervalMs: 100, message: () => `realtime_redis_publish_errors to increase (before ${errorsBefore}, now ${errs})` },
      );
      assert.equal(await metric(a, 'realtime_redis_up'), 0, 'realtime_redis_up during the outage');
      // a socket opened now, in a room new to the pod, is welcomed without waiting for a
      // subscription Redis cannot confirm (the bound is well below the 2 s such a wait may last),
      // and gets the pod's own traffic
      const openedAt = Date.now();
      const newcomer = await connect(a, '/ws/outage-new');
      clients.push(newcomer);
      const welcomeMs = Date.now() - openedAt;
      assert.ok(welcomeMs < 1500, `welcome during the outage after ${welcomeMs} ms`);
      newcomer.send({ type: 'chat', data: { newcomer: true } });
      await newcomer.next((m) => m.type === 'chat' && m.data?.newcomer === true, 5000, 'own chat during the outage');
      // keep the outage at least 1.5 s long, still streaming, and readyz stays 503 through it
      while (Date.now() - killedAt < 1500) await sleep(100);
      assert.equal((await get(a, '/readyz')).status, 503, '/readyz on A just before Redis returns');

      await redis.restart();
      const backAt = Date.now();
      const seqAtRestart = stream.sent();
      const back = await remoteMember.next(
        (m) => isSeq(m) && m.data.seq >= seqAtRestart,
        5000,
        `cross-pod delivery within 5 s of Redis returning (restart at seq ${seqAtRestart})`,
      );
      const recoveredMs = Date.now() - backAt;
      t.diagnostic(`outage ${backAt - killedAt} ms; cross-pod delivery back ${recoveredMs} ms after Redis returned`);
      assert.ok(back);
      await a.waitReady(5000);
      await b.waitReady(5000);
      assert.equal(await metric(a, 'realtime_redis_up'), 1, 'realtime_redis_up after recovery');
    } finally {
      await stream.stop();
    }
    // members on the publisher's pod: every seq exactly once, in order; member on B: some loss
    // during the outage is allowed, no duplicate, order kept
    await stream.finish();

    for (const [name, c] of [['publisher', pub], ['local member', stream.localMember], ['remote member', remoteMember]]) {
      assert.equal(c.closed, null, `${name} socket was closed: ${JSON.stringify(c.closed)}`);
      await c.roundTrip();
    }
  }),
);

test('Redis restarted at once: messages published during the outage wait for it and reach the other pod, none lost', { timeout: 60_000 }, (t) =>
  withCluster(2, 'blip', async ({ redis, pods, clients }) => {
    const [a, b] = pods;
    const stream = await streamAcrossPods({ redis, a, b, room: 'blip', clients });
    const { remoteMember, isSeq } = stream;
    let errors;
    let outage;
    try {
      await remoteMember.next((m) => isSeq(m) && m.data.seq >= 20, 5000, 'cross-pod stream before the outage');
      const errorsBefore = (await metric(a, 'realtime_redis_publish_errors')) ?? 0;
      await redis.kill();
      const killedAt = Date.now();
      const seqAtKill = stream.sent();
      await sleep(300);
      await redis.restart();
      outage = { ms: Date.now() - killedAt, messages: stream.sent() - seqAtKill };
      const seqAtRestart = stream.sent();
      await remoteMember.next((m) => isSeq(m) && m.data.seq >= seqAtRestart, 5000, 'cross-pod delivery after Redis returned');
      errors = (await metric(a, 'realtime_redis_publish_errors')) - errorsBefore;
    } finally {
      await stream.stop();
    }
    t.diagnostic(`outage ${outage.ms} ms, ${outage.messages} messages published meanwhile; publish errors on A: ${errors}`);
    assert.ok(outage.messages >= 20, `messages published during the outage: ${outage.messages}`);
    const { rseqs, last } = await stream.finish();
    const got = new Set(rseqs);
    const missing = [];
    for (let k = 0; k <= last; k++) if (!got.has(k)) missing.push(k);
    // Only a message whose call was in flight when Redis died reaches A's members alone (a publish
    // error); the others waited for Redis to come back.
    assert.ok(missing.length <= errors, `member on B missed ${missing.length} (${missing.slice(0, 20)}), publish errors on A ${errors}`);
    assert.ok(errors <= 3, `publish errors on A: ${errors} of the ${outage.messages} messages published during the outage`);
  }),
);

test('Redis down past the hold under fast publishers: the held messages, then the later ones, in each publisher\'s order', { timeout: 60_000 }, (t) =>
  withCluster(1, 'release', async ({ redis, pods, clients }) => {
    const [a] = pods;
    const room = 'release';
    const member = await connect(a, `/ws/${room}`);
    const publishers = [];
    for (let k = 0; k < 4; k++) publishers.push(await connect(a, `/ws/${room}`));
    clients.push(member, ...publishers);
    await redis.waitNumsub(`realtime:room:${room}`, 1, 5000);
    const sent = publishers.map(() => 0);
    let streaming = true;
    const streams = publishers.map((p, k) => (async () => {
      while (streaming) {
        for (let i = 0; i < 4; i++) p.send({ type: 'chat', data: { k, seq: sent[k]++ } });
        await sleep(1);
      }
    })());
    try {
      await sleep(200);
      await redis.kill();
      await sleep(3000); // past the hold, and on for a while
    } finally {
      streaming = false;
      await Promise.all(streams);
    }
    const total = sent.reduce((x, y) => x + y, 0);
    await member.nextN((m) => m.type === 'chat' && typeof m.data?.k === 'number', total, 10_000, `all ${total} messages at the member`);
    for (let k = 0; k < publishers.length; k++) {
      const seqs = member.seen((m) => m.type === 'chat' && m.data?.k === k).map((m) => m.data.seq);
      const bad = seqs.findIndex((s, j) => s !== j);
      assert.equal(bad, -1, `publisher ${k}: loss/duplicate/disorder at position ${bad}: ${seqs.slice(Math.max(0, bad - 3), bad + 3)}`);
      assert.equal(seqs.length, sent[k], `publisher ${k}: got ${seqs.length} of ${sent[k]}`);
    }
    t.diagnostic(`${total} messages from ${publishers.length} publishers over the outage`);
    // (Every socket of the room gets the whole stream, some MB, the held part at once: a send queue
    // that holds it, so that this process reading them late on a busy machine is no slow consumer.)
  }, ['--send-queue-bytes', String(64 << 20)]),
);

test('CLIENT KILL TYPE pubsub: every active room resubscribed within 2 s, and delivery crosses pods again', { timeout: 30_000 }, () =>
  withCluster(2, 'ckill', async ({ redis, pods, clients }) => {
    const [a, b] = pods;
    const rooms = Array.from({ length: 5 }, (_, i) => `ck-${i}`);
    const pubs = [];
    const subs = [];
    const lone = await connect(b, '/ws');
    clients.push(lone);
    for (const room of rooms) {
      const p = await connect(a, `/ws/${room}`);
      const s = await connect(b, `/ws/${room}`);
      pubs.push(p);
      subs.push(s);
      clients.push(p, s);
    }
    const channels = rooms.map((r) => `realtime:room:${r}`);
    channels.push('realtime:global');
    await waitFor(async () => Object.values(await redis.numsubMany(channels)).every((n) => n === 2), {
      timeoutMs: 5000,
      message: 'both pods subscribed to every room',
    });

    const killed = await redis.cmd('CLIENT', 'KILL', 'TYPE', 'pubsub');
    assert.ok(Number(killed) >= 2, `CLIENT KILL TYPE pubsub killed ${killed} connections`);
    const killedAt = Date.now();

    let last;
    await waitFor(
      async () => {
        last = await redis.numsubMany(channels);
        return Object.values(last).every((n) => n === 2);
      },
      { timeoutMs: 2000, intervalMs: 20, message: () => `every room channel resubscribed by both pods (NUMSUB ${JSON.stringify(last)})` },
    );
    const resubMs = Date.now() - killedAt;
    assert.ok(resubMs <= 2000, `resubscribed after ${resubMs} ms`);

    // actual delivery, both directions, in every room
    for (let i = 0; i < rooms.length; i++) {
      const t1 = `after kill a->b ${i}`;
      pubs[i].send({ type: 'chat', data: { text: t1 } });
      await subs[i].next((m) => m.data?.text === t1, 3000, `${rooms[i]}: A -> B after CLIENT KILL`);
      const t2 = `after kill b->a ${i}`;
      subs[i].send({ type: 'chat', data: { text: t2 } });
      await pubs[i].next((m) => m.data?.text === t2, 3000, `${rooms[i]}: B -> A after CLIENT KILL`);
    }
    // the user channel of a socket on B and the global channel came back too
    await redis.waitNumsub(`realtime:user:${lone.userId}`, 1, 2000);
    let r = await publish(a, { user: lone.userId, type: 'notification', data: { note: 'after kill' } });
    assert.equal(r.status, 202);
    await lone.next((m) => m.data?.note === 'after kill', 3000, 'notification from pod A to a user on pod B after CLIENT KILL');
    r = await publish(a, { type: 'chat', data: { text: 'global after kill' } });
    assert.equal(r.status, 202);
    await lone.next((m) => m.data?.text === 'global after kill', 3000, 'global broadcast from pod A on pod B after CLIENT KILL');
    for (const c of [...pubs, ...subs, lone]) assert.equal(c.closed, null, 'no socket closed for a Redis fault');
    await a.waitReady(5000);
    await b.waitReady(5000);
  }),
);

test('subscriptions killed under traffic: a member on the other pod gets every message once, in order (read back from the history)', { timeout: 30_000 }, () =>
  withCluster(2, 'cgap', async ({ redis, pods, clients }) => {
    const [a, b] = pods;
    const room = 'cgap';
    const member = await connect(a, `/ws/${room}`);
    const publisher = await connect(b, `/ws/${room}`);
    clients.push(member, publisher);
    await redis.waitNumsub(`realtime:room:${room}`, 2, 5000);
    let n = 0;
    let streaming = true;
    const stream = (async () => {
      while (streaming) {
        publisher.send({ type: 'chat', data: { n: ++n } });
        await sleep(2);
      }
    })();
    await sleep(200);
    for (let k = 0; k < 3; k++) {
      // Each pod's subscription goes; other pods' messages published until it is back are missed by it.
      await redis.cmd('CLIENT', 'KILL', 'TYPE', 'pubsub');
      await sleep(500);
    }
    streaming = false;
    await stream;
    await member.next((m) => m.data?.n === n, 5000, `the last message (${n})`);
    await member.roundTrip();
    const got = member.seen((m) => m.type === 'chat').map((m) => m.data.n);
    const missing = [];
    const have = new Set(got);
    for (let i = 1; i <= n; i++) if (!have.has(i)) missing.push(i);
    assert.deepEqual(missing, [], `${missing.length} of ${n} missing`);
    assert.deepEqual(got, [...got].sort((x, y) => x - y), 'in order');
    assert.equal(got.length, n, 'each once');
  }),
);

test('a message published while a pod\'s subscription is down reaches its members once it is back, with nothing after it', { timeout: 30_000 }, () =>
  withCluster(2, 'cquiet', async ({ redis, pods, clients }) => {
    const [a, b] = pods;
    const room = 'cquiet';
    const member = await connect(a, `/ws/${room}`);
    const publisher = await connect(b, `/ws/${room}`);
    clients.push(member, publisher);
    await redis.waitNumsub(`realtime:room:${room}`, 2, 5000);
    publisher.send({ type: 'chat', data: { n: 0 } });
    await member.next((m) => m.data?.n === 0, 3000, 'a first message');
    // The subscriptions are killed as fast as they come back, and one message is published meanwhile.
    const until = Date.now() + 600;
    let posted = false;
    while (Date.now() < until) {
      await redis.cmd('CLIENT', 'KILL', 'TYPE', 'pubsub');
      if (!posted && Date.now() > until - 400) {
        posted = true;
        const r = await publish(b, { room, type: 'chat', data: { n: 1 } });
        assert.equal(r.status, 202);
      }
      await sleep(3);
    }
    await member.next((m) => m.data?.n === 1, 5000, 'the message published while the subscription was down');
    await member.roundTrip();
    assert.equal(member.seen((m) => m.data?.n === 1).length, 1, 'once');
  }),
);

test('Redis restarted empty under traffic from both pods: members on both get the new epoch whole, from 1, in order', { timeout: 40_000 }, () =>
  withCluster(2, 'cnewep', async ({ redis, pods, clients }) => {
    const [a, b] = pods;
    const room = 'cnewep';
    const onA = await connect(a, `/ws/${room}`);
    const onB = await connect(b, `/ws/${room}`);
    clients.push(onA, onB);
    await redis.waitNumsub(`realtime:room:${room}`, 2, 5000);
    let streaming = true;
    const stream = (client, every) => (async () => {
      while (streaming) {
        if (client.ws.readyState === 1) client.send({ type: 'chat', data: { t: Date.now() } });
        await sleep(every);
      }
    })();
    const streams = [stream(onA, 7), stream(onB, 11)];
    await sleep(300);
    await redis.kill();
    await sleep(1500);
    await redis.restart();
    await waitFor(async () => (await get(a, '/readyz')).status === 200 && (await get(b, '/readyz')).status === 200, { timeoutMs: 10_000, message: 'both pods ready again' });
    await sleep(1500);
    streaming = false;
    await Promise.all(streams);
    // Gaps read back, and the last messages delivered: a last message from each pod, numbered after
    // every other, reaches the members on both.
    onA.send({ type: 'chat', data: { fin: 'A' } });
    onB.send({ type: 'chat', data: { fin: 'B' } });
    for (const [name, client] of [['A', onA], ['B', onB]]) {
      for (const fin of ['A', 'B']) await client.next((m) => m.type === 'chat' && m.data?.fin === fin, 10_000, `the last message from ${fin} on ${name}`);
    }
    const epochOf = (id) => id.slice(0, id.lastIndexOf('-'));
    const seqOf = (id) => Number(id.slice(id.lastIndexOf('-') + 1));
    const ids = (client) => client.seen((m) => m.type === 'chat').map((m) => m.id);
    const last = ids(onA).at(-1);
    const epoch = epochOf(last);
    for (const [name, client] of [['A', onA], ['B', onB]]) {
      const seqs = ids(client).filter((id) => epochOf(id) === epoch).map(seqOf);
      const max = Math.max(...seqs);
      const missing = [];
      for (let i = 1; i <= max; i++) if (!seqs.includes(i)) missing.push(i);
      assert.deepEqual(missing, [], `${name}: ${missing.length} of the new epoch's ${max} missing`);
      assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y), `${name}: in order`);
      assert.equal(seqs.length, max, `${name}: each once`);
    }
    // Both streams' messages of the outage (~350, held by their pods for Redis) open the new epoch
    // at once, before the other pod's subscription may be back: it reads them back from the shared
    // history, which must hold them (it keeps --history-size per room).
  }, ['--history-size', '1000']),
);

test('Redis restarted from an older snapshot: the rooms start a new epoch, so nothing is dropped as a duplicate, no id repeats, and no resume claims a whole history', { timeout: 40_000 }, () =>
  withCluster(2, 'cold', async ({ redis, pods, clients }) => {
    const [a, b] = pods;
    const room = 'cold';
    // Every connection that numbers messages or reads histories checks the run: the Redis thread's
    // and one per I/O thread (two here), on each pod.
    // This test's own INFO polls count as well: each one is subtracted (Redis counts a call once it
    // has answered it, so a poll sees the polls before it since Redis started, not itself).
    let ownPolls = 0;
    const infoCalls = async () => Number((await redis.cmd('INFO', 'commandstats')).match(/cmdstat_info:calls=(\d+)/)?.[1] ?? 0) - ownPolls++;
    let calls = 0;
    const checked = (when) =>
      waitFor(async () => (calls = await infoCalls()) === 6, { timeoutMs: 10_000, message: () => `six connections checked the run ${when} (counted ${calls})` });
    await checked('at the start');
    const onA = await connect(a, `/ws/${room}`);
    const onB = await connect(b, `/ws/${room}`);
    clients.push(onA, onB);
    await redis.waitNumsub(`realtime:room:${room}`, 2, 5000);
    const chat = (n) => (m) => m.type === 'chat' && m.data?.n === n;
    const send = async (from, n) => {
      from.send({ type: 'chat', data: { n } });
      for (const [name, c] of [['A', onA], ['B', onB]]) await c.next(chat(n), 5000, `m${n} on ${name}`);
    };
    for (let n = 1; n <= 3; n++) await send(onA, n);
    assert.equal(await redis.cmd('SAVE'), 'OK');  // the snapshot knows m1..m3
    for (let n = 4; n <= 6; n++) await send(onA, n);
    const snapshotLast = onA.seen(chat(3))[0].id;
    await redis.kill();  // no save at exit: Redis comes back with the snapshot, three numbers behind
    await redis.restart();
    ownPolls = 0;  // a new Redis process counts from zero
    await waitFor(async () => (await get(a, '/readyz')).status === 200 && (await get(b, '/readyz')).status === 200, { timeoutMs: 10_000, message: 'both pods ready again' });
    await redis.waitNumsub(`realtime:room:${room}`, 2, 5000);
    await checked('after the restart');
    // Each pod's members get the messages published on either pod after the restart.
    await send(onB, 7);
    await send(onA, 8);
    assert.equal((await publish(b, { room, type: 'chat', data: { n: 9 } })).status, 202);
    for (const [name, c] of [['A', onA], ['B', onB]]) {
      await c.next(chat(9), 5000, `m9 on ${name}`);
      const ids = c.seen((m) => m.type === 'chat').map((m) => m.id);
      assert.equal(new Set(ids).size, ids.length, `${name}: an id repeats: ${ids}`);
    }
    // A client that saw m3 last was not sent m4..m6 by the restarted Redis: it is told so.
    const resumed = await connect(a, `/ws/${room}?last_id=${encodeURIComponent(snapshotLast)}`);
    clients.push(resumed);
    const rec = await resumed.next((m) => m.type === 'system' && m.data?.event === 'recovered', 5000, 'recovered');
    assert.equal(rec.data.recovered, false, `resumed from m3 with ${JSON.stringify(rec.data)}`);
    assert.ok([a, b].some((p) => /rooms' numbering dropped/.test(p.stderr)), 'a pod said it dropped the numbering');
  }, ['--threads', '2']),
);

test('the run recorded again after FLUSHALL: a later reconnect on the same Redis drops nothing', { timeout: 30_000 }, () =>
  withCluster(2, 'crun', async ({ redis, pods, clients }) => {
    const [a, b] = pods;
    const room = 'crun';
    const onA = await connect(a, `/ws/${room}`);
    clients.push(onA);
    await redis.waitNumsub(`realtime:room:${room}`, 1, 5000);
    const run = await redis.cmd('GET', 'realtime:run');
    assert.match(run, /^[0-9a-f]{40}$/);
    await redis.cmd('FLUSHALL');
    await waitFor(async () => (await redis.cmd('GET', 'realtime:run')) === run, { timeoutMs: 5000, message: 'realtime:run recorded again' });
    const chat = (n) => (m) => m.type === 'chat' && m.data?.n === n;
    assert.equal((await publish(b, { room, type: 'chat', data: { n: 1 } })).status, 202);
    const before = await onA.next(chat(1), 5000, 'n1');
    const drops = (p) => (p.stderr.match(/rooms' numbering dropped/g) ?? []).length;
    const dropsBefore = drops(b);
    const killed = await redis.cmd('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
    assert.ok(killed > 0);
    await waitFor(async () => (await get(b, '/readyz')).status === 200, { timeoutMs: 10_000, message: 'pod b ready again' });
    await waitFor(async () => {
      const r = await publish(b, { room, type: 'chat', data: { n: 2 } });
      return r.status === 202;
    }, { timeoutMs: 5000, message: 'a publish taken again' });
    const after = await onA.next(chat(2), 5000, 'n2');
    const epochOf = (id) => id.slice(0, id.lastIndexOf('-'));
    assert.equal(epochOf(after.id), epochOf(before.id), `same epoch: ${before.id} then ${after.id}`);
    assert.equal(drops(b), dropsBefore, 'no numbering dropped at the reconnect');
  }),
);

test('CLIENT KILL of the I/O threads\' publishing connections: messages cross pods once, in order, same ids, no error; the connections come back', { timeout: 90_000 }, () =>
  withCluster(2, 'lane', async ({ redis, pods, clients }) => {
    const [a, b] = pods;
    const laneName = new RegExp(`^realtime-pub-${a.podId}-(\\d+)$`);
    const lanes = async (via = redis) => {
      const list = String(await via.cmd('CLIENT', 'LIST'));
      return list
        .split('\n')
        .map((line) => ({ id: / id=(\d+)/.exec(` ${line}`)?.[1], name: /name=(\S*)/.exec(line)?.[1] ?? '' }))
        .filter((c) => c.id && laneName.test(c.name));
    };
    // Rooms spread over both threads of pod A (a room's members live on its home thread).
    const rooms = Array.from({ length: 6 }, (_, i) => `lane-${i}`);
    const pubs = [];
    const locals = [];
    const remotes = [];
    for (const room of rooms) {
      const p = await connect(a, `/ws/${room}`);
      const l = await connect(a, `/ws/${room}`);
      const r = await connect(b, `/ws/${room}`);
      pubs.push(p);
      locals.push(l);
      remotes.push(r);
      clients.push(p, l, r);
    }
    for (const room of rooms) await redis.waitNumsub(`realtime:room:${room}`, 2, 5000);
    for (let i = 0; i < rooms.length; i++) {
      pubs[i].send({ type: 'chat', data: { warm: i } });
      await remotes[i].next((m) => m.data?.warm === i, 3000, `${rooms[i]}: warm-up A -> B`);
    }
    const before = await lanes();
    assert.deepEqual(before.map((c) => c.name).sort(), [`realtime-pub-${a.podId}-0`, `realtime-pub-${a.podId}-1`], 'one publishing connection per I/O thread');
    const errors = await metric(a, 'realtime_redis_publish_errors');

    // Publish as soon as pod A has seen both connections close (so nothing is written to a dead
    // one). Redis refuses new connections for a while, so the stream starts through the Redis
    // thread's connection, and the threads' own come back in the middle of it.
    const admin = await redis.link();
    const closes = () => a.stderr.split('\n').filter((line) => / warning \[[^\]]*\] redis publisher \S+ to /.test(line)).length;
    const closedBefore = closes();
    const clientsNow = Number(/connected_clients:(\d+)/.exec(String(await admin.cmd('INFO', 'clients')))[1]);
    await Promise.all([
      admin.cmd('CONFIG', 'SET', 'maxclients', String(clientsNow - before.length)),
      ...before.map((c) => admin.cmd('CLIENT', 'KILL', 'ID', c.id)),
    ]);
    await waitFor(() => closes() >= closedBefore + 2, { timeoutMs: 3000, intervalMs: 1, message: 'pod A saw both connections close' });
    // Bursts in every room until both connections are back and a little longer, so that messages
    // are still on their way through the Redis thread when a thread's own connection returns (the
    // pod must not let later ones overtake them there).
    let N = 0;
    let now = [];
    let backAt = 0;
    const streamed = (async () => {
      while (!(backAt && Date.now() - backAt > 30) && N < 20_000) {
        for (let k = 0; k < 8; k++, N++) {
          for (let i = 0; i < rooms.length; i++) pubs[i].send({ type: 'chat', data: { room: i, seq: N } });
        }
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    await sleep(150);
    assert.equal((await lanes(admin)).length, 0, 'the threads\' connections are still refused');
    await admin.cmd('CONFIG', 'SET', 'maxclients', '10000');
    admin.close();
    await waitFor(async () => (now = await lanes()).length === 2, { timeoutMs: 5000, intervalMs: 5, message: () => `both connections back (${JSON.stringify(now)})` });
    backAt = Date.now();
    await streamed;
    assert.ok(now.every((c) => !before.some((o) => o.id === c.id)), 'new connections');
    // (Up to 20,000 messages a room when the connections are slow to come back, as under TSan:
    // the wait grows with them.)
    const wait = 10_000 + 2 * N;
    for (let i = 0; i < rooms.length; i++) {
      const ours = (m) => m.type === 'chat' && m.data?.room === i && typeof m.data?.seq === 'number';
      const there = await remotes[i].nextN(ours, N, wait, `${rooms[i]} on pod B`);
      const here = await locals[i].nextN(ours, N, wait, `${rooms[i]} on pod A`);
      assert.deepEqual(there.map((m) => m.data.seq), [...Array(N).keys()], `${rooms[i]}: pod B in order`);
      assert.deepEqual(here.map((m) => m.data.seq), [...Array(N).keys()], `${rooms[i]}: pod A in order`);
      assert.deepEqual(there.map((m) => m.id), here.map((m) => m.id), `${rooms[i]}: the same ids on both pods`);
      const seqs = here.map((m) => Number(m.id.split('-').pop()));
      assert.ok(seqs.every((s, k) => k === 0 || s === seqs[k - 1] + 1), `${rooms[i]}: consecutive ids (first gap after ${seqs.find((s, k) => k > 0 && s !== seqs[k - 1] + 1)})`);
    }
    await redisBarrier(redis, `realtime:room:${rooms[0]}`, [locals[0], remotes[0]]);
    for (const c of [...locals, ...remotes]) {
      assert.equal(c.seen((m) => m.data?.seq !== undefined).length, N, 'no duplicate');
    }
    assert.equal(await metric(a, 'realtime_redis_publish_errors'), errors, 'no message numbered by the pod alone');

    for (let i = 0; i < rooms.length; i++) {
      pubs[i].send({ type: 'chat', data: { after: i } });
      await remotes[i].next((m) => m.data?.after === i, 3000, `${rooms[i]}: A -> B after the connections came back`);
    }
    for (const c of clients) assert.equal(c.closed, null, 'no socket closed');
    // (Up to 20,000 messages of a room to each of its sockets, some MB: a send queue that holds them,
    // so that this process reading them late on a busy machine is no slow consumer.)
  }, ['--threads', '2', '--send-queue-bytes', String(64 << 20)]),
);

test('Redis restarted empty: pods write their rooms and presence again, /api/rooms and presence complete within 5 s', { timeout: 30_000 }, () =>
  withCluster(2, 'wipe', async ({ redis, pods, clients }) => {
    const [a, b] = pods;
    const room = 'rebuilt';
    const onA = await connect(a, `/ws/${room}`);
    const onB1 = await connect(b, `/ws/${room}`);
    const onB2 = await connect(b, `/ws/${room}`);
    clients.push(onA, onB1, onB2);
    const want = [onA, onB1, onB2].map((c) => c.userId).sort();
    const complete = async (pod) => {
      const users = (await presenceList(pod, room)).map((u) => u.user_id).sort();
      const rooms = (await get(pod, '/api/rooms')).json?.rooms ?? [];
      const members = rooms.find((x) => x.room === room)?.members;
      return { ok: JSON.stringify(users) === JSON.stringify(want) && members === 3, users, members };
    };
    let last;
    await waitFor(async () => (last = await Promise.all(pods.map(complete))).every((x) => x.ok), {
      timeoutMs: 5000,
      message: () => `cluster state complete before the restart: ${JSON.stringify(last)}`,
    });

    await redis.kill();
    await a.waitReady(8000, 503);
    await redis.restart();
    const backAt = Date.now();
    // (no persistence: it starts empty; the pods may write their state back at once)
    await waitFor(async () => (last = await Promise.all(pods.map(complete))).every((x) => x.ok), {
      timeoutMs: 5000,
      message: () => `/api/rooms and presence on both pods list all ${want.length} members again within 5 s of Redis returning empty: ${JSON.stringify(last)}`,
    });
    const ms = Date.now() - backAt;
    assert.ok(ms <= 5500, `state rebuilt after ${ms} ms`);
    await a.waitReady(5000);
    await b.waitReady(5000);
  }),
);

test('a pod that has just started: a message POSTed at once reaches the other pod and the shared history', { timeout: 30_000 }, () =>
  withCluster(1, 'early', async ({ redis, pods, clients }) => {
    const [a] = pods;
    const room = 'early-api';
    const member = await connect(a, `/ws/${room}`);
    clients.push(member);
    await redis.waitNumsub(`realtime:room:${room}`, 1, 5000);
    for (let i = 0; i < 3; i++) {
      const fresh = await startPod(redis, { podId: `early-new-${i}`, ready: false });
      try {
        const r = await publish(fresh, { room, text: `from a new pod ${i}` });
        assert.equal(r.status, 202, `${r.status} ${r.text}`);
        const { id } = JSON.parse(r.text);
        const got = await member.next((m) => m.data?.text === `from a new pod ${i}`, 5000, `message ${i} on the other pod`);
        assert.equal(got.id, id, 'the id the API answered, numbered by the shared history');
        const history = await redis.cmd('LRANGE', `realtime:history:${room}`, '0', '-1');
        assert.ok(history.some((item) => item.includes(`from a new pod ${i}`)), `message ${i} in the shared history`);
      } finally {
        await fresh.stop();
      }
    }
  }),
);

test('pod started while Redis is down: healthz 200, readyz 503 with a reason, ready once Redis answers', { timeout: 30_000 }, async () => {
  const redis = await startRedis();
  await redis.kill();
  let pod;
  const clients = [];
  try {
    pod = await startPod(redis, { podId: 'early', ready: false });
    assert.equal((await get(pod, '/healthz')).status, 200, '/healthz while Redis is down');
    const r = await get(pod, '/readyz');
    assert.equal(r.status, 503, `/readyz while Redis is down: ${r.status} ${r.text}`);
    assert.ok(r.text.trim().length > 0, '/readyz 503 says why');
    const c = await connect(pod, '/ws/early');
    clients.push(c);
    c.send({ type: 'chat', data: { text: 'local while down' } });
    await c.next((m) => m.data?.text === 'local while down', 3000, 'local delivery with Redis down');
    await redis.restart();
    await pod.waitReady(10_000);
    await redis.waitNumsub('realtime:room:early', 1, 5000);
    assert.equal(c.closed, null);
  } catch (e) {
    if (pod) e.message += `\n${pod.logTail(800)}`;
    throw e;
  } finally {
    closeAll(clients);
    if (pod) await pod.stop();
    await redis.stop();
  }
});

test('a pod stopped by SIGTERM logs no warning: its own stop is no Redis fault', { timeout: 30_000 }, () =>
  withCluster(1, 'cleanstop', async ({ pods, clients }) => {
    const [a] = pods;
    const member = await connect(a, '/ws/clean-stop');
    clients.push(member);
    member.send({ type: 'chat', data: { text: 'before the stop' } });
    await member.next((m) => m.data?.text === 'before the stop', 3000, 'the chat');
    await a.stop();
    const warnings = a.stderr.split('\n').filter((line) => / (warning|error) \[/.test(line));
    assert.deepEqual(warnings, [], 'no warning or error for a clean stop');
    assert.match(a.stderr, / info \[[^\]]*\] redis fan-out down: stopped/);
  }));

test('Redis refusing the pod (wrong password): /readyz says why, and each connection warns once per 5 s', { timeout: 30_000 }, async () => {
  const redis = await startRedis();
  let pod;
  try {
    await redis.cmd('CONFIG', 'SET', 'requirepass', 'right');
    pod = await startPod({ url: `redis://:wrong@127.0.0.1:${redis.port}` }, { podId: 'authfail', ready: false, args: ['--threads', '2'] });
    let body = '';
    await waitFor(async () => {
      const r = await get(pod, '/readyz');
      body = r.text;
      return r.status === 503 && /WRONGPASS|AUTH/.test(body);
    }, { timeoutMs: 5000, message: () => `readyz naming the AUTH failure (last: ${body})` });
    // Attempts go on every second at most; the warnings do not: the subscriber, the command
    // connection and the two threads' connections, once each in the first 5 s.
    await sleep(3000);
    const warnings = pod.stderr.split('\n').filter((line) => / warning \[[^\]]*\] redis (publisher|subscriber) \S+ to /.test(line));
    assert.ok(warnings.length <= 4, `${warnings.length} warnings in 3 s:\n${warnings.join('\n')}`);
    assert.ok(warnings.length >= 2, 'the failure is logged');
  } finally {
    if (pod) await pod.stop();
    await redis.stop();
  }
});

test('a pod pointed at a read-only replica: the log names READONLY, not a refused AUTH, SELECT or PING', { timeout: 30_000 }, async () => {
  const redis = await startRedis();
  let pod;
  try {
    // A replica of a master nobody runs: read-only all the same.
    const nobody = redis.port === 1 ? 2 : 1;
    await redis.cmd('REPLICAOF', '127.0.0.1', String(nobody));
    pod = await startPod(redis, { podId: 'replica', ready: false });
    const lines = () => pod.stderr.split('\n').filter((line) => /READONLY/.test(line));
    await waitFor(() => lines().length > 0, { timeoutMs: 10_000, message: () => `a line naming READONLY\n${pod.logTail(800)}` });
    assert.equal((await get(pod, '/readyz')).status, 503);
    assert.doesNotMatch(pod.stderr, /AUTH, SELECT or PING/, lines().join('\n'));
  } finally {
    if (pod) await pod.stop();
    await redis.stop();
  }
});

// A pod stopped while its publish to Redis waits for the answer: a message the API accepted (202)
// reaches the other pods; one Redis did not take before the pod went is refused (503), never
// accepted for nobody.
test('a pod stopped while Redis has not answered its publish yet: the API\'s answer is kept (202 and delivered, or 503)', { timeout: 60_000 }, () =>
  withCluster(1, 'stopwait', async ({ redis, pods, clients }) => {
    const [a] = pods;
    const room = 'stop-wait';
    const member = await connect(a, `/ws/${room}`);
    clients.push(member);
    const admin = await redis.link();
    try {
      for (const [i, stall] of [[0, 'pause'], [1, 'stop']]) {
        const b = await startPod(redis, { podId: `stopwait-b${i}` });
        const text = `${stall} ${i}`;
        if (stall === 'pause') {
          await admin.cmd('CLIENT', 'PAUSE', '1000', 'ALL'); // answers come, late but within the drain
        } else {
          redis.proc.kill('SIGSTOP'); // no answer while the pod stops
        }
        const answer = publish(b, { room, text });
        await sleep(300); // the publish has reached the pod (and waits for Redis)
        const exit = await b.terminate('SIGTERM');
        if (stall === 'stop') redis.proc.kill('SIGCONT');
        assert.equal(exit.code, 0, b.logTail());
        const r = await answer.catch((e) => ({ status: 0, text: String(e) }));
        if (stall === 'pause') {
          // (503 "shutting down": the request came after the stop began, a slow machine's timing.)
          assert.ok(r.status === 202 || /shutting down/.test(r.text), `${r.status} ${r.text}`);
        } else {
          assert.ok(r.status === 503 || r.status === 0, `${r.status} ${r.text}: never 202 for a message Redis did not take`);
        }
        if (r.status === 202) await member.next((m) => m.data?.text === text, 5000, `${text} on the other pod`);
      }
    } finally {
      admin.close();
    }
  }),
);

test('Redis down past the hold: a message the pod numbers itself names the shared position, so no second history appears to clients', { timeout: 60_000 }, () =>
  withCluster(2, 'ownpos', async ({ redis, pods, clients }) => {
    const [a, b] = pods;
    const room = 'own-position';
    const pub = await connect(a, `/ws/${room}`);
    const member = await connect(a, `/ws/${room}`);
    clients.push(pub, member);
    await redis.waitNumsub(`realtime:room:${room}`, 1, 5000);
    pub.send({ type: 'chat', room, data: { text: 'before' } });
    const before = await member.next((m) => m.data?.text === 'before', 5000, 'before');
    assert.match(before.id, /^[0-9a-z]{8}-\d+$/);
    redis.proc.kill('SIGKILL');
    await sleep(2600); // past the 2 s hold: the pod numbers what it takes itself
    pub.send({ type: 'chat', room, data: { text: 'during' } });
    const during = await member.next((m) => m.data?.text === 'during', 5000, 'during');
    // Behind the room's shared position (the last message the socket got), not a history of its own.
    assert.ok(during.id.startsWith(`${before.id}.d`), `${during.id} names ${before.id}`);
    assert.match(during.id, /^[0-9a-z]{8}-\d+\.d[0-9a-z]+$/);
    await redis.restart();
    await waitFor(async () => (await get(a, '/readyz')).status === 200, { timeoutMs: 10_000, message: 'pod a ready again' });
    // A client resuming from it on another pod is answered for the position it names: the history
    // restarted empty (a new epoch), so not recovered, and the position it is given is the new one.
    const resumed = await connect(b, `/ws/${room}?last_id=${encodeURIComponent(during.id)}`);
    clients.push(resumed);
    const r = await resumed.next((m) => m.type === 'system' && m.data?.event === 'recovered', 5000, 'recovered');
    assert.equal(r.data.recovered, false);
    pub.send({ type: 'chat', room, data: { text: 'after' } });
    const after = await member.next((m) => m.data?.text === 'after', 5000, 'after');
    assert.match(after.id, /^[0-9a-z]{8}-\d+$/, 'numbered by the shared history again');
    await resumed.next((m) => m.data?.text === 'after', 5000, 'after on the resumed socket');
  }),
);

test('a pod stopped right after Redis died: a chat it took reaches the room before the 1001 close, and one sent while it stops is refused, not lost', { timeout: 60_000 }, () =>
  withCluster(1, 'stopdown', async ({ redis, clients }) => {
    const b = await startPod(redis, { podId: 'stopdown-b' });
    const room = 'stop-down';
    const sender = await connect(b, `/ws/${room}`);
    const member = await connect(b, `/ws/${room}`);
    clients.push(sender, member);
    await redis.waitNumsub(`realtime:room:${room}`, 1, 5000);
    redis.proc.kill('SIGKILL');
    await sleep(100);
    // Held for Redis (kPublishHold, 2 s), then delivered here: the stop lets it settle first.
    sender.send({ type: 'chat', room, data: { text: 'taken before the stop' } });
    await sleep(300);
    const exit = b.terminate('SIGTERM');
    await sleep(150);
    sender.send({ type: 'chat', room, data: { text: 'sent while stopping' } });
    assert.equal((await exit).code, 0, b.logTail());
    for (const m of [member, sender]) {
      assert.equal((await m.expectClose(5000)).code, 1001);
      assert.equal(m.seen((x) => x.data?.text === 'taken before the stop').length, 1, 'the chat taken before the stop');
    }
    // (Read before the SIGTERM arrived, it would have been taken and held like the first.)
    const told = sender.seen((x) => x.type === 'error' && x.data?.code === 'unavailable' && x.data?.room === room).length;
    const delivered = sender.seen((x) => x.data?.text === 'sent while stopping').length;
    assert.equal(told + delivered, 1, `the chat sent while stopping: refused ${told}, delivered ${delivered}`);
  }),
);

// realtime_broadcast_latency_seconds counts from the publish on the pod: a Redis slow to number
// a message (paused 600 ms here) shows in it.
test('the broadcast latency histogram includes the Redis round trip of an own message', { timeout: 30_000 }, () =>
  withCluster(1, 'latency', async ({ redis, pods, clients }) => {
    const [a] = pods;
    const member = await connect(a, '/ws/lat');
    clients.push(member);
    const slow = async () => {
      const m = await metricsOf(a);
      const le = (bound) => m.samples.find((x) => x.name === 'realtime_broadcast_latency_seconds_bucket' && x.labels.le === bound)?.value;
      return le('+Inf') - le('0.25');
    };
    const before = await slow();
    const admin = await redis.link();
    try {
      await admin.cmd('CLIENT', 'PAUSE', '600', 'WRITE');
      const answer = publish(a, { room: 'lat', text: 'slow' });
      await member.next((m) => m.data?.text === 'slow', 5000, 'the slow message');
      assert.equal((await answer).status, 202);
    } finally {
      admin.close();
    }
    assert.equal((await slow()) - before, 1, 'one delivery later than 250 ms');
  }),
);

test('while Redis is down the cluster-wide answers say they are partial: GET /api/rooms and the presence route', { timeout: 40_000 }, () =>
  withCluster(2, 'part', async ({ redis, pods, clients }) => {
    const [a, b] = pods;
    const room = 'part';
    const onA = await connect(a, `/ws/${room}`);
    const onB = await connect(b, `/ws/${room}`);
    clients.push(onA, onB);
    const members = async (pod) => (await get(pod, '/api/rooms')).json;
    const presence = async (pod) => (await get(pod, `/api/rooms/${room}/presence`)).json;
    await waitFor(async () => (await members(a))?.rooms?.find((r) => r.room === room)?.members === 2, { timeoutMs: 5000, message: 'pod A counts both members' });
    assert.equal((await members(a)).partial, undefined, 'a whole answer has no "partial"');
    assert.equal((await presence(a)).partial, undefined);
    assert.equal((await presence(a)).users.length, 2);

    await redis.kill();
    await waitFor(async () => (await get(a, '/readyz')).status === 503, { timeoutMs: 10_000, message: 'pod A not ready' });
    const rooms = await members(a);
    assert.equal(rooms.partial, true, `without Redis: ${JSON.stringify(rooms)}`);
    const users = await presence(a);
    assert.equal(users.partial, true, `without Redis: ${JSON.stringify(users)}`);
    assert.ok(users.users.some((u) => u.user_id === onA.userId), 'its own part is there');

    await redis.restart();
    await waitFor(async () => (await get(a, '/readyz')).status === 200, { timeoutMs: 10_000, message: 'pod A ready again' });
    await waitFor(async () => {
      const [r, p] = [await members(a), await presence(a)];
      return r.partial === undefined && p.partial === undefined && p.users.length === 2 && r.rooms.find((x) => x.room === room)?.members === 2;
    }, { timeoutMs: 10_000, message: 'whole answers again, both members' });
  }),
);

// A Redis that stops answering without closing its connections (SIGSTOP: frozen, or a partition
// that drops packets): OPERATIONS.md says the pod finds out by its timeouts and then delivers its
// own messages locally, the ones held first, in order, late (about 7 s) rather than lost; no socket
// is closed, and cross-pod delivery comes back when Redis answers again.
test('Redis frozen (SIGSTOP) under a steady sender: its pod delivers every message locally, in order, no socket closed; back across pods after SIGCONT', { timeout: 60_000 }, () =>
  withCluster(2, 'frozen', async ({ redis, pods, clients }) => {
    const [a, b] = pods;
    const room = 'frozen';
    const sender = await connect(a, `/ws/${room}`);
    const local = await connect(a, `/ws/${room}`);
    const remote = await connect(b, `/ws/${room}`);
    clients.push(sender, local, remote);
    await redis.waitNumsub(`realtime:room:${room}`, 2, 5000);
    const isChat = (m) => m.type === 'chat' && typeof m.data?.n === 'number';
    sender.send({ type: 'chat', data: { n: 0 } });
    await remote.next((m) => isChat(m) && m.data.n === 0, 5000, 'n0 across pods before the freeze');
    redis.proc.kill('SIGSTOP');
    let sent = 0;
    try {
      for (sent = 1; sent <= 40; sent++) {
        sender.send({ type: 'chat', data: { n: sent } });
        await sleep(250); // 10 s: past the command timeout and the hold
      }
      sent--;
      // Every message reaches the pod's own members while Redis is still frozen.
      for (const c of [sender, local]) await c.next((m) => isChat(m) && m.data.n === sent, 15_000, `n${sent} on pod A with Redis frozen`);
    } finally {
      redis.proc.kill('SIGCONT');
    }
    for (const [name, c] of [['sender', sender], ['local', local]]) {
      const ns = c.seen(isChat).map((m) => m.data.n);
      assert.deepEqual(ns, Array.from({ length: sent + 1 }, (_, i) => i), `${name}: each once, in order`);
      assert.equal(c.closed, null, `${name} stayed connected`);
    }
    await waitFor(async () => (await get(a, '/readyz')).status === 200 && (await get(b, '/readyz')).status === 200, { timeoutMs: 15_000, message: 'both pods ready after SIGCONT' });
    sender.send({ type: 'chat', data: { n: 1000 } });
    await remote.next((m) => isChat(m) && m.data.n === 1000, 10_000, 'across pods again');
    assert.equal(remote.closed, null, 'the other pod\'s member stayed connected');
  }),
);
