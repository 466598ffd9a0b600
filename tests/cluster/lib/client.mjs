// WebSocket clients for the cluster harness: the shared ones (../../support/node/client.mjs) bound to
// the npm `ws` package of this suite. connect(pod, path) opens pod.url + path and consumes the
// welcome (client.welcome, .connId, .userId, .pod); see the shared module for next(), nextN(),
// seen(), roundTrip(), join() and leave(). redisBarrier() orders a test against the pods' Redis feed.

import WebSocket from 'ws';
import { clientKit } from '../../support/node/client.mjs';

export { Client, match, closeAll, pool } from '../../support/node/client.mjs';

const kit = clientKit(WebSocket);
export const { open } = kit;

/** Open pod.url + path and consume the welcome. */
export async function connect(pod, path = '/ws', opts = {}) {
  const c = await kit.connect(pod, path, opts);
  c.pod = pod;
  return c;
}

let barrierSeq = 0;

/**
 * A barrier through Redis: PUBLISH a chat {barrier: tag} on `channel` (a third-party publish) and
 * wait until every client in `members` has it. Redis runs commands one at a time and each pod's
 * subscriber reads in order, so once it arrives, anything PUBLISHed on that channel before it (for
 * example a pod's echo of its own message) has reached the pod too.
 */
export async function redisBarrier(redis, channel, members, timeoutMs = 5000) {
  const tag = `barrier-${process.pid}-${++barrierSeq}`;
  await redis.publish(channel, { type: 'chat', data: { barrier: tag } });
  await Promise.all(members.map((m) => m.next((x) => x.data?.barrier === tag, timeoutMs, `Redis barrier on ${channel} at ${m.pod?.podId ?? m.url}`)));
}
