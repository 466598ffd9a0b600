// Authentication refusals that need no signed token:
// - a token that is present but invalid is refused with 401 before the upgrade, always (also when
//   --auth-required is off), whether it comes as ?token= or as Authorization: Bearer; a ?token=
//   that cannot be percent-decoded (%zz), or a Bearer header without one usable token, is such a
//   token, not an absent one (another scheme, Basic, is not ours and is ignored);
// - with --auth-required (and a key configured), a socket without any token gets 401;
// - without --auth-required, a socket without a token is accepted (anonymous); an empty ?token= is
//   no token (a Bearer header beside it is used);
// - a token that expires on an open socket: token_expiring, then close 4001 unless refreshed in
//   band with {"type":"auth"} for the same user (another user's token is forbidden); a token
//   accepted within the clock-skew leeway after its exp gets the warning and the grace too; an
//   expired token is refused at the upgrade;
// - the seed's client URL, "?token=T" with "?last_id=undefined" appended ('?' separates query
//   parameters too), opens a socket of T's user, told recovered: false;
// - the chat of a token-authenticated socket carries from = the token's sub, whatever from the
//   client sent;
// - a token's "rooms" claim limits the rooms its socket joins (room_not_allowed), for the URL's
//   room and join messages, and a refreshed token's claim for the joins after it.

import { test, after } from 'node:test';
import { createHmac } from 'node:crypto';
import assert from 'node:assert/strict';
import { withServer, killAll } from './lib/server.mjs';
import { tryOpen, connect, waitFor } from './lib/client.mjs';
import { upgradeRequest, httpExchange } from '../support/node/raw.mjs';

after(killAll);

async function expect401(s, clients, path, headers = {}) {
  const r = await tryOpen(s.url + path, { headers });
  if (r.ok) clients.push(r.client);
  assert.equal(r.ok, false, `${path} ${JSON.stringify(headers)} must be refused`);
  assert.equal(r.status, 401, `${path} -> ${r.status}`);
}

const garbage = 'not.a.jwt';
const forged =
  'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJtYWxsb3J5In0.c2lnbmF0dXJlLW5vdC12YWxpZA';
const unsigned = 'eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJtYWxsb3J5In0.';

test('an invalid token is refused with 401 even when auth is not required', () =>
  withServer([], async (s, clients) => {
    await expect401(s, clients, `/ws/a?token=${garbage}`);
    await expect401(s, clients, `/ws/a?token=${forged}`);
    await expect401(s, clients, `/ws/a?token=${unsigned}`);
    await expect401(s, clients, '/ws', { Authorization: `Bearer ${garbage}` });
    // anonymous is fine
    clients.push(await connect(s, '/ws/a'));
  }));

test('an invalid token is refused with 401 when a key is configured', () =>
  withServer(['--jwt-secret', 'integration-secret'], async (s, clients) => {
    await expect401(s, clients, `/ws/a?token=${forged}`);
    await expect401(s, clients, `/ws/a?token=${unsigned}`);
    await expect401(s, clients, '/ws/a', { Authorization: `Bearer ${forged}` });
    // A Bearer header with nothing usable in it is a bad credential too, never anonymous.
    const good = hs256('integration-secret', { sub: 'ann' });
    for (const header of ['Bearer', 'bearer   ', `Bearer ${good} junk`]) {
      await expect401(s, clients, '/ws/a', { Authorization: header });
    }
    // Nor is a credential beside another, or written so that the Bearer scheme is not first: which
    // one is meant is not clear, and none of them may become anonymous.
    await expect401(s, clients, `/ws/a?token=&token=${forged}`);
    await expect401(s, clients, `/ws/a?token&token=${forged}`);
    await expect401(s, clients, `/ws/a?token=${good}&token=${good}`);
    for (const header of [`Bearer,${forged}`, `Basic eDp5, Bearer ${forged}`, ['Basic eDp5', `Bearer ${forged}`], [`Bearer ${good}`, `Bearer ${good}`]]) {
      await expect401(s, clients, '/ws/a', { Authorization: header });
    }
    // Another scheme is not this server's (a proxy's Basic credentials, say): ignored.
    const basic = await connect(s, '/ws/a', { headers: { Authorization: 'Basic dXNlcjpwYXNz' } });
    clients.push(basic);
    assert.equal(basic.welcome.data.user_id, basic.welcome.data.connection_id, 'anonymous');
    clients.push(await connect(s, '/ws/a'));
    // An empty ?token= is no token: anonymous here, and a Bearer header beside it is used.
    const empty = await connect(s, '/ws/a?token=');
    clients.push(empty);
    assert.equal(empty.welcome.data.user_id, empty.welcome.data.connection_id, 'anonymous');
    const bearer = await connect(s, '/ws/a?token=', { headers: { Authorization: `Bearer ${hs256('integration-secret', { sub: 'ann' })}` } });
    clients.push(bearer);
    assert.equal(bearer.welcome.data.user_id, 'ann');
  }));

test('a ?token= that cannot be decoded (bad percent escape) is an invalid token: 401, never anonymous', () =>
  withServer(['--jwt-secret', 'integration-secret'], async (s, clients) => {
    await expect401(s, clients, '/ws/lobby?token=%zz');
    await expect401(s, clients, '/ws/lobby?token=abc%2');
    await expect401(s, clients, '/ws?token=%');
    // The first occurrence decides: a good token after it does not rescue it, nor does a Bearer.
    const good = hs256('integration-secret', { sub: 'ann' });
    await expect401(s, clients, `/ws/lobby?token=%zz&token=${good}`);
    await expect401(s, clients, '/ws/lobby?token=%zz', { Authorization: `Bearer ${good}` });
    // A well-formed escape is decoded as before.
    const ok = await connect(s, `/ws/lobby?token=${encodeURIComponent(good)}`);
    clients.push(ok);
    assert.equal(ok.welcome.data.user_id, 'ann');
  }));

test("the seed's client URL (?token=... with ?last_id= appended) is the token's user, told recovered: false", () =>
  withServer(['--jwt-secret', 'integration-secret'], async (s, clients) => {
    const token = hs256('integration-secret', { sub: 'ann' });
    const seed = await connect(s, `/ws/lobby?token=${token}?last_id=undefined`);
    clients.push(seed);
    assert.equal(seed.welcome.data.user_id, 'ann');
    const rec = await seed.next((m) => m.type === 'system' && m.data?.event === 'recovered', 3000, 'recovered');
    assert.equal(rec.data.recovered, false);
  }));

test("a token-authenticated socket's chat carries from = the token's sub; a client-sent from is ignored", () =>
  withServer(['--jwt-secret', 'integration-secret'], async (s, clients) => {
    const ann = await connect(s, `/ws/lobby?token=${hs256('integration-secret', { sub: 'ann' })}`);
    const peer = await connect(s, '/ws/lobby');
    clients.push(ann, peer);
    assert.equal(ann.welcome.data.user_id, 'ann');
    assert.notEqual(ann.welcome.data.connection_id, 'ann', 'the connection id is not the user id');
    ann.send({ type: 'chat', from: 'mallory', data: { text: 'signed' } });
    const isSigned = (m) => m.type === 'chat' && m.data?.text === 'signed';
    for (const c of [ann, peer]) {
      const m = await c.next(isSigned, 3000, 'chat from the authenticated socket');
      assert.equal(m.from, 'ann', `from = the token's sub: ${JSON.stringify(m)}`);
    }
  }));

test('a ?token= that cannot be decoded is refused on a server without a JWT key too', () =>
  withServer([], async (s, clients) => {
    await expect401(s, clients, '/ws/lobby?token=%zz');
    clients.push(await connect(s, '/ws/lobby?token='));
  }));

for (const [kind, token] of [['forged', forged], ['undecodable', '%zz']]) {
  test(`a refused upgrade (${kind} token) logs its target cut to 256 bytes, however long the query`, () =>
    withServer(['--jwt-secret', 'integration-secret', '--log-level', 'info'], async (s, clients) => {
      const long = 'q'.repeat(7000);
      await expect401(s, clients, `/ws/a?token=${token}&last_id=${long}`);
      const refusedLines = () => s.output.split('\n').filter((l) => l.includes('upgrade refused'));
      await waitFor(() => refusedLines().length >= 1, { message: 'the refusal logged' });
      for (const line of refusedLines()) {
        assert.ok(line.length < 512, `a ${line.length}-byte log line: ${line.slice(0, 300)}...`);
        assert.match(line, /\.\.\.\[\d+ more bytes\]/);
      }
      assert.ok(!s.output.includes('q'.repeat(300)));
    }));
}

test('a flood of refused upgrades logs one line per 5 s, which counts those left out; the metric counts each', { timeout: 30000 }, () =>
  withServer(['--jwt-secret', 'integration-secret', '--log-level', 'info'], async (s) => {
    const refusedLines = () => s.output.split('\n').filter((l) => l.includes('upgrade refused'));
    const refuse = async (i) => {
      // Every kind that is logged: a bad signature, an undecodable ?token=, a Bearer header
      // without a token.
      const request = [
        upgradeRequest(`/ws/a?token=${forged}`),
        upgradeRequest('/ws/a?token=%zz'),
        upgradeRequest('/ws/a', { headers: { Authorization: 'Bearer' } }),
      ][i % 3];
      const r = await httpExchange(s.port, request, { idleMs: 50 });
      assert.equal(r.status, 401, `refusal ${i}: ${r.status}`);
    };
    const flood = 300;
    const started = Date.now();
    for (let i = 0; i < flood; i += 20) {
      await Promise.all(Array.from({ length: 20 }, (_, k) => refuse(i + k)));
    }
    const floodMs = Date.now() - started;
    // At most one line per 5 s while the flood lasted.
    await waitFor(() => refusedLines().length >= 1, { message: 'the first refusal logged' });
    assert.ok(refusedLines().length <= 1 + Math.floor(floodMs / 5000),
      `${refusedLines().length} lines for ${flood} refusals in ${floodMs} ms:\n${refusedLines().slice(0, 5).join('\n')}`);
    // A refusal once the interval has passed is logged, with how many were left out before it.
    const reported = () => refusedLines().map((l) => /\((\d+) more refused since the last report\)/.exec(l)).filter(Boolean);
    await waitFor(async () => {
      await refuse(0);
      return reported().some((m) => Number(m[1]) >= flood - 1);
    }, { timeoutMs: 15000, intervalMs: 250, message: () => `a line counting the refusals left out:\n${refusedLines().join('\n')}` });
    assert.ok(refusedLines().length <= 3, refusedLines().join('\n'));
    const metrics = await (await fetch(`${s.httpUrl}/metrics`)).text();
    const rejected = /realtime_connections_rejected_total\{reason="unauthorized"\} (\d+)/.exec(metrics);
    assert.ok(rejected && Number(rejected[1]) >= flood + 1, `every refusal counted: ${rejected?.[0]}`);
  }));

test('--auth-required: no token -> 401', () =>
  withServer(['--auth-required', '--jwt-secret', 'integration-secret'], async (s, clients) => {
    await expect401(s, clients, '/ws/a');
    const r = await httpExchange(s.port, upgradeRequest('/ws/a'), { idleMs: 50 });
    assert.deepEqual([r.status, JSON.parse(r.body), r.headers['www-authenticate']], [401, { error: 'token required' }, 'Bearer']);
    await expect401(s, clients, '/ws');
    await expect401(s, clients, `/ws/a?token=${forged}`);
    await expect401(s, clients, '/ws/a?token=');
  }));

// ---- tokens that expire on open sockets, and in-band refresh ----

function hs256(secret, claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

test('a token that expires on an open socket: token_expiring, then close 4001; a refreshed one stays', { timeout: 30000 }, () =>
  withServer(['--jwt-secret', 'expiry-secret'], async (s, clients) => {
    const now = Math.floor(Date.now() / 1000);
    // exp in 2 s: the warning comes at once (it is sent 30 s before exp), the close after the grace.
    const short = hs256('expiry-secret', { sub: 'ada', exp: now + 2 });
    const stays = await connect(s, `/ws/a?token=${short}`);
    const goes = await connect(s, `/ws/a?token=${short}`);
    clients.push(stays, goes);
    assert.equal(goes.welcome.data.user_id, 'ada', 'the user id is the token subject');
    for (const c of [stays, goes]) {
      await c.next((m) => m.type === 'system' && m.data?.event === 'token_expiring', 5000, 'token_expiring');
    }
    // The same user refreshes on one socket; a token for someone else is refused.
    stays.send({ type: 'auth', token: hs256('expiry-secret', { sub: 'mallory', exp: now + 3600 }) });
    const refused = await stays.next((m) => m.type === 'error', 3000, 'error for another user');
    assert.equal(refused.data.code, 'forbidden');
    // A token without exp cannot lift the socket's expiry.
    stays.send({ type: 'auth', token: hs256('expiry-secret', { sub: 'ada' }) });
    const forever = await stays.next((m) => m.type === 'error' || m.data?.event === 'token_refreshed', 3000, 'answer to a refresh without exp');
    assert.equal(forever.data.code, 'invalid_token', `refresh without exp: ${JSON.stringify(forever)}`);
    stays.send({ type: 'auth', token: hs256('expiry-secret', { sub: 'ada', exp: now + 3600 }) });
    await stays.next((m) => m.type === 'system' && m.data?.event === 'token_refreshed', 3000, 'token_refreshed');
    const closed = await goes.expectClose(15000);
    assert.equal(closed.code, 4001, `close code ${closed.code}`);
    // The refreshed socket is still served after the other one was closed.
    stays.send({ type: 'ping' });
    await stays.next((m) => m.type === 'pong', 3000, 'pong after the refresh');
    assert.equal(stays.closed, null);
  }));

test('a token accepted just after its exp (clock-skew leeway) is warned before its 4001 close, and may be refreshed', { timeout: 30000 }, () =>
  withServer(['--jwt-secret', 'expiry-secret'], async (s, clients) => {
    const now = Math.floor(Date.now() / 1000);
    const late = hs256('expiry-secret', { sub: 'ada', exp: now - 10 });
    const goes = await connect(s, `/ws/a?token=${late}`);
    const stays = await connect(s, `/ws/a?token=${late}`);
    clients.push(goes, stays);
    for (const c of [goes, stays]) {
      await c.next((m) => m.type === 'system' && m.data?.event === 'token_expiring', 5000, 'token_expiring');
      assert.equal(c.closed, null, 'not closed before its warning');
    }
    stays.send({ type: 'auth', token: hs256('expiry-secret', { sub: 'ada', exp: now + 3600 }) });
    await stays.next((m) => m.type === 'system' && m.data?.event === 'token_refreshed', 3000, 'token_refreshed');
    const closed = await goes.expectClose(15000);
    assert.equal(closed.code, 4001, `close code ${closed.code}`);
    const kinds = goes.history.map((m) => m.data?.event ?? m.type);
    assert.ok(kinds.indexOf('token_expiring') >= 0, `warned first: ${kinds}`);
    stays.send({ type: 'ping' });
    await stays.next((m) => m.type === 'pong', 3000, 'pong after the refresh');
  }));

test('an expired token is refused with 401 at the upgrade', () =>
  withServer(['--jwt-secret', 'expiry-secret'], async (s, clients) => {
    const old = hs256('expiry-secret', { sub: 'ada', exp: Math.floor(Date.now() / 1000) - 3600 });
    await expect401(s, clients, `/ws/a?token=${old}`);
  }));

test('a refused upgrade says why: the reason in the body and in a Bearer challenge', () =>
  withServer(['--jwt-secret', 'expiry-secret', '--jwt-issuer', 'iss1'], async (s) => {
    const now = Math.floor(Date.now() / 1000);
    const cases = [
      [hs256('expiry-secret', { sub: 'ada', iss: 'iss1', exp: now - 3600 }), 'expired'],
      [hs256('expiry-secret', { sub: 'ada', iss: 'other', exp: now + 3600 }), 'bad_issuer'],
      [hs256('another-secret', { sub: 'ada', iss: 'iss1', exp: now + 3600 }), 'bad_signature'],
      ['%zz', 'malformed'],
    ];
    for (const [token, reason] of cases) {
      const r = await httpExchange(s.port, upgradeRequest(`/ws/a?token=${token}`), { idleMs: 50 });
      assert.equal(r.status, 401, reason);
      assert.deepEqual(JSON.parse(r.body), { error: 'invalid token', reason });
      assert.equal(r.headers['www-authenticate'], `Bearer error="invalid_token", error_description="${reason}"`);
    }
  }));

test('a token\'s "rooms" claim limits the rooms its socket joins: the URL\'s room and join messages', () =>
  withServer(['--jwt-secret', 'rooms-secret'], async (s, clients) => {
    const token = (claims) => hs256('rooms-secret', { sub: 'ann', ...claims });
    const member = await connect(s, '/ws/dm:bob:carl');
    clients.push(member);
    // The URL's room refused: the socket opens in no room, told why; the room's member sees nothing.
    const ann = await connect(s, `/ws/dm:bob:carl?token=${token({ rooms: ['general', 'team-7:*'] })}`);
    clients.push(ann);
    assert.equal(ann.welcome.data.room, undefined, 'the welcome names no room');
    const refused = await ann.next((m) => m.type === 'error', 3000, 'room_not_allowed');
    assert.deepEqual([refused.data.code, refused.data.room], ['room_not_allowed', 'dm:bob:carl']);
    // Join messages: a listed room, a room under a listed prefix; not another.
    for (const room of ['general', 'team-7:random']) {
      ann.send({ type: 'join', room });
      await ann.next((m) => m.type === 'system' && m.data?.event === 'joined' && m.room === room, 3000, `joined ${room}`);
    }
    ann.send({ type: 'join', room: 'team-70:random' });
    const again = await ann.next((m) => m.type === 'error' && m.data?.room === 'team-70:random', 3000, 'refused join');
    assert.equal(again.data.code, 'room_not_allowed');
    ann.send({ type: 'chat', room: 'dm:bob:carl', data: { text: 'hi' } });
    assert.equal((await ann.next((m) => m.type === 'error' && m.data?.room === 'dm:bob:carl', 3000, 'not_in_room')).data.code, 'not_in_room');
    await member.roundTrip();
    assert.deepEqual(member.seen((m) => m.data?.user_id === 'ann' || m.type === 'chat'), [], 'nothing of ann reached the room');
    // A refreshed token's claim holds for the joins after it.
    ann.send({ type: 'auth', token: token({ rooms: ['dm:*'] }) });
    await ann.next((m) => m.type === 'system' && m.data?.event === 'token_refreshed', 3000, 'token_refreshed');
    ann.send({ type: 'join', room: 'dm:bob:carl' });
    await ann.next((m) => m.type === 'system' && m.data?.event === 'joined' && m.room === 'dm:bob:carl', 3000, 'joined after the refresh');
    // A token with no claim, and an anonymous socket, join any room; a malformed claim is a malformed token.
    const free = await connect(s, `/ws/dm:bob:carl?token=${token({})}`);
    clients.push(free);
    assert.equal(free.welcome.data.room, 'dm:bob:carl');
    const r = await tryOpen(`${s.url}/ws/a?token=${token({ rooms: 'general' })}`);
    if (r.ok) clients.push(r.client);
    assert.equal(r.status, 401);
  }));
