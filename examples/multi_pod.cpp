// Multi-pod setup (production): every pod runs this program against the same Redis, and a message
// sent on any pod reaches the room's members on every pod.
//
// This is the specification's multi-pod Quick Start (a RedisBroadcaster handed to the Handler) and
// its "sending from HTTP handlers" pattern: application code that is not a WebSocket (a REST
// endpoint, a job, a webhook) publishes through the broadcaster, which delivers on this pod at once
// and through Redis on the others. Here that call is shown directly, for an announcement when the
// pod is up.
//
// Usage: example_multi_pod [REDIS_URL] [--port N]
//   REDIS_URL defaults to the REDIS_URL environment variable, then redis://127.0.0.1:6379.
// Prints "listening on 127.0.0.1:PORT", then serves until SIGINT or SIGTERM.
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>

#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include "realtime/broadcaster.hpp"
#include "realtime/handler.hpp"
#include "realtime/hub.hpp"
#include "realtime/message.hpp"
#include "realtime/redis_broadcaster.hpp"

namespace {

// What an HTTP handler such as POST /rooms/{room}/messages would do with the decoded request.
// chat_message() escapes the text into {"text": ...}, so no client input is pasted into JSON.
void post_message(realtime::Broadcaster& broadcaster, std::string_view room,
                  std::string_view text) {
  broadcaster.publish(realtime::chat_message(room, text));
}

struct Options {
  std::string redis_url;
  std::uint16_t port = 0;
};

bool parse_options(int argc, char** argv, Options* options) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--port" && i + 1 < argc) {
      const std::string_view value = argv[++i];
      const auto [end, ec] =
          std::from_chars(value.data(), value.data() + value.size(), options->port);
      if (ec == std::errc{} && end == value.data() + value.size()) continue;
    } else if (!arg.starts_with("-") && options->redis_url.empty()) {
      options->redis_url = arg;
      continue;
    }
    std::fprintf(stderr, "usage: %s [REDIS_URL] [--port N]\n", argv[0]);
    return false;
  }
  if (options->redis_url.empty()) {
    const char* env = std::getenv("REDIS_URL");
    options->redis_url = env != nullptr && *env != '\0' ? env : "redis://127.0.0.1:6379";
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (!parse_options(argc, argv, &options)) return 2;

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // before any thread starts: all inherit it
  signal(SIGPIPE, SIG_IGN);

  // Declared in this order so that they are destroyed handler first, then the broadcaster, then
  // the hub: each must outlive what uses it.
  realtime::Hub hub;
  std::shared_ptr<realtime::RedisBroadcaster> broadcaster;
  try {
    broadcaster = std::make_shared<realtime::RedisBroadcaster>(
        hub, realtime::RedisBroadcasterOptions{options.redis_url});
  } catch (const std::invalid_argument& error) {
    std::fprintf(stderr, "%s: %s\n", argv[0], error.what());
    return 2;
  }
  realtime::HandlerConfig config;
  config.broadcaster = broadcaster;  // chat, presence and the room lists now span every pod
  realtime::Handler handler(hub, config);

  hub.start();
  broadcaster->start();  // connects, and reconnects, by itself
  if (const auto ec = handler.listen("127.0.0.1", options.port)) {
    spdlog::error("cannot listen on 127.0.0.1:{}: {}", options.port, ec.message());
    broadcaster->stop();
    hub.stop();
    hub.wait();
    return 1;
  }
  std::printf("listening on 127.0.0.1:%u\n", static_cast<unsigned>(handler.port()));
  std::fflush(stdout);

  // Redis trouble degrades rather than fails: a publish while Redis is unreachable still reaches
  // this pod's sockets. Give the link a moment so the announcement reaches the other pods too.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  std::string reason;
  while (!broadcaster->ready(&reason) && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!broadcaster->ready(&reason)) spdlog::warn("Redis not ready yet ({}): local only", reason);
  post_message(*broadcaster, "general", "pod " + hub.pod_id() + " is up");
  spdlog::info("announced in general");

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  spdlog::info("{}: closing every socket with 1001", strsignal(signal_number));
  handler.shutdown();
  broadcaster->stop();
  hub.stop();
  hub.wait();
  return 0;
}
