// The Redis connection against a real redis-server: commands, pipelining, bounds, connect
// failures, close, AUTH and SELECT.
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <gtest/gtest.h>

#include "redis/redis_connection.hpp"
#include "support/redis_transport_fixture.hpp"

namespace realtime::detail {
namespace {

using namespace transport_test;

TEST(RedisConnection, CommandsRepliesAndErrors) {
  test::RedisServer server;
  asio::io_context io;
  RedisConnectionOptions options;
  options.url = url_of(server);
  RedisConnection conn(io, options, test_logger());

  EXPECT_EQ(conn.command(Args{"PING"}, {}), make_error_code(RedisErrc::not_connected));

  bool connected = false;
  conn.set_on_connected([&] { connected = true; });
  conn.connect();
  ASSERT_TRUE(run_until(io, [&] { return connected; }));
  EXPECT_TRUE(conn.ready());

  std::string value;
  bool got = false;
  ASSERT_FALSE(conn.command(Args{"SET", "k", "v a l"}, {}));
  ASSERT_FALSE(conn.command(Args{"GET", "k"}, [&](std::error_code ec, const RedisReply& reply) {
    EXPECT_FALSE(ec);
    EXPECT_EQ(reply.type, RedisReply::Type::string);
    value = reply.str;
    got = true;
  }));
  ASSERT_TRUE(run_until(io, [&] { return got; }));
  EXPECT_EQ(value, "v a l");

  std::error_code error;
  RedisReply error_reply;
  ASSERT_FALSE(conn.command(Args{"NOSUCHCOMMAND"}, [&](std::error_code ec, const RedisReply& r) {
    error = ec;
    error_reply = r;
  }));
  ASSERT_TRUE(run_until(io, [&] { return bool(error); }));
  EXPECT_EQ(error, make_error_code(RedisErrc::server_error));
  EXPECT_EQ(error_reply.type, RedisReply::Type::error);
  EXPECT_NE(error_reply.str.find("unknown command"), std::string::npos);

  EXPECT_EQ(conn.command(Args{"SUBSCRIBE", "x"}, {}), make_error_code(RedisErrc::bad_command));
  EXPECT_EQ(conn.command(Args{}, {}), make_error_code(RedisErrc::bad_command));
  EXPECT_EQ(conn.pending(), 0u);
}

TEST(RedisConnection, CommandsOfOneTurnLeaveInOneWrite) {
  test::RedisServer server;
  asio::io_context io;
  RedisConnectionOptions options;
  options.url = url_of(server);
  RedisConnection conn(io, options, test_logger());
  bool connected = false;
  conn.set_on_connected([&] { connected = true; });
  conn.connect();
  ASSERT_TRUE(run_until(io, [&] { return connected; }));

  constexpr int kCommands = 200;
  const auto writes_before = conn.stats().write_events;
  int replies = 0;
  long long last = 0;
  asio::post(io, [&] {
    for (int i = 0; i < kCommands; ++i) {
      ASSERT_FALSE(
          conn.command(Args{"INCR", "counter"}, [&](std::error_code ec, const RedisReply& r) {
            EXPECT_FALSE(ec);
            last = r.integer;
            ++replies;
          }));
    }
  });
  ASSERT_TRUE(run_until(io, [&] { return replies == kCommands; }));
  EXPECT_EQ(last, kCommands);  // replies come back in order
  EXPECT_EQ(conn.stats().write_events - writes_before, 1u);
}

TEST(RedisConnection, PendingCommandsAreBounded) {
  test::RedisServer server;
  asio::io_context io;
  RedisConnectionOptions options;
  options.url = url_of(server);
  options.max_pending = 3;
  RedisConnection conn(io, options, test_logger());
  bool connected = false;
  conn.set_on_connected([&] { connected = true; });
  conn.connect();
  ASSERT_TRUE(run_until(io, [&] { return connected; }));

  int replies = 0;
  auto count = [&](std::error_code, const RedisReply&) { ++replies; };
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(conn.command(Args{"PING"}, count));
  EXPECT_EQ(conn.command(Args{"PING"}, count), make_error_code(RedisErrc::queue_full));
  ASSERT_TRUE(run_until(io, [&] { return replies == 3; }));
  EXPECT_FALSE(conn.command(Args{"PING"}, count));  // room again once answered
  ASSERT_TRUE(run_until(io, [&] { return replies == 4; }));
}

// How a connection attempt with `options` ended: its error (none if it did not end in time), why,
// and the connection's state then.
struct Ended {
  std::error_code error;
  std::string reason;
  RedisConnection::State state = RedisConnection::State::disconnected;
};
Ended connect_until_it_ends(asio::io_context& io, const RedisConnectionOptions& options) {
  RedisConnection conn(io, options, test_logger());
  Ended ended;
  conn.set_on_disconnected([&](std::error_code ec, const std::string& why) {
    ended.error = ec;
    ended.reason = why;
  });
  conn.connect();
  run_until(io, [&] { return bool(ended.error); });
  ended.state = conn.state();
  return ended;
}

TEST(RedisConnection, ConnectFailureIsReported) {
  asio::io_context io;
  RedisConnectionOptions options;
  options.url.host = "127.0.0.1";
  options.url.port = test::free_loopback_port();  // nothing listens there
  const Ended ended = connect_until_it_ends(io, options);
  EXPECT_EQ(ended.error, make_error_code(RedisErrc::connect_failed));
  EXPECT_FALSE(ended.reason.empty());
  EXPECT_EQ(ended.state, RedisConnection::State::disconnected);
}

TEST(RedisConnection, ResolvesLocalhost) {
  test::RedisServer server;
  asio::io_context io;
  RedisConnectionOptions options;
  options.url.host = "localhost";
  options.url.port = server.port();
  RedisConnection conn(io, options, test_logger());
  bool connected = false;
  conn.set_on_connected([&] { connected = true; });
  conn.connect();
  EXPECT_TRUE(run_until(io, [&] { return connected; }));
}

TEST(RedisConnection, CloseCompletesPendingWithConnectionLost) {
  test::RedisServer server;
  asio::io_context io;
  RedisConnectionOptions options;
  options.url = url_of(server);
  RedisConnection conn(io, options, test_logger());
  bool connected = false;
  bool disconnected_event = false;
  conn.set_on_connected([&] { connected = true; });
  conn.set_on_disconnected([&](std::error_code, const std::string&) { disconnected_event = true; });
  conn.connect();
  ASSERT_TRUE(run_until(io, [&] { return connected; }));

  std::error_code error;
  ASSERT_FALSE(
      conn.command(Args{"PING"}, [&](std::error_code ec, const RedisReply&) { error = ec; }));
  conn.close();
  ASSERT_TRUE(run_until(io, [&] { return bool(error); }));
  EXPECT_EQ(error, make_error_code(RedisErrc::connection_lost));
  EXPECT_FALSE(disconnected_event);

  // The same object connects again.
  connected = false;
  conn.connect();
  EXPECT_TRUE(run_until(io, [&] { return connected; }));
}

// Redis closed the connection (CLIENT KILL) and the loop has not run its read event yet: a
// command then is refused at once (not written to a closed connection and failed later as "lost
// before the reply", when its caller could not tell whether Redis ran it), and the loss is
// reported when the read event runs, as for any close.
TEST(RedisConnection, ACommandOnAConnectionRedisHasClosedIsRefusedNotSent) {
  test::RedisServer server;
  asio::io_context io;
  RedisConnectionOptions options;
  options.url = url_of(server);
  options.client_name = "killed-idle";
  RedisConnection conn(io, options, test_logger());
  bool connected = false;
  std::error_code lost;
  conn.set_on_connected([&] { connected = true; });
  conn.set_on_disconnected([&](std::error_code ec, const std::string&) { lost = ec; });
  conn.connect();
  ASSERT_TRUE(run_until(io, [&] { return connected; }));

  auto admin = server.client();
  ASSERT_EQ(admin.command({"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"})->integer, 1);
  // CLIENT KILL answers once Redis has closed the connection; its end of stream reaches our
  // socket about then (later if the kernel defers it to a busy softirq thread): given time to,
  // without running the loop, which would read it.
  std::this_thread::sleep_for(100ms);
  bool completed = false;
  EXPECT_EQ(conn.command(Args{"INCR", "ran"},
                         [&](std::error_code, const RedisReply&) { completed = true; }),
            make_error_code(RedisErrc::not_connected));
  EXPECT_FALSE(conn.ready());
  // An owner that reconnects at once (a retry_now() in the same handler) waits for the loss to
  // be read: its notice is not superseded by a new attempt.
  conn.connect();
  ASSERT_TRUE(run_until(io, [&] { return bool(lost); }));
  EXPECT_EQ(lost, make_error_code(RedisErrc::connection_lost));
  EXPECT_FALSE(completed);
  EXPECT_EQ(admin.get("ran"), "");

  connected = false;
  conn.connect();
  ASSERT_TRUE(run_until(io, [&] { return connected; }));
  std::error_code error{make_error_code(RedisErrc::connection_lost)};
  ASSERT_FALSE(conn.command(Args{"INCR", "ran"}, [&](std::error_code ec, const RedisReply&) {
    error = ec;
    completed = true;
  }));
  ASSERT_TRUE(run_until(io, [&] { return completed; }));
  EXPECT_FALSE(error);
  EXPECT_EQ(admin.get("ran"), "1");
}

TEST(RedisConnection, MayBeDestroyedFromItsOwnReplyHandler) {
  test::RedisServer server;
  asio::io_context io;
  RedisConnectionOptions options;
  options.url = url_of(server);
  auto conn = std::make_unique<RedisConnection>(io, options, test_logger());
  bool connected = false;
  conn->set_on_connected([&] { connected = true; });
  conn->connect();
  ASSERT_TRUE(run_until(io, [&] { return connected; }));

  int second_called = 0;
  bool destroyed = false;
  // Both replies arrive in one read: the first handler destroys the connection, the second
  // handler is dropped (destruction discards pending handlers).
  asio::post(io, [&] {
    ASSERT_FALSE(conn->command(Args{"PING"}, [&](std::error_code, const RedisReply&) {
      conn.reset();
      destroyed = true;
    }));
    ASSERT_FALSE(
        conn->command(Args{"PING"}, [&](std::error_code, const RedisReply&) { ++second_called; }));
  });
  ASSERT_TRUE(run_until(io, [&] { return destroyed; }));
  io.restart();
  io.run_for(20ms);
  EXPECT_EQ(second_called, 0);
}

// --- AUTH and SELECT ----------------------------------------------------------------------------

TEST(RedisAuth, PasswordAndDatabase) {
  test::RedisServer server(with_password("s3cr%t@x"));
  asio::io_context io;
  auto log = test_logger();

  // Percent-encoded password in the URL, database 3.
  auto parsed =
      parse_redis_url("redis://:s3cr%25t%40x@127.0.0.1:" + std::to_string(server.port()) + "/3");
  ASSERT_TRUE(parsed) << parsed.error;
  RedisConnectionOptions options;
  options.url = *parsed.url;
  RedisConnection conn(io, options, log);
  bool connected = false;
  conn.set_on_connected([&] { connected = true; });
  conn.connect();
  ASSERT_TRUE(run_until(io, [&] { return connected; }));
  bool stored = false;
  ASSERT_FALSE(
      conn.command(Args{"SET", "where", "db3"}, [&](std::error_code ec, const RedisReply&) {
        EXPECT_FALSE(ec);
        stored = true;
      }));
  ASSERT_TRUE(run_until(io, [&] { return stored; }));

  auto client = server.client();
  EXPECT_EQ(client.get("where"), "");  // not in db 0
  client.command({"SELECT", "3"});
  EXPECT_EQ(client.get("where"), "db3");

  // ACL form: user "default" with the same password.
  options.url.username = "default";
  RedisConnection acl(io, options, log);
  bool acl_connected = false;
  acl.set_on_connected([&] { acl_connected = true; });
  acl.connect();
  EXPECT_TRUE(run_until(io, [&] { return acl_connected; }));
}

TEST(RedisAuth, WrongPasswordIsAHandshakeFailure) {
  test::RedisServer server(with_password("right"));
  asio::io_context io;
  RedisConnectionOptions options;
  options.url = url_of(server);
  options.url.password = "wrong";
  const Ended wrong = connect_until_it_ends(io, options);
  EXPECT_EQ(wrong.error, make_error_code(RedisErrc::handshake_failed));
  EXPECT_NE(wrong.reason.find("AUTH"), std::string::npos) << wrong.reason;

  // No password at all: the PING of the handshake is refused with NOAUTH.
  options.url.password.clear();
  EXPECT_EQ(connect_until_it_ends(io, options).error, make_error_code(RedisErrc::handshake_failed));
}

// --- the restart check ---------------------------------------------------------------------------

TEST(RedisRestartCheck, InfoFieldReadsOneLine) {
  const std::string info = "# Server\r\nredis_version:7.0.15\r\nrun_id:abc123\r\ntcp_port:1\r\n";
  EXPECT_EQ(info_field(info, "run_id"), "abc123");
  EXPECT_EQ(info_field(info, "tcp_port"), "1");
  EXPECT_EQ(info_field(info, "run"), "");  // a prefix of a field is not the field
  EXPECT_EQ(info_field("run_id:last", "run_id"), "last");
  EXPECT_EQ(info_field("", "run_id"), "");
}

// The script runs before the connection is ready, with the server's run_id; a user that may not
// run INFO connects without it; a script Redis answers with an error fails the handshake.
TEST(RedisRestartCheck, RunsBeforeTheConnectionIsReadyOrIsSkippedWhenINFOIsRefused) {
  test::RedisServer server;
  auto admin = server.client();
  const std::string run_id = info_field(admin.command({"INFO", "server"})->str, "run_id");
  ASSERT_FALSE(run_id.empty());
  asio::io_context io;
  RedisConnectionOptions options;
  options.url = url_of(server);
  options.restart_check_script = "redis.call('SET', 'seen', ARGV[1]) return 1";
  RedisConnection conn(io, options, test_logger());
  bool connected = false;
  conn.set_on_connected([&] { connected = true; });
  EXPECT_EQ(conn.server_run(), "");
  conn.connect();
  ASSERT_TRUE(run_until(io, [&] { return connected; }));
  EXPECT_EQ(admin.get("seen"), run_id);
  EXPECT_EQ(conn.server_run(), run_id);

  admin.command({"DEL", "seen"});
  admin.command({"ACL", "SETUSER", "noinfo", "on", ">pw", "~*", "+@all", "-info"});
  options.url.username = "noinfo";
  options.url.password = "pw";
  RedisConnection limited(io, options, test_logger());
  bool limited_connected = false;
  limited.set_on_connected([&] { limited_connected = true; });
  limited.connect();
  ASSERT_TRUE(run_until(io, [&] { return limited_connected; }));
  EXPECT_EQ(admin.get("seen"), "");
  EXPECT_EQ(limited.server_run(), "");

  // NOREPLICAS, READONLY, OOM, BUSY...: not a connection to number on.
  options.url = url_of(server);
  options.restart_check_script = "return redis.error_reply('NOREPLICAS Not enough good replicas')";
  const Ended refused = connect_until_it_ends(io, options);
  EXPECT_EQ(refused.error, make_error_code(RedisErrc::handshake_failed));
  EXPECT_NE(refused.reason.find("NOREPLICAS"), std::string::npos) << refused.reason;
}

// --- publish / subscribe ------------------------------------------------------------------------

}  // namespace
}  // namespace realtime::detail
