// realtime-server and the embedding API seen through an independent WebSocket implementation:
// Boost.Beast's client. The server half starts the real binary (REALTIME_SERVER) as a child
// process; the library half runs a Hub and a Handler in this process, as an application embedding
// librealtime would.
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "protocol/envelope.hpp"
#include "realtime/handler.hpp"
#include "realtime/hub.hpp"
#include "realtime/message.hpp"

extern char** environ;

namespace realtime {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

constexpr auto kTimeout = 10s;

// ---- The server binary as a child process
// ------------------------------------------------------------

class ServerProcess {
 public:
  // Starts realtime-server with `--listen 127.0.0.1:0` and `args`, and waits for its port.
  explicit ServerProcess(std::vector<std::string> args = {}) {
    const char* path = std::getenv("REALTIME_SERVER");
    if (path == nullptr || *path == '\0') {
      error_ = "REALTIME_SERVER is not set";
      return;
    }
    std::vector<std::string> argv_storage = {path, "--listen",    "127.0.0.1:0", "--threads",
                                             "2",  "--log-level", "warn"};
    argv_storage.insert(argv_storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& arg : argv_storage) argv.push_back(arg.data());
    argv.push_back(nullptr);

    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) {
      error_ = "pipe failed";
      return;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    const int rc = ::posix_spawn(&pid_, path, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    stdout_ = out[0];
    if (rc != 0) {
      pid_ = -1;
      error_ = std::string("posix_spawn failed: ") + std::strerror(rc);
      return;
    }
    read_port();
  }
  ~ServerProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (stdout_ >= 0) ::close(stdout_);
  }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  bool ok() const noexcept { return port_ != 0; }
  const std::string& error() const noexcept { return error_; }
  std::uint16_t port() const noexcept { return port_; }

  // Sends SIGTERM and waits for the exit; the wait status, or nullopt when it did not exit in time.
  std::optional<int> terminate(std::chrono::milliseconds timeout = 15s) {
    if (pid_ <= 0) return std::nullopt;
    ::kill(pid_, SIGTERM);
    return wait_exit(timeout);
  }
  std::optional<int> wait_exit(std::chrono::milliseconds timeout) {
    const auto deadline = SteadyClock::now() + timeout;
    for (;;) {
      int status = 0;
      const pid_t done = ::waitpid(pid_, &status, WNOHANG);
      if (done == pid_) {
        pid_ = -1;
        return status;
      }
      if (done < 0 && errno != EINTR) return std::nullopt;
      if (SteadyClock::now() >= deadline) return std::nullopt;
      std::this_thread::sleep_for(10ms);
    }
  }

 private:
  void read_port() {
    const std::string marker = "listening on 127.0.0.1:";
    std::string text;
    const auto deadline = SteadyClock::now() + kTimeout;
    while (SteadyClock::now() < deadline) {
      const auto at = text.find(marker);
      if (at != std::string::npos && text.find('\n', at) != std::string::npos) {
        port_ = static_cast<std::uint16_t>(std::stoi(text.substr(at + marker.size())));
        return;
      }
      pollfd p{stdout_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buffer[256];
      const auto n = ::read(stdout_, buffer, sizeof buffer);
      if (n <= 0) break;
      text.append(buffer, static_cast<std::size_t>(n));
    }
    error_ = "no 'listening on' line; stdout was: " + text;
  }

  pid_t pid_ = -1;
  int stdout_ = -1;
  std::uint16_t port_ = 0;
  std::string error_;
};

// ---- A Beast WebSocket client with timeouts
// ------------------------------------------------------------

// Runs one asynchronous operation on `io` to completion or until `timeout`; on timeout, `cancel`
// is called and the operation's (aborted) completion drained. Every call below is blocking.
beast::error_code run_for(asio::io_context& io,
                          const std::function<void(std::function<void(beast::error_code)>)>& start,
                          const std::function<void()>& cancel,
                          std::chrono::milliseconds timeout = kTimeout) {
  std::optional<beast::error_code> result;
  start([&result](beast::error_code ec) { result = ec; });
  io.restart();
  io.run_for(timeout);
  if (result) return *result;
  cancel();
  io.restart();
  io.run();
  return asio::error::timed_out;
}

class BeastClient {
 public:
  // Connects to 127.0.0.1:port and performs the WebSocket handshake on `target`.
  BeastClient(std::uint16_t port, std::string target) : ws_(io_) {
    const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), port);
    ec_ = run_for(
        io_,
        [&](auto done) {
          beast::get_lowest_layer(ws_).async_connect(endpoint,
                                                     [done](beast::error_code ec) { done(ec); });
        },
        [&] { beast::get_lowest_layer(ws_).cancel(); });
    if (ec_) return;
    ws_.set_option(websocket::stream_base::decorator([](websocket::request_type& req) {
      req.set(http::field::user_agent, "realtime-beast-test");
    }));
    // Large server messages are fine; what this client sends is up to each test.
    ws_.read_message_max(std::size_t{16} << 20U);
    ec_ = run_for(
        io_,
        [&](auto done) {
          ws_.async_handshake(response_, "127.0.0.1:" + std::to_string(port), target,
                              [done](beast::error_code ec) { done(ec); });
        },
        [&] { beast::get_lowest_layer(ws_).close(); });
  }

  bool ok() const noexcept { return !ec_; }
  const beast::error_code& error() const noexcept { return ec_; }
  const websocket::response_type& response() const noexcept { return response_; }

  beast::error_code write(std::string_view text) {
    ws_.text(true);
    return run_for(
        io_,
        [&](auto done) {
          ws_.async_write(asio::buffer(text.data(), text.size()),
                          [done](beast::error_code ec, std::size_t) { done(ec); });
        },
        [&] { beast::get_lowest_layer(ws_).close(); });
  }

  // The next message; nullopt (and last_error() set) on close, error or timeout.
  std::optional<Message> read(std::chrono::milliseconds timeout = kTimeout) {
    beast::flat_buffer buffer;
    last_error_ = run_for(
        io_,
        [&](auto done) {
          ws_.async_read(buffer, [done](beast::error_code ec, std::size_t) { done(ec); });
        },
        [&] { beast::get_lowest_layer(ws_).close(); }, timeout);
    if (last_error_) return std::nullopt;
    const std::string text = beast::buffers_to_string(buffer.data());
    auto decoded = protocol::decode_envelope(text);
    EXPECT_EQ(decoded.error, protocol::DecodeError::none) << text;
    return std::move(decoded.message);
  }
  // Skips messages until one satisfies `match`.
  std::optional<Message> read_until(const std::function<bool(const Message&)>& match) {
    for (;;) {
      auto msg = read();
      if (!msg || match(*msg)) return msg;
    }
  }
  // Reads until the server closes; the code of its close frame (nullopt when none came). After a
  // protocol failure the server drops TCP right behind its close frame (RFC 6455 7.1.7), so the
  // client's own close reply may fail: the frame received is what counts.
  std::optional<std::uint16_t> read_close() {
    while (read()) {
    }
    const auto code = static_cast<std::uint16_t>(ws_.reason().code);
    if (code == 0) return std::nullopt;
    return code;
  }
  const beast::error_code& last_error() const noexcept { return last_error_; }

  beast::error_code close() {
    return run_for(
        io_,
        [&](auto done) {
          ws_.async_close(websocket::close_code::normal,
                          [done](beast::error_code ec) { done(ec); });
        },
        [&] { beast::get_lowest_layer(ws_).close(); });
  }

 private:
  asio::io_context io_;
  websocket::stream<tcp::socket> ws_;
  websocket::response_type response_;
  beast::error_code ec_;
  beast::error_code last_error_;
};

bool has_event(const Message& msg, std::string_view event) {
  return msg.type == MessageType::system &&
         msg.data.find("\"event\":\"" + std::string(event) + "\"") != std::string::npos;
}

// The value of a string field inside msg.data (enough for the flat objects the server sends).
std::string data_field(const Message& msg, std::string_view key) {
  const std::string needle = "\"" + std::string(key) + "\":\"";
  const auto at = msg.data.find(needle);
  if (at == std::string::npos) return {};
  const auto start = at + needle.size();
  return msg.data.substr(start, msg.data.find('"', start) - start);
}

// Reads the welcome and returns the connection's user id.
std::string welcome_user(BeastClient& client) {
  auto welcome = client.read();
  if (!welcome) {
    ADD_FAILURE() << "no welcome: " << client.last_error().message();
    return {};
  }
  EXPECT_TRUE(has_event(*welcome, "welcome")) << welcome->data;
  return data_field(*welcome, "user_id");
}

bool is_chat(const Message& msg) { return msg.type == MessageType::chat; }

// A server per test; TearDown stops it with SIGTERM and expects a clean exit.
class ServerTest : public ::testing::Test {
 protected:
  void start(std::vector<std::string> args = {}) {
    server_ = std::make_unique<ServerProcess>(std::move(args));
    ASSERT_TRUE(server_->ok()) << server_->error();
  }
  void SetUp() override { start(); }
  void TearDown() override {
    if (!server_ || !server_->ok()) return;
    const auto status = server_->terminate();
    ASSERT_TRUE(status) << "the server did not exit after SIGTERM";
    EXPECT_TRUE(WIFEXITED(*status)) << "status " << *status;
    EXPECT_EQ(WEXITSTATUS(*status), 0);
  }
  std::uint16_t port() const { return server_->port(); }

  std::unique_ptr<ServerProcess> server_;
};

TEST_F(ServerTest, WelcomeComesFirst) {
  BeastClient client(port(), "/ws/lobby");
  ASSERT_TRUE(client.ok()) << client.error().message();
  auto welcome = client.read();
  ASSERT_TRUE(welcome) << client.last_error().message();
  EXPECT_TRUE(has_event(*welcome, "welcome")) << welcome->data;
  EXPECT_EQ(welcome->room, "lobby");
  EXPECT_FALSE(welcome->id.empty());
  EXPECT_TRUE(welcome->from.empty());
  EXPECT_FALSE(data_field(*welcome, "connection_id").empty());
  EXPECT_FALSE(data_field(*welcome, "user_id").empty());
  EXPECT_EQ(data_field(*welcome, "room"), "lobby");
  EXPECT_FALSE(client.close());
}

TEST_F(ServerTest, ChatBetweenTwoClientsCarriesServerFields) {
  BeastClient alice(port(), "/ws/chat-room");
  BeastClient bob(port(), "/ws/chat-room");
  ASSERT_TRUE(alice.ok() && bob.ok());
  const std::string alice_id = welcome_user(alice);
  ASSERT_FALSE(welcome_user(bob).empty());
  ASSERT_FALSE(alice_id.empty());

  const auto before = Clock::now();
  // Client-chosen id, from and timestamp are ignored.
  ASSERT_FALSE(
      alice.write(R"({"type":"chat","room":"chat-room","data":{"text":"hello bob"},)"
                  R"("id":"forged","from":"mallory","timestamp":"2001-01-01T00:00:00Z"})"));
  for (BeastClient* client : {&bob, &alice}) {  // the sender gets its own message too
    auto chat = client->read_until(is_chat);
    ASSERT_TRUE(chat) << client->last_error().message();
    EXPECT_EQ(chat->room, "chat-room");
    EXPECT_EQ(chat->from, alice_id);
    EXPECT_EQ(chat->data, R"({"text":"hello bob"})");
    EXPECT_NE(chat->id, "forged");
    const auto dash = chat->id.rfind('-');
    ASSERT_NE(dash, std::string::npos) << chat->id;
    EXPECT_EQ(chat->id.substr(dash + 1), "1") << "the room's first message: " << chat->id;
    EXPECT_GE(chat->timestamp, before - 1s);
    EXPECT_LE(chat->timestamp, Clock::now() + 1s);
  }
}

TEST_F(ServerTest, PingGetsPong) {
  BeastClient client(port(), "/ws");
  ASSERT_TRUE(client.ok());
  welcome_user(client);
  ASSERT_FALSE(client.write(R"({"type":"ping"})"));
  auto pong = client.read();
  ASSERT_TRUE(pong) << client.last_error().message();
  EXPECT_EQ(pong->type, MessageType::pong);
  EXPECT_FALSE(pong->id.empty());
}

TEST_F(ServerTest, BadJsonGetsAnErrorAndTheSocketStaysOpen) {
  BeastClient client(port(), "/ws/errors");
  ASSERT_TRUE(client.ok());
  welcome_user(client);
  ASSERT_FALSE(client.write("{this is not json"));
  auto error = client.read_until([](const Message& m) { return m.type == MessageType::error; });
  ASSERT_TRUE(error) << client.last_error().message();
  EXPECT_EQ(data_field(*error, "code"), "invalid_json") << error->data;
  EXPECT_FALSE(data_field(*error, "error").empty());
  // Still open and working.
  ASSERT_FALSE(client.write(R"({"type":"ping"})"));
  auto pong = client.read_until([](const Message& m) { return m.type == MessageType::pong; });
  EXPECT_TRUE(pong) << client.last_error().message();
  EXPECT_FALSE(client.close());
}

TEST_F(ServerTest, BadRoomIsRefusedWith400) {
  asio::io_context io;
  tcp::socket socket(io);
  const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), port());
  ASSERT_FALSE(run_for(
      io,
      [&](auto done) {
        socket.async_connect(endpoint, [done](beast::error_code ec) { done(ec); });
      },
      [&] { socket.close(); }));
  http::request<http::empty_body> req(http::verb::get, "/ws/bad!room", 11);
  req.set(http::field::host, "127.0.0.1:" + std::to_string(port()));
  req.set(http::field::upgrade, "websocket");
  req.set(http::field::connection, "Upgrade");
  req.set(http::field::sec_websocket_key, "dGhlIHNhbXBsZSBub25jZQ==");
  req.set(http::field::sec_websocket_version, "13");
  ASSERT_FALSE(run_for(
      io,
      [&](auto done) {
        http::async_write(socket, req, [done](beast::error_code ec, std::size_t) { done(ec); });
      },
      [&] { socket.close(); }));
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  ASSERT_FALSE(run_for(
      io,
      [&](auto done) {
        http::async_read(socket, buffer, res,
                         [done](beast::error_code ec, std::size_t) { done(ec); });
      },
      [&] { socket.close(); }));
  EXPECT_EQ(res.result_int(), 400U);
  EXPECT_NE(res.body().find("room"), std::string::npos) << res.body();

  // The WebSocket client sees the same refusal.
  BeastClient client(port(), "/ws/" + std::string(129, 'r'));
  EXPECT_EQ(client.error(), websocket::error::upgrade_declined) << client.error().message();
  EXPECT_EQ(client.response().result_int(), 400U);
}

TEST_F(ServerTest, SigtermClosesSocketsWith1001AndExitsZero) {
  BeastClient a(port(), "/ws/shutdown");
  BeastClient b(port(), "/ws");
  ASSERT_TRUE(a.ok() && b.ok());
  welcome_user(a);
  welcome_user(b);
  auto status = std::async(std::launch::async, [this] { return server_->terminate(); });
  for (BeastClient* client : {&a, &b}) {
    const auto code = client->read_close();
    ASSERT_TRUE(code) << client->last_error().message();
    EXPECT_EQ(*code, 1001);
  }
  const auto exited = status.get();
  ASSERT_TRUE(exited) << "the server did not exit after SIGTERM";
  EXPECT_TRUE(WIFEXITED(*exited));
  EXPECT_EQ(WEXITSTATUS(*exited), 0);
  server_.reset();  // already stopped
}

class SmallMessagesTest : public ServerTest {
 protected:
  void SetUp() override { start({"--max-message-bytes", "1024"}); }
};

TEST_F(SmallMessagesTest, OversizedFrameClosesWith1009) {
  BeastClient client(port(), "/ws/limits");
  ASSERT_TRUE(client.ok());
  welcome_user(client);
  const std::string text(900, 'a');
  // Under the limit: fine.
  ASSERT_FALSE(client.write(R"({"type":"chat","data":{"text":")" + text + R"("}})"));
  ASSERT_TRUE(client.read_until(is_chat)) << client.last_error().message();
  // Over it: closed with 1009.
  ASSERT_FALSE(client.write(R"({"type":"chat","data":{"text":")" + text + text + R"("}})"));
  const auto code = client.read_close();
  ASSERT_TRUE(code) << client.last_error().message();
  EXPECT_EQ(*code, 1009);
}

// ---- The library embedded in this process
// --------------------------------------------------------------

TEST(EmbeddedHandler, HooksRewriteSuppressAndCount) {
  std::atomic<int> connects{0};
  std::atomic<int> disconnects{0};
  Hub hub(HubOptions{2, 100, "embedded"});
  hub.start();
  HandlerConfig config;
  config.on_connect = [&](Connection& conn) {
    connects.fetch_add(1);
    EXPECT_EQ(conn.rooms(), std::vector<std::string>{"embed"});
    conn.send(system_message("hello", R"("note":"sent from on_connect")"));
  };
  config.on_disconnect = [&](Connection&) { disconnects.fetch_add(1); };
  config.on_message = [](Connection& conn, Message& msg) {
    if (msg.data.find("blocked") != std::string::npos) return false;
    msg.from = "user:" + conn.user_id();
    return true;
  };
  auto handler = std::make_unique<Handler>(hub, config);
  ASSERT_FALSE(handler->listen("127.0.0.1", 0));
  const std::uint16_t port = handler->port();
  ASSERT_NE(port, 0);

  {
    BeastClient a(port, "/ws/embed");
    BeastClient b(port, "/ws/embed");
    ASSERT_TRUE(a.ok() && b.ok());
    const std::string a_user = welcome_user(a);
    const std::string b_user = welcome_user(b);
    ASSERT_FALSE(a_user.empty());
    for (BeastClient* client : {&a, &b}) {
      auto hello = client->read_until([](const Message& m) { return has_event(m, "hello"); });
      ASSERT_TRUE(hello) << client->last_error().message();
    }
    EXPECT_EQ(connects.load(), 2);

    // Suppressed, then rewritten: b's first chat is the second message.
    ASSERT_FALSE(a.write(R"({"type":"chat","data":{"text":"this is blocked"}})"));
    ASSERT_FALSE(a.write(R"({"type":"chat","data":{"text":"this is fine"}})"));
    for (BeastClient* client : {&b, &a}) {
      auto chat = client->read_until(is_chat);
      ASSERT_TRUE(chat) << client->last_error().message();
      EXPECT_EQ(chat->data, R"({"text":"this is fine"})");
      EXPECT_EQ(chat->from, "user:" + a_user);
    }
    EXPECT_EQ(hub.metrics().dropped[static_cast<std::size_t>(DropReason::suppressed)].load(), 1U);

    // From the application: a room broadcast reaches both, a user message only its user.
    const std::string id = hub.broadcast(chat_message("embed", "from the app"));
    for (BeastClient* client : {&a, &b}) {
      auto msg = client->read_until(is_chat);
      ASSERT_TRUE(msg);
      EXPECT_EQ(msg->id, id);
      EXPECT_EQ(msg->data, R"({"text":"from the app"})");
      EXPECT_TRUE(msg->from.empty());
    }
    Message note = system_message("direct");
    note.type = MessageType::notification;
    const std::string note_id = hub.send_to_user(a_user, note);
    const std::string marker = hub.broadcast(chat_message("embed", "marker"));
    auto got = a.read_until([](const Message& m) { return m.type == MessageType::notification; });
    ASSERT_TRUE(got);
    // ("<tag>-u<n>" arrives behind the position of a's room: "<epoch>-<seq>.u<tag><n>".)
    const auto dash = note_id.rfind('-');
    ASSERT_NE(dash, std::string::npos);
    const std::string named = ".u" + note_id.substr(0, dash) + note_id.substr(dash + 2);
    EXPECT_TRUE(got->id.ends_with(named)) << got->id << " for " << note_id;
    auto next = b.read_until([](const Message& m) {
      return m.type == MessageType::notification || m.type == MessageType::chat;
    });
    ASSERT_TRUE(next);
    EXPECT_EQ(next->id, marker) << "b got a's notification";

    EXPECT_EQ(hub.connection_count(), 2U);
    EXPECT_EQ(hub.room_count(), 1U);
    EXPECT_FALSE(a.close());
    EXPECT_FALSE(b.close());
  }
  const auto deadline = SteadyClock::now() + kTimeout;
  while (disconnects.load() < 2 && SteadyClock::now() < deadline) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(disconnects.load(), 2);
  EXPECT_EQ(hub.connection_count(), 0U);
  EXPECT_EQ(hub.room_count(), 0U);

  handler->shutdown();
  handler.reset();
  hub.stop();
  hub.wait();
}

}  // namespace
}  // namespace realtime
