// The hub under concurrency: broadcasts from many threads into shared rooms, join/leave churn,
// presence, per-user delivery and the delivery counters (lifecycles and hooks:
// test_hub_lifecycle.cpp). Clients are plain blocking
// loopback sockets speaking WebSocket through the project's own codec (src/protocol/ws_frame.hpp),
// so this test needs no Beast and stays cheap to build and meaningful under TSan.
#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "hub/hub_core.hpp"
#include "support/hub_test_support.hpp"

namespace realtime {
namespace {

using namespace std::chrono_literals;
using namespace realtime::testing;

// A pod configuration that accepts make_token()'s tokens.
HandlerConfig jwt_config() {
  HandlerConfig config = fast_config();
  config.jwt.hs256_secret = std::string(kJwtSecret);
  return config;
}

// A notification carrying {"n": n}.
Message notification(int n) {
  Message note = system_message("note", R"("n":)" + std::to_string(n));
  note.type = MessageType::notification;
  return note;
}

// ---- Hub without sockets
// ---------------------------------------------------------------------------

TEST(HubIds, RoomBroadcastsGetConsecutiveIdsOfOneEpoch) {
  Hub hub(HubOptions{2, 10, "ids"});
  hub.start();
  std::vector<RoomId> ids;
  for (int i = 0; i < 5; ++i) {
    const auto id = parse_room_id(hub.broadcast(chat_message("ids-room", "x")));
    ASSERT_TRUE(id);
    ids.push_back(*id);
  }
  for (std::size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(ids[i].epoch, ids[0].epoch);
    EXPECT_EQ(ids[i].seq, i + 1);
  }
  EXPECT_EQ(ids[0].epoch.size(), 8U);

  Message explicit_id = chat_message("ids-room", "y");
  explicit_id.id = "kept-as-given";
  EXPECT_EQ(hub.broadcast(explicit_id), "kept-as-given");

  const std::string global = hub.broadcast(system_message("tick"));
  const std::string direct = hub.send_to_user("nobody", system_message("tick"));
  EXPECT_NE(global.find("-g"), std::string::npos) << global;
  EXPECT_NE(direct.find("-u"), std::string::npos) << direct;
  EXPECT_NE(global, direct);

  // No sockets: no rooms are reported, whatever was published.
  EXPECT_EQ(hub.room_count(), 0U);
  EXPECT_TRUE(hub.rooms().empty());
  EXPECT_TRUE(hub.presence("ids-room").empty());
  EXPECT_EQ(hub.connection_count(), 0U);
  hub.stop();
  hub.wait();
}

// A client's chat is checked once on its way; a custom broadcaster that rewrites it (or sends
// another message) before Hub::broadcast is checked as any application code is.
TEST(CheckedMessage, VouchesOnlyForTheMessageItMarks) {
  Hub hub(HubOptions{1, 10, "checked"});
  hub.start();
  const Message chat = chat_message("checked-room", "hi");
  {
    const detail::CheckedMessage checked(chat);
    Message rewritten = chat;
    rewritten.data = R"({"tagged":true,"orig":)" + chat.data;  // one brace short
    EXPECT_THROW(hub.broadcast(rewritten), std::invalid_argument);
  }
  {
    const detail::CheckedMessage checked(chat);
    EXPECT_TRUE(detail::take_checked(chat));
    EXPECT_FALSE(detail::take_checked(chat));  // once
  }
  for (const auto& change : std::vector<std::function<void(Message&)>>{
           [](Message& m) { m.room = "another-room"; }, [](Message& m) { m.id = "own-id"; },
           [](Message& m) { m.type = MessageType::notification; },
           [](Message& m) { m.data = R"({"text":"ho"})"; }}) {
    Message other = chat;
    change(other);
    const detail::CheckedMessage checked(chat);
    EXPECT_FALSE(detail::take_checked(other));
  }
  EXPECT_FALSE(detail::take_checked(chat));  // no mark outside one
  hub.stop();
  hub.wait();
}

TEST(HubIds, ConcurrentBroadcastsGetUniqueGaplessSequences) {
  Hub hub(HubOptions{4, 10, "ids"});
  hub.start();
  constexpr int kThreads = 8;
  constexpr int kPerThread = 500;
  const std::vector<std::string> rooms = {"r0", "r1", "r2"};
  std::vector<std::vector<std::pair<std::string, std::string>>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string& room = rooms[static_cast<std::size_t>(i + t) % rooms.size()];
        got[static_cast<std::size_t>(t)].emplace_back(room, hub.broadcast(chat_message(room, "m")));
      }
    });
  }
  for (auto& thread : threads) thread.join();
  std::map<std::string, std::set<std::uint64_t>> seqs;
  std::map<std::string, std::set<std::string>> epochs;
  std::size_t total = 0;
  for (const auto& per_thread : got) {
    for (const auto& [room, id] : per_thread) {
      const auto parsed = parse_room_id(id);
      ASSERT_TRUE(parsed) << id;
      EXPECT_TRUE(seqs[room].insert(parsed->seq).second) << "duplicate id " << id;
      epochs[room].insert(parsed->epoch);
      ++total;
    }
  }
  EXPECT_EQ(total, std::size_t{kThreads} * kPerThread);
  for (const auto& [room, set] : seqs) {
    EXPECT_EQ(epochs[room].size(), 1U) << room;
    EXPECT_EQ(*set.begin(), 1U) << room;
    EXPECT_EQ(*set.rbegin(), set.size()) << room << ": gaps in the sequence";
  }
  hub.stop();
  hub.wait();
}

// ---- Concurrent broadcasts
// ---------------------------------------------------------------------------

// What one client saw of one room.
struct RoomLog {
  std::string epoch;
  std::vector<std::uint64_t> seqs;
  std::vector<std::string> chat_ids;
};

TEST(HubBroadcast, EveryMemberGetsEveryMessageOnceInIdOrder) {
  Pod pod;
  const std::vector<std::string> rooms = {"alpha", "beta"};
  constexpr std::size_t kPerRoom = 6;  // clients opened on each room
  constexpr std::size_t kInBoth = 2;   // of those on alpha, this many also join beta
  constexpr int kPublishers = 4;
  constexpr int kPerPublisher = 250;

  struct Member {
    std::unique_ptr<WsClient> client;
    std::vector<std::string> rooms;
  };
  std::vector<Member> members;
  for (const auto& room : rooms) {
    for (std::size_t i = 0; i < kPerRoom; ++i) {
      Member member{connect_welcomed(pod.port, "/ws/" + room), {room}};
      ASSERT_TRUE(member.client);
      members.push_back(std::move(member));
    }
  }
  for (std::size_t i = 0; i < kInBoth; ++i) {
    ASSERT_TRUE(members[i].client->send_text(R"({"type":"join","room":"beta"})"));
    members[i].rooms.emplace_back("beta");
  }
  ASSERT_TRUE(eventually([&] {
    return pod.members("alpha") == kPerRoom && pod.members("beta") == kPerRoom + kInBoth;
  }));
  EXPECT_EQ(pod.hub.room_count(), 2U);
  EXPECT_EQ(pod.hub.connection_count(), kPerRoom * 2);

  // Every member reads in its own thread while the publishers run.
  std::mutex expected_mutex;
  std::unordered_map<std::string, std::pair<std::string, std::string>>
      expected;  // id -> room, data
  std::map<std::string, std::size_t> expected_per_room;
  for (const auto& room : rooms) expected_per_room[room] = 0;
  for (int t = 0; t < kPublishers; ++t) {
    for (int i = 0; i < kPerPublisher; ++i)
      ++expected_per_room[rooms[static_cast<std::size_t>(i + t) % 2]];
  }
  std::vector<std::map<std::string, RoomLog>> logs(members.size());
  std::vector<std::thread> readers;
  for (std::size_t m = 0; m < members.size(); ++m) {
    readers.emplace_back([&, m] {
      auto& log = logs[m];
      std::size_t wanted = 0;
      for (const auto& room : members[m].rooms) wanted += expected_per_room.at(room);
      std::size_t chats = 0;
      while (chats < wanted) {
        auto msg = members[m].client->next();
        if (!msg) return;  // reported below by the counts
        if (msg->room.empty()) continue;
        const auto id = parse_room_id(msg->id);
        if (!id) {
          // Only room history gets "<epoch>-<seq>" ids (presence, for one, is live state).
          EXPECT_NE(msg->type, MessageType::chat) << "chat with a non-room id " << msg->id;
          continue;
        }
        RoomLog& room_log = log[msg->room];
        if (room_log.epoch.empty()) room_log.epoch = id->epoch;
        EXPECT_EQ(id->epoch, room_log.epoch) << msg->id;
        room_log.seqs.push_back(id->seq);
        if (msg->type == MessageType::chat) {
          room_log.chat_ids.push_back(msg->id);
          ++chats;
        }
      }
    });
  }

  std::vector<std::thread> publishers;
  for (int t = 0; t < kPublishers; ++t) {
    publishers.emplace_back([&, t] {
      for (int i = 0; i < kPerPublisher; ++i) {
        const std::string& room = rooms[static_cast<std::size_t>(i + t) % 2];
        Message msg = chat_message(room, "p" + std::to_string(t) + "-" + std::to_string(i));
        const std::string data = msg.data;
        // The test's own bookkeeping is locked after broadcast() returns: publishers are not
        // serialised around the hub.
        const std::string id = pod.hub.broadcast(std::move(msg));
        std::lock_guard lock(expected_mutex);
        EXPECT_TRUE(expected.emplace(id, std::make_pair(room, data)).second)
            << "duplicate id " << id;
      }
    });
  }
  for (auto& publisher : publishers) publisher.join();
  for (auto& reader : readers) reader.join();

  ASSERT_EQ(expected.size(), std::size_t{kPublishers} * kPerPublisher);
  for (std::size_t m = 0; m < members.size(); ++m) {
    for (const auto& room : members[m].rooms) {
      const RoomLog& log = logs[m][room];
      SCOPED_TRACE("member " + std::to_string(m) + " room " + room);
      // Exactly the room's messages, each once.
      std::set<std::string> unique(log.chat_ids.begin(), log.chat_ids.end());
      EXPECT_EQ(unique.size(), log.chat_ids.size()) << "a message arrived twice";
      EXPECT_EQ(unique.size(), expected_per_room[room]);
      for (const auto& id : unique) {
        auto it = expected.find(id);
        ASSERT_NE(it, expected.end()) << "unknown id " << id;
        EXPECT_EQ(it->second.first, room);
      }
      // In strictly increasing id order, and with no gap once the member has joined.
      for (std::size_t i = 1; i < log.seqs.size(); ++i) {
        ASSERT_EQ(log.seqs[i], log.seqs[i - 1] + 1)
            << "ids out of order or missing at position " << i;
      }
    }
  }
}

TEST(HubBroadcast, SendToUserAndGlobalBroadcastFromManyThreads) {
  Pod pod(jwt_config());
  const std::string token = make_token("carol");
  std::vector<std::unique_ptr<WsClient>> carol;
  for (int i = 0; i < 3; ++i) {
    std::string user;
    carol.push_back(connect_welcomed(pod.port, "/ws?token=" + token, &user));
    ASSERT_TRUE(carol.back());
    EXPECT_EQ(user, "carol");
  }
  auto other = connect_welcomed(pod.port, "/ws");
  ASSERT_TRUE(other);
  ASSERT_TRUE(eventually([&] { return pod.hub.connection_count() == 4; }));

  constexpr int kThreads = 4;
  constexpr int kPerThread = 100;
  std::vector<std::thread> senders;
  for (int t = 0; t < kThreads; ++t) {
    senders.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        pod.hub.send_to_user("carol", notification(t * kPerThread + i));
        pod.hub.broadcast(system_message("tick"));
      }
    });
  }
  for (auto& sender : senders) sender.join();
  pod.hub.broadcast(system_message("end"));  // after every other delivery was queued

  constexpr std::size_t kTotal = std::size_t{kThreads} * kPerThread;
  auto drain = [&](WsClient& client, std::size_t* notes, std::size_t* ticks) {
    std::set<std::string> ids;
    for (;;) {
      auto msg = client.next();
      if (!msg) return false;
      EXPECT_TRUE(ids.insert(msg->id).second) << "duplicate " << msg->id;
      if (msg->data.find(R"("event":"end")") != std::string::npos) return true;
      if (msg->type == MessageType::notification) ++*notes;
      if (msg->data.find(R"("event":"tick")") != std::string::npos) ++*ticks;
    }
  };
  for (auto& client : carol) {
    std::size_t notes = 0;
    std::size_t ticks = 0;
    ASSERT_TRUE(drain(*client, &notes, &ticks));
    EXPECT_EQ(notes, kTotal);
    EXPECT_EQ(ticks, kTotal);
  }
  std::size_t notes = 0;
  std::size_t ticks = 0;
  ASSERT_TRUE(drain(*other, &notes, &ticks));
  EXPECT_EQ(notes, 0U) << "another user's notifications reached this socket";
  EXPECT_EQ(ticks, kTotal);
}

TEST(HubBroadcast, SendToUserAfterSomeOfItsSocketsClosed) {
  // Each thread lists a user's sockets by user id; closing some must leave the others listed.
  Pod pod(jwt_config());
  const std::string token = make_token("dave");
  std::vector<std::unique_ptr<WsClient>> dave;
  for (int i = 0; i < 4; ++i) {
    dave.push_back(connect_welcomed(pod.port, "/ws?token=" + token));
    ASSERT_TRUE(dave.back());
  }
  ASSERT_TRUE(eventually([&] { return pod.hub.connection_count() == 4; }));
  dave[0]->send_close(1000);
  ASSERT_TRUE(dave[0]->wait_close());
  dave[2]->abort();
  ASSERT_TRUE(eventually([&] { return pod.hub.connection_count() == 2; }));

  pod.hub.send_to_user("dave", notification(1));
  for (const int i : {1, 3}) {
    auto got = dave[i]->next_matching(
        [](const Message& m) { return m.type == MessageType::notification; });
    ASSERT_TRUE(got) << "socket " << i;
    EXPECT_NE(got->data.find(R"("n":1)"), std::string::npos) << got->data;
  }
  // The user's last sockets gone: a notification reaches nobody, and nothing is left to trip on.
  dave[1]->abort();
  dave[3]->abort();
  ASSERT_TRUE(eventually([&] { return pod.hub.connection_count() == 0; }));
  pod.hub.send_to_user("dave", system_message("after"));
  auto late = connect_welcomed(pod.port, "/ws?token=" + token);
  ASSERT_TRUE(late);
  pod.hub.send_to_user("dave", notification(2));
  auto got =
      late->next_matching([](const Message& m) { return m.type == MessageType::notification; });
  ASSERT_TRUE(got);
  EXPECT_NE(got->data.find(R"("n":2)"), std::string::npos) << got->data;
}

// ---- Join/leave churn
// --------------------------------------------------------------------------------

TEST(HubChurn, JoinLeaveChurnDuringBroadcastsLeavesNothingBehind) {
  std::atomic<int> connects{0};
  std::atomic<int> disconnects{0};
  HandlerConfig config = fast_config();
  config.on_connect = [&](Connection&) { connects.fetch_add(1); };
  config.on_disconnect = [&](Connection&) { disconnects.fetch_add(1); };
  Pod pod(config);
  const std::vector<std::string> rooms = {"churn-0", "churn-1", "churn-2"};

  std::atomic<bool> stop{false};
  std::vector<std::thread> publishers;
  for (int t = 0; t < 2; ++t) {
    publishers.emplace_back([&, t] {
      for (int i = 0; !stop.load(); ++i) {
        pod.hub.broadcast(chat_message(rooms[static_cast<std::size_t>(i + t) % rooms.size()], "x"));
        if (i % 16 == 0) std::this_thread::sleep_for(200us);  // a steady stream, not a flood
      }
    });
  }

  constexpr int kWorkers = 6;
  constexpr int kRounds = 25;
  std::atomic<int> opened{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&, w] {
      for (int r = 0; r < kRounds; ++r) {
        const std::string& first = rooms[static_cast<std::size_t>(w + r) % rooms.size()];
        const std::string& second = rooms[static_cast<std::size_t>(w + r + 1) % rooms.size()];
        auto client = connect_welcomed(pod.port, "/ws/" + first);
        if (!client) return;
        opened.fetch_add(1);
        client->send_text(R"({"type":"join","room":")" + second + R"("})");
        client->send_text(R"({"type":"chat","room":")" + second + R"(","data":{"text":"hi"}})");
        client->send_text(R"({"type":"leave","room":")" + first + R"("})");
        client->send_text(R"({"type":"presence","data":{"status":"away"}})");
        switch (r % 3) {
          case 0: {  // a clean closing handshake
            client->send_close(1000);
            const auto code = client->wait_close();
            EXPECT_TRUE(code && *code == 1000) << "no close echo";
            break;
          }
          case 1:  // gone without a close frame
            client->abort();
            break;
          default: {  // reads a little first, then leaves abruptly
            auto msg =
                client->next_matching([&](const Message& m) { return m.room == second; }, 2s);
            EXPECT_TRUE(msg) << "nothing from " << second;
            client->abort();
            break;
          }
        }
      }
    });
  }
  for (auto& worker : workers) worker.join();
  stop = true;
  for (auto& publisher : publishers) publisher.join();

  EXPECT_EQ(opened.load(), kWorkers * kRounds);
  EXPECT_TRUE(eventually([&] { return pod.hub.connection_count() == 0; }))
      << pod.hub.connection_count() << " connections left";
  EXPECT_TRUE(eventually([&] { return pod.hub.room_count() == 0; }))
      << pod.hub.room_count() << " rooms left";
  EXPECT_TRUE(pod.hub.rooms().empty());
  for (const auto& room : rooms) EXPECT_TRUE(pod.hub.presence(room).empty()) << room;
  EXPECT_TRUE(eventually([&] { return disconnects.load() == connects.load(); }));
  EXPECT_EQ(connects.load(), kWorkers * kRounds);
  EXPECT_EQ(pod.hub.metrics().connections.load(), 0);
  EXPECT_EQ(pod.hub.metrics().rooms.load(), 0);
}

// ---- Presence
// ----------------------------------------------------------------------------------------

TEST(HubPresence, TracksUsersAcrossTheirSockets) {
  Pod pod(jwt_config());
  const std::string alice_token = make_token("alice");
  auto bob = connect_welcomed(pod.port, "/ws/lobby?token=" + make_token("bob"));
  ASSERT_TRUE(bob);
  auto alice1 = connect_welcomed(pod.port, "/ws/lobby?token=" + alice_token);
  auto alice2 = connect_welcomed(pod.port, "/ws/lobby?token=" + alice_token);
  ASSERT_TRUE(alice1 && alice2);
  ASSERT_TRUE(eventually([&] { return pod.members("lobby") == 3; }));

  auto presence_of = [&](const std::string& user) -> std::optional<PresenceStatus> {
    for (const auto& entry : pod.hub.presence("lobby")) {
      if (entry.user_id == user) return entry.status;
    }
    return std::nullopt;
  };
  auto is_presence = [](std::string_view user, std::string_view status) {
    return [user = std::string(user), status = std::string(status)](const Message& m) {
      return m.type == MessageType::presence && m.room == "lobby" &&
             m.data.find(R"("user_id":")" + user + "\"") != std::string::npos &&
             m.data.find(R"("status":")" + status + "\"") != std::string::npos;
    };
  };
  {
    const auto entries = pod.hub.presence("lobby");
    ASSERT_EQ(entries.size(), 2U);  // one entry per user, however many sockets
    EXPECT_EQ(entries[0].user_id, "alice");
    EXPECT_EQ(entries[1].user_id, "bob");
    EXPECT_EQ(entries[0].status, PresenceStatus::online);
    EXPECT_EQ(entries[1].status, PresenceStatus::online);
  }
  // Alice's second socket did not announce her a second time: the next alice presence bob sees is
  // the status change below.
  ASSERT_TRUE(bob->next_matching(is_presence("alice", "online")));

  // A user's status is derived from its sockets: one away while the other is online changes
  // nothing (no event); both away is away.
  ASSERT_TRUE(alice1->send_text(R"({"type":"presence","data":{"status":"away"}})"));
  ASSERT_TRUE(alice2->send_text(R"({"type":"presence","data":{"status":"away"}})"));
  auto away = bob->next_matching([](const Message& m) { return m.type == MessageType::presence; });
  ASSERT_TRUE(away);
  EXPECT_TRUE(is_presence("alice", "away")(*away)) << away->data;
  EXPECT_EQ(presence_of("alice"), PresenceStatus::away);
  EXPECT_TRUE(pod.hub.presence("no-such-room").empty());

  // One of two sockets gone: alice is still there, away.
  alice1->send_close(1000);
  ASSERT_TRUE(alice1->wait_close());
  ASSERT_TRUE(eventually([&] { return pod.members("lobby") == 2; }));
  EXPECT_EQ(presence_of("alice"), PresenceStatus::away);
  // The last one gone: alice is offline, and bob is told.
  alice2->abort();
  ASSERT_TRUE(eventually([&] { return !presence_of("alice"); }));
  auto offline =
      bob->next_matching([](const Message& m) { return m.type == MessageType::presence; });
  ASSERT_TRUE(offline);
  EXPECT_TRUE(is_presence("alice", "offline")(*offline)) << offline->data;
  ASSERT_EQ(pod.hub.presence("lobby").size(), 1U);
  EXPECT_EQ(pod.hub.presence("lobby")[0].user_id, "bob");
  EXPECT_EQ(pod.members("lobby"), 1U);
}

// ---- Metrics
// -----------------------------------------------------------------------------------------

TEST(HubMetrics, MessagesSentEqualsDeliveries) {
  Pod pod;
  Metrics& metrics = pod.hub.metrics();
  EXPECT_EQ(metrics.messages_sent.load(), 0U);
  std::vector<std::unique_ptr<WsClient>> clients;
  for (int i = 0; i < 5; ++i) {
    clients.push_back(WsClient::connect(pod.port, "/ws/metrics"));
    ASSERT_TRUE(clients.back());
  }
  ASSERT_TRUE(eventually([&] { return pod.members("metrics") == 5; }));
  EXPECT_EQ(metrics.connections.load(), 5);
  EXPECT_EQ(metrics.rooms.load(), 1);
  EXPECT_EQ(metrics.connections_accepted.load(), 5U);

  constexpr int kMessages = 50;
  for (int i = 0; i < kMessages; ++i) pod.hub.broadcast(chat_message("metrics", "m"));
  ASSERT_TRUE(clients[0]->send_text(R"({"type":"ping"})"));
  ASSERT_TRUE(clients[0]->send_text(R"({"type":"chat","data":{"text":"from a client"}})"));
  ASSERT_TRUE(clients[1]->send_text("not json"));

  // Each reads until it has the client chat (after the hub's 50), and clients[0] its pong and
  // clients[1] its error as well.
  for (std::size_t i = 0; i < clients.size(); ++i) {
    bool chat = false;
    bool answer = i > 1;
    ASSERT_TRUE(clients[i]->next_matching([&](const Message& m) {
      chat = chat ||
             (m.type == MessageType::chat && m.data.find("from a client") != std::string::npos);
      answer = answer || (i == 0 && m.type == MessageType::pong) ||
               (i == 1 && m.type == MessageType::error);
      return chat && answer;
    })) << "client "
        << i;
  }

  std::size_t delivered = 0;
  for (const auto& client : clients) delivered += client->texts_received();
  // Counted from what the clients actually received (welcomes, presence, chat, pong, error): the
  // server must agree.
  EXPECT_TRUE(eventually([&] { return metrics.messages_sent.load() == delivered; }))
      << "messages_sent " << metrics.messages_sent.load() << ", delivered " << delivered;
  EXPECT_EQ(metrics.messages_received.load(), 3U);
  EXPECT_EQ(metrics.dropped[static_cast<std::size_t>(DropReason::invalid)].load(), 1U);
}

// Frames that had to wait for the socket to become writable are written outside the shard's flush
// pass; they must be counted all the same.
TEST(HubMetrics, MessagesSentCountsWritesThatWaitedForTheSocket) {
  Pod pod(fast_config(), 1);
  Metrics& metrics = pod.hub.metrics();
  auto client = WsClient::connect(pod.port, "/ws/slow");
  ASSERT_TRUE(client);
  ASSERT_TRUE(eventually([&] { return pod.members("slow") == 1; }));
  // Far more than the socket buffers hold while the client does not read.
  const std::string text(8 * 1024, 'x');
  constexpr int kMessages = 2000;
  for (int i = 0; i < kMessages; ++i) pod.hub.broadcast(chat_message("slow", text));
  pod.hub.broadcast(system_message("end"));
  ASSERT_TRUE(client->next_matching(
      [](const Message& m) { return m.data.find(R"("event":"end")") != std::string::npos; }, 30s));
  const std::size_t delivered = client->texts_received();
  EXPECT_GE(delivered, std::size_t{kMessages} + 2);
  EXPECT_TRUE(eventually([&] { return metrics.messages_sent.load() == delivered; }, 3s))
      << "messages_sent " << metrics.messages_sent.load() << ", delivered " << delivered;
}

// A broadcaster whose subscriptions are never confirmed: a new socket's output stays held.
class NeverSubscribed final : public LocalForwarding {
 public:
  using LocalForwarding::LocalForwarding;
  bool await_subscribed(const std::string& /*room*/, const std::string& /*user_id*/,
                        std::function<void()> done) override {
    const std::lock_guard lock(mutex_);
    waiting_.push_back(std::move(done));  // dropped, never called
    return true;
  }

 private:
  std::mutex mutex_;
  std::vector<std::function<void()>> waiting_;
};

TEST(HubSlowConsumer, OverflowBeforeTheUpgradeWentOutSendsThe101ThenTheClose) {
  Hub hub(HubOptions{1, 100, "hub-test"});
  hub.start();
  HandlerConfig config = fast_config();
  config.send_queue_bytes = 16 * 1024;
  config.broadcaster = std::make_shared<NeverSubscribed>(hub);
  auto handler = std::make_unique<Handler>(hub, config);
  ASSERT_FALSE(handler->listen("127.0.0.1", 0));
  const std::uint16_t port = handler->port();
  // The upgrade answer waits behind the hold; the client waits for it meanwhile.
  auto connecting =
      std::async(std::launch::async, [port] { return WsClient::connect(port, "/ws/held"); });
  ASSERT_TRUE(eventually([&] {
    for (const RoomCount& count : hub.rooms()) {
      if (count.room == "held") return count.members == 1;
    }
    return false;
  }));
  const std::string text(2048, 'x');
  for (int i = 0; i < 16; ++i) hub.broadcast(chat_message("held", text));  // 32 KB > 16 KB
  auto client = connecting.get();
  ASSERT_TRUE(client) << "no HTTP 101 before the close";
  EXPECT_EQ(client->wait_close(), std::optional<std::uint16_t>(1013));
  handler->shutdown(3s);
  handler.reset();
  hub.stop();
  hub.wait();
}

// A broadcaster that keeps every `done` of await_subscribed, for the test to call when it likes.
class HeldSubscriptions final : public LocalForwarding {
 public:
  using LocalForwarding::LocalForwarding;
  bool await_subscribed(const std::string& /*room*/, const std::string& /*user_id*/,
                        std::function<void()> done) override {
    const std::lock_guard lock(mutex_);
    waiting_.push_back(std::move(done));
    return true;
  }
  std::size_t count() {
    const std::lock_guard lock(mutex_);
    return waiting_.size();
  }
  void call(std::size_t i) {
    std::function<void()> done;
    {
      const std::lock_guard lock(mutex_);
      done = waiting_.at(i);
    }
    done();
  }

 private:
  std::mutex mutex_;
  std::vector<std::function<void()>> waiting_;
};

// A broadcaster that calls a `done` twice: the second call is ignored. It used to release
// another hold of the socket (here a join's, whose room the pod does not receive yet), so that
// the answer to a ping after the join went out before the room was there.
TEST(HubSubscriptions, ASecondCallOfDoneReleasesNothing) {
  Hub hub(HubOptions{1, 100, "hub-test"});
  hub.start();
  HandlerConfig config = fast_config();
  auto broadcaster = std::make_shared<HeldSubscriptions>(hub);
  config.broadcaster = broadcaster;
  auto handler = std::make_unique<Handler>(hub, config);
  ASSERT_FALSE(handler->listen("127.0.0.1", 0));
  const std::uint16_t port = handler->port();
  auto connecting =
      std::async(std::launch::async, [port] { return WsClient::connect(port, "/ws/first"); });
  ASSERT_TRUE(eventually([&] { return broadcaster->count() == 1; }));
  broadcaster->call(0);  // the welcome's hold
  auto client = connecting.get();
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->next());  // the welcome
  client->send_text(R"({"type":"join","room":"second"})");
  ASSERT_TRUE(eventually([&] { return broadcaster->count() == 2; }));
  client->send_text(R"({"type":"ping"})");
  broadcaster->call(0);  // again: nothing
  const auto is_pong = [](const Message& m) { return m.type == MessageType::pong; };
  EXPECT_FALSE(client->next_matching(is_pong, 300ms)) << "the join's hold was released";
  broadcaster->call(1);  // the join's hold
  EXPECT_TRUE(client->next_matching(is_pong));
  client.reset();
  handler->shutdown(3s);
  handler.reset();
  hub.stop();
  hub.wait();
}

// One user's two sockets on two I/O threads hand a room back and forth (one joins as the other
// leaves): members are told the user's changes in the order they were made, so the last message
// they got says online (a pod without Redis announces under the room's lock; announcing each
// session's change after it could put an "offline" last while the user is in the room).
TEST(HubPresence, AUserHandingARoomBetweenItsSocketsOnTwoThreadsEndsOnline) {
  Pod pod(jwt_config(), 2);
  const std::string token = make_token("hander");
  auto watcher = connect_welcomed(pod.port, "/ws/handed?token=" + make_token("watcher"));
  // Sockets of /ws stay on the thread that accepted them: two in a row, two threads.
  auto one = connect_welcomed(pod.port, "/ws?token=" + token);
  auto two = connect_welcomed(pod.port, "/ws?token=" + token);
  ASSERT_TRUE(watcher && one && two);
  const auto is_pong = [](const Message& m) { return m.type == MessageType::pong; };
  const auto join = R"({"type":"join","room":"handed"})";
  ASSERT_TRUE(one->send_text(join) && one->send_text(R"({"type":"ping"})"));
  ASSERT_TRUE(one->next_matching(is_pong));
  std::string last;  // the last status the watcher was told of the user
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(i % 2 == 0 ? hand_over(*one, *two, "handed") : hand_over(*two, *one, "handed"));
    // What the handover announced was queued to the watcher's thread before those pongs went.
    ASSERT_TRUE(watcher->send_text(R"({"type":"ping"})"));
    while (auto msg = watcher->next()) {
      if (msg->type == MessageType::pong) break;
      if (msg->type != MessageType::presence ||
          msg->data.find(R"("user_id":"hander")") == std::string::npos)
        continue;
      last = msg->data.find(R"("status":"online")") != std::string::npos ? "online" : "offline";
    }
    ASSERT_EQ(last, "online") << "handover " << i;
  }
}

// Past the bucket, a socket's messages wait for their tokens, in order, up to a bucket's worth;
// the tail past that is refused (rate_limited): what members get is always the first messages, in
// order. A socket that goes while some wait leaves nothing behind (their timer finds no session).
TEST(HubRateLimit, PastTheBucketMessagesWaitInOrderAndTheTailIsRefused) {
  HandlerConfig config = fast_config();
  config.rate_limit = 10;
  config.rate_burst = 5;
  Pod pod(config, 2);
  auto sender = connect_welcomed(pod.port, "/ws/shaped");
  auto member = connect_welcomed(pod.port, "/ws/shaped");
  ASSERT_TRUE(sender && member);
  // In one write: a pause between them (a busy machine) would let the bucket refill meanwhile.
  std::vector<std::string> burst;
  for (int i = 0; i < 15; ++i) {
    burst.push_back(R"({"type":"chat","data":{"n":)" + std::to_string(i) + "}}");
  }
  ASSERT_TRUE(sender->send_texts(burst));
  std::vector<int> got;
  while (auto msg = member->next(1500ms)) {
    if (msg->type != MessageType::chat) continue;
    got.push_back(std::stoi(msg->data.substr(msg->data.find(':') + 1)));
  }
  // The bucket (5) at once, as many again as tokens come; a token may refill meanwhile.
  EXPECT_GE(got.size(), 10U);
  EXPECT_LE(got.size(), 12U);
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], static_cast<int>(i));
  const auto refused = [](const Message& m) {
    return m.type == MessageType::error && m.data.find("rate_limited") != std::string::npos;
  };
  EXPECT_TRUE(sender->next_matching(refused, 1s)) << "the tail refused";

  auto leaving = connect_welcomed(pod.port, "/ws/shaped");
  ASSERT_TRUE(leaving);
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(leaving->send_text(R"({"type":"ping"})"));
  leaving->abort();  // three still wait for their tokens
  std::this_thread::sleep_for(500ms);
  EXPECT_TRUE(member->send_text(R"({"type":"ping"})"));
  EXPECT_TRUE(member->next_matching([](const Message& m) { return m.type == MessageType::pong; }));
}

}  // namespace
}  // namespace realtime
