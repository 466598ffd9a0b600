// The integration suite's WebSocket clients: the shared ones (../../support/node/client.mjs) bound
// to the npm `ws` package of this suite.

import WebSocket from 'ws';
import { clientKit } from '../../support/node/client.mjs';

export { Client, ID_RE, TS_RE, sleep, waitFor, match, idsIncreasing, closeAll } from '../../support/node/client.mjs';
export const { tryOpen, open, connect } = clientKit(WebSocket);
