// Hostile input: a client that asks for more than it reads. Plain HTTP sockets count against no
// connection limit, so a response the client never takes must not hold its socket (and descriptor)
// forever: every HTTP response write has a deadline (the handshake timeout, 2 s here), and the
// socket is closed when it passes. A client that reads, pipelining the same requests, still gets
// every response.

import assert from 'node:assert/strict';
import net from 'node:net';
import { useBattery, sleep } from './lib/battery.mjs';

const TIMEOUT_S = 2;
const ctx = useBattery(['--handshake-timeout', String(TIMEOUT_S)]);

// 400 pipelined requests for the ~36 KB client file: ~14 MB of responses, far more than the socket
// buffers of both sides hold.
const COUNT = 400;
const pipelined = Buffer.from('GET /realtime-client.js HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(COUNT), 'latin1');
const countResponses = (chunks) => (Buffer.concat(chunks).toString('latin1').match(/HTTP\/1\.1 200 OK\r\n/g) ?? []).length;

/** Connects, sends the pipelined requests; returns the socket, its received chunks and a close promise. */
async function pipeline() {
  const sock = net.connect({ port: ctx.port(), host: '127.0.0.1' });
  const chunks = [];
  sock.on('data', (d) => chunks.push(d));
  sock.on('error', () => {});
  const closed = new Promise((resolve) => sock.on('close', () => resolve(Date.now())));
  await new Promise((r) => sock.on('connect', r));
  sock.write(pipelined);
  return { sock, chunks, closed };
}

ctx.hostile(`slowread.1 ${COUNT} pipelined GET /realtime-client.js never read: the server gives up within the timeout`, async () => {
  const { sock, chunks, closed } = await pipeline();
  sock.pause(); // the kernel's receive buffer fills, then the server's send buffer
  // The server must have given up by the time we start reading again: its deadline (2 s) plus slack.
  await sleep((TIMEOUT_S + 3) * 1000);
  sock.resume();
  const closedAt = await Promise.race([closed, sleep(5000).then(() => null)]);
  sock.destroy();
  assert.ok(closedAt !== null, 'the socket is still open 5 s after reading resumed');
  const got = countResponses(chunks);
  // Without a deadline every response arrives once reading resumes; with it, the server closed the
  // socket while it was not read, so what was still queued is lost.
  assert.ok(got < COUNT, `all ${got} responses arrived: the server waited for a client that did not read`);
});

ctx.hostile(`slowread.2 ${COUNT} pipelined GET /realtime-client.js, read at once: every response arrives`, async () => {
  const { sock, chunks, closed } = await pipeline();
  const t0 = Date.now();
  while (countResponses(chunks) < COUNT && Date.now() - t0 < 10_000) await sleep(50);
  sock.destroy();
  await closed;
  assert.equal(countResponses(chunks), COUNT);
});

ctx.hostile('slowread.3 a reader taking the chat page in 1 KiB sips, 100 ms apart: it is not cut off', async () => {
  const sock = net.connect({ port: ctx.port(), host: '127.0.0.1' });
  const chunks = [];
  sock.on('error', () => {});
  await new Promise((r) => sock.on('connect', r));
  sock.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  const ended = new Promise((resolve) => sock.on('end', resolve));
  let total = 0;
  const t0 = Date.now();
  // Paused mode: read() takes what the kernel has, so the server's writes wait on this reader.
  while (Date.now() - t0 < 15_000) {
    const piece = sock.read(1024) ?? sock.read();
    if (piece) {
      chunks.push(piece);
      total += piece.length;
    }
    if (sock.readableEnded) break;
    if (await Promise.race([ended.then(() => true), sleep(100).then(() => false)])) {
      for (let p = sock.read(); p; p = sock.read()) chunks.push(p);
      break;
    }
  }
  sock.destroy();
  const text = Buffer.concat(chunks).toString('latin1');
  const length = Number(/content-length: (\d+)/i.exec(text)?.[1]);
  const body = text.slice(text.indexOf('\r\n\r\n') + 4);
  assert.ok(length > 10_000, `chat page of ${length} bytes`);
  assert.equal(body.length, length, `received ${total} bytes in ${Date.now() - t0} ms`);
});
