// FrameRing: a room's last messages, oldest first, bounded by the history size. ToldPresence: what
// a room's members were told of each user.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "hub/room_registry.hpp"

namespace realtime::detail {
namespace {

FramePtr frame(std::uint64_t seq) {
  auto f = std::make_shared<OutFrame>();
  f->seq = seq;
  return f;
}

std::vector<std::uint64_t> seqs(const FrameRing& ring) {
  std::vector<std::uint64_t> out;
  ring.for_each([&](const FramePtr& f) { out.push_back(f->seq); });
  return out;
}

TEST(FrameRing, EmptyHoldsNothing) {
  FrameRing ring;
  EXPECT_TRUE(ring.empty());
  EXPECT_TRUE(seqs(ring).empty());
}

TEST(FrameRing, KeepsTheLastLimitInOrderAcrossManyWraps) {
  FrameRing ring;
  for (std::uint64_t seq = 1; seq <= 23; ++seq) {
    ring.push(frame(seq), 5);
    const std::uint64_t first = seq > 5 ? seq - 4 : 1;
    std::vector<std::uint64_t> want;
    for (std::uint64_t s = first; s <= seq; ++s) want.push_back(s);
    ASSERT_EQ(seqs(ring), want) << "after " << seq;
    ASSERT_EQ(ring.front()->seq, first);
    ASSERT_EQ(ring.size(), want.size());
  }
}

TEST(FrameRing, LimitOneKeepsTheLatest) {
  FrameRing ring;
  for (std::uint64_t seq = 1; seq <= 4; ++seq) ring.push(frame(seq), 1);
  EXPECT_EQ(seqs(ring), std::vector<std::uint64_t>{4});
  EXPECT_EQ(ring.front()->seq, 4U);
}

TEST(FrameRing, LimitZeroKeepsNothing) {
  FrameRing ring;
  ring.push(frame(1), 0);
  EXPECT_TRUE(ring.empty());
}

TEST(FrameRing, ReleasesTheFramesItDrops) {
  FrameRing ring;
  std::weak_ptr<const OutFrame> oldest;
  {
    auto first = frame(1);
    oldest = first;
    ring.push(std::move(first), 2);
  }
  ring.push(frame(2), 2);
  EXPECT_FALSE(oldest.expired());
  ring.push(frame(3), 2);
  EXPECT_TRUE(oldest.expired());
}

FramePtr frame_of(std::size_t size) {
  auto f = std::make_shared<OutFrame>();
  f->bytes.assign(size, 'x');
  return f;
}

TEST(FrameRing, CountsTheMemoryOfWhatItHolds) {
  FrameRing ring;
  std::ptrdiff_t sum = 0;
  std::vector<std::size_t> kept;  // retained_frame_bytes() of the frames held, oldest first
  for (std::size_t i = 0; i < 12; ++i) {
    const FramePtr f = frame_of(100 + i * 50);
    const std::size_t cost = retained_frame_bytes(*f);
    EXPECT_GT(cost, f->bytes.size());
    sum += ring.push(f, 4);
    kept.push_back(cost);
    if (kept.size() > 4) kept.erase(kept.begin());
    std::size_t want = 4 * sizeof(FramePtr);  // the slots, taken on the first push
    for (const std::size_t c : kept) want += c;
    ASSERT_EQ(ring.bytes(), want) << "after " << i;
    ASSERT_EQ(static_cast<std::size_t>(sum), ring.bytes()) << "the changes add up";
  }
  EXPECT_EQ(ring.clear(), static_cast<std::size_t>(sum));
  EXPECT_TRUE(ring.empty());
  EXPECT_EQ(ring.bytes(), 0U);
  EXPECT_EQ(ring.push(frame_of(10), 0), 0) << "limit 0 keeps nothing";
  ring.push(frame(1), 3);
  ring.push(frame(2), 3);
  EXPECT_EQ(seqs(ring), (std::vector<std::uint64_t>{1, 2})) << "usable after clear()";
}

std::string told(const ToldPresence& t) {
  std::string out;
  t.for_each([&](std::string_view user, PresenceStatus status) {
    out += std::string(user) + "=" + std::string(to_string(status)) + " ";
  });
  return out;
}

TEST(ToldPresence, KeepsOneStatusPerUserInOrderAndOfflineRemoves) {
  ToldPresence t;
  EXPECT_EQ(t.get("ann"), PresenceStatus::offline);
  t.set("carl", PresenceStatus::online);
  t.set("ann", PresenceStatus::away);
  t.set("bob", PresenceStatus::online);
  t.set("ann", PresenceStatus::online);
  EXPECT_EQ(told(t), "ann=online bob=online carl=online ");
  t.set("bob", PresenceStatus::offline);
  t.set("dave", PresenceStatus::offline);  // not there: nothing to remove
  EXPECT_EQ(told(t), "ann=online carl=online ");
  EXPECT_EQ(t.get("bob"), PresenceStatus::offline);
  EXPECT_EQ(t.get("carl"), PresenceStatus::online);

  t.assign({{"zed", PresenceStatus::away},
            {"amy", PresenceStatus::online},
            {"gone", PresenceStatus::offline},
            {"amy", PresenceStatus::online}});
  EXPECT_EQ(told(t), "amy=online zed=away ");
  t.clear();
  EXPECT_EQ(told(t), "");
}

}  // namespace
}  // namespace realtime::detail
