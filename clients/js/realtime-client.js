// realtime-client: the browser and Node client for realtime-server.
//
// One WebSocket per client. It opens /ws/{first room} (or /ws with no rooms, or when the first is
// "." or "..": see pathRoom) and joins the other rooms in-band, remembers each room's resume point
// (the position the server gives on joining, then the id of each message of the room received),
// reconnects by itself with exponential backoff and full jitter, and on every reconnect asks the
// server to replay what it missed (?last_id= for the socket's room, "last_id" on join for the
// others). The server answers a resume with a `system` "recovered" message, surfaced here as the
// `recovered` event, so an application can tell the user when messages may be missing.
//
// Self-contained ES module with no imports: the server embeds this file verbatim and serves it at
// /realtime-client.js. Browsers use globalThis.WebSocket; Node 20 has none, so pass a constructor
// (the `ws` package) as the `WebSocket` option.

/** Room names accepted by the server: 1 to 128 characters of A-Z a-z 0-9 _ - . : */
export const ROOM_NAME_PATTERN = /^[A-Za-z0-9_.:-]{1,128}$/;

/** Defaults, overridable in the constructor options (but rateLimit). */
export const DEFAULTS = Object.freeze({
  backoff: Object.freeze({ initialMs: 500, maxMs: 30000 }),
  stableAfterMs: 5000, // a connection up this long resets the backoff
  connectTimeoutMs: 15000, // a socket still opening after this is abandoned and retried
  pingTimeoutMs: 10000, // ping() rejects when no pong arrives in time
  heartbeatMs: 30000, // application ping while open, to notice dead links; 0 turns it off
  maxQueue: 100, // chat messages waiting to be sent; past it send() throws "queue_full"
  // The server's per-socket rate limit until a welcome gives the socket's own (not an option: the
  // server's defaults).
  rateLimit: Object.freeze({ perSecond: 20, burst: 40 }),
});

// WebSocket readyState values (the same in browsers and in `ws`).
const WS_OPEN = 1;
// A send on a socket that has brought nothing for this long (or heartbeatMs, if shorter) asks the
// server whether the link still answers (see _probe).
const SEND_PROBE_AFTER_MS = 5000;
// The ping timeout when the network comes back (`online`): a socket on the old route is dead.
const ONLINE_PROBE_MS = 3000;

// Ids remembered per room to drop an envelope delivered twice (e.g. replay overlapping live traffic).
const SEEN_IDS_PER_ROOM = 256;
// Rooms left whose recent ids are still remembered, so that a message already delivered before a
// leave is not delivered again after a re-join (the server may send a re-joining socket messages
// from just before its join, e.g. right after Redis lost its data).
const SEEN_LEFT_ROOMS = 64;

// system data.event values that concern one socket, not the room's history (isSocketEvent).
const SOCKET_EVENTS = new Set(['welcome', 'joined', 'recovered', 'token_expiring', 'token_refreshed']);

// Ids that are not a room history's <epoch>-<seq> (decimal): user notifications, global and
// per-socket messages have a letter after the dash, then a base-36 number (<tag>-u<n>, -g<n>, -d<n>;
// -u8v, say), or name a position behind a dot ("<epoch>-<seq>.u<tag><n>"; presence and the room's
// system events, ".p" / ".d", are not taken either: see _track). Only the room's own messages,
// and the positions of welcome, joined and recovered, move a resume point.
const NOT_HISTORY_ID = /-[a-z][0-9a-z]*$|\.[a-z][0-9a-z]*$/;
// A room history's own id: <epoch>-<seq>, the epoch base 36, the number decimal.
const HISTORY_ID = /^[0-9a-z]+-[0-9]+$/;
// Ids of what was sent to the user (Hub::send_to_user, the publish API's "user"): <tag>-u<n>, or
// a position named behind ".u<tag><n>".
const USER_ID = /[-.]u[0-9a-z]*$/;

// Frames sent keep this much of the server's bucket spare, so that frames bunched up on the way
// (a delay on the network) still find tokens there: one, plus this many seconds of its rate.
const RATE_SPARE_TOKENS = 1;
const RATE_SPARE_SECONDS = 0.1;
// The most rooms the server lets one socket be in (its presence limit allows a change in as many).
const MAX_ROOMS_PER_SOCKET = 64;
// A rate_limited error this soon after a status change may have been its refusal (_handleMessage).
const PRESENCE_RESEND_WINDOW_MS = 5000;

// A socket asked to close gets this long to finish the close handshake; then it is dropped (the
// `ws` package's terminate(): a peer that stopped answering would hold it for 30 s).
const CLOSE_GRACE_MS = 2000;

// The history (epoch) of room message id "<epoch>-<seq>".
function epochOf(id) {
  const dash = id.lastIndexOf('-');
  return dash < 0 ? '' : id.slice(0, dash);
}

// How many histories a room's resume point remembers having left.
const RETIRED_EPOCHS = 4;

// Whether room message id `id` ("<epoch>-<seq>") comes before `current` in the same history: a
// message still on its way when the server gave the room's position, or one delivered late. The
// resume point does not move back for it.
function behind(id, current) {
  if (typeof current !== 'string') return false;
  const a = id.lastIndexOf('-');
  const b = current.lastIndexOf('-');
  if (a < 0 || b < 0 || id.slice(0, a) !== current.slice(0, b)) return false;
  const seq = Number(id.slice(a + 1));
  const currentSeq = Number(current.slice(b + 1));
  return Number.isSafeInteger(seq) && Number.isSafeInteger(currentSeq) && seq < currentSeq;
}

/**
 * Full-jitter exponential backoff delay: a random whole number of milliseconds in
 * [0, min(maxMs, initialMs * 2^attempt)). Pure apart from `random`, which must return [0, 1).
 */
export function backoffDelay(attempt, { initialMs = DEFAULTS.backoff.initialMs, maxMs = DEFAULTS.backoff.maxMs } = {}, random = Math.random) {
  const exp = Math.min(Math.max(0, attempt | 0), 52); // 2^52 already exceeds any sensible cap
  const ceiling = Math.min(maxMs, initialMs * 2 ** exp);
  return Math.min(Math.floor(random() * ceiling), Math.max(0, ceiling - 1));
}

/** A backoff schedule: next() yields the delay for the coming attempt; reset() starts over. */
export class Backoff {
  constructor({ initialMs = DEFAULTS.backoff.initialMs, maxMs = DEFAULTS.backoff.maxMs } = {}, random = Math.random) {
    if (!(initialMs > 0) || !(maxMs >= initialMs)) {
      throw new RangeError('backoff needs 0 < initialMs <= maxMs');
    }
    this.initialMs = initialMs;
    this.maxMs = maxMs;
    this.random = random;
    this.attempt = 0;
  }

  next() {
    const delay = backoffDelay(this.attempt, this, this.random);
    this.attempt += 1;
    return delay;
  }

  reset() {
    this.attempt = 0;
  }
}

/** An Error with a machine-readable `code` (and, for server errors, the envelope). */
export class RealtimeError extends Error {
  constructor(code, message, extra = {}) {
    super(message || code);
    this.name = 'RealtimeError';
    this.code = code;
    Object.assign(this, extra);
  }
}

/**
 * Builds the socket URL: base + /ws[/room] with optional token and last_id, URL-encoded.
 * `base` may be ws://, wss://, http:// or https://; a trailing slash is ignored. A query string of
 * `base` (?tenant=x, say) is kept as it is, the client's parameters after it. Throws RangeError
 * for room "." or "..", which no URL path carries (the client joins those in-band).
 */
export function buildSocketUrl(base, room, { token, lastId } = {}) {
  if (room && pathRoom(room) === undefined) {
    throw new RangeError(`room ${JSON.stringify(room)} cannot be a URL path segment: join it in-band`);
  }
  const url = new URL(String(base));
  if (url.protocol === 'http:') url.protocol = 'ws:';
  else if (url.protocol === 'https:') url.protocol = 'wss:';
  const path = url.pathname.replace(/\/+$/, '');
  url.pathname = `${path}/ws${room ? `/${room}` : ''}`;
  const kept = url.search.slice(1);
  url.search = '';
  url.hash = '';
  const params = new URLSearchParams();
  if (isPresent(token)) params.set('token', String(token));
  if (isPresent(lastId)) params.set('last_id', String(lastId));
  const query = [kept, params.toString()].filter(Boolean).join('&');
  return query ? `${url.href}?${query}` : url.href;
}

// The server's own event for this socket: a system message with one of SOCKET_EVENTS, an id that
// is not a room history's <epoch>-<seq>, and the data the server gives that event. The
// application's system messages in a room (published with `"event": "welcome"`, say) have history
// ids, or, numbered by a pod while Redis was away or PUBLISHed by another program, the data the
// application gave them: they are the room's traffic like any other.
function isSocketEvent(msg) {
  const data = msg.data;
  if (msg.type !== 'system' || !data || typeof data !== 'object' || !SOCKET_EVENTS.has(data.event)) return false;
  if (HISTORY_ID.test(String(msg.id))) return false;
  switch (data.event) {
    case 'welcome':
      return typeof data.connection_id === 'string';
    case 'joined':
      return Object.keys(data).every((key) => key === 'event' || key === 'last_id');
    case 'recovered':
      return typeof data.recovered === 'boolean';
    case 'token_refreshed': // the answer to the client's own auth
      return Object.keys(data).every((key) => key === 'event');
    default: // token_expiring
      return typeof data.expires_at === 'string';
  }
}

function isPresent(value) {
  return value !== undefined && value !== null && value !== '' && value !== 'undefined' && value !== 'null';
}

// The room to open the socket on, in the URL path: `room`, or none for "." and "..", which a URL
// path cannot carry (browsers, Node's URL and proxies resolve /ws/. and /ws/.. as dot segments,
// %2E included); such a room is joined in-band, with the same welcome, resume and order guarantees.
function pathRoom(room) {
  return room === '.' || room === '..' ? undefined : room;
}

function checkRoom(room) {
  if (typeof room !== 'string' || !ROOM_NAME_PATTERN.test(room)) {
    throw new TypeError(`invalid room name ${JSON.stringify(room)}: 1 to 128 characters of A-Z a-z 0-9 _ - . :`);
  }
  return room;
}

// Closes `ws` with a close handshake, dropping it when the peer does not answer within
// CLOSE_GRACE_MS; `done` runs once it is closed (or given up on, where it cannot be dropped).
function closeSocket(ws, code, reason, done = () => {}) {
  const timer = setTimeout(() => {
    if (typeof ws.terminate === 'function') ws.terminate();
    done();
  }, CLOSE_GRACE_MS);
  ws.onerror = () => {};
  ws.onclose = () => {
    clearTimeout(timer);
    done();
  };
  try {
    ws.close(code, reason);
  } catch {
    try {
      ws.close();
    } catch {
      /* already closing */
    }
  }
}

function textOf(data) {
  if (typeof data === 'string') return data;
  if (data instanceof ArrayBuffer) return new TextDecoder().decode(data);
  if (ArrayBuffer.isView(data)) return new TextDecoder().decode(data);
  return String(data);
}

const utf8 = new TextEncoder();

// The UTF-8 size of a frame's text, as the server counts it against max_message_bytes.
function byteLength(text) {
  return utf8.encode(text).length;
}

// Runs `fn` once input already waiting on the sockets has been read: Node runs setImmediate after
// its poll phase; a browser gets a new task, after the network tasks already queued.
function afterPendingInput(fn) {
  if (typeof setImmediate === 'function') setImmediate(fn);
  else setTimeout(fn, 0);
}

// Rethrown outside the client so one faulty listener neither stops the others nor the client.
function reportListenerError(err) {
  setTimeout(() => {
    throw err;
  }, 0);
}

/**
 * The client. See README.md for the full description of options, events and close-code handling.
 */
export class RealtimeClient {
  constructor(options = {}) {
    const {
      url,
      rooms = [],
      token,
      WebSocket: WebSocketImpl,
      backoff = {},
      stableAfterMs = DEFAULTS.stableAfterMs,
      connectTimeoutMs = DEFAULTS.connectTimeoutMs,
      pingTimeoutMs = DEFAULTS.pingTimeoutMs,
      heartbeatMs = DEFAULTS.heartbeatMs,
      maxQueue = DEFAULTS.maxQueue,
      lastIds = {},
      autoConnect = true,
      random = Math.random,
    } = options;

    if (!url) throw new TypeError('RealtimeClient needs a url, e.g. ws://localhost:8080');
    // An address that cannot be opened would fail every reconnect alike: refused here, at once.
    let parsed = null;
    try {
      parsed = new URL(String(url));
    } catch {
      // (not absolute: no scheme)
    }
    if (!parsed || !['ws:', 'wss:', 'http:', 'https:'].includes(parsed.protocol)) {
      throw new TypeError(`RealtimeClient needs an absolute ws://, wss://, http:// or https:// url, not ${JSON.stringify(String(url))}`);
    }
    this.url = String(url);
    this._WebSocket = WebSocketImpl || globalThis.WebSocket;
    if (typeof this._WebSocket !== 'function') {
      throw new TypeError('no WebSocket implementation: pass the `WebSocket` option (e.g. the `ws` package) in Node');
    }
    this._token = token;
    const schedule = { initialMs: backoff.initialMs ?? DEFAULTS.backoff.initialMs, maxMs: backoff.maxMs ?? DEFAULTS.backoff.maxMs };
    this._backoff = new Backoff(schedule, random);
    this._refreshBackoff = new Backoff(schedule, random); // retries of a token refresh that failed
    this._stableAfterMs = stableAfterMs;
    this._connectTimeoutMs = connectTimeoutMs;
    this._pingTimeoutMs = pingTimeoutMs;
    this._heartbeatMs = heartbeatMs;
    this._maxQueue = maxQueue;

    this._rooms = [];
    for (const room of rooms) {
      if (!this._rooms.includes(checkRoom(room))) this._rooms.push(room);
    }
    this._lastIds = new Map();
    for (const [room, id] of Object.entries(lastIds || {})) {
      if (isPresent(id)) this._lastIds.set(checkRoom(room), String(id));
    }
    this._seen = new Map(); // room -> Set of recent ids
    this._retired = new Map(); // room -> epochs its resume point left (a lost history), newest last
    // Rooms the server has had the client in (the socket's at its welcome, the others once their
    // join went out): after a reconnect they can have missed messages.
    this._joined = new Set();
    this._listeners = new Map();
    this._queue = []; // chat frames not sent yet (disconnected, or paced by the rate limit)
    this._control = []; // joins, leaves, pings... of the current socket not sent yet; before chat
    this._limits = { perSecond: DEFAULTS.rateLimit.perSecond, burst: DEFAULTS.rateLimit.burst };
    this._maxMessageBytes = null; // the current socket's frame size limit, from its welcome; null: unknown
    this._tokens = 0;
    this._tokensAt = 0;
    this._welcomed = false; // the current socket's welcome arrived: frames may go out
    this._sentStatus = 'online'; // the status the current socket was last sent (or has waiting)
    this._presenceAt = 0; // the server's pace for status changes (see _presenceWait)
    this._presenceSentAt = 0; // when the current socket last sent a status change
    this._lastReceived = 0; // when the current socket last brought a frame
    this._framesReceived = 0; // frames the client's sockets brought (to tell one came since a ping)
    this._unresumable = []; // rooms of the current socket to report no_resume_point for
    this._pings = []; // pending ping() calls, oldest first
    this._pingCount = 0;
    this._status = 'online';
    this._state = 'closed';
    this._ws = null;
    this._socketRoom = null; // the room in the URL of the current socket
    this._everOpened = false;
    this._stopped = true;
    this._ended = false; // stopped by close() or a fatal close, not yet connected again
    this._authRetried = false;
    this._timers = { reconnect: null, stable: null, connect: null, heartbeat: null, drain: null, presence: null, refresh: null };
    this._tokenWaits = new Set(); // token provider calls being waited for: {timer, reject}
    this._openWaiters = [];
    this._connectGeneration = 0;
    this.connectionId = null;
    this.userId = null;
    // The network came back (a browser's `online`: a new Wi-Fi, the phone out of a tunnel): an
    // open socket may be dead on the old route, so it is asked at once, with a short timeout; a
    // retry waiting out its backoff, or an attempt that may hang on the old route, starts anew.
    // Gone (`offline`): an open socket is asked, so that a dead one is noticed in seconds.
    this._onOnline = () => {
      if (this._stopped) return;
      if (this._state === 'open') this._probe(Math.min(this._pingTimeoutMs, ONLINE_PROBE_MS));
      else if (this._state === 'reconnecting') this._reconnectNow('network online');
    };
    this._onOffline = () => {
      if (!this._stopped && this._state === 'open') this._probe();
    };
    this._probing = null; // the socket a probe (_probe) is waiting on

    if (autoConnect) queueMicrotask(() => this._stopped && this._state === 'closed' && !this._closedByUser && this.connect().catch(() => {}));
  }

  // ---- public state -------------------------------------------------------------------------

  /** "connecting" | "open" | "reconnecting" | "closed" */
  get state() {
    return this._state;
  }

  /** Rooms this client is in (or will rejoin on reconnect), the socket's own room (if any) first. */
  get rooms() {
    return [...this._rooms];
  }

  /** The last message id seen in `room`, or undefined. */
  lastId(room) {
    return this._lastIds.get(room);
  }

  /** Last ids of every room, e.g. to persist and pass back as the `lastIds` option later. */
  get lastIds() {
    return Object.fromEntries(this._lastIds);
  }

  /** Number of chat messages waiting to be sent (for the connection, or for the rate limit). */
  get queued() {
    return this._queue.length;
  }

  // ---- events -------------------------------------------------------------------------------

  /** Subscribes to an event; returns a function that unsubscribes. */
  on(event, fn) {
    if (typeof fn !== 'function') throw new TypeError('listener must be a function');
    let set = this._listeners.get(event);
    if (!set) this._listeners.set(event, (set = new Set()));
    // Wrapped so the same function may be added twice and removed once per unsubscribe.
    const entry = { fn };
    set.add(entry);
    return () => set.delete(entry);
  }

  /** Like on(), but the listener runs at most once. */
  once(event, fn) {
    const once = (...args) => {
      off();
      fn(...args);
    };
    once.listener = fn; // so that off(event, fn) finds it
    const off = this.on(event, once);
    return off;
  }

  /** Removes every registration of `fn` for `event` (those made with once() too). */
  off(event, fn) {
    const set = this._listeners.get(event);
    if (!set) return;
    for (const entry of set) if (entry.fn === fn || entry.fn.listener === fn) set.delete(entry);
  }

  _emit(event, ...args) {
    const set = this._listeners.get(event);
    if (!set) return;
    for (const entry of [...set]) {
      try {
        entry.fn(...args);
      } catch (err) {
        reportListenerError(err);
      }
    }
  }

  _setState(state, detail = {}) {
    const previous = this._state;
    this._state = state;
    // The connect() promises made so far are settled by this state; one a listener makes (connect()
    // again when closed, say) waits for the next.
    const waiters = state === 'open' || state === 'closed' ? this._openWaiters.splice(0) : [];
    this._emit('state', state, { previous, ...detail });
    if (state === 'open') {
      for (const w of waiters) w.resolve();
    } else if (state === 'closed') {
      const err = detail.error || new RealtimeError('closed', 'client closed');
      for (const w of waiters) w.reject(err);
    }
  }

  // ---- lifecycle ----------------------------------------------------------------------------

  /**
   * Starts connecting (when not already) and resolves once the socket is open.
   * Rejects if the client ends up closed first (close() or a fatal close code).
   */
  connect() {
    if (this._state === 'open') return Promise.resolve();
    const promise = this._whenOpen();
    if (this._stopped) {
      this._stopped = false;
      this._ended = false;
      this._closedByUser = false;
      this._backoff.reset();
      this._addOnlineListener();
      this._setState(this._everOpened ? 'reconnecting' : 'connecting', { attempt: 0, delayMs: 0 });
      this._openSocket();
    }
    return promise;
  }

  /**
   * Closes the socket for good: no reconnect, queued messages are dropped, pending pings reject.
   * Resolves when the socket has closed. connect() may be called again later.
   */
  close(code = 1000, reason = 'client closed') {
    this._closedByUser = true;
    if (this._stopped && this._state === 'closed') {
      // Never connected (or closed already): what send() queued meanwhile is dropped all the same.
      this._ended = true;
      this._queue.length = 0;
      this._control.length = 0;
      return Promise.resolve();
    }
    const ws = this._ws;
    this._stop(new RealtimeError('closed', 'client closed'));
    if (!ws || ws.readyState > WS_OPEN) return Promise.resolve();
    return new Promise((resolve) => closeSocket(ws, code, reason, resolve));
  }

  /** Drops the current socket (if any) and reconnects now, without waiting for the backoff. */
  reconnect() {
    if (this._stopped) return this.connect();
    const promise = this._whenOpen();
    this._reconnectNow('reconnect requested');
    return promise;
  }

  // Resolves once open, rejects if closed first. Not awaiting it is fine: an app that calls
  // connect() or reconnect() ("Retry now") and then close() gets no unhandled rejection.
  _whenOpen() {
    const promise = new Promise((resolve, reject) => this._openWaiters.push({ resolve, reject }));
    promise.catch(() => {});
    return promise;
  }

  _stop(error) {
    this._stopped = true;
    this._ended = true;
    this._clearTimers();
    this._removeOnlineListener();
    this._queue.length = 0;
    this._control.length = 0;
    this._welcomed = false;
    this._rejectPings(new RealtimeError('closed', 'client closed'));
    if (this._ws) this._detach(this._ws);
    this._ws = null;
    this._setState('closed', { error });
  }

  _clearTimers() {
    for (const key of Object.keys(this._timers)) {
      clearTimeout(this._timers[key]);
      clearInterval(this._timers[key]);
      this._timers[key] = null;
    }
    // A token provider still being waited for: its connect timeout would hold a Node process open.
    for (const wait of this._tokenWaits) {
      clearTimeout(wait.timer);
      wait.reject(new RealtimeError('closed', 'client closed'));
    }
    this._tokenWaits.clear();
  }

  _addOnlineListener() {
    if (typeof globalThis.addEventListener === 'function') {
      globalThis.addEventListener('online', this._onOnline);
      globalThis.addEventListener('offline', this._onOffline);
    }
  }

  _removeOnlineListener() {
    if (typeof globalThis.removeEventListener === 'function') {
      globalThis.removeEventListener('online', this._onOnline);
      globalThis.removeEventListener('offline', this._onOffline);
    }
  }

  // The token, from the provider when it is one; a provider that has not answered within the
  // connect timeout counts as failed (else a hung request would stop reconnecting for good).
  // close() ends the wait (RealtimeError "closed").
  async _resolveToken() {
    const t = this._token;
    if (typeof t !== 'function') return t;
    let wait;
    const timeout = new Promise((_, reject) => {
      wait = { reject, timer: setTimeout(() => reject(new Error(`no token within ${this._connectTimeoutMs} ms`)), this._connectTimeoutMs) };
      this._tokenWaits.add(wait);
    });
    try {
      return await Promise.race([Promise.resolve().then(t), timeout]);
    } finally {
      clearTimeout(wait.timer);
      this._tokenWaits.delete(wait);
    }
  }

  async _openSocket() {
    const generation = ++this._connectGeneration;
    let token;
    try {
      token = await this._resolveToken();
    } catch (err) {
      if (generation !== this._connectGeneration || this._stopped) return;
      this._emit('error', new RealtimeError('token_provider_failed', `token provider failed: ${err && err.message}`, { cause: err }));
      this._scheduleReconnect({ reason: 'token provider failed' });
      return;
    }
    if (generation !== this._connectGeneration || this._stopped) return;

    const room = pathRoom(this._rooms[0]);
    const url = buildSocketUrl(this.url, room, { token, lastId: room ? this._lastIds.get(room) : undefined });
    let ws;
    try {
      ws = new this._WebSocket(url);
    } catch (err) {
      this._emit('error', new RealtimeError('connect_failed', err && err.message, { cause: err }));
      this._scheduleReconnect({ reason: 'connect failed' });
      return;
    }
    this._ws = ws;
    this._socketRoom = room || null;
    this._handshakeStatus = undefined;

    // Until the welcome (the server's first frame) arrives.
    this._timers.connect = setTimeout(() => {
      if (!this._welcomed) this._reconnectLater(ws, 'connect timeout');
    }, this._connectTimeoutMs);

    ws.onopen = () => this._handleOpen(ws);
    ws.onmessage = (ev) => this._handleMessage(ws, ev);
    ws.onerror = (ev) => {
      // The `ws` package reports a refused upgrade as "Unexpected server response: 401".
      const m = /Unexpected server response: (\d{3})/.exec((ev && (ev.message || (ev.error && ev.error.message))) || '');
      if (m) this._handshakeStatus = Number(m[1]);
    };
    ws.onclose = (ev) => this._handleClose(ws, ev);
  }

  _detach(ws) {
    ws.onopen = null;
    ws.onmessage = null;
    ws.onerror = null;
    ws.onclose = null;
  }

  _handleOpen(ws) {
    if (this._ws !== ws) return;
    this._everOpened = true;
    this._welcomed = false;
    this._lastReceived = Date.now();
    // What the new socket needs; it goes out once the welcome has told the rate limit, then the
    // chat queued meanwhile follows.
    // The socket's room was left while it was connecting: the server put it there all the same.
    if (this._socketRoom && !this._rooms.includes(this._socketRoom)) {
      this._sendControl({ type: 'leave', room: this._socketRoom });
    }
    // Rooms after the first are joined in-band, resuming from their last id.
    for (const room of this._rooms) {
      if (room === this._socketRoom) continue;
      this._sendJoin(room);
    }
    // A new socket starts online on the server, with its own pace for status changes: an away
    // status goes at the welcome (_sendPresence), after these.
    this._sentStatus = 'online';
    this._presenceAt = 0;
    this._presenceSentAt = 0;
    // A room joined before without a resume point (the server gave no position, as an older one
    // does, and no message of the room came): what was published there while disconnected cannot
    // be asked for. Said at the welcome, as the server does for a failed resume.
    this._unresumable = [...this._joined].filter((room) => this._rooms.includes(room) && !this._lastIds.has(room));
  }

  // The welcome: the socket is open for the application. It also starts the socket's bucket with
  // the rate limit it gives.
  _handleWelcome(ws, data) {
    clearTimeout(this._timers.connect);
    this._timers.connect = null;
    const perSecond = Number(data.rate_limit);
    const burst = Number(data.rate_burst);
    if (perSecond > 0 && burst >= 1) this._limits = { perSecond, burst };
    // The largest frame the server takes (it closes the socket with 1009 at a larger one, losing
    // what follows it); an older server does not say.
    const maxBytes = Number(data.max_message_bytes);
    this._maxMessageBytes = Number.isSafeInteger(maxBytes) && maxBytes > 0 ? maxBytes : null;
    if (this._socketRoom && this._rooms.includes(this._socketRoom)) this._joined.add(this._socketRoom);
    this._welcomed = true;
    // The bucket follows a client from socket to socket: one whose last socket spent it starts from
    // what that one left, which the server says (rate_tokens); else full.
    const left = data.rate_tokens;
    const told = typeof left === 'number' && Number.isFinite(left) && left >= 0;
    this._tokens = told ? Math.min(left, this._limits.burst) : this._limits.burst;
    this._tokensAt = Date.now();
    this._drain();
    this._sendPresence();

    this._timers.stable = setTimeout(() => {
      this._timers.stable = null;
      this._backoff.reset();
      this._authRetried = false;
    }, this._stableAfterMs);
    if (this._heartbeatMs > 0) {
      this._timers.heartbeat = setInterval(() => this._probe(), this._heartbeatMs);
    }
    const unresumable = (this._unresumable || []).filter((room) => this._rooms.includes(room));
    this._unresumable = [];
    this._setState('open', { url: ws.url });
    for (const room of unresumable) {
      this._emit('recovered', { room, recovered: false, replayed: 0, reason: 'no_resume_point', lastId: null, envelope: null });
    }
  }

  // Asks the open socket whether it still answers (an application ping); when the ping times out
  // and the socket brought nothing since it went, the link is dead: reconnect. One at a time.
  _probe(timeoutMs = this._pingTimeoutMs) {
    const ws = this._ws;
    if (this._state !== 'open' || !ws || ws.readyState !== WS_OPEN || this._probing === ws) return;
    this._probing = ws;
    const before = this._framesReceived;
    const done = () => {
      if (this._probing === ws) this._probing = null;
    };
    this.ping(timeoutMs).then(done, (err) => {
      done();
      if (err.code !== 'ping_timeout') return;
      // After a stall (a busy or frozen process), the expired timeout runs before the pong
      // already waiting in the socket is read: read it first. Whatever the socket brought since
      // the ping shows the link alive, even if the pong is late.
      afterPendingInput(() => {
        if (this._framesReceived === before) this._reconnectLater(ws, 'heartbeat timeout');
      });
    });
  }

  _sendJoin(room) {
    const frame = { type: 'join', room };
    const lastId = this._lastIds.get(room);
    if (isPresent(lastId)) frame.last_id = lastId;
    this._sendControl(frame);
  }

  // ---- the outbox: frames go out within the server's rate limit ---------------------------------
  //
  // The server drops what a socket sends past its token bucket (rate_limited). Frames wait here
  // instead, so a reconnect that rejoins 60 rooms and sends 100 queued messages loses nothing:
  // control frames (join, leave, presence, auth, ping) first, in order, then chat in order.
  // Both wait as entries {text, room}: the frame already encoded, and its room (a join's room is
  // counted as joined once the join goes out).

  // Sends a control frame on the open socket, now or after what waits before it; false when no
  // socket is open (the next one is set up from the client's state instead).
  _sendControl(frame) {
    if (!this._ws || this._ws.readyState !== WS_OPEN) return false;
    const entry = { text: JSON.stringify(frame), room: frame.room, join: frame.type === 'join' };
    if (frame.type === 'ping') entry.ping = frame.data.ping;
    // (A status change keeps the status the socket had before it, for when it has to wait after all.)
    if (frame.type === 'presence') entry.before = this._sentStatus;
    if (this._control.length === 0 && this._trySend(entry)) return true;
    this._control.push(entry);
    this._scheduleDrain();
    return true;
  }

  _trySend(entry) {
    const ws = this._ws;
    if (!this._welcomed || !ws || ws.readyState !== WS_OPEN) return false;
    const now = Date.now();
    this._tokens = Math.min(Math.max(1, this._spareBurst()), this._tokens + ((now - this._tokensAt) / 1000) * this._paceRate());
    this._tokensAt = now;
    if (this._tokens < 1) return false;
    this._tokens -= 1;
    ws.send(entry.text);
    if (entry.join && this._rooms.includes(entry.room)) this._joined.add(entry.room);
    if (entry.before !== undefined) {
      this._presenceAt = Math.max(this._presenceAt, now) + this._presenceCost();
      this._presenceSentAt = now;
    }
    return true;
  }

  // The error for a chat entry larger than the current socket takes; null when it fits, or when the
  // limit is unknown (no socket, or an older server).
  _tooBig(entry) {
    const max = this._maxMessageBytes;
    // A UTF-16 code unit is at most 3 bytes of UTF-8: most frames need no counting.
    if (max === null || entry.text.length * 3 <= max) return null;
    const bytes = byteLength(entry.text);
    if (bytes <= max) return null;
    const where = entry.room ? ` to ${entry.room}` : '';
    return new RealtimeError('message_too_big', `a message${where} of ${bytes} bytes; the server takes at most ${max}`, {
      room: entry.room,
      frame: entry.text,
    });
  }

  // Sends what waits, as far as the bucket allows; then waits for its next token. Chat queued while
  // the limit was unknown and found too big is dropped (the server would close the socket at it,
  // losing what follows), with an error event each.
  _drain() {
    clearTimeout(this._timers.drain);
    this._timers.drain = null;
    const dropped = [];
    for (;;) {
      const list = this._control.length > 0 ? this._control : this._queue;
      if (list.length === 0) break;
      const head = list[0];
      const tooBig = list === this._queue && this._tooBig(head);
      if (tooBig) {
        dropped.push(tooBig);
      } else if (head.before !== undefined && this._presenceWait(Date.now()) > 0) {
        // A status change that joins sent ahead of it made dearer than when it was queued: it
        // waits on its own (_sendPresence), not holding up what follows it.
        list.shift();
        this._sentStatus = head.before;
        this._sendPresence();
        continue;
      } else if (!this._trySend(head)) {
        break;
      }
      list.shift();
    }
    this._scheduleDrain();
    for (const error of dropped) this._emit('error', error);
  }

  // The rate frames go out at: the server's, or, when its burst leaves no spare token (a burst of
  // 1 or 2), a fifth below it, since a frame that reaches the server a moment early finds its
  // bucket empty and is dropped.
  _paceRate() {
    return this._spareBurst() >= 1 ? this._limits.perSecond : this._limits.perSecond * 0.8;
  }

  // The burst less the tokens kept spare (for frames that reach the server a moment early).
  _spareBurst() {
    return this._limits.burst - RATE_SPARE_TOKENS - this._limits.perSecond * RATE_SPARE_SECONDS;
  }

  _scheduleDrain() {
    if (this._timers.drain || !this._welcomed || !this._ws || this._ws.readyState !== WS_OPEN) return;
    if (this._control.length === 0 && this._queue.length === 0) return;
    const wait = Math.ceil(((1 - this._tokens) / this._paceRate()) * 1000);
    this._timers.drain = setTimeout(() => this._drain(), Math.max(1, wait));
  }

  _handleMessage(ws, ev) {
    if (this._ws !== ws) return;
    let msg;
    try {
      msg = JSON.parse(textOf(ev.data));
    } catch {
      this._emit('error', new RealtimeError('bad_frame', 'server sent a frame that is not JSON'));
      return;
    }
    if (!msg || typeof msg !== 'object') return;
    this._lastReceived = Date.now();
    this._framesReceived++;
    // A server that sends no welcome first (not this one): open at its first frame, default rate.
    if (!this._welcomed && !(isSocketEvent(msg) && msg.data.event === 'welcome')) this._handleWelcome(ws, {});
    this._emit('envelope', msg);
    // An 'envelope' listener that closed or reconnected the client: this socket is done.
    if (this._ws !== ws) return;
    const data = msg.data && typeof msg.data === 'object' ? msg.data : {};
    // A room's traffic already on the way when leave() was called is not delivered (nor taken as
    // the room's resume point), whoever published it (a message another program PUBLISHed to the
    // room's Redis channel has a pod's own id, not a history id). What was sent to the user may
    // name a room it is not in: kept (a notification, or any type with a user id); so are errors,
    // pongs and what concerns the socket (its welcome names the room in its URL, which may have
    // been left while the socket was opening; joined and recovered check the room themselves).
    const socketEvent = isSocketEvent(msg);
    const roomTraffic = msg.type === 'chat' || msg.type === 'presence' || (msg.type === 'system' && !socketEvent);
    if (msg.room && roomTraffic && !this._rooms.includes(msg.room) && !USER_ID.test(String(msg.id))) {
      return;
    }

    switch (msg.type) {
      case 'pong': {
        // The server returns the ping's data: a late pong of a ping that timed out answers nothing.
        // A pong without it (an older server) answers the oldest ping.
        const n = data.ping;
        const i = typeof n === 'number' ? this._pings.findIndex((p) => p.n === n) : 0;
        if (i >= 0 && i < this._pings.length) this._pings.splice(i, 1)[0].resolve(msg);
        return;
      }
      case 'error':
        // A join past the server's room limit, or one the token (or the server's application) does
        // not allow: the room is not kept (nor joined again on reconnect).
        if ((data.code === 'too_many_rooms' || data.code === 'room_not_allowed') && data.room && this._rooms.includes(data.room)) this._forget(data.room);
        // The server does not say which frame it refused: a status change sent lately may have
        // been, and goes again, when the server takes it (one it took already changes nothing).
        if (data.code === 'rate_limited' && this._presenceSentAt > 0 && Date.now() - this._presenceSentAt < PRESENCE_RESEND_WINDOW_MS) {
          this._presenceSentAt = 0;
          this._sentStatus = null;
          this._sendPresence();
        }
        this._emit('error', new RealtimeError(data.code || 'server_error', data.error || 'server error', { envelope: msg }));
        return;
      case 'presence':
        // Deduplicated like other room traffic, but never used as a resume point: presence may not be
        // part of a room's history, and an id the server cannot find means recovered: false.
        if (this._track(msg, false)) this._emit('presence', msg);
        return;
      case 'system':
        if (!socketEvent) {
          if (this._track(msg)) this._emit('system', msg);
          return;
        }
        if (data.event === 'welcome') {
          this.connectionId = data.connection_id ?? null;
          this.userId = data.user_id ?? null;
          const room = data.room ?? msg.room ?? null;
          // The resume point first: an 'open' listener may save lastIds.
          const lastId = this._position(room, data.last_id);
          if (!this._welcomed) this._handleWelcome(ws, data);
          this._emit('welcome', { connectionId: this.connectionId, userId: this.userId, room, lastId, envelope: msg });
          return;
        }
        if (data.event === 'joined') {
          const room = msg.room ?? data.room ?? null;
          // The answer to a join of a room left meanwhile concerns nobody.
          if (this._rooms.includes(room)) this._emit('joined', { room, lastId: this._position(room, data.last_id), envelope: msg });
          return;
        }
        if (data.event === 'recovered') {
          const room = msg.room ?? data.room ?? null;
          if (!this._rooms.includes(room)) return; // a room left meanwhile
          this._emit('recovered', {
            room,
            recovered: data.recovered === true,
            replayed: Number(data.replayed) || 0,
            lastId: this._position(room, data.last_id),
            envelope: msg,
          });
          return;
        }
        // The answer to the client's own auth: nothing for the application.
        if (data.event === 'token_refreshed') return;
        // The last of SOCKET_EVENTS: token_expiring.
        clearTimeout(this._timers.refresh);
        this._refreshBackoff.reset();
        this._refreshForSocket(ws);
        return;
      default:
        // chat, notification, and whatever type the publish API was given
        if (this._track(msg)) this._emit('message', msg);
    }
  }

  // The server's position in a room (welcome, joined, recovered: every later message of the room
  // reaches this socket) becomes the room's resume point, so a room that has sent nothing yet can
  // be resumed. Returns it, or null when there is none (an older server, or a room left meanwhile).
  _position(room, lastId) {
    if (!room || typeof lastId !== 'string' || lastId === '' || !this._rooms.includes(room)) return null;
    this._setResumePoint(room, lastId, true);
    return lastId;
  }

  // Moves a room's resume point to `id`. A room message does not move it back: not to an earlier
  // one of the same history, nor to one of a history the point has left (after Redis lost its data,
  // a message of the old history can still arrive late). The server's own position always does.
  _setResumePoint(room, id, fromServer = false) {
    const current = this._lastIds.get(room);
    if (!fromServer && behind(id, current)) return;
    const epoch = epochOf(id);
    const retired = this._retired.get(room) || [];
    if (typeof current === 'string' && epochOf(current) !== epoch) {
      if (!fromServer && retired.includes(epoch)) return;
      retired.push(epochOf(current));
      if (retired.length > RETIRED_EPOCHS) retired.shift();
      this._retired.set(room, retired);
    }
    if (fromServer && retired.includes(epoch)) retired.splice(retired.indexOf(epoch), 1);
    this._lastIds.set(room, id);
  }

  // Records the id of a room message (and makes it the room's resume point unless `resumable` is
  // false); returns false when that id was already delivered.
  _track(msg, resumable = true) {
    if (!msg.room || !isPresent(msg.id)) return true;
    // A notification naming a room the client is not in: nothing to resume, nor to remember (a
    // room named by each of many notifications would grow the table without bound).
    if (!this._rooms.includes(msg.room)) return true;
    if (isSocketEvent(msg)) return true;
    const id = String(msg.id);
    let seen = this._seen.get(msg.room);
    if (!seen) this._seen.set(msg.room, (seen = new Set()));
    if (seen.has(id)) return false;
    seen.add(id);
    if (seen.size > SEEN_IDS_PER_ROOM) seen.delete(seen.values().next().value);
    if (resumable && !NOT_HISTORY_ID.test(id)) this._setResumePoint(msg.room, id);
    return true;
  }

  _teardown(ws) {
    this._detach(ws);
    if (this._ws === ws) this._ws = null;
    clearTimeout(this._timers.connect);
    clearTimeout(this._timers.stable);
    clearInterval(this._timers.heartbeat);
    clearTimeout(this._timers.drain);
    clearTimeout(this._timers.presence);
    clearTimeout(this._timers.refresh);
    this._timers.connect = this._timers.stable = this._timers.heartbeat = this._timers.drain = null;
    this._timers.presence = this._timers.refresh = null;
    this._maxMessageBytes = null; // the next socket's welcome tells its own
    // The next socket is set up from the client's state (rooms, status); chat stays queued.
    this._control.length = 0;
    this._welcomed = false;
    this._rejectPings(new RealtimeError('disconnected', 'connection closed'));
  }

  _handleClose(ws, ev) {
    if (this._ws !== ws) return;
    this._teardown(ws);
    if (this._stopped) return;

    const code = ev && typeof ev.code === 'number' ? ev.code : 1006;
    const reason = (ev && ev.reason) || '';
    const info = { code, reason };
    const errInfo = { closeCode: code, reason };

    if (code === 4001) {
      // Token expired: a provider can give a fresh one; a fixed string cannot.
      if (typeof this._token !== 'function') {
        this._fail(new RealtimeError('token_expired', 'token expired and no token provider to renew it', errInfo));
        return;
      }
      if (!this._authRetried) {
        this._authRetried = true;
        this._scheduleReconnect({ ...info, delayMs: 0 });
        return;
      }
      this._scheduleReconnect(info);
      return;
    }
    if (code === 1008 || (code >= 4000 && code <= 4999)) {
      this._fail(new RealtimeError('policy_violation', reason || `closed by server with ${code}`, errInfo));
      return;
    }
    const status = this._handshakeStatus;
    if (status === 400 || status === 403 || (status === 401 && typeof this._token !== 'function')) {
      this._fail(new RealtimeError('handshake_refused', `server refused the connection with HTTP ${status}`, { ...errInfo, status }));
      return;
    }
    if (status) this._emit('error', new RealtimeError('handshake_refused', `server refused the connection with HTTP ${status}`, { ...errInfo, status }));
    if (code === 1009) this._emit('error', new RealtimeError('message_too_big', 'server closed the socket: a message was too large', errInfo));
    // 1001 going away, 1006 dropped, 1011 server error, 1012 restart, 1013 slow consumer, ...
    this._scheduleReconnect(info);
  }

  // A close after which the client does not reconnect: its error names the chat still queued,
  // which is dropped with it ({room, data} each, in order; `unsent`).
  _fail(error) {
    if (this._queue.length > 0) {
      error.unsent = this._queue.map((entry) => {
        const frame = JSON.parse(entry.text);
        return { room: frame.room, data: frame.data };
      });
    }
    this._emit('error', error);
    this._stop(error);
  }

  _scheduleReconnect(info = {}) {
    clearTimeout(this._timers.reconnect);
    const delayMs = info.delayMs ?? this._backoff.next();
    const attempt = this._backoff.attempt;
    this._timers.reconnect = setTimeout(() => {
      this._timers.reconnect = null;
      if (!this._stopped) this._openSocket();
    }, delayMs);
    this._setState('reconnecting', { ...info, attempt, delayMs, retryAt: Date.now() + delayMs });
  }

  // Forgets the current socket: timers, pending pings, handlers; then closes it without waiting.
  _abandon(ws, hard) {
    this._teardown(ws);
    if (hard && typeof ws.terminate === 'function') {
      ws.onerror = () => {};
      ws.terminate(); // `ws` package: no close handshake with a peer that stopped answering
      return;
    }
    closeSocket(ws, 1000, 'reconnecting');
  }

  // Abandons the current socket (if any) and opens a new one at once.
  _reconnectNow(reason) {
    clearTimeout(this._timers.reconnect);
    this._timers.reconnect = null;
    if (this._ws) this._abandon(this._ws, false);
    if (this._stopped) return;
    this._setState('reconnecting', { reason, attempt: this._backoff.attempt, delayMs: 0, retryAt: Date.now() });
    this._openSocket();
  }

  // Abandons a socket that stopped answering and retries after the backoff delay.
  _reconnectLater(ws, reason) {
    if (this._ws !== ws || this._stopped) return;
    this._abandon(ws, true);
    this._scheduleReconnect({ code: 1006, reason });
  }

  // ---- sending ------------------------------------------------------------------------------

  /**
   * Sends a chat message to `room`. A string is sent as {"text": string}. While disconnected, or
   * faster than the server's rate limit allows, the message is queued (up to maxQueue) and sent in
   * order as soon as it can be; returns true if it went out now, false if queued. Throws
   * RealtimeError "queue_full" when the queue is full, "message_too_big" past the socket's
   * max_message_bytes, "closed" once the client is closed; TypeError for data JSON cannot encode.
   */
  send(room, data) {
    if (room !== undefined && room !== null) checkRoom(room);
    if (this._stopped && this._ended) throw new RealtimeError('closed', 'client is closed');
    const frame = { type: 'chat', data: typeof data === 'string' ? { text: data } : data };
    // No room: the client's first, named now (queued, it must not go to whatever room is first
    // when it leaves the queue, after a leave).
    const target = room || this._rooms[0];
    if (target) frame.room = target;
    // Encoded now: data JSON cannot encode (a BigInt, a cycle) throws here, not when the queue is
    // sent.
    const entry = { text: JSON.stringify(frame), room: target };
    const tooBig = this._tooBig(entry);
    if (tooBig) throw tooBig;
    // A socket silent for a while may be dead without a sign (the link gone, no FIN): a message
    // sent into it is asked after at once, rather than at the next heartbeat (up to heartbeatMs
    // later), so that a dead link is found within pingTimeoutMs of the send.
    if (this._heartbeatMs > 0 && Date.now() - this._lastReceived > Math.min(this._heartbeatMs, SEND_PROBE_AFTER_MS)) {
      this._probe();
    }
    if (this._queue.length === 0 && this._control.length === 0 && this._trySend(entry)) return true;
    if (this._queue.length >= this._maxQueue) {
      throw new RealtimeError('queue_full', `${this._maxQueue} messages already waiting to be sent`);
    }
    this._queue.push(entry);
    this._scheduleDrain();
    return false;
  }

  /** Joins a room (kept across reconnects). */
  join(room) {
    checkRoom(room);
    if (this._rooms.includes(room)) return;
    this._rooms.push(room);
    if (this._ws && this._ws.readyState === WS_OPEN) this._sendJoin(room);
  }

  /** Leaves a room and forgets its last id. */
  leave(room) {
    checkRoom(room);
    if (this._forget(room)) this._sendControl({ type: 'leave', room });
  }

  // Drops a room and what the client kept for it; false if it was not among the rooms.
  _forget(room) {
    const i = this._rooms.indexOf(room);
    if (i < 0) return false;
    this._rooms.splice(i, 1);
    // Chat queued for the room would only be refused (not_in_room) once connected.
    this._queue = this._queue.filter((entry) => entry.room !== room);
    this._lastIds.delete(room);
    this._retired.delete(room);
    const seen = this._seen.get(room);
    if (seen) {
      this._seen.delete(room); // re-inserted last: the rooms left longest ago are forgotten first
      this._seen.set(room, seen);
      const left = [...this._seen.keys()].filter((r) => !this._rooms.includes(r));
      while (left.length > SEEN_LEFT_ROOMS) this._seen.delete(left.shift());
    }
    this._joined.delete(room);
    return true;
  }

  /** Sets this user's presence status, "online" or "away"; kept across reconnects. */
  setStatus(status) {
    if (status !== 'online' && status !== 'away') throw new TypeError('status must be "online" or "away"');
    this._status = status;
    this._sendPresence();
  }

  // Sends the status when the socket's differs. A change the server would refuse now waits here
  // (_presenceWait), and only the latest status goes then; one waiting behind other frames takes
  // the latest status with it.
  _sendPresence() {
    if (this._timers.presence || !this._welcomed || !this._ws || this._ws.readyState !== WS_OPEN) return;
    if (this._status === this._sentStatus) return;
    const waiting = this._control.findIndex((entry) => entry.before !== undefined);
    if (waiting >= 0) {
      const entry = this._control[waiting];
      if (entry.before === this._status) this._control.splice(waiting, 1);
      else entry.text = JSON.stringify({ type: 'presence', data: { status: this._status } });
      this._sentStatus = this._status;
      return;
    }
    const wait = this._presenceWait(Date.now());
    if (wait > 0) {
      this._timers.presence = setTimeout(() => {
        this._timers.presence = null;
        this._sendPresence();
      }, Math.ceil(wait) + 1);
      return;
    }
    this._sendControl({ type: 'presence', data: { status: this._status } });
    this._sentStatus = this._status;
  }

  // How long the server would refuse a status change sent now (ms; 0 or less: it takes it). It
  // counts a change once per room of the socket, on top of its frame: at most max(burst, 64) such
  // room events at once, then `perSecond` (a generic cell rate, timed from the frame's arrival),
  // and refuses one past that, keeping the old status. Booked when the frame goes out (_trySend);
  // one that follows a booked one keeps an event to spare for its trip.
  _presenceWait(now) {
    const perEvent = 1000 / this._limits.perSecond;
    const start = Math.max(this._presenceAt, now);
    const spare = this._presenceAt > now ? perEvent : 0;
    const tolerance = perEvent * Math.max(this._limits.burst, MAX_ROOMS_PER_SOCKET);
    return start + this._presenceCost() - now - tolerance + spare;
  }

  // A change's room events, in ms of the pace: the socket's rooms as the server may count them
  // (joined, or joining ahead of the change), at least one.
  _presenceCost() {
    return (1000 / this._limits.perSecond) * Math.max(1, this._rooms.length, this._joined.size);
  }

  get status() {
    return this._status;
  }

  /** Application-level ping; resolves with the round trip in ms once the pong arrives. */
  ping(timeoutMs = this._pingTimeoutMs) {
    if (!this._ws || this._ws.readyState !== WS_OPEN) {
      return Promise.reject(new RealtimeError('not_connected', 'not connected'));
    }
    const started = Date.now();
    const n = ++this._pingCount;
    return new Promise((resolve, reject) => {
      const entry = {
        n,
        resolve: () => {
          clearTimeout(entry.timer);
          resolve(Date.now() - started);
        },
        reject: (err) => {
          clearTimeout(entry.timer);
          reject(err);
        },
      };
      entry.timer = setTimeout(() => {
        const i = this._pings.indexOf(entry);
        if (i >= 0) this._pings.splice(i, 1);
        // Not sent yet (waiting for the rate limit): it would spend a token for nothing, ahead of
        // the chat waiting behind it.
        const k = this._control.findIndex((e) => e.ping === n);
        if (k >= 0) this._control.splice(k, 1);
        reject(new RealtimeError('ping_timeout', `no pong within ${timeoutMs} ms`));
      }, timeoutMs);
      this._pings.push(entry);
      this._sendControl({ type: 'ping', data: { ping: n } });
    });
  }

  _rejectPings(err) {
    for (const p of this._pings.splice(0)) p.reject(err);
  }

  // The server warned that the token of `ws` expires soon (it closes the socket then, 4001): a
  // fresh token from the provider goes in-band. A failure is reported and retried with backoff
  // until a refresh works or the socket closes (the next socket asks the provider anyway).
  _refreshForSocket(ws) {
    this.refreshToken().catch((err) => {
      if (this._ws !== ws || this._stopped) return;
      this._emit('error', err);
      if (err.code === 'no_token_provider') return;
      clearTimeout(this._timers.refresh); // one retry pending, should two warnings have come
      this._timers.refresh = setTimeout(() => {
        this._timers.refresh = null;
        this._refreshForSocket(ws);
      }, this._refreshBackoff.next());
    });
  }

  /**
   * Gets a fresh token from the provider and sends {"type":"auth","token":T} on the open socket.
   * Called by itself when the server warns "token_expiring" (and again, with backoff, while the
   * provider fails and the socket is open). Later reconnects use the provider too. Rejects with
   * RealtimeError "token_provider_failed" (the provider's error as `cause`), "no_token_provider" or
   * "not_connected".
   */
  async refreshToken() {
    if (typeof this._token !== 'function') {
      throw new RealtimeError('no_token_provider', 'refreshToken() needs a token provider function');
    }
    let token;
    try {
      token = await this._resolveToken();
    } catch (err) {
      if (this._stopped) throw new RealtimeError('closed', 'client closed');
      throw new RealtimeError('token_provider_failed', `token provider failed: ${err && err.message}`, { cause: err });
    }
    if (!isPresent(token)) throw new RealtimeError('token_provider_failed', 'token provider returned no token');
    if (!this._sendControl({ type: 'auth', token: String(token) })) {
      throw new RealtimeError('not_connected', 'not connected; the next connection will use the provider');
    }
  }
}

export default RealtimeClient;
