// A cluster shared by the tests of one file: a redis-server and `n` pods started before the first
// test and stopped after the last (each pod must exit 0 on SIGTERM). onReady({redis, pods}) runs
// once they are up; member(pod, path) opens a client that is closed at the end.

import { before, after } from 'node:test';
import { startRedis, killAllRedis } from './redis.mjs';
import { startPods, killAllPods } from './server.mjs';
import { connect, closeAll } from './client.mjs';

export function clusterFixture(n, podOptions, onReady) {
  let redis;
  let pods = [];
  const clients = [];
  before(async () => {
    redis = await startRedis();
    pods = await startPods(redis, n, podOptions);
    onReady({ redis, pods });
  });
  after(async () => {
    closeAll(clients);
    try {
      await Promise.all(pods.map((p) => p.stop()));
    } finally {
      killAllPods();
      await redis?.stop();
      killAllRedis();
    }
  });
  return async function member(pod, path) {
    const c = await connect(pod, path);
    clients.push(c);
    return c;
  };
}
