// WsSession's rate limits: the token bucket every client message takes from, the limit on status
// changes counted in room events, and the bucket a client's sockets pass on to each other
// (RateCarry). The socket's I/O, framing, auth and close are in ws_session.cpp, its rooms in
// ws_rooms.cpp.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include <boost/asio/steady_timer.hpp>

#include "http/handler_core.hpp"
#include "realtime/error.hpp"
#include "session/rate_carry.hpp"
#include "session/ws_session.hpp"

namespace realtime::detail {
namespace {

using SteadyClock = std::chrono::steady_clock;

// At most one rate_limited error per this interval: a flood must not turn into an echo flood.
constexpr std::chrono::seconds kRateErrorInterval{1};
// What may wait for tokens, in largest messages (--max-message-bytes): see WsSession::take_message.
constexpr std::size_t kShapedMessages = 4;

}  // namespace

bool WsSession::take_token() {
  const auto& config = handler_->config();
  const auto now = SteadyClock::now();
  const double elapsed = std::chrono::duration<double>(now - tokens_at_).count();
  tokens_at_ = now;
  tokens_ = std::min(config.rate_burst, tokens_ + elapsed * config.rate_limit);
  if (tokens_ < 1.0) return false;
  tokens_ -= 1.0;
  return true;
}

std::optional<std::string> WsSession::rate_key() const {
  // (An anonymous socket's user is its connection id: no token's subject.)
  return RateCarry::client_key(user_id_ != id_ ? std::string_view(user_id_) : std::string_view(),
                               peer_, handler_->config().max_connections_per_ip != 0);
}

void WsSession::take_rate_limit(std::string& welcome_fields) {
  auto& carry = handler_->rate_carry();
  if (carry.empty()) return;
  const auto key = rate_key();
  if (!key) return;
  const auto left = carry.find(*key, SteadyClock::now());
  if (!left) return;
  tokens_ = left->tokens;
  tokens_at_ = left->at;
  // The client paces itself from it (a client that assumed a full bucket would be refused).
  welcome_fields += ",\"rate_tokens\":";
  welcome_fields += std::to_string(static_cast<std::uint64_t>(tokens_));
}

void WsSession::leave_rate_limit() {
  auto& carry = handler_->rate_carry();
  const RateCarry::Bucket left{tokens_, tokens_at_};
  const auto now = SteadyClock::now();
  if (carry.full(left, now)) return;
  if (auto key = rate_key()) carry.leave(std::move(*key), left, now);
}

bool WsSession::within_rate() {
  if (take_token()) return true;
  refuse_rate();
  return false;
}

// Shaping, not only policing: the bucket counts messages as they arrive, and a client that paced
// its sends to the limit can still arrive in a clump (its link stalled for a few seconds, then
// delivered all it held: more than the bucket had refilled to). Those wait, in order, for their
// tokens, up to a bucket's worth of messages and kShapedMessages largest messages' worth of bytes
// (a bucket of chat-sized messages fits: 40 of 6 KiB at the defaults); only what comes past that is
// refused. A message behind waiting ones waits too (order).
struct WsSession::ShapedInput {
  explicit ShapedInput(boost::asio::io_context& context) : timer(context) {}
  std::deque<std::string> texts;
  std::size_t bytes = 0;
  boost::asio::steady_timer timer;
};

void WsSession::ShapedInputDeleter::operator()(ShapedInput* input) const noexcept { delete input; }

void WsSession::take_message(std::string_view text) {
  if (!shaped_ && take_token()) return dispatch(text);
  if (!shape(text)) refuse_rate();
}

bool WsSession::shape(std::string_view text) {
  const auto& config = handler_->config();
  if (!shaped_) shaped_.reset(new ShapedInput(shard_.context()));
  ShapedInput& input = *shaped_;
  const auto most = static_cast<std::size_t>(config.rate_burst);
  if (!input.texts.empty() &&
      (input.texts.size() >= most ||
       input.bytes + text.size() > kShapedMessages * config.max_message_bytes)) {
    return false;
  }
  input.texts.emplace_back(text);
  input.bytes += text.size();
  if (input.texts.size() == 1) arm_shaped();
  return true;
}

void WsSession::arm_shaped() {
  // When the bucket holds a whole token again (take_token() refreshed it just now).
  const double wait = (1.0 - tokens_) / handler_->config().rate_limit;
  shaped_->timer.expires_at(tokens_at_ + std::chrono::duration_cast<SteadyClock::duration>(
                                             std::chrono::duration<double>(wait)));
  shaped_->timer.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
    if (ec) return;
    if (const auto self = weak.lock()) self->release_shaped();
  });
}

void WsSession::release_shaped() {
  while (shaped_ && state_ == State::open) {
    if (shaped_->texts.empty()) {
      shaped_.reset();  // (this handler is the timer's last: nothing waits on it)
      return;
    }
    if (!take_token()) return arm_shaped();
    const std::string text = std::move(shaped_->texts.front());
    shaped_->texts.pop_front();
    shaped_->bytes -= text.size();
    dispatch(text);
  }
}

void WsSession::refuse_rate() {
  handler_->metrics().drop(DropReason::rate_limited);
  const auto now = SteadyClock::now();
  if (now - last_rate_error_ >= kRateErrorInterval) {
    last_rate_error_ = now;
    send_error(error_code::rate_limited, "too many messages; slow down");
  }
}

bool WsSession::presence_within_rate() {
  // A status change is announced in every room of the socket: it is also held to the rate limit
  // counted in room events (one per room), with room for a change in the most rooms a socket may
  // have at once. One time point (the generic cell rate algorithm), on top of the message's own
  // token; so a client in many rooms cannot make 64 room events out of each token.
  const auto& config = handler_->config();
  if (config.rate_limit <= 0) return true;
  using Seconds = std::chrono::duration<double>;
  const auto now = SteadyClock::now();
  const double per_event = 1.0 / config.rate_limit;
  const auto cost = std::chrono::duration_cast<SteadyClock::duration>(
      Seconds(per_event * static_cast<double>(rooms_.size())));
  const double burst =
      std::max(config.rate_burst, static_cast<double>(config.max_rooms_per_connection));
  const auto tolerance =
      std::chrono::duration_cast<SteadyClock::duration>(Seconds(per_event * burst));
  const auto start = std::max(presence_tat_, now);
  if (start + cost - now > tolerance) return false;
  presence_tat_ = start + cost;
  return true;
}

}  // namespace realtime::detail
