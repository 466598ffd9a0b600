#include "http/listener.hpp"

#include <future>

#include <boost/asio/post.hpp>

#include "http/handler_core.hpp"

namespace realtime::detail {
namespace {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// After an accept error such as EMFILE, wait this long before trying again instead of spinning.
constexpr std::chrono::milliseconds kAcceptRetry{50};
constexpr std::chrono::seconds kAcceptLogInterval{5};
constexpr int kBacklog = 4096;  // the kernel caps it at somaxconn
}  // namespace

Listener::Listener(std::weak_ptr<HandlerCore> handler, asio::io_context& context)
    : handler_(std::move(handler)), context_(context), acceptor_(context), retry_timer_(context) {}

std::error_code Listener::open(const tcp::endpoint& endpoint) {
  boost::system::error_code ec;
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(kBacklog, ec);
  if (!ec) port_ = acceptor_.local_endpoint(ec).port();
  if (ec) {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
  }
  return ec;
}

void Listener::start() {
  asio::post(context_, [self = shared_from_this()] { self->do_accept(); });
}

void Listener::do_accept() {
  if (stopped_) return;
  const std::shared_ptr<HandlerCore> handler = handler_.lock();
  if (!handler) return;
  Shard& target = handler->core().next_shard();
  acceptor_.async_accept(
      target.context(),
      [self = shared_from_this(), &target](const boost::system::error_code& ec, TcpSocket socket) {
        if (self->stopped_) return;
        std::shared_ptr<HandlerCore> handler = self->handler_.lock();
        if (!handler) return;
        if (ec) {
          if (ec == asio::error::operation_aborted) return;
          const auto now = std::chrono::steady_clock::now();
          if (now - self->last_accept_log_ >= kAcceptLogInterval) {
            self->last_accept_log_ = now;
            handler->log().warn("accept failed: {} ({} more since the last report)", ec.message(),
                                self->accept_failures_unlogged_);
            self->accept_failures_unlogged_ = 0;
          } else {
            ++self->accept_failures_unlogged_;
          }
          self->retry_timer_.expires_after(kAcceptRetry);
          self->retry_timer_.async_wait([self](const boost::system::error_code& wait_ec) {
            if (!wait_ec) self->do_accept();
          });
          return;
        }
        // The socket belongs to the target shard's loop: continue there.
        asio::post(target.context(),
                   [handler = std::move(handler), &target, socket = std::move(socket)]() mutable {
                     start_http_session(std::move(handler), target, std::move(socket));
                   });
        self->do_accept();
      });
}

void Listener::stop_without_loop(bool close) {
  stopped_ = true;
  if (!close) return;
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  retry_timer_.cancel();
}

void Listener::stop() {
  if (stopped_.exchange(true)) return;
  const auto close = [this] {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    retry_timer_.cancel();
  };
  // On the acceptor's own loop (a shutdown from a hook there): at once, nothing to wait for.
  if (context_.get_executor().running_in_this_thread()) return close();
  auto done = std::make_shared<std::promise<void>>();
  auto future = done->get_future();
  asio::post(context_, [self = shared_from_this(), close, done] {
    close();
    done->set_value();
  });
  future.wait_for(std::chrono::seconds(1));
}

}  // namespace realtime::detail
