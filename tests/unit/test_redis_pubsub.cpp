// Redis pub/sub against a real redis-server: reference counting and batching of subscriptions,
// confirmations, heartbeat liveness, reconnection after a kill or a wedge.
#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <gtest/gtest.h>

#include "redis/redis_publisher.hpp"
#include "redis/redis_subscriber.hpp"
#include "support/redis_transport_fixture.hpp"

namespace realtime::detail {
namespace {

using namespace transport_test;

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
  // (A channel is no longer vouched for once its UNSUBSCRIBE is sent; Redis has it a moment later.)
  ASSERT_TRUE(run_until(io, [&] {
    for (const auto& c : channels) {
      if (pair.subscriber.subscribed(c) || client.numsub(c) != 0) return false;
    }
    return true;
  }));
  EXPECT_EQ(pair.subscriber.stats().unsubscribe_commands, unsubscribes_before + 1);
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

TEST(RedisPubSub, AChannelWantedAgainWhileItsUnsubscribeIsOnTheWayWaitsForTheNewSubscribe) {
  // A room's last member leaves (UNSUBSCRIBE sent) and a new one joins before Redis answered: the
  // old confirmation vouches for nothing, since Redis will unsubscribe first.
  test::RedisServer server;
  asio::io_context io;
  PubSubPair pair(io, server);
  ASSERT_TRUE(run_until(io, [&] { return pair.subscriber.healthy(); }));
  pair.subscriber.add("realtime:room:again");
  ASSERT_TRUE(run_until(io, [&] { return pair.subscriber.subscribed("realtime:room:again"); }));
  server.pause();  // the UNSUBSCRIBE goes out, its answer cannot come
  pair.subscriber.remove("realtime:room:again");
  io.poll();
  pair.subscriber.add("realtime:room:again");
  int runs = 0;
  pair.subscriber.when_subscribed({"realtime:room:again"}, std::chrono::steady_clock::now() + 60s,
                                  [&] { ++runs; });
  io.poll();
  EXPECT_EQ(runs, 0) << "the wait took the old subscription for the new one";
  EXPECT_FALSE(pair.subscriber.subscribed("realtime:room:again"));
  server.resume();
  ASSERT_TRUE(run_until(io, [&] { return runs == 1; }));
  EXPECT_TRUE(pair.subscriber.subscribed("realtime:room:again"));
  EXPECT_TRUE(round_trip(io, pair, "realtime:room:again", "after"));
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
