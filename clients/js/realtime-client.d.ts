// Type declarations for realtime-client.js.

/** The JSON envelope the server sends: one per text frame. */
export interface Envelope<D = Record<string, unknown>> {
  /** Server-assigned; unique, ordered within a room, URL-safe. */
  id: string;
  type: 'chat' | 'presence' | 'notification' | 'system' | 'error' | 'pong' | (string & {});
  room?: string;
  /** Sender's user id (from the JWT) or connection id; never a value a client chose. */
  from?: string;
  data?: D;
  /** RFC 3339, UTC, milliseconds. */
  timestamp: string;
}

export interface PresenceData {
  status: 'online' | 'offline' | 'away';
  user_id: string;
}

export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface StateDetail {
  /** The state before this one. */
  previous: ConnectionState;
  /** reconnecting: the attempt number this retry counts as (1 = first retry after a failure). */
  attempt?: number;
  /** reconnecting: milliseconds until the next attempt (0 = now). */
  delayMs?: number;
  /** reconnecting: Date.now() value at which the next attempt starts. */
  retryAt?: number;
  /** reconnecting: the close code that ended the previous socket (1006 when it just dropped). */
  code?: number;
  /** reconnecting: the close reason, or why the client gave up on the socket ("connect timeout", ...). */
  reason?: string;
  /** open: the socket URL. */
  url?: string;
  /** closed: why (code "closed" after close()). */
  error?: RealtimeError;
}

export interface WelcomeEvent {
  connectionId: string | null;
  userId: string | null;
  room: string | null;
  /**
   * The room's position: every later message of the room reaches this socket. It becomes the room's
   * resume point. null when the socket resumes the room (see `recovered`) or the server gives none.
   */
  lastId: string | null;
  envelope: Envelope<{
    event: 'welcome';
    connection_id: string;
    user_id: string;
    room?: string;
    last_id?: string;
    rate_limit?: number;
    rate_burst?: number;
    /** The whole tokens the socket's bucket starts with, when not full (what the client's last
     *  socket left, refilled since); absent: a full bucket. */
    rate_tokens?: number;
    /** The largest frame the socket takes, in bytes (absent from older servers). */
    max_message_bytes?: number;
  }>;
}

/** The server's answer to a join without a resume point. */
export interface JoinedEvent {
  room: string | null;
  /** The room's position, now the room's resume point (null when the server gives none). */
  lastId: string | null;
  envelope: Envelope<{ event: 'joined'; last_id?: string }>;
}

export interface RecoveredEvent {
  room: string | null;
  /** false: the server cannot vouch for the gap; messages may be missing. */
  recovered: boolean;
  /** How many messages were replayed before this event. */
  replayed: number;
  /**
   * Set when the client itself reports the room: 'no_resume_point', a room it was in before the
   * reconnect had given it no message id to resume from (nothing was asked; messages may be missing).
   */
  reason?: 'no_resume_point';
  /**
   * The room's position after the replay, now its resume point (also after a failed resume, so the
   * next one can succeed); null when the server gives none or the client reports the room itself.
   */
  lastId?: string | null;
  /** The server's `recovered` envelope; null when the client reports the room itself. */
  envelope: Envelope<{ event: 'recovered'; recovered: boolean; replayed: number; last_id?: string }> | null;
}

export type RealtimeErrorCode =
  // error envelopes from the server (data.code)
  | 'invalid_json'
  | 'unknown_type'
  | 'bad_room'
  | 'forbidden'
  | 'rate_limited'
  | 'unsupported'
  | 'invalid_message'
  | 'not_in_room'
  | 'too_many_rooms'
  | 'room_not_allowed'
  | 'invalid_token'
  | 'unavailable'
  | 'server_error'
  // raised by the client
  | 'closed'
  | 'queue_full'
  | 'not_connected'
  | 'ping_timeout'
  | 'disconnected'
  | 'token_expired'
  | 'token_provider_failed'
  | 'no_token_provider'
  | 'policy_violation'
  | 'handshake_refused'
  | 'message_too_big'
  | 'connect_failed'
  | 'bad_frame'
  | (string & {});

export class RealtimeError extends Error {
  constructor(code: RealtimeErrorCode, message?: string, extra?: Record<string, unknown>);
  readonly code: RealtimeErrorCode;
  /** For server error envelopes: the envelope itself. */
  readonly envelope?: Envelope<{ error: string; code: string }>;
  /** For errors caused by a close: the close code and reason. */
  readonly closeCode?: number;
  readonly reason?: string;
  /** handshake_refused: the HTTP status (only where the WebSocket implementation reports it, e.g. `ws`). */
  readonly status?: number;
  /** message_too_big from the client: the room of the message refused, and its frame (JSON text). */
  readonly room?: string;
  readonly frame?: string;
  /**
   * A close after which the client does not reconnect (handshake_refused, token_expired,
   * policy_violation): the chat still queued, dropped with it, in order.
   */
  readonly unsent?: ReadonlyArray<{ room: string; data: unknown }>;
}

export interface RealtimeClientEvents {
  /** chat, notification, and any other room/user message type the server publishes. */
  message: (msg: Envelope) => void;
  presence: (msg: Envelope<PresenceData>) => void;
  /** Server error envelopes and client-side failures. */
  error: (err: RealtimeError) => void;
  /** Every transition; 'reconnecting' repeats once per scheduled attempt. */
  state: (state: ConnectionState, detail: StateDetail) => void;
  /** The server's answer to a resume (last_id) for one room. */
  recovered: (event: RecoveredEvent) => void;
  welcome: (event: WelcomeEvent) => void;
  /** A room joined in-band (join() or a reconnect's join without a resume point). */
  joined: (event: JoinedEvent) => void;
  /** system messages other than welcome / joined / recovered / token_expiring / token_refreshed. */
  system: (msg: Envelope) => void;
  /** Every envelope received, before any other event (for logging and debugging). */
  envelope: (msg: Envelope) => void;
}

/**
 * The events whose listener gets any envelope: such a listener may name the data it expects,
 * `(msg: Envelope<ChatData>) => ...`. The client does not check what the server sends: that is the
 * application's claim.
 */
export type EnvelopeEvent = 'message' | 'system' | 'envelope';

/** A WebSocket constructor: browsers' global one, or the `ws` package in Node. */
export interface WebSocketConstructor {
  new (url: string, protocols?: string | string[]): WebSocketLike;
}

export interface WebSocketLike {
  readonly readyState: number;
  readonly url?: string;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  // The client only assigns these; `any` lets the browser's and the `ws` package's own event
  // types fit under `strict`.
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: any) => void) | null;
  onerror: ((ev: any) => void) | null;
  onclose: ((ev: any) => void) | null;
}

export type TokenProvider = () => string | Promise<string>;

export interface BackoffOptions {
  /** First retry window in ms (default 500). */
  initialMs?: number;
  /** Largest window in ms (default 30000). */
  maxMs?: number;
}

export interface RealtimeClientOptions {
  /** Server base URL: ws://host:port (wss://, http:// and https:// also accepted). */
  url: string;
  /**
   * Rooms to be in; the first is the socket's own room (/ws/{room}), the others are joined in-band.
   * "." and ".." (which no URL path carries) are always joined in-band, the socket opening on /ws.
   */
  rooms?: readonly string[];
  /** A JWT, or a provider called before every connection and for in-band refresh. */
  token?: string | TokenProvider;
  /** WebSocket implementation; required in Node 20 (e.g. `import { WebSocket } from 'ws'`). */
  WebSocket?: WebSocketConstructor;
  /** Reconnect schedule: full jitter, delay = random(0, min(maxMs, initialMs * 2^n)). */
  backoff?: BackoffOptions;
  /** Uptime after which a connection counts as stable and the backoff resets (default 5000). */
  stableAfterMs?: number;
  /** A socket still opening after this long is abandoned and retried (default 15000). */
  connectTimeoutMs?: number;
  /** Default ping() timeout (default 10000). */
  pingTimeoutMs?: number;
  /** Application-level ping interval while open, to notice a dead link; 0 disables (default 30000). */
  heartbeatMs?: number;
  /** Chat messages waiting to be sent (disconnected, or paced by the rate limit); send() throws "queue_full" past it (default 100). */
  maxQueue?: number;
  /** Resume points per room, e.g. saved from `client.lastIds` by an earlier session. */
  lastIds?: Record<string, string | undefined>;
  /** Connect right away (on the next microtask, so listeners added now see every event). Default true. */
  autoConnect?: boolean;
  /** Random source in [0, 1) for the jitter (tests pass a seeded one). */
  random?: () => number;
}

export class RealtimeClient {
  constructor(options: RealtimeClientOptions);

  readonly url: string;
  readonly state: ConnectionState;
  /** Rooms kept across reconnects, the socket's own room (if any) first. */
  readonly rooms: string[];
  /** The resume point of every room. */
  readonly lastIds: Record<string, string>;
  /** Chat messages waiting for a connection. */
  readonly queued: number;
  readonly status: 'online' | 'away';
  /** From the latest welcome. */
  connectionId: string | null;
  userId: string | null;

  lastId(room: string): string | undefined;

  on<D = Record<string, unknown>>(event: EnvelopeEvent, listener: (msg: Envelope<D>) => void): () => void;
  on<E extends keyof RealtimeClientEvents>(event: E, listener: RealtimeClientEvents[E]): () => void;
  once<D = Record<string, unknown>>(event: EnvelopeEvent, listener: (msg: Envelope<D>) => void): () => void;
  once<E extends keyof RealtimeClientEvents>(event: E, listener: RealtimeClientEvents[E]): () => void;
  off<D = Record<string, unknown>>(event: EnvelopeEvent, listener: (msg: Envelope<D>) => void): void;
  off<E extends keyof RealtimeClientEvents>(event: E, listener: RealtimeClientEvents[E]): void;

  /** Starts connecting if needed; resolves once open, rejects if the client ends up closed. */
  connect(): Promise<void>;
  /** Drops the current socket and reconnects now, skipping the backoff wait. */
  reconnect(): Promise<void>;
  /** Closes for good (no reconnect; queue dropped; pending pings reject). */
  close(code?: number, reason?: string): Promise<void>;

  /**
   * Chat to `room` (undefined: the socket's own room). `data` is any JSON value; a string is sent
   * as {"text": string}. Returns true if sent now, false if queued until reconnect.
   * @throws RealtimeError "queue_full" | "message_too_big" | "closed"; TypeError for an invalid room
   * name or data JSON cannot encode (a BigInt, a cycle).
   */
  send(room: string | undefined, data: unknown): boolean;
  join(room: string): void;
  leave(room: string): void;
  setStatus(status: 'online' | 'away'): void;
  /** Resolves with the round-trip time in ms. @throws RealtimeError "not_connected" | "ping_timeout" | "disconnected" */
  ping(timeoutMs?: number): Promise<number>;
  /**
   * Sends {"type":"auth","token":T} with a token from the provider.
   * @throws RealtimeError "token_provider_failed" (the provider's error as `cause`) | "no_token_provider" | "not_connected"
   */
  refreshToken(): Promise<void>;
}

export default RealtimeClient;

/** 1 to 128 characters of A-Z a-z 0-9 _ - . : */
export const ROOM_NAME_PATTERN: RegExp;

export const DEFAULTS: Readonly<{
  backoff: Readonly<Required<BackoffOptions>>;
  stableAfterMs: number;
  connectTimeoutMs: number;
  pingTimeoutMs: number;
  heartbeatMs: number;
  maxQueue: number;
  /** The server's per-socket rate limit assumed until a welcome gives the socket's own. */
  rateLimit: Readonly<{ perSecond: number; burst: number }>;
}>;

/** Full-jitter delay for `attempt` (0-based): an integer in [0, min(maxMs, initialMs * 2^attempt)). */
export function backoffDelay(attempt: number, options?: BackoffOptions, random?: () => number): number;

export class Backoff {
  constructor(options?: BackoffOptions, random?: () => number);
  readonly initialMs: number;
  readonly maxMs: number;
  attempt: number;
  /** The delay for the coming attempt; advances the attempt counter. */
  next(): number;
  reset(): void;
}

/**
 * The socket URL for `room` (none: /ws) with token and last_id, URL-encoded; empty values are left
 * out. A query string of `base` is kept, these parameters after it. Throws RangeError for room "."
 * or "..", which no URL path carries.
 */
export function buildSocketUrl(base: string, room?: string, params?: { token?: string | null; lastId?: string | null }): string;
