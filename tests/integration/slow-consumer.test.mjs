// Slow consumers (--send-queue-bytes 65536): a raw TCP client that completes the handshake and then
// never reads sits in a room where a fast publisher sends many ~1 KB chats. The server closes that
// socket (TCP closed; when the close frame is readable it carries 1013), increments a slow-consumer
// metric, and a normal member of the same room receives every message, in order.
// A recovery whose replay is larger than the send queue completes for a client that reads (the
// replay is allowed on top of the queue's bound); a recovering socket that never reads is still
// closed once live traffic piles up past the bound.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { withServer, killAll } from './lib/server.mjs';
import { connect, waitFor } from './lib/client.mjs';
import { rawConnect, OP } from './lib/raw.mjs';
import { metrics, metricSum, metricSumMatching, publish } from '../support/node/http.mjs';

after(killAll);

const FLAGS = ['--send-queue-bytes', '65536', '--rate-limit', '1000000', '--rate-burst', '1000000'];

test('a never-reading socket is closed as a slow consumer; a normal member gets everything in order', () =>
  withServer(FLAGS, async (s, clients) => {
    const member = await connect(s, '/ws/flood');
    const pub = await connect(s, '/ws/flood');
    clients.push(member, pub);
    const slow = await rawConnect(s.port, '/ws/flood');
    clients.push(slow);
    await slow.nextMessage((m) => m.type === 'system' && m.data?.event === 'welcome', 3000);
    slow.pause(); // never read again

    const m0 = await metrics(s);
    const slow0 = metricSumMatching(m0, 'slow') ?? 0;
    const conns0 = metricSum(m0, 'realtime_connections_total');
    assert.equal(conns0, 3);

    // Count the member's chats as they arrive (seq order checked at the end).
    const seqs = [];
    let wake = null;
    member.ws.on('message', (d) => {
      const m = JSON.parse(d.toString());
      if (m.type === 'chat' && typeof m.data?.seq === 'number') {
        seqs.push(m.data.seq);
        wake?.();
      }
    });
    const memberHas = (n, timeoutMs) =>
      new Promise((resolve, reject) => {
        if (seqs.length >= n) return resolve();
        const timer = setTimeout(() => {
          wake = null;
          reject(new Error(`member got ${seqs.length}/${n} chats within ${timeoutMs} ms (closed: ${JSON.stringify(member.closed)})`));
        }, timeoutMs);
        wake = () => {
          if (seqs.length >= n) {
            wake = null;
            clearTimeout(timer);
            resolve();
          }
        };
      });

    // Publish in small batches, each delivered to the member before the next, so that a reader that
    // keeps up never has more than ~16 KB unsent while the never-reading socket piles up data.
    const pad = 'p'.repeat(1000);
    const BATCH = 16;
    const MAX = 40_000;
    const deadline = Date.now() + 40_000;
    let sent = 0;
    let detected = false;
    while (!detected && sent < MAX && Date.now() < deadline) {
      for (let i = 0; i < BATCH; i++, sent++) pub.send({ type: 'chat', data: { seq: sent, pad } });
      await memberHas(sent, 10_000);
      if ((sent / BATCH) % 32 === 0) {
        const m = await metrics(s);
        detected = (metricSumMatching(m, 'slow') ?? 0) > slow0 || metricSum(m, 'realtime_connections_total') < 3;
      }
    }
    assert.ok(detected, `slow consumer not closed after ${sent} messages of ~1 KB`);

    const m1 = await waitFor(
      async () => {
        const m = await metrics(s);
        return (metricSumMatching(m, 'slow') ?? 0) > slow0 && metricSum(m, 'realtime_connections_total') === 2 ? m : null;
      },
      { timeoutMs: 5000, message: 'the slow-consumer metric to increment and the slow socket to be gone' },
    );
    assert.ok(metricSumMatching(m1, 'slow') >= slow0 + 1);

    // The member got every message, in order, and is still connected.
    assert.equal(seqs.length, sent);
    assert.ok(seqs.every((v, i) => v === i), 'member received every message in order');
    assert.ok(member.isOpen && pub.isOpen);
    pub.send({ type: 'chat', data: { seq: 'last' } });
    await member.next((m) => m.type === 'chat' && m.data?.seq === 'last', 5000);

    // Now read what the slow socket was sent: the TCP connection ends; a close frame, if any, says 1013.
    slow.resume();
    const ended = await slow.waitEnd(10_000);
    assert.ok(ended, 'the slow socket is closed at the TCP level');
    const texts = slow.frames.filter((f) => f.opcode === OP.TEXT);
    assert.ok(texts.length < sent, 'the slow socket did not get everything');
    if (slow.closeFrame) assert.equal(slow.closeFrame.code, 1013, `close code ${slow.closeFrame.code}`);
  }));

test('a recovery that replays more than the send queue holds completes for a client that reads', () =>
  withServer(FLAGS, async (s, clients) => {
    const room = 'replay-big';
    const pad = 'r'.repeat(4000);
    const ids = [];
    for (let i = 0; i < 40; i++) {
      const res = await publish(s, { room, type: 'chat', data: { i, pad } });
      assert.equal(res.status, 202);
      ids.push(res.json.id);
    }
    // 39 messages of ~4 KB after the first: ~156 KB, more than the 64 KB queue.
    const c = await connect(s, `/ws/${room}?last_id=${encodeURIComponent(ids[0])}`);
    clients.push(c);
    const got = await c.nextN((m) => m.type === 'chat', 39, 10_000, 'replayed chats');
    assert.deepEqual(got.map((m) => m.id), ids.slice(1));
    const rec = await c.next((m) => m.type === 'system' && m.data?.event === 'recovered', 5000);
    assert.deepEqual([rec.data.recovered, rec.data.replayed], [true, 39]);
    assert.ok(c.isOpen, `closed: ${JSON.stringify(c.closed)}`);
    assert.equal(metricSumMatching(await metrics(s), 'slow') ?? 0, 0, 'no slow-consumer close');
  }));

test('a recovering socket that never reads is still closed once live traffic passes the bound', () =>
  withServer(FLAGS, async (s, clients) => {
    const room = 'replay-stuck';
    const pad = 'r'.repeat(4000);
    let first;
    for (let i = 0; i < 40; i++) {
      const res = await publish(s, { room, type: 'chat', data: { i, pad } });
      first ??= res.json.id;
    }
    const stuck = await rawConnect(s.port, `/ws/${room}?last_id=${encodeURIComponent(first)}`);
    clients.push(stuck);
    stuck.pause();
    const pub = await connect(s, `/ws/${room}`);
    clients.push(pub);
    // Live traffic, 40 KB a round trip (the publisher, a member too, stays within the bound), until
    // the server gives up on the stuck socket (the kernel's socket buffers take some MB first).
    const slowCloses = async () => metricSumMatching(await metrics(s), 'slow') ?? 0;
    let sent = 0;
    while ((await slowCloses()) === 0 && sent < 4000) {
      for (let i = 0; i < 10; i++, sent++) pub.send({ type: 'chat', data: { live: sent, pad } });
      await pub.roundTrip();
    }
    assert.ok((await slowCloses()) >= 1, `not closed after ${sent} live messages of ~4 KB`);
    assert.ok(pub.isOpen, 'the publisher is not affected');
  }));
