// The embedding API held to its word: what the application hands the library to send is checked
// (data, room, type) before any client sees it, a socket is answered later by its id, close codes
// that may not be sent are refused, send() says false once a socket is gone, and the hub's
// observers can be cleared while the hub runs. Clients are the blocking loopback sockets of
// hub_test_support.hpp.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "hub/hub_core.hpp"
#include "hub/shard.hpp"
#include "realtime/error.hpp"
#include "support/hub_test_support.hpp"

namespace realtime {
namespace {

using namespace std::chrono_literals;
using namespace realtime::testing;

bool not_presence(const Message& msg) { return msg.type != MessageType::presence; }

Message with_data(std::string data) {
  Message msg = chat_message("general", "x");
  msg.data = std::move(data);
  return msg;
}

// The seed's way of sending from HTTP handlers, data by concatenation: text with a quote in it
// made an envelope no client could parse. Now the call throws and nothing is delivered.
TEST(HubEmbedding, BroadcastAndSendToUserRefuseWhatWouldBreakTheEnvelope) {
  Pod pod;
  std::string user;
  auto client = connect_welcomed(pod.port, "/ws/general", &user);
  ASSERT_TRUE(client);
  EXPECT_THROW(pod.hub.broadcast(with_data(R"({"text":"he said "hi""})")), std::invalid_argument);
  EXPECT_THROW(pod.hub.broadcast(with_data("not json")), std::invalid_argument);
  Message bad_room = chat_message("general", "x");
  bad_room.room = "bad room\"name";
  EXPECT_THROW(pod.hub.broadcast(bad_room), std::invalid_argument);
  Message command = chat_message("general", "x");
  command.type = MessageType::join;
  EXPECT_THROW(pod.hub.broadcast(command), std::invalid_argument);
  EXPECT_THROW(pod.hub.send_to_user(user, with_data("{")), std::invalid_argument);
  LocalBroadcaster local(pod.hub);
  EXPECT_THROW(local.publish(with_data("{")), std::invalid_argument);
  EXPECT_THROW(local.publish_to_user(user, with_data("{")), std::invalid_argument);

  // What may be sent still is: data of any JSON kind, built safely from any text.
  const std::string id =
      pod.hub.broadcast(with_data("{\"text\":" + json_string("he said \"hi\"") + "}"));
  auto got = client->next_matching(not_presence);
  ASSERT_TRUE(got);  // (next() fails the test on a message that does not decode)
  EXPECT_EQ(got->id, id) << "something was delivered before: " << got->data;
  EXPECT_EQ(got->data, R"({"text":"he said \"hi\""})");
  pod.hub.send_to_user(user, with_data("[1,2]"));
  got = client->next();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->data, "[1,2]");
}

TEST(HubEmbedding, ConnectionSendRefusesBadMessagesAndClientCommands) {
  std::atomic<int> refused{0};
  std::atomic<bool> sent{false};
  HandlerConfig config = fast_config();
  config.on_connect = [&](Connection& conn) {
    Message error;
    error.type = MessageType::error;
    error.data = "not json";
    Message join;
    join.type = MessageType::join;
    join.room = "general";
    for (Message* msg : {&error, &join}) {
      try {
        conn.send(*msg);
      } catch (const std::invalid_argument&) {
        refused.fetch_add(1);
      }
    }
    sent = conn.send(system_message("hello", "\"name\":" + json_string("O\"Brien")));
  };
  Pod pod(config);
  auto client = connect_welcomed(pod.port, "/ws/general");
  ASSERT_TRUE(client);
  auto got = client->next_matching(not_presence);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->type, MessageType::system);
  EXPECT_EQ(got->data, R"({"event":"hello","name":"O\"Brien"})");
  EXPECT_EQ(refused.load(), 2);
  EXPECT_TRUE(sent.load());
}

// on_message may rewrite a chat, but a rewrite that breaks the envelope (or turns it into a client
// command) is the hook's bug: handled as a throw (the sender closed with 1011), never delivered.
TEST(HubEmbedding, OnMessageRewriteThatBreaksTheRulesIsNotDelivered) {
  std::atomic<int> calls{0};
  HandlerConfig config = fast_config();
  config.on_message = [&](Connection&, Message& msg) {
    switch (calls.fetch_add(1)) {
      case 0:
        msg.data = R"({"text": unquoted})";
        break;
      case 1:
        msg.type = MessageType::join;
        break;
      case 2:
        msg.room = "other room with spaces";
        break;
      default:
        msg.data = R"({"text":"rewritten"})";
    }
    return true;
  };
  Pod pod(config);
  auto member = connect_welcomed(pod.port, "/ws/general");
  ASSERT_TRUE(member);
  for (int i = 0; i < 3; ++i) {
    auto sender = connect_welcomed(pod.port, "/ws/general");
    ASSERT_TRUE(sender);
    sender->send_text(R"({"type":"chat","room":"general","data":{"text":"hi"}})");
    const auto code = sender->wait_close();
    ASSERT_TRUE(code) << "rewrite " << i;
    EXPECT_EQ(*code, close_code::internal_error) << "rewrite " << i;
  }
  auto sender = connect_welcomed(pod.port, "/ws/general");
  ASSERT_TRUE(sender);
  sender->send_text(R"({"type":"chat","room":"general","data":{"text":"hi"}})");
  // The member gets presence for the senders, then the one good rewrite: nothing broken before it.
  auto got = member->next_matching(not_presence);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->type, MessageType::chat);
  EXPECT_EQ(got->data, R"({"text":"rewritten"})");
}

// may_join decides every join, the URL's room included, from what the application holds; a
// refused room is never joined (the room's members see nothing of it), and a hook that throws
// closes that socket with 1011.
TEST(HubEmbedding, MayJoinRefusesRoomsAndAHookThatThrowsClosesTheSocket) {
  std::mutex mutex;
  std::vector<std::string> asked;  // guarded by mutex
  HandlerConfig config = fast_config();
  config.may_join = [&](Connection& connection, const std::string& room) {
    if (room == "boom") throw std::runtime_error("membership lookup failed");
    const std::lock_guard lock(mutex);
    asked.push_back(connection.user_id() + " " + room);
    return !room.starts_with("private");
  };
  Pod pod(config);
  // Its URL's room is asked too: the socket opens in no room, told why.
  auto member = connect_welcomed(pod.port, "/ws/private-1");
  ASSERT_TRUE(member);
  auto refused = member->next();
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->type, MessageType::error);
  EXPECT_NE(refused->data.find(R"("code":"room_not_allowed")"), std::string::npos) << refused->data;
  EXPECT_NE(refused->data.find(R"("room":"private-1")"), std::string::npos) << refused->data;

  std::string user_id;
  auto client = connect_welcomed(pod.port, "/ws/general", &user_id);
  ASSERT_TRUE(client);
  client->send_text(R"({"type":"join","room":"private-2"})");
  client->send_text(R"({"type":"join","room":"open"})");
  auto answer = client->next_matching(not_presence);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->type, MessageType::error);
  EXPECT_NE(answer->data.find(R"("room":"private-2")"), std::string::npos) << answer->data;
  answer = client->next_matching(not_presence);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->type, MessageType::system);
  EXPECT_EQ(answer->room, "open");
  {
    const std::lock_guard lock(mutex);
    EXPECT_NE(std::find(asked.begin(), asked.end(), user_id + " private-2"), asked.end());
    EXPECT_NE(std::find(asked.begin(), asked.end(), user_id + " general"), asked.end());
  }
  client->send_text(R"({"type":"join","room":"boom"})");
  const auto code = client->wait_close();
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, close_code::internal_error);
}

// An asynchronous answer (a database check, say) keeps the socket's id, not its Connection&, and
// answers through the hub from its own thread: delivered while the socket is open, refused (false)
// once it is gone, and never a use of a freed session.
TEST(HubEmbedding, SendToConnectionFromAnotherThreadAfterTheSocketClosed) {
  std::promise<std::string> message_from;
  std::promise<void> disconnected;
  HandlerConfig config = fast_config();
  config.on_message = [&](Connection& conn, Message&) {
    message_from.set_value(conn.id());
    return false;
  };
  config.on_disconnect = [&](Connection&) { disconnected.set_value(); };
  Pod pod(config);
  auto client = connect_welcomed(pod.port, "/ws/general");
  ASSERT_TRUE(client);
  client->send_text(R"({"type":"chat","room":"general","data":{"text":"check me"}})");
  auto id_future = message_from.get_future();
  ASSERT_EQ(id_future.wait_for(kTimeout), std::future_status::ready);
  const std::string id = id_future.get();

  auto answered = std::async(std::launch::async, [&] {
    return pod.hub.send_to_connection(id,
                                      error_message("invalid_message", "refused after a check"));
  });
  EXPECT_TRUE(answered.get());
  auto got = client->next_matching(not_presence);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->type, MessageType::error);
  EXPECT_NE(got->data.find("refused after a check"), std::string::npos);

  client->abort();
  ASSERT_EQ(disconnected.get_future().wait_for(kTimeout), std::future_status::ready);
  auto late = std::async(std::launch::async, [&] {
    return pod.hub.send_to_connection(id, error_message("invalid_message", "too late"));
  });
  EXPECT_FALSE(late.get());
  EXPECT_FALSE(pod.hub.send_to_connection("no-such-connection", chat_message("general", "x")));
  EXPECT_THROW(pod.hub.send_to_connection(id, with_data("{")), std::invalid_argument);
}

// send() says false once the socket is gone: in on_disconnect on the socket's own thread (the
// client went away), and in the one that runs on the thread in Hub::wait() (the Hub stopped with
// the socket open), where it handed the message to a loop that would never run it.
TEST(HubEmbedding, SendInOnDisconnectReturnsFalse) {
  std::mutex mutex;
  std::vector<std::pair<bool, std::thread::id>> sends;  // guarded by mutex
  HandlerConfig config = fast_config();
  config.on_disconnect = [&](Connection& conn) {
    const bool sent = conn.send(system_message("bye"));
    const std::lock_guard lock(mutex);
    sends.emplace_back(sent, std::this_thread::get_id());
  };
  Hub hub(HubOptions{2, 10, "send-false"});
  hub.start();
  auto handler = std::make_unique<Handler>(hub, config);
  ASSERT_FALSE(handler->listen("127.0.0.1", 0));
  auto leaving = connect_welcomed(handler->port(), "/ws/general");
  auto staying = connect_welcomed(handler->port(), "/ws/general");
  ASSERT_TRUE(leaving && staying);
  leaving->abort();
  ASSERT_TRUE(eventually([&] {
    const std::lock_guard lock(mutex);
    return sends.size() == 1;
  }));
  hub.stop();
  hub.wait();
  const std::lock_guard lock(mutex);
  ASSERT_EQ(sends.size(), 2U);
  EXPECT_FALSE(sends[0].first) << "on the socket's own thread";
  EXPECT_NE(sends[0].second, std::this_thread::get_id());
  EXPECT_FALSE(sends[1].first) << "on the thread in Hub::wait()";
  EXPECT_EQ(sends[1].second, std::this_thread::get_id());
}

// RFC 6455 forbids sending 0, 1004-1006, 1015 and codes past 4999: refused, the socket stays open
// and can still be closed with a code that may be sent.
TEST(HubEmbedding, CloseRefusesCodesThatMayNotBeSent) {
  std::atomic<int> refused{0};
  HandlerConfig config = fast_config();
  config.on_connect = [&](Connection& conn) {
    for (std::uint16_t code : {0, 999, 1004, 1005, 1006, 1015, 2000, 5000}) {
      try {
        conn.close(code, "app closes");
      } catch (const std::invalid_argument&) {
        refused.fetch_add(1);
      }
    }
    conn.close(4000, "app closes");
  };
  Pod pod(config);
  auto client = connect_welcomed(pod.port, "/ws/general");
  ASSERT_TRUE(client);
  const auto code = client->wait_close();
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 4000);
  EXPECT_EQ(refused.load(), 8);
}

// A broadcaster's destructor clears the hub's observers while the I/O threads may be calling
// them: clearing waits for a call under way, so none runs into a destroyed broadcaster.
TEST(HubEmbedding, ClearingAnObserverWaitsForTheCallUnderWay) {
  Pod pod;
  std::promise<void> entered;
  std::promise<void> release;
  auto released = release.get_future().share();
  std::atomic<bool> returned{false};
  std::atomic<bool> once{false};
  pod.hub.core().set_room_observer([&, released](const std::string&, bool) {
    if (once.exchange(true)) return;
    entered.set_value();
    released.wait();
    returned = true;
  });
  // (Its 101 waits for the join, which waits for the observer.)
  auto client =
      std::async(std::launch::async, [&] { return WsClient::connect(pod.port, "/ws/observed"); });
  const bool called = entered.get_future().wait_for(kTimeout) == std::future_status::ready;
  auto clearing = std::async(std::launch::async, [&] {
    pod.hub.core().set_room_observer({});
    return returned.load();
  });
  EXPECT_TRUE(called);
  EXPECT_EQ(clearing.wait_for(100ms), std::future_status::timeout) << "did not wait for the call";
  release.set_value();
  ASSERT_EQ(clearing.wait_for(kTimeout), std::future_status::ready);
  EXPECT_TRUE(clearing.get()) << "cleared while the observer still ran";
  EXPECT_TRUE(client.get());
}

// Observers set and cleared over and over while sockets join and leave on every thread (a
// broadcaster made and destroyed while the hub runs): no data race (run under TSan), no call after
// the clear.
TEST(HubEmbedding, ObserversSetAndClearedWhileSocketsComeAndGo) {
  Pod pod;
  std::atomic<bool> done{false};
  std::atomic<int> calls{0};
  auto churn = std::async(std::launch::async, [&] {
    for (int i = 0; !done; ++i) {
      auto client = WsClient::connect(pod.port, "/ws/room" + std::to_string(i % 8));
      if (client) client->next(1s);
    }
  });
  for (int i = 0; i < 100; ++i) {
    auto counter = std::make_shared<std::atomic<int>>(0);
    pod.hub.core().set_room_observer([counter](const std::string&, bool) { ++*counter; });
    pod.hub.core().set_members_observer([counter](const std::string&) { ++*counter; });
    pod.hub.core().set_user_observer([counter](const std::string&, bool) { ++*counter; });
    std::this_thread::sleep_for(1ms);
    pod.hub.core().set_room_observer({});
    pod.hub.core().set_members_observer({});
    pod.hub.core().set_user_observer({});
    const int seen = counter->load();
    std::this_thread::sleep_for(1ms);
    EXPECT_EQ(counter->load(), seen) << "an observer ran after it was cleared";
    calls += seen;
  }
  done = true;
  churn.get();
  EXPECT_GT(calls.load(), 0);
}

// Handler::shutdown() in a hook starts the closing and returns: waiting there held up the very
// loop that closes the sockets, for the whole deadline. (On the listener's own loop, one thread
// here, the listener's stop waited 1 s for a post to that loop.)
TEST(HubEmbedding, ShutdownInAHookReturnsAndClosesTheSockets) {
  Handler* self = nullptr;
  std::promise<std::chrono::steady_clock::duration> returned;
  std::atomic<bool> once{false};
  HandlerConfig config = fast_config();
  config.on_message = [&](Connection&, Message&) {
    if (!once.exchange(true)) {
      const auto start = std::chrono::steady_clock::now();
      self->shutdown(60s);
      returned.set_value(std::chrono::steady_clock::now() - start);
    }
    return false;
  };
  Pod pod(config, 1);
  self = pod.handler.get();
  auto client = connect_welcomed(pod.port, "/ws/general");
  ASSERT_TRUE(client);
  client->send_text(R"({"type":"chat","room":"general","data":{"text":"stop"}})");
  auto took = returned.get_future();
  ASSERT_EQ(took.wait_for(kTimeout), std::future_status::ready);
  EXPECT_LT(took.get(), 900ms) << "shutdown() in a hook waited on its own loop";
  EXPECT_EQ(client->wait_close(), close_code::going_away);
}

// Before Hub::start() no loop runs to close anything or to answer: shutdown() has nothing to wait
// for (it used to wait out its whole deadline).
TEST(HubEmbedding, ShutdownBeforeTheHubStartsReturns) {
  Hub hub(HubOptions{1, 10, "not-started"});
  Handler handler(hub, fast_config());
  auto shut = std::async(std::launch::async, [&] { handler.shutdown(60s); });
  EXPECT_EQ(shut.wait_for(kTimeout), std::future_status::ready);
}

// Hub::wait() in a hook before stop() would block its thread for good (the other threads end only
// at stop()): it throws instead, which closes that socket as any throwing hook does.
TEST(HubEmbedding, WaitInAHookBeforeStopThrows) {
  Hub* hub = nullptr;
  std::promise<std::string> what;
  std::atomic<bool> once{false};
  HandlerConfig config = fast_config();
  config.on_message = [&](Connection&, Message&) {
    if (once.exchange(true)) return false;
    try {
      hub->wait();
      what.set_value("returned");
    } catch (const std::logic_error& e) {
      what.set_value(e.what());
      throw;
    }
    return false;
  };
  Pod pod(config, 2);
  hub = &pod.hub;
  auto client = connect_welcomed(pod.port, "/ws/general");
  ASSERT_TRUE(client);
  client->send_text(R"({"type":"chat","room":"general","data":{"text":"wait"}})");
  auto answer = what.get_future();
  ASSERT_EQ(answer.wait_for(kTimeout), std::future_status::ready);
  EXPECT_NE(answer.get().find("before Hub::stop()"), std::string::npos);
  EXPECT_EQ(client->wait_close(), close_code::internal_error);
}

// An application thread that goes on broadcasting after Hub::stop() (a queue consumer that
// outlives it) is not a leak: nothing is queued for loops that have ended. Before, each shard kept
// every frame (up to a million) until the Hub was destroyed.
TEST(HubEmbedding, BroadcastsAfterStopAreNotKept) {
  Pod pod(fast_config(), 2);
  auto client = connect_welcomed(pod.port, "/ws/general");
  ASSERT_TRUE(client);
  pod.hub.stop();
  pod.hub.wait();
  for (int i = 0; i < 1000; ++i) {
    EXPECT_FALSE(pod.hub.broadcast(system_message("late", {})).empty());
    pod.hub.send_to_user("someone", system_message("late", {}));
    pod.hub.broadcast(chat_message("general", "late"));
  }
  for (unsigned k = 0; k < pod.hub.thread_count(); ++k) {
    EXPECT_EQ(pod.hub.core().shard(k).waiting(), 0U) << "shard " << k;
  }
}

// The application's main thread in Hub::run(), and a hook that stops the Hub and waits (a "shut
// down" command): run() returns. The hook's wait() used to wait for run()'s join of the threads,
// which waited for the hook's thread: neither ever returned.
TEST(HubEmbedding, StopAndWaitInAHookWhileRunBlocksReturns) {
  Hub hub(HubOptions{2, 100, "run-and-hook"});
  std::atomic<bool> once{false};
  std::promise<void> hook_returned;
  HandlerConfig config = fast_config();
  config.on_message = [&](Connection&, Message&) {
    if (once.exchange(true)) return false;
    hub.stop();
    hub.wait();
    hook_returned.set_value();
    return false;
  };
  hub.start();
  auto handler = std::make_unique<Handler>(hub, config);
  ASSERT_FALSE(handler->listen("127.0.0.1", 0));
  auto run = std::async(std::launch::async, [&] { hub.run(); });
  // (A failed assertion below returns before the hook stops the hub: stopped here then, so that
  // `run`'s destructor does not wait for good.)
  const std::shared_ptr<void> stop_on_return(nullptr, [&](void*) { hub.stop(); });
  auto client = connect_welcomed(handler->port(), "/ws/general");
  ASSERT_TRUE(client);
  client->send_text(R"({"type":"chat","room":"general","data":{"text":"stop"}})");
  if (run.wait_for(10s) != std::future_status::ready) {
    std::fprintf(stderr, "Hub::run() did not return within 10 s of a hook's stop() and wait()\n");
    std::abort();  // (a deadlock: nothing else would end the test)
  }
  EXPECT_EQ(hook_returned.get_future().wait_for(0s), std::future_status::ready);
  handler.reset();
}

// The seed's logger: HubOptions::log takes the lines of the Hub's Handlers (here a hook that
// threw, at error), filtered by log_level, in place of spdlog's default logger.
TEST(HubEmbedding, LogLinesGoToTheHubsSink) {
  std::mutex mutex;
  std::vector<std::pair<LogLevel, std::string>> lines;  // guarded by mutex
  HubOptions options{1, 10, "logged"};
  options.log = [&](LogLevel level, std::string_view line) {
    const std::lock_guard lock(mutex);
    lines.emplace_back(level, line);
  };
  options.log_level = LogLevel::info;
  Hub hub(options);
  hub.start();
  {
    HandlerConfig config = fast_config();
    config.on_connect = [](Connection&) { throw std::runtime_error("an application bug"); };
    Handler handler(hub, config);
    ASSERT_FALSE(handler.listen("127.0.0.1", 0));
    auto client = WsClient::connect(handler.port(), "/ws/general");
    ASSERT_TRUE(client);
    EXPECT_EQ(client->wait_close(), close_code::internal_error);
    EXPECT_TRUE(eventually([&] {
      const std::lock_guard lock(mutex);
      return std::any_of(lines.begin(), lines.end(), [](const auto& line) {
        return line.first == LogLevel::error &&
               line.second.find("an application bug") != std::string::npos;
      });
    }));
  }
  hub.stop();
  hub.wait();
  const std::lock_guard lock(mutex);
  for (const auto& [level, line] : lines) EXPECT_NE(level, LogLevel::debug) << line;
}

}  // namespace
}  // namespace realtime
