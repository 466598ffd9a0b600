// The memory budget of room histories (HubOptions::history_bytes): rooms without members go first,
// least recently used first; a full history holds a constant amount; the running count stays true
// under concurrent publishers and sweeps.
#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "hub/hub_core.hpp"
#include "support/hub_test_support.hpp"

namespace realtime {
namespace {

using namespace realtime::testing;

std::size_t retained(Hub& hub) {
  return static_cast<std::size_t>(hub.metrics().room_retained_bytes.load());
}

TEST(HubHistoryBudget, RoomsWithoutMembersAreForgottenLeastRecentlyUsedFirst) {
  constexpr std::size_t kBudget = 64 << 10;
  Hub hub(HubOptions{2, 10, "budget", kBudget});
  hub.start();
  const std::string text(200, 'x');
  const auto room_id = [&](const std::string& room) {
    auto id = parse_room_id(hub.broadcast(chat_message(room, text)));
    EXPECT_TRUE(id) << room;
    return id.value_or(RoomId{});
  };
  const RoomId first = room_id("r0");
  const RoomId kept = room_id("kept");
  std::uint64_t kept_seq = kept.seq;
  std::size_t highest = 0;
  for (int i = 1; i < 400; ++i) {
    room_id("r" + std::to_string(i));
    if (i % 10 == 0) {  // used now and then: never the least recently used
      const RoomId again = room_id("kept");
      ASSERT_EQ(again.epoch, kept.epoch) << "after " << i << " rooms";
      ASSERT_EQ(again.seq, ++kept_seq);
    }
    highest = std::max(highest, retained(hub));
    ASSERT_LE(retained(hub), kBudget) << "after " << i << " rooms";
  }
  EXPECT_GT(highest, kBudget / 2) << "the rooms filled the budget";
  EXPECT_GT(hub.metrics().history_evictions.load(), 100U);

  // The first room was forgotten: its numbering starts again in a new history.
  const RoomId reborn = room_id("r0");
  EXPECT_NE(reborn.epoch, first.epoch);
  EXPECT_EQ(reborn.seq, 1U);
  // The latest rooms are still known.
  const RoomId latest = room_id("r399");
  EXPECT_EQ(latest.seq, 2U);
  hub.stop();
  hub.wait();
}

TEST(HubHistoryBudget, TheCountStaysTrueUnderConcurrentPublishersAndSweeps) {
  constexpr std::size_t kBudget = 128 << 10;
  Hub hub(HubOptions{2, 20, "sweeps", kBudget});
  hub.start();
  std::vector<std::thread> publishers;
  for (int t = 0; t < 4; ++t) {
    publishers.emplace_back([&hub, t] {
      const std::string text(50 + t * 40, 'z');
      for (int i = 0; i < 3000; ++i)
        hub.broadcast(chat_message("t" + std::to_string(t) + "-" + std::to_string(i % 300), text));
    });
  }
  for (auto& thread : publishers) thread.join();
  EXPECT_GT(hub.metrics().history_evictions.load(), 0U);
  EXPECT_EQ(retained(hub), hub.core().registry().count_retained_bytes());
  // Each publisher may add one message past the budget while another thread sweeps.
  EXPECT_LE(retained(hub), kBudget + 4 * 2048);
  hub.stop();
  hub.wait();
}

TEST(HubHistoryBudget, AFullHistoryHoldsAConstantAmount) {
  Hub hub(HubOptions{1, 10, "steady"});
  const std::string text(100, 'y');
  // Ids 11 to 99 have one length, so their frames have one size.
  for (int i = 0; i < 20; ++i) hub.broadcast(chat_message("steady", text));
  const std::size_t full = retained(hub);
  EXPECT_GT(full, 10 * text.size());
  for (int i = 0; i < 50; ++i) hub.broadcast(chat_message("steady", text));
  EXPECT_EQ(retained(hub), full);
  EXPECT_EQ(hub.metrics().history_evictions.load(), 0U);
}

}  // namespace
}  // namespace realtime
