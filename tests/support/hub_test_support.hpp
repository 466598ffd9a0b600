// Test support for hub tests: a pod in the test process (Hub + Handler on a loopback port),
// a blocking WebSocket client built on the project's own codec (no Beast, cheap under TSan),
// HS256 tokens, and polling with a deadline. Header-only; one test executable includes it.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "protocol/envelope.hpp"
#include "protocol/ws_frame.hpp"
#include "realtime/handler.hpp"
#include "realtime/hub.hpp"
#include "realtime/message.hpp"

namespace realtime::testing {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;
using protocol::Opcode;

inline constexpr auto kTimeout = 10s;  // generous: TSan slows everything down several times

// Polls `done` until it holds or `timeout` passes.
inline bool eventually(const std::function<bool()>& done,
                       std::chrono::milliseconds timeout = kTimeout) {
  const auto deadline = SteadyClock::now() + timeout;
  while (!done()) {
    if (SteadyClock::now() >= deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// "<epoch>-<seq>" of a room message.
struct RoomId {
  std::string epoch;
  std::uint64_t seq = 0;
};
inline std::optional<RoomId> parse_room_id(std::string_view id) {
  const auto dash = id.rfind('-');
  if (dash == std::string_view::npos || dash == 0 || dash + 1 == id.size()) return std::nullopt;
  RoomId parsed{std::string(id.substr(0, dash)), 0};
  for (char c : id.substr(dash + 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    parsed.seq = parsed.seq * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return parsed;
}

// ---- JWT (HS256) for tests that need several sockets of one user
// ----------------------------------

inline std::string base64url(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

constexpr std::string_view kJwtSecret = "hub-test-secret-0123456789abcdef";

inline std::string make_token(std::string_view subject) {
  const auto exp = std::chrono::duration_cast<std::chrono::seconds>(
                       (Clock::now() + std::chrono::hours(1)).time_since_epoch())
                       .count();
  const std::string header = base64url(R"({"alg":"HS256","typ":"JWT"})");
  const std::string payload = base64url(std::string(R"({"sub":")") + std::string(subject) +
                                        R"(","exp":)" + std::to_string(exp) + "}");
  const std::string signing_input = header + "." + payload;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_size = 0;
  HMAC(EVP_sha256(), kJwtSecret.data(), static_cast<int>(kJwtSecret.size()),
       reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(), mac,
       &mac_size);
  return signing_input + "." +
         base64url(std::string_view(reinterpret_cast<const char*>(mac), mac_size));
}

// ---- A blocking WebSocket client over a loopback socket
// -------------------------------------------

class WsClient final : public protocol::FrameSink {
 public:
  // Connects to 127.0.0.1:port and upgrades `target` (e.g. "/ws/lobby"). Null on failure.
  static std::unique_ptr<WsClient> connect(std::uint16_t port, const std::string& target) {
    auto client = std::unique_ptr<WsClient>(new WsClient());
    if (!client->open(port, target)) return nullptr;
    return client;
  }

  ~WsClient() override {
    if (fd_ >= 0) ::close(fd_);
  }
  WsClient(const WsClient&) = delete;
  WsClient& operator=(const WsClient&) = delete;

  bool send_text(std::string_view json) {
    return write_all(protocol::encode_client_frame(Opcode::text, json, next_mask()));
  }
  // Several text frames in one write (the server reads them together: no pause between them).
  bool send_texts(const std::vector<std::string>& jsons) {
    std::string frames;
    for (const std::string& json : jsons) {
      frames += protocol::encode_client_frame(Opcode::text, json, next_mask());
    }
    return write_all(frames);
  }
  bool send_close(std::uint16_t code) {
    const std::string payload{static_cast<char>(code >> 8U), static_cast<char>(code & 0xFFU)};
    return write_all(protocol::encode_client_frame(Opcode::close, payload, next_mask()));
  }
  // Drops the TCP connection without a closing handshake.
  void abort() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  // The next decoded message, or nullopt when none arrives in time or the socket closed.
  std::optional<Message> next(std::chrono::milliseconds timeout = kTimeout) {
    const auto deadline = SteadyClock::now() + timeout;
    while (texts_.empty()) {
      if (!read_some(deadline)) return std::nullopt;
    }
    std::string text = std::move(texts_.front());
    texts_.pop_front();
    auto decoded = protocol::decode_envelope(text);
    EXPECT_EQ(decoded.error, protocol::DecodeError::none) << text;
    return std::move(decoded.message);
  }
  // Skips messages until one satisfies `match`.
  std::optional<Message> next_matching(const std::function<bool(const Message&)>& match,
                                       std::chrono::milliseconds timeout = kTimeout) {
    const auto deadline = SteadyClock::now() + timeout;
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
      if (left <= 0ms) return std::nullopt;
      auto msg = next(left);
      if (!msg || match(*msg)) return msg;
    }
  }
  // Reads (discarding messages) until the server's close frame or end of stream; the close code.
  std::optional<std::uint16_t> wait_close(std::chrono::milliseconds timeout = kTimeout) {
    const auto deadline = SteadyClock::now() + timeout;
    while (!close_code_ && !eof_) {
      texts_.clear();
      if (!read_some(deadline)) break;
    }
    return close_code_;
  }
  std::size_t texts_received() const noexcept { return texts_total_; }

 private:
  WsClient() = default;

  bool open(std::uint16_t port, const std::string& target) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return false;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) return false;
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const std::string request = "GET " + target +
                                " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                                "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                "Sec-WebSocket-Version: 13\r\n\r\n";
    if (!write_all(request)) return false;
    std::string response;
    const auto deadline = SteadyClock::now() + kTimeout;
    std::size_t end = std::string::npos;
    while ((end = response.find("\r\n\r\n")) == std::string::npos) {
      char buffer[1024];
      const auto n = read_raw(buffer, sizeof buffer, deadline);
      if (n <= 0) return false;
      response.append(buffer, static_cast<std::size_t>(n));
    }
    if (!response.starts_with("HTTP/1.1 101")) return false;
    std::string leftover = response.substr(end + 4);
    if (!leftover.empty()) parser_.feed(leftover.data(), leftover.size(), *this);
    return true;
  }

  std::uint32_t next_mask() noexcept {
    mask_ = mask_ * 1664525U + 1013904223U;
    return mask_ | 1U;  // never 0: 0 means "unmasked" to the encoder
  }

  bool write_all(std::string_view bytes) {
    while (!bytes.empty()) {
      const auto n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // Up to `size` bytes before `deadline`: > 0 bytes read, 0 end of stream, -1 timeout or error.
  ssize_t read_raw(char* buffer, std::size_t size, SteadyClock::time_point deadline) {
    if (fd_ < 0) return -1;
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
      if (left < 0ms) return -1;
      pollfd p{fd_, POLLIN, 0};
      const int ready = ::poll(&p, 1, static_cast<int>(left.count()) + 1);
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) return -1;
      const auto n = ::recv(fd_, buffer, size, 0);
      if (n < 0 && errno == EINTR) continue;
      return n < 0 ? -1 : n;
    }
  }

  // Reads once and feeds the parser; false on timeout, end of stream or a protocol error.
  bool read_some(SteadyClock::time_point deadline) {
    if (eof_ || parser_.failed()) return false;
    const auto n = read_raw(buffer_.data(), buffer_.size(), deadline);
    if (n <= 0) {
      if (n == 0) eof_ = true;
      return false;
    }
    return parser_.feed(buffer_.data(), static_cast<std::size_t>(n), *this);
  }

  // protocol::FrameSink
  void on_text(std::string_view message) override {
    texts_.emplace_back(message);
    ++texts_total_;
  }
  void on_binary(std::string_view message) override {
    ADD_FAILURE() << "binary frame from the server (" << message.size() << " bytes)";
  }
  void on_ping(std::string_view payload) override {
    write_all(protocol::encode_client_frame(Opcode::pong, payload, next_mask()));
  }
  void on_pong(std::string_view /*payload*/) override {}
  void on_close(std::uint16_t code, std::string_view /*reason*/) override { close_code_ = code; }
  void on_protocol_error(std::uint16_t close_code, std::string_view why) override {
    ADD_FAILURE() << "server broke the protocol (" << close_code << "): " << why;
  }

  int fd_ = -1;
  std::uint32_t mask_ = 0x9e3779b9U;
  protocol::FrameParser parser_{std::size_t{64} << 20U, protocol::FrameParser::Role::client};
  std::vector<char> buffer_ = std::vector<char>(64 * 1024);
  std::deque<std::string> texts_;
  std::size_t texts_total_ = 0;
  std::optional<std::uint16_t> close_code_;
  bool eof_ = false;
};

// Whether a TCP connection to 127.0.0.1:port is accepted (anything listening there at all).
inline bool tcp_accepts(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool accepted =
      ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
  ::close(fd);
  return accepted;
}

// One user's two sockets hand `room` over: `to` joins as `from` leaves (sent at once), and both
// have answered a ping after it (everything before it was handled).
inline bool hand_over(WsClient& from, WsClient& to, const std::string& room) {
  const std::string join = R"({"type":"join","room":")" + room + "\"}";
  const std::string leave = R"({"type":"leave","room":")" + room + "\"}";
  const auto is_pong = [](const Message& m) { return m.type == MessageType::pong; };
  return to.send_text(join) && from.send_text(leave) && to.send_text(R"({"type":"ping"})") &&
         from.send_text(R"({"type":"ping"})") && to.next_matching(is_pong) &&
         from.next_matching(is_pong);
}

// Connects and reads the welcome; returns the client and fills *user_id from the welcome.
std::unique_ptr<WsClient> connect_welcomed(std::uint16_t port, const std::string& target,
                                           std::string* user_id = nullptr) {
  auto client = WsClient::connect(port, target);
  if (!client) {
    ADD_FAILURE() << "cannot connect to " << target;
    return nullptr;
  }
  auto welcome = client->next();
  if (!welcome || welcome->type != MessageType::system ||
      welcome->data.find(R"("event":"welcome")") == std::string::npos) {
    ADD_FAILURE() << "no welcome on " << target;
    return nullptr;
  }
  if (user_id != nullptr) {
    const std::string key = R"("user_id":")";
    const auto at = welcome->data.find(key);
    if (at != std::string::npos) {
      const auto start = at + key.size();
      *user_id = welcome->data.substr(start, welcome->data.find('"', start) - start);
    }
  }
  return client;
}

// ---- A pod in the test process
// ---------------------------------------------------------------------

inline HandlerConfig fast_config() {
  HandlerConfig config;
  config.rate_limit = 1e6;
  config.rate_burst = 1e6;
  config.send_queue_bytes = std::size_t{256} << 20U;
  config.max_connections = 100000;
  return config;
}

// A broadcaster that does what LocalBroadcaster does: a test overrides the part it controls.
class LocalForwarding : public Broadcaster {
 public:
  explicit LocalForwarding(Hub& hub) : local_(hub) {}
  std::string publish(Message msg) override { return local_.publish(std::move(msg)); }
  std::string publish_to_user(const std::string& user_id, Message msg) override {
    return local_.publish_to_user(user_id, std::move(msg));
  }
  void query_rooms(std::function<void(std::vector<RoomCount>)> done) override {
    local_.query_rooms(std::move(done));
  }
  void query_presence(const std::string& room,
                      std::function<void(std::vector<PresenceEntry>)> done) override {
    local_.query_presence(room, std::move(done));
  }

 private:
  LocalBroadcaster local_;
};

struct Pod {
  // `broadcaster`, when given, makes the pod's broadcaster from its hub.
  explicit Pod(HandlerConfig config = fast_config(), unsigned threads = 4,
               const std::function<std::shared_ptr<Broadcaster>(Hub&)>& broadcaster = {})
      : hub(HubOptions{threads, 100, "hub-test"}) {
    hub.start();
    if (broadcaster) config.broadcaster = broadcaster(hub);
    handler = std::make_unique<Handler>(hub, std::move(config));
    const auto ec = handler->listen("127.0.0.1", 0);
    EXPECT_FALSE(ec) << ec.message();
    port = handler->port();
  }
  ~Pod() {
    handler->shutdown(3s);
    handler.reset();
    hub.stop();
    hub.wait();
  }
  Pod(const Pod&) = delete;
  Pod& operator=(const Pod&) = delete;

  std::size_t members(const std::string& room) const {
    for (const RoomCount& count : hub.rooms()) {
      if (count.room == room) return count.members;
    }
    return 0;
  }

  Hub hub;
  std::unique_ptr<Handler> handler;
  std::uint16_t port = 0;
};

}  // namespace realtime::testing
