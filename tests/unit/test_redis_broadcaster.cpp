// RedisBroadcaster against a real redis-server, without sockets: each I/O thread publishes its room
// messages through a Redis connection of its own, messages from any other thread go through the
// Redis thread, and all of them take one numbering from the shared history; the broadcaster stops
// whether the hub's threads run, have stopped, or never started. Also, with a socket: a quiet room
// in use keeps its shared numbering alive, so the position its welcome gave stays resumable. Under
// TSan this is the threads of the publish path (I/O threads, their lanes, the Redis thread) with
// nothing else around.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/post.hpp>
#include <gtest/gtest.h>

#include "hub/hub_core.hpp"
#include "realtime/handler.hpp"
#include "realtime/hub.hpp"
#include "realtime/redis_broadcaster.hpp"
#include "support/hub_test_support.hpp"
#include "support/redis_server.hpp"

namespace realtime {
namespace {

using namespace std::chrono_literals;

template <class Pred>
bool wait_until(Pred done, std::chrono::milliseconds timeout = 5000ms) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// name -> the last command of each client, from CLIENT LIST.
std::vector<std::pair<std::string, std::string>> clients(test::RedisClient& redis) {
  std::vector<std::pair<std::string, std::string>> out;
  auto reply = redis.command({"CLIENT", "LIST"});
  std::istringstream lines(std::string(reply->str, reply->len));
  for (std::string line; std::getline(lines, line);) {
    std::string name;
    std::string cmd;
    std::istringstream fields(line);
    for (std::string field; fields >> field;) {
      if (field.starts_with("name=")) name = field.substr(5);
      if (field.starts_with("cmd=")) cmd = field.substr(4);
    }
    out.emplace_back(name, cmd);
  }
  return out;
}

Message chat(const std::string& room, int n) {
  Message msg;
  msg.type = MessageType::chat;
  msg.room = room;
  msg.data = R"({"n":)" + std::to_string(n) + "}";
  return msg;
}

// Runs `f`; when it does not return within 10 s, says so and aborts (a hang would only end with
// the ctest timeout, without a word).
template <class F>
void returns_in_time(F f, const char* what) {
  auto result = std::async(std::launch::async, std::move(f));
  if (result.wait_for(10s) != std::future_status::ready) {
    std::fprintf(stderr, "%s did not return within 10 s\n", what);
    std::abort();
  }
  result.get();
}

// A redis-server, a client to inspect it, and one pod (a hub with two I/O threads and its
// broadcaster), started; stopped in order at the end.
struct RunningPod {
  explicit RunningPod(std::string pod_id, std::size_t max_unsent_bytes = std::size_t{64} << 20)
      : hub(HubOptions{2, 100, std::move(pod_id)}),
        broadcaster(hub, options(server, max_unsent_bytes)) {
    hub.start();
    broadcaster.start();
    ready = wait_until([&] { return broadcaster.ready(nullptr); });
  }
  ~RunningPod() {
    broadcaster.stop();
    hub.stop();
    hub.wait();
  }
  RunningPod(const RunningPod&) = delete;
  RunningPod& operator=(const RunningPod&) = delete;

  static RedisBroadcasterOptions options(const test::RedisServer& server, std::size_t unsent) {
    RedisBroadcasterOptions options{server.url()};
    options.max_unsent_bytes = unsent;
    return options;
  }

  test::RedisServer server;
  test::RedisClient redis{"127.0.0.1", server.port()};
  Hub hub;
  RedisBroadcaster broadcaster;
  bool ready = false;
};

// Redis numbering slower than messages come (paused here): what one thread has waiting is bounded,
// past it messages are refused (no id) and counted; the rest are numbered once Redis answers.
TEST(RedisBroadcasterLanes, ALaneRefusesMessagesPastItsBoundWhileRedisLags) {
  RunningPod pod("bounded", 8 * 1024);
  ASSERT_TRUE(pod.ready) << "never ready";
  constexpr int kMessages = 200;
  std::mutex mutex;
  std::vector<std::string> ids;
  auto all_answered = std::make_shared<std::promise<void>>();
  auto overloads = [&] {
    return pod.hub.metrics().dropped[static_cast<std::size_t>(DropReason::overload)].load();
  };
  const auto dropped_before = overloads();
  pod.redis.command({"CLIENT", "PAUSE", "500", "WRITE"});
  boost::asio::post(pod.hub.core().shard(0).context(), [&] {
    for (int i = 0; i < kMessages; ++i) {
      Message msg = chat("bounded-room", i);
      msg.data = R"({"text":")" + std::string(200, 'x') + R"("})";
      pod.broadcaster.publish_then(std::move(msg), [&, all_answered](const std::string& id) {
        const std::lock_guard lock(mutex);
        ids.push_back(id);
        if (ids.size() == kMessages) all_answered->set_value();
      });
    }
  });
  ASSERT_EQ(all_answered->get_future().wait_for(10s), std::future_status::ready);
  const auto refused =
      static_cast<std::uint64_t>(std::count(ids.begin(), ids.end(), std::string(kNotPublished)));
  EXPECT_GT(refused, 0U);
  EXPECT_LT(refused, static_cast<std::uint64_t>(kMessages) - 10) << "some wait within the bound";
  EXPECT_EQ(overloads() - dropped_before, refused);
  const auto numbered = pod.redis.command({"LLEN", "realtime:history:bounded-room"});
  EXPECT_EQ(static_cast<std::uint64_t>(numbered->integer), kMessages - refused);
}

TEST(RedisBroadcasterLanes, EachThreadPublishesThroughItsOwnConnectionInOneNumbering) {
  RunningPod pod("lanes");
  ASSERT_TRUE(pod.ready) << "never ready";
  Hub& hub = pod.hub;
  RedisBroadcaster& broadcaster = pod.broadcaster;
  test::RedisClient& redis = pod.redis;
  const std::set<std::string> lanes = {"realtime-pub-lanes-0", "realtime-pub-lanes-1"};
  // A lane's name shows in CLIENT LIST before its handshake (which ends with a PING) is done, and a
  // thread whose connection is not up yet publishes through the Redis thread's: wait until each
  // lane has run the publish script once.
  ASSERT_TRUE(wait_until([&] {
    for (unsigned k = 0; k < 2; ++k) {
      boost::asio::post(hub.core().shard(k).context(), [&broadcaster] {
        broadcaster.publish_then(chat("lanes-warm-up", 0), [](const std::string&) {});
      });
    }
    std::set<std::string> scripted;
    for (const auto& [name, cmd] : clients(redis)) {
      if (lanes.contains(name) && (cmd == "evalsha" || cmd == "eval")) scripted.insert(name);
    }
    return scripted == lanes;
  })) << "one connection per I/O thread, each publishing";

  std::mutex mutex;
  std::vector<std::string> ids;
  auto record = [&](const std::string& id) {
    std::lock_guard lock(mutex);
    ids.push_back(id);
  };
  constexpr int kPerSource = 50;
  // From each I/O thread (its lane), and from this thread (the Redis thread's connection), at once.
  for (unsigned k = 0; k < 2; ++k) {
    boost::asio::post(hub.core().shard(k).context(), [&, k] {
      for (int i = 0; i < kPerSource; ++i) {
        broadcaster.publish_then(chat("lanes-room", static_cast<int>(k) * 1000 + i), record);
      }
    });
  }
  for (int i = 0; i < kPerSource; ++i)
    broadcaster.publish_then(chat("lanes-room", 2000 + i), record);
  ASSERT_TRUE(wait_until([&] {
    std::lock_guard lock(mutex);
    return ids.size() == 3 * kPerSource;
  })) << "every publish answered";

  // One epoch, every number from 1 to 150 once: Redis numbered them all, whatever the connection.
  std::set<std::uint64_t> seqs;
  std::string epoch;
  for (const auto& id : ids) {
    const auto parsed = detail::parse_message_id(id);
    ASSERT_TRUE(parsed) << id;
    if (epoch.empty()) epoch = std::string(parsed->epoch);
    EXPECT_EQ(parsed->epoch, epoch) << id;
    seqs.insert(parsed->seq);
  }
  EXPECT_EQ(seqs.size(), 3U * kPerSource);
  EXPECT_EQ(*seqs.begin(), 1U);
  EXPECT_EQ(*seqs.rbegin(), 3U * kPerSource);
  EXPECT_EQ(redis.command({"HGET", "realtime:ids:lanes-room", epoch})->str,
            std::to_string(3 * kPerSource));
  // Both threads' connections ran the publish script (their last command).
  for (const auto& [name, cmd] : clients(redis)) {
    if (lanes.contains(name)) {
      EXPECT_TRUE(cmd == "evalsha" || cmd == "eval") << name << ": " << cmd;
    }
  }
}

// Before start() and after stop() nothing waits for the Redis thread: the pod numbers and delivers
// a room message itself at once (on an I/O thread and on any other).
TEST(RedisBroadcasterLanes, NumbersLocallyBeforeStartAndAfterStopForGood) {
  test::RedisServer server;
  Hub hub(HubOptions{2, 100, "local"});
  RedisBroadcaster broadcaster(hub, RedisBroadcasterOptions{server.url()});
  hub.start();
  // The id the message got, or "" when it was not numbered within 5 s.
  auto publish_on_thread_0 = [&](int n) {
    auto id = std::make_shared<std::promise<std::string>>();
    boost::asio::post(hub.core().shard(0).context(), [&broadcaster, id, n] {
      broadcaster.publish_then(chat("local-room", n),
                               [id](const std::string& got) { id->set_value(got); });
    });
    auto answer = id->get_future();
    if (answer.wait_for(5s) != std::future_status::ready) return std::string();
    return answer.get();
  };
  EXPECT_FALSE(publish_on_thread_0(1).empty());
  EXPECT_FALSE(broadcaster.publish(chat("local-room", 2)).empty()) << "numbered at once";
  broadcaster.start();
  ASSERT_TRUE(wait_until([&] { return broadcaster.ready(nullptr); })) << "never ready";
  broadcaster.stop();
  EXPECT_FALSE(publish_on_thread_0(3).empty());
  EXPECT_FALSE(broadcaster.publish(chat("local-room", 4)).empty()) << "numbered at once";
  // A broadcaster runs once: start() again does nothing (it used released lanes: a crash).
  broadcaster.start();
  EXPECT_FALSE(publish_on_thread_0(5).empty());
  EXPECT_FALSE(broadcaster.ready(nullptr));
  broadcaster.stop();
  hub.stop();
  hub.wait();
}

// publish() from a thread without a lane goes through the Redis thread, which may answer before
// publish() returns: the id is either there at once or "", never written after the return (under
// TSan the old shared string raced here).
TEST(RedisBroadcasterLanes, PublishFromAnotherThreadGivesTheIdAtOnceOrNotAtAll) {
  RunningPod pod("sync");
  ASSERT_TRUE(pod.ready) << "never ready";
  RedisBroadcaster& broadcaster = pod.broadcaster;
  test::RedisClient& redis = pod.redis;
  // One message per thread, and nothing else posted until the answer came: nothing orders the
  // caller's return after the answer's callback but publish() itself.
  constexpr int kMessages = 20;
  for (int i = 0; i < kMessages; ++i) {
    std::string id;
    std::thread([&] { id = broadcaster.publish(chat("sync-room", i)); }).join();
    if (!id.empty()) {
      EXPECT_TRUE(detail::parse_message_id(id)) << id;
    }
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(wait_until([&] {
    auto epoch = redis.command({"HKEYS", "realtime:ids:sync-room"});
    if (epoch->elements != 1) return false;
    auto last = redis.command({"HGET", "realtime:ids:sync-room", epoch->element[0]->str});
    return last->str != nullptr && std::string(last->str) == std::to_string(kMessages);
  })) << "Redis numbered all "
      << kMessages;
}

// The application's own threads publish faster than Redis numbers (paused here) and the broadcaster
// stops meanwhile: every call is answered, by stop()'s return at the latest: an id, or
// kNotPublished (past the bound, or not numbered when the stop came). Before, what waited for the
// Redis thread was dropped at the stop without an answer, and a thread's backlog had no bound.
TEST(RedisBroadcasterLanes, ForeignThreadsAreBoundedAndEveryCallIsAnsweredAtTheStop) {
  RunningPod pod("foreign", 64 * 1024);
  ASSERT_TRUE(pod.ready) << "never ready";
  std::atomic<long> calls{0};
  std::atomic<long> answers{0};
  std::atomic<long> refused{0};
  std::atomic<bool> publishing{true};
  pod.redis.command({"CLIENT", "PAUSE", "300", "WRITE"});
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; publishing.load(); ++i) {
        calls.fetch_add(1);
        pod.broadcaster.publish_then(chat("foreign-" + std::to_string(t), i),
                                     [&](const std::string& id) {
                                       if (id == kNotPublished) refused.fetch_add(1);
                                       answers.fetch_add(1);
                                     });
      }
    });
  }
  std::this_thread::sleep_for(200ms);
  // Redis paused: past the bound (64 KiB of messages waiting), calls are refused at once.
  EXPECT_GT(refused.load(), 0);
  EXPECT_LT(calls.load() - answers.load(), 2000) << "what waits is bounded";
  std::this_thread::sleep_for(300ms);
  returns_in_time([&] { pod.broadcaster.stop(); }, "stop()");
  publishing = false;
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(answers.load(), calls.load()) << "every publish_then answered";
}

// A publish_then callback that throws, answered on the broadcaster's threads (the Redis thread
// for an application thread's message, from inside hiredis's reply handling): logged and dropped;
// the thread goes on numbering, and later calls are answered. It used to unwind through hiredis
// (std::terminate).
TEST(RedisBroadcasterLanes, ACallbackThatThrowsEndsNothing) {
  RunningPod pod("throws");
  ASSERT_TRUE(pod.ready) << "never ready";
  std::atomic<int> thrown{0};
  for (int i = 0; i < 3; ++i) {
    std::thread([&] {
      pod.broadcaster.publish_then(chat("throws", i), [&](const std::string&) {
        thrown.fetch_add(1);
        throw std::runtime_error("the application's bug");
      });
    }).join();
  }
  ASSERT_TRUE(wait_until([&] { return thrown.load() == 3; })) << "callbacks ran: " << thrown;
  std::promise<std::string> answered;
  std::thread([&] {
    pod.broadcaster.publish_then(chat("throws", 3),
                                 [&](const std::string& id) { answered.set_value(id); });
  }).join();
  auto id = answered.get_future();
  ASSERT_EQ(id.wait_for(10s), std::future_status::ready) << "a later call not answered";
  EXPECT_TRUE(detail::parse_message_id(id.get())) << "numbered by Redis";
}

// Options that cannot work are refused at construction, in words of the library's own (not the
// server's flags).
TEST(RedisBroadcasterLanes, RefusesOptionsThatCannotWork) {
  Hub hub(HubOptions{1, 100, "options"});
  const auto refusal = [&](const RedisBroadcasterOptions& options) -> std::string {
    try {
      RedisBroadcaster broadcaster(hub, options);
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "accepted";
  };
  EXPECT_EQ(refusal(RedisBroadcasterOptions{""}).rfind("Redis URL: ", 0), 0U);
  RedisBroadcasterOptions options{"redis://127.0.0.1:1"};
  options.heartbeat_interval = 0ms;
  EXPECT_NE(refusal(options).find("heartbeat_interval"), std::string::npos);
  options.heartbeat_interval = 1000ms;
  options.heartbeat_timeout = 1000ms;
  EXPECT_NE(refusal(options).find("heartbeat_timeout"), std::string::npos);
  options.heartbeat_timeout = 1001ms;
  EXPECT_EQ(refusal(options), "accepted");
}

TEST(RedisBroadcasterLanes, StopsWhenTheHubNeverStarted) {
  test::RedisServer server;
  Hub hub(HubOptions{2, 100, "unstarted"});
  {
    RedisBroadcaster broadcaster(hub, RedisBroadcasterOptions{server.url()});
    broadcaster.start();
    std::this_thread::sleep_for(50ms);
    returns_in_time([&] { broadcaster.stop(); }, "stop()");
  }
}

TEST(RedisBroadcasterLanes, StopsAfterTheHubStopped) {
  test::RedisServer server;
  Hub hub(HubOptions{2, 100, "hub-first"});
  {
    RedisBroadcaster broadcaster(hub, RedisBroadcasterOptions{server.url()});
    hub.start();
    broadcaster.start();
    ASSERT_TRUE(wait_until([&] { return broadcaster.ready(nullptr); })) << "never ready";
    hub.stop();
    hub.wait();
    returns_in_time([&] { broadcaster.stop(); }, "stop()");
  }
}

// RedisBroadcaster::stop() and Hub::stop() on two threads at once (an application whose signal
// handler stops the hub while another thread stops the broadcaster): the lanes' stop, posted to
// the hub's threads, either runs whole or not at all, and the stop returns. The hub's stop comes a
// little later each round, to fall at different points of the lanes' stop (sanitizer builds).
TEST(RedisBroadcasterLanes, StopsWhileTheHubStopsOnAnotherThread) {
  test::RedisServer server;
  for (int round = 0; round < 8; ++round) {
    Hub hub(HubOptions{2, 100, "racing"});
    RedisBroadcaster broadcaster(hub, RedisBroadcasterOptions{server.url()});
    hub.start();
    broadcaster.start();
    ASSERT_TRUE(wait_until([&] { return broadcaster.ready(nullptr); })) << "never ready";
    auto hub_stop = std::async(std::launch::async, [&] {
      std::this_thread::sleep_for(std::chrono::microseconds(round * 500));
      hub.stop();
    });
    returns_in_time([&] { broadcaster.stop(); }, "stop()");
    hub_stop.get();
    hub.wait();
  }
}

// One user's two sockets on two I/O threads of a pod hand a room back and forth (one joins as the
// other leaves): the pod's part in Redis ends with the user online after every handover. (The
// sessions post their writes to the Redis thread after the room's lock, in either order; each
// write is made with the status the hub has when it is made.)
TEST(RedisBroadcasterPresence, AUserHandingARoomBetweenItsSocketsStaysInThePodsPart) {
  using namespace realtime::testing;
  test::RedisServer server;
  test::RedisClient redis{"127.0.0.1", server.port()};
  std::shared_ptr<RedisBroadcaster> broadcaster;
  HandlerConfig config = fast_config();
  config.jwt.hs256_secret = std::string(kJwtSecret);
  Pod pod(config, 2, [&](Hub& hub) {
    broadcaster = std::make_shared<RedisBroadcaster>(hub, RedisBroadcasterOptions{server.url()});
    broadcaster->start();
    return broadcaster;
  });
  ASSERT_TRUE(wait_until([&] { return broadcaster->ready(nullptr); })) << "never ready";
  const std::string token = make_token("hander");
  auto one = connect_welcomed(pod.port, "/ws?token=" + token);
  auto two = connect_welcomed(pod.port, "/ws?token=" + token);
  ASSERT_TRUE(one && two);
  const auto is_pong = [](const Message& m) { return m.type == MessageType::pong; };
  const auto join = R"({"type":"join","room":"handed"})";
  const auto online = [&] {
    auto reply = redis.command({"HGET", "realtime:presence:handed", pod.hub.pod_id() + "|hander"});
    return reply && reply->str != nullptr && std::string(reply->str) == "online";
  };
  ASSERT_TRUE(one->send_text(join) && one->send_text(R"({"type":"ping"})"));
  ASSERT_TRUE(one->next_matching(is_pong));
  for (int i = 0; i < 150; ++i) {
    ASSERT_TRUE(i % 2 == 0 ? hand_over(*one, *two, "handed") : hand_over(*two, *one, "handed"));
    // Both writes were posted before those pongs; a lost one stays lost (nothing else changes).
    ASSERT_TRUE(wait_until(online)) << "handover " << i << ": the user missing from the pod's part";
  }
  one.reset();
  two.reset();
  broadcaster->stop();
  broadcaster.reset();  // (the pod's handler holds the last reference: gone before its hub)
}

// A room without messages: the welcome's position (read from Redis, which starts the room's epoch)
// survives while the room has members here, since the broadcaster renews the keys' TTL.
TEST(RedisBroadcasterRooms, AQuietRoomInUseKeepsItsPosition) {
  test::RedisServer server;
  test::RedisClient redis{"127.0.0.1", server.port()};
  Hub hub(HubOptions{2, 100, "keep"});
  RedisBroadcasterOptions options{server.url()};
  options.room_keepalive_interval = 100ms;
  auto broadcaster = std::make_shared<RedisBroadcaster>(hub, options);
  hub.start();
  broadcaster->start();
  ASSERT_TRUE(wait_until([&] { return broadcaster->ready(nullptr); })) << "never ready";
  HandlerConfig config = testing::fast_config();
  config.broadcaster = broadcaster;
  auto handler = std::make_unique<Handler>(hub, config);
  ASSERT_FALSE(handler->listen("127.0.0.1", 0));
  {
    auto member = testing::WsClient::connect(handler->port(), "/ws/quiet");
    ASSERT_TRUE(member);
    const auto welcome = member->next();
    ASSERT_TRUE(welcome);
    const auto epochs = redis.command({"HKEYS", "realtime:ids:quiet"});
    ASSERT_EQ(epochs->elements, 1U) << "the join's read starts the room's numbering";
    const std::string epoch(epochs->element[0]->str, epochs->element[0]->len);
    EXPECT_NE(welcome->data.find(R"("last_id":")" + epoch + R"(-0")"), std::string::npos)
        << welcome->data;

    redis.command({"EXPIRE", "realtime:ids:quiet", "3"});
    EXPECT_TRUE(wait_until([&] {
      return redis.command({"TTL", "realtime:ids:quiet"})->integer > 60;
    })) << "renewed while the room has a member";
    // And numbered on from the position.
    broadcaster->publish(chat("quiet", 1));
    const auto first =
        member->next_matching([](const Message& m) { return m.type == MessageType::chat; });
    ASSERT_TRUE(first);
    EXPECT_EQ(first->id, epoch + "-1");
  }
  handler->shutdown(3s);
  handler.reset();
  broadcaster->stop();
  hub.stop();
  hub.wait();
}

}  // namespace
}  // namespace realtime
