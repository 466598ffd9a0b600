// An application's own Broadcaster, behind a guard: an exception from any of its calls is logged
// and taken as a refusal (a publish not published, a history not recovered, an empty answer),
// never let through to an I/O thread, where it would end the process. The server's own
// broadcasters (LocalBroadcaster, RedisBroadcaster) throw nothing and are used as they are.
#pragma once

#include <memory>

#include <spdlog/logger.h>

#include "realtime/broadcaster.hpp"

namespace realtime::detail {

// `inner` itself when it is one of the server's own broadcasters, else a guard around it.
std::shared_ptr<Broadcaster> guarded(std::shared_ptr<Broadcaster> inner,
                                     std::shared_ptr<spdlog::logger> log);

}  // namespace realtime::detail
