// ClusterState's presence resync message (published by its script on the pod's control channel):
// what the parser accepts and what it refuses; and two scripts' budgets against a real
// redis-server: a presence sync reads rooms until their entries pass it, always a room whole; the
// removal of a dead pod's part goes a room at a time, the pod listed until its last room is gone.
// The scripts' use by the pods runs in tests/cluster (presence-resync, pod-death).
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "redis/cluster_state.hpp"
#include "support/redis_server.hpp"

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

TEST(PresenceSyncScript, ACallStopsAfterTheRoomThatPassesItsBudget) {
  test::RedisServer server;
  test::RedisClient redis("127.0.0.1", server.port());
  redis.command({"SADD", "realtime:pods", "p1"});
  // Rooms a, b, c with 3, 4 and 2 users on pod p1.
  for (const auto& [room, users] :
       std::vector<std::pair<std::string, int>>{{"a", 3}, {"b", 4}, {"c", 2}}) {
    for (int u = 0; u < users; ++u)
      redis.command({"HSET", "realtime:presence:" + room, "p1|u" + std::to_string(u), "online"});
  }
  const auto call = [&](const std::string& budget, std::vector<std::string> rooms) {
    std::vector<std::string> args = {"EVAL",          presence_sync_script(), "2",
                                     "realtime:pods", "realtime:state-epoch", "p2",
                                     "resync",        "realtime:control:p2",  budget};
    args.insert(args.end(), rooms.begin(), rooms.end());
    return redis.command(args)->integer;
  };
  EXPECT_EQ(call("1000", {"a", "b", "c"}), 3);  // within the budget: every room
  EXPECT_EQ(call("7", {"a", "b", "c"}), 2);     // a and b bring 7: c goes in the next call
  EXPECT_EQ(call("1", {"a", "b", "c"}), 1);     // a room is read whole, at least one
  EXPECT_EQ(call("1", {"c"}), 1);

  // With no channel it answers the messages instead of publishing them.
  auto read = redis.command({"EVAL", presence_sync_script(), "2", "realtime:pods",
                             "realtime:state-epoch", "p2", "read", "", "1000", "c"});
  ASSERT_EQ(read->type, REDIS_REPLY_ARRAY);
  ASSERT_EQ(read->elements, 1U);
  const auto sync = ClusterState::parse_presence_sync(read->element[0]->str);
  ASSERT_TRUE(sync);
  EXPECT_TRUE(sync->read);
  std::vector<std::string> listed = users(*sync);
  std::sort(listed.begin(), listed.end());
  EXPECT_EQ(listed, (std::vector<std::string>{"u0=online", "u1=online"}));
}

TEST(RemovePodScript, ADeadPodsPartGoesACallAtATimeWithinTheBudget) {
  test::RedisServer server;
  test::RedisClient redis("127.0.0.1", server.port());
  // Pod "gone" (no lease) holds users in rooms a, b and c; pod "live" holds u0 in room a too.
  redis.command({"SADD", "realtime:pods", "gone", "live"});
  redis.command({"SET", "realtime:pod:live", "1"});
  for (const char* room : {"a", "b", "c"}) {
    redis.command({"SADD", "realtime:pod:gone:prooms", room});
    for (int u = 0; u < 3; ++u) {
      redis.command({"HSET", std::string("realtime:presence:") + room, "gone|u" + std::to_string(u),
                     "online"});
    }
  }
  redis.command({"HSET", "realtime:presence:a", "live|u0", "away"});
  redis.command({"HSET", "realtime:pod:gone:rooms", "a", "3"});
  const auto call = [&](const std::string& budget) {
    return redis.command(
        {"EVAL", remove_pod_script(), "1", "realtime:pods", "gone", "0", "}", "", budget});
  };
  // A budget of 1 entry: one room a call, the pod listed until its last room is gone.
  std::vector<std::string> changes;
  for (int calls = 1; calls <= 3; ++calls) {
    const auto reply = call("1");
    ASSERT_EQ(reply->type, REDIS_REPLY_ARRAY);
    EXPECT_EQ(reply->element[0]->integer, calls < 3 ? 1 : 0) << "call " << calls;
    for (std::size_t i = 1; i + 2 < reply->elements; i += 3) {
      changes.push_back(std::string(reply->element[i]->str) + "/" + reply->element[i + 1]->str +
                        "=" + reply->element[i + 2]->str);
    }
    EXPECT_EQ(redis.command({"SISMEMBER", "realtime:pods", "gone"})->integer, calls < 3 ? 1 : 0);
  }
  std::sort(changes.begin(), changes.end());
  EXPECT_EQ(changes, (std::vector<std::string>{"a/u0=away", "a/u1=offline", "a/u2=offline",
                                               "b/u0=offline", "b/u1=offline", "b/u2=offline",
                                               "c/u0=offline", "c/u1=offline", "c/u2=offline"}));
  EXPECT_EQ(redis.command({"EXISTS", "realtime:pod:gone:rooms"})->integer, 0);
  // A pod with a lease is not removed.
  EXPECT_EQ(redis
                .command({"EVAL", remove_pod_script(), "1", "realtime:pods", "live", "0", "}", "",
                          "1000"})
                ->element[0]
                ->integer,
            0);
  EXPECT_EQ(redis.command({"SISMEMBER", "realtime:pods", "live"})->integer, 1);
}

}  // namespace
}  // namespace realtime::detail
