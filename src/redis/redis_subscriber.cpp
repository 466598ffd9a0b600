#include "redis/redis_subscriber.hpp"

#include <algorithm>
#include <array>
#include <random>
#include <vector>

#include <boost/asio/post.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "redis/redis_publisher.hpp"

namespace realtime::detail {
namespace {

RedisConnectionOptions connection_options(const RedisSubscriberOptions& o) {
  RedisConnectionOptions c;
  c.url = o.url;
  c.client_name = o.client_name;
  c.connect_timeout = o.connect_timeout;
  return c;
}

std::string random_token() {
  std::random_device rd;
  return fmt::format("{:08x}", rd());
}

}  // namespace

RedisSubscriber::RedisSubscriber(boost::asio::io_context& io, RedisSubscriberOptions options,
                                 RedisPublisher& heartbeat_publisher,
                                 std::shared_ptr<spdlog::logger> log)
    : io_(io),
      options_(std::move(options)),
      publisher_(heartbeat_publisher),
      log_(log ? std::move(log) : spdlog::default_logger()),
      connection_(io, connection_options(options_), log_),
      backoff_(options_.backoff),
      reconnect_timer_(io),
      tick_timer_(io),
      heartbeat_prefix_("hb:" + random_token() + ":") {
  options_.max_channels_per_command = std::max<std::size_t>(options_.max_channels_per_command, 1);
  connection_.set_on_connected([this] { on_connected(); });
  connection_.set_on_disconnected(
      [this](std::error_code, const std::string& reason) { on_disconnected(reason); });
  connection_.set_on_push([this](const RedisPush& push) { on_push(push); });
}

RedisSubscriber::~RedisSubscriber() = default;

void RedisSubscriber::start() {
  if (started_) return;
  started_ = true;
  set_health(false, "connecting");
  connection_.connect();
  schedule_tick();
}

void RedisSubscriber::stop() {
  started_ = false;
  session_ = false;
  reconnect_timer_.cancel();
  tick_timer_.cancel();
  requested_.clear();
  confirmed_.clear();
  connection_.close();
  release_waiters(true);
  set_health(false, "stopped");
}

// --- channels ---------------------------------------------------------------------------------

void RedisSubscriber::add(std::string_view channel) {
  if (channel == options_.control_channel) {
    log_->warn("redis subscriber: {} is the control channel; not added", channel);
    return;
  }
  auto it = refs_.find(channel);
  if (it == refs_.end()) it = refs_.emplace(std::string(channel), 0).first;
  if (++it->second == 1) {
    dirty_.emplace(channel);
    schedule_flush();
  }
}

void RedisSubscriber::remove(std::string_view channel) {
  const auto it = refs_.find(channel);
  if (it == refs_.end()) return;
  if (--it->second == 0) {
    refs_.erase(it);
    dirty_.emplace(channel);
    schedule_flush();
    settle(channel);  // nobody here wants it any more: waiting for it is moot
  }
}

void RedisSubscriber::when_subscribed(std::vector<std::string> channels, Clock::time_point deadline,
                                      std::function<void()> done) {
  check_liveness();  // a subscription that went quiet vouches for nothing
  if (!started_ || down_) {
    done();  // nothing is coming through Redis now; waiting would only delay
    return;
  }
  auto waiter = std::make_shared<Waiter>();
  waiter->deadline = deadline;
  for (std::string& channel : channels) {
    if (confirmed_.contains(channel)) continue;
    ++waiter->missing;
    waiters_[std::move(channel)].push_back(waiter);
  }
  if (waiter->missing == 0) {
    done();
    return;
  }
  waiter->done = std::move(done);
  waiter_deadlines_.push_back(std::move(waiter));
}

namespace {

template <class W>
void run_once(W& waiter) {
  if (!waiter.done) return;
  auto done = std::move(waiter.done);
  waiter.done = nullptr;
  done();
}

}  // namespace

void RedisSubscriber::settle(std::string_view channel) {
  const auto it = waiters_.find(channel);
  if (it == waiters_.end()) return;
  const auto waiting = std::move(it->second);
  waiters_.erase(it);
  for (const auto& waiter : waiting) {
    if (--waiter->missing == 0) run_once(*waiter);
  }
}

void RedisSubscriber::release_waiters(bool all) {
  const auto now = Clock::now();
  bool expired = false;
  while (!waiter_deadlines_.empty()) {
    Waiter& waiter = *waiter_deadlines_.front();
    if (waiter.done && !all && waiter.deadline > now) break;
    if (waiter.done) {
      expired = true;
      run_once(waiter);
    }
    waiter_deadlines_.pop_front();
  }
  if (all) {
    waiters_.clear();
    return;
  }
  if (!expired) return;
  // Channels whose waiters have all run (by deadline) are not watched any more.
  std::erase_if(waiters_, [](const auto& entry) {
    return std::none_of(entry.second.begin(), entry.second.end(),
                        [](const auto& waiter) { return static_cast<bool>(waiter->done); });
  });
}

std::size_t RedisSubscriber::ref_count(std::string_view channel) const {
  const auto it = refs_.find(channel);
  return it == refs_.end() ? 0 : it->second;
}

void RedisSubscriber::schedule_flush() {
  if (flush_posted_) return;
  flush_posted_ = true;
  boost::asio::post(io_, guarded(alive_, [this] { flush(); }));
}

void RedisSubscriber::flush() {
  flush_posted_ = false;
  if (!session_) {
    dirty_.clear();  // the next connection subscribes to everything in refs_
    return;
  }
  std::vector<std::string> subscribe;
  std::vector<std::string> unsubscribe;
  for (const auto& channel : dirty_) {
    const bool wanted = refs_.contains(channel);
    const bool requested = requested_.contains(channel);
    if (wanted && !requested) {
      subscribe.push_back(channel);
      requested_.insert(channel);
    } else if (!wanted && requested) {
      unsubscribe.push_back(channel);
      requested_.erase(channel);
      // No longer vouched for from now: were it wanted again before Redis answers, a wait for it
      // must wait for the new SUBSCRIBE's confirmation, not take this one's.
      confirmed_.erase(channel);
    }
  }
  dirty_.clear();
  send_batched(true, subscribe);
  send_batched(false, unsubscribe);
}

void RedisSubscriber::send_batched(bool subscribe, const std::vector<std::string>& channels) {
  const std::size_t step = options_.max_channels_per_command;
  for (std::size_t i = 0; i < channels.size(); i += step) {
    const std::span<const std::string> chunk(channels.data() + i,
                                             std::min(step, channels.size() - i));
    const std::error_code ec =
        subscribe ? connection_.subscribe(chunk) : connection_.unsubscribe(chunk);
    if (ec) {
      // The connection is going down; the next one subscribes to everything in refs_.
      log_->debug("redis subscriber: {} failed: {}", subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE",
                  ec.message());
      return;
    }
    ++(subscribe ? stats_.subscribe_commands : stats_.unsubscribe_commands);
  }
}

// --- connection -------------------------------------------------------------------------------

void RedisSubscriber::on_connected() {
  failures_.reset();
  if (!started_) return;
  session_ = true;
  down_ = false;
  if (ever_connected_) ++stats_.reconnects;
  ever_connected_ = true;
  requested_.clear();
  confirmed_.clear();
  dirty_.clear();
  heartbeat_outstanding_ = false;
  liveness_base_ = Clock::now();

  std::vector<std::string> all;
  all.reserve(refs_.size() + 1);
  all.push_back(options_.control_channel);
  for (const auto& [channel, count] : refs_) all.push_back(channel);
  requested_.insert(all.begin(), all.end());
  send_batched(true, all);
  log_->info("redis subscriber connected to {}; subscribing {} channel(s)",
             to_redacted_string(options_.url), refs_.size());
  if (on_connected_) on_connected_();
}

void RedisSubscriber::on_disconnected(const std::string& reason) {
  session_ = false;
  down_ = true;
  requested_.clear();
  confirmed_.clear();
  release_waiters(true);
  ++stats_.connect_failures;
  if (const auto more = failures_.next()) {
    log_->warn("redis subscriber {} to {}: {}{}", options_.client_name,
               to_redacted_string(options_.url), reason, *more);
  }
  set_health(false, reason);
  schedule_reconnect();
}

void RedisSubscriber::retry_now() {
  if (!started_ || connection_.state() != RedisConnection::State::disconnected) return;
  log_->debug("redis subscriber: reconnecting now");
  reconnect_timer_.cancel();
  connection_.connect();
}

void RedisSubscriber::schedule_reconnect() {
  if (!started_) return;
  const auto delay = backoff_.next();
  log_->debug("redis subscriber: reconnecting in {} ms", delay.count());
  reconnect_timer_.expires_after(delay);
  reconnect_timer_.async_wait(guarded(alive_, [this](const boost::system::error_code& ec) {
    if (ec || !started_ || connection_.state() != RedisConnection::State::disconnected) return;
    connection_.connect();
  }));
}

void RedisSubscriber::on_push(const RedisPush& push) {
  switch (push.kind) {
    case RedisPush::Kind::message:
      if (push.channel == options_.control_channel) {
        // A heartbeat, or anything else the owner publishes there (its on_message gets that).
        if (push.payload.starts_with(heartbeat_prefix_)) {
          on_heartbeat();
        } else if (on_message_) {
          on_message_(push.channel, push.payload);
        }
        return;
      }
      // A message already in flight when the channel was removed is not wanted any more.
      if (!refs_.contains(push.channel)) return;
      ++stats_.messages;
      if (on_message_) on_message_(push.channel, push.payload);
      return;
    case RedisPush::Kind::subscribed:
      confirmed_.emplace(push.channel);
      if (push.channel == options_.control_channel) send_heartbeat();
      settle(push.channel);
      return;
    case RedisPush::Kind::unsubscribed:
      if (const auto it = confirmed_.find(push.channel); it != confirmed_.end()) {
        confirmed_.erase(it);
      }
      return;
  }
}

// --- heartbeat --------------------------------------------------------------------------------

void RedisSubscriber::schedule_tick() {
  tick_timer_.expires_after(options_.heartbeat_interval);
  tick_timer_.async_wait(guarded(alive_, [this](const boost::system::error_code& ec) {
    if (ec || !started_) return;
    tick();
    schedule_tick();
  }));
}

void RedisSubscriber::send_heartbeat() {
  if (!publisher_.connected()) return;
  const std::string token = heartbeat_prefix_ + std::to_string(++heartbeat_seq_);
  const std::array<std::string_view, 3> args{"PUBLISH", options_.control_channel, token};
  // Through command(), not publish(): heartbeats do not count as application publishes.
  if (!publisher_.command(args, {})) {
    ++stats_.heartbeats_sent;
    heartbeat_outstanding_ = true;
  }
}

void RedisSubscriber::on_heartbeat() {
  ++stats_.heartbeats_received;
  heartbeat_outstanding_ = false;
  liveness_base_ = Clock::now();
  if (!healthy_) {
    backoff_.reset();  // only a connection proven to deliver resets the backoff
    set_health(true, {});
  }
}

void RedisSubscriber::tick() {
  release_waiters(false);
  if (!session_) return;  // connecting or waiting to reconnect: health already says why
  const auto now = Clock::now();
  if (heartbeat_outstanding_) ++stats_.heartbeats_missed;
  heartbeat_outstanding_ = false;
  if (!publisher_.connected()) {
    // Nothing can prove the subscription while the publisher is down; do not blame it.
    liveness_base_ = now;
    set_health(false, "heartbeat publisher is not connected");
    return;
  }
  if (rebuild_if_wedged()) return;
  if (confirmed_.contains(options_.control_channel)) send_heartbeat();
}

void RedisSubscriber::check_liveness() {
  if (session_ && publisher_.connected()) rebuild_if_wedged();
}

bool RedisSubscriber::rebuild_if_wedged() {
  const auto now = Clock::now();
  if (now - liveness_base_ > options_.heartbeat_timeout) {
    ++stats_.wedged;
    const std::string reason = fmt::format(
        "no heartbeat for {} ms: rebuilding the subscriber",
        std::chrono::duration_cast<std::chrono::milliseconds>(now - liveness_base_).count());
    log_->warn("redis subscriber: {}", reason);
    // Not down: Redis may answer the next connection at once. Waiters go on waiting for their
    // channels on it (or their deadline, or a failed attempt).
    session_ = false;
    requested_.clear();
    confirmed_.clear();
    connection_.close();
    set_health(false, reason);
    schedule_reconnect();
    return true;
  }
  return false;
}

void RedisSubscriber::set_health(bool healthy, std::string reason) {
  if (healthy == healthy_ && reason == health_reason_) return;
  healthy_ = healthy;
  health_reason_ = std::move(reason);
  if (on_health_change_) on_health_change_(healthy_, health_reason_);
}

}  // namespace realtime::detail
