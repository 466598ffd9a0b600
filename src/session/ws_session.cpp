#include "session/ws_session.hpp"

#include <algorithm>
#include <array>
#include <exception>
#include <limits>
#include <stdexcept>
#include <utility>

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/post.hpp>
#include <linux/sockios.h>
#include <sys/ioctl.h>

#include "http/handler_core.hpp"
#include "hub/hub_core.hpp"
#include "hub/shard.hpp"
#include "protocol/envelope.hpp"
#include "protocol/outgoing.hpp"
#include "protocol/request.hpp"
#include "realtime/error.hpp"

namespace realtime::detail {
namespace {

namespace asio = boost::asio;
using SteadyClock = std::chrono::steady_clock;

// How long a closing socket waits for the peer's close frame (or for its send queue to drain)
// before the TCP connection is dropped.
constexpr std::chrono::seconds kCloseTimeout{2};
// After our close frame is written, how long the peer's remaining input is drained before the
// socket is closed (see linger()).
constexpr std::chrono::seconds kLinger{1};
// The token_expiring warning comes this long before exp.
constexpr std::chrono::seconds kExpiryWarning{30};
// A queue vector that grew past this many slots is released once drained; a smaller one is kept
// for the next messages and released by the keepalive tick that finds it empty (idle sockets hold
// no queue memory).
constexpr std::size_t kQueueKeepCapacity = 64;

// A token's "rooms" claim as a session holds it: behind a pointer (null: any room), so that a
// socket without one pays a pointer, not an empty optional vector.
std::unique_ptr<const std::vector<std::string>> held_claim(
    std::optional<std::vector<std::string>> rooms) {
  if (!rooms) return nullptr;
  return std::make_unique<const std::vector<std::string>>(std::move(*rooms));
}

bool would_block(const boost::system::error_code& ec) {
  return ec == asio::error::would_block || ec == asio::error::try_again;
}

// Runs an application hook. An exception from it is a bug of the application's: it is logged, and
// the caller closes that one socket (1011) instead of the process ending with std::terminate.
// Application hooks running on this thread now (one may close a socket, whose on_disconnect then
// waits until the hook has returned: see Shard::defer_disconnect).
thread_local unsigned hooks_running = 0;

template <typename Call>
bool hook_ran(spdlog::logger& log, std::string_view hook, const std::string& connection,
              Call&& call) {
  struct Running {
    Running() noexcept { ++hooks_running; }
    ~Running() { --hooks_running; }
    Running(const Running&) = delete;
    Running& operator=(const Running&) = delete;
  } running;
  try {
    std::forward<Call>(call)();
    return true;
  } catch (const std::exception& error) {
    log.error("{} hook threw for connection {}: {}", hook, connection, error.what());
  } catch (...) {
    log.error("{} hook threw for connection {} (not a std::exception)", hook, connection);
  }
  return false;
}

}  // namespace

WsSession::WsSession(std::shared_ptr<HandlerCore> handler, Shard& shard, TcpSocket socket,
                     SessionParams params)
    : handler_(std::move(handler)),
      shard_(shard),
      socket_(std::move(socket)),
      parser_(handler_->config().max_message_bytes, protocol::FrameParser::Role::server),
      id_(handler_->core().next_connection_id()),
      user_id_(params.user_id.empty() ? id_ : std::move(params.user_id)),
      startup_(
          std::make_unique<Startup>(Startup{std::move(params.last_id), std::move(params.leftover),
                                            std::move(params.handshake_response)})),
      token_expiry_(params.token_expiry),
      rooms_claim_(held_claim(std::move(params.rooms_claim))),
      peer_(params.peer),
      holds_ip_slot_(params.ip_slot),
      tokens_(handler_->config().rate_burst) {
  if (!params.room.empty()) rooms_.push_back(std::move(params.room));
  const auto now = SteadyClock::now();
  last_seen_ = now;
  last_ping_ = now;
  tokens_at_ = now;
}

WsSession::~WsSession() = default;

void WsSession::start() {
  const std::unique_ptr<Startup> startup = std::move(startup_);
  if (!startup) return;  // started already
  boost::system::error_code ec;
  socket_.non_blocking(true, ec);
  // Frames are batched by the session itself; Nagle would only add delay.
  socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  shard_.add_session(shared_from_this());
  shard_.add_user(this);
  handler_->core().add_user_socket(user_id_);
  handler_->metrics().connections.fetch_add(1, std::memory_order_relaxed);
  handler_->metrics().connections_accepted.fetch_add(1, std::memory_order_relaxed);
  // The 101 goes out first, in the same write as the welcome (and the join's replay, if any).
  if (!startup->handshake_response.empty()) {
    enqueue(make_control_frame(std::move(startup->handshake_response)));
    handshake_unsent_ = true;
  }

  // The URL's room, if the socket may not join it, is refused after the welcome (which then
  // names no room).
  std::string refused;
  if (!rooms_.empty() && !may_join(rooms_.front())) {
    refused = std::move(rooms_.front());
    rooms_.clear();
  }
  std::string fields;
  fields.reserve(96);
  fields += "\"connection_id\":";
  protocol::append_json_string(fields, id_);
  fields += ",\"user_id\":";
  protocol::append_json_string(fields, user_id_);
  if (!rooms_.empty()) {
    fields += ",\"room\":";
    protocol::append_json_string(fields, rooms_.front());
  }
  fields += handler_->welcome_limits();
  take_rate_limit(fields);
  Message welcome = system_message("welcome", fields);
  std::unique_ptr<Announcement> announcement;
  if (!rooms_.empty()) {
    welcome.room = rooms_.front();
    // No position yet: the room is not joined (a resume gets its position with `recovered`).
    welcome.id = handler_->core().next_direct_id();
    // Joined without last_id: the welcome tells the client where it joined the room.
    if (!startup->last_id) {
      announcement = std::make_unique<Announcement>(Announcement{rooms_.front(), welcome, nullptr});
    }
  }
  FramePtr welcome_frame = send_direct(std::move(welcome));
  if (announcement) announcement->frame = std::move(welcome_frame);
  if (!refused.empty() && state_ == State::open) {
    send_error(error_code::room_not_allowed, "not allowed to join this room", refused);
  }

  std::string room;
  if (!rooms_.empty()) {
    room = std::move(rooms_.front());
    rooms_.clear();
    handle_join(room, startup->last_id, std::move(announcement));
  }
  // The join held the output already, unless it recovers (the recovery waits for the room's
  // subscription itself) or there was none: then the welcome waits here.
  if (holds_ == 0) hold_until_subscribed(!room.empty() && in_room(room) ? room : std::string());
  if (const auto& hook = handler_->config().on_connect;
      hook && !hook_ran(handler_->log(), "on_connect", id_, [&] { hook(*this); })) {
    start_close(close_code::internal_error, "internal error", true);
  }

  if (!startup->leftover.empty()) {
    parser_.feed(startup->leftover.data(), startup->leftover.size(), *this);
  }
  if (state_ != State::closed && !parser_.failed()) do_read();
}

std::vector<std::string> WsSession::rooms() const { return rooms_; }

bool WsSession::may_join(const std::string& room) {
  if (rooms_claim_ && !rooms_claim_allows(*rooms_claim_, room)) return false;
  const auto& hook = handler_->config().may_join;
  if (!hook) return true;
  bool allowed = false;
  if (!hook_ran(handler_->log(), "may_join", id_, [&] { allowed = hook(*this, room); })) {
    start_close(close_code::internal_error, "internal error", true);
    return false;
  }
  return allowed;
}

bool WsSession::send(Message msg) {
  // Checked here, on the caller's thread, so that the caller is told (and nothing is queued).
  protocol::check_outgoing(msg, "Connection::send");
  // (Also from other threads: once the socket closes, or while its on_disconnect runs, nothing
  // more is taken.)
  if (!sendable_.load(std::memory_order_acquire)) return false;
  if (!shard_.in_this_thread()) {
    asio::post(shard_.context(), [weak = weak_from_this(), msg = std::move(msg)]() mutable {
      if (auto self = weak.lock()) self->send_now(std::move(msg));
    });
    return true;
  }
  return send_now(std::move(msg));
}

bool WsSession::send_now(Message msg) {
  if (state_ != State::open || !sendable_.load(std::memory_order_relaxed)) return false;
  if (msg.timestamp == Clock::time_point{}) msg.timestamp = Clock::now();
  send_direct(std::move(msg));
  return true;
}

void WsSession::close(std::uint16_t code, std::string_view reason) {
  // A reserved code (0, 1004-1006, 1015, ...) may not be sent on the wire (RFC 6455, 7.4).
  if (!protocol::is_valid_close_code(code)) {
    throw std::invalid_argument("Connection::close: " + std::to_string(code) +
                                " is not a close code that may be sent");
  }
  if (shard_.in_this_thread()) {
    start_close(code, reason, false);
    return;
  }
  asio::post(shard_.context(), [weak = weak_from_this(), code, reason = std::string(reason)] {
    if (auto self = weak.lock()) self->start_close(code, reason, false);
  });
}

void WsSession::enqueue(const FramePtr& frame) {
  if (state_ != State::open || overflowed_) return;
  queued_bytes_ += frame->bytes.size();
  queue_.push_back(frame);
  if (queued_bytes_ > handler_->config().send_queue_bytes + replay_allowance_) {
    overflow();
    return;
  }
  if (!flush_pending_) {
    flush_pending_ = true;
    shard_.schedule_flush(this);
  }
}

// Slow consumer: further frames are refused at once, what waits is counted as dropped, and the
// socket is closed 1013. Closing is deferred to a handler of its own: this runs inside the shard's
// delivery loops, which must not see room lists change under them.
void WsSession::overflow() {
  overflowed_ = true;
  handler_->metrics().slow_consumer_closes.fetch_add(1, std::memory_order_relaxed);
  std::size_t waiting = queue_.size() - head_;
  for (const Recovery& recovery : recovering_) waiting += recovery.live.size();
  handler_->metrics().drop(DropReason::slow_consumer, waiting);
  asio::post(shard_.context(), [self = shared_from_this()] {
    self->start_close(close_code::try_again_later, "slow consumer", true);
  });
}

void WsSession::enqueue_replay(const FramePtr& frame) {
  // A room history's frame, broadcast before now: not sampled as a broadcast's latency (nor is
  // anything created before it, see flush()).
  replay_at_ = SteadyClock::now();
  const std::uint64_t allowance = std::uint64_t{replay_allowance_} + frame->bytes.size();
  replay_allowance_ = static_cast<std::uint32_t>(
      std::min<std::uint64_t>(allowance, std::numeric_limits<std::uint32_t>::max()));
  enqueue(frame);
}

bool WsSession::may_replay(std::size_t bytes) const noexcept {
  // (The allowance is 32 bits: so is its bound, whatever --send-queue-bytes.)
  const std::uint64_t bound = std::min<std::uint64_t>(
      std::uint64_t{kReplayQueueFactor} * handler_->config().send_queue_bytes,
      std::numeric_limits<std::uint32_t>::max());
  return std::uint64_t{replay_allowance_} + bytes <= bound;
}

std::uint32_t WsSession::kernel_send_queue() noexcept {
  int queued = 0;
  if (::ioctl(socket_.native_handle(), SIOCOUTQ, &queued) != 0 || queued < 0) return 0;
  return static_cast<std::uint32_t>(queued);
}

void WsSession::flush() {
  flush_pending_ = false;
  if (write_waiting_ || state_ == State::closed) return;
  if (holds_ != 0 && state_ == State::open) return;  // a close is not held
  char* const staging = shard_.write_buffer();
  const auto now = SteadyClock::now();
  while (head_ < queue_.size()) {
    // Several frames are copied into the thread's send buffer and go out in one send(); a lone
    // frame, or one larger than that buffer, goes out from its own storage.
    asio::const_buffer out;
    const std::string& first = queue_[head_]->bytes;
    if (queue_.size() - head_ == 1 || first.size() - head_offset_ > Shard::kWriteBufferSize) {
      out = asio::buffer(first.data() + head_offset_, first.size() - head_offset_);
    } else {
      std::size_t used = 0;
      for (std::size_t i = head_; i < queue_.size(); ++i) {
        const std::string& bytes = queue_[i]->bytes;
        const std::size_t offset = i == head_ ? head_offset_ : 0;
        const std::size_t size = bytes.size() - offset;
        if (used + size > Shard::kWriteBufferSize) break;
        bytes.copy(staging + used, size, offset);
        used += size;
      }
      out = asio::buffer(staging, used);
    }
    boost::system::error_code ec;
    std::size_t written = socket_.write_some(out, ec);
    if (would_block(ec)) {
      wait_writable();
      return;
    }
    if (ec) {
      finish();
      return;
    }
    if (state_ == State::open) deadline_ = {};
    replay_allowance_ -=
        static_cast<std::uint32_t>(std::min<std::size_t>(written, replay_allowance_));
    while (written > 0) {
      const std::size_t remaining = queue_[head_]->bytes.size() - head_offset_;
      if (written < remaining) {
        head_offset_ += written;
        queued_bytes_ -= written;
        break;
      }
      written -= remaining;
      queued_bytes_ -= remaining;
      handshake_unsent_ = false;  // the first frame written whole is the 101 (if there is one)
      shard_.count_sent(*queue_[head_], now, replay_at_);
      queue_[head_].reset();
      ++head_;
      head_offset_ = 0;
    }
  }
  queue_.clear();
  head_ = 0;
  if (queue_.capacity() > kQueueKeepCapacity) std::vector<FramePtr>().swap(queue_);
  if (close_after_flush_) linger();
}

void WsSession::wait_writable() {
  write_waiting_ = true;
  socket_.async_wait(TcpSocket::wait_write,
                     [self = shared_from_this()](const boost::system::error_code& ec) {
                       self->write_waiting_ = false;
                       if (ec || self->state_ == State::closed) return;
                       self->flush();
                       self->shard_.publish_counts();  // not a flush pass of the shard's own
                     });
}

void WsSession::do_read() {
  if (read_armed_) return;
  read_armed_ = true;
  socket_.async_wait(
      TcpSocket::wait_read,
      asio::bind_allocator(WaitAllocator<int>(read_wait_memory_),
                           [self = shared_from_this()](const boost::system::error_code& ec) {
                             self->read_armed_ = false;
                             self->on_readable(ec);
                           }));
}

void WsSession::on_readable(const boost::system::error_code& ec) {
  if (lingering_) {
    drain(ec);
    return;
  }
  if (state_ == State::closed) return;
  if (ec) {
    finish();
    return;
  }
  char* buffer = shard_.read_buffer();
  // A few reads per wake-up at most, so one busy socket cannot starve the others on this thread.
  for (int round = 0; round < 4; ++round) {
    boost::system::error_code read_ec;
    const std::size_t n = socket_.read_some(asio::buffer(buffer, Shard::kReadBufferSize), read_ec);
    if (would_block(read_ec)) break;
    if (read_ec) {
      finish();  // end of stream or reset: the peer is gone without a close frame
      return;
    }
    last_seen_ = SteadyClock::now();
    if (!parser_.feed(buffer, n, *this)) return;  // protocol error: the close is under way
    if (state_ == State::closed) return;
    if (n < Shard::kReadBufferSize) break;
  }
  do_read();
}

FramePtr WsSession::send_direct(Message msg) {
  if (msg.id.empty()) msg.id = handler_->core().next_direct_id(direct_position(msg.room));
  FramePtr frame = make_direct_frame(msg);
  enqueue(frame);
  return frame;
}

const std::string* WsSession::position_room(std::string_view about) const noexcept {
  if (rooms_.empty() || state_ != State::open || overflowed_) return nullptr;
  const auto it = about.empty() ? rooms_.begin() : std::find(rooms_.begin(), rooms_.end(), about);
  if (it == rooms_.end()) return nullptr;
  const auto recovering = [&](const Recovery& r) { return r.room == *it; };
  return std::any_of(recovering_.begin(), recovering_.end(), recovering) ? nullptr : &*it;
}

std::string WsSession::direct_position(std::string_view about) {
  const std::string* room = position_room(about);
  if (room == nullptr || shard_.delivering()) return {};
  std::string position = handler_->core().room_position(*room);
  if (position.empty()) return position;
  // What was numbered up to the position was posted to this thread before it was read: queued now,
  // ahead of the message that names it.
  const auto keep = shared_from_this();  // (a delivery may overflow this socket and release it)
  shard_.deliver_pending();
  if (state_ != State::open || overflowed_) return {};
  return position;
}

void WsSession::send_error(std::string_view code, std::string_view text, std::string_view room) {
  send_direct(error_message(code, text, room));  // (no envelope room: a leave does not drop it)
}

void WsSession::on_text(std::string_view text) {
  handler_->metrics().messages_received.fetch_add(1, std::memory_order_relaxed);
  if (state_ == State::open) take_message(text);
}

void WsSession::dispatch(std::string_view text) {
  auto& metrics = handler_->metrics();
  auto decoded = protocol::decode_client_message(text);
  if (decoded.error != protocol::DecodeError::none) {
    metrics.drop(DropReason::invalid);
    send_error(protocol::to_code(decoded.error), decoded.detail);
    return;
  }
  protocol::ClientMessage& msg = decoded.message;
  switch (msg.type) {
    case MessageType::chat:
      if (msg.has_room) {
        handle_chat(std::move(msg.room), std::move(msg.data));
      } else if (!rooms_.empty()) {
        handle_chat(rooms_.front(), std::move(msg.data));
      } else {
        send_error(error_code::bad_room, "chat needs a room: this socket is in none");
      }
      return;
    case MessageType::ping: {
      Message pong;
      pong.type = MessageType::pong;
      pong.timestamp = Clock::now();
      pong.data = std::move(msg.data);  // the ping's data, if any, lets a client pair the two
      send_direct(pong);
      return;
    }
    case MessageType::presence:
      handle_presence(msg.status);
      return;
    case MessageType::join:
      handle_join(msg.room, msg.last_id);
      return;
    case MessageType::leave:
      handle_leave(msg.room);
      return;
    case MessageType::auth:
      handle_auth(msg.token);
      return;
    case MessageType::pong:
      return;  // an application-level pong needs no answer
    case MessageType::system:
    case MessageType::notification:
    case MessageType::error:
      metrics.drop(DropReason::invalid);
      send_error(error_code::forbidden,
                 std::string(to_string(msg.type)) + " messages are sent by the server only");
      return;
  }
}

void WsSession::handle_chat(std::string room, std::string data) {
  if (!protocol::is_valid_room(room)) {
    send_error(error_code::bad_room, "invalid room name");
    return;
  }
  if (!in_room(room)) {
    send_error(error_code::not_in_room, "join the room before sending to it", room);
    return;
  }
  // Counted as publishing from before the check below (HandlerCore::shutdown stops accepting, then
  // waits for the count): a chat is either refused here or waited for. Settled on every way out
  // but the publish, whose callback settles it.
  handler_->chat_publishing();
  std::unique_ptr<HandlerCore, void (*)(HandlerCore*)> settle(
      handler_.get(), [](HandlerCore* core) { core->chat_settled(); });
  // Stopping: what is taken now could reach members only as their sockets close, if at all.
  if (!handler_->accepting()) {
    send_error(error_code::unavailable, "message not delivered: the server is shutting down", room);
    return;
  }
  Message msg;
  msg.type = MessageType::chat;
  msg.room = std::move(room);
  msg.from = user_id_;
  msg.data = std::move(data);
  msg.timestamp = Clock::now();
  const auto& hook = handler_->config().on_message;
  bool keep = true;
  // A rewrite is checked as the application's own messages are (its data, room and type reach
  // every member verbatim); one that breaks the rules counts as the hook throwing.
  if (hook && !hook_ran(handler_->log(), "on_message", id_, [&] {
        keep = hook(*this, msg);
        if (keep) protocol::check_outgoing(msg, "on_message rewrite");
      })) {
    handler_->metrics().drop(DropReason::suppressed);
    start_close(close_code::internal_error, "internal error", true);
    return;
  }
  if (!keep) {
    handler_->metrics().drop(DropReason::suppressed);
    return;
  }
  // The id is not needed here (the member gets the message like everyone). kNotPublished: refused
  // (Redis not keeping up, or the pod stopping), which the sender is told.
  // (The refusal is posted before the chat counts as settled: a shutdown's close comes after it.)
  std::string to = msg.room;
  const CheckedMessage checked(msg);    // decoded and checked above: not parsed again on its way
  static_cast<void>(settle.release());  // (the callback settles it)
  handler_->broadcaster().publish_then(
      std::move(msg), [weak = weak_from_this(), handler = std::weak_ptr<HandlerCore>(handler_),
                       context = &shard_.context(), room = std::move(to)](const std::string& id) {
        if (id == kNotPublished) {
          boost::asio::post(*context, [weak, room] {
            if (auto self = weak.lock())
              self->send_error(error_code::unavailable, "message not delivered: try again later",
                               room);
          });
        }
        if (auto core = handler.lock()) core->chat_settled();
      });
}

void WsSession::handle_auth(const std::string& token) {
  const JwtVerifier& jwt = handler_->jwt();
  if (!jwt.enabled()) {
    send_error(error_code::unsupported, "this server has no JWT key configured");
    return;
  }
  auto result = jwt.verify(token, Clock::now());
  if (const auto* error = std::get_if<TokenError>(&result)) {
    send_error(error_code::invalid_token,
               std::string("token refused: ") + std::string(to_string(*error)));
    return;
  }
  auto& claims = std::get<TokenClaims>(result);
  if (claims.subject != user_id_) {
    send_error(error_code::forbidden, "a refreshed token must be for the same user");
    return;
  }
  if (token_expiry_ && !claims.expires_at) {
    // Else a socket whose token expires could make itself one that never does.
    send_error(error_code::invalid_token, "token refused: a refreshed token must carry exp");
    return;
  }
  token_expiry_ = claims.expires_at;
  expiry_warned_ = false;
  // Its "rooms" hold for the joins from now on; the rooms joined already are kept.
  rooms_claim_ = held_claim(std::move(claims.rooms));
  send_direct(system_message("token_refreshed"));
}

void WsSession::on_binary(std::string_view /*message*/) {
  auto& metrics = handler_->metrics();
  metrics.messages_received.fetch_add(1, std::memory_order_relaxed);
  if (state_ != State::open || !within_rate()) return;  // binary floods too
  metrics.drop(DropReason::invalid);
  send_error(error_code::unsupported, "binary frames are not supported");
}

void WsSession::on_ping(std::string_view payload) {
  // Through enqueue(): a peer that sends pings but never reads is a slow consumer like any other.
  enqueue(make_control_frame(protocol::encode_frame(protocol::Opcode::pong, payload)));
}

void WsSession::on_pong(std::string_view /*payload*/) {}

void WsSession::on_close(std::uint16_t code, std::string_view /*reason*/) {
  if (state_ == State::open) {
    // Echo the peer's status code, then close the TCP connection once the echo is written.
    start_close(code == 1005 ? close_code::normal : code, {}, true);
    return;
  }
  if (state_ == State::closing) {
    close_after_flush_ = true;
    if (head_ >= queue_.size() && !write_waiting_) linger();
  }
}

void WsSession::on_protocol_error(std::uint16_t code, std::string_view why) {
  // A message over --max-message-bytes is a limit of this server, not a violation of RFC 6455.
  if (code == close_code::message_too_big) {
    handler_->metrics().drop(DropReason::too_big);
  } else {
    handler_->metrics().protocol_closes.fetch_add(1, std::memory_order_relaxed);
  }
  start_close(code, why, true);
}

void WsSession::start_close(std::uint16_t code, std::string_view reason, bool close_after) {
  if (state_ != State::open) return;
  state_ = State::closing;
  sendable_.store(false, std::memory_order_release);
  if (overflowed_) {
    // A slow consumer: what it owes is dropped. Keep the frame being written (a half-written frame
    // cannot be taken back) so that the close frame still parses, and the 101 if it has not gone
    // out (it is the first frame queued): a close frame without it is no WebSocket.
    const std::size_t keep = head_ + (head_offset_ > 0 || handshake_unsent_ ? 1 : 0);
    for (std::size_t i = keep; i < queue_.size(); ++i) queued_bytes_ -= queue_[i]->bytes.size();
    queue_.resize(keep);
  }
  // Otherwise what was queued before the close still goes out ahead of it (answers to messages that
  // came before a protocol violation, messages before a shutdown), within the close deadline.
  std::string frame = protocol::encode_close_frame(code, reason);
  queued_bytes_ += frame.size();
  queue_.push_back(make_control_frame(std::move(frame)));
  close_after_flush_ = close_after;
  deadline_ = SteadyClock::now() + kCloseTimeout;
  detach();
  if (!flush_pending_) {
    flush_pending_ = true;
    shard_.schedule_flush(this);
  }
}

void WsSession::tick(SteadyClock::time_point now) {
  if (lingering_) {
    if (now >= deadline_) release();
    return;
  }
  if (state_ == State::closing) {
    if (now >= deadline_) finish();
    return;
  }
  if (state_ != State::open) return;
  if (queue_.empty() && queue_.capacity() != 0) std::vector<FramePtr>().swap(queue_);
  const auto& config = handler_->config();
  if (write_waiting_ && queued_bytes_ > config.send_queue_bytes && !overflowed_) {
    // Past the queue's bound by a replay's allowance, and waiting for the socket: the client must
    // take something within the stall timeout, else it would hold the replay (up to
    // kReplayQueueFactor × the queue) for as long as it stays. What it takes shows as the kernel's
    // send queue going down (a write of ours, in flush(), clears the deadline too): a socket is
    // reported writable only once about a third of its send buffer has drained, which takes a
    // client reading slowly longer than the timeout.
    const std::uint32_t kernel = kernel_send_queue();
    if (deadline_ == SteadyClock::time_point{} || kernel < kernel_queued_) {
      deadline_ = now + config.replay_stall_timeout;
      kernel_queued_ = kernel;
    } else if (now >= deadline_) {
      overflow();
      return;
    }
  } else {
    deadline_ = {};  // nothing to wait for (a leave may have taken the queue back under its bound)
  }
  if (now - last_seen_ >= config.pong_timeout) {
    handler_->metrics().keepalive_closes.fetch_add(1, std::memory_order_relaxed);
    start_close(close_code::going_away, "pong timeout", true);
    return;
  }
  if (token_expiry_) {
    const auto wall = Clock::now();
    if (!expiry_warned_ && wall + kExpiryWarning >= *token_expiry_) {
      expiry_warned_ = true;
      std::string fields = "\"expires_at\":";
      protocol::append_json_string(fields, protocol::format_timestamp(*token_expiry_));
      send_direct(system_message("token_expiring", fields));
      // A token accepted after its exp (the verification's clock-skew leeway) still gets the grace
      // to be refreshed, counted from this warning: the close never comes unannounced.
      if (*token_expiry_ < wall) token_expiry_ = wall;
    }
    if (wall >= *token_expiry_ + config.token_grace) {
      start_close(close_code::token_expired, "token_expired", false);
      return;
    }
  }
  if (now - last_ping_ >= config.ping_interval) {
    last_ping_ = now;
    enqueue(make_control_frame(protocol::encode_frame(protocol::Opcode::ping, {})));
  }
}

void WsSession::detach() {
  if (detached_) return;
  detached_ = true;
  sendable_.store(false, std::memory_order_release);
  auto& core = handler_->core();
  std::vector<std::string> rooms;
  rooms.swap(rooms_);
  recovering_.clear();
  for (const std::string& room : rooms) {
    const auto result = core.leave(room, user_id_, *this, status_);
    announce_leave(room, result.user_last, result.status_change);
  }
  shard_.remove_user(this);
  core.remove_user_socket(user_id_);
  handler_->metrics().connections.fetch_sub(1, std::memory_order_relaxed);
  if (holds_ip_slot_) handler_->release_ip(peer_);
  leave_rate_limit();
  if (!handler_->config().on_disconnect) return;
  if (auto self = weak_from_this().lock(); self && hooks_running > 0) {
    shard_.defer_disconnect(std::move(self));
  } else {
    run_disconnect_hook();
  }
}

void WsSession::run_disconnect_hook() {
  if (const auto& hook = handler_->config().on_disconnect) {
    hook_ran(handler_->log(), "on_disconnect", id_, [&] { hook(*this); });
  }
}

void WsSession::finish() {
  if (state_ != State::closed) {
    detach();
    state_ = State::closed;
    drop_queue();
  }
  release();
}

void WsSession::linger() {
  if (state_ == State::closed) return;
  detach();
  state_ = State::closed;
  drop_queue();
  // Closing a socket with unread input makes the kernel send a reset, which can destroy our close
  // frame in the peer's receive buffer before the peer reads it. So: stop sending, read and discard
  // until the peer closes too (or kLinger passes), then close.
  boost::system::error_code ec;
  socket_.shutdown(TcpSocket::shutdown_send, ec);
  if (ec) {
    release();
    return;
  }
  lingering_ = true;
  deadline_ = SteadyClock::now() + kLinger;
  do_read();
}

void WsSession::drain(const boost::system::error_code& ec) {
  if (!ec) {
    char* buffer = shard_.read_buffer();
    for (;;) {
      boost::system::error_code read_ec;
      socket_.read_some(asio::buffer(buffer, Shard::kReadBufferSize), read_ec);
      if (would_block(read_ec)) {
        do_read();
        return;
      }
      if (read_ec) break;  // the peer closed too
    }
  }
  release();
}

void WsSession::drop_queue() {
  queue_.clear();
  head_ = 0;
  head_offset_ = 0;
  queued_bytes_ = 0;
}

void WsSession::release() {
  if (released_) return;
  released_ = true;
  lingering_ = false;
  boost::system::error_code ec;
  socket_.close(ec);
  // The --max-connections slot goes with the descriptor, not at the close's start: a closing
  // socket (its close handshake, the linger) still holds one, which the open-file fitting counts.
  handler_->release_slot();
  // Last: this may release the shard's reference (callers hold their own).
  shard_.remove_session(this);
}

}  // namespace realtime::detail
