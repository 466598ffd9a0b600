// Single-pod setup (development): one Hub, one Handler, no Redis.
//
// This is the specification's single-pod Quick Start, together with two of its patterns:
//   - Room-based chat: clients connect to ws://HOST:PORT/ws/{room}. The library itself publishes
//     presence (online/offline) to each room when a user's first socket joins it or its last
//     leaves, so the hooks here do what an application adds on top: log, and greet the new socket
//     alone.
//   - Message filtering: on_message drops chat that contains a blocked word and sets `from`.
//
// Usage: example_single_pod [--port N]   (N = 0, the default, picks a free port)
// Prints "listening on 127.0.0.1:PORT", then serves until SIGINT or SIGTERM, when every socket is
// closed with 1001 before the process exits.
#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include "realtime/handler.hpp"
#include "realtime/hub.hpp"
#include "realtime/message.hpp"

namespace {

constexpr std::array<std::string_view, 3> kBlockedWords = {"spam", "scam", "phishing"};

// True when the message's data (raw JSON text) contains a blocked word, in any letter case.
bool contains_blocked_word(std::string_view data) {
  std::string lower(data);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return std::any_of(kBlockedWords.begin(), kBlockedWords.end(),
                     [&](std::string_view word) { return lower.find(word) != std::string::npos; });
}

std::string join_rooms(const std::vector<std::string>& rooms) {
  std::string out;
  for (const auto& room : rooms) {
    if (!out.empty()) out += ',';
    out += room;
  }
  return out.empty() ? "-" : out;
}

// --port N; false (after a message) when the arguments are not understood.
bool parse_port(int argc, char** argv, std::uint16_t* port) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--port" && i + 1 < argc) {
      const std::string_view value = argv[++i];
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), *port);
      if (ec == std::errc{} && end == value.data() + value.size()) continue;
    }
    std::fprintf(stderr, "usage: %s [--port N]\n", argv[0]);
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint16_t port = 0;
  if (!parse_port(argc, argv, &port)) return 2;

  // SIGINT and SIGTERM are taken by sigwait() below. Blocked before any thread starts, so that
  // every thread (the hub's included) inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  realtime::Hub hub;  // one I/O thread per core
  hub.start();

  realtime::HandlerConfig config;  // defaults: no auth, 20 messages/s per socket, 10000 sockets
  // Hooks run on the connection's I/O thread: keep them short and never block.
  config.on_connect = [](realtime::Connection& conn) {
    spdlog::info("connected: {} (user {}) in {}", conn.id(), conn.user_id(),
                 join_rooms(conn.rooms()));
    // To this socket alone. The connection id is URL-safe, so it needs no JSON escaping.
    conn.send(realtime::system_message(
        "motd", R"("text":"Be kind. Messages with blocked words are dropped.","connection_id":")" +
                    conn.id() + "\""));
  };
  config.on_disconnect = [](realtime::Connection& conn) {
    spdlog::info("disconnected: {} (user {})", conn.id(), conn.user_id());
  };
  config.on_message = [](realtime::Connection& conn, realtime::Message& msg) {
    if (contains_blocked_word(msg.data)) {
      spdlog::info("dropped a message from {} in {}", conn.user_id(), msg.room);
      return false;  // suppressed: nobody receives it
    }
    // The server already sets `from` to the user id (never the client's claim); an application
    // could map it to a display name here.
    msg.from = conn.user_id();
    return true;
  };

  realtime::Handler handler(hub, config);
  if (const auto ec = handler.listen("127.0.0.1", port)) {
    spdlog::error("cannot listen on 127.0.0.1:{}: {}", port, ec.message());
    hub.stop();
    hub.wait();
    return 1;
  }
  std::printf("listening on 127.0.0.1:%u\n", static_cast<unsigned>(handler.port()));
  std::fflush(stdout);

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  spdlog::info("{}: closing every socket with 1001", strsignal(signal_number));
  handler.shutdown();  // stops accepting, closes each socket with 1001, waits up to 5 s
  hub.stop();
  hub.wait();
  return 0;
}
