// Pods logged in as a least-privilege Redis ACL user: the rule in docs/OPERATIONS.md ("Redis
// access"). Two pods on one redis-server whose default user is off, each with
// redis://realtime:<password>@host:port. Room messages cross the pods with one numbering, a resume
// on the other pod replays from the shared history, a quiet room gets its position, presence and
// room counts are shared, a user notification and a global broadcast reach every pod, a room of an
// earlier Redis run is dropped by the restart check; and Redis denied nothing (ACL LOG stays
// empty), so no feature silently lost a command. A user that may not
// run CLIENT (some proxies and managed services refuse it) connects without connection names, and
// one that may not run INFO without the restart check.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, waitFor } from './lib/redis.mjs';
import { startPods } from './lib/server.mjs';
import { connect, closeAll } from './lib/client.mjs';
import { get, publish, presenceList } from './lib/http.mjs';

// The rule as OPERATIONS.md gives it (split on spaces for ACL SETUSER).
const RULE = 'on >rt-secret resetkeys ~realtime:* resetchannels &realtime:* -@all +@read +@write +@pubsub +@scripting +@connection -@dangerous +info';

const chat = (text) => (m) => m.type === 'chat' && m.data?.text === text;

test('pods logged in as the documented ACL user: every cross-pod feature works and Redis denies nothing', { timeout: 60_000 }, async () => {
  const redis = await startRedis();
  const clients = [];
  let pods = [];
  try {
    await redis.cmd('ACL', 'SETUSER', 'realtime', ...RULE.split(' '));
    await redis.cmd('ACL', 'LOG', 'RESET');
    // A room numbered on an earlier Redis run: the restart check drops it as this user.
    await redis.cmd('HSET', 'realtime:ids:old-room', 'oldepoch', '5');
    await redis.cmd('RPUSH', 'realtime:history:old-room', 'item');
    await redis.cmd('SET', 'realtime:run', 'an-earlier-run');
    const admin = await redis.link();
    // From here on only the ACL user can get in (the admin link stays logged in as default).
    await admin.cmd('ACL', 'SETUSER', 'default', 'off');
    try {
      pods = await startPods({ ...redis, url: `redis://realtime:rt-secret@127.0.0.1:${redis.port}` }, 2, { prefix: 'acl' });
      const [a, b] = pods;
      assert.deepEqual(await admin.cmd('EXISTS', 'realtime:ids:old-room', 'realtime:history:old-room'), 0, 'the earlier run\'s room dropped');
      const room = 'acl-room';
      const onA = await connect(a, `/ws/${room}`);
      const onB = await connect(b, `/ws/${room}`);
      clients.push(onA, onB);
      assert.match(onA.welcome.data.last_id, /^[0-9a-z]{8}-0$/, `the quiet room's position: ${JSON.stringify(onA.welcome)}`);
      onA.send({ type: 'chat', data: { text: 'from-a' } });
      const first = await onB.next(chat('from-a'), 5000, 'a socket on a -> b');
      assert.equal((await publish(b, { room, text: 'from-b-api' })).status, 202);
      const second = await onA.next(chat('from-b-api'), 5000, 'the API of b -> a');
      assert.equal(second.id.split('-')[0], first.id.split('-')[0], 'one numbering');

      const again = await connect(b, `/ws/${room}?last_id=${encodeURIComponent(first.id)}`);
      clients.push(again);
      assert.equal((await again.next(chat('from-b-api'), 5000, 'replayed')).id, second.id);
      const rec = await again.next((m) => m.data?.event === 'recovered', 5000, 'recovered');
      assert.deepEqual([rec.data.recovered, rec.data.replayed], [true, 1]);

      await waitFor(async () => (await presenceList(a, room)).length === 3, { message: 'presence of both pods on a' });
      await waitFor(async () => {
        const r = await get(b, '/api/rooms');
        return r.json?.rooms?.find((x) => x.room === room)?.members === 3;
      }, { message: 'room counts of both pods on b' });

      const user = await connect(b, '/ws');
      clients.push(user);
      assert.equal((await publish(a, { user: user.userId, type: 'notification', data: { n: 1 } })).status, 202);
      await user.next((m) => m.data?.n === 1, 5000, 'a user notification from a');
      assert.equal((await publish(a, { type: 'chat', data: { all: 1 } })).status, 202);
      await user.next((m) => m.data?.all === 1, 5000, 'a global broadcast from a');

      for (const pod of pods) assert.equal((await get(pod, '/readyz')).status, 200, `${pod.podId} ready`);
      assert.deepEqual(await admin.cmd('ACL', 'LOG'), [], 'Redis denied no command, key or channel');
    } finally {
      admin.close();
    }
  } finally {
    closeAll(clients);
    await Promise.all(pods.map((p) => p.stop()));
    await redis.stop();
  }
});

// A Redis (or a proxy, or an ACL) that refuses CLIENT and INFO: the connections' names only label
// them in CLIENT LIST, so the pods connect without them, say so once per connection, and work; INFO
// only serves the check that Redis did not restart with older data, which the pods then skip,
// saying so once.
test('pods whose Redis user may not run CLIENT nor INFO connect without a connection name nor the restart check, and work', { timeout: 60_000 }, async () => {
  const redis = await startRedis();
  const clients = [];
  let pods = [];
  try {
    await redis.cmd('ACL', 'SETUSER', 'noclient', ...RULE.replace('>rt-secret', '>nc-secret').split(' '), '-client', '-info');
    pods = await startPods({ ...redis, url: `redis://noclient:nc-secret@127.0.0.1:${redis.port}` }, 2, { prefix: 'acl-nc' });
    const [a, b] = pods;
    const onB = await connect(b, '/ws/nc-room');
    clients.push(onB);
    assert.equal((await publish(a, { room: 'nc-room', text: 'across' })).status, 202);
    await onB.next(chat('across'), 5000, 'a -> b');
    for (const pod of pods) {
      assert.equal((await get(pod, '/readyz')).status, 200, `${pod.podId} ready`);
      assert.match(pod.stderr, /CLIENT SETNAME \S+ refused/);
      assert.equal(pod.stderr.match(/INFO refused \(NOPERM/g)?.length, 1, 'said once');
    }
  } finally {
    closeAll(clients);
    await Promise.all(pods.map((p) => p.stop()));
    await redis.stop();
  }
});
