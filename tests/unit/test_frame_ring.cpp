// FrameRing: a room's last messages, oldest first, bounded by the history size.
#include <cstdint>
#include <memory>
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

}  // namespace
}  // namespace realtime::detail
