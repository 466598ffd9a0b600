// ClusterState's presence resync message (published by its script on the pod's control channel):
// what the parser accepts and what it refuses. The script itself runs against redis-server in
// tests/cluster/presence-resync.test.mjs.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "redis/cluster_state.hpp"

namespace realtime::detail {
namespace {

std::vector<std::string> users(const ClusterState::PresenceSync& sync) {
  std::vector<std::string> out;
  for (const PresenceEntry& entry : sync.users)
    out.push_back(entry.user_id + "=" + std::string(to_string(entry.status)));
  return out;
}

TEST(PresenceSyncMessage, ParsesKindRoomAndUsers) {
  const auto resync = ClusterState::parse_presence_sync(
      "presence-sync\nresync\nroom-1\npod-a@17\nann\tonline\nbob x|y\taway");
  ASSERT_TRUE(resync);
  EXPECT_FALSE(resync->snapshot);
  EXPECT_EQ(resync->room, "room-1");
  EXPECT_EQ(resync->epoch, "pod-a@17");
  EXPECT_EQ(users(*resync), (std::vector<std::string>{"ann=online", "bob x|y=away"}));

  const auto empty = ClusterState::parse_presence_sync("presence-sync\nsnapshot\nquiet\n-");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->snapshot);
  EXPECT_EQ(empty->room, "quiet");
  EXPECT_EQ(empty->epoch, "-");
  EXPECT_TRUE(empty->users.empty());

  const auto read = ClusterState::parse_presence_sync("presence-sync\nread\nlate\nE\nann\tonline");
  ASSERT_TRUE(read);
  EXPECT_TRUE(read->read);
  EXPECT_FALSE(read->snapshot);
  EXPECT_FALSE(resync->read);
  EXPECT_EQ(users(*read), (std::vector<std::string>{"ann=online"}));
}

TEST(PresenceSyncMessage, RefusesWhatIsNotOne) {
  for (const char* bad : {
           "",
           "presence-sync",
           "presence-sync\nresync",
           "presence-sync\nresync\nroom",                 // no epoch
           "presence-sync\nresync\nroom\n\nann\tonline",  // an empty epoch
           "presence-sync\nlater\nroom\ne",               // unknown kind
           "presence-sync\nresync\nbad room\ne",          // not a room name
           "presence-sync\nresync\nr\ne\nann",            // no status
           "presence-sync\nresync\nr\ne\nann\tbusy",      // not a status
           "{\"type\":\"presence\"}",                     // an echo, not a sync
           "presence-syncing\nresync\nr",
       }) {
    EXPECT_FALSE(ClusterState::parse_presence_sync(bad)) << bad;
  }
}

}  // namespace
}  // namespace realtime::detail
