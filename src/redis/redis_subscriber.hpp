// RedisSubscriber: the subscribe-mode connection, with reference-counted channels and a heartbeat.
//
// What: add(channel) / remove(channel) count references; a channel is SUBSCRIBEd on its first
// reference and UNSUBSCRIBEd on its last, and all changes of one loop turn leave as one
// SUBSCRIBE and one UNSUBSCRIBE. when_subscribed() tells when Redis has confirmed channels (a new
// socket's welcome waits for it). Messages go to on_message. A lost connection is rebuilt with
// capped, jittered exponential backoff and every active channel subscribed again.
// Liveness: every heartbeat_interval the companion publisher PUBLISHes a token on
// `control_channel`, which this connection subscribes to (what else is published there goes to
// on_message). No heartbeat within heartbeat_timeout
// while connected means the subscription is wedged (a stalled server, a half-dead TCP
// connection): the subscriber reports unhealthy, then closes and rebuilds its connection.
// healthy() is what /readyz needs: a heartbeat went through Redis and back recently.
//
// Who owns it: the broadcaster (or a test); it borrows the RedisPublisher, which must outlive it;
// both are destroyed before the io_context.
//
// Thread safety: none; every call on the io_context's single thread (see RedisConnection).
// on_message runs inside hiredis' read handling: it may call add()/remove() but must not
// destroy the subscriber. The views it receives are valid only during the call.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "redis/redis_connection.hpp"
#include "redis/redis_url.hpp"

namespace realtime::detail {

class RedisPublisher;

struct RedisSubscriberOptions {
  RedisUrl url;
  std::string client_name;  // CLIENT SETNAME, e.g. "realtime-sub-<pod>"
  // Heartbeats travel here; one per pod so pods do not answer for each other.
  std::string control_channel = "realtime:control";
  std::chrono::milliseconds heartbeat_interval{1000};
  // Three missed intervals: one late heartbeat is not yet an outage.
  std::chrono::milliseconds heartbeat_timeout{3000};
  std::chrono::milliseconds connect_timeout{3000};
  Backoff::Options backoff{};
  // Channels per SUBSCRIBE/UNSUBSCRIBE command: keeps one command (and Redis' reply burst) small.
  std::size_t max_channels_per_command = 1024;
};

class RedisSubscriber {
 public:
  using MessageHandler = std::function<void(std::string_view channel, std::string_view payload)>;
  // Called when the health changes, or its reason does (why it is not healthy, for /readyz).
  using HealthHandler = std::function<void(bool healthy, const std::string& reason)>;
  using Clock = std::chrono::steady_clock;

  struct Stats {
    std::uint64_t messages = 0;          // delivered to on_message (heartbeats excluded)
    std::uint64_t reconnects = 0;        // connections established after the first
    std::uint64_t connect_failures = 0;  // attempts that failed, and connections lost
    std::uint64_t heartbeats_sent = 0;
    std::uint64_t heartbeats_received = 0;
    std::uint64_t heartbeats_missed = 0;   // intervals that ended without the heartbeat back
    std::uint64_t wedged = 0;              // rebuilds because heartbeats stopped arriving
    std::uint64_t subscribe_commands = 0;  // SUBSCRIBE commands sent (batching shows here)
    std::uint64_t unsubscribe_commands = 0;
  };

  RedisSubscriber(boost::asio::io_context& io, RedisSubscriberOptions options,
                  RedisPublisher& heartbeat_publisher, std::shared_ptr<spdlog::logger> log);
  ~RedisSubscriber();
  RedisSubscriber(const RedisSubscriber&) = delete;
  RedisSubscriber& operator=(const RedisSubscriber&) = delete;

  void set_on_message(MessageHandler handler) { on_message_ = std::move(handler); }
  // Called on every change of healthy(), with the reason when it becomes false.
  void set_on_health_change(HealthHandler handler) { on_health_change_ = std::move(handler); }
  // Called each time a connection to Redis is established (before the heartbeat proves it).
  void set_on_connected(std::function<void()> handler) { on_connected_ = std::move(handler); }

  void start();  // connects; reconnects on its own until stop()
  // Waiting to reconnect: tries now instead (another connection to the same Redis just came up).
  void retry_now();
  void stop();

  // Reference-counted interest in a channel; effective on the next loop turn. remove() of a
  // channel without references is ignored. The control channel is reserved.
  void add(std::string_view channel);
  void remove(std::string_view channel);

  std::size_t ref_count(std::string_view channel) const;
  std::size_t channel_count() const noexcept { return refs_.size(); }
  // Redis confirmed the subscription on the current connection.
  bool subscribed(std::string_view channel) const { return confirmed_.contains(channel); }
  // Rebuilds the connection now if it has gone without a heartbeat past heartbeat_timeout, as the
  // next tick would: after this process was stopped, say, before trusting what subscribed() says.
  void check_liveness();
  // Runs `done` once every channel is confirmed or removed (add() them first), or at once when
  // they are, when the subscriber is stopped or its connection is down (nothing to wait for), when
  // the connection is lost meanwhile, or (checked each heartbeat interval) after `deadline`. It
  // checks liveness first; a connection rebuilt because its heartbeats stopped is not "down": the
  // wait goes on to the next.
  void when_subscribed(std::vector<std::string> channels, Clock::time_point deadline,
                       std::function<void()> done);

  bool healthy() const noexcept { return healthy_; }
  const std::string& health_reason() const noexcept { return health_reason_; }
  const Stats& stats() const noexcept { return stats_; }

 private:
  void on_connected();
  void on_disconnected(const std::string& reason);
  void on_push(const RedisPush& push);
  void on_heartbeat();
  void schedule_reconnect();
  void schedule_flush();
  void flush();
  void send_batched(bool subscribe, const std::vector<std::string>& channels);
  void schedule_tick();
  void tick();
  // The wedge check of tick(): true when it closed the connection to rebuild it.
  bool rebuild_if_wedged();
  void send_heartbeat();
  void set_health(bool healthy, std::string reason);

  struct Waiter {
    std::size_t missing = 0;  // channels not yet confirmed
    Clock::time_point deadline;
    std::function<void()> done;  // empty once run
  };
  // Runs the waiters past their deadline (every waiter when `all`).
  void release_waiters(bool all);
  // `channel` is confirmed, or no longer wanted: its waiters stop waiting for it.
  void settle(std::string_view channel);

  boost::asio::io_context& io_;
  RedisSubscriberOptions options_;
  RedisPublisher& publisher_;
  std::shared_ptr<spdlog::logger> log_;
  RedisConnection connection_;
  Backoff backoff_;
  FailureLog failures_{std::chrono::seconds(5)};  // reconnection warnings
  boost::asio::steady_timer reconnect_timer_;
  boost::asio::steady_timer tick_timer_;

  bool started_ = false;
  bool ever_connected_ = false;
  bool session_ = false;  // on_connected ran for the current connection: SUBSCRIBEs may flow

  std::map<std::string, std::size_t, std::less<>> refs_;  // wanted channels and their counts
  std::set<std::string, std::less<>> requested_;  // SUBSCRIBE sent on this connection, not undone
  std::set<std::string, std::less<>> confirmed_;  // subscribed as Redis confirmed
  std::set<std::string, std::less<>> dirty_;      // changed this turn
  bool flush_posted_ = false;
  bool down_ = false;  // the last connection attempt failed, or the connection was lost
  // when_subscribed(): waiters by the channels they miss, and every waiter in deadline order.
  std::map<std::string, std::vector<std::shared_ptr<Waiter>>, std::less<>> waiters_;
  std::deque<std::shared_ptr<Waiter>> waiter_deadlines_;

  std::string heartbeat_prefix_;  // random per instance, shows in MONITOR and logs
  std::uint64_t heartbeat_seq_ = 0;
  bool heartbeat_outstanding_ = false;
  Clock::time_point liveness_base_{};  // last heartbeat back, or when watching started

  bool healthy_ = false;
  std::string health_reason_ = "not started";

  MessageHandler on_message_;
  HealthHandler on_health_change_;
  std::function<void()> on_connected_;
  Stats stats_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace realtime::detail
