// The embedding application of tests/package/: starts a Hub and a Handler on a free loopback port,
// accepts nothing, and stops. Prints "consumer ok PORT" and exits 0.
#include <cstdio>

#include "realtime/handler.hpp"
#include "realtime/hub.hpp"
#include "realtime/message.hpp"

// Only include/ is on an embedder's include path, not realtime's internal headers (src/).
#if __has_include("hub/hub_core.hpp")
#error "realtime's internal headers (src/) are on an embedder's include path"
#endif

int main() {
  realtime::HubOptions options;
  options.threads = 1;
  realtime::Hub hub(options);
  hub.start();
  realtime::Handler handler(hub, realtime::HandlerConfig{});
  if (const auto ec = handler.listen("127.0.0.1", 0)) {
    std::fprintf(stderr, "consumer: listen failed: %s\n", ec.message().c_str());
    return 1;
  }
  // A Message helper from realtime::protocol, reached through realtime::realtime.
  const realtime::Message msg = realtime::system_message("ping", "");
  hub.broadcast(msg);
  const unsigned port = handler.port();
  handler.shutdown();
  hub.stop();
  hub.wait();
  if (port == 0) return 1;
  std::printf("consumer ok %u\n", port);
  return 0;
}
