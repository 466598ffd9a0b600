// The hub's and the handler's lifecycles as an application drives them (start, run, stop, wait,
// shutdown, several Handlers on one Hub, what a Handler refuses), and the application's hooks and
// broadcaster misbehaving (throwing, closing sockets under its own lock, stopping the hub from a
// hook). Clients are the blocking loopback sockets of hub_test_support.hpp.
#include <atomic>
#include <chrono>
#include <future>
#include <limits>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "hub/hub_core.hpp"
#include "support/hub_test_support.hpp"

namespace realtime {
namespace {

using namespace std::chrono_literals;
using namespace realtime::testing;

TEST(HubLifecycle, DestroyedWithoutStart) {
  Hub hub(HubOptions{3, 10, "idle"});
  EXPECT_EQ(hub.thread_count(), 3U);
  EXPECT_EQ(hub.pod_id(), "idle");
}

TEST(HubLifecycle, StartAndStopAreIdempotent) {
  Hub hub(HubOptions{2, 10, ""});
  EXPECT_FALSE(hub.pod_id().empty());  // default: host name + pid + a random tag
  // Two Hubs of one process get two ids (host name and pid alone repeat).
  EXPECT_NE(Hub(HubOptions{1, 10, ""}).pod_id(), hub.pod_id());
  hub.stop();  // before start: harmless
  hub.start();
  hub.start();
  hub.stop();
  hub.stop();
  hub.wait();
  hub.wait();
}

TEST(HubLifecycle, RunBlocksUntilStopFromAnotherThread) {
  Hub hub(HubOptions{2, 10, "run"});
  auto running = std::async(std::launch::async, [&] { hub.run(); });
  EXPECT_EQ(running.wait_for(50ms), std::future_status::timeout);
  hub.stop();
  EXPECT_EQ(running.wait_for(kTimeout), std::future_status::ready);
}

TEST(HubLifecycle, HandlerShutdownClosesEverySocketWith1001) {
  std::atomic<int> connects{0};
  std::atomic<int> disconnects{0};
  HandlerConfig config = fast_config();
  config.on_connect = [&](Connection&) { connects.fetch_add(1); };
  config.on_disconnect = [&](Connection&) { disconnects.fetch_add(1); };
  Pod pod(config);
  std::vector<std::unique_ptr<WsClient>> clients;
  for (int i = 0; i < 6; ++i) {
    clients.push_back(connect_welcomed(pod.port, i % 2 == 0 ? "/ws/shut" : "/ws"));
    ASSERT_TRUE(clients.back());
  }
  ASSERT_TRUE(eventually([&] { return pod.hub.connection_count() == 6; }));
  EXPECT_EQ(pod.hub.room_count(), 1U);
  EXPECT_EQ(connects.load(), 6);

  const auto port = pod.port;
  auto shutdown = std::async(std::launch::async, [&] { pod.handler->shutdown(5s); });
  for (auto& client : clients) {
    const auto code = client->wait_close();
    ASSERT_TRUE(code);
    EXPECT_EQ(*code, 1001);
    client->send_close(1001);  // complete the closing handshake
  }
  EXPECT_EQ(shutdown.wait_for(kTimeout), std::future_status::ready);
  EXPECT_EQ(pod.hub.connection_count(), 0U);
  EXPECT_EQ(pod.hub.room_count(), 0U);
  EXPECT_TRUE(pod.hub.rooms().empty());
  EXPECT_EQ(disconnects.load(), 6);
  EXPECT_TRUE(WsClient::connect(port, "/ws") == nullptr) << "still accepting after shutdown";
}

// The seed's pattern: run() on a thread of its own, then stop() and wait() from main. wait() must
// block until the I/O threads are over (it returned at once, and destroying the hub next crashed).
TEST(HubLifecycle, WaitBlocksWhileRunHoldsTheThreadsOnAnotherThread) {
  Hub hub(HubOptions{2, 10, "runwait"});
  auto running = std::async(std::launch::async, [&] { hub.run(); });
  // (A failed assertion returns early: the hub is stopped then, or `running` would wait for good.)
  const std::shared_ptr<void> stop_on_return(nullptr, [&](void*) { hub.stop(); });
  ASSERT_TRUE(eventually([&] { return hub.core().running(); }));
  auto waiting = std::async(std::launch::async, [&] { hub.wait(); });
  EXPECT_EQ(waiting.wait_for(100ms), std::future_status::timeout) << "wait() did not wait";
  hub.stop();
  EXPECT_EQ(waiting.wait_for(kTimeout), std::future_status::ready);
  EXPECT_EQ(running.wait_for(kTimeout), std::future_status::ready);
}

// Hub::stop() without Handler::shutdown(): the sockets still open end with the loops, and each
// one's on_disconnect runs (an application's per-connection state would stay behind otherwise).
TEST(HubLifecycle, StopWithoutShutdownRunsOnDisconnectForEverySocket) {
  std::atomic<int> connects{0};
  std::atomic<int> disconnects{0};
  HandlerConfig config = fast_config();
  config.on_connect = [&](Connection&) { connects.fetch_add(1); };
  config.on_disconnect = [&](Connection&) { disconnects.fetch_add(1); };
  Hub hub(HubOptions{2, 10, "stop"});
  hub.start();
  auto handler = std::make_unique<Handler>(hub, config);
  ASSERT_FALSE(handler->listen("127.0.0.1", 0));
  std::vector<std::unique_ptr<WsClient>> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(connect_welcomed(handler->port(), i % 2 == 0 ? "/ws/stop" : "/ws"));
    ASSERT_TRUE(clients.back());
  }
  ASSERT_TRUE(eventually([&] { return connects.load() == 4; }));
  hub.stop();
  hub.wait();
  EXPECT_EQ(disconnects.load(), 4);
  handler.reset();
  EXPECT_EQ(disconnects.load(), 4) << "once each";
}

// One listening socket per Handler: a second listen() and one after shutdown() fail (the first
// listener used to be forgotten, bound and answering 503, by a second call).
TEST(HubLifecycle, ListenOncePerHandler) {
  Pod pod;
  const auto first = pod.port;
  EXPECT_EQ(pod.handler->listen("127.0.0.1", 0),
            std::make_error_code(std::errc::already_connected));
  EXPECT_EQ(pod.handler->port(), first);
  pod.handler->shutdown(1s);
  EXPECT_TRUE(WsClient::connect(first, "/ws") == nullptr) << "still accepting after shutdown";
  EXPECT_TRUE(pod.handler->listen("127.0.0.1", 0));
}

// listen() before Hub::start() is allowed (the listener accepts once the loops run); a Handler
// shut down or destroyed before the start closes its port, and the accept it left in a loop's queue
// reaches no Handler (it used to reach a destroyed one, and a shut-down one went on serving).
TEST(HubLifecycle, AHandlerShutDownOrDestroyedBeforeTheStartAcceptsNothing) {
  Hub hub(HubOptions{2, 10, "early"});
  Handler shut(hub, fast_config());
  ASSERT_FALSE(shut.listen("127.0.0.1", 0));
  const auto shut_port = shut.port();
  auto gone = std::make_unique<Handler>(hub, fast_config());
  ASSERT_FALSE(gone->listen("127.0.0.1", 0));
  const auto gone_port = gone->port();
  shut.shutdown(1s);
  EXPECT_EQ(shut.port(), 0);
  gone.reset();
  Handler live(hub, fast_config());
  ASSERT_FALSE(live.listen("127.0.0.1", 0));
  hub.start();
  EXPECT_TRUE(WsClient::connect(live.port(), "/ws") != nullptr);
  EXPECT_FALSE(tcp_accepts(shut_port)) << "port open after shutdown";
  EXPECT_FALSE(tcp_accepts(gone_port)) << "port open after ~Handler";
  live.shutdown(1s);
  hub.stop();
  hub.wait();
}

// A hook that throws is the application's bug: that socket is closed with 1011, the others and the
// process go on.
TEST(HubHooks, AHookThatThrowsClosesThatSocketWith1011) {
  HandlerConfig config = fast_config();
  config.on_message = [](Connection&, Message& msg) -> bool {
    if (msg.data.find("boom") != std::string::npos) throw std::runtime_error("on_message bug");
    return true;
  };
  config.on_connect = [](Connection& connection) {
    if (connection.rooms() == std::vector<std::string>{"bad"}) throw 42;  // not a std::exception
  };
  config.on_disconnect = [](Connection&) { throw std::logic_error("on_disconnect bug"); };
  Pod pod(config);
  auto thrower = connect_welcomed(pod.port, "/ws/hooks");
  auto other = connect_welcomed(pod.port, "/ws/hooks");
  ASSERT_TRUE(thrower && other);
  ASSERT_TRUE(thrower->send_text(R"({"type":"chat","data":{"text":"boom"}})"));
  const auto code = thrower->wait_close();
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 1011);
  auto refused = connect_welcomed(pod.port, "/ws/bad");
  ASSERT_TRUE(refused);
  const auto refused_code = refused->wait_close();
  ASSERT_TRUE(refused_code);
  EXPECT_EQ(*refused_code, 1011);
  // The other socket still works, and nothing of the throwing message went out.
  ASSERT_TRUE(other->send_text(R"({"type":"chat","data":{"text":"fine"}})"));
  const auto fine =
      other->next_matching([](const Message& m) { return m.type == MessageType::chat; }, kTimeout);
  ASSERT_TRUE(fine);
  EXPECT_NE(fine->data.find("fine"), std::string::npos);
}

// The registry connection.hpp describes, guarded by a plain mutex: a moderator's "kick" in
// on_message closes another socket under that lock, and on_connect refuses one past a cap under it.
// Each on_disconnect runs once the hook has returned (it ran inside close(), on the same thread,
// and deadlocked that I/O thread on the lock).
TEST(HubHooks, ASocketClosedFromAHookUnderTheApplicationsLockIsToldAfterTheHook) {
  std::mutex registry_mutex;
  std::set<Connection*> registry;
  std::atomic<int> disconnects{0};
  std::atomic<bool> in_hook{false};
  std::atomic<bool> told_inside{false};
  HandlerConfig config = fast_config();
  config.on_connect = [&](Connection& c) {
    const std::lock_guard lock(registry_mutex);
    in_hook = true;
    if (c.rooms() == std::vector<std::string>{"full"}) {
      c.close(4000, "room full");
    } else {
      registry.insert(&c);
    }
    in_hook = false;
  };
  config.on_disconnect = [&](Connection& c) {
    if (in_hook) told_inside = true;
    const std::lock_guard lock(registry_mutex);
    registry.erase(&c);
    disconnects.fetch_add(1);
  };
  config.on_message = [&](Connection& self, Message& msg) {
    if (msg.data.find("kick") == std::string::npos) return true;
    const std::lock_guard lock(registry_mutex);
    in_hook = true;
    for (Connection* c : registry) {
      if (c != &self) c->close(4000, "kicked");
    }
    in_hook = false;
    return false;
  };
  Pod pod(config, 1);  // one I/O thread: the kick and the kicked socket share it
  auto moderator = connect_welcomed(pod.port, "/ws/mod");
  auto kicked = connect_welcomed(pod.port, "/ws/mod");
  ASSERT_TRUE(moderator && kicked);
  ASSERT_TRUE(moderator->send_text(R"({"type":"chat","data":{"text":"kick"}})"));
  const auto code = kicked->wait_close();
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 4000);
  kicked->send_close(4000);
  ASSERT_TRUE(eventually([&] { return disconnects.load() == 1; }));
  // The thread goes on: the moderator is answered.
  ASSERT_TRUE(moderator->send_text(R"({"type":"ping"})"));
  EXPECT_TRUE(moderator->next_matching([](const Message& m) { return m.type == MessageType::pong; },
                                       kTimeout));
  auto refused = connect_welcomed(pod.port, "/ws/full");
  ASSERT_TRUE(refused);
  const auto refused_code = refused->wait_close();
  ASSERT_TRUE(refused_code);
  EXPECT_EQ(*refused_code, 4000);
  ASSERT_TRUE(eventually([&] { return disconnects.load() == 2; }));
  EXPECT_FALSE(told_inside.load());
  const std::lock_guard lock(registry_mutex);
  EXPECT_EQ(registry.size(), 1U) << "the moderator alone";
}

// hub.stop() then hub.wait() from a hook (an "admin shutdown" message): wait() cannot join the
// thread it runs on; it returns, and a wait() on another thread joins them all (it ended in
// std::terminate).
TEST(HubLifecycle, WaitFromAHookReturnsAndTheThreadsAreJoinedLater) {
  Hub hub(HubOptions{2, 10, "hookwait"});
  hub.start();
  std::atomic<bool> waited{false};
  HandlerConfig config = fast_config();
  config.on_message = [&](Connection&, Message&) {
    hub.stop();
    hub.wait();
    waited = true;
    return false;
  };
  auto handler = std::make_unique<Handler>(hub, config);
  ASSERT_FALSE(handler->listen("127.0.0.1", 0));
  auto client = connect_welcomed(handler->port(), "/ws/admin");
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->send_text(R"({"type":"chat","data":{"text":"stop"}})"));
  ASSERT_TRUE(eventually([&] { return waited.load(); }));
  hub.wait();
  EXPECT_FALSE(hub.core().running());
  handler.reset();
}

// An application's Broadcaster that throws (its transport down) is the application's bug: the
// server logs it and goes on. A chat it throws on is refused to its sender (unavailable), and a
// presence call that throws does not stop the socket opening.
class ThrowingBroadcaster final : public LocalForwarding {
 public:
  using LocalForwarding::LocalForwarding;
  std::string publish(Message msg) override {
    if (msg.type == MessageType::chat && msg.data.find("boom") != std::string::npos) {
      throw std::runtime_error("transport down");
    }
    return LocalForwarding::publish(std::move(msg));
  }
  void user_joined(const std::string&, const std::string&) override { throw 7; }
};

TEST(HubHooks, ABroadcasterThatThrowsRefusesThatMessageAndTheServerGoesOn) {
  Pod pod(fast_config(), 2, [](Hub& hub) { return std::make_shared<ThrowingBroadcaster>(hub); });
  auto sender = connect_welcomed(pod.port, "/ws/transport");
  auto other = connect_welcomed(pod.port, "/ws/transport");
  ASSERT_TRUE(sender && other);
  ASSERT_TRUE(sender->send_text(R"({"type":"chat","data":{"text":"boom"}})"));
  const auto refused = sender->next_matching(
      [](const Message& m) { return m.type == MessageType::error; }, kTimeout);
  ASSERT_TRUE(refused);
  EXPECT_NE(refused->data.find("unavailable"), std::string::npos) << refused->data;
  ASSERT_TRUE(sender->send_text(R"({"type":"chat","data":{"text":"fine"}})"));
  const auto fine =
      other->next_matching([](const Message& m) { return m.type == MessageType::chat; }, kTimeout);
  ASSERT_TRUE(fine);
  EXPECT_NE(fine->data.find("fine"), std::string::npos) << "boom never went out: " << fine->data;
}

// Two Handlers on one Hub (a public port and an internal one): shutting one down closes its own
// sockets only (it closed every socket of the Hub).
TEST(HubLifecycle, ShutdownOfOneHandlerLeavesAnothersSockets) {
  Pod pod;
  auto second = std::make_unique<Handler>(pod.hub, fast_config());
  ASSERT_FALSE(second->listen("127.0.0.1", 0));
  auto first_client = connect_welcomed(pod.port, "/ws/two");
  auto second_client = connect_welcomed(second->port(), "/ws/two");
  ASSERT_TRUE(first_client && second_client);
  auto shutdown = std::async(std::launch::async, [&] { second->shutdown(5s); });
  const auto code = second_client->wait_close();
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 1001);
  second_client->send_close(1001);
  EXPECT_EQ(shutdown.wait_for(kTimeout), std::future_status::ready);
  ASSERT_TRUE(first_client->send_text(R"({"type":"ping"})"));
  EXPECT_TRUE(first_client->next_matching(
      [](const Message& m) { return m.type == MessageType::pong; }, kTimeout));
  second.reset();
  ASSERT_TRUE(first_client->send_text(R"({"type":"ping"})"));
  EXPECT_TRUE(first_client->next_matching(
      [](const Message& m) { return m.type == MessageType::pong; }, kTimeout))
      << "still open after the other Handler's destruction";
}

// What a Handler cannot honour is refused at once: a rate no welcome can carry as JSON, and a
// listen() on a stopped Hub (it reported success and never accepted).
TEST(HubLifecycle, AHandlerRefusesWhatItCannotHonour) {
  Hub hub(HubOptions{1, 10, "refuse"});
  hub.start();
  for (const auto& [limit, burst] :
       {std::pair{std::numeric_limits<double>::infinity(), 40.0},
        std::pair{std::numeric_limits<double>::quiet_NaN(), 40.0}, std::pair{20.0, 0.5},
        std::pair{20.0, std::numeric_limits<double>::infinity()}}) {
    HandlerConfig config = fast_config();
    config.rate_limit = limit;
    config.rate_burst = burst;
    EXPECT_THROW(Handler(hub, config), std::invalid_argument) << limit << " " << burst;
  }
  // Limits that would break every socket: a queue no welcome fits in, a message limit every frame
  // passes, a keepalive that pings in a loop.
  {
    HandlerConfig config = fast_config();
    config.send_queue_bytes = 0;
    EXPECT_THROW(Handler(hub, config), std::invalid_argument);
    config = fast_config();
    config.max_message_bytes = 0;
    EXPECT_THROW(Handler(hub, config), std::invalid_argument);
    config = fast_config();
    config.ping_interval = -5s;
    EXPECT_THROW(Handler(hub, config), std::invalid_argument);
    config.ping_interval = 0s;
    EXPECT_THROW(Handler(hub, config), std::invalid_argument);
    // And what broke them otherwise, or overflowed the keepalive's clock arithmetic: a queue
    // smaller than the welcome, no connection allowed, no time for a request, an interval of
    // centuries ("never", as std::chrono::seconds::max()).
    config = fast_config();
    config.send_queue_bytes = 1;
    EXPECT_THROW(Handler(hub, config), std::invalid_argument);
    config = fast_config();
    config.max_connections = 0;
    EXPECT_THROW(Handler(hub, config), std::invalid_argument);
    for (const auto timeout : {std::chrono::milliseconds(0), std::chrono::milliseconds(-5)}) {
      config = fast_config();
      config.handshake_timeout = timeout;
      EXPECT_THROW(Handler(hub, config), std::invalid_argument);
    }
    config = fast_config();
    config.ping_interval = std::chrono::seconds::max() / 2;
    config.pong_timeout = std::chrono::seconds::max();
    EXPECT_THROW(Handler(hub, config), std::invalid_argument);
    config = fast_config();
    config.pong_timeout = std::chrono::hours(24 * 365 * 300);
    EXPECT_THROW(Handler(hub, config), std::invalid_argument);
    // The longest accepted.
    config = fast_config();
    config.ping_interval = std::chrono::hours(24 * 29);
    config.pong_timeout = std::chrono::hours(24 * 30);
    EXPECT_NO_THROW(Handler(hub, config));
  }
  Handler handler(hub, fast_config());
  hub.stop();
  hub.wait();
  EXPECT_EQ(handler.listen("127.0.0.1", 0),
            std::make_error_code(std::errc::operation_not_permitted));
}

// The natural order in main(): shutdown, stop the hub, then leave scope. The Handler's destructor
// then finds the loops stopped; it must not wait out its deadline for them.
TEST(HubLifecycle, HandlerDestroyedAfterHubStopReturnsPromptly) {
  Hub hub(HubOptions{2, 10, "order"});
  hub.start();
  auto handler = std::make_unique<Handler>(hub, fast_config());
  ASSERT_FALSE(handler->listen("127.0.0.1", 0));
  handler->shutdown();
  hub.stop();
  hub.wait();
  const auto start = SteadyClock::now();
  handler.reset();
  const auto took =
      std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - start);
  EXPECT_LT(took, 500ms) << "~Handler() took " << took.count() << " ms";
}

TEST(HubLifecycle, APongTimeoutNotLongerThanThePingIntervalIsRefused) {
  // Idle sockets would be closed for silence before they were ever pinged.
  Hub hub(HubOptions{1, 100, "hub-test"});
  HandlerConfig config;
  config.ping_interval = 10s;
  config.pong_timeout = 10s;
  EXPECT_THROW(Handler(hub, config), std::invalid_argument);
  config.pong_timeout = 11s;
  EXPECT_NO_THROW(Handler(hub, config));
}

}  // namespace
}  // namespace realtime
