// Ids that name a room position, and what a publish reports:
// - resume_point() reads the position a presence message's or the welcome's id names, and leaves
//   every other id as it is;
// - with_position() moves a presence frame's named position forward (a presence message kept aside
//   during a recovery, sent after the replay), names one in a frame that named none, and leaves a
//   frame naming a later one, or not presence;
// - a broadcaster whose publish() learns the id later (returns "") does not make the sender's chat
//   look refused: only kNotPublished is a refusal.
#include <string>

#include <gtest/gtest.h>

#include "hub/hub_core.hpp"
#include "hub/out_frame.hpp"
#include "protocol/envelope.hpp"
#include "support/hub_test_support.hpp"

namespace realtime {
namespace {

using namespace realtime::testing;

TEST(RoomPositions, ResumePointReadsTheNamedPositionOnly) {
  EXPECT_EQ(detail::resume_point("k3x9a0b1-42.p7"), "k3x9a0b1-42");
  EXPECT_EQ(detail::resume_point("k3x9a0b1-42.pq2w8e0r17"), "k3x9a0b1-42");  // with the pod's tag
  EXPECT_EQ(detail::resume_point("k3x9a0b1-42.d1z"), "k3x9a0b1-42");
  EXPECT_EQ(detail::resume_point("k3x9a0b1-42"), "k3x9a0b1-42");
  // Not a position: a pong's id, a connection id, a tag that is not one, an id of another form.
  for (const char* id : {"k3x9a0b1-d5", "k3x9a0b1.4", "k3x9a0b1-42.P7", "k3x9a0b1-42.", "a.b-c.p1",
                         "k3x9a0b1-42.p-1", "undefined", ""}) {
    EXPECT_EQ(detail::resume_point(id), id) << id;
  }
}

std::shared_ptr<detail::OutFrame> presence_frame(const std::string& id) {
  Message msg = presence_message("r", PresenceData{PresenceStatus::online, "ann"});
  msg.id = id;
  return detail::make_frame(msg);
}

TEST(RoomPositions, APresenceFrameKeptAsideNamesTheReplaysEnd) {
  const auto frame = presence_frame("ep-3.p7");
  const auto moved = detail::with_position(*frame, "ep", 9);
  ASSERT_TRUE(moved);
  // The frame is whole: its header gives the new length, the envelope is the old one's.
  const auto length = static_cast<std::uint8_t>(moved->bytes[1]) & 0x7f;
  const std::size_t header = length == 126 ? 4 : 2;
  const std::size_t size = length == 126 ? (static_cast<std::uint8_t>(moved->bytes[2]) << 8) +
                                               static_cast<std::uint8_t>(moved->bytes[3])
                                         : length;
  EXPECT_EQ(size, moved->bytes.size() - header);
  const auto decoded = protocol::decode_envelope(std::string_view(moved->bytes).substr(header));
  ASSERT_EQ(decoded.error, protocol::DecodeError::none) << moved->bytes.substr(header);
  EXPECT_EQ(decoded.message.id, "ep-9.p7");
  EXPECT_EQ(decoded.message.data, R"({"status":"online","user_id":"ann"})");
  EXPECT_EQ(moved->room, frame->room);
  EXPECT_FALSE(detail::with_position(*frame, "ep", 3)) << "not behind";
  EXPECT_FALSE(detail::with_position(*frame, "other", 9)) << "another history";
  // Named by a pod that did not know the room's position yet: its tag and number are kept.
  const auto named = detail::with_position(*presence_frame("q2w8e0r1-p7"), "ep", 9);
  ASSERT_TRUE(named);
  EXPECT_NE(named->bytes.find(R"("id":"ep-9.pq2w8e0r17")"), std::string::npos) << named->bytes;
  // Neither form, or not presence.
  EXPECT_FALSE(detail::with_position(*presence_frame("q2w8e0r1-d7"), "ep", 9));
  EXPECT_FALSE(detail::with_position(*presence_frame("-p7"), "ep", 9));
  EXPECT_FALSE(detail::with_position(*presence_frame("q2w8e0r1-p"), "ep", 9));
  Message chat = chat_message("r", "hi");
  chat.id = "q2w8e0r1-p7";
  EXPECT_FALSE(detail::with_position(*detail::make_frame(chat), "ep", 9)) << "not presence";
}

// publish() of a broadcaster that learns ids later (a shared history): "" is no refusal.
class LaterIds final : public LocalForwarding {
 public:
  using LocalForwarding::LocalForwarding;
  std::string publish(Message msg) override {
    LocalForwarding::publish(std::move(msg));
    return {};
  }
};

TEST(RoomPositions, AChatWhoseIdComesLaterIsNotReportedRefused) {
  Pod pod(fast_config(), 2, [](Hub& hub) { return std::make_shared<LaterIds>(hub); });
  auto client = connect_welcomed(pod.port, "/ws/later");
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->send_text(R"({"type":"chat","data":{"text":"hi"}})"));
  // Two round trips: an error the chat caused would be among what comes before the second pong.
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(client->send_text(R"({"type":"ping"})"));
    for (;;) {
      const auto msg = client->next();
      ASSERT_TRUE(msg);
      EXPECT_NE(msg->type, MessageType::error) << msg->data;
      if (msg->type == MessageType::pong) break;
    }
  }
}

}  // namespace
}  // namespace realtime
