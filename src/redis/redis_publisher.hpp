// RedisPublisher: a command connection to Redis that keeps itself connected.
//
// What: PUBLISH (fire and forget, failures counted and reported) and generic commands (SET with
// EX for leases, HSET, ...) over one RedisConnection, which it rebuilds after a loss with capped,
// jittered exponential backoff. A command unanswered for `command_timeout` means a wedged
// server or half-dead TCP connection: the connection is rebuilt.
//
// Who owns it: the broadcaster (or a test), destroyed before the io_context. A RedisSubscriber
// borrows it to publish its heartbeats and must be destroyed first.
//
// Thread safety: none; as RedisConnection, every call on the io_context's single thread. Handlers
// must not destroy the publisher.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "redis/redis_connection.hpp"
#include "redis/redis_url.hpp"

namespace realtime::detail {

struct RedisPublisherOptions {
  RedisUrl url;
  std::string client_name;  // CLIENT SETNAME, e.g. "realtime-pub-<pod>"
  std::chrono::milliseconds connect_timeout{3000};
  // An unanswered command older than this rebuilds the connection (Redis answers in microseconds;
  // 5 s is far beyond a slow command and soon enough for /readyz).
  std::chrono::milliseconds command_timeout{5000};
  Backoff::Options backoff{};
  std::size_t max_pending = 10'000;
  std::size_t max_pending_bytes = std::size_t{32} << 20;
  // At most one "publish failed" warning per interval; the others are counted into the next one.
  std::chrono::milliseconds warn_interval{5000};
  // Run on each connection before it is ready (RedisConnectionOptions::restart_check_script).
  std::string restart_check_script;
};

class RedisPublisher {
 public:
  using ReplyHandler = RedisConnection::ReplyHandler;
  // Called for every failed publish (refused while down, error reply, connection lost).
  using PublishErrorHandler = std::function<void(std::string_view channel, std::error_code ec)>;
  // Called when the connection comes up (true) or goes down (false, with the reason).
  using StateHandler = std::function<void(bool connected, const std::string& reason)>;

  struct Stats {
    std::uint64_t published = 0;       // PUBLISH commands answered by Redis
    std::uint64_t publish_errors = 0;  // PUBLISH refused or failed
    std::uint64_t reconnects = 0;      // connections established after the first
    std::uint64_t connect_failures = 0;
    std::uint64_t command_timeouts = 0;  // rebuilds because a reply was overdue
  };

  RedisPublisher(boost::asio::io_context& io, RedisPublisherOptions options,
                 std::shared_ptr<spdlog::logger> log);
  ~RedisPublisher();
  RedisPublisher(const RedisPublisher&) = delete;
  RedisPublisher& operator=(const RedisPublisher&) = delete;

  void set_on_publish_error(PublishErrorHandler handler) { on_publish_error_ = std::move(handler); }
  void set_on_state_change(StateHandler handler) { on_state_change_ = std::move(handler); }

  void start();  // connects; reconnects on its own until stop()
  // Waiting to reconnect: tries now instead (another connection to the same Redis just came up).
  void retry_now();
  void stop();  // closes; pending handlers get connection_lost

  // PUBLISH channel payload. Failures are counted, reported through on_publish_error and logged
  // (rate-limited); `done`, when given, also receives the outcome (the reply is the number of
  // receivers). Never blocks, never queues past the connection's bounds.
  void publish(std::string_view channel, std::string_view payload, ReplyHandler done = {});

  // Any non-subscribe command; same contract as RedisConnection::command.
  std::error_code command(std::span<const std::string_view> args, ReplyHandler done);
  std::error_code command(const std::vector<std::string>& args, ReplyHandler done);

  bool connected() const noexcept { return connection_.ready(); }
  const Stats& stats() const noexcept { return stats_; }
  const RedisConnection& connection() const noexcept { return connection_; }

 private:
  void on_connected();
  void on_disconnected(std::error_code ec, const std::string& reason);
  void schedule_reconnect();
  void schedule_watchdog();
  void on_watchdog();
  void count_publish_error(std::string_view channel, std::error_code ec, std::string_view detail);

  boost::asio::io_context& io_;
  RedisPublisherOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  RedisConnection connection_;
  Backoff backoff_;
  FailureLog failures_{std::chrono::seconds(5)};  // reconnection warnings
  boost::asio::steady_timer reconnect_timer_;
  boost::asio::steady_timer watchdog_timer_;
  bool started_ = false;
  bool ever_connected_ = false;

  std::chrono::steady_clock::time_point last_warning_{};
  std::uint64_t suppressed_warnings_ = 0;

  PublishErrorHandler on_publish_error_;
  StateHandler on_state_change_;
  Stats stats_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace realtime::detail
