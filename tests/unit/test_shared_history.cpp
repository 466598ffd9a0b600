// The history script against a real redis-server: a recovery's read returns only the items a
// client needs after its last id (none for the latest id), and what history_after() makes of that
// answer is what it made of the room's whole history (the last --history-size items), whatever the
// list holds: contiguous, trimmed, longer than the history size (the trim slack), with a number
// that has no item, or empty.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "redis/redis_connection.hpp"
#include "redis/shared_history.hpp"
#include "support/redis_server.hpp"

namespace realtime::detail {
namespace {

constexpr std::string_view kEpoch = "abcdefgh";
constexpr std::string_view kIds = "realtime:ids:room";
constexpr std::string_view kHistory = "realtime:history:room";

std::string item(std::uint64_t seq) {
  return "{\"id\":\"" + std::string(kEpoch) + '-' + std::to_string(seq) +
         "\",\"type\":\"chat\",\"room\":\"room\",\"data\":{\"n\":" + std::to_string(seq) +
         "},\"timestamp\":\"2024-01-01T00:00:00.000Z\",\"pod\":\"p1\"}";
}

class SharedHistoryRead : public ::testing::Test {
 protected:
  // The room's numbering at `current`, its list holding `seqs` in order.
  void fill(std::uint64_t current, const std::vector<std::uint64_t>& seqs) {
    redis_.command({"DEL", std::string(kIds), std::string(kHistory)});
    redis_.command({"HSET", std::string(kIds), std::string(kEpoch), std::to_string(current)});
    for (const auto seq : seqs) redis_.command({"RPUSH", std::string(kHistory), item(seq)});
  }

  // The history script as a recovery sends it (ARGV 4 and 5: the last id's epoch and seq).
  RedisReply read(std::size_t keep, std::optional<std::pair<std::string, std::uint64_t>> last) {
    std::vector<std::string> args = {"EVAL",
                                     std::string(history_script()),
                                     "2",
                                     std::string(kIds),
                                     std::string(kHistory),
                                     std::to_string(keep),
                                     "freshepo",
                                     "3600"};
    if (last) {
      args.push_back(last->first);
      args.push_back(std::to_string(last->second));
    }
    auto reply = redis_.command(args);
    EXPECT_EQ(reply->type, REDIS_REPLY_ARRAY) << (reply->str ? reply->str : "");
    return to_reply(*reply);
  }

  // What the script answered before it narrowed its read: the position and the last `keep` items.
  RedisReply whole(std::size_t keep) {
    RedisReply out;
    out.type = RedisReply::Type::array;
    const auto current = redis_.command({"HGET", std::string(kIds), std::string(kEpoch)});
    out.elements.push_back(RedisReply{RedisReply::Type::string, 0, std::string(kEpoch), {}});
    out.elements.push_back(
        RedisReply{RedisReply::Type::string, 0, std::string(current->str, current->len), {}});
    auto items =
        redis_.command({"LRANGE", std::string(kHistory), "-" + std::to_string(keep), "-1"});
    for (std::size_t i = 0; i < items->elements; ++i)
      out.elements.push_back(to_reply(*items->element[i]));
    return out;
  }

  // For every last id from 0 to past the current number: the narrowed read recovers what the
  // whole history recovered, and reads no item the client does not need when the list is
  // contiguous.
  void expect_same_as_whole(std::size_t keep, std::uint64_t current, bool contiguous) {
    for (std::uint64_t asked = 0; asked <= current + 2; ++asked) {
      const std::string last_id = std::string(kEpoch) + '-' + std::to_string(asked);
      const RedisReply narrow = read(keep, std::make_pair(std::string(kEpoch), asked));
      const HistoryResult got = history_after(narrow, last_id);
      const HistoryResult want = history_after(whole(keep), last_id);
      EXPECT_EQ(got.recovered, want.recovered) << "last id " << last_id;
      EXPECT_EQ(got.messages, want.messages) << "last id " << last_id;
      EXPECT_EQ(got.position, want.position) << "last id " << last_id;
      const std::uint64_t needed =
          asked < current ? std::min<std::uint64_t>(current - asked, keep) : 0;
      if (contiguous) {
        EXPECT_LE(narrow.elements.size(), 2 + needed) << "last id " << last_id;
      }
    }
  }

  test::RedisServer server_;
  test::RedisClient redis_{"127.0.0.1", server_.port()};
};

std::vector<std::uint64_t> range(std::uint64_t first, std::uint64_t last) {
  std::vector<std::uint64_t> out;
  for (auto s = first; s <= last; ++s) out.push_back(s);
  return out;
}

TEST_F(SharedHistoryRead, TheLatestIdReadsNoItem) {
  fill(40, range(1, 40));
  const RedisReply reply = read(100, std::make_pair(std::string(kEpoch), std::uint64_t{40}));
  ASSERT_EQ(reply.elements.size(), 2U);  // the position alone
  const HistoryResult result = history_after(reply, std::string(kEpoch) + "-40");
  EXPECT_TRUE(result.recovered);
  EXPECT_TRUE(result.messages.empty());
  EXPECT_EQ(result.position, std::string(kEpoch) + "-40");
}

TEST_F(SharedHistoryRead, AMiddleIdReadsTheItemsAfterIt) {
  fill(40, range(1, 40));
  const RedisReply reply = read(100, std::make_pair(std::string(kEpoch), std::uint64_t{29}));
  EXPECT_EQ(reply.elements.size(), 2U + 11U);
  const HistoryResult result = history_after(reply, std::string(kEpoch) + "-29");
  EXPECT_TRUE(result.recovered);
  ASSERT_EQ(result.messages.size(), 11U);
  for (std::size_t i = 0; i < result.messages.size(); ++i) {
    EXPECT_EQ(result.messages[i].first, 30 + i);
    EXPECT_EQ(result.messages[i].second.find("\"pod\""), std::string::npos);
  }
}

TEST_F(SharedHistoryRead, WithoutALastIdOrOfAnotherEpochOnlyThePosition) {
  fill(40, range(1, 40));
  EXPECT_EQ(read(100, std::nullopt).elements.size(), 2U);
  EXPECT_EQ(read(0, std::nullopt).elements.size(), 2U);
  const RedisReply other = read(100, std::make_pair(std::string("zzzzzzzz"), std::uint64_t{3}));
  EXPECT_EQ(other.elements.size(), 2U);
  EXPECT_FALSE(history_after(other, "zzzzzzzz-3").recovered);
}

TEST_F(SharedHistoryRead, ARoomWithoutHistoryStartsOne) {
  redis_.command({"DEL", std::string(kIds), std::string(kHistory)});
  const RedisReply reply = read(100, std::make_pair(std::string(kEpoch), std::uint64_t{3}));
  ASSERT_EQ(reply.elements.size(), 2U);
  EXPECT_EQ(reply.elements[0].str, "freshepo");
  EXPECT_EQ(reply.elements[1].str, "0");
  EXPECT_FALSE(history_after(reply, std::string(kEpoch) + "-3").recovered);
}

TEST_F(SharedHistoryRead, SameAsTheWholeHistoryWhenContiguous) {
  fill(40, range(1, 40));
  expect_same_as_whole(100, 40, true);
}

TEST_F(SharedHistoryRead, SameAsTheWholeHistoryWhenTrimmed) {
  fill(130, range(31, 130));  // the publish script trimmed it back to 100
  expect_same_as_whole(100, 130, true);
}

TEST_F(SharedHistoryRead, SameAsTheWholeHistoryInTheTrimSlack) {
  fill(124, range(1, 124));  // a quarter over the history size is trimmed only past 125
  expect_same_as_whole(100, 124, true);
}

TEST_F(SharedHistoryRead, SameAsTheWholeHistoryWithANumberThatHasNoItem) {
  // A number issued without an item (a publish whose RPUSH failed, or a sequence advanced by
  // hand): the tail is not contiguous, so more of it comes back, and the reader filters.
  std::vector<std::uint64_t> seqs = range(1, 20);
  for (const auto s : range(26, 40)) seqs.push_back(s);
  fill(40, seqs);
  expect_same_as_whole(100, 40, false);
  fill(45, range(1, 40));  // numbers after the last item
  expect_same_as_whole(100, 45, false);
}

TEST_F(SharedHistoryRead, SameAsTheWholeHistoryWhenTheListIsGone) {
  fill(40, {});
  expect_same_as_whole(100, 40, true);
}

TEST_F(SharedHistoryRead, SameAsTheWholeHistoryWithASmallHistorySize) {
  fill(40, range(1, 40));  // another pod keeps more than this one
  expect_same_as_whole(10, 40, true);
}

// A run other than the recorded one drops every room's numbering and history, once, and nothing
// else of the deployment's keys; the recorded run drops nothing.
TEST(RestartCheck, AnotherRunDropsEveryRoomsNumberingOnce) {
  test::RedisServer server;
  test::RedisClient redis{"127.0.0.1", server.port()};
  const auto check = [&](const std::string& run) {
    auto reply = redis.command({"EVAL", std::string(restart_check_script()), "0", run});
    EXPECT_EQ(reply->type, REDIS_REPLY_INTEGER) << (reply->str ? reply->str : "");
    return reply->integer;
  };
  for (int room = 0; room < 2500; ++room) {  // more than one SCAN page
    const std::string name = "r" + std::to_string(room);
    redis.command({"HSET", "realtime:ids:" + name, "epoch", "7"});
    redis.command({"RPUSH", "realtime:history:" + name, "item"});
  }
  redis.command({"SADD", "realtime:pods", "p1"});
  EXPECT_EQ(check("run-1"), 2500);
  EXPECT_EQ(redis.command({"DBSIZE"})->integer, 2);  // realtime:pods and realtime:run
  EXPECT_EQ(redis.get("realtime:run"), "run-1");

  redis.command({"HSET", "realtime:ids:later", "epoch", "1"});
  EXPECT_EQ(check("run-1"), 0);
  EXPECT_EQ(redis.command({"EXISTS", "realtime:ids:later"})->integer, 1);
  EXPECT_EQ(check("run-2"), 1);
  EXPECT_EQ(redis.command({"EXISTS", "realtime:ids:later"})->integer, 0);
  EXPECT_EQ(redis.get("realtime:run"), "run-2");
}

// Only a message a pod published ends with its "pod" field; another program's may carry a "pod"
// key in its data, or none.
TEST(PodField, FoundOnlyWhenItEndsTheEnvelope) {
  const std::string ours = R"({"id":"e-1","type":"chat","data":{"t":1},"pod":"a\"b"})";
  EXPECT_EQ(pod_field_at(ours), ours.find(R"(,"pod":)"));
  EXPECT_EQ(pod_field_at(R"({"id":"msg-42","type":"chat","data":{"t":1}})"),
            std::string_view::npos);
  EXPECT_EQ(pod_field_at(R"({"type":"chat","data":{"x":1,"pod":"p"}})"), std::string_view::npos);
  EXPECT_EQ(pod_field_at(R"({"type":"chat","data":{"pod":"p","x":"y"}})"), std::string_view::npos);
  EXPECT_EQ(pod_field_at(R"({"type":"chat","pod":"p","data":"q"})"), std::string_view::npos);
}

}  // namespace
}  // namespace realtime::detail
