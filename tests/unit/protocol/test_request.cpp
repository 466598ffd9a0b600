#include <string>

#include <gtest/gtest.h>

#include "protocol/request.hpp"

namespace realtime::protocol {
namespace {

using Kind = WsTarget::Kind;

TEST(Room, FollowsTheNameRule) {
  EXPECT_TRUE(is_valid_room("general"));
  EXPECT_TRUE(is_valid_room("a"));
  EXPECT_TRUE(is_valid_room("Team_42-east.v2:ops"));
  EXPECT_TRUE(is_valid_room(std::string(128, 'r')));
  EXPECT_FALSE(is_valid_room(""));
  EXPECT_FALSE(is_valid_room(std::string(129, 'r')));
  for (const char* bad : {"a b", "a/b", "a?b", "a%20", "caf\xC3\xA9", "a\nb", "room!", "a+b"}) {
    EXPECT_FALSE(is_valid_room(bad)) << bad;
  }
  EXPECT_FALSE(is_valid_room(std::string("a\0b", 3)));
}

TEST(UserId, AllowsPrintableUpTo256Bytes) {
  EXPECT_TRUE(is_valid_user_id("alice"));
  EXPECT_TRUE(is_valid_user_id("user@example.com"));
  EXPECT_TRUE(is_valid_user_id("J\xC3\xBCrgen M\xC3\xBCller"));
  EXPECT_TRUE(is_valid_user_id(std::string(256, 'u')));
  EXPECT_FALSE(is_valid_user_id(""));
  EXPECT_FALSE(is_valid_user_id(std::string(257, 'u')));
  EXPECT_FALSE(is_valid_user_id("a\tb"));
  EXPECT_FALSE(is_valid_user_id("a\x7f"));
  EXPECT_FALSE(is_valid_user_id(std::string("a\0", 2)));
  EXPECT_FALSE(is_valid_user_id("a\xC2\x85"));  // NEL, a C1 control
  EXPECT_FALSE(
      is_valid_user_id("\xC2\x9B"
                       "31m"));               // CSI
  EXPECT_TRUE(is_valid_user_id("\xC2\xA0"));  // NBSP: printable
}

TEST(PercentDecode, DecodesAndRefusesMalformedEscapes) {
  EXPECT_EQ(percent_decode("plain"), "plain");
  EXPECT_EQ(percent_decode("a%20b+c"), "a b c");
  EXPECT_EQ(percent_decode("%2Fx%2fy"), "/x/y");
  EXPECT_EQ(percent_decode("%E2%82%AC"), "\xE2\x82\xAC");
  EXPECT_EQ(percent_decode("%00"), std::string("\0", 1));
  EXPECT_EQ(percent_decode(""), "");
  EXPECT_EQ(percent_decode("%"), std::nullopt);
  EXPECT_EQ(percent_decode("%4"), std::nullopt);
  EXPECT_EQ(percent_decode("ab%"), std::nullopt);
  EXPECT_EQ(percent_decode("%zz"), std::nullopt);
  EXPECT_EQ(percent_decode("%4g"), std::nullopt);
}

TEST(Query, FindsAndDecodesParameters) {
  EXPECT_EQ(query_param("token=abc&last_id=r1-5", "token"), "abc");
  EXPECT_EQ(query_param("token=abc&last_id=r1-5", "last_id"), "r1-5");
  EXPECT_EQ(query_param("a=1&b=x%20y+z", "b"), "x y z");
  EXPECT_EQ(query_param("a=1&b", "b"), "");
  EXPECT_EQ(query_param("a=1&b=", "b"), "");
  EXPECT_EQ(query_param("a=1", "b"), std::nullopt);
  EXPECT_EQ(query_param("", "b"), std::nullopt);
  EXPECT_EQ(query_param("ab=1", "a"), std::nullopt);  // no prefix matches
  EXPECT_EQ(query_param("x=1&&a=2&", "a"), "2");
  EXPECT_EQ(query_param("a=1&a=2", "a"), "1");             // the first wins
  EXPECT_EQ(query_param("a=%zz&a=2", "a"), std::nullopt);  // malformed first: no fallback
  EXPECT_EQ(query_param("la%73t_id=7", "last_id"), "7");   // names are decoded too
  EXPECT_EQ(query_param("t=a=b", "t"), "a=b");
}

TEST(Target, Splits) {
  const Target t = split_target("/ws/room?token=x&y=1");
  EXPECT_EQ(t.path, "/ws/room");
  EXPECT_EQ(t.query, "token=x&y=1");
  const Target bare = split_target("/healthz");
  EXPECT_EQ(bare.path, "/healthz");
  EXPECT_EQ(bare.query, "");
  EXPECT_EQ(split_target("/a?").query, "");
  EXPECT_EQ(split_target("/a?b?c").query, "b?c");
}

TEST(WsTargetParse, RecognisesWsPaths) {
  auto no_room = parse_ws_target("/ws");
  EXPECT_EQ(no_room.kind, Kind::no_room);
  EXPECT_TRUE(no_room.room.empty());
  EXPECT_EQ(parse_ws_target("/ws/").kind, Kind::no_room);
  EXPECT_EQ(parse_ws_target("/ws?token=t").kind, Kind::no_room);

  auto room = parse_ws_target("/ws/general?token=abc.def&last_id=undefined");
  EXPECT_EQ(room.kind, Kind::room);
  EXPECT_EQ(room.room, "general");
  EXPECT_EQ(room.token, "abc.def");
  EXPECT_EQ(room.last_id, "undefined");

  // The seed's client appends "?last_id=" to a URL with "?token=" already: '?' separates too.
  auto seed = parse_ws_target("/ws/general?token=abc.def?last_id=undefined");
  EXPECT_EQ(seed.token, "abc.def");
  EXPECT_EQ(seed.last_id, "undefined");
  EXPECT_FALSE(seed.bad_token);
  EXPECT_EQ(parse_ws_target("/ws/general?token=a%3Fb").token, "a?b");  // an escaped '?' is kept

  auto encoded = parse_ws_target("/ws/team%3Aops");
  EXPECT_EQ(encoded.kind, Kind::room);
  EXPECT_EQ(encoded.room, "team:ops");
  EXPECT_EQ(encoded.token, std::nullopt);
  EXPECT_EQ(encoded.last_id, std::nullopt);

  EXPECT_EQ(parse_ws_target("/ws/" + std::string(128, 'r')).kind, Kind::room);
}

TEST(WsTargetParse, UndecodableLastIdIsAnUnknownPositionNotNone) {
  // (The client must still get its "recovered": false.)
  for (const char* bad : {"/ws/lobby?last_id=%zz", "/ws/lobby?last_id=a%2", "/ws?last_id=%"}) {
    EXPECT_EQ(parse_ws_target(bad).last_id, std::optional<std::string>("")) << bad;
  }
  EXPECT_EQ(parse_ws_target("/ws/lobby?last_id=e-7").last_id, std::optional<std::string>("e-7"));
  EXPECT_EQ(parse_ws_target("/ws/lobby?last_id=e%2D7").last_id, std::optional<std::string>("e-7"));
  EXPECT_EQ(parse_ws_target("/ws/lobby").last_id, std::nullopt);
}

TEST(WsTargetParse, UndecodableTokenIsABadTokenNotNone) {
  for (const char* bad :
       {"/ws/lobby?token=%zz", "/ws?token=a%2", "/ws?token=%", "/ws?token=%zz&token=t"}) {
    const auto target = parse_ws_target(bad);
    EXPECT_TRUE(target.bad_token) << bad;
    EXPECT_EQ(target.token, std::nullopt) << bad;
  }
  for (const char* fine :
       {"/ws/lobby", "/ws?token=", "/ws?token", "/ws?token=a%2Eb", "/ws?x=%zz"}) {
    EXPECT_FALSE(parse_ws_target(fine).bad_token) << fine;
  }
  // A second token, whatever the first: not one credential (an empty first must not make the
  // second anonymous).
  for (const char* twice : {"/ws?token=&token=t", "/ws?token&token=t", "/ws?token=t&token=t",
                            "/ws?token=t&%74oken=u"}) {
    EXPECT_TRUE(parse_ws_target(twice).bad_token) << twice;
  }
  EXPECT_EQ(parse_ws_target("/ws?token=").token, "");  // empty: no token, decided by the session
  EXPECT_EQ(parse_ws_target("/ws?token=a%2Eb").token, "a.b");

  const QueryParam absent = find_query_param("a=1", "token");
  EXPECT_FALSE(absent.present);
  const QueryParam malformed = find_query_param("token=%zz", "token");
  EXPECT_TRUE(malformed.present);
  EXPECT_EQ(malformed.value, std::nullopt);
}

TEST(WsTargetParse, RefusesBadRooms) {
  for (const std::string& bad : std::initializer_list<std::string>{
           "/ws/a/b", "/ws/a%2Fb", "/ws/a%20b", "/ws/a+b", "/ws/%zz", "/ws/a/", "/ws//",
           "/ws/caf%C3%A9", "/ws/" + std::string(129, 'r')}) {
    EXPECT_EQ(parse_ws_target(bad).kind, Kind::bad_room) << bad;
  }
}

TEST(WsTargetParse, OtherPathsAreNotWs) {
  for (const char* other : {"/", "", "/wss", "/ws.html", "/api/publish", "/WS", "ws", "/x/ws"}) {
    EXPECT_EQ(parse_ws_target(other).kind, Kind::not_ws) << other;
  }
}

TEST(Redact, HidesSecretValues) {
  EXPECT_EQ(redact_target("/ws/r?token=secret&last_id=5"), "/ws/r?token=REDACTED&last_id=5");
  EXPECT_EQ(redact_target("/ws?access_token=s1&api_key=s2&x=y"),
            "/ws?access_token=REDACTED&api_key=REDACTED&x=y");
  EXPECT_EQ(redact_target("/ws?Token=s&to%6Ben=s"), "/ws?Token=REDACTED&to%6Ben=REDACTED");
  EXPECT_EQ(redact_target("/ws?token=a&token=b"), "/ws?token=REDACTED&token=REDACTED");
  EXPECT_EQ(redact_target("/ws?mytoken=keep&token"), "/ws?mytoken=keep&token");
  EXPECT_EQ(redact_target("/ws/r"), "/ws/r");
  EXPECT_EQ(redact_target("/ws/r?"), "/ws/r?");
  EXPECT_EQ(redact_target("/ws?a=1&&token=x&"), "/ws?a=1&&token=REDACTED&");
}

TEST(LoggableTarget, RedactsThenCutsLongTargets) {
  EXPECT_EQ(loggable_target("/ws/r?token=secret&last_id=5"), "/ws/r?token=REDACTED&last_id=5");
  const std::string exact = "/ws/r?x=" + std::string(kMaxLoggedTarget - 8, 'a');
  EXPECT_EQ(loggable_target(exact), exact);
  const std::string secret(7000, 's');
  const std::string logged =
      loggable_target("/ws/r?token=" + secret + "&x=" + std::string(7000, 'b'));
  EXPECT_EQ(logged.substr(0, 21), "/ws/r?token=REDACTED&");
  EXPECT_EQ(logged.find("sss"), std::string::npos);
  EXPECT_EQ(logged.size(), kMaxLoggedTarget + std::string_view("...[6767 more bytes]").size());
  EXPECT_TRUE(logged.ends_with("...[6767 more bytes]")) << logged.substr(kMaxLoggedTarget);
}

TEST(LoggableTarget, EscapesWhatCouldBreakALogLine) {
  // NEL, U+2028 and a C0 control: percent-encoded, so a text log keeps one line per entry.
  EXPECT_EQ(loggable_target("/ws/r?x=a\xC2\x85"
                            "b\xE2\x80\xA8"
                            "c\x1b[31m"),
            "/ws/r?x=a%C2%85b%E2%80%A8c%1B[31m");
}

}  // namespace
}  // namespace realtime::protocol
