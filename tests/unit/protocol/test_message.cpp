#include <gtest/gtest.h>

#include "protocol/envelope.hpp"
#include "realtime/message.hpp"

namespace realtime {
namespace {

TEST(MessageType, RoundTripsEveryName) {
  const MessageType all[] = {MessageType::chat,   MessageType::presence, MessageType::notification,
                             MessageType::system, MessageType::error,    MessageType::ping,
                             MessageType::pong,   MessageType::join,     MessageType::leave,
                             MessageType::auth};
  for (MessageType t : all) {
    EXPECT_EQ(parse_message_type(to_string(t)), t) << to_string(t);
  }
  EXPECT_EQ(to_string(MessageType::chat), "chat");
  EXPECT_EQ(to_string(MessageType::notification), "notification");
  EXPECT_EQ(parse_message_type("Chat"), std::nullopt);
  EXPECT_EQ(parse_message_type(""), std::nullopt);
  EXPECT_EQ(parse_message_type("chat "), std::nullopt);
}

TEST(PresenceStatus, RoundTripsEveryName) {
  EXPECT_EQ(to_string(PresenceStatus::online), "online");
  EXPECT_EQ(to_string(PresenceStatus::offline), "offline");
  EXPECT_EQ(to_string(PresenceStatus::away), "away");
  for (auto s : {PresenceStatus::online, PresenceStatus::offline, PresenceStatus::away}) {
    EXPECT_EQ(parse_presence_status(to_string(s)), s);
  }
  EXPECT_EQ(parse_presence_status("busy"), std::nullopt);
}

TEST(Factories, BuildValidData) {
  const auto before = Clock::now();
  const Message welcome = system_message("welcome", R"("connection_id":"c1","room":"general")");
  EXPECT_EQ(welcome.type, MessageType::system);
  EXPECT_EQ(welcome.data, R"({"event":"welcome","connection_id":"c1","room":"general"})");
  EXPECT_GE(welcome.timestamp, before);
  EXPECT_TRUE(welcome.room.empty());
  EXPECT_EQ(system_message("recovered").data, R"({"event":"recovered"})");

  const Message err = error_message("rate_limited", "slow \"down\"");
  EXPECT_EQ(err.type, MessageType::error);
  EXPECT_EQ(err.data, R"({"error":"slow \"down\"","code":"rate_limited"})");

  const Message presence = presence_message("lobby", PresenceData{PresenceStatus::away, "bob"});
  EXPECT_EQ(presence.type, MessageType::presence);
  EXPECT_EQ(presence.room, "lobby");
  EXPECT_EQ(presence.data, R"({"status":"away","user_id":"bob"})");

  const Message chat = chat_message("general", "line1\nline2");
  EXPECT_EQ(chat.type, MessageType::chat);
  EXPECT_EQ(chat.room, "general");
  EXPECT_EQ(chat.data, R"({"text":"line1\nline2"})");
}

TEST(Factories, ProduceEnvelopesThatDecode) {
  for (const Message& m :
       {system_message("welcome", R"("user_id":"u")"), error_message("bad_room", "no such room"),
        presence_message("r", PresenceData{PresenceStatus::online, "u\"1"}),
        chat_message("r", "\xF0\x9F\x98\x80 \x01")}) {
    const std::string json = to_json(m);
    const auto decoded = protocol::decode_envelope(json);
    ASSERT_EQ(decoded.error, protocol::DecodeError::none) << json;
    EXPECT_EQ(decoded.message.data, m.data);
    EXPECT_EQ(decoded.message.type, m.type);
    EXPECT_EQ(decoded.message.room, m.room);
  }
}

TEST(ToJson, MatchesTheContractShape) {
  Message m = chat_message("general", "hi");
  m.id = "general-1";
  m.from = "alice";
  m.timestamp = Clock::time_point(std::chrono::milliseconds(1705314600123));
  EXPECT_EQ(to_json(m), R"({"id":"general-1","type":"chat","room":"general","from":"alice",)"
                        R"("data":{"text":"hi"},"timestamp":"2024-01-15T10:30:00.123Z"})");
}

}  // namespace
}  // namespace realtime
