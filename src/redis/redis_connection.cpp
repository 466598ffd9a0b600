#include "redis/redis_connection.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>

#include <arpa/inet.h>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <fmt/format.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

namespace realtime::detail {
namespace asio = boost::asio;

// ---------------------------------------------------------------------------------------------
// Errors

namespace {

class RedisCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "redis"; }
  std::string message(int value) const override {
    switch (static_cast<RedisErrc>(value)) {
      case RedisErrc::not_connected:
        return "not connected to Redis";
      case RedisErrc::queue_full:
        return "too many Redis commands awaiting replies";
      case RedisErrc::connection_lost:
        return "Redis connection lost before the reply";
      case RedisErrc::connect_failed:
        return "cannot connect to Redis";
      case RedisErrc::resolve_failed:
        return "cannot resolve the Redis host";
      case RedisErrc::timeout:
        return "Redis timed out";
      case RedisErrc::handshake_failed:
        return "Redis refused a step of the connection's setup";
      case RedisErrc::server_error:
        return "Redis returned an error";
      case RedisErrc::bad_command:
        return "bad Redis command";
    }
    return "unknown Redis error";
  }
};

bool is_pubsub_verb(std::string_view verb) {
  static constexpr std::array<std::string_view, 5> kVerbs = {
      "subscribe", "unsubscribe", "psubscribe", "punsubscribe", "monitor"};
  return std::any_of(kVerbs.begin(), kVerbs.end(), [verb](std::string_view v) {
    return v.size() == verb.size() &&
           std::equal(v.begin(), v.end(), verb.begin(), [](char a, char b) {
             return a == std::tolower(static_cast<unsigned char>(b));
           });
  });
}

// Room for the argument pointers of common commands without touching the heap.
constexpr std::size_t kInlineArgs = 8;

// Per-argument framing Redis adds ("$<len>\r\n...\r\n"), counted towards max_pending_bytes.
constexpr std::size_t kArgOverhead = 16;

// A server (a proxy, an ACL) that does not let this connection run a command: an optional step of
// the handshake (CLIENT SETNAME, INFO) is then done without.
bool refused(const RedisReply& reply) {
  return reply.type == RedisReply::Type::error &&
         (reply.str.starts_with("NOPERM") || reply.str.find("unknown") != std::string::npos);
}

}  // namespace

std::string info_field(std::string_view info, std::string_view field) {
  for (std::size_t line = 0; line < info.size();) {
    std::size_t end = info.find('\n', line);
    if (end == std::string_view::npos) end = info.size();
    std::string_view text = info.substr(line, end - line);
    if (text.ends_with('\r')) text.remove_suffix(1);
    if (text.size() > field.size() && text.starts_with(field) && text[field.size()] == ':') {
      return std::string(text.substr(field.size() + 1));
    }
    line = end + 1;
  }
  return {};
}

RedisReply to_reply(const redisReply& r) {
  RedisReply out;
  switch (r.type) {
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::status;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = RedisReply::Type::error;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::string;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::integer;
      out.integer = r.integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::array;
      out.elements.reserve(r.elements);
      for (std::size_t i = 0; i < r.elements; ++i) out.elements.push_back(to_reply(*r.element[i]));
      break;
    default:
      out.type = RedisReply::Type::nil;
      break;
  }
  return out;
}

const std::error_category& redis_category() noexcept {
  static const RedisCategory category;
  return category;
}

std::error_code make_error_code(RedisErrc e) noexcept {
  return {static_cast<int>(e), redis_category()};
}

// ---------------------------------------------------------------------------------------------
// Backoff

std::optional<std::string> FailureLog::next() {
  const auto now = std::chrono::steady_clock::now();
  if (last_ != std::chrono::steady_clock::time_point{} && now - last_ < interval_) {
    ++left_out_;
    return std::nullopt;
  }
  std::string note =
      left_out_ == 0 ? std::string() : fmt::format("; {} more failed attempts", left_out_);
  left_out_ = 0;
  last_ = now;
  return note;
}

void FailureLog::reset() noexcept {
  last_ = {};
  left_out_ = 0;
}

Backoff::Backoff(Options options) : options_(options), rng_(std::random_device{}()) {}

std::chrono::milliseconds Backoff::next() {
  const auto base = std::max<std::int64_t>(options_.base.count(), 1);
  const auto cap = std::max<std::int64_t>(options_.cap.count(), base);
  // Doubling past 2^20 overflows nothing but is meaningless: the cap has long been reached.
  const unsigned shift = std::min(attempt_, 20U);
  const std::int64_t ceiling = std::min(cap, base << shift);
  ++attempt_;
  std::uniform_int_distribution<std::int64_t> pick(0, ceiling);
  return std::chrono::milliseconds(pick(rng_));
}

// ---------------------------------------------------------------------------------------------
// Link: the hiredis event hooks on an Asio descriptor.
//
// hiredis asks for read/write interest level-style (add/del may repeat); Asio waits are one-shot.
// `want_*` is what hiredis asked for, `*_armed` whether an async_wait is outstanding; a completed
// wait re-arms while interest lasts. hiredis owns and closes the fd: cleanup() release()s it.
// hiredis may free the context inside redisAsyncHandleRead/Write (an error, close() from a
// callback): cleanup() then nulls `ac`, which every handler checks after calling into hiredis.

struct RedisConnection::Link : std::enable_shared_from_this<RedisConnection::Link> {
  explicit Link(asio::io_context& io) : sd(io) {}

  asio::posix::stream_descriptor sd;
  redisAsyncContext* ac = nullptr;   // null once hiredis cleaned the context up
  RedisConnection* owner = nullptr;  // null once the owner let go of this context
  bool deliver = true;               // false once the owner is destroyed: drop reply handlers
  std::shared_ptr<Link> self;        // hiredis holds a raw pointer: keep alive until cleanup
  bool want_read = false;
  bool want_write = false;
  bool read_armed = false;
  bool write_armed = false;

  void arm_read() {
    if (read_armed || !want_read || ac == nullptr) return;
    read_armed = true;
    sd.async_wait(asio::posix::stream_descriptor::wait_read,
                  [l = shared_from_this()](const boost::system::error_code& ec) {
                    l->read_armed = false;
                    if (ec || l->ac == nullptr || !l->want_read) return;
                    if (l->owner != nullptr) ++l->owner->stats_.read_events;
                    redisAsyncHandleRead(l->ac);  // may free the context
                    l->arm_read();
                  });
  }

  void arm_write() {
    if (write_armed || !want_write || ac == nullptr) return;
    write_armed = true;
    sd.async_wait(asio::posix::stream_descriptor::wait_write,
                  [l = shared_from_this()](const boost::system::error_code& ec) {
                    l->write_armed = false;
                    if (ec || l->ac == nullptr || !l->want_write) return;
                    if (l->owner != nullptr && (l->ac->c.flags & REDIS_CONNECTED) != 0) {
                      ++l->owner->stats_.write_events;
                    }
                    redisAsyncHandleWrite(l->ac);  // may free the context
                    l->arm_write();
                  });
  }

  static Link* from(void* p) { return static_cast<Link*>(p); }
  static Link* from(const redisAsyncContext* ac) { return static_cast<Link*>(ac->data); }

  static void add_read(void* p) {
    from(p)->want_read = true;
    from(p)->arm_read();
  }
  static void del_read(void* p) { from(p)->want_read = false; }
  static void add_write(void* p) {
    from(p)->want_write = true;
    from(p)->arm_write();
  }
  static void del_write(void* p) { from(p)->want_write = false; }

  static void cleanup(void* p) {
    Link* l = from(p);
    l->want_read = l->want_write = false;
    l->ac = nullptr;
    l->sd.release();  // cancels our waits; hiredis closes the fd
    // hiredis still passes the context (and so this Link) to the disconnect callback after this
    // hook: let go of the self-reference on a later turn.
    asio::post(l->sd.get_executor(), [self = std::move(l->self)] {});
  }

  static void on_connect(const redisAsyncContext* ac, int status) {
    Link* l = from(ac);
    if (l->owner == nullptr) return;
    if (status != REDIS_OK) {
      // hiredis frees the context right after this callback: do not free it here.
      l->ac = nullptr;
      l->owner->drop_link(RedisErrc::connect_failed,
                          ac->errstr[0] != '\0' ? ac->errstr : "connect failed", false, true);
      return;
    }
    l->owner->on_tcp_connected();
  }

  static void on_disconnect(const redisAsyncContext* ac, int status) {
    Link* l = from(ac);
    if (l->owner == nullptr) return;
    l->ac = nullptr;  // being freed by hiredis
    const std::string reason = status == REDIS_OK || ac->errstr[0] == '\0'
                                   ? std::string("connection closed")
                                   : std::string(ac->errstr);
    l->owner->drop_link(RedisErrc::connection_lost, reason, false, true);
  }

  static void on_reply(redisAsyncContext* ac, void* reply, void* privdata);
  static void on_push_reply(redisAsyncContext* ac, void* reply, void* privdata);
};

struct RedisConnection::PendingCommand {
  ReplyHandler done;
  std::size_t bytes = 0;
};

void RedisConnection::Link::on_reply(redisAsyncContext* ac, void* reply, void* privdata) {
  std::unique_ptr<PendingCommand> cmd(static_cast<PendingCommand*>(privdata));
  Link* l = from(ac);
  if (l->owner != nullptr) l->owner->note_reply(cmd->bytes);
  if (!l->deliver || !cmd->done) return;
  if (reply == nullptr) {
    // The context is being freed: complete on a later turn, outside hiredis.
    asio::post(l->sd.get_executor(), [done = std::move(cmd->done)] {
      done(make_error_code(RedisErrc::connection_lost), RedisReply{});
    });
    return;
  }
  const auto* r = static_cast<const redisReply*>(reply);
  const RedisReply converted = to_reply(*r);
  const std::error_code ec =
      r->type == REDIS_REPLY_ERROR ? make_error_code(RedisErrc::server_error) : std::error_code{};
  cmd->done(ec, converted);
}

void RedisConnection::Link::on_push_reply(redisAsyncContext* ac, void* reply, void*) {
  Link* l = from(ac);
  if (reply == nullptr || l->owner == nullptr || !l->owner->on_push_) return;
  const auto* r = static_cast<const redisReply*>(reply);
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
      r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING) {
    return;
  }
  const std::string_view kind(r->element[0]->str, r->element[0]->len);
  RedisPush push;
  push.channel = std::string_view(r->element[1]->str, r->element[1]->len);
  if (kind == "message" && r->element[2]->type == REDIS_REPLY_STRING) {
    push.kind = RedisPush::Kind::message;
    push.payload = std::string_view(r->element[2]->str, r->element[2]->len);
  } else if (kind == "subscribe") {
    push.kind = RedisPush::Kind::subscribed;
    push.count = r->element[2]->integer;
  } else if (kind == "unsubscribe") {
    push.kind = RedisPush::Kind::unsubscribed;
    push.count = r->element[2]->integer;
  } else {
    return;
  }
  l->owner->on_push_(push);
}

// ---------------------------------------------------------------------------------------------
// RedisConnection

RedisConnection::RedisConnection(asio::io_context& io, RedisConnectionOptions options,
                                 std::shared_ptr<spdlog::logger> log)
    : io_(io),
      options_(std::move(options)),
      log_(log ? std::move(log) : spdlog::default_logger()),
      resolver_(io),
      connect_timer_(io) {}

RedisConnection::~RedisConnection() {
  if (link_) link_->deliver = false;
  drop_link(RedisErrc::connection_lost, "destroyed", true, false);
}

void RedisConnection::connect() {
  if (state_ != State::disconnected) return;
  state_ = State::connecting;
  const std::uint64_t attempt = ++attempt_;

  connect_timer_.expires_after(options_.connect_timeout);
  connect_timer_.async_wait(guarded(alive_, [this, attempt](const boost::system::error_code& ec) {
    if (ec || attempt != attempt_ || state_ != State::connecting) return;
    drop_link(RedisErrc::timeout,
              fmt::format("connect timed out after {} ms", options_.connect_timeout.count()), true,
              true);
  }));

  const std::string& host = options_.url.host;
  in6_addr scratch{};
  if (inet_pton(AF_INET, host.c_str(), &scratch) == 1 ||
      inet_pton(AF_INET6, host.c_str(), &scratch) == 1) {
    start_tcp(host);
    return;
  }
  // A name: getaddrinfo may block, so it runs on Asio's resolver thread.
  resolver_.async_resolve(
      host, std::to_string(options_.url.port),
      guarded(alive_, [this, attempt](const boost::system::error_code& ec,
                                      const asio::ip::tcp::resolver::results_type& results) {
        if (attempt != attempt_ || state_ != State::connecting) return;
        if (ec || results.empty()) {
          drop_link(RedisErrc::resolve_failed,
                    fmt::format("cannot resolve {}: {}", options_.url.host,
                                ec ? ec.message() : std::string("no address")),
                    true, true);
          return;
        }
        // Prefer IPv4: Redis is commonly bound to 127.0.0.1 only while "localhost" lists ::1 first.
        auto chosen = results.begin();
        for (auto it = results.begin(); it != results.end(); ++it) {
          if (it->endpoint().address().is_v4()) {
            chosen = it;
            break;
          }
        }
        start_tcp(chosen->endpoint().address().to_string());
      }));
}

void RedisConnection::start_tcp(const std::string& ip) {
  redisAsyncContext* ac = redisAsyncConnect(ip.c_str(), options_.url.port);
  if (ac == nullptr || ac->err != 0) {
    const std::string reason = ac != nullptr ? std::string(ac->errstr) : "out of memory";
    if (ac != nullptr) redisAsyncFree(ac);
    drop_link(RedisErrc::connect_failed,
              fmt::format("cannot connect to {}:{}: {}", ip, options_.url.port, reason), true,
              true);
    return;
  }
  auto link = std::make_shared<Link>(io_);
  boost::system::error_code ec;
  link->sd.assign(ac->c.fd, ec);
  if (ec) {
    redisAsyncFree(ac);
    drop_link(RedisErrc::connect_failed, "cannot watch the Redis socket: " + ec.message(), true,
              true);
    return;
  }
  link->ac = ac;
  link->owner = this;
  link->self = link;
  ac->data = link.get();
  ac->ev.data = link.get();
  // The hooks go in before the connect callback: setting it asks for a write event, and a
  // context with no hook installed by then never connects.
  ac->ev.addRead = &Link::add_read;
  ac->ev.delRead = &Link::del_read;
  ac->ev.addWrite = &Link::add_write;
  ac->ev.delWrite = &Link::del_write;
  ac->ev.cleanup = &Link::cleanup;
  link_ = std::move(link);
  redisAsyncSetDisconnectCallback(ac, &Link::on_disconnect);
  redisAsyncSetConnectCallback(ac, &Link::on_connect);
}

void RedisConnection::on_tcp_connected() {
  // Runs inside hiredis' connect callback: queue the handshake only (no user code here).
  handshake_left_ = 0;
  auto step = [this](std::vector<std::string_view> args, const char* name) {
    if (handshake_send(std::move(args), [this, name](std::error_code e, const RedisReply& reply) {
          on_handshake_reply(e, reply, name);
        })) {
      ++handshake_left_;
    }
  };
  const RedisUrl& url = options_.url;
  const std::string db = std::to_string(url.db);
  if (!url.password.empty()) {
    if (url.username.empty()) {
      step({"AUTH", url.password}, "AUTH");
    } else {
      step({"AUTH", url.username, url.password}, "AUTH");
    }
  }
  if (url.db != 0) step({"SELECT", db}, "SELECT");
  if (!options_.client_name.empty()) {
    step({"CLIENT", "SETNAME", options_.client_name}, "CLIENT SETNAME");
  }
  // The last step proves the server answers (a stopped server still completes TCP handshakes).
  step({"PING"}, "PING");
}

bool RedisConnection::handshake_send(std::vector<std::string_view> args, ReplyHandler next) {
  const std::error_code ec = send(
      args,
      [this, weak = std::weak_ptr<int>(alive_), attempt = attempt_, next = std::move(next)](
          std::error_code e, const RedisReply& reply) {
        if (weak.expired() || attempt != attempt_ || state_ != State::connecting) return;
        next(e, reply);
      },
      true);
  return !ec;
}

void RedisConnection::on_handshake_reply(std::error_code ec, const RedisReply& reply,
                                         const char* step) {
  if (ec && std::string_view(step) == "CLIENT SETNAME" && refused(reply)) {
    // The name only labels the connection in CLIENT LIST: a server (or a proxy, or an ACL) that
    // refuses CLIENT is no reason not to connect.
    log_->warn("redis: CLIENT SETNAME {} refused ({}); going on without a connection name",
               options_.client_name, reply.str);
    ec = {};
  }
  if (ec) return fail_handshake(ec, reply, step);
  if (--handshake_left_ == 0) {
    if (options_.restart_check_script.empty()) {
      become_ready();
    } else {
      check_restart();
    }
  }
}

void RedisConnection::fail_handshake(std::error_code ec, const RedisReply& reply,
                                     std::string_view step) {
  const std::string detail = reply.type == RedisReply::Type::error ? reply.str : ec.message();
  drop_link(ec == RedisErrc::connection_lost ? ec : make_error_code(RedisErrc::handshake_failed),
            fmt::format("{} failed: {}", step, detail), true, true);
}

// The handshake's last step: INFO server for the run_id, then the check script with it. A server
// that refuses INFO (an ACL without it, a proxy that does not pass it) is used without the check,
// and the process says so once; any other error (the script refused: NOREPLICAS, READONLY, OOM,
// BUSY) fails the handshake, and the connection tries again later: numbering on a Redis that may
// hold older data is what the check is for.
void RedisConnection::check_restart() {
  const bool sent =
      handshake_send({"INFO", "server"}, [this](std::error_code ec, const RedisReply& reply) {
        if (ec && refused(reply)) {
          static std::atomic<bool> warned{false};
          if (!warned.exchange(true)) {
            log_->warn(
                "redis: INFO refused ({}): without it a Redis back with older data (an older "
                "snapshot, a replica behind) cannot be told from one that kept its data, and ids "
                "may repeat; see OPERATIONS.md, \"Redis access\"",
                reply.str);
          }
          return become_ready();
        }
        if (ec) return fail_handshake(ec, reply, "INFO");
        const std::string run_id = info_field(reply.str, "run_id");
        if (run_id.empty()) {
          return fail_handshake(make_error_code(RedisErrc::handshake_failed), {},
                                "INFO server (no run_id)");
        }
        const bool checking = handshake_send(
            {"EVAL", options_.restart_check_script, "0", run_id},
            [this, run_id](std::error_code e, const RedisReply& answer) {
              if (e) return fail_handshake(e, answer, "the restart check");
              if (answer.type == RedisReply::Type::integer && answer.integer > 0) {
                log_->info(
                    "redis: a Redis run ({}) other than the one the rooms were numbered on: {} "
                    "rooms' numbering dropped (their next messages start a new epoch)",
                    run_id, answer.integer);
              }
              server_run_ = run_id;
              become_ready();
            });
        if (!checking) fail_handshake(make_error_code(RedisErrc::handshake_failed), {}, "EVAL");
      });
  if (!sent) fail_handshake(make_error_code(RedisErrc::handshake_failed), {}, "INFO");
}

void RedisConnection::become_ready() {
  state_ = State::ready;
  ++stats_.connects;
  connect_timer_.cancel();
  log_->debug("redis {}: connected to {}", options_.client_name, to_redacted_string(options_.url));
  // Not delivered if close() or another connect() supersedes this connection meanwhile.
  asio::post(io_, guarded(alive_, [this, attempt = attempt_] {
               if (attempt == attempt_ && on_connected_) on_connected_();
             }));
}

void RedisConnection::close() { drop_link(RedisErrc::connection_lost, "closed", true, false); }

void RedisConnection::drop_link(std::error_code ec, const std::string& reason, bool free_context,
                                bool notify) {
  const bool was_active = state_ != State::disconnected;
  state_ = State::disconnected;
  ++attempt_;  // stale resolve, timer and handshake completions now ignore themselves
  connect_timer_.cancel();
  resolver_.cancel();
  handshake_left_ = 0;
  pending_ = 0;
  pending_bytes_ = 0;
  sent_at_.clear();
  if (auto link = std::move(link_)) {
    link->owner = nullptr;
    if (free_context && link->ac != nullptr) {
      redisAsyncContext* ac = link->ac;
      // Inside a hiredis callback this only marks the context; hiredis frees it on return.
      redisAsyncFree(ac);
    }
  }
  if (notify && was_active) post_disconnected(ec, reason);
}

void RedisConnection::post_disconnected(std::error_code ec, std::string reason) {
  asio::post(io_, guarded(alive_, [this, ec, reason = std::move(reason), attempt = attempt_] {
               if (attempt == attempt_ && on_disconnected_) on_disconnected_(ec, reason);
             }));
}

void RedisConnection::note_reply(std::size_t bytes) {
  if (pending_ == 0) return;
  --pending_;
  pending_bytes_ -= std::min(pending_bytes_, bytes);
  if (!sent_at_.empty()) sent_at_.pop_front();
}

std::chrono::steady_clock::duration RedisConnection::oldest_pending_age() const {
  if (sent_at_.empty()) return std::chrono::steady_clock::duration::zero();
  return std::chrono::steady_clock::now() - sent_at_.front();
}

std::error_code RedisConnection::command(std::span<const std::string_view> args,
                                         ReplyHandler done) {
  if (state_ != State::ready) return RedisErrc::not_connected;
  if (args.empty() || is_pubsub_verb(args.front())) return RedisErrc::bad_command;
  if (closed_by_server()) return RedisErrc::not_connected;
  return send(args, std::move(done), false);
}

// Whether the server has closed the connection (its end of stream, or a reset, waits in the
// socket with nothing before it) though the read event that tells hiredis has not run yet: Redis
// closed it (CLIENT KILL, a restart, its timeout) in this turn of the loop. A command written now
// could not be run, yet would fail as "lost before the reply", which leaves its caller unsure
// whether Redis ran it; so the connection is no longer ready from here on (`closing`: command()
// refuses with not_connected, connect() waits), and the read event drops it and reports the loss
// as for any close. Only while no reply is awaited (bytes of one may precede the close): one
// non-blocking peek per command on an idle connection, which is every call of a lane (one call in
// flight at a time).
bool RedisConnection::closed_by_server() {
  if (pending_ != 0 || !link_ || link_->ac == nullptr) return false;
  char byte = 0;
  const ssize_t n = ::recv(link_->ac->c.fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n != 0 && !(n < 0 && (errno == ECONNRESET || errno == EPIPE || errno == ETIMEDOUT ||
                            errno == EHOSTUNREACH || errno == ENOTCONN))) {
    return false;  // open (or an error that is not the connection's end: left to hiredis)
  }
  state_ = State::closing;
  // The read event is armed (hiredis reads after every write, the handshake's included); a read
  // on a later turn makes sure of it, and does nothing once the read event has dropped the link.
  asio::post(io_, [link = link_] {
    if (link->ac != nullptr && link->owner != nullptr) redisAsyncHandleRead(link->ac);
  });
  return true;
}

std::error_code RedisConnection::command(const std::vector<std::string>& args, ReplyHandler done) {
  std::vector<std::string_view> views(args.begin(), args.end());
  return command(std::span<const std::string_view>(views), std::move(done));
}

std::error_code RedisConnection::send(std::span<const std::string_view> args, ReplyHandler done,
                                      bool internal) {
  if (!link_ || link_->ac == nullptr) return RedisErrc::not_connected;
  std::size_t bytes = 0;
  for (const auto& a : args) bytes += a.size() + kArgOverhead;
  if (!internal &&
      (pending_ >= options_.max_pending || pending_bytes_ + bytes > options_.max_pending_bytes)) {
    return RedisErrc::queue_full;
  }

  std::array<const char*, kInlineArgs> argv_inline{};
  std::array<std::size_t, kInlineArgs> lens_inline{};
  std::vector<const char*> argv_heap;
  std::vector<std::size_t> lens_heap;
  const char** argv = argv_inline.data();
  std::size_t* lens = lens_inline.data();
  if (args.size() > kInlineArgs) {
    argv_heap.resize(args.size());
    lens_heap.resize(args.size());
    argv = argv_heap.data();
    lens = lens_heap.data();
  }
  for (std::size_t i = 0; i < args.size(); ++i) {
    argv[i] = args[i].data();
    lens[i] = args[i].size();
  }

  auto cmd = std::make_unique<PendingCommand>(PendingCommand{std::move(done), bytes});
  if (redisAsyncCommandArgv(link_->ac, &Link::on_reply, cmd.get(), static_cast<int>(args.size()),
                            argv, lens) != REDIS_OK) {
    return RedisErrc::bad_command;
  }
  (void)cmd.release();  // hiredis hands it back to Link::on_reply exactly once
  ++pending_;
  pending_bytes_ += bytes;
  sent_at_.push_back(std::chrono::steady_clock::now());
  ++stats_.commands;
  return {};
}

std::error_code RedisConnection::subscribe(std::span<const std::string> channels) {
  return send_pubsub("SUBSCRIBE", channels);
}

std::error_code RedisConnection::unsubscribe(std::span<const std::string> channels) {
  return send_pubsub("UNSUBSCRIBE", channels);
}

std::error_code RedisConnection::send_pubsub(std::string_view verb,
                                             std::span<const std::string> channels) {
  if (state_ != State::ready || !link_ || link_->ac == nullptr) return RedisErrc::not_connected;
  if (channels.empty()) return {};
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  argv.reserve(channels.size() + 1);
  lens.reserve(channels.size() + 1);
  argv.push_back(verb.data());
  lens.push_back(verb.size());
  for (const auto& c : channels) {
    argv.push_back(c.data());
    lens.push_back(c.size());
  }
  // Subscribe-mode replies and messages go to one callback per channel; its privdata is the Link,
  // which lives as long as the context.
  if (redisAsyncCommandArgv(link_->ac, &Link::on_push_reply, link_.get(),
                            static_cast<int>(argv.size()), argv.data(), lens.data()) != REDIS_OK) {
    return RedisErrc::bad_command;
  }
  ++stats_.commands;
  return {};
}

}  // namespace realtime::detail
