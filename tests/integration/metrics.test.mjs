// GET /metrics (Prometheus text format):
// - realtime_connections_total is a gauge equal to the number of open sockets (up and down);
// - realtime_rooms_total counts rooms with members;
// - realtime_messages_received grows by exactly the number of client messages after a known exchange;
//   realtime_messages_sent grows by at least the number of deliveries;
// - realtime_redis_publish_errors exists, and metrics naming rejected connections, dropped messages,
//   slow-consumer closes and Redis up/down exist, plus a broadcast latency histogram (_bucket{le=...});
// - realtime_ready is a gauge that follows /readyz: 1 on a single pod, 0 on a pod whose Redis does
//   not answer (/readyz 503);
// - realtime_recoveries_total{result} counts the answers to last_id, and the messages replayed.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { withServer, killAll } from './lib/server.mjs';
import { connect, waitFor } from './lib/client.mjs';
import { get, metrics, metricSum } from '../support/node/http.mjs';
import { freePort } from '../support/node/server.mjs';

after(killAll);


test('Prometheus text with the contract metric names and types', () =>
  withServer([], async (s, clients) => {
    const a = await connect(s, '/ws/m');
    clients.push(a);
    a.send({ type: 'chat', data: { text: 'x' } });
    await a.next({ type: 'chat' });
    const m = await metrics(s);
    assert.match(m.contentType ?? '', /^text\/plain/);
    for (const name of [
      'realtime_connections_total',
      'realtime_rooms_total',
      'realtime_messages_sent',
      'realtime_messages_received',
      'realtime_redis_publish_errors',
    ]) {
      assert.notEqual(metricSum(m, name), undefined, `metric ${name} present`);
    }
    assert.equal(m.types.realtime_connections_total, 'gauge');
    assert.equal(m.types.realtime_rooms_total, 'gauge');
    assert.equal(m.types.realtime_messages_sent, 'counter');
    assert.equal(m.types.realtime_messages_received, 'counter');
    assert.equal(m.types.realtime_redis_publish_errors, 'counter');
    const names = [...new Set(m.samples.map((x) => x.name))];
    for (const frag of ['rejected', 'dropped', 'slow', 'redis_up']) {
      assert.ok(names.some((n) => n.startsWith('realtime_') && n.includes(frag)), `a realtime_ metric containing "${frag}": ${names.join(' ')}`);
    }
    assert.match(m.text, /^realtime_\w*(broadcast|latency)\w*_bucket\{[^}]*le="[^"]+"[^}]*\}\s+\d/m, 'broadcast latency histogram');
    assert.match(m.text, /^realtime_\w*(broadcast|latency)\w*_bucket\{[^}]*le="\+Inf"[^}]*\}\s+\d/m, '+Inf bucket');
    // the Redis up/down gauge is a number (its value without Redis is the server's choice)
    const redisUp = m.samples.find((x) => x.name.includes('redis_up'));
    assert.ok(Number.isFinite(redisUp.value));
  }));

test('realtime_connections_total equals open sockets; realtime_rooms_total counts rooms', () =>
  withServer([], async (s, clients) => {
    let m = await metrics(s);
    assert.equal(metricSum(m, 'realtime_connections_total'), 0);
    assert.equal(metricSum(m, 'realtime_rooms_total'), 0);
    const a = await connect(s, '/ws/g1');
    const b = await connect(s, '/ws/g1');
    const c = await connect(s, '/ws/g2');
    const d = await connect(s, '/ws');
    clients.push(a, b, c, d);
    m = await metrics(s);
    assert.equal(metricSum(m, 'realtime_connections_total'), 4);
    assert.equal(metricSum(m, 'realtime_rooms_total'), 2);
    d.send({ type: 'join', room: 'g3' });
    await d.roundTrip();
    m = await metrics(s);
    assert.equal(metricSum(m, 'realtime_rooms_total'), 3);
    c.close();
    await waitFor(
      async () => {
        const x = await metrics(s);
        return metricSum(x, 'realtime_connections_total') === 3 && metricSum(x, 'realtime_rooms_total') === 2;
      },
      { timeoutMs: 3000, message: 'connections 3 and rooms 2 after a close' },
    );
  }));

test('messages_received grows exactly by client messages; messages_sent by at least the deliveries', () =>
  withServer([], async (s, clients) => {
    const a = await connect(s, '/ws/count');
    const b = await connect(s, '/ws/count');
    const c = await connect(s, '/ws/count');
    clients.push(a, b, c);
    // let presence traffic settle: every member has seen the last joiner
    await a.next((x) => x.type === 'presence' && x.data?.user_id === c.userId);
    await b.next((x) => x.type === 'presence' && x.data?.user_id === c.userId);
    const m0 = await metrics(s);
    const recv0 = metricSum(m0, 'realtime_messages_received');
    const sent0 = metricSum(m0, 'realtime_messages_sent');
    for (let i = 0; i < 3; i++) a.send({ type: 'chat', data: { text: `n${i}` } });
    b.send({ type: 'chat', data: { text: 'nb' } });
    for (const x of [a, b, c]) await x.nextN((y) => y.type === 'chat', 4);
    const m1 = await metrics(s);
    assert.equal(metricSum(m1, 'realtime_messages_received') - recv0, 4, 'received: 4 client chats');
    const sentDelta = metricSum(m1, 'realtime_messages_sent') - sent0;
    assert.ok(sentDelta >= 12, `sent grew by at least 4 chats x 3 members, got ${sentDelta}`);
  }));

test('the broadcast latency histogram samples broadcasts only: not welcomes, pongs, errors or replays', () =>
  withServer([], async (s, clients) => {
    const counts = async () => {
      const m = await metrics(s);
      return { sampled: metricSum(m, 'realtime_broadcast_latency_seconds_count'), sent: metricSum(m, 'realtime_messages_sent') };
    };
    const a = await connect(s, '/ws/lat');
    clients.push(a);
    a.send({ type: 'chat', data: { text: 'one' } });
    const one = await a.next((x) => x.type === 'chat');
    const before = await counts();
    const start = a.history.length;
    // A socket's own messages (welcome, recovered, pong, an error), a replay of the room's history,
    // and broadcasts (chat, presence) among them.
    const b = await connect(s, '/ws/lat');
    clients.push(b);
    b.send({ type: 'ping' });
    await b.next({ type: 'pong' });
    b.send({ type: 'bogus' });
    await b.next({ type: 'error' });
    a.send({ type: 'chat', data: { text: 'two' } });
    await b.next((x) => x.type === 'chat' && x.data?.text === 'two');
    const replayer = await connect(s, `/ws/lat?last_id=${encodeURIComponent(one.id)}`);
    clients.push(replayer);
    await replayer.next((x) => x.type === 'system' && x.data?.event === 'recovered');
    for (const x of [a, b, replayer]) await x.roundTrip();
    const after = await counts();
    // Every frame the server wrote since `before` is in the clients' histories.
    const received = [...a.history.slice(start), ...b.history, ...replayer.history];
    const recoveredAt = replayer.history.findIndex((x) => x.type === 'system' && x.data?.event === 'recovered');
    const replayed = replayer.history.slice(0, recoveredAt).filter((x) => x.type === 'chat').length;
    assert.equal(replayed, 1, 'the replay of "two"');
    const broadcasts = received.filter((x) => x.type === 'chat' || x.type === 'presence').length - replayed;
    assert.equal(after.sent - before.sent, received.length, 'every frame written was received');
    assert.equal(after.sampled - before.sampled, broadcasts, `sampled: broadcasts only (${JSON.stringify(received.map((x) => x.type))})`);
  }));

test('realtime_recoveries_total counts each last_id by its answer; the replayed messages are counted too', () =>
  withServer(['--history-size', '3'], async (s, clients) => {
    const recoveries = async () => {
      const m = await metrics(s);
      const of = (result) => m.samples.find((x) => x.name === 'realtime_recoveries_total' && x.labels?.result === result)?.value;
      return { recovered: of('recovered'), not: of('not_recovered'), replayed: metricSum(m, 'realtime_recovery_replayed_messages_total') };
    };
    assert.deepEqual(await recoveries(), { recovered: 0, not: 0, replayed: 0 });
    assert.equal((await metrics(s)).types.realtime_recoveries_total, 'counter');
    const a = await connect(s, '/ws/rec');
    clients.push(a);
    const ids = [];
    for (const text of ['1', '2', '3', '4', '5']) {
      a.send({ type: 'chat', data: { text } });
      ids.push((await a.next((x) => x.type === 'chat' && x.data?.text === text)).id);
    }
    const open = async (lastId) => {
      const c = await connect(s, `/ws/rec?last_id=${encodeURIComponent(lastId)}`);
      clients.push(c);
      return (await c.next((x) => x.type === 'system' && x.data?.event === 'recovered')).data;
    };
    // Two of the three kept; the first message is past the history (3): not recovered.
    assert.deepEqual([(await open(ids[2])).replayed, (await open(ids[3])).replayed], [2, 1]);
    assert.equal((await open(ids[0])).recovered, false);
    assert.equal((await open('undefined')).recovered, false);
    // A socket without a last_id is not a recovery.
    clients.push(await connect(s, '/ws/rec'));
    assert.deepEqual(await recoveries(), { recovered: 2, not: 2, replayed: 3 });
  }));

test('realtime_ready follows /readyz: 1 when it answers 200, 0 when 503', async () => {
  await withServer([], async (s) => {
    assert.equal((await get(s, '/readyz')).status, 200);
    const m = await metrics(s);
    assert.equal(m.types.realtime_ready, 'gauge');
    assert.equal(metricSum(m, 'realtime_ready'), 1);
  });
  // A Redis nobody answers on: never ready.
  const port = await freePort();
  await withServer(['--redis', `redis://127.0.0.1:${port}`], async (s) => {
    assert.equal((await get(s, '/readyz')).status, 503);
    assert.equal(metricSum(await metrics(s), 'realtime_ready'), 0);
  });
});
