// RedisConnection: one hiredis asynchronous context driven by an Asio io_context.
//
// What: connects (resolve, TCP, AUTH, SELECT, PING), sends commands and hands replies back; in
// subscribe mode it also hands over pushed messages. It never reconnects by itself: a dropped
// connection is reported once through on_disconnected, and the owner decides when to call
// connect() again (RedisPublisher and RedisSubscriber do, with Backoff).
//
// Who owns it: one owner (RedisPublisher, RedisSubscriber, a test) holds it by value or
// unique_ptr and destroys it before the io_context. Pending reply handlers are dropped without
// being called when the connection is destroyed; close() completes them with connection_lost.
//
// Thread safety: none. The io_context must be run by one thread, and every member function is
// called from that thread (from a handler, or before run()). hiredis is not thread-safe; other
// threads post() to the io_context. Reply and push handlers may call back into the connection,
// including close(), and may even destroy it (hiredis defers freeing the context until the
// callback returns; the descriptor state outlives both).
//
// Pipelining: hiredis appends each command to its output buffer and asks for a write event;
// Asio reports writability on a later turn of the loop, so every command issued within one turn
// leaves in one write() (stats().write_events counts them).
//
// Host names are resolved with asio::ip::tcp::resolver (getaddrinfo on Asio's internal resolver
// thread, never on the I/O thread); IP literals go straight to hiredis' non-blocking connect.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "redis/redis_url.hpp"

struct redisReply;  // hiredis

namespace spdlog {
class logger;
}

namespace realtime::detail {

enum class RedisErrc {
  not_connected = 1,  // issued while no connection is ready (down, connecting, reconnecting)
  queue_full,         // too many commands (or bytes) awaiting replies: the server is not keeping up
  connection_lost,    // the connection dropped or was closed before the reply arrived
  connect_failed,     // TCP connect refused, unreachable, ...
  resolve_failed,     // the host name did not resolve
  timeout,            // connect + handshake, or a reply, took too long
  handshake_failed,   // a setup step was refused: AUTH, SELECT, PING, INFO or the restart check
  server_error,       // Redis answered with an error reply (the reply carries its text)
  bad_command,        // empty, a subscribe-family command on command(), or refused by hiredis
};

const std::error_category& redis_category() noexcept;
std::error_code make_error_code(RedisErrc e) noexcept;

}  // namespace realtime::detail

template <>
struct std::is_error_code_enum<realtime::detail::RedisErrc> : std::true_type {};

namespace realtime::detail {

// A reply, copied out of hiredis' reader so it can outlive the callback.
struct RedisReply {
  enum class Type : std::uint8_t { nil, status, error, integer, string, array };
  Type type = Type::nil;
  long long integer = 0;
  std::string str;  // status, error and string replies
  std::vector<RedisReply> elements;
};

// The value of `field` in an INFO answer ("run_id" in "...\r\nrun_id:abc\r\n..."), or "".
std::string info_field(std::string_view info, std::string_view field);

// The copy of one of hiredis' replies (also for tests that talk to Redis with hiredis directly).
RedisReply to_reply(const redisReply& r);

// What a subscribe-mode connection receives. The views are valid only during the call.
struct RedisPush {
  enum class Kind : std::uint8_t { message, subscribed, unsubscribed };
  Kind kind = Kind::message;
  std::string_view channel;
  std::string_view payload;  // message only
  long long count = 0;       // subscribed / unsubscribed: channels this connection now has
};

// Capped exponential backoff with full jitter: attempt n waits uniform(0, min(cap, base * 2^n)).
// Owned by value by whoever reconnects; not thread-safe.
class Backoff {
 public:
  struct Options {
    std::chrono::milliseconds base{100};  // first retry within 100 ms: a restart is often quick
    // Never wait longer than 1 s between attempts: while a pod waits, its messages reach only its
    // own sockets (and it does not receive the other pods'); an attempt costs Redis little.
    std::chrono::milliseconds cap{1000};
  };
  explicit Backoff(Options options);
  std::chrono::milliseconds next();  // the delay before the next attempt; counts the attempt
  void reset() noexcept { attempt_ = 0; }
  unsigned attempts() const noexcept { return attempt_; }

 private:
  Options options_;
  unsigned attempt_ = 0;
  std::minstd_rand rng_;
};

// The warnings of a connection that keeps failing to come back (an attempt every second at most):
// the first failure, then at most one per interval, each saying how many were left out. Not
// thread-safe; owned by whoever reconnects.
class FailureLog {
 public:
  explicit FailureLog(std::chrono::milliseconds interval) : interval_(interval) {}
  // Whether to log this failure: then what to add to its line (how many were left out since the
  // last one logged, or nothing), else nullopt.
  std::optional<std::string> next();
  void reset() noexcept;  // connected again: its next failure is logged

 private:
  std::chrono::milliseconds interval_;
  std::chrono::steady_clock::time_point last_{};
  std::uint64_t left_out_ = 0;
};

struct RedisConnectionOptions {
  RedisUrl url;
  // Also sent as CLIENT SETNAME when not empty (no spaces), so `CLIENT LIST` tells pods apart.
  std::string client_name;
  // Resolve + TCP connect + AUTH/SELECT/PING; past it the attempt fails with RedisErrc::timeout.
  std::chrono::milliseconds connect_timeout{3000};
  // Commands awaiting a reply, by count and by argument bytes: past either, command() refuses
  // with queue_full so a stalled server cannot grow our memory.
  std::size_t max_pending = 10'000;
  std::size_t max_pending_bytes = std::size_t{32} << 20;
  // When not empty, the last step of the handshake: the connection reads the server's run_id
  // (INFO server) and EVALs this script with it as ARGV[1] before it is ready, so the script runs
  // before any other command of this connection reaches a server that has just (re)started. A
  // server that refuses INFO (an ACL without it) is used without the check, with a warning once
  // per process; an error answer to the script fails the handshake.
  std::string restart_check_script;
};

class RedisConnection {
 public:
  // closing: the server closed the connection and the loop has not read it yet (see command()).
  enum class State : std::uint8_t { disconnected, connecting, ready, closing };

  using ReplyHandler = std::function<void(std::error_code, const RedisReply&)>;
  using ConnectedHandler = std::function<void()>;
  using DisconnectedHandler = std::function<void(std::error_code, const std::string& reason)>;
  using PushHandler = std::function<void(const RedisPush&)>;

  struct Stats {
    std::uint64_t commands = 0;      // commands queued to hiredis (handshake included)
    std::uint64_t write_events = 0;  // writes hiredis performed: fewer than commands = pipelined
    std::uint64_t read_events = 0;
    std::uint64_t connects = 0;  // connections that became ready
  };

  RedisConnection(boost::asio::io_context& io, RedisConnectionOptions options,
                  std::shared_ptr<spdlog::logger> log);
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // Events are posted to the io_context, never called from inside connect(), close() or hiredis.
  // on_disconnected fires once per connect() that does not end in close(): a failed attempt or a
  // lost connection. Events of a connection that close() or a later connect() superseded before
  // they ran are not delivered.
  void set_on_connected(ConnectedHandler handler) { on_connected_ = std::move(handler); }
  void set_on_disconnected(DisconnectedHandler handler) { on_disconnected_ = std::move(handler); }
  // Subscribe-mode traffic; called synchronously from hiredis' read handling.
  void set_on_push(PushHandler handler) { on_push_ = std::move(handler); }

  // Starts connecting if disconnected; otherwise does nothing.
  void connect();
  // Drops the connection at once (no QUIT); pending handlers get connection_lost, posted.
  // No on_disconnected for it.
  void close();

  // Queues a command. On success `done` is called exactly once (reply, server_error with the
  // reply's text, or connection_lost). On failure the error is returned and `done` is not
  // called: not_connected, queue_full, bad_command. `done` may be empty (fire and forget).
  std::error_code command(std::span<const std::string_view> args, ReplyHandler done);
  std::error_code command(const std::vector<std::string>& args, ReplyHandler done);

  // Subscribe mode: replies and messages arrive through on_push. Only SUBSCRIBE/UNSUBSCRIBE
  // (and their replies) may be used on a connection once it subscribed.
  std::error_code subscribe(std::span<const std::string> channels);
  std::error_code unsubscribe(std::span<const std::string> channels);

  State state() const noexcept { return state_; }
  bool ready() const noexcept { return state_ == State::ready; }
  std::size_t pending() const noexcept { return pending_; }
  // How long the oldest unanswered command has waited (zero when none): a wedged server shows here.
  std::chrono::steady_clock::duration oldest_pending_age() const;
  const Stats& stats() const noexcept { return stats_; }
  const RedisConnectionOptions& options() const noexcept { return options_; }
  // The run_id the restart check last ran with ("" before, or without the check).
  const std::string& server_run() const noexcept { return server_run_; }

 private:
  struct Link;  // one hiredis context and its descriptor; outlives us while hiredis holds it
  struct PendingCommand;
  friend struct Link;

  void start_tcp(const std::string& ip);
  void on_tcp_connected();
  // The server closed the connection and its read event has not run yet: `closing` from then.
  bool closed_by_server();
  // Sends a command of the handshake; `next` runs only while this attempt is still connecting.
  bool handshake_send(std::vector<std::string_view> args, ReplyHandler next);
  void on_handshake_reply(std::error_code ec, const RedisReply& reply, const char* step);
  void fail_handshake(std::error_code ec, const RedisReply& reply, std::string_view step);
  void check_restart();
  void become_ready();
  // The context is gone or going: forget it, fail what waits, report (unless closing ourselves).
  void drop_link(std::error_code ec, const std::string& reason, bool free_context, bool notify);
  std::error_code send(std::span<const std::string_view> args, ReplyHandler done, bool internal);
  std::error_code send_pubsub(std::string_view verb, std::span<const std::string> channels);
  void note_reply(std::size_t bytes);
  void post_disconnected(std::error_code ec, std::string reason);

  boost::asio::io_context& io_;
  RedisConnectionOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  boost::asio::ip::tcp::resolver resolver_;
  boost::asio::steady_timer connect_timer_;

  State state_ = State::disconnected;
  std::uint64_t attempt_ = 0;  // tells a stale resolve or timer completion from the current one
  std::shared_ptr<Link> link_;
  int handshake_left_ = 0;
  std::string server_run_;

  std::size_t pending_ = 0;
  std::size_t pending_bytes_ = 0;
  std::deque<std::chrono::steady_clock::time_point> sent_at_;  // one per pending command, FIFO

  ConnectedHandler on_connected_;
  DisconnectedHandler on_disconnected_;
  PushHandler on_push_;
  Stats stats_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // weak copies guard posted handlers
};

// Wraps `f` so that it does nothing once `token` has expired (its owner was destroyed).
template <class F>
auto guarded(const std::shared_ptr<int>& token, F f) {
  return [weak = std::weak_ptr<int>(token), f = std::move(f)](auto&&... args) mutable {
    if (weak.expired()) return;
    f(std::forward<decltype(args)>(args)...);
  };
}

}  // namespace realtime::detail
