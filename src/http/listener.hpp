// The listening socket: accepts connections and hands each to a shard (round robin), where its HTTP
// session runs.
//
// Owned by HandlerCore (and by its pending accept), which it knows only weakly: a Listener left in
// a loop's queue never reaches a HandlerCore that is gone. Lives on shard 0's thread; stop() may be
// called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <system_error>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

namespace realtime::detail {

class HandlerCore;

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  Listener(std::weak_ptr<HandlerCore> handler, boost::asio::io_context& context);
  // Binds and listens (SO_REUSEADDR); call before start().
  std::error_code open(const boost::asio::ip::tcp::endpoint& endpoint);
  void start();
  // Closes the acceptor; returns once it is closed or after a second.
  void stop();
  // For a loop that never ran: accepts no more, and closes the acceptor here and now (nothing
  // else touches it). With `close` false (a loop stopped, whose thread may still be finishing a
  // handler), only accepts no more: the acceptor closes with the Listener.
  void stop_without_loop(bool close);
  std::uint16_t port() const noexcept { return port_; }

 private:
  void do_accept();

  std::weak_ptr<HandlerCore> handler_;
  boost::asio::io_context& context_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer retry_timer_;
  std::atomic<bool> stopped_{false};
  std::uint16_t port_ = 0;
  // Accept failures (out of descriptors, say) are retried every 50 ms but logged at most once per
  // kAcceptLogInterval, with how many there were meanwhile. Touched on shard 0's thread only.
  std::chrono::steady_clock::time_point last_accept_log_{};
  std::uint64_t accept_failures_unlogged_ = 0;
};

}  // namespace realtime::detail
