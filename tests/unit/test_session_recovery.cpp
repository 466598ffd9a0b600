// A socket's recoveries through a shared history, with the history's answers held by the test so
// that their order against the socket's joins, leaves and live traffic is the test's choice: a
// rejoin's recovery is its own (not the answer to the join before it), live frames kept aside
// during a recovery are bounded like the send queue (a replay allowed on top), a leave drops
// the room's unsent frames with the allowance of their replay, and a replayed message that comes
// again later is not delivered twice.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "hub/hub_core.hpp"
#include "protocol/envelope.hpp"
#include "realtime/error.hpp"
#include "support/hub_test_support.hpp"

namespace realtime {
namespace {

using namespace std::chrono_literals;
using namespace realtime::testing;

// A shared history whose reads wait until the test answers them.
class HeldHistory final : public LocalForwarding {
 public:
  struct Read {
    std::string room;
    std::string last_id;
    std::function<void(HistoryResult)> done;
  };

  using LocalForwarding::LocalForwarding;
  bool shared_history() const override { return true; }
  void fetch_history(const std::string& room, const std::string& last_id,
                     std::function<void(HistoryResult)> done) override {
    const std::lock_guard lock(mutex_);
    reads_.push_back({room, last_id, std::move(done)});
  }

  std::size_t pending() {
    const std::lock_guard lock(mutex_);
    return reads_.size();
  }
  // The read made with `last_id`, taken out of the pending ones.
  std::optional<Read> take(const std::string& last_id) {
    const std::lock_guard lock(mutex_);
    const auto it = std::find_if(reads_.begin(), reads_.end(),
                                 [&](const Read& read) { return read.last_id == last_id; });
    if (it == reads_.end()) return std::nullopt;
    Read read = std::move(*it);
    reads_.erase(it);
    return read;
  }

 private:
  std::mutex mutex_;
  std::vector<Read> reads_;
};

// Chats numbered `first`..`last` of the history "h" of `room`, {"text":"<pad><n>"} each.
HistoryResult history(const std::string& room, std::uint64_t first, std::uint64_t last,
                      const std::string& pad = {}) {
  HistoryResult result;
  result.recovered = true;
  for (std::uint64_t seq = first; seq <= last; ++seq) {
    Message msg = chat_message(room, pad + std::to_string(seq));
    msg.id = "h-" + std::to_string(seq);
    std::string json;
    protocol::append_envelope(json, msg);
    result.messages.emplace_back(seq, std::move(json));
  }
  result.position = "h-" + std::to_string(last);
  return result;
}

std::string join(const std::string& room, const std::string& last_id) {
  return R"({"type":"join","room":")" + room + R"(","last_id":")" + last_id + R"("})";
}
std::string leave(const std::string& room) {
  return R"({"type":"leave","room":")" + room + R"("})";
}

bool is_event(const Message& msg, std::string_view event) {
  return msg.type == MessageType::system &&
         msg.data.find(R"("event":")" + std::string(event) + '"') != std::string::npos;
}

// A pod whose shared history is a HeldHistory.
struct HeldPod {
  explicit HeldPod(std::size_t send_queue_bytes = fast_config().send_queue_bytes,
                   std::chrono::milliseconds replay_stall_timeout = 30s)
      : server(config(send_queue_bytes, replay_stall_timeout), 2, [this](Hub& hub) {
          history = std::make_shared<HeldHistory>(hub);
          return history;
        }) {}
  static HandlerConfig config(std::size_t send_queue_bytes,
                              std::chrono::milliseconds replay_stall_timeout) {
    HandlerConfig config = fast_config();
    config.send_queue_bytes = send_queue_bytes;
    config.replay_stall_timeout = replay_stall_timeout;
    return config;
  }

  std::shared_ptr<HeldHistory> history;  // (made by `server`'s constructor)
  Pod server;
};

// What a client read until `recovered` of `room`: the chats' texts, and that message.
struct Recovered {
  std::vector<std::string> chats;
  std::optional<Message> recovered;
};
Recovered read_until_recovered(WsClient& client, const std::string& room) {
  Recovered out;
  while (auto msg = client.next()) {
    if (msg->type == MessageType::chat && msg->room == room) out.chats.push_back(msg->data);
    if (is_event(*msg, "recovered") && msg->room == room) {
      out.recovered = std::move(msg);
      break;
    }
  }
  return out;
}

TEST(SessionRecovery, ARejoinRecoversFromItsOwnLastIdWhicheverAnswerComesFirst) {
  for (const bool first_answer_first : {true, false}) {
    SCOPED_TRACE(first_answer_first ? "the first join's answer first" : "the rejoin's first");
    HeldPod pod;
    auto client = connect_welcomed(pod.server.port, "/ws");
    ASSERT_TRUE(client);
    // Joined from h-2, left, joined again from h-8, before either read is answered.
    ASSERT_TRUE(client->send_text(join("r", "h-2")));
    ASSERT_TRUE(client->send_text(leave("r")));
    ASSERT_TRUE(client->send_text(join("r", "h-8")));
    ASSERT_TRUE(eventually([&] { return pod.history->pending() == 2; }));
    auto from2 = pod.history->take("h-2");
    auto from8 = pod.history->take("h-8");
    ASSERT_TRUE(from2 && from8);
    if (first_answer_first) {
      from2->done(history("r", 3, 10));
      from8->done(history("r", 9, 10));
    } else {
      from8->done(history("r", 9, 10));
      from2->done(history("r", 3, 10));
    }
    const Recovered got = read_until_recovered(*client, "r");
    ASSERT_TRUE(got.recovered);
    EXPECT_NE(got.recovered->data.find(R"("replayed":2)"), std::string::npos)
        << got.recovered->data;
    ASSERT_EQ(got.chats.size(), 2U);
    EXPECT_NE(got.chats[0].find("9"), std::string::npos) << got.chats[0];
    EXPECT_NE(got.chats[1].find("10"), std::string::npos) << got.chats[1];
    // Nothing else of the room follows (a second "recovered", or the other replay).
    pod.server.hub.broadcast(chat_message("r", "live"));
    const auto next = client->next_matching([](const Message& msg) {
      return msg.type == MessageType::chat || is_event(msg, "recovered");
    });
    ASSERT_TRUE(next);
    EXPECT_EQ(next->type, MessageType::chat);
    EXPECT_NE(next->data.find("live"), std::string::npos) << next->data;
  }
}

TEST(SessionRecovery, LiveFramesKeptDuringARecoveryMayGoPastTheQueueByAnotherRoomsReplay) {
  HeldPod pod(1 << 20);
  auto client = connect_welcomed(pod.server.port, "/ws");
  ASSERT_TRUE(client);
  // A replay of ~12 MB (more than the kernel's socket buffers take) stays queued while the client
  // does not read: allowed on top of the 1 MB queue (up to 16 times it).
  const std::string pad(60 * 1024, 'x');
  ASSERT_TRUE(client->send_text(join("big", "h-0")));
  ASSERT_TRUE(eventually([&] { return pod.history->pending() == 1; }));
  pod.history->take("h-0")->done(history("big", 1, 200, pad));
  // Another room's recovery, and live traffic in it meanwhile (kept aside until its answer).
  ASSERT_TRUE(client->send_text(join("small", "h-5")));
  ASSERT_TRUE(eventually([&] { return pod.history->pending() == 1; }));
  ASSERT_TRUE(eventually([&] { return pod.server.members("small") == 1; }));
  const std::string text(4096, 'y');
  for (int i = 0; i < 8; ++i) pod.server.hub.broadcast(chat_message("small", text));
  pod.history->take("h-5")->done(history("small", 6, 5));  // nothing missed
  const Recovered big = read_until_recovered(*client, "big");
  EXPECT_EQ(big.chats.size(), 200U);
  ASSERT_TRUE(big.recovered) << "closed during the replay";
  const Recovered small = read_until_recovered(*client, "small");
  ASSERT_TRUE(small.recovered) << "closed during the second recovery";
  int live = 0;
  while (live < 8) {
    const auto msg = client->next();
    ASSERT_TRUE(msg) << "live frames kept aside: " << live << " of 8";
    if (msg->type == MessageType::chat && msg->room == "small") ++live;
  }
}

// A replayed message that comes again after newer ones (this pod's own, its publish answered
// late: the history read had it already) is not delivered twice.
TEST(SessionRecovery, AReplayedMessageComingAgainAfterNewerOnesIsSkipped) {
  HeldPod pod;
  auto client = connect_welcomed(pod.server.port, "/ws");
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->send_text(join("q", "h-3")));
  ASSERT_TRUE(eventually([&] { return pod.history->pending() == 1; }));
  pod.history->take("h-3")->done(history("q", 4, 6));
  const Recovered got = read_until_recovered(*client, "q");
  ASSERT_TRUE(got.recovered);
  ASSERT_EQ(got.chats.size(), 3U);
  auto sequenced = [&](std::uint64_t seq, detail::HubCore::Numbered from) {
    Message msg = chat_message("q", "s" + std::to_string(seq));
    msg.id = "h-" + std::to_string(seq);
    pod.server.hub.core().deliver_sequenced(msg, "h", seq, from);
  };
  sequenced(7, detail::HubCore::Numbered::remote);
  sequenced(6, detail::HubCore::Numbered::own);  // late: the replay had it
  sequenced(8, detail::HubCore::Numbered::remote);
  std::vector<std::string> live;
  while (live.size() < 2 || live.back().find("s8") == std::string::npos) {
    const auto msg =
        client->next_matching([](const Message& m) { return m.type == MessageType::chat; });
    ASSERT_TRUE(msg) << "live so far: " << live.size();
    live.push_back(msg->data);
  }
  ASSERT_EQ(live.size(), 2U) << live[1];
  EXPECT_NE(live[0].find("s7"), std::string::npos) << live[0];
}

TEST(SessionRecovery, ALeaveDropsTheRoomsUnsentReplay) {
  // A client that never reads joins a room with a replay and leaves it, again and again: each
  // leave drops what of the replay was not written yet, so what reaches the client is bounded by
  // the kernel's socket buffers, not by the number of joins.
  HeldPod pod(64 * 1024);
  auto client = connect_welcomed(pod.server.port, "/ws");
  ASSERT_TRUE(client);
  const std::string pad(16 * 1024, 'z');
  constexpr int kJoins = 200;
  constexpr std::uint64_t kReplayed = 40;  // ~640 KB a join, ~128 MB in all
  for (int i = 0; i < kJoins; ++i) {
    ASSERT_TRUE(client->send_text(join("again", "h-0")));
    ASSERT_TRUE(eventually([&] { return pod.history->pending() == 1; }));
    pod.history->take("h-0")->done(history("again", 1, kReplayed, pad));
    ASSERT_TRUE(client->send_text(leave("again")));
  }
  // The last leave was handled once a later request is answered.
  ASSERT_TRUE(client->send_text(R"({"type":"ping"})"));
  std::size_t chats = 0;
  for (;;) {
    const auto msg = client->next();
    ASSERT_TRUE(msg) << "no pong after " << chats << " chats";
    if (msg->type == MessageType::chat) ++chats;
    if (msg->type == MessageType::pong) break;
  }
  // 200 replays of 40 would be 8,000 chats; what the socket buffers took is a few MB (a few
  // hundred chats of 16 KB).
  EXPECT_LT(chats, kJoins * kReplayed / 4) << "replays of a left room were kept";
}

// Replays may queue up to 16 times --send-queue-bytes: a replay that would take the socket past
// it is answered recovered: false, with nothing replayed, through the shared history and from the
// pod's own.
TEST(SessionRecovery, AReplayPastSixteenTimesTheQueueIsNotRecovered) {
  HeldPod pod(64 * 1024);  // replays up to 1 MiB
  auto client = connect_welcomed(pod.server.port, "/ws");
  ASSERT_TRUE(client);
  const std::string pad(16 * 1024, 'z');
  ASSERT_TRUE(client->send_text(join("fits", "h-0")));
  ASSERT_TRUE(eventually([&] { return pod.history->pending() == 1; }));
  pod.history->take("h-0")->done(history("fits", 1, 40, pad));  // ~660 KB
  const Recovered fits = read_until_recovered(*client, "fits");
  ASSERT_TRUE(fits.recovered);
  EXPECT_NE(fits.recovered->data.find(R"("recovered":true)"), std::string::npos);
  EXPECT_EQ(fits.chats.size(), 40U);
  ASSERT_TRUE(client->send_text(join("past", "h-0")));
  ASSERT_TRUE(eventually([&] { return pod.history->pending() == 1; }));
  pod.history->take("h-0")->done(history("past", 1, 70, pad));  // ~1.15 MB
  const Recovered past = read_until_recovered(*client, "past");
  ASSERT_TRUE(past.recovered) << "closed";
  EXPECT_NE(past.recovered->data.find(R"("recovered":false)"), std::string::npos)
      << past.recovered->data;
  EXPECT_NE(past.recovered->data.find(R"("replayed":0)"), std::string::npos);
  EXPECT_TRUE(past.chats.empty());
  // The room is joined all the same: live traffic reaches the socket.
  pod.server.hub.broadcast(chat_message("past", "live"));
  const auto live =
      client->next_matching([](const Message& m) { return m.type == MessageType::chat; });
  ASSERT_TRUE(live);
  EXPECT_NE(live->data.find("live"), std::string::npos) << live->data;

  // The pod's own history (no shared one).
  HandlerConfig config = fast_config();
  config.send_queue_bytes = 64 * 1024;
  Pod local(config, 2);
  std::vector<std::string> ids;
  for (int i = 0; i < 70; ++i) ids.push_back(local.hub.broadcast(chat_message("own", pad)));
  for (const auto& [from, recovered] : {std::pair{std::size_t{29}, true}, {0, false}}) {
    auto resumed = WsClient::connect(local.port, "/ws/own?last_id=" + ids[from]);
    ASSERT_TRUE(resumed);
    const Recovered got = read_until_recovered(*resumed, "own");
    ASSERT_TRUE(got.recovered) << "closed";
    EXPECT_NE(got.recovered->data.find(recovered ? R"("recovered":true)" : R"("recovered":false)"),
              std::string::npos)
        << got.recovered->data;
    EXPECT_EQ(got.chats.size(), recovered ? 69 - from : 0U);
  }
}

// Joins rooms "one" and "two" with replays of ~8 MB each: together more than the kernel's socket
// buffers take, within the 16 MB of replays a 1 MB queue allows.
void queue_two_replays(WsClient& client, HeldHistory& history) {
  const std::string pad(80 * 1024, 'w');
  for (const std::string room : {"one", "two"}) {
    ASSERT_TRUE(client.send_text(join(room, "h-0")));
    ASSERT_TRUE(eventually([&] { return history.pending() == 1; }));
    history.take("h-0")->done(::realtime::history(room, 1, 100, pad));
  }
}

// A socket past its queue's bound by a replay must go on reading: one that reads nothing for the
// stall timeout is closed as a slow consumer (1013), so it cannot hold its replay for good.
TEST(SessionRecovery, ASocketThatStopsReadingDuringAReplayIsClosed) {
  HeldPod pod(1 << 20, 1s);
  auto client = connect_welcomed(pod.server.port, "/ws");
  ASSERT_TRUE(client);
  queue_two_replays(*client, *pod.history);
  std::this_thread::sleep_for(3s);  // past the stall timeout and a tick of the keepalive sweep
  EXPECT_EQ(client->wait_close(), std::optional<std::uint16_t>(close_code::try_again_later));
  EXPECT_LT(client->texts_received(), 200U) << "the whole replay reached the client";
}

// A client that reads slowly (its socket is reported writable only once about a third of the send
// buffer has drained: seconds at this pace) is not taken for one that stopped: the kernel's send
// queue going down counts as progress.
TEST(SessionRecovery, ASocketThatReadsSlowlyDuringAReplayStays) {
  // (A 2 s stall timeout: at 1 s, with the keepalive's check about once a second, a test thread
  // held up for most of a second by a busy machine could pass for a client that stopped.)
  HeldPod pod(1 << 20, 2s);
  auto client = connect_welcomed(pod.server.port, "/ws");
  ASSERT_TRUE(client);
  queue_two_replays(*client, *pod.history);
  // ~320 KB/s for 5 s: five stall timeouts.
  std::size_t chats = 0;
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < until) {
    const auto msg = client->next();
    ASSERT_TRUE(msg) << "closed after " << chats << " chats";
    if (msg->type == MessageType::chat) ++chats;
    std::this_thread::sleep_for(250ms);
  }
  // Then all of the rest, and both rooms' "recovered".
  EXPECT_TRUE(read_until_recovered(*client, "one").recovered) << "closed";
  EXPECT_TRUE(read_until_recovered(*client, "two").recovered) << "closed";
}

}  // namespace
}  // namespace realtime
