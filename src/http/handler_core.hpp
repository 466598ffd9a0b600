// What every session and HTTP request of a Handler shares: configuration, the hub, the broadcaster,
// the JWT verifier, admission counting and the listener.
//
// Owned by Handler and (shared) by every live session, so a session never outlives it. Thread
// safety: immutable after construction except the atomics and the listener (its own mutex).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include <boost/asio/ip/tcp.hpp>
#include <spdlog/logger.h>

#include "http/api.hpp"
#include "http/throttled_log.hpp"
#include "hub/hub_core.hpp"
#include "realtime/auth.hpp"
#include "realtime/broadcaster.hpp"
#include "realtime/handler.hpp"
#include "session/rate_carry.hpp"
#include "session/tcp_socket.hpp"

namespace realtime::detail {

class Listener;

class HandlerCore : public std::enable_shared_from_this<HandlerCore> {
 public:
  HandlerCore(Hub& hub, HandlerConfig config);
  ~HandlerCore();

  Hub& hub() noexcept { return hub_; }
  HubCore& core() noexcept { return hub_.core(); }
  Metrics& metrics() noexcept { return hub_.metrics(); }
  const HandlerConfig& config() const noexcept { return config_; }
  Broadcaster& broadcaster() noexcept { return *broadcaster_; }
  const JwtVerifier& jwt() const noexcept { return jwt_; }
  spdlog::logger& log() noexcept { return *logger_; }
  // Gates the log lines of refused requests (one per kRefusalLogInterval, pod-wide): a client can
  // send them as fast as it likes. The metrics count every refusal.
  ThrottledLog& refusal_log() noexcept { return refusal_log_; }
  // What every welcome ends with: the socket's rate limit (`,"rate_limit":R,"rate_burst":B`).
  const std::string& welcome_limits() const noexcept { return welcome_limits_; }

  // Reserves a connection slot; false when at --max-connections. release_slot() gives it back.
  bool try_reserve_slot() noexcept;
  void release_slot() noexcept;
  // Per-address slots (--max-connections-per-ip); no-ops when the cap is 0.
  bool try_reserve_ip(const boost::asio::ip::address& address);
  void release_ip(const boost::asio::ip::address& address);
  // (Sequentially consistent, as chat_publishing() and shutdown()'s reads: a chat counted before
  // its check of accepting() is seen by a shutdown that stopped accepting before reading the
  // count.)
  bool accepting() const noexcept { return accepting_.load(); }
  // Chat taken from sockets whose publish has not completed (a Redis round trip, or a hold while
  // Redis is away): shutdown() lets them settle before it closes the sockets, so that members get
  // them, or senders their refusal, ahead of the close.
  void chat_publishing() noexcept { chats_publishing_.fetch_add(1); }
  void chat_settled() noexcept { chats_publishing_.fetch_sub(1, std::memory_order_release); }
  SharedAnswers& answers() noexcept { return answers_; }
  RateCarry& rate_carry() noexcept { return rate_carry_; }

  std::error_code listen(const std::string& host, std::uint16_t port);
  std::uint16_t port() const noexcept;
  void shutdown(std::chrono::milliseconds deadline);

 private:
  Hub& hub_;
  HandlerConfig config_;
  std::shared_ptr<Broadcaster> broadcaster_;
  JwtVerifier jwt_;
  std::shared_ptr<spdlog::logger> logger_;
  // 5 s, as accept failures (Listener): a flood of refusals costs the log a line per 5 s.
  static constexpr std::chrono::seconds kRefusalLogInterval{5};
  ThrottledLog refusal_log_{kRefusalLogInterval};
  std::string welcome_limits_;
  std::atomic<bool> accepting_{true};
  std::atomic<std::size_t> chats_publishing_{0};
  std::atomic<bool> shut_down_{false};
  std::atomic<std::size_t> reserved_{0};  // connection slots taken (open sockets and upgrades)
  std::mutex ip_mutex_;
  // By client_address_key (an IPv6 client by its /64); guarded by ip_mutex_.
  std::unordered_map<std::string, std::size_t> per_ip_;
  mutable std::mutex listener_mutex_;
  std::shared_ptr<Listener> listener_;
  SharedAnswers answers_;  // of GET /api/rooms and /api/rooms/{room}/presence
  RateCarry rate_carry_{config_.rate_limit, config_.rate_burst, config_.connect_rate,
                        config_.connect_burst};
};

// Starts serving HTTP on an accepted socket (on the socket's shard thread). In http_session.cpp,
// the one translation unit that includes Beast.
void start_http_session(std::shared_ptr<HandlerCore> handler, Shard& shard, TcpSocket socket);

}  // namespace realtime::detail
