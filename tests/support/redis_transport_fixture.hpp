// Test support for the Redis transport tests (test_redis_connection.cpp, test_redis_pubsub.cpp):
// a quiet logger, a loop run until a condition holds, and a publisher + subscriber pair on one
// real redis-server with fast timings. Header-only.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "redis/redis_publisher.hpp"
#include "redis/redis_subscriber.hpp"
#include "redis/redis_url.hpp"
#include "support/redis_server.hpp"

namespace realtime::detail::transport_test {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using Args = std::vector<std::string>;

inline std::shared_ptr<spdlog::logger> test_logger() {
  auto log = std::make_shared<spdlog::logger>("redis-test",
                                              std::make_shared<spdlog::sinks::stderr_sink_mt>());
  log->set_level(spdlog::level::warn);
  return log;
}

// Runs the loop until `done()` holds or `timeout` passes; false on timeout.
template <class Pred>
inline bool run_until(asio::io_context& io, Pred done, std::chrono::milliseconds timeout = 5000ms) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    if (io.stopped()) io.restart();
    io.run_one_for(5ms);
  }
  return true;
}

inline RedisUrl url_of(const test::RedisServer& server, int db = 0) {
  auto parsed = parse_redis_url(server.url(db));
  EXPECT_TRUE(parsed) << parsed.error;
  return parsed.url.value_or(RedisUrl{});
}

inline test::RedisServer::Options with_password(std::string password) {
  test::RedisServer::Options options;
  options.password = std::move(password);
  return options;
}

struct Received {
  std::vector<std::pair<std::string, std::string>> messages;
  bool contains(const std::string& channel, const std::string& payload) const {
    for (const auto& [c, p] : messages) {
      if (c == channel && p == payload) return true;
    }
    return false;
  }
};

// A publisher and a subscriber on one server, with fast timings so failures show quickly. The
// default heartbeat timeout leaves room for a machine that stalls the test for a while (a loop
// that does not run past it rebuilds the subscription, and counts of commands would be off): the
// tests of the liveness check pass their own.
struct PubSubPair {
  PubSubPair(asio::io_context& io, const test::RedisServer& server,
             std::chrono::milliseconds heartbeat_interval = 100ms,
             std::chrono::milliseconds heartbeat_timeout = 3000ms)
      : publisher(io, publisher_options(server), log),
        subscriber(io, subscriber_options(server, heartbeat_interval, heartbeat_timeout), publisher,
                   log) {
    subscriber.set_on_message([this](std::string_view channel, std::string_view payload) {
      received.messages.emplace_back(channel, payload);
    });
    publisher.start();
    subscriber.start();
  }

  static RedisPublisherOptions publisher_options(const test::RedisServer& server) {
    RedisPublisherOptions o;
    o.url = url_of(server);
    o.client_name = "test-pub";
    o.backoff = {50ms, 500ms};
    o.connect_timeout = 1000ms;
    return o;
  }
  static RedisSubscriberOptions subscriber_options(const test::RedisServer& server,
                                                   std::chrono::milliseconds interval,
                                                   std::chrono::milliseconds timeout) {
    RedisSubscriberOptions o;
    o.url = url_of(server);
    o.client_name = "test-sub";
    o.control_channel = "realtime:control:test-pod";
    o.heartbeat_interval = interval;
    o.heartbeat_timeout = timeout;
    o.backoff = {50ms, 500ms};
    o.connect_timeout = 1000ms;
    return o;
  }

  std::shared_ptr<spdlog::logger> log = test_logger();
  RedisPublisher publisher;
  RedisSubscriber subscriber;
  Received received;
};

// Publishes until the subscriber receives it (a message sent before the subscription took
// effect is legitimately lost, so retry rather than sleep).
inline bool round_trip(asio::io_context& io, PubSubPair& pair, const std::string& channel,
                       const std::string& payload, std::chrono::milliseconds timeout = 5000ms) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    pair.publisher.publish(channel, payload);
    if (run_until(
            io, [&] { return pair.received.contains(channel, payload); }, 200ms)) {
      return true;
    }
  }
  return false;
}

// --- RedisConnection ----------------------------------------------------------------------------
}  // namespace realtime::detail::transport_test
