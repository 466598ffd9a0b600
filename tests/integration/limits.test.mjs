// Limits:
// - --max-message-bytes 1024: the welcome says so; a ~1000-byte chat passes; a 2000-byte frame closes
//   that socket with 1009,
//   other clients of the room are unaffected; realtime_protocol_closes_total counts a reserved
//   opcode (1002), not the 1009;
// - --rate-limit 5 --rate-burst 5: a burst of 30 chats delivers at most ~6 to a peer and the sender gets
//   error rate_limited (socket open); the refused ones count as dropped; a second later sending works;
//   a client's next socket starts from what its last one left (keyed by the token's user, or by the
//   address of an anonymous client with --max-connections-per-ip), its welcome saying rate_tokens;
//   opening sockets is held to --connect-rate after --connect-burst, per client (429 past it,
//   Retry-After);
// - --max-connections 3: the 4th upgrade gets HTTP 503 "server at capacity"; after one socket closes a
//   new one is accepted; a rejected-connections metric increments;
// - an open-file limit too low for --max-connections (soft 200, hard 400): the server raises the
//   soft limit to the hard one, warns with the connections it will serve, and refuses the excess
//   with 503 "server at capacity" (counted as capacity) instead of leaving it hanging; /healthz
//   answers all along.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { withServer, killAll, serverBinary } from './lib/server.mjs';
import { startProcess, serverEnv, LISTENING_RE } from '../support/node/server.mjs';
import { closeAll } from '../support/node/client.mjs';
import { connect, tryOpen, sleep, waitFor } from './lib/client.mjs';
import { get, metrics, metricSum, metricSumMatching, publish } from '../support/node/http.mjs';
import { upgradeRequest, frame, OP, RSV1 } from '../support/node/raw.mjs';
import net from 'node:net';
import { createHmac } from 'node:crypto';

after(killAll);


const chatText = (t) => (m) => m.type === 'chat' && m.data?.text === t;

test('--max-message-bytes 1024: a 2000-byte frame closes the socket with 1009, others unaffected', () =>
  withServer(['--max-message-bytes', '1024'], async (s, clients) => {
    const a = await connect(s, '/ws/big');
    const b = await connect(s, '/ws/big');
    const c = await connect(s, '/ws/big');
    clients.push(a, b, c);
    // The welcome tells the client the limit (the JS client refuses a larger message itself).
    assert.equal(a.welcome.data.max_message_bytes, 1024);
    // just under the limit: fine
    const okText = 'o'.repeat(1000 - JSON.stringify({ type: 'chat', data: { text: '' } }).length);
    const okFrame = JSON.stringify({ type: 'chat', data: { text: okText } });
    assert.ok(Buffer.byteLength(okFrame) <= 1024);
    a.send(okFrame);
    await b.next(chatText(okText), 3000, 'the ~1000-byte chat');

    const protocolCloses = async () => metricSumMatching(await metrics(s), 'realtime_protocol_closes_total');
    const closes0 = await protocolCloses();
    const bigText = 'x'.repeat(2000);
    a.send({ type: 'chat', data: { text: bigText } });
    const { code } = await a.expectClose(5000);
    assert.equal(code, 1009);
    // A limit of this server, not an RFC 6455 violation: counted as dropped too_big only.
    assert.equal(await protocolCloses(), closes0, 'realtime_protocol_closes_total unchanged by 1009');
    // Control: a frame with a reserved opcode (0x3, masked, empty) is a violation.
    const d = await connect(s, '/ws/big');
    clients.push(d);
    d.ws._socket.write(Buffer.from([0x83, 0x80, 1, 2, 3, 4]));
    assert.equal((await d.expectClose(5000)).code, 1002);
    await waitFor(async () => (await protocolCloses()) === closes0 + 1, { message: 'one protocol close counted' });
    // the others keep chatting
    b.send({ type: 'chat', data: { text: 'after big' } });
    await c.next(chatText('after big'));
    await b.next(chatText('after big'));
    assert.deepEqual(c.seen(chatText(bigText)), [], 'oversized message not delivered');
    assert.ok(b.isOpen && c.isOpen);
  }));

// Past the bucket, messages wait for their tokens (in order) up to a bucket's worth: a client that
// paced its sends but whose link stalled and then delivered them in one clump loses none. Past
// that, the tail is refused: what is delivered is always the burst's first messages, in order.
// (Messages of 2,000 bytes: what waits may take 4 largest messages, 16 KiB here.)
test('--rate-limit 5 --rate-burst 5: a clump of 10 waits for its tokens and is delivered whole, in order', () =>
  withServer(['--rate-limit', '5', '--rate-burst', '5', '--max-message-bytes', '4096'], async (s, clients) => {
    const a = await connect(s, '/ws/clump');
    const b = await connect(s, '/ws/clump');
    clients.push(a, b);
    const dropped0 = metricSumMatching(await metrics(s), 'dropped') ?? 0;
    const pad = 'x'.repeat(1960);
    for (let i = 0; i < 10; i++) a.send({ type: 'chat', data: { text: `clump-${i}`, pad } });
    await b.next(chatText('clump-9'), 5000, 'the last of the clump');
    const delivered = b.seen((m) => m.type === 'chat' && /^clump-/.test(m.data?.text ?? ''));
    assert.deepEqual(delivered.map((m) => m.data.text), Array.from({ length: 10 }, (_, i) => `clump-${i}`));
    assert.deepEqual(a.seen({ type: 'error' }), [], 'nothing refused');
    assert.equal(metricSumMatching(await metrics(s), 'dropped') ?? 0, dropped0, 'nothing dropped');
  }));

test('--rate-limit 5 --rate-burst 5: a burst of 30 is limited, error rate_limited, recovers', () =>
  withServer(['--rate-limit', '5', '--rate-burst', '5'], async (s, clients) => {
    const a = await connect(s, '/ws/rl');
    const b = await connect(s, '/ws/rl');
    clients.push(a, b);
    assert.deepEqual([a.welcome.data.rate_limit, a.welcome.data.rate_burst], [5, 5], 'the welcome gives the bucket');
    const dropped0 = metricSumMatching(await metrics(s), 'dropped') ?? 0;
    const t0 = Date.now();
    for (let i = 0; i < 30; i++) a.send({ type: 'chat', data: { text: `burst-${i}` } });
    const e = await a.next({ type: 'error' }, 3000, 'error rate_limited');
    assert.equal(e.data.code, 'rate_limited');
    assert.ok(a.isOpen, 'rate-limited socket stays open');
    // What waits has had its tokens after a second (5 at 5/s): the socket takes messages again.
    await sleep(Math.max(0, 1300 - (Date.now() - t0)));
    a.send({ type: 'chat', data: { text: 'after-pause' } });
    await b.next(chatText('after-pause'), 5000, 'chat after the pause');
    const delivered = b.seen((m) => m.type === 'chat' && /^burst-/.test(m.data?.text ?? ''));
    // The bucket (5) passes at once, as many again wait; a token or two may refill meanwhile.
    assert.ok(delivered.length >= 10 && delivered.length <= 12, `the bucket and as many waiting, got ${delivered.length}`);
    const idx = delivered.map((m) => Number(m.data.text.slice('burst-'.length)));
    assert.deepEqual(idx, Array.from({ length: idx.length }, (_, i) => i), 'the first of the burst, in order');
    // the refused ones are counted as dropped messages
    const dropped1 = metricSumMatching(await metrics(s), 'dropped');
    assert.notEqual(dropped1, undefined, 'a dropped-messages metric exists');
    assert.equal(dropped1 - dropped0, 30 - delivered.length, 'each refused message dropped');
  }));

// The bucket follows the client from socket to socket: a client that reconnects in a loop no
// longer starts each socket with a full burst. Keyed by the token's user, or, where
// --max-connections-per-ip says addresses tell clients apart, by the address of an anonymous one.
test('--rate-limit 5 --rate-burst 5: a new socket starts from what the client\'s last one left', () =>
  withServer(['--rate-limit', '5', '--rate-burst', '5', '--jwt-secret', 'carry-secret', '--max-connections-per-ip', '100'], async (s, clients) => {
    const spend = async (client) => {
      for (let i = 0; i < 5; i++) client.send({ type: 'chat', data: { text: `spend-${i}` } });
      await client.next(chatText('spend-4'), 3000, 'the burst echoed');
      client.close();
      await waitFor(() => !client.isOpen, 3000, 'the socket closed');
    };
    const witness = await connect(s, '/ws/carry', { wsOptions: { localAddress: '127.0.0.9' } });
    clients.push(witness);
    assert.equal(witness.welcome.data.rate_tokens, undefined, 'a first socket starts full (nothing said)');

    // Anonymous: the next socket of the address starts empty, and is told so; another address not.
    const a = await connect(s, '/ws/carry');
    clients.push(a);
    await spend(a);
    const a2 = await connect(s, '/ws/carry');
    const other = await connect(s, '/ws/carry', { wsOptions: { localAddress: '127.0.0.2' } });
    clients.push(a2, other);
    assert.equal(a2.welcome.data.rate_tokens, 0, 'the address spent its burst: told 0 tokens');
    assert.equal(other.welcome.data.rate_tokens, undefined, 'another address starts full');
    // An empty bucket: 5 may wait for their tokens, the 6th is refused (a full one takes all 6).
    for (let i = 0; i < 6; i++) a2.send({ type: 'chat', data: { text: `too soon-${i}` } });
    const e = await a2.next({ type: 'error' }, 3000, 'rate_limited on the new socket');
    assert.equal(e.data.code, 'rate_limited');
    for (let i = 0; i < 6; i++) other.send({ type: 'chat', data: { text: `other-${i}` } });
    await witness.next(chatText('other-5'), 3000, 'the other address\'s 6 pass whole');
    await witness.next(chatText('too soon-4'), 3000, 'what waited for its tokens');
    assert.deepEqual(witness.seen(chatText('too soon-5')), []);

    // A token's user: the bucket follows the user, whatever the address; another user starts full.
    const token = (sub) => {
      const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
      const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub })}`;
      return `${body}.${createHmac('sha256', 'carry-secret').update(body).digest('base64url')}`;
    };
    const ann = await connect(s, `/ws/carry?token=${token('ann')}`, { wsOptions: { localAddress: '127.0.0.3' } });
    clients.push(ann);
    await spend(ann);
    const ann2 = await connect(s, `/ws/carry?token=${token('ann')}`, { wsOptions: { localAddress: '127.0.0.4' } });
    const bob = await connect(s, `/ws/carry?token=${token('bob')}`, { wsOptions: { localAddress: '127.0.0.3' } });
    clients.push(ann2, bob);
    assert.equal(ann2.welcome.data.rate_tokens, 0, 'the user spent its burst, from another address');
    assert.equal(bob.welcome.data.rate_tokens, undefined, 'another user of the same address starts full');

    // Refilled at the rate meanwhile: after a second the address's bucket is full again.
    await sleep(1200);
    const a3 = await connect(s, '/ws/carry');
    clients.push(a3);
    assert.equal(a3.welcome.data.rate_tokens, undefined, 'full again after burst / rate');
    a3.send({ type: 'chat', data: { text: 'refilled' } });
    await witness.next(chatText('refilled'), 3000, 'a chat of the refilled socket');
  }));

// Opening a socket is a presence event for the whole room (online, then offline at its close): a
// client connecting and dropping in a loop is held to --connect-rate after --connect-burst.
test('--connect-rate 0.1 --connect-burst 5: a client that connects and drops in a loop gets 429 past its burst; its room sees no more', () =>
  withServer(['--connect-rate', '0.1', '--connect-burst', '5', '--jwt-secret', 'churn-secret', '--max-connections-per-ip', '100'], async (s, clients) => {
    const token = (sub) => {
      const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
      const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub })}`;
      return `${body}.${createHmac('sha256', 'churn-secret').update(body).digest('base64url')}`;
    };
    const observer = await connect(s, '/ws/churn', { wsOptions: { localAddress: '127.0.0.9' } });
    clients.push(observer);
    // Connects and closes at once, `times` times in a row: the openings, the refusals.
    const churn = async (path, localAddress, times) => {
      const started = Date.now();
      const refusals = [];
      let opened = 0;
      for (let i = 0; i < times; i++) {
        const r = await tryOpen(`${s.url}${path}`, { wsOptions: { localAddress } });
        if (r.ok) {
          opened++;
          r.client.close();
          await waitFor(() => !r.client.isOpen, 3000, 'the socket closed');
        } else {
          refusals.push(r);
        }
      }
      return { opened, refusals, seconds: (Date.now() - started) / 1000 };
    };
    const check = ({ opened, refusals, seconds }, who) => {
      // The burst, and one more per 10 s of the loop (the rate): never every one of the 20.
      assert.ok(opened <= 5 + Math.ceil(seconds / 10), `${who}: ${opened} sockets opened in ${seconds} s`);
      assert.ok(refusals.length >= 1, `${who}: refused past the burst`);
      for (const r of refusals) {
        assert.equal(r.status, 429, `${who}: refused with 429`);
        assert.match(r.body, /connecting too often/);
        assert.ok(Number(r.headers['retry-after']) >= 1, `${who}: Retry-After ${r.headers['retry-after']}`);
      }
    };
    const mallory = await churn(`/ws/churn?token=${token('mallory')}`, '127.0.0.3', 20);
    check(mallory, 'a token\'s user');
    // By the user, whatever the address (its bucket refills one opening in 10 s); another user of
    // the same address is not held back.
    const elsewhere = await tryOpen(`${s.url}/ws/churn?token=${token('mallory')}`, { wsOptions: { localAddress: '127.0.0.4' } });
    if (elsewhere.ok) clients.push(elsewhere.client);
    assert.equal(elsewhere.status, 429, 'the same user from another address');
    const bob = await connect(s, `/ws/churn?token=${token('bob')}`, { wsOptions: { localAddress: '127.0.0.3' } });
    clients.push(bob);
    // Anonymous, with a cap per address: by the address.
    const anon = await churn('/ws/churn', '127.0.0.5', 20);
    check(anon, 'an anonymous address');

    // The room was told of each socket that opened, not of the refused ones.
    await observer.next((m) => m.type === 'presence' && m.data.user_id === 'bob', 3000, 'bob online');
    const online = observer.seen((m) => m.type === 'presence' && m.data.user_id === 'mallory' && m.data.status === 'online');
    assert.ok(online.length <= mallory.opened, `${online.length} online announcements`);
    const m = await metrics(s);
    const limited = m.samples.find((x) => x.name === 'realtime_connections_rejected_total' && x.labels?.reason === 'rate_limited');
    assert.equal(limited?.value, mallory.refusals.length + anon.refusals.length + 1, 'counted as rejected rate_limited');
  }));

test('--rate-limit does not limit openings, and --connect-rate 0 sets no limit on them', () =>
  withServer(['--rate-limit', '1', '--rate-burst', '1', '--connect-rate', '0', '--max-connections-per-ip', '100'], async (s, clients) => {
    for (let i = 0; i < 12; i++) {
      const r = await tryOpen(`${s.url}/ws/open`);
      assert.ok(r.ok, `opening ${i}: ${r.status} ${r.body}`);
      r.client.close();
      await waitFor(() => !r.client.isOpen, 3000, 'the socket closed');
    }
  }));

test('without --max-connections-per-ip an anonymous client\'s bucket is not carried: one address may be many clients', () =>
  withServer(['--rate-limit', '5', '--rate-burst', '5'], async (s, clients) => {
    const a = await connect(s, '/ws/nat');
    clients.push(a);
    for (let i = 0; i < 5; i++) a.send({ type: 'chat', data: { text: `spend-${i}` } });
    await a.next(chatText('spend-4'), 3000, 'the burst echoed');
    a.close();
    await waitFor(() => !a.isOpen, 3000, 'the socket closed');
    const b = await connect(s, '/ws/nat');
    clients.push(b);
    assert.equal(b.welcome.data.rate_tokens, undefined, 'the next socket of the address starts full');
    for (let i = 0; i < 5; i++) b.send({ type: 'chat', data: { text: `b-${i}` } });
    await b.next(chatText('b-4'), 3000, 'its whole burst passes');
    // Nor its openings: twice the burst of sockets from the address, at once, all open.
    const many = await Promise.all(Array.from({ length: 10 }, () => connect(s, '/ws/nat')));
    clients.push(...many);
  }));

test('--max-connections 3: 4th upgrade -> 503 "server at capacity"; a freed slot is reusable; metric', () =>
  withServer(['--max-connections', '3'], async (s, clients) => {
    const m0 = await metrics(s);
    const rejected0 = metricSumMatching(m0, 'rejected') ?? 0;
    const a = await connect(s, '/ws/cap');
    const b = await connect(s, '/ws/cap');
    const c = await connect(s, '/ws');
    clients.push(a, b, c);
    const r = await tryOpen(`${s.url}/ws/cap`);
    if (r.ok) clients.push(r.client);
    assert.equal(r.ok, false, '4th socket must be refused');
    assert.equal(r.status, 503);
    assert.match(r.body, /server at capacity/);

    const m1 = await metrics(s);
    const rejected1 = metricSumMatching(m1, 'rejected');
    assert.notEqual(rejected1, undefined, 'a metric naming rejected connections exists');
    assert.ok(rejected1 >= rejected0 + 1, `rejected metric incremented: ${rejected0} -> ${rejected1}`);

    // existing sockets still work
    a.send({ type: 'chat', data: { text: 'full house' } });
    await b.next(chatText('full house'));

    a.close();
    await a.expectClose();
    const d = await waitFor(
      async () => {
        const x = await tryOpen(`${s.url}/ws/cap`);
        if (x.ok) return x.client;
        assert.equal(x.status, 503, 'only capacity refusals while the slot frees up');
        return null;
      },
      { timeoutMs: 3000, message: 'a slot after one socket closed' },
    );
    clients.push(d);
    const w = await d.next(() => true);
    assert.equal(w.data?.event, 'welcome');
  }));

test('--max-connections-per-ip 2: a third socket from the address gets 429; after a close it fits again', () =>
  withServer(['--max-connections-per-ip', '2'], async (s, clients) => {
    const a = await connect(s, '/ws/a');
    const b = await connect(s, '/ws/a');
    clients.push(a, b);
    const third = await tryOpen(`${s.url}/ws/a`);
    if (third.ok) clients.push(third.client);
    assert.equal(third.ok, false, 'the third socket is refused');
    assert.equal(third.status, 429);
    const m = await metrics(s);
    const perIp = m.samples.find((x) => x.name === 'realtime_connections_rejected_total' && x.labels?.reason === 'per_ip');
    assert.ok(perIp && perIp.value >= 1, `counted as rejected per_ip: ${JSON.stringify(perIp)}`);
    a.close();
    await a.expectClose();
    const again = await waitFor(async () => {
      const r = await tryOpen(`${s.url}/ws/a`);
      if (r.ok) clients.push(r.client);
      return r.ok ? r : null;
    }, { timeoutMs: 3000, message: 'a slot freed by the close' });
    assert.ok(again.ok);
  }));

test('permessage-deflate is not negotiated: a client that offers it gets no extension', () =>
  withServer([], async (s, clients) => {
    const r = await tryOpen(`${s.url}/ws/a`, { wsOptions: { perMessageDeflate: true } });
    assert.ok(r.ok);
    clients.push(r.client);
    assert.equal(r.client.ws.extensions, '', `negotiated: ${r.client.ws.extensions}`);
  }));

// --history-bytes: the memory of the rooms' histories (and of rooms without members) is bounded;
// past it the least recently used go, rooms without members first. A recovery from a dropped
// history is answered recovered: false; one from a kept history replays as before.
test('--history-bytes 65536: least recently used histories go, rooms without members first', () =>
  withServer(['--history-bytes', '65536', '--history-size', '50'], async (s, clients) => {
    const ma = await connect(s, '/ws/a');
    const mb = await connect(s, '/ws/b');
    clients.push(ma, mb);
    const text = 't'.repeat(1000);
    const fill = async (room, n) => {
      const ids = [];
      for (let i = 0; i < n; ++i) {
        const r = await publish(s, { room, text });
        assert.equal(r.status, 202);
        ids.push(r.json.id);
      }
      return ids;
    };
    const retained = async () => metricSum(await metrics(s), 'realtime_room_retained_bytes');
    const evictions = async () => metricSum(await metrics(s), 'realtime_history_evictions_total');

    const aIds = await fill('a', 40);
    const bIds = await fill('b', 40);  // together past the budget: a's history, older, goes
    assert.ok((await retained()) <= 65536, `retained ${await retained()}`);
    assert.ok((await evictions()) >= 1);
    const resume = async (room, lastId) => {
      const c = await connect(s, `/ws/${room}?last_id=${encodeURIComponent(lastId)}`);
      clients.push(c);
      const rec = await c.next((m) => m.type === 'system' && m.data?.event === 'recovered');
      c.close();
      return rec.data;
    };
    const fromA = await resume('a', aIds[0]);
    assert.equal(fromA.recovered, false, JSON.stringify(fromA));
    assert.equal(fromA.last_id, aIds.at(-1), 'the numbering of a room with members stays');
    const fromB = await resume('b', bIds[0]);
    assert.deepEqual([fromB.recovered, fromB.replayed], [true, 39], JSON.stringify(fromB));

    // 100 rooms without members, a message each: they go before b's history does.
    const firstOfC = [];
    for (let i = 0; i < 100; ++i) firstOfC.push((await fill(`c${i}`, 1))[0]);
    assert.ok((await retained()) <= 65536, `retained ${await retained()}`);
    const stillB = await resume('b', bIds[0]);
    assert.deepEqual([stillB.recovered, stillB.replayed], [true, 39], JSON.stringify(stillB));
    const [again] = await fill('c0', 1);
    assert.notEqual(again.split('-')[0], firstOfC[0].split('-')[0], 'c0 was forgotten: a new history');
    const [latest] = await fill('c99', 1);
    assert.equal(latest, `${firstOfC[99].split('-')[0]}-2`, 'the latest room is still known');
  }));

test('--max-connections counts a socket until its descriptor is closed: one still closing holds its slot', () =>
  withServer(['--max-connections', '1'], async (s, clients) => {
    // A raw client breaks the protocol and then neither answers the server's close nor closes the
    // connection: the server waits for its close (or its deadline) before closing the socket.
    const raw = net.connect({ port: s.port, host: '127.0.0.1', allowHalfOpen: true });
    let input = Buffer.alloc(0);
    raw.on('data', (d) => { input = Buffer.concat([input, d]); });
    raw.on('error', () => {});
    try {
      raw.write(upgradeRequest('/ws/held'));
      await waitFor(() => input.includes('\r\n\r\n'), { message: 'the 101' });
      assert.match(input.toString('latin1'), /^HTTP\/1\.1 101/);
      const seen = input.length;
      raw.write(frame({ op: OP.text, payload: 'x', rsv: RSV1 })); // no extension: a protocol error
      await waitFor(() => input.subarray(seen).includes(0x88), { message: "the server's close frame" });
      const r = await tryOpen(`${s.url}/ws/next`);
      if (r.ok) clients.push(r.client);
      assert.equal(r.status, 503, 'the closing socket still holds the only slot');
    } finally {
      raw.destroy();
    }
    const d = await waitFor(async () => {
      const x = await tryOpen(`${s.url}/ws/next`);
      return x.ok ? x.client : null;
    }, { timeoutMs: 5000, message: 'the slot once the descriptor is closed' });
    clients.push(d);
  }));

test('an open-file limit below --max-connections: the excess gets 503, a warning names the cap, /healthz answers', { timeout: 60000 }, async () => {
  // The shell sets the limits, then becomes the server (exec): the same process, so SIGTERM reaches it.
  const argv = ['-c', 'ulimit -Sn 200 && ulimit -Hn 400 && exec "$0" "$@"', serverBinary(),
    '--listen', '127.0.0.1:0', '--threads', '2', '--max-connections', '1000'];
  const s = await startProcess('/bin/sh', argv, { env: serverEnv(), ready: LISTENING_RE, what: 'server' });
  s.port = Number(s.ready[2]);
  s.url = `ws://127.0.0.1:${s.port}`;
  s.httpUrl = `http://127.0.0.1:${s.port}`;
  const clients = [];
  try {
    const warning = await waitFor(() => /open-file limit \((\d+) descriptors.*serving at most (\d+) connections/.exec(s.stderr),
      { message: () => `a warning at start naming the cap:\n${s.stderr}` });
    assert.equal(Number(warning[1]), 400, 'the soft limit was raised to the hard one');
    const cap = Number(warning[2]);
    assert.ok(cap > 100 && cap < 400, `cap ${cap}`);
    const statuses = {};
    let attempts = 0;
    for (let i = 0; i < cap + 100; i += 20) {
      attempts += 20;
      const batch = await Promise.all(Array.from({ length: 20 }, () => tryOpen(`${s.url}/ws/full`, { timeoutMs: 3000 })));
      for (const r of batch) {
        if (r.ok) clients.push(r.client);
        const key = r.ok ? 'open' : String(r.status);
        statuses[key] = (statuses[key] ?? 0) + 1;
      }
      assert.equal((await get(s, '/healthz', { timeoutMs: 3000 })).status, 200, `/healthz after ${i + 20} upgrades`);
    }
    assert.equal(statuses.open, cap, `sockets up to the cap open, the rest refused: ${JSON.stringify(statuses)}`);
    assert.equal(statuses['503'], attempts - cap, `the excess gets 503: ${JSON.stringify(statuses)}`);
    const m = await metrics(s);
    const capacity = m.samples.find((x) => x.name === 'realtime_connections_rejected_total' && x.labels.reason === 'capacity');
    assert.equal(capacity?.value, attempts - cap, 'each counted as capacity');
  } finally {
    closeAll(clients);
    await s.stop();
  }
});
