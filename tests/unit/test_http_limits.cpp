// Connections before their upgrade: those still reading a request are capped (the one that has
// waited longest is closed for a new one, of the address holding the most), an upgrade carries no
// body, and a publish its headers refuse is answered without its body being read. And GET
// /api/rooms, made once for the requests that wait for it; and the HandlerConfig switches that
// turn routes off.
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/api.hpp"
#include "support/hub_test_support.hpp"

namespace realtime {
namespace {

using namespace std::chrono_literals;
using namespace realtime::testing;

// A plain TCP connection to the server, for requests a WebSocket client would never send.
class RawSocket {
 public:
  // From `source` (127.0.0.x: another client address), or any.
  explicit RawSocket(std::uint16_t port, std::uint32_t source = INADDR_ANY,
                     bool small_receive_buffer = false)
      : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    if (small_receive_buffer) shrink_receive_buffer();
    sockaddr_in from{};
    from.sin_family = AF_INET;
    from.sin_addr.s_addr = htonl(source);
    if (source != INADDR_ANY &&
        ::bind(fd_, reinterpret_cast<const sockaddr*>(&from), sizeof from) != 0) {
      return;
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ =
        fd_ >= 0 && ::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawSocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;

  // A receive buffer this small (set before connecting) makes the server's writes stall soon.
  void shrink_receive_buffer() {
    const int bytes = 4096;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  }
  // Whether the server closed the connection (a reset, or its end of the stream), without reading
  // what it sent.
  bool hung_up(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLRDHUP, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
  }
  bool connected() const noexcept { return connected_; }
  bool send(std::string_view bytes) {
    return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  }
  // What arrives within `timeout` until the server closes the connection (or the time is up), and
  // whether it closed.
  std::pair<std::string, bool> read_until_closed(std::chrono::milliseconds timeout) {
    std::string got;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left <= 0ms) return {got, false};
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return {got, false};
      char buffer[4096];
      const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
      if (n <= 0) return {got, true};
      got.append(buffer, static_cast<std::size_t>(n));
    }
  }

 private:
  int fd_;
  bool connected_ = false;
};

TEST(HttpWaiting, TheLongestWaitingSilentConnectionMakesRoomForANewOne) {
  HandlerConfig config = fast_config();
  config.max_http_waiting = 4;  // 2 on each of the 2 threads
  Pod pod(config, 2);
  std::vector<std::unique_ptr<RawSocket>> silent;
  for (int i = 0; i < 8; ++i) {
    silent.push_back(std::make_unique<RawSocket>(pod.port));
    ASSERT_TRUE(silent.back()->connected());
  }
  // Each thread keeps its 2 newest: the 4 oldest are closed, long before the handshake timeout.
  std::size_t closed = 0;
  for (int i = 0; i < 4; ++i) closed += silent[i]->read_until_closed(3s).second ? 1 : 0;
  EXPECT_EQ(closed, 4U);
  for (int i = 4; i < 8; ++i) EXPECT_FALSE(silent[i]->read_until_closed(200ms).second) << i;
  // A client that sends its request is served (and closes one more of the silent ones).
  auto client = connect_welcomed(pod.port, "/ws/room");
  ASSERT_TRUE(client);
}

// One client address holding many silent connections pushes out its own, not the connection of
// another address that has waited longer.
TEST(HttpWaiting, AnAddressHoldingManyPushesOutItsOwnFirst) {
  HandlerConfig config = fast_config();
  config.max_http_waiting = 4;
  Pod pod(config, 1);
  constexpr std::uint32_t kOther = 0x7f000003;  // 127.0.0.3
  constexpr std::uint32_t kFlood = 0x7f000002;  // 127.0.0.2
  RawSocket slow(pod.port, kOther);
  ASSERT_TRUE(slow.connected());
  std::vector<std::unique_ptr<RawSocket>> flood;
  for (int i = 0; i < 8; ++i) {
    flood.push_back(std::make_unique<RawSocket>(pod.port, kFlood));
    ASSERT_TRUE(flood.back()->connected());
  }
  // The flood's 5 oldest are closed (4 places: the slow one and the flood's 3 newest).
  std::size_t closed = 0;
  for (int i = 0; i < 5; ++i) closed += flood[i]->read_until_closed(3s).second ? 1 : 0;
  EXPECT_EQ(closed, 5U);
  EXPECT_FALSE(slow.read_until_closed(200ms).second);
  // The slow one sends its request at last, and is served.
  ASSERT_TRUE(slow.send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"));
  const auto [answer, done] = slow.read_until_closed(3s);
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 200")) << answer;
}

// A client that pipelines requests and reads none of the answers holds its connection in the
// response's write: such connections count against the same cap.
TEST(HttpWaiting, ConnectionsNotReadingTheirResponsesAreCappedToo) {
  HandlerConfig config = fast_config();
  config.max_http_waiting = 2;
  Pod pod(config, 1);
  std::string requests;
  for (int i = 0; i < 200; ++i) {
    requests += "GET /realtime-client.js HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  }
  std::vector<std::unique_ptr<RawSocket>> stalled;
  for (int i = 0; i < 4; ++i) {
    stalled.push_back(std::make_unique<RawSocket>(pod.port, INADDR_ANY, true));
    ASSERT_TRUE(stalled.back()->connected());
    ASSERT_TRUE(stalled.back()->send(requests));
  }
  // 200 answers of the client file (~10 MB) stall each write: 2 of the 4 are closed for the
  // others, long before the write deadline, and 2 kept.
  std::this_thread::sleep_for(2s);
  std::size_t closed = 0;
  for (const auto& socket : stalled) closed += socket->hung_up(0ms) ? 1 : 0;
  EXPECT_EQ(closed, 2U);
}

TEST(HttpBodies, AnUpgradeWithABodyIsRefused) {
  Pod pod;
  RawSocket raw(pod.port);
  ASSERT_TRUE(raw.connected());
  ASSERT_TRUE(raw.send(
      "GET /ws/room HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
      "Content-Length: 60000\r\n\r\n"));
  const auto [answer, closed] = raw.read_until_closed(3s);
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 400")) << answer;
  EXPECT_TRUE(closed);
}

// With --api-key, a publish without it is refused from its headers: its body (announced, never
// sent here) is not waited for, nor buffered.
TEST(HttpBodies, APublishRefusedByItsHeadersIsAnsweredWithoutItsBody) {
  HandlerConfig config = fast_config();
  config.api_key = "the-key";
  Pod pod(config, 2);
  for (const std::string& headers :
       {std::string("Content-Length: 60000\r\n"),
        std::string("Authorization: Bearer wrong\r\nContent-Length: 60000\r\n"),
        std::string("Origin: http://elsewhere.example\r\nAuthorization: Bearer the-key\r\n"
                    "Content-Length: 60000\r\n")}) {
    RawSocket raw(pod.port);
    ASSERT_TRUE(raw.connected());
    ASSERT_TRUE(raw.send("POST /api/publish HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + "\r\n"));
    const auto [answer, closed] = raw.read_until_closed(3s);
    const bool refused = answer.starts_with("HTTP/1.1 401") || answer.starts_with("HTTP/1.1 403");
    EXPECT_TRUE(refused) << headers << answer;
    EXPECT_TRUE(closed) << headers;
  }
  // HEAD gets the refusal's headers alone.
  {
    RawSocket head(pod.port);
    ASSERT_TRUE(
        head.send("HEAD /api/publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\n"));
    const auto [answer, closed] = head.read_until_closed(3s);
    EXPECT_TRUE(answer.starts_with("HTTP/1.1 405")) << answer;
    EXPECT_TRUE(answer.ends_with("\r\n\r\n")) << answer;
  }
  // With the key and a whole body: taken, also after an Expect: 100-continue, whose client is told
  // to go on before it sends the body.
  for (const bool expect : {false, true}) {
    RawSocket raw(pod.port);
    const std::string body = R"({"room":"r","text":"hi"})";
    ASSERT_TRUE(
        raw.send("POST /api/publish HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                 "Authorization: Bearer the-key\r\n" +
                 std::string(expect ? "Expect: 100-continue\r\n" : "") +
                 "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n"));
    if (expect) {
      const auto [interim, closed] = raw.read_until_closed(500ms);
      EXPECT_EQ(interim, "HTTP/1.1 100 Continue\r\n\r\n");
      EXPECT_FALSE(closed);
    }
    ASSERT_TRUE(raw.send(body));
    const auto [answer, closed] = raw.read_until_closed(3s);
    EXPECT_TRUE(answer.starts_with("HTTP/1.1 202")) << expect << answer;
  }
}

// The answer to one request on its own connection (closed by the server after it), or what came
// within 3 s.
std::string answer_to(std::uint16_t port, const std::string& request) {
  RawSocket raw(port);
  if (!raw.connected() || !raw.send(request)) return "not sent";
  return raw.read_until_closed(3s).first;
}

std::string get(std::uint16_t port, std::string_view path) {
  return answer_to(port, "GET " + std::string(path) +
                             " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
}

std::string post_publish(std::uint16_t port) {
  const std::string body = R"({"room":"r","text":"hi"})";
  return answer_to(port,
                   "POST /api/publish HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                   "Content-Length: " +
                       std::to_string(body.size()) + "\r\n\r\n" + body);
}

bool is_not_found(const std::string& answer) {
  return answer.starts_with("HTTP/1.1 404") && answer.ends_with(R"({"error":"not found"})");
}

// Each switch off: its routes answer as an unknown path does, every other route is still served,
// and the WebSocket routes, /healthz and /readyz always are.
TEST(HttpRoutes, EachSwitchTurnsOffItsRoutesAlone) {
  enum Group { kApi, kMetrics, kChatPage, kGroups };
  for (int off = kApi; off < kGroups; ++off) {
    SCOPED_TRACE(off);
    HandlerConfig config = fast_config();
    config.serve_api = off != kApi;
    config.serve_metrics = off != kMetrics;
    config.serve_chat_page = off != kChatPage;
    Pod pod(config, 2);
    const auto expect = [&](Group group, const std::string& answer, std::string_view ok) {
      if (group == off) {
        EXPECT_TRUE(is_not_found(answer)) << answer;
      } else {
        EXPECT_TRUE(answer.starts_with(ok)) << answer;
      }
    };
    expect(kApi, post_publish(pod.port), "HTTP/1.1 202");
    expect(kApi, get(pod.port, "/api/rooms"), "HTTP/1.1 200");
    expect(kApi, get(pod.port, "/api/rooms/r/presence"), "HTTP/1.1 200");
    expect(kMetrics, get(pod.port, "/metrics"), "HTTP/1.1 200");
    for (const std::string_view page : {"/", "/index.html", "/realtime-client.js"}) {
      expect(kChatPage, get(pod.port, page), "HTTP/1.1 200");
    }
    EXPECT_TRUE(get(pod.port, "/healthz").starts_with("HTTP/1.1 200"));
    EXPECT_TRUE(get(pod.port, "/readyz").starts_with("HTTP/1.1 200"));
    EXPECT_TRUE(is_not_found(get(pod.port, "/nowhere")));
    EXPECT_TRUE(connect_welcomed(pod.port, "/ws/room"));
    EXPECT_TRUE(connect_welcomed(pod.port, "/ws"));
  }
}

// With the API off, a publish is answered from its headers: the rest of its large body (within
// --max-message-bytes, so that only its route refuses it) is never waited for, nor buffered.
TEST(HttpRoutes, APublishWithTheApiOffIsAnsweredWithoutItsBody) {
  HandlerConfig config = fast_config();
  config.serve_api = false;
  Pod pod(config, 2);
  RawSocket raw(pod.port);
  ASSERT_TRUE(raw.connected());
  ASSERT_TRUE(
      raw.send("POST /api/publish HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 60000\r\n\r\n"
               R"({"room":"r","text":")"));
  const auto [answer, closed] = raw.read_until_closed(3s);
  EXPECT_TRUE(is_not_found(answer)) << answer;
  EXPECT_TRUE(closed);
}

// A broadcaster whose room and presence lists wait until the test answers them.
class HeldRooms final : public LocalForwarding {
 public:
  using LocalForwarding::LocalForwarding;
  void query_rooms(std::function<void(std::vector<RoomCount>)> done) override {
    asked.push_back(std::move(done));
  }
  void query_presence(const std::string& room,
                      std::function<void(std::vector<PresenceEntry>)> done) override {
    presence_asked.emplace_back(room, std::move(done));
  }
  std::vector<std::function<void(std::vector<RoomCount>)>> asked;
  std::vector<std::pair<std::string, std::function<void(std::vector<PresenceEntry>)>>>
      presence_asked;
};

std::vector<RoomCount> rooms_of(std::size_t n) {
  std::vector<RoomCount> rooms;
  for (std::size_t i = 0; i < n; ++i) rooms.push_back({"room-" + std::to_string(i), 1});
  return rooms;
}

std::vector<PresenceEntry> users_of(std::size_t n) {
  std::vector<PresenceEntry> users;
  for (std::size_t i = 0; i < n; ++i) {
    users.push_back({"user-" + std::to_string(i), PresenceStatus::online});
  }
  return users;
}

// GET /api/rooms: the requests that come while a list is being made share it (one query, one
// string however many clients are sent it), and a large list serves the next second's requests.
TEST(SharedAnswers, OneQueryAndOneBodyForEveryWaitingRequestAndALargeOneReused) {
  Hub hub(HubOptions{1, 100, "rooms-test"});
  HeldRooms rooms(hub);
  detail::SharedAnswers answer;
  std::vector<std::shared_ptr<const std::string>> bodies;
  const auto keep = [&](std::shared_ptr<const std::string> body) {
    bodies.push_back(std::move(body));
  };
  for (int i = 0; i < 100; ++i) answer.rooms(rooms, nullptr, keep);
  ASSERT_EQ(rooms.asked.size(), 1U);
  rooms.asked[0](rooms_of(5000));  // ~130 KB
  ASSERT_EQ(bodies.size(), 100U);
  for (const auto& body : bodies) EXPECT_EQ(body.get(), bodies[0].get());
  EXPECT_GE(bodies[0]->size(), detail::SharedAnswers::kRoomsReusedFrom);
  answer.rooms(rooms, nullptr, keep);  // within the second: the same answer, no query
  EXPECT_EQ(rooms.asked.size(), 1U);
  EXPECT_EQ(bodies.back().get(), bodies[0].get());

  // A small list is made again for the next request.
  detail::SharedAnswers small;
  small.rooms(rooms, nullptr, keep);
  ASSERT_EQ(rooms.asked.size(), 2U);
  rooms.asked[1](rooms_of(3));
  small.rooms(rooms, nullptr, keep);
  EXPECT_EQ(rooms.asked.size(), 3U);
}

// A broadcaster that never answers a query: at the Handler's shutdown its waiting requests are let
// go (a null body, which the API answers 503), and so are later ones, at once. Before, they were
// held (with the HTTP sessions, and through them the Handler) until asked again 5 s later.
TEST(SharedAnswers, AbandonLetsGoOfWhatWaitsForAQueryThatNeverCame) {
  Hub hub(HubOptions{1, 100, "abandon-test"});
  HeldRooms held(hub);
  detail::SharedAnswers answers;
  int nulls = 0;
  const auto keep = [&](const std::shared_ptr<const std::string>& body) {
    if (!body) ++nulls;
  };
  answers.presence(held, "room", nullptr, keep);
  answers.presence(held, "room", nullptr, keep);
  answers.rooms(held, nullptr, keep);
  ASSERT_EQ(answers.held(), 2U);
  answers.abandon();
  EXPECT_EQ(nulls, 3);
  EXPECT_EQ(answers.held(), 0U);
  answers.rooms(held, nullptr, keep);
  EXPECT_EQ(nulls, 4);
  EXPECT_EQ(held.asked.size(), 1U) << "not asked again";
  held.asked[0](rooms_of(3));  // a late answer finds nobody waiting
  EXPECT_EQ(nulls, 4);
}

// GET /api/rooms/{room}/presence: one query per room however many requests wait, a large room's
// list reused for the next second, and whatever rooms are asked for, only queries in flight and
// fresh large answers held.
TEST(SharedAnswers, PresenceSharedPerRoomAndOnlyFreshLargeAnswersHeld) {
  Hub hub(HubOptions{1, 100, "presence-test"});
  HeldRooms held(hub);
  detail::SharedAnswers answers;
  std::vector<std::shared_ptr<const std::string>> bodies;
  const auto keep = [&](std::shared_ptr<const std::string> body) {
    bodies.push_back(std::move(body));
  };
  for (int i = 0; i < 10; ++i) {
    answers.presence(held, "big", nullptr, keep);
    answers.presence(held, "small", nullptr, keep);
  }
  answers.rooms(held, nullptr, keep);  // its own key
  ASSERT_EQ(held.presence_asked.size(), 2U);
  ASSERT_EQ(held.asked.size(), 1U);
  EXPECT_EQ(answers.held(), 3U);
  held.asked[0](rooms_of(3));
  held.presence_asked[0].second(users_of(1000));  // ~38 KB
  held.presence_asked[1].second(users_of(3));
  ASSERT_EQ(bodies.size(), 21U);
  EXPECT_GE(bodies[1]->size(), detail::SharedAnswers::kPresenceReusedFrom);
  EXPECT_LT(bodies[11]->size(), detail::SharedAnswers::kPresenceReusedFrom);
  EXPECT_EQ(answers.held(), 1U);  // the large answer alone
  answers.presence(held, "big", nullptr, keep);
  EXPECT_EQ(held.presence_asked.size(), 2U);
  EXPECT_EQ(bodies.back().get(), bodies[1].get());
  answers.presence(held, "small", nullptr, keep);
  ASSERT_EQ(held.presence_asked.size(), 3U);
  held.presence_asked[2].second(users_of(3));

  // Rooms asked for once each leave nothing behind once answered.
  for (int i = 0; i < 1000; ++i) {
    answers.presence(held, "room-" + std::to_string(i), nullptr, keep);
    held.presence_asked.back().second({});
  }
  EXPECT_EQ(answers.held(), 1U);
  // Past the fresh second, the large answer goes at the next miss, and is made again when asked.
  std::this_thread::sleep_for(detail::SharedAnswers::kFresh + 50ms);
  answers.presence(held, "other", nullptr, keep);
  EXPECT_EQ(answers.held(), 1U);  // the query for "other"
  answers.presence(held, "big", nullptr, keep);
  EXPECT_EQ(held.presence_asked.back().first, "big");
}

}  // namespace
}  // namespace realtime
