// POST /api/publish and cross-site requests (CSRF):
// - a browser page on another site can POST a text/plain body without a preflight, so a request
//   carrying Origin is held to the upgrade's rule: same origin by default (Origin http(s)://<Host>),
//   else exactly --allowed-origins; any other Origin -> 403, and nothing is published;
// - no Origin (curl, server-side clients, form content type included) -> 202 as before;
// - start-up: no --api-key on a listen address that is not loopback -> a warning that the publish
//   API accepts unauthenticated requests; none on loopback or with a key.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { withServer, killAll } from './lib/server.mjs';
import { connect, sleep } from './lib/client.mjs';
import { post } from '../support/node/http.mjs';

after(killAll);

const BODY = JSON.stringify({ room: 'csrf', text: 'hello' });
const simple = (s, origin, headers = {}) =>
  post(s, '/api/publish', BODY, {
    headers: { 'content-type': 'text/plain', ...(origin === undefined ? {} : { origin }), ...headers },
  });

test('default: a cross-site POST /api/publish -> 403 and nothing published; same origin and no Origin -> 202', () =>
  withServer([], async (s, clients) => {
    const member = await connect(s, '/ws/csrf');
    clients.push(member);
    for (const origin of ['http://evil.example', 'null', `http://127.0.0.1:${s.port === 65535 ? 1 : s.port + 1}`]) {
      const r = await simple(s, origin);
      assert.equal(r.status, 403, `Origin ${origin} -> ${r.status} ${r.text}`);
    }
    // fetch sends Host: 127.0.0.1:<port>
    const same = await simple(s, `http://127.0.0.1:${s.port}`);
    assert.equal(same.status, 202, same.text);
    const curl = await simple(s, undefined, { 'content-type': 'application/x-www-form-urlencoded' });
    assert.equal(curl.status, 202, curl.text);
    // Exactly the two accepted messages reach the member: a barrier published after them (the room
    // delivers in the order the server took its messages) comes third.
    const barrier = await post(s, '/api/publish', { room: 'csrf', text: 'barrier' });
    assert.equal(barrier.status, 202, barrier.text);
    await member.next((x) => x.type === 'chat' && x.data?.text === 'barrier', 5000, 'the barrier');
    const got = member.seen((x) => x.type === 'chat').map((x) => x.id);
    assert.deepEqual(got, [same.json.id, curl.json.id, barrier.json.id]);
  }));

test('--allowed-origins: a listed Origin -> 202, another -> 403, no Origin -> 202', () =>
  withServer(['--allowed-origins', 'http://app.example'], async (s) => {
    assert.equal((await simple(s, 'http://app.example')).status, 202);
    assert.equal((await simple(s, 'http://other.example')).status, 403);
    assert.equal((await simple(s, `http://127.0.0.1:${s.port}`)).status, 403);
    assert.equal((await simple(s, undefined)).status, 202);
  }));

test('--api-key: a cross-site POST is refused even with the key; the key alone still publishes', () =>
  withServer(['--api-key', 'k'], async (s) => {
    assert.equal((await simple(s, 'http://evil.example', { authorization: 'Bearer k' })).status, 403);
    assert.equal((await simple(s, undefined, { authorization: 'Bearer k' })).status, 202);
    assert.equal((await simple(s, undefined)).status, 401);
  }));

const WARNING = /publish API .*accepts unauthenticated requests/;

test('start-up: no --api-key on a non-loopback address -> a warning; loopback or a key -> none', async () => {
  await withServer([], async (s) => {
    await sleep(100);
    assert.match(s.output, WARNING);
  }, { listen: '0.0.0.0:0' });
  await withServer(['--api-key', 'k'], async (s) => {
    await sleep(100);
    assert.doesNotMatch(s.output, WARNING);
  }, { listen: '0.0.0.0:0' });
  await withServer([], async (s) => {
    await sleep(100);
    assert.doesNotMatch(s.output, WARNING);
  });
});
