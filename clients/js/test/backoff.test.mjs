// Pure tests: the backoff schedule and URL building. No network.
import test from 'node:test';
import assert from 'node:assert/strict';

import { backoffDelay, Backoff, buildSocketUrl, ROOM_NAME_PATTERN } from '../realtime-client.js';

// mulberry32: a small seeded PRNG, so every run draws the same delays.
function seeded(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('full jitter: every delay lies in [0, min(max, initial * 2^n))', () => {
  const opts = { initialMs: 500, maxMs: 30000 };
  const random = seeded(42);
  for (let attempt = 0; attempt < 20; attempt++) {
    const ceiling = Math.min(30000, 500 * 2 ** attempt);
    for (let i = 0; i < 500; i++) {
      const d = backoffDelay(attempt, opts, random);
      assert.ok(Number.isInteger(d), `integer delay, got ${d}`);
      assert.ok(d >= 0 && d < ceiling, `attempt ${attempt}: ${d} outside [0, ${ceiling})`);
    }
  }
});

test('full jitter spreads over the whole window, not just its top', () => {
  const random = seeded(7);
  const draws = Array.from({ length: 2000 }, () => backoffDelay(3, { initialMs: 1000, maxMs: 30000 }, random));
  const ceiling = 8000;
  assert.ok(Math.min(...draws) < ceiling * 0.05, 'some delays near zero');
  assert.ok(Math.max(...draws) > ceiling * 0.95, 'some delays near the ceiling');
  const mean = draws.reduce((a, b) => a + b, 0) / draws.length;
  assert.ok(Math.abs(mean - ceiling / 2) < ceiling * 0.05, `mean ${mean} near ${ceiling / 2}`);
});

test('the first delay is randomised too (no fixed first retry)', () => {
  const random = seeded(1);
  const firsts = new Set(Array.from({ length: 50 }, () => backoffDelay(0, { initialMs: 1000, maxMs: 30000 }, random)));
  assert.ok(firsts.size > 40, `first delays vary (${firsts.size} distinct of 50)`);
  for (const d of firsts) assert.ok(d < 1000);
});

test('the window is capped at maxMs (30 s) however many attempts', () => {
  assert.equal(backoffDelay(1000, { initialMs: 500, maxMs: 30000 }, () => 0.999999), 29999);
  assert.equal(backoffDelay(1e9, { initialMs: 500, maxMs: 30000 }, () => 0.999999), 29999);
  assert.equal(backoffDelay(6, { initialMs: 500, maxMs: 30000 }, () => 0.999999), 29999); // 500*64 = 32000 > cap
  assert.equal(backoffDelay(5, { initialMs: 500, maxMs: 30000 }, () => 0.999999), 15999); // 500*32 = 16000
  // random() === 1 would be out of contract, but must still not reach the ceiling
  assert.equal(backoffDelay(0, { initialMs: 500, maxMs: 30000 }, () => 1), 499);
  assert.equal(backoffDelay(0, { initialMs: 500, maxMs: 30000 }, () => 0), 0);
});

test('Backoff: windows double per attempt up to the cap, reset() starts over', () => {
  const b = new Backoff({ initialMs: 100, maxMs: 1000 }, () => 0.999999);
  const delays = Array.from({ length: 7 }, () => b.next());
  assert.deepEqual(delays, [99, 199, 399, 799, 999, 999, 999]);
  assert.equal(b.attempt, 7);
  b.reset();
  assert.equal(b.attempt, 0);
  assert.equal(b.next(), 99);
});

test('Backoff rejects nonsense settings', () => {
  assert.throws(() => new Backoff({ initialMs: 0, maxMs: 10 }), RangeError);
  assert.throws(() => new Backoff({ initialMs: 100, maxMs: 10 }), RangeError);
});

test('buildSocketUrl: room path, encoded query, never "undefined"', () => {
  assert.equal(buildSocketUrl('ws://h:1', 'general'), 'ws://h:1/ws/general');
  assert.equal(buildSocketUrl('ws://h:1/', undefined), 'ws://h:1/ws');
  assert.equal(buildSocketUrl('http://h:1', 'a'), 'ws://h:1/ws/a');
  assert.equal(buildSocketUrl('https://h', 'a'), 'wss://h/ws/a');
  assert.equal(buildSocketUrl('ws://h:1', 'a', { lastId: undefined, token: undefined }), 'ws://h:1/ws/a');
  assert.equal(buildSocketUrl('ws://h:1', 'a', { lastId: 'undefined', token: null }), 'ws://h:1/ws/a');
  assert.equal(buildSocketUrl('ws://h:1', 'a', { lastId: '' }), 'ws://h:1/ws/a');
  assert.equal(buildSocketUrl('ws://h:1', 'a', { lastId: '17-3' }), 'ws://h:1/ws/a?last_id=17-3');
  assert.equal(buildSocketUrl('ws://h:1', 'a', { lastId: 'x y&z=1' }), 'ws://h:1/ws/a?last_id=x+y%26z%3D1');
  assert.equal(buildSocketUrl('ws://h:1', 'r:1', { token: 'a.b.c', lastId: 'i' }), 'ws://h:1/ws/r:1?token=a.b.c&last_id=i');
});

test('buildSocketUrl refuses rooms "." and "..", which a URL path resolves away', () => {
  assert.throws(() => buildSocketUrl('ws://h:1', '.'), RangeError);
  assert.throws(() => buildSocketUrl('ws://h:1', '..'), RangeError);
  assert.equal(buildSocketUrl('ws://h:1', '...'), 'ws://h:1/ws/...');
  assert.equal(buildSocketUrl('ws://h:1', '.a'), 'ws://h:1/ws/.a');
});

test('buildSocketUrl keeps a query string of the base url and adds its own parameters after it', () => {
  assert.equal(buildSocketUrl('ws://h:1/?tenant=x', 'a'), 'ws://h:1/ws/a?tenant=x');
  assert.equal(buildSocketUrl('https://h/rt?tenant=x&v=2#top', 'a', { token: 't', lastId: '5-1' }), 'wss://h/rt/ws/a?tenant=x&v=2&token=t&last_id=5-1');
  assert.equal(buildSocketUrl('ws://h:1?', undefined, { token: 't' }), 'ws://h:1/ws?token=t');
});

test('room name rule matches the server', () => {
  for (const ok of ['a', 'general', 'A-Z_0.9:x', 'x'.repeat(128)]) assert.ok(ROOM_NAME_PATTERN.test(ok), ok);
  for (const bad of ['', 'x'.repeat(129), 'a b', 'a/b', 'é', 'a?b']) assert.ok(!ROOM_NAME_PATTERN.test(bad), bad);
});
