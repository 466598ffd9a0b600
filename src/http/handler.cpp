#include <array>
#include <charconv>
#include <cmath>
#include <future>
#include <mutex>
#include <thread>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "http/guarded_broadcaster.hpp"
#include "http/handler_core.hpp"
#include "http/listener.hpp"
#include "realtime/error.hpp"
#include "session/rate_carry.hpp"

namespace realtime {
namespace detail {
namespace {

namespace asio = boost::asio;

constexpr std::size_t kMinSendQueueBytes = 1024;
constexpr std::chrono::hours kMaxTimeout{24 * 30};

// How often shutdown() checks whether every socket has closed.
constexpr std::chrono::milliseconds kShutdownPoll{20};

std::shared_ptr<spdlog::logger> handler_logger(const HubCore& hub) {
  if (hub.logger()) return hub.logger();  // HubOptions::log
  if (auto logger = spdlog::default_logger()) return logger;
  // No default logger (the application dropped it): one of our own, made once.
  static std::mutex made;
  const std::lock_guard lock(made);
  if (auto logger = spdlog::get("realtime")) return logger;
  return spdlog::stderr_color_mt("realtime");
}

JwtVerifier make_verifier(const JwtConfig& config) {
  if (config.hs256_secret.empty() && config.public_key_pem.empty()) return JwtVerifier{};
  auto created = JwtVerifier::create(config);
  if (auto* error = std::get_if<std::string>(&created)) {
    throw std::invalid_argument("JWT configuration: " + *error);
  }
  return std::get<JwtVerifier>(std::move(created));
}

}  // namespace

HandlerCore::HandlerCore(Hub& hub, HandlerConfig config)
    : hub_(hub),
      config_(std::move(config)),
      broadcaster_(config_.broadcaster ? guarded(config_.broadcaster, handler_logger(hub.core()))
                                       : std::make_shared<LocalBroadcaster>(hub)),
      jwt_(make_verifier(config_.jwt)),
      logger_(handler_logger(hub.core())) {
  if (config_.auth_required && !jwt_.enabled()) {
    throw std::invalid_argument("auth required but no JWT key configured");
  }
  // (Told to every client in its welcome, as JSON numbers: infinity and NaN are none.)
  if (!std::isfinite(config_.rate_limit) || config_.rate_limit <= 0 ||
      !std::isfinite(config_.rate_burst) || config_.rate_burst < 1) {
    throw std::invalid_argument(
        "rate_limit must be a finite number above 0, and rate_burst a finite number from 1");
  }
  if (!std::isfinite(config_.connect_rate) || config_.connect_rate < 0 ||
      !std::isfinite(config_.connect_burst) || config_.connect_burst < 1) {
    throw std::invalid_argument(
        "connect_rate must be a finite number from 0, and connect_burst a finite number from 1");
  }
  // Shortest round-trip forms: 20, 0.5, 1e+06 are all JSON numbers.
  const auto number = [](double value) {
    std::array<char, 32> text{};
    const auto end = std::to_chars(text.data(), text.data() + text.size(), value).ptr;
    return std::string(text.data(), end);
  };
  welcome_limits_ = ",\"rate_limit\":" + number(config_.rate_limit) +
                    ",\"rate_burst\":" + number(config_.rate_burst) +
                    ",\"max_message_bytes\":" + std::to_string(config_.max_message_bytes);
  // Each of these breaks every socket: a 0-byte queue overflows on the welcome, a 0-byte message
  // limit closes on the first frame, and a keepalive interval not above zero pings in a loop.
  // (A queue smaller than the welcome closes every socket with 1013 before it; the server's
  // --send-queue-bytes starts at the same 1 KiB.)
  if (config_.send_queue_bytes < kMinSendQueueBytes)
    throw std::invalid_argument("send_queue_bytes must be at least 1024");
  if (config_.max_message_bytes == 0)
    throw std::invalid_argument("max_message_bytes must be above 0");
  if (config_.max_connections == 0)
    throw std::invalid_argument("max_connections must be above 0 (every upgrade would get 503)");
  if (config_.handshake_timeout <= std::chrono::milliseconds::zero() ||
      config_.handshake_timeout > kMaxTimeout) {
    throw std::invalid_argument("handshake_timeout must be above 0 and at most 30 days");
  }
  if (config_.ping_interval <= std::chrono::seconds::zero())
    throw std::invalid_argument("ping_interval must be above 0");
  // (Longer ones would overflow the clock arithmetic of the keepalive.)
  if (config_.ping_interval > kMaxTimeout || config_.pong_timeout > kMaxTimeout)
    throw std::invalid_argument("ping_interval and pong_timeout must be at most 30 days");
  if (config_.pong_timeout <= config_.ping_interval) {
    // An idle socket would be closed for silence before it was ever pinged.
    throw std::invalid_argument("pong_timeout must be longer than ping_interval");
  }
  // The keepalive sweep runs at a granularity fine enough for the configured intervals.
  const auto smallest = std::min(config_.ping_interval, config_.pong_timeout);
  const auto period = std::clamp<std::chrono::milliseconds>(
      smallest / 4, std::chrono::milliseconds(50), std::chrono::milliseconds(1000));
  for (unsigned i = 0; i < hub_.core().shard_count(); ++i) {
    Shard& shard = hub_.core().shard(i);
    asio::post(shard.context(), [&shard, period] { shard.start_sweep(period); });
  }
}

HandlerCore::~HandlerCore() = default;

bool HandlerCore::try_reserve_slot() noexcept {
  std::size_t current = reserved_.load(std::memory_order_relaxed);
  do {
    if (current >= config_.max_connections) return false;
  } while (!reserved_.compare_exchange_weak(current, current + 1, std::memory_order_relaxed));
  return true;
}

void HandlerCore::release_slot() noexcept { reserved_.fetch_sub(1, std::memory_order_relaxed); }

bool HandlerCore::try_reserve_ip(const asio::ip::address& address) {
  if (config_.max_connections_per_ip == 0) return true;
  std::lock_guard lock(ip_mutex_);
  std::size_t& count = per_ip_[client_address_key(address)];
  if (count >= config_.max_connections_per_ip) return false;
  ++count;
  return true;
}

void HandlerCore::release_ip(const asio::ip::address& address) {
  if (config_.max_connections_per_ip == 0) return;
  std::lock_guard lock(ip_mutex_);
  auto it = per_ip_.find(client_address_key(address));
  if (it != per_ip_.end() && --it->second == 0) per_ip_.erase(it);
}

std::error_code HandlerCore::listen(const std::string& host, std::uint16_t port) {
  boost::system::error_code ec;
  const std::string literal = host == "localhost" ? "127.0.0.1" : host;
  const auto address = asio::ip::make_address(literal, ec);
  if (ec) return std::make_error_code(std::errc::invalid_argument);
  // One listening socket per Handler, and none after shutdown().
  std::lock_guard lock(listener_mutex_);
  if (listener_) return std::make_error_code(std::errc::already_connected);
  if (shut_down_.load()) return std::make_error_code(std::errc::operation_not_permitted);
  // A stopped Hub's loops run no more: nothing would accept. (Before start() is fine: the
  // listener starts accepting with the loops.)
  if (hub_.core().stopped()) return std::make_error_code(std::errc::operation_not_permitted);
  auto listener = std::make_shared<Listener>(weak_from_this(), hub_.core().shard(0).context());
  if (auto open_ec = listener->open({address, port})) return open_ec;
  listener->start();
  listener_ = std::move(listener);
  if (config_.serve_api && config_.api_key.empty() && !address.is_loopback()) {
    log().warn(
        "no API key: the publish API (POST /api/publish) accepts unauthenticated requests from "
        "anyone who can reach {}; set --api-key, or listen on a loopback address",
        host);
  }
  return {};
}

std::uint16_t HandlerCore::port() const noexcept {
  std::lock_guard lock(listener_mutex_);
  return listener_ ? listener_->port() : 0;
}

void HandlerCore::shutdown(std::chrono::milliseconds deadline) {
  accepting_ = false;
  answers_.abandon();
  if (!hub_.core().running()) {
    // No loop runs (any more, or yet): nothing to close gracefully, nothing that could answer the
    // waits below. The listener accepts no more (its first accept may wait in a loop's queue
    // still), and is let go of, so that it does not live on in a session that outlives the hub's
    // loops (its acceptor belongs to one of them). Before start() its port is closed at once.
    shut_down_ = true;
    std::lock_guard lock(listener_mutex_);
    if (listener_) listener_->stop_without_loop(!hub_.core().started());
    listener_.reset();
    return;
  }
  if (shut_down_.exchange(true)) return;  // once is enough
  std::shared_ptr<Listener> listener;
  {
    std::lock_guard lock(listener_mutex_);
    listener.swap(listener_);
  }
  if (listener) listener->stop();
  HubCore& core = hub_.core();
  const auto started = std::chrono::steady_clock::now();
  const auto until = started + deadline;
  // Chat already taken whose publish has not completed (waiting for Redis, or held while Redis is
  // away, kPublishHold) settles first, within a share of the deadline (the rest is the sockets'
  // to close): delivered to members still open, or refused to senders still open. New chat is
  // refused meanwhile (WsSession::handle_chat). On an I/O thread (a hook) nothing can be waited
  // for.
  if (!core.on_io_thread()) {
    const auto settle_until = started + deadline * 3 / 5;
    while (chats_publishing_.load() > 0 && std::chrono::steady_clock::now() < settle_until &&
           core.running()) {
      std::this_thread::sleep_for(kShutdownPoll);
    }
  }
  for (unsigned i = 0; i < core.shard_count(); ++i) {
    Shard& shard = core.shard(i);
    asio::post(shard.context(), [&shard, this] {
      shard.close_all(*this, close_code::going_away, "server shutting down");
    });
  }
  // On an I/O thread (a hook), waiting would hold up the very loop that closes its sockets: the
  // closing is under way, and goes on after this returns.
  if (core.on_io_thread()) return;
  while (std::chrono::steady_clock::now() < until) {
    std::size_t open = 0;
    for (unsigned i = 0; i < core.shard_count(); ++i) {
      Shard& shard = core.shard(i);
      auto count = std::make_shared<std::promise<std::size_t>>();
      auto future = count->get_future();
      asio::post(shard.context(),
                 [&shard, count, this] { count->set_value(shard.session_count(*this)); });
      // (A loop stopped meanwhile, Hub::stop() on another thread, will never answer.)
      while (future.wait_for(kShutdownPoll) != std::future_status::ready) {
        if (!core.running() || std::chrono::steady_clock::now() >= until) return;
      }
      open += future.get();
    }
    if (open == 0) return;
    std::this_thread::sleep_for(kShutdownPoll);
  }
}

}  // namespace detail

Handler::Handler(Hub& hub, HandlerConfig config)
    : core_(std::make_shared<detail::HandlerCore>(hub, std::move(config))) {}

Handler::~Handler() { core_->shutdown(std::chrono::seconds(1)); }

std::error_code Handler::listen(const std::string& host, std::uint16_t port) {
  return core_->listen(host, port);
}

std::uint16_t Handler::port() const noexcept { return core_->port(); }

void Handler::shutdown(std::chrono::milliseconds deadline) { core_->shutdown(deadline); }

const HandlerConfig& Handler::config() const noexcept { return core_->config(); }

}  // namespace realtime
