// Origin checks on the WebSocket upgrade:
// - default (same origin): an Origin equal to http://<Host> or https://<Host> is accepted (host names
//   without case; ":80" / ":443" written out or not), any other Origin -> 403, no Origin header
//   (non-browser client) -> accepted;
// - --allowed-origins http://a.example,http://b.example: exact match only (no prefix, port or scheme
//   variants), no Origin still accepted;
// - --allowed-origins '*': any Origin, "null" included;
// - entries are taken as browsers write origins: 'HTTPS://App.Example:443' allows
//   https://app.example (an entry that could never match, with a path or no scheme, is refused at
//   start: startup.test.mjs).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { withServer, killAll } from './lib/server.mjs';
import { tryOpen } from './lib/client.mjs';

after(killAll);


async function expectAccepted(s, clients, origin) {
  const headers = origin === undefined ? {} : { Origin: origin };
  const r = await tryOpen(`${s.url}/ws/o`, { headers });
  if (r.ok) clients.push(r.client);
  assert.equal(r.ok, true, `Origin ${origin} should be accepted, got ${r.status} ${r.body ?? ''}`);
  const w = await r.client.next(() => true);
  assert.equal(w.data?.event, 'welcome');
}

async function expectForbidden(s, clients, origin) {
  const r = await tryOpen(`${s.url}/ws/o`, { headers: { Origin: origin } });
  if (r.ok) clients.push(r.client);
  assert.equal(r.ok, false, `Origin ${origin} should be refused`);
  assert.equal(r.status, 403, `Origin ${origin} -> ${r.status}`);
}

test('default: same origin accepted, other origins 403, no Origin accepted', () =>
  withServer([], async (s, clients) => {
    // the ws client sends Host: 127.0.0.1:<port>
    await expectAccepted(s, clients, `http://127.0.0.1:${s.port}`);
    await expectAccepted(s, clients, undefined);
    await expectForbidden(s, clients, 'http://evil.example');
    await expectForbidden(s, clients, `http://127.0.0.1:${s.port + 1 > 65535 ? 1 : s.port + 1}`);
    await expectForbidden(s, clients, 'null');
  }));

test('default: host names compare without case, and a default port written out is the same origin', () =>
  withServer([], async (s, clients) => {
    const attempt = async (host, origin) => {
      const r = await tryOpen(`${s.url}/ws/o`, { headers: { Host: host, Origin: origin } });
      if (r.ok) clients.push(r.client);
      return r.ok ? 101 : r.status;
    };
    // A proxy that forwards Host with the port it listens on, or in capitals.
    assert.equal(await attempt('example.com:80', 'http://example.com'), 101);
    assert.equal(await attempt('EXAMPLE.com', 'http://example.com'), 101);
    assert.equal(await attempt('example.com', 'http://Example.COM:80'), 101);
    assert.equal(await attempt('example.com:443', 'https://example.com'), 101);
    assert.equal(await attempt('example.com:443', 'http://example.com'), 403);
    assert.equal(await attempt('example.com:8080', 'http://example.com'), 403);
    assert.equal(await attempt('example.com:80', 'http://example.com.evil'), 403);
  }));

test('--allowed-origins list: exact match only', () =>
  withServer(['--allowed-origins', 'http://a.example,http://b.example'], async (s, clients) => {
    await expectAccepted(s, clients, 'http://a.example');
    await expectAccepted(s, clients, 'http://b.example');
    await expectAccepted(s, clients, undefined);
    for (const o of [
      'http://c.example',
      'https://a.example',
      'http://a.example:8080',
      'http://a.example.evil',
      'http://xa.example',
      'http://a.example,http://b.example',
      'null',
    ]) {
      await expectForbidden(s, clients, o);
    }
  }));

test("--allowed-origins '*': any Origin, null included", () =>
  withServer(['--allowed-origins', '*'], async (s, clients) => {
    await expectAccepted(s, clients, 'http://anything.example');
    await expectAccepted(s, clients, 'https://other.example:8443');
    await expectAccepted(s, clients, 'null');
    await expectAccepted(s, clients, undefined);
  }));

test('--allowed-origins entries are read as browsers write origins: scheme and host in lower case, no default port', () =>
  withServer(['--allowed-origins', 'HTTPS://App.Example:443,http://b.example:80,http://c.example:8080'], async (s, clients) => {
    await expectAccepted(s, clients, 'https://app.example');
    await expectAccepted(s, clients, 'http://b.example');
    await expectAccepted(s, clients, 'http://c.example:8080');
    await expectForbidden(s, clients, 'http://c.example');
    await expectForbidden(s, clients, 'http://app.example');
  }));
