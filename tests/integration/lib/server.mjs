// The integration suite's server harness: the shared one (../../support/node/server.mjs) plus
// withServer(args, fn), which runs fn(server, clients) against a fresh server, then closes the
// clients and stops the server (asserting exit 0 when fn passed; when fn failed its error is the one
// reported).

import { startServer } from '../../support/node/server.mjs';
import { closeAll } from '../../support/node/client.mjs';

export { startServer, runExpectingExit, killAll, serverBinary } from '../../support/node/server.mjs';

/**
 * Start a server with `args`, run fn(server, clients), then close every client pushed into `clients`
 * (ws Clients or RawSockets) and stop the server. A failure of fn is reported as is (with the
 * server's exit trouble, if any, appended); when fn passed, stop() asserts a clean exit.
 */
export async function withServer(args, fn, opts = {}) {
  const s = await startServer(args, opts);
  const clients = [];
  let failure;
  try {
    await fn(s, clients);
  } catch (e) {
    failure = e;
  }
  closeAll(clients);
  if (!failure) {
    await s.stop();
    return;
  }
  try {
    await s.stop();
  } catch (stopErr) {
    failure.message += `\n(also: ${stopErr.message.split('\n')[0]})`;
  }
  if (s.exitInfo && s.exitInfo.signal && s.exitInfo.signal !== 'SIGTERM') {
    failure.message += `\n(server died: signal ${s.exitInfo.signal}; stderr tail: ${s.stderr.slice(-500)})`;
  }
  throw failure;
}
