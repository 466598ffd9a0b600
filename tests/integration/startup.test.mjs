// Start-up and configuration of realtime-server:
// - `--listen 127.0.0.1:0` prints `listening on HOST:PORT` with the real (non-zero) port, which serves;
// - a bad flag (`--bogus`) or a bad value (`--threads abc`, `--listen nonsense`, `--max-connections -1`)
//   exits with status 2, names the flag on stderr, and starts nothing (no `listening on`); so do a
//   --pong-timeout not longer than --ping-interval, a --listen host that is not an IP address, and a
//   --jwt-public-key file that holds nothing; an address that cannot be bound exits 1, naming --listen;
// - every flag can come from the environment: REALTIME_MAX_CONNECTIONS and REALTIME_API_KEY are
//   honoured, and the flag wins over the environment variable;
// - the process that prints the line is the server binary itself (no forking wrapper);
// - --threads 1 serves; --pod-id names the pod in /metrics; --log-format json writes JSON log lines;
//   a bad --log-format / --log-level value exits 2, as do a NaN rate, an empty --pod-id and an
//   --allowed-origins entry no browser could send;
// - --log-level warning (and REALTIME_LOG_LEVEL=warning) is warn, the name the log lines print;
//   --threads 0 is the default: one per CPU of the affinity mask (one under taskset -c 0); --help shows no default outside an option's
//   range; --version prints the project's version and exits 0.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { withServer, runExpectingExit, killAll, serverBinary } from './lib/server.mjs';
import { startProcess, serverEnv, LISTENING_RE } from '../support/node/server.mjs';
import { connect, tryOpen, waitFor } from './lib/client.mjs';
import fs from 'node:fs';
import os from 'node:os';
import { get, publish, metrics } from '../support/node/http.mjs';

after(killAll);

test('prints "listening on HOST:PORT" with the real port, and serves on it', () =>
  withServer([], async (s, clients) => {
    assert.match(s.stdout, /listening on 127\.0\.0\.1:\d+/);
    assert.ok(s.port > 0 && s.port < 65536, `real port expected, got ${s.port}`);
    const r = await get(s, '/healthz');
    assert.equal(r.status, 200);
    clients.push(await connect(s, '/ws/lobby'));
    // the spawned process is the server binary itself, and it owns the listening socket
    assert.equal(fs.realpathSync(`/proc/${s.proc.pid}/exe`), fs.realpathSync(s.bin));
  }));

const badInvocations = [
  { args: ['--listen', '127.0.0.1:0', '--bogus'], flag: 'bogus' },
  { args: ['--listen', '127.0.0.1:0', '--threads', 'abc'], flag: 'threads' },
  { args: ['--listen', '127.0.0.1:0', '--threads', '1025'], flag: 'threads' },
  { args: ['--listen', 'nonsense'], flag: 'listen' },
  { args: ['--listen', 'example.invalid:0'], flag: 'listen' }, // an IP address or localhost
  { args: ['--listen', '127.0.0.1:0', '--pod-id', 'a:rooms'], flag: 'pod-id' }, // ':' parts Redis keys
  // A key file that holds nothing (empty, or a directory) is no key, not "no JWT configured".
  { args: ['--listen', '127.0.0.1:0', '--jwt-public-key', '/dev/null'], flag: 'jwt-public-key' },
  { args: ['--listen', '127.0.0.1:0', '--jwt-public-key', os.tmpdir()], flag: 'jwt-public-key' },
  { args: ['--listen', '127.0.0.1:0', '--max-connections', '-1'], flag: 'max-connections' },
  { args: ['--listen', '127.0.0.1:0', '--log-format', 'xml'], flag: 'log-format' },
  { args: ['--listen', '127.0.0.1:0', '--log-level', 'loud'], flag: 'log-level' },
  { args: ['--listen', '127.0.0.1:0', '--history-bytes', '1000'], flag: 'history-bytes' }, // below 64 KiB
  // NaN passes a range check (no comparison with it is true): refused all the same.
  { args: ['--listen', '127.0.0.1:0', '--rate-limit', 'nan'], flag: 'rate-limit' },
  { args: ['--listen', '127.0.0.1:0', '--rate-burst', 'nan'], flag: 'rate-burst' },
  { args: ['--listen', '127.0.0.1:0', '--pod-id', ''], flag: 'pod-id' },
  // Origins that no browser sends: a path (or a trailing '/'), no scheme.
  { args: ['--listen', '127.0.0.1:0', '--allowed-origins', 'http://a.example/'], flag: 'allowed-origins' },
  { args: ['--listen', '127.0.0.1:0', '--allowed-origins', 'http://a.example,a.example'], flag: 'allowed-origins' },
  // An idle socket would be closed for silence before it was ever pinged.
  { args: ['--listen', '127.0.0.1:0', '--ping-interval', '3', '--pong-timeout', '3'], flag: 'pong-timeout' },
  { args: ['--listen', '127.0.0.1:0', '--ping-interval', '90'], flag: 'pong-timeout' }, // default pong timeout 60 s
  { args: ['--listen', '127.0.0.1:0', '--connect-rate', '-1'], flag: 'connect-rate' },
  { args: ['--listen', '127.0.0.1:0', '--connect-burst', '0'], flag: 'connect-burst' },
  // No TLS to Redis: the refusal says what to do instead.
  { args: ['--listen', '127.0.0.1:0', '--redis', 'rediss://127.0.0.1:6380'], flag: '--redis', says: /TLS tunnel/ },
  { args: ['--listen', '127.0.0.1:0', '--redis', 'redis://'], flag: '--redis', says: /--redis: Redis URL has no host/ },
];

test('a --listen address that cannot be bound (in use) -> exit 1, stderr names --listen', () =>
  withServer([], async (s) => {
    const r = await runExpectingExit(['--listen', `127.0.0.1:${s.port}`], { timeoutMs: 10_000 });
    assert.equal(r.code, 1, `exit status; stderr: ${r.stderr.slice(0, 500)}`);
    assert.ok(r.stderr.includes('--listen'), JSON.stringify(r.stderr.slice(0, 500)));
    assert.doesNotMatch(r.stdout, /listening on/);
  }));

for (const { args, flag, says } of badInvocations) {
  test(`bad invocation ${args.slice(args.length > 2 ? 2 : 0).join(' ')} -> exit 2, stderr names --${flag}, nothing listening`, async () => {
    const r = await runExpectingExit(args, { timeoutMs: 5000 });
    assert.equal(r.timedOut, false, `server kept running; stdout: ${r.stdout.slice(0, 500)}`);
    assert.equal(r.signal, null);
    assert.equal(r.code, 2, `exit status; stderr: ${r.stderr.slice(0, 500)}`);
    assert.ok(r.stderr.includes(flag), `stderr should name "${flag}": ${JSON.stringify(r.stderr.slice(0, 500))}`);
    if (says) assert.match(r.stderr, says);
    assert.doesNotMatch(r.stdout + r.stderr, /listening on/);
  });
}

test('REALTIME_MAX_CONNECTIONS from the environment is honoured', () =>
  withServer([], async (s, clients) => {
    clients.push(await connect(s, '/ws/env'));
    const r = await tryOpen(`${s.url}/ws/env`);
    if (r.ok) clients.push(r.client);
    assert.equal(r.ok, false, 'second socket must be refused with REALTIME_MAX_CONNECTIONS=1');
    assert.equal(r.status, 503);
  }, { env: { REALTIME_MAX_CONNECTIONS: '1' } }));

test('--max-connections flag wins over REALTIME_MAX_CONNECTIONS', () =>
  withServer(['--max-connections', '2'], async (s, clients) => {
    clients.push(await connect(s, '/ws/env'));
    clients.push(await connect(s, '/ws/env')); // allowed by the flag (2), not by the env (1)
    const r = await tryOpen(`${s.url}/ws/env`);
    if (r.ok) clients.push(r.client);
    assert.equal(r.ok, false, 'third socket must be refused with --max-connections 2');
    assert.equal(r.status, 503);
  }, { env: { REALTIME_MAX_CONNECTIONS: '1' } }));

test('REALTIME_API_KEY from the environment protects the publish API', () =>
  withServer([], async (s) => {
    assert.equal((await publish(s, { room: 'r', text: 'x' })).status, 401);
    assert.equal((await publish(s, { room: 'r', text: 'x' }, { headers: { Authorization: 'Bearer envkey' } })).status, 202);
  }, { env: { REALTIME_API_KEY: 'envkey' } }));

test('--threads 1 serves chat', () =>
  withServer(['--threads', '1'], async (s, clients) => {
    const a = await connect(s, '/ws/t1');
    const b = await connect(s, '/ws/t1');
    clients.push(a, b);
    a.send({ type: 'chat', data: { text: 'one thread' } });
    await b.next((m) => m.type === 'chat' && m.data?.text === 'one thread');
  }));

test('a --jwt-secret shorter than 32 bytes is warned about at start; one of 32 is not', async () => {
  await withServer(['--jwt-secret', 'short'], async (s) => {
    await waitFor(() => /with \d+ threads/.test(s.stderr), { message: 'the serving line' });
    assert.match(s.stderr, /--jwt-secret is 5 bytes: HS256 needs at least 32/);
  });
  await withServer(['--jwt-secret', 'x'.repeat(32)], async (s) => {
    await waitFor(() => /with \d+ threads/.test(s.stderr), { message: 'the serving line' });
    assert.doesNotMatch(s.stderr, /--jwt-secret is/);
  });
});

test('--threads 0 is the default: one thread per usable CPU', () =>
  withServer(['--threads', '0'], async (s, clients) => {
    clients.push(await connect(s, '/ws/t0'));
    await waitFor(() => /with \d+ threads/.test(s.stderr), { message: 'the serving line' });
  }));

test('the default thread count keeps to the CPU affinity mask (taskset -c 0: one thread)', { skip: !fs.existsSync('/usr/bin/taskset') && 'no taskset' }, async () => {
  const s = await startProcess('/usr/bin/taskset', ['-c', '0', serverBinary(), '--listen', '127.0.0.1:0'],
    { env: serverEnv(), ready: LISTENING_RE, what: 'server' });
  try {
    const line = await waitFor(() => /with (\d+) threads/.exec(s.stderr), { message: () => `the serving line: ${s.stderr}` });
    assert.equal(Number(line[1]), 1, line[0]);
  } finally {
    await s.stop();
  }
});

for (const [how, args, env] of [['--log-level warning', ['--log-level', 'warning'], {}],
  ['REALTIME_LOG_LEVEL=warning', [], { REALTIME_LOG_LEVEL: 'warning' }]]) {
  test(`${how} is accepted as warn: info lines are left out`, () =>
    withServer(args, async (s, clients) => {
      clients.push(await connect(s, '/ws/quiet'));
      assert.doesNotMatch(s.stderr, / info \[/, 'no info line at level warning');
    }, { env }));
}

test('--help: every default shown is within its option\'s range; --version prints the version, exit 0', async () => {
  const help = await runExpectingExit(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--threads/);
  assert.match(help.stdout, /--version/);
  for (const m of help.stdout.matchAll(/(--[\w-]+)[^\n]*? in \[([\d.e+-]+) - ([\d.e+-]+)\]=([\d.e+-]+)/g)) {
    const [, flag, low, high, value] = m;
    assert.ok(Number(value) >= Number(low) && Number(value) <= Number(high), `${flag}: default ${value} outside [${low} - ${high}]`);
  }
  const version = await runExpectingExit(['--version']);
  assert.equal(version.code, 0, version.stderr);
  const cmake = fs.readFileSync(new URL('../../CMakeLists.txt', import.meta.url), 'utf8');
  const expected = /project\(realtime VERSION (\S+)/.exec(cmake)[1];
  assert.equal(version.stdout.trim(), `realtime-server ${expected}`);
});

test('--pod-id names the pod in /metrics', () =>
  withServer(['--pod-id', 'pod-under-test-7'], async (s) => {
    const m = await metrics(s);
    assert.match(m.text, /pod-under-test-7/);
  }));

test('--log-format json: log lines are JSON objects', () =>
  withServer(['--log-format', 'json', '--log-level', 'debug', '--pod-id', 'json-pod'], async (s, clients) => {
    const a = await connect(s, '/ws/logs');
    clients.push(a);
    a.close();
    await a.expectClose();
    await s.stop();
    const lines = (s.stdout + '\n' + s.stderr)
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !/^listening on \S+:\d+$/.test(l));
    assert.ok(lines.length > 0, 'some log lines were written');
    for (const l of lines) {
      let v;
      assert.doesNotThrow(() => (v = JSON.parse(l)), `not a JSON log line: ${l.slice(0, 200)}`);
      assert.equal(typeof v, 'object');
      assert.equal(v.pod, 'json-pod');
      // UTC whatever TZ says: within a minute of now.
      assert.ok(Math.abs(Date.parse(v.time) - Date.now()) < 60_000, `time ${v.time} is not UTC`);
    }
  }, { env: { TZ: 'America/New_York' } }));

test('text log lines give the time in UTC and name the pod', () =>
  withServer(['--pod-id', 'text-pod', '--log-level', 'debug'], async (s, clients) => {
    const a = await connect(s, '/ws/logs');
    clients.push(a);
    a.close();
    await a.expectClose();
    await s.stop();
    const lines = s.stderr.split('\n').filter((l) => l.trim());
    assert.ok(lines.length > 0, 'some log lines were written');
    for (const l of lines) {
      const m = /^(\S+Z) \S+ \[text-pod\] /.exec(l);
      assert.ok(m, `a log line without the time or the pod: ${l.slice(0, 200)}`);
      assert.ok(Math.abs(Date.parse(m[1]) - Date.now()) < 60_000, `time ${m[1]} is not UTC`);
    }
  }, { env: { TZ: 'America/New_York' } }));

test('REDIS_URL as the seed gives it (host:port, no scheme) is taken; a bad one is named', async () => {
  const bad = await runExpectingExit([], { timeoutMs: 5000, env: { REDIS_URL: 'http://x:1' } });
  assert.equal(bad.code, 2, bad.stderr);
  assert.ok(bad.stderr.includes('REDIS_URL'), bad.stderr);
  // host:port of nothing listening: the pod starts, unready, and says whom it tries to reach.
  await withServer([], async (s) => {
    const r = await get(s, '/readyz');
    assert.equal(r.status, 503);
  }, { env: { REDIS_URL: '127.0.0.1:1' } });
});
