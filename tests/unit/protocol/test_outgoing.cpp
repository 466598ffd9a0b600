// What the application hands the library to send: the checks of protocol/outgoing.hpp, and the
// factories of realtime/message.hpp that build data from the application's text.
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

#include "protocol/envelope.hpp"
#include "protocol/outgoing.hpp"
#include "realtime/message.hpp"

namespace realtime {
namespace {

TEST(JsonValue, AcceptsOneValueOfAnyKind) {
  for (const char* text :
       {R"({"text":"hi"})", "[1,2]", R"("s")", "42", "true", "null", " { \"a\" : [ {} ] } "}) {
    EXPECT_TRUE(protocol::is_json_value(text)) << text;
  }
}

TEST(JsonValue, RefusesWhatWouldBreakTheEnvelope) {
  for (const char* text :
       {"", "   ", "not json", R"({"text": unquoted})", R"({"text":"a"} x)", R"({"a":1},{"b":2})",
        R"({"text":"he said "hi""})", "{", "1e400", "\"\xff\""}) {
    EXPECT_FALSE(protocol::is_json_value(text)) << text;
  }
  // Deeper than the decoder takes from clients.
  EXPECT_FALSE(protocol::is_json_value(std::string(protocol::kMaxJsonDepth + 1, '[') +
                                       std::string(protocol::kMaxJsonDepth + 1, ']')));
}

TEST(Outgoing, NamesWhatCannotBeSent) {
  Message ok = chat_message("general", "hi");
  EXPECT_EQ(protocol::outgoing_problem(ok), "");
  ok.data.clear();  // absent
  EXPECT_EQ(protocol::outgoing_problem(ok), "");

  Message bad_data = chat_message("general", "x");
  bad_data.data = R"({"text":"he said "hi""})";
  EXPECT_NE(protocol::outgoing_problem(bad_data).find("data"), std::string::npos);

  Message bad_room = chat_message("bad room\"name", "x");
  EXPECT_NE(protocol::outgoing_problem(bad_room).find("room"), std::string::npos);

  for (MessageType type : {MessageType::join, MessageType::leave, MessageType::auth}) {
    Message command = chat_message("general", "x");
    command.type = type;
    EXPECT_NE(protocol::outgoing_problem(command).find("client command"), std::string::npos);
  }
  // An id of the application's own goes into clients' next URLs as it is.
  Message own_id = chat_message("general", "x");
  for (const char* id : {"msg-42", "A.b_c-9", "q2w8e0r1-5.gk3j9x0aa7"}) {
    own_id.id = id;
    EXPECT_EQ(protocol::outgoing_problem(own_id), "") << id;
  }
  for (const std::string& id :
       {std::string("has space"), std::string("a/b"), std::string("x?y=1"), std::string("frag#1"),
        std::string("caf\xc3\xa9"), std::string(protocol::kMaxMessageIdBytes + 1, 'a')}) {
    own_id.id = id;
    EXPECT_NE(protocol::outgoing_problem(own_id).find("id"), std::string::npos) << id;
  }
  own_id.id = std::string(protocol::kMaxMessageIdBytes, 'a');
  EXPECT_EQ(protocol::outgoing_problem(own_id), "");

  EXPECT_THROW(protocol::check_outgoing(bad_data, "test"), std::invalid_argument);
  EXPECT_NO_THROW(protocol::check_outgoing(chat_message("general", "x"), "test"));
}

TEST(Outgoing, ClientCommandsAreJoinLeaveAndAuth) {
  for (MessageType type : {MessageType::join, MessageType::leave, MessageType::auth}) {
    EXPECT_TRUE(protocol::is_client_command(type)) << to_string(type);
  }
  for (MessageType type :
       {MessageType::chat, MessageType::presence, MessageType::notification, MessageType::system,
        MessageType::error, MessageType::ping, MessageType::pong}) {
    EXPECT_FALSE(protocol::is_client_command(type)) << to_string(type);
  }
}

TEST(JsonString, QuotesAndEscapesAnyText) {
  EXPECT_EQ(json_string("plain"), R"("plain")");
  EXPECT_EQ(json_string("O\"Brien\\\n"), R"("O\"Brien\\\n")");
  const std::string data = "{\"name\":" + json_string("he said \"hi\"\t\x01") + "}";
  EXPECT_TRUE(protocol::is_json_value(data)) << data;
  EXPECT_TRUE(protocol::is_json_value(json_string("\xff\xfe not UTF-8")));
}

TEST(SystemMessage, RefusesFieldsThatAreNotObjectMembers) {
  EXPECT_THROW(system_message("hello", "\"name\":\"O\"Brien\""), std::invalid_argument);
  EXPECT_THROW(system_message("hello", "\"a\":1},{\"b\":2"), std::invalid_argument);
  EXPECT_THROW(system_message("hello", "not members"), std::invalid_argument);
  const Message built = system_message("hello", "\"name\":" + json_string("O\"Brien"));
  EXPECT_EQ(built.type, MessageType::system);
  EXPECT_EQ(built.data, R"({"event":"hello","name":"O\"Brien"})");
  // The type is always `system`: an event called "error" is no error message.
  EXPECT_EQ(system_message("error", R"("error":"bad input")").type, MessageType::system);
}

}  // namespace
}  // namespace realtime
