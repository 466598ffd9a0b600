#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "protocol/envelope.hpp"

namespace realtime::protocol {
namespace {

using namespace std::chrono_literals;

Clock::time_point at_ms(std::int64_t ms) {
  return Clock::time_point(
      std::chrono::duration_cast<Clock::duration>(std::chrono::milliseconds(ms)));
}

std::string json_string(std::string_view s) {
  std::string out;
  append_json_string(out, s);
  return out;
}

TEST(Timestamp, FormatsKnownInstants) {
  EXPECT_EQ(format_timestamp(Clock::time_point{}), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(format_timestamp(at_ms(1705314600123)), "2024-01-15T10:30:00.123Z");
  EXPECT_EQ(format_timestamp(at_ms(951782400000)), "2000-02-29T00:00:00.000Z");  // leap day
  EXPECT_EQ(format_timestamp(at_ms(1709251199999)), "2024-02-29T23:59:59.999Z");
  EXPECT_EQ(format_timestamp(at_ms(-1)), "1969-12-31T23:59:59.999Z");  // floors, not truncates
  // Sub-millisecond parts are dropped.
  EXPECT_EQ(format_timestamp(at_ms(1705314600123) + 999us), "2024-01-15T10:30:00.123Z");
  std::string out = "t=";
  append_timestamp(out, at_ms(0));
  EXPECT_EQ(out, "t=1970-01-01T00:00:00.000Z");
}

TEST(Timestamp, ParsesWhatItFormats) {
  for (std::int64_t ms :
       {0LL, 1LL, 999LL, 1705314600123LL, 951782400000LL, 4102444800000LL, -86400001LL}) {
    const auto t = at_ms(ms);
    const auto parsed = parse_timestamp(format_timestamp(t));
    ASSERT_TRUE(parsed.has_value()) << ms;
    EXPECT_EQ(*parsed, t) << format_timestamp(t);
  }
}

TEST(Timestamp, ParsesVariants) {
  const auto expected = at_ms(1705314600000);
  EXPECT_EQ(parse_timestamp("2024-01-15T10:30:00Z"), expected);
  EXPECT_EQ(parse_timestamp("2024-01-15T10:30:00+00:00"), expected);
  EXPECT_EQ(parse_timestamp("2024-01-15t10:30:00z"), expected);
  EXPECT_EQ(parse_timestamp("2024-01-15T11:30:00+01:00"), expected);
  EXPECT_EQ(parse_timestamp("2024-01-15T05:00:00-05:30"), expected);
  EXPECT_EQ(parse_timestamp("2024-01-15T10:30:00.1Z"), at_ms(1705314600100));
  EXPECT_EQ(parse_timestamp("2024-01-15T10:30:00.123456789Z"), at_ms(1705314600123));
}

TEST(Timestamp, RefusesMalformed) {
  for (const char* s :
       {"", "2024", "2024-01-15", "2024-01-15T10:30:00", "2024-01-15 10:30:00Z",
        "2024-13-01T00:00:00Z", "2024-02-30T00:00:00Z", "2023-02-29T00:00:00Z",
        "2024-01-15T24:00:00Z", "2024-01-15T10:60:00Z", "2024-01-15T10:30:00.Z",
        "2024-01-15T10:30:00+0000", "2024-01-15T10:30:00Zjunk", "x024-01-15T10:30:00Z",
        "2024-01-15T10:30:00+24:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"}) {
    EXPECT_FALSE(parse_timestamp(s).has_value()) << s;
  }
}

TEST(JsonString, EscapesWhatRfc8259Requires) {
  EXPECT_EQ(json_string(""), "\"\"");
  EXPECT_EQ(json_string("plain text that is longer than one word"),
            "\"plain text that is longer than one word\"");
  EXPECT_EQ(json_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(json_string("\n\r\t\b\f"), "\"\\n\\r\\t\\b\\f\"");
  EXPECT_EQ(json_string(std::string("\0\x01\x1f", 3)), "\"\\u0000\\u0001\\u001f\"");
  EXPECT_EQ(json_string("/ and \x7f stay"), "\"/ and \x7f stay\"");
  EXPECT_EQ(json_string("caf\xC3\xA9 \xF0\x9F\x98\x80"), "\"caf\xC3\xA9 \xF0\x9F\x98\x80\"");
  // Special characters in every position of a word.
  for (std::size_t i = 0; i < 12; ++i) {
    std::string s(12, 'x');
    s[i] = '"';
    std::string expected = "\"" + std::string(i, 'x') + "\\\"" + std::string(11 - i, 'x') + "\"";
    EXPECT_EQ(json_string(s), expected) << i;
  }
}

TEST(JsonString, ReplacesInvalidUtf8SoTheOutputStaysJson) {
  EXPECT_EQ(json_string("a\xFF"
                        "b"),
            "\"a\\ufffdb\"");
  EXPECT_EQ(json_string("\xED\xA0\x80"), "\"\\ufffd\\ufffd\\ufffd\"");
  EXPECT_EQ(json_string("end\xE2\x82"), "\"end\\ufffd\\ufffd\"");
}

TEST(Envelope, AppendsKeysInOrderAndOmitsEmptyOnes) {
  Message msg;
  msg.id = "r1-42";
  msg.type = MessageType::chat;
  msg.room = "general";
  msg.from = "alice";
  msg.data = R"({"text":"hi"})";
  msg.timestamp = at_ms(1705314600123);
  std::string out = "prefix";
  append_envelope(out, msg);
  EXPECT_EQ(out, R"(prefix{"id":"r1-42","type":"chat","room":"general","from":"alice",)"
                 R"("data":{"text":"hi"},"timestamp":"2024-01-15T10:30:00.123Z"})");

  Message bare;
  bare.type = MessageType::pong;
  bare.timestamp = at_ms(0);
  EXPECT_EQ(to_json(bare), R"({"type":"pong","timestamp":"1970-01-01T00:00:00.000Z"})");
}

TEST(Envelope, RoundTripsThroughDecodeEnvelope) {
  Message msg;
  msg.id = "id-1";
  msg.type = MessageType::notification;
  msg.room = "ro.om:1";
  msg.from = "user \"quoted\" \\ \n\t\x01 \xE2\x82\xAC";
  msg.data = R"({"a":[1,2.5,"x\"y"],"b":{"c":null,"d":true}})";
  msg.timestamp = at_ms(1705314600123);
  const std::string json = to_json(msg);
  const auto decoded = decode_envelope(json);
  ASSERT_EQ(decoded.error, DecodeError::none) << decoded.detail;
  EXPECT_EQ(decoded.message.id, msg.id);
  EXPECT_EQ(decoded.message.type, msg.type);
  EXPECT_EQ(decoded.message.room, msg.room);
  EXPECT_EQ(decoded.message.from, msg.from);
  EXPECT_EQ(decoded.message.data, msg.data);
  EXPECT_EQ(decoded.message.timestamp, msg.timestamp);
  EXPECT_EQ(to_json(decoded.message), json);
}

TEST(Envelope, DecodesForeignEnvelopes) {
  // What another program might PUBLISH on Redis: whitespace, no id, a timestamp with an offset.
  const auto r = decode_envelope(
      R"( { "type" : "chat", "room": "general", "data": { "text" : "hi" , "n": 12 },
            "timestamp": "2024-01-15T11:30:00+01:00" } )");
  ASSERT_EQ(r.error, DecodeError::none) << r.detail;
  EXPECT_EQ(r.message.data, R"({"text":"hi","n":12})");
  EXPECT_EQ(r.message.timestamp, at_ms(1705314600000));
  EXPECT_TRUE(r.message.id.empty());

  const auto before = Clock::now();
  const auto no_time = decode_envelope(R"({"type":"system","timestamp":"yesterday"})");
  ASSERT_EQ(no_time.error, DecodeError::none);
  EXPECT_GE(no_time.message.timestamp, before);

  EXPECT_EQ(decode_envelope(R"({"type":"bogus"})").error, DecodeError::unknown_type);
  EXPECT_EQ(decode_envelope(R"({"room":"x"})").error, DecodeError::unknown_type);
  EXPECT_EQ(decode_envelope(R"({"type":"chat","room":5})").error, DecodeError::invalid_message);
  EXPECT_EQ(decode_envelope(R"([1])").error, DecodeError::not_an_object);
  EXPECT_EQ(decode_envelope(R"({"type":"chat")").error, DecodeError::invalid_json);
}

TEST(ClientMessage, DecodesEachShape) {
  auto chat = decode_client_message(R"({"type":"chat","data":{"text":"hello"}})");
  ASSERT_EQ(chat.error, DecodeError::none) << chat.detail;
  EXPECT_EQ(chat.message.type, MessageType::chat);
  EXPECT_FALSE(chat.message.has_room);
  EXPECT_EQ(chat.message.data, R"({"text":"hello"})");

  auto chat_room = decode_client_message(
      R"({"type":"chat","room":"other","data":"just a string","id":"forged","from":"x"})");
  ASSERT_EQ(chat_room.error, DecodeError::none);
  EXPECT_TRUE(chat_room.message.has_room);
  EXPECT_EQ(chat_room.message.room, "other");
  EXPECT_EQ(chat_room.message.data, R"("just a string")");

  // Members get every field of the envelope: a chat without data carries an empty object.
  auto bare_chat = decode_client_message(R"({"type":"chat"})");
  ASSERT_EQ(bare_chat.error, DecodeError::none);
  EXPECT_EQ(bare_chat.message.data, "{}");

  auto ping = decode_client_message(R"({"type":"ping"})");
  ASSERT_EQ(ping.error, DecodeError::none);
  EXPECT_EQ(ping.message.type, MessageType::ping);

  auto away = decode_client_message(R"({"type":"presence","data":{"status":"away"}})");
  ASSERT_EQ(away.error, DecodeError::none);
  EXPECT_EQ(away.message.status, PresenceStatus::away);
  auto online = decode_client_message(R"({"type":"presence","data":{"status":"online"}})");
  ASSERT_EQ(online.error, DecodeError::none);
  EXPECT_EQ(online.message.status, PresenceStatus::online);

  auto join = decode_client_message(R"({"type":"join","room":"lobby"})");
  ASSERT_EQ(join.error, DecodeError::none);
  EXPECT_EQ(join.message.type, MessageType::join);
  EXPECT_EQ(join.message.room, "lobby");
  EXPECT_FALSE(join.message.last_id.has_value());
  auto resume = decode_client_message(R"({"type":"join","room":"lobby","last_id":"abc-7"})");
  ASSERT_EQ(resume.error, DecodeError::none);
  EXPECT_EQ(resume.message.last_id, std::optional<std::string>("abc-7"));
  auto null_id = decode_client_message(R"({"type":"join","room":"lobby","last_id":null})");
  ASSERT_EQ(null_id.error, DecodeError::none);
  EXPECT_FALSE(null_id.message.last_id.has_value());
  for (const char* wrong : {R"({"type":"join","room":"lobby","last_id":5})",
                            R"({"type":"join","room":"lobby","last_id":{}})"}) {
    EXPECT_EQ(decode_client_message(wrong).error, DecodeError::invalid_message) << wrong;
  }
  auto leave = decode_client_message(R"({"type":"leave","room":"lobby"})");
  ASSERT_EQ(leave.error, DecodeError::none);
  EXPECT_EQ(leave.message.type, MessageType::leave);

  auto auth = decode_client_message(R"({"type":"auth","token":"abc.def.ghi"})");
  ASSERT_EQ(auth.error, DecodeError::none);
  EXPECT_EQ(auth.message.token, "abc.def.ghi");

  // Known types the server refuses from clients still decode; the caller says forbidden.
  EXPECT_EQ(decode_client_message(R"({"type":"system"})").message.type, MessageType::system);
  EXPECT_EQ(decode_client_message(R"({"type":"notification"})").error, DecodeError::none);
}

TEST(ClientMessage, RefusesBadShapes) {
  struct Case {
    const char* json;
    DecodeError error;
  };
  const Case cases[] = {
      {"", DecodeError::invalid_json},
      {"not json", DecodeError::invalid_json},
      {R"({"type":"chat",})", DecodeError::invalid_json},
      {"{\"type\":\"chat\",\"data\":\"\xFF\"}", DecodeError::invalid_json},  // invalid UTF-8
      {R"({"type":"chat"} trailing)", DecodeError::invalid_json},
      {"[]", DecodeError::not_an_object},
      {R"("chat")", DecodeError::not_an_object},
      {"null", DecodeError::not_an_object},
      {"{}", DecodeError::unknown_type},
      {R"({"type":1})", DecodeError::unknown_type},
      {R"({"type":"dance"})", DecodeError::unknown_type},
      {R"({"type":"CHAT"})", DecodeError::unknown_type},
      {R"({"type":"chat","room":1})", DecodeError::invalid_message},
      {R"({"type":"presence"})", DecodeError::invalid_message},
      {R"({"type":"presence","data":{"status":"offline"}})", DecodeError::invalid_message},
      {R"({"type":"presence","data":{"status":"busy"}})", DecodeError::invalid_message},
      {R"({"type":"presence","data":"away"})", DecodeError::invalid_message},
      {R"({"type":"join"})", DecodeError::invalid_message},
      {R"({"type":"leave","room":["a"]})", DecodeError::invalid_message},
      {R"({"type":"auth"})", DecodeError::invalid_message},
      {R"({"type":"auth","token":""})", DecodeError::invalid_message},
      {R"({"type":"auth","token":42})", DecodeError::invalid_message},
  };
  for (const auto& c : cases) {
    const auto r = decode_client_message(c.json);
    EXPECT_EQ(r.error, c.error) << c.json;
    EXPECT_FALSE(r.detail.empty()) << c.json;
  }
  EXPECT_EQ(to_code(DecodeError::invalid_json), "invalid_json");
  EXPECT_EQ(to_code(DecodeError::unknown_type), "unknown_type");
  EXPECT_EQ(to_code(DecodeError::invalid_message), "invalid_message");
}

TEST(ClientMessage, NullOptionalFieldsCountAsAbsent) {
  const auto r = decode_client_message(R"({"type":"chat","room":null,"data":null})");
  ASSERT_EQ(r.error, DecodeError::none);
  EXPECT_FALSE(r.message.has_room);
  EXPECT_EQ(r.message.data, "{}");
}

TEST(ClientMessage, ReserialisesDataMinified) {
  const auto r = decode_client_message(
      "{\"type\":\"chat\",\"data\":{ \"t\" : \"a\\u0041\\n\\/\" ,\n \"arr\" : [ 1 , -2 , 3.25 , "
      "true , null ] }}");
  ASSERT_EQ(r.error, DecodeError::none) << r.detail;
  EXPECT_EQ(r.message.data, R"({"t":"aA\n/","arr":[1,-2,3.25,true,null]})");
  // The output is itself valid JSON that decodes to the same thing.
  const auto again = decode_client_message(R"({"type":"chat","data":)" + r.message.data + "}");
  EXPECT_EQ(again.message.data, r.message.data);
}

TEST(ClientMessage, RefusesNumbersOutOfRangeRatherThanAlterThem) {
  // A double cannot hold 1e400, nor a 64-bit integer 2^64: refused as invalid JSON, never relayed
  // as null or rounded.
  for (const char* data : {"1e400", "-1e400", R"([1,{"x":[2,1e999]}])",
                           R"({"n":123456789012345678901234567890})", "18446744073709551616"}) {
    const auto r = decode_client_message(std::string(R"({"type":"chat","data":)") + data + "}");
    EXPECT_EQ(r.error, DecodeError::invalid_json) << data << ": " << r.message.data;
  }
  for (const char* data :
       {"1e308", "-0.0", "5e-324", "18446744073709551615", "-9223372036854775808"}) {
    const auto r = decode_client_message(std::string(R"({"type":"chat","data":)") + data + "}");
    EXPECT_EQ(r.error, DecodeError::none) << data << ": " << r.detail;
    // (Written the shortest way that reads back as the same number: 1e308 as 1e+308.)
    EXPECT_EQ(std::strtod(r.message.data.c_str(), nullptr), std::strtod(data, nullptr))
        << data << " -> " << r.message.data;
  }
}

TEST(ClientMessage, RefusesDeepNesting) {
  auto nested = [](std::size_t depth) {
    std::string data(depth, '[');
    data += std::string(depth, ']');
    return R"({"type":"chat","data":)" + data + "}";
  };
  EXPECT_EQ(decode_client_message(nested(kMaxJsonDepth - 2)).error, DecodeError::none);
  EXPECT_EQ(decode_client_message(nested(kMaxJsonDepth + 1)).error, DecodeError::invalid_json);
  EXPECT_EQ(decode_client_message(nested(10000)).error, DecodeError::invalid_json);
}

TEST(ClientMessage, ParsesInPlaceWhenThePaddingIsReadable) {
  std::string buffer = R"({"type":"join","room":"r"})";
  const std::size_t size = buffer.size();
  buffer.resize(size + kJsonPadding, ' ');
  const auto r = decode_client_message(std::string_view(buffer.data(), size), buffer.size());
  ASSERT_EQ(r.error, DecodeError::none);
  EXPECT_EQ(r.message.room, "r");
  // A readable size that is too small falls back to copying.
  EXPECT_EQ(decode_client_message(std::string_view(buffer.data(), size), size).error,
            DecodeError::none);
}

TEST(Publish, DecodesTheThreeShapes) {
  auto full = decode_publish_request(R"({"room":"news","type":"system","data":{"k":[1]}})");
  ASSERT_EQ(full.error, DecodeError::none) << full.detail;
  EXPECT_EQ(full.request.room, "news");
  EXPECT_EQ(full.request.type, MessageType::system);
  EXPECT_EQ(full.request.data, R"({"k":[1]})");

  auto text = decode_publish_request(R"({"room":"general","text":"Hello \"all\""})");
  ASSERT_EQ(text.error, DecodeError::none);
  EXPECT_EQ(text.request.type, MessageType::chat);
  EXPECT_EQ(text.request.data, R"({"text":"Hello \"all\""})");

  auto user = decode_publish_request(R"({"user":"u-7","data":{"n":1}})");
  ASSERT_EQ(user.error, DecodeError::none);
  EXPECT_EQ(user.request.user, "u-7");
  EXPECT_EQ(user.request.type, MessageType::notification);
  EXPECT_TRUE(user.request.room.empty());

  auto user_in_room = decode_publish_request(R"({"user":"u-7","room":"r"})");
  ASSERT_EQ(user_in_room.error, DecodeError::none);
  EXPECT_EQ(user_in_room.request.type, MessageType::notification);
  auto user_chat = decode_publish_request(R"({"user":"u-7","room":"r","type":"chat"})");
  ASSERT_EQ(user_chat.error, DecodeError::none);
  EXPECT_EQ(user_chat.request.type, MessageType::chat);

  auto global = decode_publish_request(R"({"type":"notification"})");
  ASSERT_EQ(global.error, DecodeError::none);
  EXPECT_TRUE(global.request.room.empty());
  EXPECT_TRUE(global.request.user.empty());
  EXPECT_EQ(global.request.data, "{}");

  auto presence = decode_publish_request(
      R"({"room":"r","type":"presence","data":{"status":"offline","user_id":"u-7"}})");
  EXPECT_EQ(presence.error, DecodeError::none) << presence.detail;

  // An envelope's own fields are the server's to set: ignored, not refused.
  auto envelope = decode_publish_request(
      R"({"id":"x","from":"me","timestamp":"2026-01-01T00:00:00Z","room":"r","text":"t"})");
  ASSERT_EQ(envelope.error, DecodeError::none) << envelope.detail;
  EXPECT_EQ(envelope.request.data, R"({"text":"t"})");
}

TEST(Publish, RefusesBadBodies) {
  struct Case {
    const char* json;
    DecodeError error;
  };
  const Case cases[] = {
      {"", DecodeError::invalid_json},
      {"{", DecodeError::invalid_json},
      {"[1,2]", DecodeError::not_an_object},
      {R"({"room":"r","type":"error"})", DecodeError::unknown_type},
      {R"({"room":"r","type":"join"})", DecodeError::unknown_type},
      {R"({"room":"r","type":"whatever"})", DecodeError::unknown_type},
      {R"({"room":"r","type":7})", DecodeError::unknown_type},
      {R"({"room":"r","text":5})", DecodeError::invalid_message},
      {R"({"room":"r","data":[1]})", DecodeError::invalid_message},
      {R"({"room":"r","data":"s"})", DecodeError::invalid_message},
      {R"({"room":3,"text":"x"})", DecodeError::invalid_message},
      {R"({"room":"bad room","text":"x"})", DecodeError::invalid_message},
      {R"({"room":"","text":"x"})", DecodeError::invalid_message},
      {R"({"user":false})", DecodeError::invalid_message},
      {R"({"user":""})", DecodeError::invalid_message},
      {"{\"user\":\"a\\nb\"}", DecodeError::invalid_message},
      // A misspelt field would change where the message goes, or drop its content.
      {R"({"usr":"someone","text":"private note"})", DecodeError::invalid_message},
      {R"({"Room":"general","text":"x"})", DecodeError::invalid_message},
      {R"({"room":"general","txt":"x"})", DecodeError::invalid_message},
      {R"({"room":"r","text":"t","data":{"y":1}})", DecodeError::invalid_message},
      {R"({"room":"r","type":"presence","data":{}})", DecodeError::invalid_message},
      {R"({"room":"r","type":"presence"})", DecodeError::invalid_message},
      {R"({"room":"r","type":"presence","data":{"status":"banana","user_id":"u"}})",
       DecodeError::invalid_message},
      {R"({"type":"presence","data":{"status":"away","user_id":"u"}})",
       DecodeError::invalid_message},
      // Exactly the server's own presence data: no more fields, a valid user id.
      {R"({"room":"r","type":"presence","data":{"status":"away","user_id":"u","x":1}})",
       DecodeError::invalid_message},
      {R"({"room":"r","type":"presence","data":{"status":"away","user_id":""}})",
       DecodeError::invalid_message},
      // A null target is refused, not read as absent: the body would become a global broadcast.
      {R"({"user":null,"text":"private note"})", DecodeError::invalid_message},
      {R"({"room":null,"text":"x"})", DecodeError::invalid_message},
      {R"({"room":null,"user":null,"type":"notification"})", DecodeError::invalid_message},
  };
  for (const auto& c : cases) {
    const auto r = decode_publish_request(c.json);
    EXPECT_EQ(r.error, c.error) << c.json;
    EXPECT_FALSE(r.detail.empty()) << c.json;
  }
}

TEST(PresenceData, DecodesStatusAndUserAndRefusesOtherShapes) {
  const auto online = decode_presence_data(R"({"status":"online","user_id":"ann \u00e9"})");
  ASSERT_TRUE(online);
  EXPECT_EQ(online->status, PresenceStatus::online);
  EXPECT_EQ(online->user_id, "ann \xc3\xa9");
  const auto away = decode_presence_data(R"({"user_id":"b","extra":[1],"status":"away"})");
  ASSERT_TRUE(away);
  EXPECT_EQ(away->status, PresenceStatus::away);
  const auto offline = decode_presence_data(R"({"status":"offline","user_id":"c"})");
  ASSERT_TRUE(offline);
  EXPECT_EQ(offline->status, PresenceStatus::offline);
  for (const char* bad :
       {"", "{", "[]", R"({"status":"busy","user_id":"a"})", R"({"status":"online"})",
        R"({"status":"online","user_id":5})", R"({"status":null,"user_id":"a"})"}) {
    EXPECT_FALSE(decode_presence_data(bad)) << bad;
  }
}

}  // namespace
}  // namespace realtime::protocol
