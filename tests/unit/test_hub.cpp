// The hub under concurrency: broadcasts from many threads into shared rooms, join/leave churn,
// presence, per-user delivery, lifecycle and the delivery counters. Clients are plain blocking
// loopback sockets speaking WebSocket through the project's own codec (src/protocol/ws_frame.hpp),
// so this test needs no Beast and stays cheap to build and meaningful under TSan.
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

namespace realtime {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;
using protocol::Opcode;

constexpr auto kTimeout = 10s;  // generous: TSan slows everything down several times

// Polls `done` until it holds or `timeout` passes.
bool eventually(const std::function<bool()>& done, std::chrono::milliseconds timeout = kTimeout) {
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
std::optional<RoomId> parse_room_id(std::string_view id) {
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

std::string base64url(std::string_view bytes) {
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

std::string make_token(std::string_view subject) {
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

HandlerConfig fast_config() {
  HandlerConfig config;
  config.rate_limit = 1e6;
  config.rate_burst = 1e6;
  config.send_queue_bytes = std::size_t{256} << 20U;
  config.max_connections = 100000;
  return config;
}

struct Pod {
  explicit Pod(HandlerConfig config = fast_config(), unsigned threads = 4)
      : hub(HubOptions{threads, 100, "hub-test"}) {
    hub.start();
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

// ---- Hub without sockets
// ---------------------------------------------------------------------------

TEST(HubIds, RoomBroadcastsGetConsecutiveIdsOfOneEpoch) {
  Hub hub(HubOptions{2, 10, "ids"});
  hub.start();
  std::vector<RoomId> ids;
  for (int i = 0; i < 5; ++i) {
    const auto id = parse_room_id(hub.broadcast(chat_message("ids-room", "x")));
    ASSERT_TRUE(id);
    ids.push_back(*id);
  }
  for (std::size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(ids[i].epoch, ids[0].epoch);
    EXPECT_EQ(ids[i].seq, i + 1);
  }
  EXPECT_EQ(ids[0].epoch.size(), 8U);

  Message explicit_id = chat_message("ids-room", "y");
  explicit_id.id = "kept-as-given";
  EXPECT_EQ(hub.broadcast(explicit_id), "kept-as-given");

  const std::string global = hub.broadcast(system_message("tick"));
  const std::string direct = hub.send_to_user("nobody", system_message("tick"));
  EXPECT_NE(global.find("-g"), std::string::npos) << global;
  EXPECT_NE(direct.find("-u"), std::string::npos) << direct;
  EXPECT_NE(global, direct);

  // No sockets: no rooms are reported, whatever was published.
  EXPECT_EQ(hub.room_count(), 0U);
  EXPECT_TRUE(hub.rooms().empty());
  EXPECT_TRUE(hub.presence("ids-room").empty());
  EXPECT_EQ(hub.connection_count(), 0U);
  hub.stop();
  hub.wait();
}

TEST(HubIds, ConcurrentBroadcastsGetUniqueGaplessSequences) {
  Hub hub(HubOptions{4, 10, "ids"});
  hub.start();
  constexpr int kThreads = 8;
  constexpr int kPerThread = 500;
  const std::vector<std::string> rooms = {"r0", "r1", "r2"};
  std::vector<std::vector<std::pair<std::string, std::string>>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string& room = rooms[static_cast<std::size_t>(i + t) % rooms.size()];
        got[static_cast<std::size_t>(t)].emplace_back(room, hub.broadcast(chat_message(room, "m")));
      }
    });
  }
  for (auto& thread : threads) thread.join();
  std::map<std::string, std::set<std::uint64_t>> seqs;
  std::map<std::string, std::set<std::string>> epochs;
  std::size_t total = 0;
  for (const auto& per_thread : got) {
    for (const auto& [room, id] : per_thread) {
      const auto parsed = parse_room_id(id);
      ASSERT_TRUE(parsed) << id;
      EXPECT_TRUE(seqs[room].insert(parsed->seq).second) << "duplicate id " << id;
      epochs[room].insert(parsed->epoch);
      ++total;
    }
  }
  EXPECT_EQ(total, std::size_t{kThreads} * kPerThread);
  for (const auto& [room, set] : seqs) {
    EXPECT_EQ(epochs[room].size(), 1U) << room;
    EXPECT_EQ(*set.begin(), 1U) << room;
    EXPECT_EQ(*set.rbegin(), set.size()) << room << ": gaps in the sequence";
  }
  hub.stop();
  hub.wait();
}

// ---- Lifecycle
// ---------------------------------------------------------------------------------------

TEST(HubLifecycle, DestroyedWithoutStart) {
  Hub hub(HubOptions{3, 10, "idle"});
  EXPECT_EQ(hub.thread_count(), 3U);
  EXPECT_EQ(hub.pod_id(), "idle");
}

TEST(HubLifecycle, StartAndStopAreIdempotent) {
  Hub hub(HubOptions{2, 10, ""});
  EXPECT_FALSE(hub.pod_id().empty());  // default: host name + pid
  hub.stop();                          // before start: harmless
  hub.start();
  hub.start();
  hub.stop();
  hub.stop();
  hub.wait();
  hub.wait();
}

TEST(HubLifecycle, RunBlocksUntilStopFromAnotherThread) {
  Hub hub(HubOptions{2, 10, "run"});
  auto running = std::async(std::launch::async, [&] { hub.run(); });
  EXPECT_EQ(running.wait_for(50ms), std::future_status::timeout);
  hub.stop();
  EXPECT_EQ(running.wait_for(kTimeout), std::future_status::ready);
}

TEST(HubLifecycle, HandlerShutdownClosesEverySocketWith1001) {
  std::atomic<int> connects{0};
  std::atomic<int> disconnects{0};
  HandlerConfig config = fast_config();
  config.on_connect = [&](Connection&) { connects.fetch_add(1); };
  config.on_disconnect = [&](Connection&) { disconnects.fetch_add(1); };
  Pod pod(config);
  std::vector<std::unique_ptr<WsClient>> clients;
  for (int i = 0; i < 6; ++i) {
    clients.push_back(connect_welcomed(pod.port, i % 2 == 0 ? "/ws/shut" : "/ws"));
    ASSERT_TRUE(clients.back());
  }
  ASSERT_TRUE(eventually([&] { return pod.hub.connection_count() == 6; }));
  EXPECT_EQ(pod.hub.room_count(), 1U);
  EXPECT_EQ(connects.load(), 6);

  const auto port = pod.port;
  auto shutdown = std::async(std::launch::async, [&] { pod.handler->shutdown(5s); });
  for (auto& client : clients) {
    const auto code = client->wait_close();
    ASSERT_TRUE(code);
    EXPECT_EQ(*code, 1001);
    client->send_close(1001);  // complete the closing handshake
  }
  EXPECT_EQ(shutdown.wait_for(kTimeout), std::future_status::ready);
  EXPECT_EQ(pod.hub.connection_count(), 0U);
  EXPECT_EQ(pod.hub.room_count(), 0U);
  EXPECT_TRUE(pod.hub.rooms().empty());
  EXPECT_EQ(disconnects.load(), 6);
  EXPECT_TRUE(WsClient::connect(port, "/ws") == nullptr) << "still accepting after shutdown";
}

// The natural order in main(): shutdown, stop the hub, then leave scope. The Handler's destructor
// then finds the loops stopped; it must not wait out its deadline for them.
TEST(HubLifecycle, HandlerDestroyedAfterHubStopReturnsPromptly) {
  Hub hub(HubOptions{2, 10, "order"});
  hub.start();
  auto handler = std::make_unique<Handler>(hub, fast_config());
  ASSERT_FALSE(handler->listen("127.0.0.1", 0));
  handler->shutdown();
  hub.stop();
  hub.wait();
  const auto start = SteadyClock::now();
  handler.reset();
  const auto took =
      std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - start);
  EXPECT_LT(took, 500ms) << "~Handler() took " << took.count() << " ms";
}

// ---- Concurrent broadcasts
// ---------------------------------------------------------------------------

// What one client saw of one room.
struct RoomLog {
  std::string epoch;
  std::vector<std::uint64_t> seqs;
  std::vector<std::string> chat_ids;
};

TEST(HubBroadcast, EveryMemberGetsEveryMessageOnceInIdOrder) {
  Pod pod;
  const std::vector<std::string> rooms = {"alpha", "beta"};
  constexpr std::size_t kPerRoom = 6;  // clients opened on each room
  constexpr std::size_t kInBoth = 2;   // of those on alpha, this many also join beta
  constexpr int kPublishers = 4;
  constexpr int kPerPublisher = 250;

  struct Member {
    std::unique_ptr<WsClient> client;
    std::vector<std::string> rooms;
  };
  std::vector<Member> members;
  for (const auto& room : rooms) {
    for (std::size_t i = 0; i < kPerRoom; ++i) {
      Member member{connect_welcomed(pod.port, "/ws/" + room), {room}};
      ASSERT_TRUE(member.client);
      members.push_back(std::move(member));
    }
  }
  for (std::size_t i = 0; i < kInBoth; ++i) {
    ASSERT_TRUE(members[i].client->send_text(R"({"type":"join","room":"beta"})"));
    members[i].rooms.emplace_back("beta");
  }
  ASSERT_TRUE(eventually([&] {
    return pod.members("alpha") == kPerRoom && pod.members("beta") == kPerRoom + kInBoth;
  }));
  EXPECT_EQ(pod.hub.room_count(), 2U);
  EXPECT_EQ(pod.hub.connection_count(), kPerRoom * 2);

  // Every member reads in its own thread while the publishers run.
  std::mutex expected_mutex;
  std::unordered_map<std::string, std::pair<std::string, std::string>>
      expected;  // id -> room, data
  std::map<std::string, std::size_t> expected_per_room;
  for (const auto& room : rooms) expected_per_room[room] = 0;
  for (int t = 0; t < kPublishers; ++t) {
    for (int i = 0; i < kPerPublisher; ++i)
      ++expected_per_room[rooms[static_cast<std::size_t>(i + t) % 2]];
  }
  std::vector<std::map<std::string, RoomLog>> logs(members.size());
  std::vector<std::thread> readers;
  for (std::size_t m = 0; m < members.size(); ++m) {
    readers.emplace_back([&, m] {
      auto& log = logs[m];
      std::size_t wanted = 0;
      for (const auto& room : members[m].rooms) wanted += expected_per_room.at(room);
      std::size_t chats = 0;
      while (chats < wanted) {
        auto msg = members[m].client->next();
        if (!msg) return;  // reported below by the counts
        if (msg->room.empty()) continue;
        const auto id = parse_room_id(msg->id);
        if (!id) {
          // Only room history gets "<epoch>-<seq>" ids (presence, for one, is live state).
          EXPECT_NE(msg->type, MessageType::chat) << "chat with a non-room id " << msg->id;
          continue;
        }
        RoomLog& room_log = log[msg->room];
        if (room_log.epoch.empty()) room_log.epoch = id->epoch;
        EXPECT_EQ(id->epoch, room_log.epoch) << msg->id;
        room_log.seqs.push_back(id->seq);
        if (msg->type == MessageType::chat) {
          room_log.chat_ids.push_back(msg->id);
          ++chats;
        }
      }
    });
  }

  std::vector<std::thread> publishers;
  for (int t = 0; t < kPublishers; ++t) {
    publishers.emplace_back([&, t] {
      for (int i = 0; i < kPerPublisher; ++i) {
        const std::string& room = rooms[static_cast<std::size_t>(i + t) % 2];
        Message msg = chat_message(room, "p" + std::to_string(t) + "-" + std::to_string(i));
        const std::string data = msg.data;
        // The test's own bookkeeping is locked after broadcast() returns: publishers are not
        // serialised around the hub.
        const std::string id = pod.hub.broadcast(std::move(msg));
        std::lock_guard lock(expected_mutex);
        EXPECT_TRUE(expected.emplace(id, std::make_pair(room, data)).second)
            << "duplicate id " << id;
      }
    });
  }
  for (auto& publisher : publishers) publisher.join();
  for (auto& reader : readers) reader.join();

  ASSERT_EQ(expected.size(), std::size_t{kPublishers} * kPerPublisher);
  for (std::size_t m = 0; m < members.size(); ++m) {
    for (const auto& room : members[m].rooms) {
      const RoomLog& log = logs[m][room];
      SCOPED_TRACE("member " + std::to_string(m) + " room " + room);
      // Exactly the room's messages, each once.
      std::set<std::string> unique(log.chat_ids.begin(), log.chat_ids.end());
      EXPECT_EQ(unique.size(), log.chat_ids.size()) << "a message arrived twice";
      EXPECT_EQ(unique.size(), expected_per_room[room]);
      for (const auto& id : unique) {
        auto it = expected.find(id);
        ASSERT_NE(it, expected.end()) << "unknown id " << id;
        EXPECT_EQ(it->second.first, room);
      }
      // In strictly increasing id order, and with no gap once the member has joined.
      for (std::size_t i = 1; i < log.seqs.size(); ++i) {
        ASSERT_EQ(log.seqs[i], log.seqs[i - 1] + 1)
            << "ids out of order or missing at position " << i;
      }
    }
  }
}

TEST(HubBroadcast, SendToUserAndGlobalBroadcastFromManyThreads) {
  HandlerConfig config = fast_config();
  config.jwt.hs256_secret = std::string(kJwtSecret);
  Pod pod(config);
  const std::string token = make_token("carol");
  std::vector<std::unique_ptr<WsClient>> carol;
  for (int i = 0; i < 3; ++i) {
    std::string user;
    carol.push_back(connect_welcomed(pod.port, "/ws?token=" + token, &user));
    ASSERT_TRUE(carol.back());
    EXPECT_EQ(user, "carol");
  }
  auto other = connect_welcomed(pod.port, "/ws");
  ASSERT_TRUE(other);
  ASSERT_TRUE(eventually([&] { return pod.hub.connection_count() == 4; }));

  constexpr int kThreads = 4;
  constexpr int kPerThread = 100;
  std::vector<std::thread> senders;
  for (int t = 0; t < kThreads; ++t) {
    senders.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Message note = system_message("note", R"("n":)" + std::to_string(t * kPerThread + i));
        note.type = MessageType::notification;
        pod.hub.send_to_user("carol", std::move(note));
        pod.hub.broadcast(system_message("tick"));
      }
    });
  }
  for (auto& sender : senders) sender.join();
  pod.hub.broadcast(system_message("end"));  // after every other delivery was queued

  constexpr std::size_t kTotal = std::size_t{kThreads} * kPerThread;
  auto drain = [&](WsClient& client, std::size_t* notes, std::size_t* ticks) {
    std::set<std::string> ids;
    for (;;) {
      auto msg = client.next();
      if (!msg) return false;
      EXPECT_TRUE(ids.insert(msg->id).second) << "duplicate " << msg->id;
      if (msg->data.find(R"("event":"end")") != std::string::npos) return true;
      if (msg->type == MessageType::notification) ++*notes;
      if (msg->data.find(R"("event":"tick")") != std::string::npos) ++*ticks;
    }
  };
  for (auto& client : carol) {
    std::size_t notes = 0;
    std::size_t ticks = 0;
    ASSERT_TRUE(drain(*client, &notes, &ticks));
    EXPECT_EQ(notes, kTotal);
    EXPECT_EQ(ticks, kTotal);
  }
  std::size_t notes = 0;
  std::size_t ticks = 0;
  ASSERT_TRUE(drain(*other, &notes, &ticks));
  EXPECT_EQ(notes, 0U) << "another user's notifications reached this socket";
  EXPECT_EQ(ticks, kTotal);
}

// ---- Join/leave churn
// --------------------------------------------------------------------------------

TEST(HubChurn, JoinLeaveChurnDuringBroadcastsLeavesNothingBehind) {
  std::atomic<int> connects{0};
  std::atomic<int> disconnects{0};
  HandlerConfig config = fast_config();
  config.on_connect = [&](Connection&) { connects.fetch_add(1); };
  config.on_disconnect = [&](Connection&) { disconnects.fetch_add(1); };
  Pod pod(config);
  const std::vector<std::string> rooms = {"churn-0", "churn-1", "churn-2"};

  std::atomic<bool> stop{false};
  std::vector<std::thread> publishers;
  for (int t = 0; t < 2; ++t) {
    publishers.emplace_back([&, t] {
      for (int i = 0; !stop.load(); ++i) {
        pod.hub.broadcast(chat_message(rooms[static_cast<std::size_t>(i + t) % rooms.size()], "x"));
        if (i % 16 == 0) std::this_thread::sleep_for(200us);  // a steady stream, not a flood
      }
    });
  }

  constexpr int kWorkers = 6;
  constexpr int kRounds = 25;
  std::atomic<int> opened{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&, w] {
      for (int r = 0; r < kRounds; ++r) {
        const std::string& first = rooms[static_cast<std::size_t>(w + r) % rooms.size()];
        const std::string& second = rooms[static_cast<std::size_t>(w + r + 1) % rooms.size()];
        auto client = connect_welcomed(pod.port, "/ws/" + first);
        if (!client) return;
        opened.fetch_add(1);
        client->send_text(R"({"type":"join","room":")" + second + R"("})");
        client->send_text(R"({"type":"chat","room":")" + second + R"(","data":{"text":"hi"}})");
        client->send_text(R"({"type":"leave","room":")" + first + R"("})");
        client->send_text(R"({"type":"presence","data":{"status":"away"}})");
        switch (r % 3) {
          case 0: {  // a clean closing handshake
            client->send_close(1000);
            const auto code = client->wait_close();
            EXPECT_TRUE(code && *code == 1000) << "no close echo";
            break;
          }
          case 1:  // gone without a close frame
            client->abort();
            break;
          default: {  // reads a little first, then leaves abruptly
            auto msg =
                client->next_matching([&](const Message& m) { return m.room == second; }, 2s);
            EXPECT_TRUE(msg) << "nothing from " << second;
            client->abort();
            break;
          }
        }
      }
    });
  }
  for (auto& worker : workers) worker.join();
  stop = true;
  for (auto& publisher : publishers) publisher.join();

  EXPECT_EQ(opened.load(), kWorkers * kRounds);
  EXPECT_TRUE(eventually([&] { return pod.hub.connection_count() == 0; }))
      << pod.hub.connection_count() << " connections left";
  EXPECT_TRUE(eventually([&] { return pod.hub.room_count() == 0; }))
      << pod.hub.room_count() << " rooms left";
  EXPECT_TRUE(pod.hub.rooms().empty());
  for (const auto& room : rooms) EXPECT_TRUE(pod.hub.presence(room).empty()) << room;
  EXPECT_TRUE(eventually([&] { return disconnects.load() == connects.load(); }));
  EXPECT_EQ(connects.load(), kWorkers * kRounds);
  EXPECT_EQ(pod.hub.metrics().connections.load(), 0);
  EXPECT_EQ(pod.hub.metrics().rooms.load(), 0);
}

// ---- Presence
// ----------------------------------------------------------------------------------------

TEST(HubPresence, TracksUsersAcrossTheirSockets) {
  HandlerConfig config = fast_config();
  config.jwt.hs256_secret = std::string(kJwtSecret);
  Pod pod(config);
  const std::string alice_token = make_token("alice");
  auto bob = connect_welcomed(pod.port, "/ws/lobby?token=" + make_token("bob"));
  ASSERT_TRUE(bob);
  auto alice1 = connect_welcomed(pod.port, "/ws/lobby?token=" + alice_token);
  auto alice2 = connect_welcomed(pod.port, "/ws/lobby?token=" + alice_token);
  ASSERT_TRUE(alice1 && alice2);
  ASSERT_TRUE(eventually([&] { return pod.members("lobby") == 3; }));

  auto presence_of = [&](const std::string& user) -> std::optional<PresenceStatus> {
    for (const auto& entry : pod.hub.presence("lobby")) {
      if (entry.user_id == user) return entry.status;
    }
    return std::nullopt;
  };
  auto is_presence = [](std::string_view user, std::string_view status) {
    return [user = std::string(user), status = std::string(status)](const Message& m) {
      return m.type == MessageType::presence && m.room == "lobby" &&
             m.data.find(R"("user_id":")" + user + "\"") != std::string::npos &&
             m.data.find(R"("status":")" + status + "\"") != std::string::npos;
    };
  };
  {
    const auto entries = pod.hub.presence("lobby");
    ASSERT_EQ(entries.size(), 2U);  // one entry per user, however many sockets
    EXPECT_EQ(entries[0].user_id, "alice");
    EXPECT_EQ(entries[1].user_id, "bob");
    EXPECT_EQ(entries[0].status, PresenceStatus::online);
    EXPECT_EQ(entries[1].status, PresenceStatus::online);
  }
  // Alice's second socket did not announce her a second time: the next alice presence bob sees is
  // the status change below.
  ASSERT_TRUE(bob->next_matching(is_presence("alice", "online")));

  ASSERT_TRUE(alice1->send_text(R"({"type":"presence","data":{"status":"away"}})"));
  auto away = bob->next_matching([](const Message& m) { return m.type == MessageType::presence; });
  ASSERT_TRUE(away);
  EXPECT_TRUE(is_presence("alice", "away")(*away)) << away->data;
  EXPECT_EQ(presence_of("alice"), PresenceStatus::away);
  EXPECT_TRUE(pod.hub.presence("no-such-room").empty());

  // One of two sockets gone: alice is still there.
  alice1->send_close(1000);
  ASSERT_TRUE(alice1->wait_close());
  ASSERT_TRUE(eventually([&] { return pod.members("lobby") == 2; }));
  EXPECT_TRUE(presence_of("alice"));
  // The last one gone: alice is offline, and bob is told.
  alice2->abort();
  ASSERT_TRUE(eventually([&] { return !presence_of("alice"); }));
  auto offline =
      bob->next_matching([](const Message& m) { return m.type == MessageType::presence; });
  ASSERT_TRUE(offline);
  EXPECT_TRUE(is_presence("alice", "offline")(*offline)) << offline->data;
  ASSERT_EQ(pod.hub.presence("lobby").size(), 1U);
  EXPECT_EQ(pod.hub.presence("lobby")[0].user_id, "bob");
  EXPECT_EQ(pod.members("lobby"), 1U);
}

// ---- Metrics
// -----------------------------------------------------------------------------------------

TEST(HubMetrics, MessagesSentEqualsDeliveries) {
  Pod pod;
  Metrics& metrics = pod.hub.metrics();
  EXPECT_EQ(metrics.messages_sent.load(), 0U);
  std::vector<std::unique_ptr<WsClient>> clients;
  for (int i = 0; i < 5; ++i) {
    clients.push_back(WsClient::connect(pod.port, "/ws/metrics"));
    ASSERT_TRUE(clients.back());
  }
  ASSERT_TRUE(eventually([&] { return pod.members("metrics") == 5; }));
  EXPECT_EQ(metrics.connections.load(), 5);
  EXPECT_EQ(metrics.rooms.load(), 1);
  EXPECT_EQ(metrics.connections_accepted.load(), 5U);

  constexpr int kMessages = 50;
  for (int i = 0; i < kMessages; ++i) pod.hub.broadcast(chat_message("metrics", "m"));
  ASSERT_TRUE(clients[0]->send_text(R"({"type":"ping"})"));
  ASSERT_TRUE(clients[0]->send_text(R"({"type":"chat","data":{"text":"from a client"}})"));
  ASSERT_TRUE(clients[1]->send_text("not json"));

  // Each reads until it has the client chat (after the hub's 50), and clients[0] its pong and
  // clients[1] its error as well.
  for (std::size_t i = 0; i < clients.size(); ++i) {
    bool chat = false;
    bool answer = i > 1;
    ASSERT_TRUE(clients[i]->next_matching([&](const Message& m) {
      chat = chat ||
             (m.type == MessageType::chat && m.data.find("from a client") != std::string::npos);
      answer = answer || (i == 0 && m.type == MessageType::pong) ||
               (i == 1 && m.type == MessageType::error);
      return chat && answer;
    })) << "client "
        << i;
  }

  std::size_t delivered = 0;
  for (const auto& client : clients) delivered += client->texts_received();
  // Counted from what the clients actually received (welcomes, presence, chat, pong, error): the
  // server must agree.
  EXPECT_TRUE(eventually([&] { return metrics.messages_sent.load() == delivered; }))
      << "messages_sent " << metrics.messages_sent.load() << ", delivered " << delivered;
  EXPECT_EQ(metrics.messages_received.load(), 3U);
  EXPECT_EQ(metrics.dropped[static_cast<std::size_t>(DropReason::invalid)].load(), 1U);
}

// Frames that had to wait for the socket to become writable are written outside the shard's flush
// pass; they must be counted all the same.
TEST(HubMetrics, MessagesSentCountsWritesThatWaitedForTheSocket) {
  Pod pod(fast_config(), 1);
  Metrics& metrics = pod.hub.metrics();
  auto client = WsClient::connect(pod.port, "/ws/slow");
  ASSERT_TRUE(client);
  ASSERT_TRUE(eventually([&] { return pod.members("slow") == 1; }));
  // Far more than the socket buffers hold while the client does not read.
  const std::string text(8 * 1024, 'x');
  constexpr int kMessages = 2000;
  for (int i = 0; i < kMessages; ++i) pod.hub.broadcast(chat_message("slow", text));
  pod.hub.broadcast(system_message("end"));
  ASSERT_TRUE(client->next_matching(
      [](const Message& m) { return m.data.find(R"("event":"end")") != std::string::npos; }, 30s));
  const std::size_t delivered = client->texts_received();
  EXPECT_GE(delivered, std::size_t{kMessages} + 2);
  EXPECT_TRUE(eventually([&] { return metrics.messages_sent.load() == delivered; }, 3s))
      << "messages_sent " << metrics.messages_sent.load() << ", delivered " << delivered;
}

}  // namespace
}  // namespace realtime
