#include "redis/redis_publisher.hpp"

#include <algorithm>
#include <array>

#include <boost/asio/post.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace realtime::detail {
namespace {

RedisConnectionOptions connection_options(const RedisPublisherOptions& o) {
  RedisConnectionOptions c;
  c.url = o.url;
  c.client_name = o.client_name;
  c.connect_timeout = o.connect_timeout;
  c.max_pending = o.max_pending;
  c.max_pending_bytes = o.max_pending_bytes;
  c.restart_check_script = o.restart_check_script;
  return c;
}

// How often the watchdog looks for overdue replies: often enough to act close to the timeout.
std::chrono::milliseconds watchdog_period(std::chrono::milliseconds command_timeout) {
  return std::clamp(command_timeout / 4, std::chrono::milliseconds(10),
                    std::chrono::milliseconds(1000));
}

}  // namespace

RedisPublisher::RedisPublisher(boost::asio::io_context& io, RedisPublisherOptions options,
                               std::shared_ptr<spdlog::logger> log)
    : io_(io),
      options_(std::move(options)),
      log_(log ? std::move(log) : spdlog::default_logger()),
      connection_(io, connection_options(options_), log_),
      backoff_(options_.backoff),
      reconnect_timer_(io),
      watchdog_timer_(io) {
  connection_.set_on_connected([this] { on_connected(); });
  connection_.set_on_disconnected(
      [this](std::error_code ec, const std::string& reason) { on_disconnected(ec, reason); });
}

RedisPublisher::~RedisPublisher() = default;

void RedisPublisher::start() {
  if (started_) return;
  started_ = true;
  connection_.connect();
  schedule_watchdog();
}

void RedisPublisher::stop() {
  started_ = false;
  reconnect_timer_.cancel();
  watchdog_timer_.cancel();
  connection_.close();
}

void RedisPublisher::on_connected() {
  backoff_.reset();
  failures_.reset();
  if (ever_connected_) ++stats_.reconnects;
  ever_connected_ = true;
  log_->info("redis publisher connected to {}", to_redacted_string(options_.url));
  if (on_state_change_) on_state_change_(true, {});
}

void RedisPublisher::on_disconnected(std::error_code ec, const std::string& reason) {
  if (ec != RedisErrc::connection_lost) ++stats_.connect_failures;
  if (const auto more = failures_.next()) {
    // Which connection and which server: a pod has several (one per I/O thread).
    log_->warn("redis publisher {} to {}: {} ({}){}", options_.client_name,
               to_redacted_string(options_.url), reason, ec.message(), *more);
  }
  if (on_state_change_) on_state_change_(false, reason);
  schedule_reconnect();
}

void RedisPublisher::retry_now() {
  if (!started_ || connection_.state() != RedisConnection::State::disconnected) return;
  log_->debug("redis publisher: reconnecting now");
  reconnect_timer_.cancel();
  connection_.connect();
}

void RedisPublisher::schedule_reconnect() {
  if (!started_) return;
  const auto delay = backoff_.next();
  log_->debug("redis publisher: reconnecting in {} ms", delay.count());
  reconnect_timer_.expires_after(delay);
  reconnect_timer_.async_wait(guarded(alive_, [this](const boost::system::error_code& ec) {
    if (ec || !started_ || connection_.state() != RedisConnection::State::disconnected) return;
    connection_.connect();
  }));
}

void RedisPublisher::schedule_watchdog() {
  watchdog_timer_.expires_after(watchdog_period(options_.command_timeout));
  watchdog_timer_.async_wait(guarded(alive_, [this](const boost::system::error_code& ec) {
    if (ec || !started_) return;
    on_watchdog();
    schedule_watchdog();
  }));
}

void RedisPublisher::on_watchdog() {
  if (!connection_.ready() || connection_.oldest_pending_age() <= options_.command_timeout) return;
  ++stats_.command_timeouts;
  const std::string reason = fmt::format("no reply for {} ms: rebuilding the connection",
                                         options_.command_timeout.count());
  log_->warn("redis publisher: {}", reason);
  connection_.close();
  if (on_state_change_) on_state_change_(false, reason);
  schedule_reconnect();
}

void RedisPublisher::publish(std::string_view channel, std::string_view payload,
                             ReplyHandler done) {
  // Shared so that a refused command (which consumes its handler) can still be answered.
  auto shared_done = done ? std::make_shared<ReplyHandler>(std::move(done)) : nullptr;
  const std::array<std::string_view, 3> args{"PUBLISH", channel, payload};
  const std::error_code ec =
      connection_.command(args, guarded(alive_, [this, ch = std::string(channel), shared_done](
                                                    std::error_code e, const RedisReply& reply) {
                            if (e) {
                              count_publish_error(ch, e, reply.str);
                            } else {
                              ++stats_.published;
                            }
                            if (shared_done) (*shared_done)(e, reply);
                          }));
  if (ec) {
    count_publish_error(channel, ec, {});
    // Report the refusal on a later turn, as a queued failure would be.
    if (shared_done) {
      boost::asio::post(io_, [shared_done, ec] { (*shared_done)(ec, RedisReply{}); });
    }
  }
}

void RedisPublisher::count_publish_error(std::string_view channel, std::error_code ec,
                                         std::string_view detail) {
  ++stats_.publish_errors;
  if (on_publish_error_) on_publish_error_(channel, ec);
  const auto now = std::chrono::steady_clock::now();
  if (last_warning_ != std::chrono::steady_clock::time_point{} &&
      now - last_warning_ < options_.warn_interval) {
    ++suppressed_warnings_;
    return;
  }
  log_->warn("redis publish to {} failed: {}{}{} ({} similar suppressed)", channel, ec.message(),
             detail.empty() ? "" : ": ", detail, suppressed_warnings_);
  last_warning_ = now;
  suppressed_warnings_ = 0;
}

std::error_code RedisPublisher::command(std::span<const std::string_view> args, ReplyHandler done) {
  return connection_.command(args, std::move(done));
}

std::error_code RedisPublisher::command(const std::vector<std::string>& args, ReplyHandler done) {
  return connection_.command(args, std::move(done));
}

}  // namespace realtime::detail
