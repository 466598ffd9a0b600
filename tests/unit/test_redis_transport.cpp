// The Redis transport against a real redis-server: commands, pipelining, pub/sub with reference
// counting and batching, reconnection, heartbeat liveness, AUTH and SELECT.
#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <gtest/gtest.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "redis/redis_connection.hpp"
#include "redis/redis_publisher.hpp"
#include "redis/redis_subscriber.hpp"
#include "redis/redis_url.hpp"
#include "support/redis_server.hpp"

namespace realtime::detail {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using Args = std::vector<std::string>;

std::shared_ptr<spdlog::logger> test_logger() {
  auto log = std::make_shared<spdlog::logger>("redis-test",
                                              std::make_shared<spdlog::sinks::stderr_sink_mt>());
  log->set_level(spdlog::level::warn);
  return log;
}

// Runs the loop until `done()` holds or `timeout` passes; false on timeout.
template <class Pred>
bool run_until(asio::io_context& io, Pred done, std::chrono::milliseconds timeout = 5000ms) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    if (io.stopped()) io.restart();
    io.run_one_for(5ms);
  }
  return true;
}

RedisUrl url_of(const test::RedisServer& server, int db = 0) {
  auto parsed = parse_redis_url(server.url(db));
  EXPECT_TRUE(parsed) << parsed.error;
  return parsed.url.value_or(RedisUrl{});
}

test::RedisServer::Options with_password(std::string password) {
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

// A publisher and a subscriber on one server, with fast timings so failures show quickly.
struct PubSubPair {
  PubSubPair(asio::io_context& io, const test::RedisServer& server,
             std::chrono::milliseconds heartbeat_interval = 100ms,
             std::chrono::milliseconds heartbeat_timeout = 600ms)
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
bool round_trip(asio::io_context& io, PubSubPair& pair, const std::string& channel,
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

TEST(RedisConnection, CommandsRepliesAndErrors) {
  test::RedisServer server;
  asio::io_context io;
  RedisConnectionOptions options;
  options.url = url_of(server);
  RedisConnection conn(io, options, test_logger());

  EXPECT_EQ(conn.command(Args{"PING"}, {}), make_error_code(RedisErrc::not_connected));

  bool connected = false;
  conn.set_on_connected([&] { connected = true; });
  conn.connect();
  ASSERT_TRUE(run_until(io, [&] { return connected; }));
  EXPECT_TRUE(conn.ready());

  std::string value;
  bool got = false;
  ASSERT_FALSE(conn.command(Args{"SET", "k", "v a l"}, {}));
  ASSERT_FALSE(conn.command(Args{"GET", "k"}, [&](std::error_code ec, const RedisReply& reply) {
    EXPECT_FALSE(ec);
    EXPECT_EQ(reply.type, RedisReply::Type::string);
    value = reply.str;
    got = true;
  }));
  ASSERT_TRUE(run_until(io, [&] { return got; }));
  EXPECT_EQ(value, "v a l");

  std::error_code error;
  RedisReply error_reply;
  ASSERT_FALSE(conn.command(Args{"NOSUCHCOMMAND"}, [&](std::error_code ec, const RedisReply& r) {
    error = ec;
    error_reply = r;
  }));
  ASSERT_TRUE(run_until(io, [&] { return bool(error); }));
  EXPECT_EQ(error, make_error_code(RedisErrc::server_error));
  EXPECT_EQ(error_reply.type, RedisReply::Type::error);
  EXPECT_NE(error_reply.str.find("unknown command"), std::string::npos);

  EXPECT_EQ(conn.command(Args{"SUBSCRIBE", "x"}, {}), make_error_code(RedisErrc::bad_command));
  EXPECT_EQ(conn.command(Args{}, {}), make_error_code(RedisErrc::bad_command));
  EXPECT_EQ(conn.pending(), 0u);
}

TEST(RedisConnection, CommandsOfOneTurnLeaveInOneWrite) {
  test::RedisServer server;
  asio::io_context io;
  RedisConnectionOptions options;
  options.url = url_of(server);
  RedisConnection conn(io, options, test_logger());
  bool connected = false;
  conn.set_on_connected([&] { connected = true; });
  conn.connect();
  ASSERT_TRUE(run_until(io, [&] { return connected; }));

  constexpr int kCommands = 200;
  const auto writes_before = conn.stats().write_events;
  int replies = 0;
  long long last = 0;
  asio::post(io, [&] {
    for (int i = 0; i < kCommands; ++i) {
      ASSERT_FALSE(
          conn.command(Args{"INCR", "counter"}, [&](std::error_code ec, const RedisReply& r) {
            EXPECT_FALSE(ec);
            last = r.integer;
            ++replies;
          }));
    }
  });
  ASSERT_TRUE(run_until(io, [&] { return replies == kCommands; }));
  EXPECT_EQ(last, kCommands);  // replies come back in order
  EXPECT_EQ(conn.stats().write_events - writes_before, 1u);
}

TEST(RedisConnection, PendingCommandsAreBounded) {
  test::RedisServer server;
  asio::io_context io;
  RedisConnectionOptions options;
  options.url = url_of(server);
  options.max_pending = 3;
  RedisConnection conn(io, options, test_logger());
  bool connected = false;
  conn.set_on_connected([&] { connected = true; });
  conn.connect();
  ASSERT_TRUE(run_until(io, [&] { return connected; }));

  int replies = 0;
  auto count = [&](std::error_code, const RedisReply&) { ++replies; };
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(conn.command(Args{"PING"}, count));
  EXPECT_EQ(conn.command(Args{"PING"}, count), make_error_code(RedisErrc::queue_full));
  ASSERT_TRUE(run_until(io, [&] { return replies == 3; }));
  EXPECT_FALSE(conn.command(Args{"PING"}, count));  // room again once answered
  ASSERT_TRUE(run_until(io, [&] { return replies == 4; }));
}

TEST(RedisConnection, ConnectFailureIsReported) {
  asio::io_context io;
  RedisConnectionOptions options;
  options.url.host = "127.0.0.1";
  options.url.port = test::free_loopback_port();  // nothing listens there
  RedisConnection conn(io, options, test_logger());
  std::error_code error;
  std::string reason;
  conn.set_on_disconnected([&](std::error_code ec, const std::string& why) {
    error = ec;
    reason = why;
  });
  conn.connect();
  ASSERT_TRUE(run_until(io, [&] { return bool(error); }));
  EXPECT_EQ(error, make_error_code(RedisErrc::connect_failed));
  EXPECT_FALSE(reason.empty());
  EXPECT_EQ(conn.state(), RedisConnection::State::disconnected);
}

TEST(RedisConnection, ResolvesLocalhost) {
  test::RedisServer server;
  asio::io_context io;
  RedisConnectionOptions options;
  options.url.host = "localhost";
  options.url.port = server.port();
  RedisConnection conn(io, options, test_logger());
  bool connected = false;
  conn.set_on_connected([&] { connected = true; });
  conn.connect();
  EXPECT_TRUE(run_until(io, [&] { return connected; }));
}

TEST(RedisConnection, CloseCompletesPendingWithConnectionLost) {
  test::RedisServer server;
  asio::io_context io;
  RedisConnectionOptions options;
  options.url = url_of(server);
  RedisConnection conn(io, options, test_logger());
  bool connected = false;
  bool disconnected_event = false;
  conn.set_on_connected([&] { connected = true; });
  conn.set_on_disconnected([&](std::error_code, const std::string&) { disconnected_event = true; });
  conn.connect();
  ASSERT_TRUE(run_until(io, [&] { return connected; }));

  std::error_code error;
  ASSERT_FALSE(
      conn.command(Args{"PING"}, [&](std::error_code ec, const RedisReply&) { error = ec; }));
  conn.close();
  ASSERT_TRUE(run_until(io, [&] { return bool(error); }));
  EXPECT_EQ(error, make_error_code(RedisErrc::connection_lost));
  EXPECT_FALSE(disconnected_event);

  // The same object connects again.
  connected = false;
  conn.connect();
  EXPECT_TRUE(run_until(io, [&] { return connected; }));
}

TEST(RedisConnection, MayBeDestroyedFromItsOwnReplyHandler) {
  test::RedisServer server;
  asio::io_context io;
  RedisConnectionOptions options;
  options.url = url_of(server);
  auto conn = std::make_unique<RedisConnection>(io, options, test_logger());
  bool connected = false;
  conn->set_on_connected([&] { connected = true; });
  conn->connect();
  ASSERT_TRUE(run_until(io, [&] { return connected; }));

  int second_called = 0;
  bool destroyed = false;
  // Both replies arrive in one read: the first handler destroys the connection, the second
  // handler is dropped (destruction discards pending handlers).
  asio::post(io, [&] {
    ASSERT_FALSE(conn->command(Args{"PING"}, [&](std::error_code, const RedisReply&) {
      conn.reset();
      destroyed = true;
    }));
    ASSERT_FALSE(
        conn->command(Args{"PING"}, [&](std::error_code, const RedisReply&) { ++second_called; }));
  });
  ASSERT_TRUE(run_until(io, [&] { return destroyed; }));
  io.restart();
  io.run_for(20ms);
  EXPECT_EQ(second_called, 0);
}

// --- AUTH and SELECT ----------------------------------------------------------------------------

TEST(RedisAuth, PasswordAndDatabase) {
  test::RedisServer server(with_password("s3cr%t@x"));
  asio::io_context io;
  auto log = test_logger();

  // Percent-encoded password in the URL, database 3.
  auto parsed =
      parse_redis_url("redis://:s3cr%25t%40x@127.0.0.1:" + std::to_string(server.port()) + "/3");
  ASSERT_TRUE(parsed) << parsed.error;
  RedisConnectionOptions options;
  options.url = *parsed.url;
  RedisConnection conn(io, options, log);
  bool connected = false;
  conn.set_on_connected([&] { connected = true; });
  conn.connect();
  ASSERT_TRUE(run_until(io, [&] { return connected; }));
  bool stored = false;
  ASSERT_FALSE(
      conn.command(Args{"SET", "where", "db3"}, [&](std::error_code ec, const RedisReply&) {
        EXPECT_FALSE(ec);
        stored = true;
      }));
  ASSERT_TRUE(run_until(io, [&] { return stored; }));

  auto client = server.client();
  EXPECT_EQ(client.get("where"), "");  // not in db 0
  client.command({"SELECT", "3"});
  EXPECT_EQ(client.get("where"), "db3");

  // ACL form: user "default" with the same password.
  options.url.username = "default";
  RedisConnection acl(io, options, log);
  bool acl_connected = false;
  acl.set_on_connected([&] { acl_connected = true; });
  acl.connect();
  EXPECT_TRUE(run_until(io, [&] { return acl_connected; }));
}

TEST(RedisAuth, WrongPasswordIsAHandshakeFailure) {
  test::RedisServer server(with_password("right"));
  asio::io_context io;
  RedisConnectionOptions options;
  options.url = url_of(server);
  options.url.password = "wrong";
  RedisConnection conn(io, options, test_logger());
  std::error_code error;
  std::string reason;
  conn.set_on_disconnected([&](std::error_code ec, const std::string& why) {
    error = ec;
    reason = why;
  });
  conn.connect();
  ASSERT_TRUE(run_until(io, [&] { return bool(error); }));
  EXPECT_EQ(error, make_error_code(RedisErrc::handshake_failed));
  EXPECT_NE(reason.find("AUTH"), std::string::npos) << reason;

  // No password at all: the PING of the handshake is refused with NOAUTH.
  options.url.password.clear();
  RedisConnection anonymous(io, options, test_logger());
  std::error_code anonymous_error;
  anonymous.set_on_disconnected(
      [&](std::error_code ec, const std::string&) { anonymous_error = ec; });
  anonymous.connect();
  ASSERT_TRUE(run_until(io, [&] { return bool(anonymous_error); }));
  EXPECT_EQ(anonymous_error, make_error_code(RedisErrc::handshake_failed));
}

// --- publish / subscribe ------------------------------------------------------------------------

TEST(RedisPubSub, RoundTrip) {
  test::RedisServer server;
  asio::io_context io;
  PubSubPair pair(io, server);
  pair.subscriber.add("realtime:room:general");
  ASSERT_TRUE(run_until(io, [&] {
    return pair.subscriber.subscribed("realtime:room:general") && pair.subscriber.healthy();
  }));
  EXPECT_TRUE(pair.subscriber.health_reason().empty());

  bool published = false;
  long long receivers = -1;
  pair.publisher.publish("realtime:room:general", R"({"type":"chat"})",
                         [&](std::error_code ec, const RedisReply& reply) {
                           EXPECT_FALSE(ec);
                           receivers = reply.integer;
                           published = true;
                         });
  ASSERT_TRUE(run_until(io, [&] {
    return published && pair.received.contains("realtime:room:general", R"({"type":"chat"})");
  }));
  EXPECT_EQ(receivers, 1);

  // Another program publishing on the channel reaches us too; other channels do not.
  auto client = server.client();
  client.publish("realtime:room:other", "nope");
  client.publish("realtime:room:general", "from redis-cli");
  ASSERT_TRUE(run_until(
      io, [&] { return pair.received.contains("realtime:room:general", "from redis-cli"); }));
  EXPECT_FALSE(pair.received.contains("realtime:room:other", "nope"));
  EXPECT_EQ(pair.subscriber.stats().messages, pair.received.messages.size());
  EXPECT_EQ(pair.publisher.stats().published, 1u);
  EXPECT_GE(pair.subscriber.stats().heartbeats_received, 1u);
}

// The owner publishes more than heartbeats on its control channel (the presence scripts' echo):
// those go to on_message; only the subscriber's own tokens count as heartbeats.
TEST(RedisPubSub, ControlChannelMessagesThatAreNotHeartbeatsGoToTheOwner) {
  test::RedisServer server;
  asio::io_context io;
  PubSubPair pair(io, server, 60s, 120s);  // one heartbeat, at the start
  ASSERT_TRUE(run_until(io, [&] { return pair.subscriber.healthy(); }));
  const auto heartbeats = pair.subscriber.stats().heartbeats_received;
  auto client = server.client();
  client.publish("realtime:control:test-pod", R"({"type":"presence"})");
  ASSERT_TRUE(run_until(io, [&] {
    return pair.received.contains("realtime:control:test-pod", R"({"type":"presence"})");
  }));
  EXPECT_EQ(pair.received.messages.size(), 1u);  // the heartbeats are not passed on
  EXPECT_EQ(pair.subscriber.stats().heartbeats_received, heartbeats);
}

TEST(RedisPubSub, PublishesOfOneTurnLeaveInOneWrite) {
  test::RedisServer server;
  asio::io_context io;
  PubSubPair pair(io, server, 10'000ms, 30'000ms);  // no heartbeat traffic during the count
  pair.subscriber.add("c");
  ASSERT_TRUE(
      run_until(io, [&] { return pair.subscriber.subscribed("c") && pair.publisher.connected(); }));
  ASSERT_TRUE(run_until(io, [&] { return pair.subscriber.healthy(); }));

  constexpr int kMessages = 100;
  const auto writes_before = pair.publisher.connection().stats().write_events;
  asio::post(io, [&] {
    for (int i = 0; i < kMessages; ++i) pair.publisher.publish("c", std::to_string(i));
  });
  ASSERT_TRUE(run_until(io, [&] { return pair.received.messages.size() == kMessages; }));
  EXPECT_EQ(pair.publisher.connection().stats().write_events - writes_before, 1u);
  for (int i = 0; i < kMessages; ++i)
    EXPECT_EQ(pair.received.messages[i].second, std::to_string(i));
}

TEST(RedisPubSub, ChangesOfOneTurnAreBatched) {
  test::RedisServer server;
  asio::io_context io;
  PubSubPair pair(io, server);
  ASSERT_TRUE(run_until(io, [&] { return pair.subscriber.healthy(); }));
  const auto subscribes_before = pair.subscriber.stats().subscribe_commands;
  const auto unsubscribes_before = pair.subscriber.stats().unsubscribe_commands;

  std::vector<std::string> channels;
  for (int i = 0; i < 50; ++i) channels.push_back("realtime:room:r" + std::to_string(i));
  asio::post(io, [&] {
    for (const auto& c : channels) pair.subscriber.add(c);
    pair.subscriber.add("realtime:room:fleeting");  // added and removed in the same turn
    pair.subscriber.remove("realtime:room:fleeting");
  });
  ASSERT_TRUE(run_until(io, [&] {
    for (const auto& c : channels) {
      if (!pair.subscriber.subscribed(c)) return false;
    }
    return true;
  }));
  EXPECT_EQ(pair.subscriber.stats().subscribe_commands, subscribes_before + 1);
  EXPECT_FALSE(pair.subscriber.subscribed("realtime:room:fleeting"));
  auto client = server.client();
  for (const auto& c : channels) EXPECT_EQ(client.numsub(c), 1) << c;
  EXPECT_EQ(client.numsub("realtime:room:fleeting"), 0);

  asio::post(io, [&] {
    for (const auto& c : channels) pair.subscriber.remove(c);
  });
  ASSERT_TRUE(run_until(io, [&] {
    for (const auto& c : channels) {
      if (pair.subscriber.subscribed(c)) return false;
    }
    return true;
  }));
  EXPECT_EQ(pair.subscriber.stats().unsubscribe_commands, unsubscribes_before + 1);
  for (const auto& c : channels) EXPECT_EQ(client.numsub(c), 0) << c;
  EXPECT_EQ(pair.subscriber.channel_count(), 0u);
}

TEST(RedisPubSub, ReferenceCounting) {
  test::RedisServer server;
  asio::io_context io;
  PubSubPair pair(io, server);
  auto client = server.client();
  const std::string channel = "realtime:room:shared";

  pair.subscriber.add(channel);
  pair.subscriber.add(channel);
  EXPECT_EQ(pair.subscriber.ref_count(channel), 2u);
  ASSERT_TRUE(run_until(io, [&] { return pair.subscriber.subscribed(channel); }));
  const auto subscribes = pair.subscriber.stats().subscribe_commands;

  pair.subscriber.remove(channel);  // 2 -> 1: still wanted
  EXPECT_EQ(pair.subscriber.ref_count(channel), 1u);
  ASSERT_TRUE(round_trip(io, pair, channel, "still here"));
  EXPECT_EQ(client.numsub(channel), 1);
  EXPECT_EQ(pair.subscriber.stats().unsubscribe_commands, 0u);

  pair.subscriber.add(channel);  // 1 -> 2: nothing to send
  ASSERT_TRUE(round_trip(io, pair, channel, "again"));
  EXPECT_EQ(pair.subscriber.stats().subscribe_commands, subscribes);

  pair.subscriber.remove(channel);
  pair.subscriber.remove(channel);  // 1 -> 0: UNSUBSCRIBE
  pair.subscriber.remove(channel);  // unbalanced: ignored
  EXPECT_EQ(pair.subscriber.ref_count(channel), 0u);
  ASSERT_TRUE(run_until(
      io, [&] { return !pair.subscriber.subscribed(channel) && client.numsub(channel) == 0; }));
  EXPECT_EQ(pair.subscriber.stats().unsubscribe_commands, 1u);
}

TEST(RedisPubSub, AQuietSubscriptionIsNotTrustedAfterThisProcessStood) {
  // The loop does not run for longer than the heartbeat timeout (as in a process stopped with
  // SIGSTOP): before its next tick, check_liveness() rebuilds the connection, so subscribed() no
  // longer vouches for a subscription that may have lost messages meanwhile, and when_subscribed()
  // waits for the new connection's confirmation.
  test::RedisServer server;
  asio::io_context io;
  PubSubPair pair(io, server, 100ms, 600ms);
  const std::string channel = "realtime:room:stood";
  pair.subscriber.add(channel);
  ASSERT_TRUE(run_until(
      io, [&] { return pair.subscriber.subscribed(channel) && pair.subscriber.healthy(); }));
  pair.subscriber.check_liveness();  // fresh: nothing happens
  EXPECT_TRUE(pair.subscriber.subscribed(channel));
  EXPECT_EQ(pair.subscriber.stats().wedged, 0u);

  std::this_thread::sleep_for(700ms);
  pair.subscriber.check_liveness();
  EXPECT_FALSE(pair.subscriber.subscribed(channel));
  EXPECT_EQ(pair.subscriber.stats().wedged, 1u);
  // A wait asked now is for the new connection (Redis is not down): not at once.
  int runs = 0;
  pair.subscriber.when_subscribed({channel}, std::chrono::steady_clock::now() + 60s,
                                  [&] { ++runs; });
  EXPECT_EQ(runs, 0);
  ASSERT_TRUE(run_until(
      io, [&] { return runs == 1; }, 5000ms));
  EXPECT_TRUE(pair.subscriber.subscribed(channel));
  // Subscribed again on the new connection, which delivers.
  ASSERT_TRUE(run_until(
      io, [&] { return pair.subscriber.subscribed(channel) && pair.subscriber.healthy(); },
      5000ms));
  ASSERT_TRUE(round_trip(io, pair, channel, "after the stand"));
}

TEST(RedisPubSub, WhenSubscribedWaitsForRedisToConfirm) {
  test::RedisServer server;
  asio::io_context io;
  PubSubPair pair(io, server);
  auto client = server.client();
  const auto far = std::chrono::steady_clock::now() + 60s;

  // Asked before the connection is up: runs once both channels are confirmed, not before.
  pair.subscriber.add("realtime:room:a");
  pair.subscriber.add("realtime:user:u");
  int runs = 0;
  long long numsub_a = -1;
  long long numsub_u = -1;
  pair.subscriber.when_subscribed({"realtime:room:a", "realtime:user:u"}, far, [&] {
    ++runs;
    numsub_a = client.numsub("realtime:room:a");
    numsub_u = client.numsub("realtime:user:u");
  });
  EXPECT_EQ(runs, 0);
  ASSERT_TRUE(run_until(io, [&] { return runs > 0; }));
  EXPECT_EQ(numsub_a, 1);
  EXPECT_EQ(numsub_u, 1);

  // Confirmed already: at once.
  pair.subscriber.when_subscribed({"realtime:room:a"}, far, [&] { ++runs; });
  EXPECT_EQ(runs, 2);

  // Redis stalled: the wait lasts until it answers.
  server.pause();
  pair.subscriber.add("realtime:room:b");
  pair.subscriber.when_subscribed({"realtime:room:b"}, far, [&] { ++runs; });
  io.run_for(150ms);
  EXPECT_EQ(runs, 2);
  server.resume();
  ASSERT_TRUE(run_until(io, [&] { return runs == 3; }));
  EXPECT_EQ(client.numsub("realtime:room:b"), 1);
  io.run_for(50ms);
  EXPECT_EQ(runs, 3);  // once
}

TEST(RedisPubSub, WhenSubscribedEndsWhenTheChannelIsNoLongerWanted) {
  // A socket that joins and leaves at once: its SUBSCRIBE may never be sent, and its output must
  // not wait for the deadline.
  test::RedisServer server;
  asio::io_context io;
  PubSubPair pair(io, server);
  ASSERT_TRUE(run_until(io, [&] { return pair.subscriber.healthy(); }));
  int runs = 0;
  pair.subscriber.add("realtime:room:brief");
  pair.subscriber.add("realtime:user:stays");
  pair.subscriber.when_subscribed({"realtime:room:brief", "realtime:user:stays"},
                                  std::chrono::steady_clock::now() + 60s, [&] { ++runs; });
  pair.subscriber.remove("realtime:room:brief");
  EXPECT_EQ(runs, 0);  // the user channel is still to be confirmed
  ASSERT_TRUE(run_until(io, [&] { return runs == 1; }));
  EXPECT_TRUE(pair.subscriber.subscribed("realtime:user:stays"));
  EXPECT_EQ(server.client().numsub("realtime:room:brief"), 0);

  pair.subscriber.add("realtime:room:brief");
  pair.subscriber.when_subscribed({"realtime:room:brief"}, std::chrono::steady_clock::now() + 60s,
                                  [&] { ++runs; });
  pair.subscriber.remove("realtime:room:brief");
  EXPECT_EQ(runs, 2);  // at once
}

TEST(RedisPubSub, WhenSubscribedEndsAtItsDeadlineOnLossAndOnStop) {
  test::RedisServer server;
  asio::io_context io;
  PubSubPair pair(io, server);  // heartbeat interval (when deadlines are checked): 100 ms
  ASSERT_TRUE(run_until(io, [&] { return pair.subscriber.healthy(); }));

  // A channel nobody added is never confirmed: the deadline ends the wait.
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + 250ms;
  std::optional<Clock::time_point> ran_at;
  pair.subscriber.when_subscribed({"realtime:room:nobody"}, deadline,
                                  [&] { ran_at = Clock::now(); });
  ASSERT_TRUE(run_until(
      io, [&] { return ran_at.has_value(); }, 3000ms));
  EXPECT_GE(*ran_at, deadline);

  // The connection lost while waiting: the waiter runs, and a wait asked while Redis is down
  // runs at once.
  int runs = 0;
  server.pause();
  pair.subscriber.add("realtime:room:c");
  pair.subscriber.when_subscribed({"realtime:room:c"}, Clock::now() + 60s, [&] { ++runs; });
  server.kill();
  ASSERT_TRUE(run_until(io, [&] { return runs == 1; }));
  pair.subscriber.when_subscribed({"realtime:room:c"}, Clock::now() + 60s, [&] { ++runs; });
  EXPECT_EQ(runs, 2);

  // stop() runs what still waits.
  server.start();
  ASSERT_TRUE(run_until(io, [&] { return pair.subscriber.subscribed("realtime:room:c"); }));
  server.pause();
  pair.subscriber.add("realtime:room:d");
  pair.subscriber.when_subscribed({"realtime:room:d"}, Clock::now() + 60s, [&] { ++runs; });
  io.run_for(20ms);
  EXPECT_EQ(runs, 2);
  pair.subscriber.stop();
  EXPECT_EQ(runs, 3);
  server.resume();
}

// --- failures -----------------------------------------------------------------------------------

TEST(RedisResilience, ServerKilledAndRestartedOnTheSamePort) {
  test::RedisServer server;
  asio::io_context io;
  PubSubPair pair(io, server);
  std::uint64_t reported_errors = 0;
  pair.publisher.set_on_publish_error(
      [&](std::string_view, std::error_code) { ++reported_errors; });
  const std::string channel = "realtime:room:survivor";
  pair.subscriber.add(channel);
  ASSERT_TRUE(round_trip(io, pair, channel, "before"));

  server.kill();
  ASSERT_TRUE(
      run_until(io, [&] { return !pair.subscriber.healthy() && !pair.publisher.connected(); }));
  const auto errors_before = pair.publisher.stats().publish_errors;
  for (int i = 0; i < 5; ++i) pair.publisher.publish(channel, "lost");
  EXPECT_EQ(pair.publisher.stats().publish_errors, errors_before + 5);
  EXPECT_GE(reported_errors, 5u);
  EXPECT_FALSE(pair.subscriber.health_reason().empty());

  // Let a few reconnect attempts fail before the server returns.
  const auto failures = pair.subscriber.stats().connect_failures;
  ASSERT_TRUE(
      run_until(io, [&] { return pair.subscriber.stats().connect_failures >= failures + 2; }));

  server.start();
  ASSERT_TRUE(run_until(
      io, [&] { return pair.subscriber.subscribed(channel) && pair.subscriber.healthy(); },
      5000ms));
  EXPECT_TRUE(round_trip(io, pair, channel, "after", 3000ms));
  EXPECT_EQ(server.client().numsub(channel), 1);
  EXPECT_GE(pair.subscriber.stats().reconnects, 1u);
  EXPECT_GE(pair.publisher.stats().reconnects, 1u);
}

// A connection waiting out a long backoff reconnects at once when told another connection to the
// same Redis came up (retry_now): the broadcaster does so after a restart of Redis, so that its
// subscription does not lag seconds behind its publishing connections.
TEST(RedisResilience, RetryNowCutsAReconnectBackoffShort) {
  test::RedisServer server;
  asio::io_context io;
  auto publisher_options = PubSubPair::publisher_options(server);
  publisher_options.backoff = {60s, 60s};  // without retry_now: up to a minute
  auto subscriber_options = PubSubPair::subscriber_options(server, 100ms, 600ms);
  subscriber_options.backoff = {60s, 60s};
  auto log = test_logger();
  RedisPublisher publisher(io, publisher_options, log);
  RedisSubscriber subscriber(io, subscriber_options, publisher, log);
  publisher.start();
  subscriber.start();
  ASSERT_TRUE(run_until(io, [&] { return publisher.connected() && subscriber.healthy(); }));

  server.kill();
  ASSERT_TRUE(run_until(io, [&] { return !publisher.connected() && !subscriber.healthy(); }));
  server.start();
  run_until(
      io, [] { return false; }, 300ms);  // the backoff holds them off
  EXPECT_FALSE(publisher.connected());
  publisher.retry_now();
  subscriber.retry_now();
  EXPECT_TRUE(run_until(
      io, [&] { return publisher.connected() && subscriber.healthy(); }, 5000ms));
  publisher.retry_now();  // connected: nothing to do
  EXPECT_TRUE(publisher.connected());
}

TEST(RedisResilience, KilledPubSubClientResubscribesWithinTwoSeconds) {
  test::RedisServer server;
  asio::io_context io;
  PubSubPair pair(io, server);
  const std::string channel = "realtime:room:kill";
  pair.subscriber.add(channel);
  ASSERT_TRUE(round_trip(io, pair, channel, "before"));

  auto client = server.client();
  const auto reconnects = pair.subscriber.stats().reconnects;
  ASSERT_GE(client.kill_pubsub_clients(), 1);
  const auto killed_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(run_until(
      io,
      [&] {
        return pair.subscriber.stats().reconnects > reconnects &&
               pair.subscriber.subscribed(channel) && client.numsub(channel) == 1;
      },
      2000ms));
  EXPECT_LT(std::chrono::steady_clock::now() - killed_at, 2s);
  EXPECT_TRUE(round_trip(io, pair, channel, "after"));
}

TEST(RedisResilience, WedgedSubscriberIsDetectedAndRebuilt) {
  test::RedisServer server;
  asio::io_context io;
  PubSubPair pair(io, server, 100ms, 500ms);
  std::vector<std::pair<bool, std::string>> health_changes;
  pair.subscriber.set_on_health_change([&](bool healthy, const std::string& reason) {
    health_changes.emplace_back(healthy, reason);
  });
  const std::string channel = "realtime:room:wedge";
  pair.subscriber.add(channel);
  ASSERT_TRUE(round_trip(io, pair, channel, "before"));
  ASSERT_TRUE(run_until(io, [&] { return pair.subscriber.healthy(); }));

  // Frozen server: every TCP connection stays open, nothing moves.
  server.pause();
  ASSERT_TRUE(run_until(
      io, [&] { return !pair.subscriber.healthy(); }, 3000ms));
  EXPECT_NE(pair.subscriber.health_reason().find("heartbeat"), std::string::npos)
      << pair.subscriber.health_reason();
  ASSERT_TRUE(run_until(
      io, [&] { return pair.subscriber.stats().wedged >= 1; }, 3000ms));
  EXPECT_GE(pair.subscriber.stats().heartbeats_missed, 1u);
  // The rebuilt connection reaches the frozen server's TCP backlog but gets no PING back: the
  // connect timeout (1 s here) fails it and the subscriber keeps trying.
  ASSERT_TRUE(run_until(
      io, [&] { return pair.subscriber.stats().connect_failures >= 1; }, 3000ms));
  EXPECT_FALSE(pair.subscriber.healthy());

  server.resume();
  ASSERT_TRUE(run_until(
      io, [&] { return pair.subscriber.healthy(); }, 10'000ms))
      << pair.subscriber.health_reason();
  EXPECT_TRUE(round_trip(io, pair, channel, "after"));
  // healthy -> unhealthy (wedged) -> healthy
  ASSERT_GE(health_changes.size(), 2u);
  EXPECT_TRUE(std::any_of(health_changes.begin(), health_changes.end(),
                          [](const auto& change) { return !change.first; }));
  EXPECT_TRUE(health_changes.back().first);
}

TEST(RedisResilience, StopAndDestroyWhileConnecting) {
  // Destroying everything with connects and commands in flight must not crash or leak handlers.
  test::RedisServer server;
  asio::io_context io;
  {
    PubSubPair pair(io, server);
    pair.subscriber.add("x");
    io.run_for(1ms);
  }
  {
    PubSubPair pair(io, server);
    ASSERT_TRUE(run_until(io, [&] { return pair.publisher.connected(); }));
    for (int i = 0; i < 10; ++i) pair.publisher.publish("x", "y");
    pair.subscriber.stop();
    pair.publisher.stop();
  }
  io.restart();
  io.run_for(50ms);
}

}  // namespace
}  // namespace realtime::detail
