#include "client.hpp"

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>

#include <boost/asio/post.hpp>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proc_stats.hpp"

namespace realtime::bench {
namespace {

constexpr std::size_t kRxBufferSize = 256 * 1024;
constexpr std::size_t kMaxMessageBytes = 1 << 20;
constexpr int kMaxEventsPerWake = 256;
constexpr std::size_t kMaxUpgradeResponse = 16 * 1024;

using Clock = std::chrono::steady_clock;

Clock::time_point to_steady(std::uint64_t ns) {
  return Clock::time_point(
      std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(ns)));
}

// Parses the unsigned decimal right after `key` (e.g. "\"s\":") at or after `from`. On success
// stores the value and returns the position after its digits; npos otherwise.
std::size_t scan_number(std::string_view text, std::string_view key, std::size_t from,
                        std::uint64_t& value) {
  std::size_t at;
  // The fields follow each other in the order we wrote them, so look right here first.
  if (text.size() >= from + key.size() + 1 && text.compare(from + 1, key.size(), key) == 0) {
    at = from + 1;
  } else {
    at = text.find(key, from);
    if (at == std::string_view::npos) return std::string_view::npos;
  }
  const char* first = text.data() + at + key.size();
  const char* last = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(first, last, value);
  if (ec != std::errc() || ptr == first) return std::string_view::npos;
  return static_cast<std::size_t>(ptr - text.data());
}

void set_linger_reset(int fd) {
  linger lg{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
}

}  // namespace

void StepStats::merge(const StepStats& other) {
  sent += other.sent;
  expected += other.expected;
  delivered += other.delivered;
  delivered_window += other.delivered_window;
  received_window += other.received_window;
  sent_window += other.sent_window;
  reordered += other.reordered;
  duplicates += other.duplicates;
  misrouted += other.misrouted;
  other_messages += other.other_messages;
  send_errors += other.send_errors;
  same_pod.merge(other.same_pod);
  cross_pod.merge(other.cross_pod);
  send_lag.merge(other.send_lag);
}

// ---------------------------------------------------------------------------------------------
// Connection

Connection::Connection(Worker& worker, std::uint32_t index)
    : worker_(worker),
      socket_(worker.io_),
      parser_(kMaxMessageBytes, protocol::FrameParser::Role::client),
      index_(index),
      target_(worker.plan().target_of(index)) {
  const Plan& plan = worker.plan();
  publisher_ = index < plan.publishers;
  const std::uint32_t slots = plan.publishers_per_room();
  if (slots > 0) seq_windows_ = std::make_unique<SeqWindow[]>(slots);
}

Connection::~Connection() {
  if (socket_.is_open()) {
    set_linger_reset(socket_.native_handle());
    boost::system::error_code ignored;
    socket_.close(ignored);
  }
}

void Connection::start_connect() {
  const Plan& plan = worker_.plan();
  state_ = State::connecting;
  started_ns_ = now_ns();
  boost::system::error_code ec;
  socket_.open(boost::asio::ip::tcp::v4(), ec);
  if (ec) {
    worker_.note_error("socket: " + ec.message());
    fail(false);
    return;
  }
  const int fd = socket_.native_handle();
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (!plan.sources.empty()) {
    // Let connect() pick the port for the full 4-tuple, so each source address has its own
    // ephemeral port range per destination.
    ::setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    sockaddr_in local{};
    local.sin_family = AF_INET;
    local.sin_addr = plan.sources[index_ % plan.sources.size()];
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&local), sizeof local) != 0) {
      worker_.note_error(std::string("bind: ") + std::strerror(errno));
      fail(false);
      return;
    }
  }
  const Endpoint& target = plan.targets[target_];
  const boost::asio::ip::tcp::endpoint remote(boost::asio::ip::make_address_v4(target.host),
                                              target.port);
  socket_.async_connect(remote, [this](const boost::system::error_code& e) { on_connected(e); });
}

void Connection::on_connected(const boost::system::error_code& ec) {
  if (state_ != State::connecting) return;
  if (ec) {
    worker_.note_error("connect: " + ec.message());
    fail(false);
    return;
  }
  boost::system::error_code ignored;
  socket_.non_blocking(true, ignored);
  state_ = State::upgrading;
  const Plan& plan = worker_.plan();
  const Endpoint& target = plan.targets[target_];
  std::string request;
  request.reserve(256);
  request += "GET ";
  if (plan.protocol == WireProtocol::socketio) {
    request += "/socket.io/?EIO=4&transport=websocket&room=";
  } else {
    request += "/ws/";
  }
  request += plan.room_prefix;
  request += '-';
  request += std::to_string(plan.room_of(index_));
  request += " HTTP/1.1\r\nHost: ";
  request += target.host;
  request += ':';
  request += std::to_string(target.port);
  request +=
      "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  write_raw(request.data(), request.size());
  if (state_ != State::closed) arm_read();
}

void Connection::arm_read() {
  // Registered once, level-triggered, in the worker's receive epoll set: no system call per
  // message to re-arm (an Asio wait re-arms with epoll_ctl each time).
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP;
  ev.data.ptr = this;
  if (::epoll_ctl(worker_.rx_epoll_, EPOLL_CTL_ADD, socket_.native_handle(), &ev) != 0) fail(true);
}

void Connection::on_readable() {
  if (state_ == State::closed) return;
  // One read per readiness: what is left is reported again (level-triggered), after the other
  // ready sockets had their turn.
  char* buf = worker_.rx_buf_.get();
  const ssize_t n = ::recv(socket_.native_handle(), buf, kRxBufferSize, MSG_DONTWAIT);
  if (n > 0) {
    handle_bytes(buf, static_cast<std::size_t>(n));
  } else if (n == 0) {
    fail(true);
  } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    fail(true);
  }
}

bool Connection::handle_bytes(char* data, std::size_t size) {
  worker_.last_rx_ns.store(now_ns(), std::memory_order_relaxed);
  if (state_ == State::upgrading) return handle_upgrade_response(data, size);
  parser_.feed(data, size, *this);
  return state_ != State::closed;
}

bool Connection::handle_upgrade_response(char* data, std::size_t size) {
  http_.append(data, size);
  const auto end = http_.find("\r\n\r\n");
  if (end == std::string::npos) {
    if (http_.size() > kMaxUpgradeResponse) fail(false);
    return state_ != State::closed;
  }
  if (http_.compare(0, 12, "HTTP/1.1 101") != 0) {
    worker_.http_refusals.fetch_add(1, std::memory_order_relaxed);
    worker_.note_error("upgrade refused: " + http_.substr(0, http_.find('\r')));
    fail(false);
    return false;
  }
  state_ = State::open;
  std::string rest = http_.substr(end + 4);
  std::string().swap(http_);
  if (!rest.empty()) parser_.feed(rest.data(), rest.size(), *this);
  return state_ != State::closed;
}

void Connection::on_text(std::string_view message) {
  if (worker_.plan().protocol == WireProtocol::socketio) {
    // Engine.IO v4 packet types: 0 open, 2 ping, 4 message; Socket.IO v5 inside: 0 connect,
    // 1 disconnect, 2 event.
    if (message.empty()) return;
    switch (message[0]) {
      case '0':
        send_text("40");
        return;
      case '2':
        send_text("3");
        return;
      case '4':
        if (message.size() >= 2 && message[1] == '2') {
          on_message(message.substr(2));
        } else if (message.size() >= 2 && message[1] == '1') {
          fail(true);
        }
        return;
      default:
        worker_.on_other_message();
        return;
    }
  }
  on_message(message);
}

void Connection::on_message(std::string_view message) {
  if (!welcomed_) {
    welcomed_ = true;  // the first message on a socket is the welcome
    worker_.connection_done(*this, true);
    return;
  }
  on_chat(message);
}

void Connection::on_chat(std::string_view message) {
  // Our own chat data is {"s":SEQ,"t":SCHEDULED_NS,"p":PUBLISHER,...}; everything else is counted
  // and skipped. No JSON parse: three anchored number scans.
  const auto s_key = message.find("{\"s\":");
  if (s_key == std::string_view::npos) {
    worker_.on_other_message();
    return;
  }
  std::uint64_t seq = 0, t = 0, p = 0;
  std::size_t at = scan_number(message, "\"s\":", s_key, seq);
  if (at != std::string_view::npos) at = scan_number(message, "\"t\":", at, t);
  if (at != std::string_view::npos) at = scan_number(message, "\"p\":", at, p);
  if (at == std::string_view::npos) {
    worker_.on_other_message();
    return;
  }
  worker_.on_delivery(*this, seq, t, static_cast<std::uint32_t>(p), now_ns());
}

void Connection::on_ping(std::string_view payload) {
  std::uint8_t frame[protocol::kMaxFrameHeader + 125];
  const std::size_t n = std::min<std::size_t>(payload.size(), 125);
  const std::uint32_t mask = worker_.next_mask();
  const std::size_t h = protocol::write_frame_header(frame, protocol::Opcode::pong, n, mask);
  std::memcpy(frame + h, payload.data(), n);
  protocol::mask_payload(reinterpret_cast<char*>(frame + h), n, mask);
  write_raw(reinterpret_cast<const char*>(frame), h + n);
}

void Connection::on_close(std::uint16_t, std::string_view) { fail(true); }

void Connection::on_protocol_error(std::uint16_t, std::string_view) { fail(true); }

void Connection::send_text(std::string_view payload) {
  if (state_ == State::closed) return;
  std::string& frame = worker_.tx_buf_;
  frame.resize(protocol::kMaxFrameHeader + payload.size());
  const std::uint32_t mask = worker_.next_mask();
  auto* out = reinterpret_cast<std::uint8_t*>(frame.data());
  const std::size_t h =
      protocol::write_frame_header(out, protocol::Opcode::text, payload.size(), mask);
  std::memcpy(frame.data() + h, payload.data(), payload.size());
  protocol::mask_payload(frame.data() + h, payload.size(), mask);
  write_raw(frame.data(), h + payload.size());
}

void Connection::write_raw(const char* data, std::size_t size) {
  if (state_ == State::closed) return;
  if (!pending_.empty()) {
    pending_.append(data, size);
    return;
  }
  const ssize_t n = ::send(socket_.native_handle(), data, size, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n == static_cast<ssize_t>(size)) return;
  if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    fail(true);
    return;
  }
  const std::size_t done = n > 0 ? static_cast<std::size_t>(n) : 0;
  pending_.append(data + done, size - done);
  if (!write_armed_) {
    write_armed_ = true;
    socket_.async_wait(boost::asio::ip::tcp::socket::wait_write,
                       [this](const boost::system::error_code& ec) {
                         write_armed_ = false;
                         if (!ec) flush_pending();
                       });
  }
}

void Connection::flush_pending() {
  if (state_ == State::closed || pending_.empty()) return;
  std::string out;
  out.swap(pending_);
  write_raw(out.data(), out.size());
}

void Connection::abort() {
  if (state_ == State::closed) return;
  if (welcomed_) worker_.open.fetch_sub(1, std::memory_order_relaxed);
  welcomed_ = false;
  state_ = State::closed;
  if (socket_.is_open()) {
    ::epoll_ctl(worker_.rx_epoll_, EPOLL_CTL_DEL, socket_.native_handle(), nullptr);
    set_linger_reset(socket_.native_handle());
    boost::system::error_code ignored;
    socket_.close(ignored);
  }
}

void Connection::fail(bool unexpected) {
  if (state_ == State::closed) return;
  if (state_ == State::upgrading) worker_.note_error("closed during the upgrade");
  const bool was_welcomed = welcomed_;
  const bool was_pending = state_ != State::idle && !welcomed_;
  abort();
  if (was_welcomed && unexpected) {
    worker_.unexpected_closes.fetch_add(1, std::memory_order_relaxed);
  }
  if (was_pending) worker_.connection_done(*this, false);
}

// ---------------------------------------------------------------------------------------------
// Worker

Worker::Worker(const Plan& plan, unsigned id)
    : plan_(plan),
      id_(id),
      rx_epoll_(::epoll_create1(EPOLL_CLOEXEC)),
      rx_wait_(io_, ::dup(rx_epoll_)),
      timer_(io_),
      gate_timer_(io_),
      mask_state_(0x9E3779B9U ^ (id * 0x85EBCA6BU)),
      rx_buf_(std::make_unique<char[]>(kRxBufferSize)) {
  tx_buf_.reserve(4096);
}

Worker::~Worker() {
  stop_thread();
  conns_.clear();
  ::close(rx_epoll_);
}

void Worker::arm_rx() {
  rx_wait_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                      [this](const boost::system::error_code& ec) {
                        if (!ec) on_rx_ready();
                      });
}

void Worker::on_rx_ready() {
  epoll_event events[kMaxEventsPerWake];
  const int n = ::epoll_wait(rx_epoll_, events, kMaxEventsPerWake, 0);
  for (int i = 0; i < n; ++i) static_cast<Connection*>(events[i].data.ptr)->on_readable();
  arm_rx();
}

void Worker::start_thread() {
  arm_rx();
  thread_ = std::thread([this] {
    auto guard = boost::asio::make_work_guard(io_);
    io_.run();
  });
}

void Worker::stop_thread() {
  if (!thread_.joinable()) return;
  io_.stop();
  thread_.join();
}

void Worker::post(std::function<void()> f) { boost::asio::post(io_, std::move(f)); }

std::uint32_t Worker::next_mask() noexcept {
  // xorshift32; never 0 (0 would mean "unmasked" to write_frame_header).
  std::uint32_t x = mask_state_;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  mask_state_ = x;
  return x ? x : 1;
}

void Worker::add_connection(std::uint32_t index) {
  conns_.push_back(std::make_unique<Connection>(*this, index));
  if (conns_.back()->is_publisher()) publishers_.push_back(conns_.back().get());
}

void Worker::connect_until(std::uint32_t index_limit, std::uint32_t max_in_flight) {
  max_in_flight_ = max_in_flight == 0 ? ~0U : max_in_flight;
  index_limit_ = index_limit;
  first_connect_ns.store(now_ns(), std::memory_order_relaxed);
  connect_latencies_.reserve(conns_.size());
  while (next_to_connect_ < conns_.size() && conns_[next_to_connect_]->index() < index_limit_ &&
         in_flight_ < max_in_flight_) {
    ++in_flight_;
    conns_[next_to_connect_++]->start_connect();
  }
}

void Worker::connection_done(Connection& c, bool ok) {
  const std::uint64_t now = now_ns();
  if (ok) {
    open.fetch_add(1, std::memory_order_relaxed);
    connect_latencies_.push_back(now - c.started_ns_);
    last_welcome_ns.store(now, std::memory_order_relaxed);
  } else {
    failed.fetch_add(1, std::memory_order_relaxed);
  }
  if (in_flight_ > 0) --in_flight_;
  // Start the next ones outside this call chain (c may be in the middle of a read).
  while (next_to_connect_ < conns_.size() && conns_[next_to_connect_]->index() < index_limit_ &&
         in_flight_ < max_in_flight_) {
    ++in_flight_;
    Connection* next = conns_[next_to_connect_++].get();
    boost::asio::post(io_, [next] { next->start_connect(); });
  }
}

void Worker::note_error(std::string what) {
  if (first_error_.empty()) first_error_ = std::move(what);
}

std::vector<std::uint64_t> Worker::take_connect_latencies() {
  std::vector<std::uint64_t> out;
  out.swap(connect_latencies_);
  return out;
}

void Worker::begin_step(const Schedule& schedule) {
  schedule_ = schedule;
  next_k_ = 0;
  stats_.other_messages = 0;  // what the step itself brought, not the joins' presence before it
  publishing_ = !publishers_.empty();
  if (!publishing_) return;
  if (schedule_.mode == Schedule::Mode::window) {
    const std::uint64_t now = now_ns();
    for (Connection* p : publishers_) {
      for (std::uint32_t i = 0; i < schedule_.window; ++i) publish(*p, now);
    }
    timer_.expires_at(to_steady(schedule_.end_ns));
    timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) publishing_ = false;
    });
    return;
  }
  if (schedule_.rate <= 0) {
    publishing_ = false;
    return;
  }
  arm_timer();
}

void Worker::arm_timer() {
  const double interval = 1e9 / schedule_.rate;
  const auto next = schedule_.start_ns + static_cast<std::uint64_t>(next_k_ * interval);
  timer_.expires_at(to_steady(next));
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) on_timer();
  });
}

void Worker::on_timer() {
  if (!publishing_) return;
  if (send_due(now_ns())) {
    arm_timer();
  } else {
    publishing_ = false;
  }
}

// Open loop: sends every message scheduled up to `until` not sent yet; false once the schedule's
// end is reached.
bool Worker::send_due(std::uint64_t until) {
  const double interval = 1e9 / schedule_.rate;
  const std::size_t n = publishers_.size();
  for (;;) {
    const auto t = schedule_.start_ns + static_cast<std::uint64_t>(next_k_ * interval);
    if (t >= schedule_.end_ns) return false;
    if (t > until) return true;
    // The message carries its scheduled time, however late it is sent. Its lag is read as it is
    // written, not once per burst: in a catch-up burst each message waits for the writes before it.
    if (t >= schedule_.record_from_ns && t < schedule_.record_to_ns) {
      const std::uint64_t now = now_ns();
      stats_.send_lag.record(now > t ? now - t : 0);
    }
    publish(*publishers_[next_k_ % n], t);
    ++next_k_;
  }
}

void Worker::stop_publishing() {
  // A worker that lagged behind its schedule has not sent all of the window yet: what was
  // scheduled before the end goes now (late, so its latency says so), not never.
  if (publishing_ && schedule_.mode == Schedule::Mode::open_loop && schedule_.rate > 0) {
    send_due(schedule_.end_ns);
  }
  publishing_ = false;
  deferred_.clear();
  timer_.cancel();
}

void Worker::publish(Connection& publisher, std::uint64_t t_ns) {
  if (publisher.state() != Connection::State::open) {
    ++stats_.send_errors;
    return;
  }
  const std::uint64_t seq = publisher.next_seq();
  char payload[512];
  char* out = payload;
  auto put = [&out](std::string_view s) {
    std::memcpy(out, s.data(), s.size());
    out += s.size();
  };
  auto put_number = [&out](std::uint64_t v) { out = std::to_chars(out, out + 24, v).ptr; };
  if (plan_.protocol == WireProtocol::socketio) put("42[\"message\",");
  put("{\"type\":\"chat\",\"data\":{\"s\":");
  put_number(seq);
  put(",\"t\":");
  put_number(t_ns);
  put(",\"p\":");
  put_number(publisher.index());
  const std::uint32_t pad = std::min<std::uint32_t>(plan_.payload_pad, 400);
  if (pad > 0) {
    put(",\"x\":\"");
    std::memset(out, 'x', pad);
    out += pad;
    put("\"");
  }
  put("}}");
  if (plan_.protocol == WireProtocol::socketio) put("]");

  ++stats_.sent;
  if (t_ns >= schedule_.record_from_ns && t_ns < schedule_.record_to_ns) ++stats_.sent_window;
  const std::uint64_t room_size = plan_.room_size(plan_.room_of(publisher.index()));
  stats_.expected += room_size;
  expected_ += room_size;
  expected_total.store(expected_, std::memory_order_relaxed);
  publisher.send_text(std::string_view(payload, static_cast<std::size_t>(out - payload)));
}

void Worker::on_delivery(Connection& receiver, std::uint64_t seq, std::uint64_t t_ns,
                         std::uint32_t publisher, std::uint64_t now) {
  if (publisher >= plan_.publishers || !receiver.seq_windows_ ||
      plan_.room_of(publisher) != plan_.room_of(receiver.index())) {
    // Not a message this socket's room was sent: a server's routing error, and no delivery (it
    // must not make up for a lost one).
    ++stats_.misrouted;
    return;
  }
  Connection::SeqWindow& w = receiver.seq_windows_[publisher / plan_.rooms];
  if (seq > w.highest) {
    const std::uint64_t shift = seq - w.highest;
    w.below = shift >= 64 ? 0 : w.below << shift;
    if (w.highest != 0 && shift <= 64) w.below |= 1ULL << (shift - 1);  // the old highest
    w.highest = seq;
  } else {
    // A duplicate is not a delivery: it must not make up for a lost one.
    const std::uint64_t back = w.highest - seq;  // 0: the highest itself
    if (back == 0) {
      ++stats_.duplicates;
      return;
    }
    if (back <= 64) {
      const std::uint64_t bit = 1ULL << (back - 1);
      if (w.below & bit) {
        ++stats_.duplicates;
        return;
      }
      w.below |= bit;
    }
    // A first copy that came late. Older than the 64 numbers tracked, a repeat cannot be told from
    // one: it counts as reordered and as a delivery too, so only a duplicate that far behind the
    // publisher's latest could still hide a loss.
    ++stats_.reordered;
  }
  ++stats_.delivered;
  ++delivered_;
  delivered_total.store(delivered_, std::memory_order_relaxed);
  if (now >= schedule_.record_from_ns && now < schedule_.record_to_ns) ++stats_.received_window;
  if (t_ns >= schedule_.record_from_ns && t_ns < schedule_.record_to_ns) {
    ++stats_.delivered_window;
    const std::uint64_t latency = now > t_ns ? now - t_ns : 0;
    if (publisher < plan_.connections && plan_.target_of(publisher) != receiver.target_) {
      stats_.cross_pod.record(latency);
    } else {
      stats_.same_pod.record(latency);
    }
  }
  if (publishing_ && schedule_.mode == Schedule::Mode::window && publisher == receiver.index()) {
    // Closed loop: our own message came back; send the next one unless too many deliveries to
    // the other members are still outstanding.
    if (deferred_.empty() && outstanding() < schedule_.max_outstanding) {
      publish(receiver, now);
    } else {
      deferred_.push_back(&receiver);
      release_deferred();
    }
  }
}

std::uint64_t Worker::outstanding() const noexcept {
  if (siblings_ == nullptr) return expected_ - std::min(expected_, delivered_);
  std::uint64_t expected = 0, delivered = 0;
  for (const auto& w : *siblings_) {
    expected += w->expected_total.load(std::memory_order_relaxed);
    delivered += w->delivered_total.load(std::memory_order_relaxed);
  }
  return expected - std::min(expected, delivered);
}

void Worker::release_deferred() {
  while (!deferred_.empty() && publishing_ && outstanding() < schedule_.max_outstanding) {
    Connection* p = deferred_.back();
    deferred_.pop_back();
    publish(*p, now_ns());
  }
  if (!publishing_) deferred_.clear();
  if (deferred_.empty() || gate_armed_) return;
  gate_armed_ = true;
  gate_timer_.expires_after(std::chrono::microseconds(100));
  gate_timer_.async_wait([this](const boost::system::error_code& ec) {
    gate_armed_ = false;
    if (!ec) release_deferred();
  });
}

StepStats Worker::take_stats() {
  StepStats out = stats_;
  stats_.sent = stats_.expected = stats_.delivered = stats_.delivered_window = 0;
  stats_.received_window = 0;
  stats_.sent_window = stats_.reordered = stats_.duplicates = stats_.other_messages = 0;
  stats_.misrouted = 0;
  stats_.send_errors = 0;
  stats_.same_pod.reset();
  stats_.cross_pod.reset();
  stats_.send_lag.reset();
  return out;
}

void Worker::abort_all() {
  stop_publishing();
  for (auto& c : conns_) c->abort();
}

}  // namespace realtime::bench
