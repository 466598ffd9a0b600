// HubOptions::log as an spdlog logger, so that every component logs the same way whether the
// application gave a sink or not.
#pragma once

#include <memory>
#include <string_view>

#include <spdlog/logger.h>

#include "realtime/hub.hpp"

namespace realtime::detail {

// A logger (named "realtime-<pod>", not registered) that hands each line of `level` or above to
// `sink`, one call at a time.
std::shared_ptr<spdlog::logger> make_sink_logger(LogSink sink, LogLevel level,
                                                 std::string_view pod_id);

}  // namespace realtime::detail
