// The order in which a pod delivers a room's messages numbered by a shared history
// (HubCore::deliver_sequenced): where its delivery of a room starts when the answer to its own
// publish overtakes other pods' messages still on their way through the subscription, what the
// echo of its own message settles, and gaps that are given up on. Driven through the hub directly
// (as the Redis broadcaster does) with one real member socket, so each arrival order is forced.
// Also gaps read back from the shared history: release_held(true) names a gap once,
// deliver_repaired() fills it in order, gap_repaired() gives up what the history did not have.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "hub/hub_core.hpp"
#include "support/hub_test_support.hpp"

namespace realtime {
namespace {

using namespace realtime::testing;
using Numbered = detail::HubCore::Numbered;

constexpr std::string_view kEpoch = "e1";

// A pod whose only member of `room` has just joined: the room's start on the pod is not known.
struct SharedRoom {
  Pod pod{fast_config(), 2};
  std::string room = "shared";
  std::unique_ptr<WsClient> member = connect_welcomed(pod.port, "/ws/" + room);

  // A chat message of the room numbered (epoch, seq) by the shared history.
  Message numbered(std::uint64_t seq, std::string_view epoch = kEpoch) const {
    Message msg;
    msg.type = MessageType::chat;
    msg.room = room;
    msg.data = R"({"n":)" + std::to_string(seq) + "}";
    msg.id = std::string(epoch) + "-" + std::to_string(seq);
    return msg;
  }
  void deliver(std::uint64_t seq, Numbered from) {
    Message msg = numbered(seq);
    pod.hub.core().deliver_sequenced(msg, kEpoch, seq, from);
  }
  void echo(std::uint64_t seq) { pod.hub.core().own_echo(room, kEpoch, seq); }
  // A message read back from the shared history (what RedisBroadcasterCore::fill_gap does).
  void repaired(std::uint64_t seq, std::string_view epoch = kEpoch) {
    Message msg = numbered(seq, epoch);
    pod.hub.core().deliver_repaired(msg, epoch, seq);
  }
  std::vector<detail::HubCore::SharedPosition> release_for_repair() {
    std::this_thread::sleep_for(detail::HubCore::kHoldLimit);
    return pod.hub.core().release_held(true);
  }

  // The numbers of the next n chat messages the member gets.
  std::vector<std::uint64_t> next(std::size_t n) {
    std::vector<std::uint64_t> seqs;
    while (seqs.size() < n) {
      const auto msg =
          member->next_matching([](const Message& m) { return m.type == MessageType::chat; });
      if (!msg) break;
      const auto id = parse_room_id(msg->id);
      seqs.push_back(id ? id->seq : 0);
    }
    return seqs;
  }
  // True when no chat message arrives within `wait` (what is held stays held).
  bool quiet(std::chrono::milliseconds wait = std::chrono::milliseconds(150)) {
    return !member->next_matching([](const Message& m) { return m.type == MessageType::chat; },
                                  wait);
  }
};

using Seqs = std::vector<std::uint64_t>;

TEST(SharedOrder, AnOwnAnswerWaitsUntilTheSubscriptionShowsWhereTheRoomStarts) {
  SharedRoom r;
  ASSERT_TRUE(r.member);
  r.deliver(5, Numbered::own);  // answered before others' 3 and 4 came through the subscription
  EXPECT_TRUE(r.quiet());
  r.deliver(3, Numbered::remote);
  EXPECT_EQ(r.next(1), Seqs{3});
  EXPECT_TRUE(r.quiet());  // 5 waits for 4
  r.deliver(4, Numbered::remote);
  EXPECT_EQ(r.next(2), (Seqs{4, 5}));
}

TEST(SharedOrder, TheEchoOfAnOwnMessageStartsTheRoomAtIt) {
  SharedRoom r;
  ASSERT_TRUE(r.member);
  r.deliver(7, Numbered::own);
  EXPECT_TRUE(r.quiet());
  r.echo(7);
  EXPECT_EQ(r.next(1), Seqs{7});
  r.deliver(8, Numbered::remote);
  r.echo(8);  // a settled room ignores echoes
  r.deliver(9, Numbered::own);
  EXPECT_EQ(r.next(2), (Seqs{8, 9}));
  EXPECT_TRUE(r.quiet());
}

TEST(SharedOrder, AnEchoBeforeItsAnswerHoldsTheRoomForTheAnswer) {
  SharedRoom r;
  ASSERT_TRUE(r.member);
  r.echo(4);
  EXPECT_TRUE(r.quiet());
  r.deliver(5, Numbered::remote);
  EXPECT_TRUE(r.quiet());  // after 4, which is answered still
  r.deliver(4, Numbered::own);
  EXPECT_EQ(r.next(2), (Seqs{4, 5}));
}

TEST(SharedOrder, OwnMessagesNumberedBeforeTheSubscriptionsFirstGoFirst) {
  // Published before the pod's subscription began: their echoes never come.
  SharedRoom r;
  ASSERT_TRUE(r.member);
  r.deliver(2, Numbered::own);
  r.deliver(3, Numbered::own);
  EXPECT_TRUE(r.quiet());
  r.deliver(6, Numbered::remote);
  EXPECT_EQ(r.next(3), (Seqs{2, 3, 6}));
  r.deliver(6, Numbered::remote);  // a repeat is dropped
  r.deliver(7, Numbered::remote);
  EXPECT_EQ(r.next(1), Seqs{7});
}

TEST(SharedOrder, AnOwnAnswerWithoutEchoIsReleasedAfterTheHoldLimit) {
  SharedRoom r;
  ASSERT_TRUE(r.member);
  r.deliver(9, Numbered::own);
  EXPECT_TRUE(r.quiet());
  std::this_thread::sleep_for(detail::HubCore::kHoldLimit);
  r.pod.hub.core().release_held();
  EXPECT_EQ(r.next(1), Seqs{9});
}

TEST(SharedOrder, AnOwnAnswerAfterItsGapWasGivenUpOnIsLateNotLost) {
  SharedRoom r;
  ASSERT_TRUE(r.member);
  r.deliver(1, Numbered::remote);
  EXPECT_EQ(r.next(1), Seqs{1});
  r.deliver(3, Numbered::remote);
  EXPECT_TRUE(r.quiet());
  std::this_thread::sleep_for(detail::HubCore::kHoldLimit);
  r.pod.hub.core().release_held();
  EXPECT_EQ(r.next(1), Seqs{3});
  r.deliver(2, Numbered::own);  // its answer came very late
  EXPECT_EQ(r.next(1), Seqs{2});
  r.deliver(2, Numbered::remote);  // another pod's number that old is a repeat
  EXPECT_TRUE(r.quiet());
}

TEST(SharedOrder, AGapIsNamedOnceForTheHistoryAndFilledInOrder) {
  SharedRoom r;
  ASSERT_TRUE(r.member);
  r.deliver(1, Numbered::remote);
  EXPECT_EQ(r.next(1), Seqs{1});
  r.deliver(4, Numbered::remote);  // 2 and 3 were lost by the subscription
  r.deliver(5, Numbered::remote);
  const auto gaps = r.release_for_repair();
  ASSERT_EQ(gaps.size(), 1U);
  EXPECT_EQ(gaps[0].room, r.room);
  EXPECT_EQ(gaps[0].epoch, kEpoch);
  EXPECT_EQ(gaps[0].next, 2U);
  EXPECT_TRUE(r.quiet());                                    // held for the history's answer
  EXPECT_TRUE(r.pod.hub.core().release_held(true).empty());  // named once
  r.repaired(3);
  EXPECT_TRUE(r.quiet());  // in order: 3 waits for 2
  r.repaired(2);
  r.repaired(4);  // delivered already (held): dropped
  r.pod.hub.core().gap_repaired(r.room);
  EXPECT_EQ(r.next(4), (Seqs{2, 3, 4, 5}));
  EXPECT_TRUE(r.quiet());
}

TEST(SharedOrder, WhatTheHistoryNoLongerHasIsGivenUpOnItsAnswer) {
  SharedRoom r;
  ASSERT_TRUE(r.member);
  r.deliver(1, Numbered::remote);
  EXPECT_EQ(r.next(1), Seqs{1});
  r.deliver(5, Numbered::remote);
  ASSERT_EQ(r.release_for_repair().size(), 1U);
  r.repaired(3);  // 2 is gone from the history; 4 is this pod's own, left to its answer
  r.pod.hub.core().gap_repaired(r.room);
  EXPECT_EQ(r.next(1), Seqs{3});
  EXPECT_TRUE(r.quiet());  // 5 waits behind 4, a new gap
  ASSERT_EQ(r.release_for_repair().size(), 1U);
  r.pod.hub.core().gap_repaired(r.room);
  EXPECT_EQ(r.next(1), Seqs{5});
}

TEST(SharedOrder, AGapIsGivenUpWhenTheHistoryDoesNotAnswer) {
  SharedRoom r;
  ASSERT_TRUE(r.member);
  r.deliver(1, Numbered::remote);
  EXPECT_EQ(r.next(1), Seqs{1});
  r.deliver(3, Numbered::remote);
  ASSERT_EQ(r.release_for_repair().size(), 1U);
  std::this_thread::sleep_for(detail::HubCore::kRepairLimit);
  EXPECT_TRUE(r.pod.hub.core().release_held(true).empty());
  EXPECT_EQ(r.next(1), Seqs{3});
}

TEST(SharedOrder, MessagesReadBackAfterASubscriptionLossGoOutOnceInOrder) {
  SharedRoom r;
  ASSERT_TRUE(r.member);
  EXPECT_TRUE(r.pod.hub.core().followed_rooms().empty());  // its start is not known yet
  r.repaired(1);  // so nothing read back counts (the subscription alone sets the start)
  EXPECT_TRUE(r.quiet());
  r.deliver(2, Numbered::remote);
  EXPECT_EQ(r.next(1), Seqs{2});
  const auto followed = r.pod.hub.core().followed_rooms();
  ASSERT_EQ(followed.size(), 1U);
  EXPECT_EQ(followed[0].next, 3U);
  r.repaired(3);
  r.repaired(4);
  r.repaired(4, "e2");             // another history's: ignored
  r.deliver(4, Numbered::remote);  // the subscription's copy, after the history's
  r.deliver(5, Numbered::remote);
  EXPECT_EQ(r.next(3), (Seqs{3, 4, 5}));
  EXPECT_TRUE(r.quiet());
}

// set_start(): what the shared history had numbered when the pod's subscription to the room began
// (read once it was confirmed) starts the room, so the pod's own next message is not held.
TEST(SharedOrder, TheNumberingReadAfterTheSubscriptionStartsTheRoom) {
  SharedRoom r;
  ASSERT_TRUE(r.member);
  auto& core = r.pod.hub.core();
  EXPECT_EQ(core.shared_position(r.room), "");
  r.deliver(6, Numbered::own);  // answered before the read
  EXPECT_TRUE(r.quiet());
  const auto generation = core.start_to_read(r.room);
  ASSERT_TRUE(generation);
  core.set_start(r.room, *generation, kEpoch, 6);  // numbered before the read: nothing comes first
  EXPECT_EQ(r.next(1), Seqs{6});
  EXPECT_EQ(core.shared_position(r.room), "e1-6");
  EXPECT_FALSE(core.start_to_read(r.room)) << "settled";
  r.deliver(7, Numbered::own);  // the start is known: at once
  EXPECT_EQ(r.next(1), Seqs{7});
  EXPECT_EQ(core.shared_position(r.room), "e1-7");
}

TEST(SharedOrder, AfterTheReadAnOwnMessageWaitsOnlyForOthersNumberedAfterIt) {
  SharedRoom r;
  ASSERT_TRUE(r.member);
  auto& core = r.pod.hub.core();
  core.set_start(r.room, core.start_to_read(r.room).value_or(0), kEpoch, 4);
  EXPECT_EQ(r.pod.hub.core().shared_position(r.room), "e1-4");
  r.deliver(6, Numbered::own);
  EXPECT_TRUE(r.quiet());  // 5 was numbered after the read: the subscription brings it
  r.deliver(5, Numbered::remote);
  EXPECT_EQ(r.next(2), (Seqs{5, 6}));
}

TEST(SharedOrder, AReadAnsweredAfterTheSubscriptionShowedTheStartChangesNothing) {
  SharedRoom r;
  ASSERT_TRUE(r.member);
  auto& core = r.pod.hub.core();
  const auto generation = core.start_to_read(r.room);
  ASSERT_TRUE(generation);
  r.deliver(4, Numbered::remote);
  EXPECT_EQ(r.next(1), Seqs{4});
  EXPECT_FALSE(core.start_to_read(r.room)) << "settled by the subscription";
  core.set_start(r.room, *generation, kEpoch, 9);
  EXPECT_EQ(r.pod.hub.core().shared_position(r.room), "e1-4");
  r.deliver(5, Numbered::remote);
  EXPECT_EQ(r.next(1), Seqs{5});
}

TEST(SharedOrder, AReadSentForAnEarlierMembershipIsIgnored) {
  // The room's only member left and another joined while the read was on its way: it says
  // nothing about the new subscription.
  SharedRoom r;
  ASSERT_TRUE(r.member);
  auto& core = r.pod.hub.core();
  const auto before = core.start_to_read(r.room);
  ASSERT_TRUE(before);
  r.member.reset();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (r.pod.members(r.room) != 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  r.member = connect_welcomed(r.pod.port, "/ws/" + r.room);
  ASSERT_TRUE(r.member);
  const auto now = core.start_to_read(r.room);
  ASSERT_TRUE(now);
  EXPECT_NE(*now, *before);
  core.set_start(r.room, *before, kEpoch, 5);
  EXPECT_EQ(core.shared_position(r.room), "");
  core.set_start(r.room, *now, kEpoch, 5);
  EXPECT_EQ(core.shared_position(r.room), "e1-5");
}

TEST(SharedOrder, AStartGivenUpOnBeforeAnythingCameMovesOnToTheRead) {
  // An own message published before the subscription began: its echo never comes, and its hold
  // is given up. Others' messages numbered between it and the read may never come either.
  SharedRoom r;
  ASSERT_TRUE(r.member);
  auto& core = r.pod.hub.core();
  r.deliver(3, Numbered::own);
  std::this_thread::sleep_for(detail::HubCore::kHoldLimit);
  EXPECT_TRUE(core.release_held(true).empty());
  EXPECT_EQ(r.next(1), Seqs{3});
  EXPECT_EQ(core.shared_position(r.room), "e1-3");
  const auto generation = core.start_to_read(r.room);
  ASSERT_TRUE(generation) << "a start given up on is not settled";
  core.set_start(r.room, *generation, kEpoch, 7);
  EXPECT_EQ(core.shared_position(r.room), "e1-7");
  r.deliver(8, Numbered::remote);
  EXPECT_EQ(r.next(1), Seqs{8});
}

// Redis lost its data: the room's next messages come in a new history. Members that followed the
// old one here were there before it began, so all of it is theirs, from 1.
TEST(SharedOrder, AFollowedRoomTakesANewHistoryFromItsFirstMessage) {
  SharedRoom r;
  ASSERT_TRUE(r.member);
  r.deliver(5, Numbered::remote);
  EXPECT_EQ(r.next(1), Seqs{5});
  Message own = r.numbered(4, "e2");  // this pod's own answer, while others' 1..3 are not here
  r.pod.hub.core().deliver_sequenced(own, "e2", 4, Numbered::own);
  EXPECT_TRUE(r.quiet());
  EXPECT_EQ(r.pod.hub.core().shared_position(r.room), "e2-0");
  const auto gaps = r.release_for_repair();
  ASSERT_EQ(gaps.size(), 1U);
  EXPECT_EQ(gaps[0].epoch, "e2");
  EXPECT_EQ(gaps[0].next, 1U);
  for (std::uint64_t seq = 1; seq <= 3; ++seq) r.repaired(seq, "e2");
  EXPECT_EQ(r.next(4), (Seqs{1, 2, 3, 4}));
}

TEST(SharedOrder, AnOwnAnswerOfTheLostHistoryIsLateAndDoesNotSwitchBack) {
  SharedRoom r;
  ASSERT_TRUE(r.member);
  auto& core = r.pod.hub.core();
  r.deliver(5, Numbered::remote);
  EXPECT_EQ(r.next(1), Seqs{5});
  Message first = r.numbered(1, "e2");
  core.deliver_sequenced(first, "e2", 1, Numbered::remote);
  EXPECT_EQ(r.next(1), Seqs{1});
  Message late = r.numbered(6);  // published before the loss, answered after the new history came
  core.deliver_sequenced(late, kEpoch, 6, Numbered::own);
  EXPECT_EQ(r.next(1), Seqs{6});
  Message second = r.numbered(2, "e2");
  core.deliver_sequenced(second, "e2", 2, Numbered::remote);
  EXPECT_EQ(r.next(1), Seqs{2});
  EXPECT_TRUE(r.quiet());
  EXPECT_EQ(core.shared_position(r.room), "e2-2");
}

TEST(SharedOrder, AGapReadThatCouldNotBeSentIsAskedAgain) {
  // Redis's command connection was down: the gap is named again until kRepairLimit, not given up.
  SharedRoom r;
  ASSERT_TRUE(r.member);
  auto& core = r.pod.hub.core();
  r.deliver(1, Numbered::remote);
  r.deliver(3, Numbered::own);
  EXPECT_EQ(r.next(1), Seqs{1});
  ASSERT_EQ(r.release_for_repair().size(), 1U);
  EXPECT_TRUE(core.release_held(true).empty()) << "one read at a time";
  core.gap_repaired(r.room, false);
  const auto again = core.release_held(true);
  ASSERT_EQ(again.size(), 1U);
  EXPECT_EQ(again[0].next, 2U);
  EXPECT_TRUE(r.quiet());
  core.gap_repaired(r.room, false);
  std::this_thread::sleep_for(detail::HubCore::kRepairLimit);
  EXPECT_TRUE(core.release_held(true).empty());
  EXPECT_EQ(r.next(1), Seqs{3}) << "given up after kRepairLimit";
}

// The presence resync (HubCore::sync_presence), against what the member was sent.
TEST(PresenceResync, WhatMembersWereToldIsOnlyWhatTheyWereSent) {
  SharedRoom shared;
  auto& core = shared.pod.hub.core();
  core.use_shared_history();
  const std::string& room = shared.room;
  const auto online = PresenceStatus::online;
  const auto away = PresenceStatus::away;
  const auto offline = PresenceStatus::offline;
  auto deliver = [&](const std::string& user, PresenceStatus status) {
    Message msg = presence_message(room, {status, user});
    core.deliver(msg);
  };
  // The presence messages about `user` the member gets until a marker message: "status"es.
  auto received_about = [&](const std::string& user) {
    Message marker = chat_message(room, "marker");
    core.deliver(marker);
    std::vector<std::string> got;
    while (const auto msg = shared.member->next()) {
      if (msg->type == MessageType::chat) break;
      if (msg->type == MessageType::presence &&
          msg->data.find('"' + user + '"') != std::string::npos)
        got.push_back(msg->data.find(R"("online")") != std::string::npos ? "online"
                      : msg->data.find(R"("away")") != std::string::npos ? "away"
                                                                         : "offline");
    }
    return got;
  };
  using Changes = std::vector<std::pair<std::string, PresenceStatus>>;
  auto changes = [](const detail::HubCore::PresenceResync& resync) {
    Changes out;
    for (const PresenceEntry& entry : resync.changes) out.emplace_back(entry.user_id, entry.status);
    std::sort(out.begin(), out.end());
    return out;
  };

  // The first read of the membership period is what the member is taken to know.
  EXPECT_EQ(changes(core.sync_presence(room, {{"ann", online}}, "E1")), Changes{});
  // A read not in order with the subscription is taken only while nothing is known.
  EXPECT_EQ(changes(core.sync_presence(room, {{"zed", online}}, "E1", true)), Changes{});
  // A resync in the same epoch: the differences.
  EXPECT_EQ(changes(core.sync_presence(room, {{"bob", away}}, "E1")),
            (Changes{{"ann", offline}, {"bob", away}}));
  deliver("ann", offline);
  deliver("bob", away);
  EXPECT_EQ(received_about("bob"), std::vector<std::string>{"away"});
  // Redis lost its data: a read in another epoch (or in none) sends nothing and changes nothing.
  EXPECT_EQ(changes(core.sync_presence(room, {}, "E2")), Changes{});
  EXPECT_EQ(changes(core.sync_presence(room, {{"carl", online}}, std::string("-"))), Changes{});
  EXPECT_EQ(changes(core.sync_presence(room, {{"carl", online}}, std::string("-"))), Changes{});
  // So bob leaving is still news to the member, and sent; a repeat of it is not.
  deliver("bob", offline);
  deliver("bob", offline);
  EXPECT_EQ(received_about("bob"), std::vector<std::string>{"offline"});
}

}  // namespace
}  // namespace realtime
