#include "hub/log_sink.hpp"

#include <mutex>
#include <string>
#include <utility>

#include <spdlog/sinks/base_sink.h>

namespace realtime::detail {
namespace {

LogLevel level_of(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug:
      return LogLevel::debug;
    case spdlog::level::info:
      return LogLevel::info;
    case spdlog::level::warn:
      return LogLevel::warning;
    default:
      return LogLevel::error;
  }
}

spdlog::level::level_enum spdlog_level(LogLevel level) {
  switch (level) {
    case LogLevel::debug:
      return spdlog::level::debug;
    case LogLevel::info:
      return spdlog::level::info;
    case LogLevel::warning:
      return spdlog::level::warn;
    case LogLevel::error:
      break;
  }
  return spdlog::level::err;
}

// The base sink's mutex makes the calls one at a time, from whichever thread logs.
class CallbackSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit CallbackSink(LogSink sink) : sink_(std::move(sink)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    sink_(level_of(msg.level), std::string_view(msg.payload.data(), msg.payload.size()));
  }
  void flush_() override {}

 private:
  LogSink sink_;
};

}  // namespace

std::shared_ptr<spdlog::logger> make_sink_logger(LogSink sink, LogLevel level,
                                                 std::string_view pod_id) {
  auto logger = std::make_shared<spdlog::logger>("realtime-" + std::string(pod_id),
                                                 std::make_shared<CallbackSink>(std::move(sink)));
  logger->set_level(spdlog_level(level));
  return logger;
}

}  // namespace realtime::detail
