// The WebSocket handler and HTTP API of a pod: accepts connections on a listening socket, upgrades
// /ws and /ws/{room}, and serves /healthz, /readyz and, unless HandlerConfig turns them off,
// /api/*, /metrics and the chat page.
//
// Owned by the application; it needs a started Hub that outlives it. Thread safety: listen() and
// shutdown() may be called from any thread (shutdown() on an I/O thread, in a hook, starts the
// closing and returns without waiting for it); the hooks run on the I/O thread of the connection
// concerned (but see on_disconnect), never under a lock, and must not block. A hook that throws is
// a bug in the application: the exception is logged and that socket is closed with 1011
// (on_disconnect: only logged); the process goes on.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "realtime/auth.hpp"
#include "realtime/broadcaster.hpp"
#include "realtime/connection.hpp"
#include "realtime/hub.hpp"

namespace realtime {

namespace detail {
class HandlerCore;
}

struct HandlerConfig {
  // Where chat goes: null = this pod only (a LocalBroadcaster over the hub).
  std::shared_ptr<Broadcaster> broadcaster;
  // After the welcome and the initial room join.
  std::function<void(Connection&)> on_connect;
  // Once, when the socket is gone (or going: after its close frame was queued); also for the
  // sockets still open when the Hub stops without a Handler::shutdown() first (then on the thread
  // in Hub::wait(), after the I/O threads ended). Never inside another hook: a socket closed from
  // a hook (Connection::close() in on_message, say, under the application's own lock) gets its
  // on_disconnect once that hook has returned.
  std::function<void(Connection&)> on_disconnect;
  // Each chat message before it is broadcast; may rewrite it. Return false to suppress it. A
  // rewrite is held to Hub::broadcast()'s rules (data one JSON value, a valid room name and id,
  // not a join, leave or auth type): one that breaks them is refused as if the hook had thrown.
  std::function<bool(Connection&, Message&)> on_message;
  // Whether the socket may join `room`: asked for the room of its URL (before the welcome, which
  // then names no room) and for each join message; false refuses that join with the error
  // room_not_allowed (the socket stays, in its other rooms). Asked after the token's "rooms" claim
  // (TokenClaims::rooms), which refuses first. Connection::user_id() is the token's subject (an
  // anonymous socket's is its connection id). Like every hook, it must not block: decide from
  // what the application holds in memory.
  std::function<bool(Connection&, const std::string& room)> may_join;

  bool auth_required = false;  // every socket must carry a valid JWT
  JwtConfig jwt;               // keys and claims checked; a token is verified whenever present
  std::string api_key;         // required by POST /api/publish as "Bearer <key>" when set
  std::size_t max_connections = 10000;     // past it: 503 "server at capacity"
  std::size_t max_connections_per_ip = 0;  // past it: 429; 0 = no cap (behind a proxy, all
                                           // sockets share its address)
  std::size_t max_message_bytes = 65536;   // larger client messages: close 1009
  double rate_limit = 20;  // messages per second per socket (token bucket); finite, above 0
  double rate_burst = 40;  // bucket size; finite, at least 1 (the Handler throws otherwise)
  // (A socket that ends with its bucket not full leaves it to the next socket of its user, or,
  // with max_connections_per_ip set, of its anonymous client address: see docs/SECURITY.md.)
  // Sockets a client (the same key: a token's user, or an address with max_connections_per_ip)
  // may open per second on this pod, after a burst; past it the upgrade gets 429. Opening and
  // closing are presence events for a whole room. 0 = no limit; finite; the burst at least 1.
  double connect_rate = 20;
  double connect_burst = 40;
  std::vector<std::string> allowed_origins;  // empty: same origin only; "*": any
  std::chrono::seconds ping_interval{25};    // WebSocket ping after this much quiet
  std::chrono::seconds pong_timeout{60};     // closed when silent this long
  std::size_t send_queue_bytes = 1U << 20U;  // past it: slow consumer, close 1013
  // Replays (joins with last_id) may queue up to 16 × send_queue_bytes more; a socket whose queue
  // is past send_queue_bytes and whose client takes nothing for this long is a slow consumer too.
  std::chrono::milliseconds replay_stall_timeout{30000};
  std::size_t max_rooms_per_connection = 64;           // join past it: error too_many_rooms
  std::chrono::milliseconds handshake_timeout{10000};  // per HTTP request read and response written
  // Connections reading an HTTP request (before their upgrade, or idle between a keep-alive
  // connection's requests) or being sent a response, over all threads: a new one past it closes
  // the one that has waited longest, so clients that connect and send nothing, or read nothing,
  // cannot take every descriptor.
  std::size_t max_http_waiting = 4096;
  std::chrono::milliseconds token_grace{5000};  // after exp before close 4001
  // The routes besides /ws, /ws/{room}, /healthz and /readyz, which are always served. One turned
  // off is answered as an unknown path is (404 {"error":"not found"}), a publish's body unread:
  // an application that serves its own pages and API on another port keeps only the WebSocket
  // routes on this one.
  bool serve_api = true;        // POST /api/publish, GET /api/rooms, /api/rooms/{room}/presence
  bool serve_metrics = true;    // GET /metrics
  bool serve_chat_page = true;  // GET /, /index.html and /realtime-client.js
};

class Handler {
 public:
  // Throws std::invalid_argument for a configuration that cannot work: pong_timeout not longer
  // than ping_interval, ping_interval, handshake_timeout, max_connections or max_message_bytes
  // not above 0, a timeout over 30 days, send_queue_bytes under 1024 (the welcome would not fit),
  // a rate limit or burst out of range, auth_required without a JWT key, a JWT key that cannot
  // be used.
  Handler(Hub& hub, HandlerConfig config);
  ~Handler();
  Handler(const Handler&) = delete;
  Handler& operator=(const Handler&) = delete;

  // Binds host:port (port 0 picks a free one) with SO_REUSEADDR and starts accepting on the hub's
  // threads. A host name must resolve without blocking I/O: use an IP literal or "localhost".
  // Once per Handler: a second call fails (already_connected), as does one after shutdown() or
  // once the Hub has stopped (operation_not_permitted).
  std::error_code listen(const std::string& host, std::uint16_t port);
  // The bound port (after listen(); 0 before it, and once shutdown() has closed the listener).
  std::uint16_t port() const noexcept;
  // Stops accepting, closes every WebSocket of this Handler with 1001 (those of another Handler on
  // the same Hub stay), and returns when all are closed, after `deadline`, or when the Hub stops;
  // at once when the Hub is not running (not started, or stopped) or on one of its I/O threads.
  // Before the closes, chat its sockets sent whose publish_then() has not called back yet gets up
  // to 3/5 of `deadline` to do so (chat sent from then on is refused with `unavailable`).
  void shutdown(std::chrono::milliseconds deadline = std::chrono::seconds(5));

  const HandlerConfig& config() const noexcept;

 private:
  std::shared_ptr<detail::HandlerCore> core_;
};

}  // namespace realtime
