// Authentication refusals that need no signed token:
// - a token that is present but invalid is refused with 401 before the upgrade, always (also when
//   --auth-required is off), whether it comes as ?token= or as Authorization: Bearer;
// - with --auth-required (and a key configured), a socket without any token gets 401;
// - without --auth-required, a socket without a token is accepted (anonymous).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { withServer, killAll } from './lib/server.mjs';
import { tryOpen, connect } from './lib/client.mjs';

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
    clients.push(await connect(s, '/ws/a'));
  }));

test('--auth-required: no token -> 401', () =>
  withServer(['--auth-required', '--jwt-secret', 'integration-secret'], async (s, clients) => {
    await expect401(s, clients, '/ws/a');
    await expect401(s, clients, '/ws');
    await expect401(s, clients, `/ws/a?token=${forged}`);
    await expect401(s, clients, '/ws/a?token=');
  }));
