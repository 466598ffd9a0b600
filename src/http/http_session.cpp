// HTTP on an accepted socket: requests for the API, and the WebSocket upgrade of /ws and
// /ws/{room}. The one translation unit that includes Beast (HTTP parsing and serialising only;
// WebSocket framing is the project's own, see src/protocol/ws_frame.hpp and docs/ARCHITECTURE.md).
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <list>
#include <memory>
#include <optional>
#include <utility>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <unistd.h>

#include "http/api.hpp"
#include "http/handler_core.hpp"
#include "hub/shard.hpp"
#include "protocol/envelope.hpp"
#include "protocol/request.hpp"
#include "realtime/error.hpp"
#include "session/rate_carry.hpp"
#include "session/ws_session.hpp"

namespace realtime::detail {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr std::size_t kHeaderLimit = std::size_t{8} * 1024;  // request line + headers; larger: 431
// What the read buffer may hold: the headers, then what the parser has not taken yet (a chunk's
// size line and extensions, a trailer, a pipelined request's start). The body goes to the message
// as it arrives, within --max-message-bytes; without this bound, a chunk extension or a trailer
// line that never ends would be buffered whole. Past it, the request is refused with 400.
constexpr std::size_t kReadBufferLimit = kHeaderLimit + std::size_t{64} * 1024;
// After a refusal, how long unread input is drained before the socket is closed.
constexpr std::chrono::milliseconds kLinger{500};
constexpr std::string_view kWebSocketGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

// A socket descriptor between two loops (released by one, not yet adopted by the other): closed if
// the hand-off never completes.
struct OwnedDescriptor {
  explicit OwnedDescriptor(int descriptor) noexcept : fd(descriptor) {}
  ~OwnedDescriptor() {
    if (fd >= 0) ::close(fd);
  }
  OwnedDescriptor(const OwnedDescriptor&) = delete;
  OwnedDescriptor& operator=(const OwnedDescriptor&) = delete;
  OwnedDescriptor(OwnedDescriptor&&) = delete;
  OwnedDescriptor& operator=(OwnedDescriptor&&) = delete;
  int fd;
};

// Sec-WebSocket-Accept for a client key (RFC 6455 4.2.2).
std::string accept_key(std::string_view key) {
  std::string input(key);
  input += kWebSocketGuid;
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  unsigned char encoded[4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1];
  const int n = EVP_EncodeBlock(encoded, digest, SHA_DIGEST_LENGTH);
  return {reinterpret_cast<const char*>(encoded), static_cast<std::size_t>(n)};
}

// Whether an Authorization field names the Bearer scheme anywhere (case-insensitively, as a word:
// "Bearer,T" and "Basic x, Bearer T" do), so that a Bearer credential this server cannot read
// is refused rather than ignored as another scheme's.
bool mentions_bearer(std::string_view field) {
  constexpr std::string_view kScheme = "bearer";
  const auto boundary = [](char c) { return c == ' ' || c == '\t' || c == ','; };
  for (std::size_t at = 0; at + kScheme.size() <= field.size(); ++at) {
    if (at > 0 && !boundary(field[at - 1])) continue;
    const std::size_t end = at + kScheme.size();
    if (end < field.size() && !boundary(field[end])) continue;
    if (beast::iequals(field.substr(at, kScheme.size()), kScheme)) return true;
  }
  return false;
}

// A valid Sec-WebSocket-Key is the base64 of 16 bytes: 22 characters and "==".
bool valid_client_key(std::string_view key) {
  if (key.size() != 24 || key.substr(22) != "==") return false;
  for (char c : key.substr(0, 22)) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '+' || c == '/';
    if (!ok) return false;
  }
  return true;
}

// Transfer-Encoding, when present, must end with "chunked" and come without Content-Length.
bool framing_is_safe(const http::request<http::string_body>& req) {
  const auto te = req.find(http::field::transfer_encoding);
  if (te == req.end()) return true;
  if (req.find(http::field::content_length) != req.end()) return false;
  std::string_view codings(te->value());
  const auto comma = codings.rfind(',');
  std::string_view last = comma == std::string_view::npos ? codings : codings.substr(comma + 1);
  while (!last.empty() && (last.front() == ' ' || last.front() == '\t')) last.remove_prefix(1);
  while (!last.empty() && (last.back() == ' ' || last.back() == '\t')) last.remove_suffix(1);
  return beast::iequals(last, "chunked");
}

class HttpSession final : public std::enable_shared_from_this<HttpSession>,
                          public Shard::HttpWaiter {
 public:
  HttpSession(std::shared_ptr<HandlerCore> handler, Shard& shard, TcpSocket socket)
      : handler_(std::move(handler)),
        shard_(shard),
        socket_(std::move(socket)),
        timer_(shard.context()) {
    buffer_.max_size(kReadBufferLimit);
    boost::system::error_code ignored;  // (then the unspecified address: one bucket for all such)
    peer_ = socket_.remote_endpoint(ignored).address();
    peer_key_ = client_address_key(peer_);
  }
  ~HttpSession() override { stop_waiting(); }
  HttpSession(const HttpSession&) = delete;
  HttpSession(HttpSession&&) = delete;
  HttpSession& operator=(const HttpSession&) = delete;
  HttpSession& operator=(HttpSession&&) = delete;

  void start() { do_read(); }

  // The longest waiting of too many connections reading a request or being sent a response:
  // closed (its pending read or write fails, and the session ends).
  void evict() override {
    stop_waiting();
    timer_.cancel();
    boost::system::error_code ignored;
    socket_.close(ignored);
  }

 private:
  // The headers first: what they decide (an upgrade, a refusal) needs no body buffered.
  void do_read() {
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    parser_->body_limit(handler_->config().max_message_bytes + 1);
    arm_deadline(handler_->config().handshake_timeout);
    start_waiting();
    http::async_read_header(
        socket_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_header(ec); });
  }

  // Among the shard's connections reading a request or being sent a response, this one now the
  // newest; one closed when there would be more than this thread's share of
  // HandlerConfig::max_http_waiting (see Shard::HttpWaiting::victim). (Each request's read and
  // each response's write start here; a request's read ends in on_read(), which leaves the list.)
  void start_waiting() {
    auto& waiting = shard_.http_waiting();
    if (waiting_at_) {
      // From its response to its next request: already counted, it moves to the newest place
      // without closing another. (From a request to its response it left the list, in on_read():
      // the response counts as a new one.)
      waiting.touch(*waiting_at_);
      return;
    }
    const std::size_t cap = std::max<std::size_t>(
        1, handler_->config().max_http_waiting / handler_->core().shard_count());
    while (waiting.size() >= cap) waiting.victim()->evict();
    waiting_at_ = waiting.add(this, peer_key_);
  }
  void stop_waiting() noexcept {
    if (!waiting_at_) return;
    shard_.http_waiting().remove(*waiting_at_);
    waiting_at_.reset();
  }

  void on_header(beast::error_code ec) {
    // (Evicted after the read completed: on_read() closes.)
    if (ec || parser_->is_done() || !socket_.is_open()) return on_read(ec);
    // A body follows. An upgrade takes none; a request its headers refuse is answered without it.
    const auto& req = parser_->get();
    if (!framing_is_safe(req)) return on_read(ec);  // refused there
    const auto target = protocol::parse_ws_target(std::string_view(req.target()));
    if (target.kind != protocol::WsTarget::Kind::not_ws) {
      handler_->metrics().reject(RejectReason::bad_request);
      return fail(400, "a WebSocket upgrade has no body");
    }
    // Answered without reading the body, which then ends the connection (it is never parsed).
    if (!takes_body(handler_->config(), std::string_view(req.target()))) {
      return serve_api(req, false);
    }
    if (auto refused = refuse_before_body(*handler_, headers_of(req))) {
      return respond(std::move(*refused), false, req.method() == http::verb::head);
    }
    // A client that asked to be told before it sends the body (curl does for larger ones) is told
    // at once, instead of waiting out its own timeout (a second for curl). HTTP/1.1 only (RFC 9110
    // 10.1.1: never to an HTTP/1.0 client).
    if (req.version() == 11 && beast::iequals(req[http::field::expect], "100-continue")) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      asio::async_write(socket_, asio::buffer(kContinue.data(), kContinue.size()),
                        [self = shared_from_this()](beast::error_code write_ec, std::size_t) {
                          if (write_ec) return self->close();
                          self->read_body();
                        });
      return;
    }
    read_body();
  }

  void read_body() {
    http::async_read(socket_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code read_ec, std::size_t) {
                       self->on_read(read_ec);
                     });
  }

  static HttpRequest headers_of(const http::request<http::string_body>& req) {
    HttpRequest request;
    request.method = std::string_view(req.method_string());
    request.target = std::string_view(req.target());
    request.body = req.body();
    request.authorization = std::string_view(req[http::field::authorization]);
    request.origin = std::string_view(req[http::field::origin]);
    request.host = std::string_view(req[http::field::host]);
    return request;
  }

  // Closes the socket if the pending read or write has not finished within `timeout` (whatever
  // I/O is pending then fails with operation_aborted). A deadline re-armed after this one expired,
  // but before its handler ran, is not mistaken for it.
  void arm_deadline(std::chrono::milliseconds timeout) {
    timer_.expires_after(timeout);
    timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
      if (ec) return;
      if (auto self = weak.lock()) {
        if (self->timer_.expiry() > asio::steady_timer::clock_type::now()) return;
        boost::system::error_code ignored;
        self->socket_.close(ignored);  // slow or silent client: drop it
      }
    });
  }

  void on_read(beast::error_code ec) {
    stop_waiting();
    if (!socket_.is_open()) return close();  // evicted after the read completed
    if (ec == http::error::end_of_stream || ec == asio::error::operation_aborted) return close();
    if (ec == http::error::header_limit) return fail(431, "request header fields too large");
    if (ec == http::error::body_limit) return fail(413, "body too large");
    if (ec) {
      if (ec == asio::error::eof || ec == asio::error::connection_reset) return close();
      return fail(400, "malformed request");
    }
    timer_.cancel();
    const auto& req = parser_->get();
    if (!framing_is_safe(req)) {
      // RFC 9112 6.3: a request whose length cannot be determined safely is refused and the
      // connection closed, so nothing after it can be read as another request (smuggling).
      handler_->metrics().reject(RejectReason::bad_request);
      return fail(400, "ambiguous message framing (Transfer-Encoding)");
    }
    const auto target = protocol::parse_ws_target(std::string_view(req.target()));
    if (target.kind == protocol::WsTarget::Kind::not_ws) return serve_api(req);
    if (target.kind == protocol::WsTarget::Kind::bad_room) {
      handler_->metrics().reject(RejectReason::bad_request);
      return fail(400, "bad room name: 1 to 128 characters of A-Z a-z 0-9 _ - . :");
    }
    upgrade(req, target);
  }

  void serve_api(const http::request<http::string_body>& req, bool may_keep_alive = true) {
    stop_waiting();
    timer_.cancel();
    const HttpRequest request = headers_of(req);
    const bool head = req.method() == http::verb::head;
    const bool keep_alive = may_keep_alive && req.keep_alive();
    handle_api(*handler_, request,
               [self = shared_from_this(), keep_alive, head](HttpResponse response) {
                 // The answer may come from another thread (a Redis reply): continue on this
                 // socket's loop.
                 asio::post(self->shard_.context(),
                            [self, keep_alive, head, response = std::move(response)]() mutable {
                              self->respond(std::move(response), keep_alive, head);
                            });
               });
  }

  void upgrade(const http::request<http::string_body>& req, const protocol::WsTarget& target) {
    auto& metrics = handler_->metrics();
    const HandlerConfig& config = handler_->config();
    if (!beast::websocket::is_upgrade(req)) {
      metrics.reject(RejectReason::bad_request);
      return fail(400, "not a WebSocket upgrade");
    }
    if (req[http::field::sec_websocket_version] != "13") {
      metrics.reject(RejectReason::bad_request);
      HttpResponse response = json_error(426, "unsupported WebSocket version; use 13");
      response.headers.emplace_back("Sec-WebSocket-Version", "13");
      return respond(std::move(response), false, false);
    }
    const std::string_view key(req[http::field::sec_websocket_key]);
    if (!valid_client_key(key)) {
      metrics.reject(RejectReason::bad_request);
      return fail(400, "bad Sec-WebSocket-Key");
    }
    if (!origin_allowed(config, std::string_view(req[http::field::origin]),
                        std::string_view(req[http::field::host]))) {
      metrics.reject(RejectReason::origin);
      return fail(403, "origin not allowed");
    }
    SessionParams params;
    if (target.bad_token) {
      // A credential that cannot even be decoded is still a credential: never anonymous.
      metrics.reject(RejectReason::unauthorized);
      log_refusal("token malformed (undecodable ?token=)", req);
      return refuse_token("malformed");
    }
    // An empty ?token= (a client that had none to put there) is no token.
    std::optional<std::string_view> token;
    const std::string_view authorization(req[http::field::authorization]);
    // Several Authorization fields, one of them Bearer: which credential is meant is not clear.
    std::size_t fields = 0;
    bool bearer_named = false;
    const auto [first, last] = req.equal_range(http::field::authorization);
    for (auto it = first; it != last; ++it) {
      ++fields;
      bearer_named = bearer_named || mentions_bearer(std::string_view(it->value()));
    }
    if (target.token && !target.token->empty()) {
      token = *target.token;
    } else if (auto bearer = bearer_token(authorization); bearer && fields == 1) {
      token = bearer;
    } else if (bearer_named) {
      // "Bearer" with nothing usable after it (empty, or two words): a credential all the same.
      metrics.reject(RejectReason::unauthorized);
      log_refusal("malformed Authorization: Bearer header", req);
      return refuse_token("malformed");
    }
    if (token && !handler_->jwt().enabled()) {
      // A token this server cannot verify is not a valid token: refuse rather than silently treat
      // the client as anonymous.
      metrics.reject(RejectReason::unauthorized);
      return refuse_token("this server verifies no tokens");
    }
    if (token) {
      auto verified = handler_->jwt().verify(*token, Clock::now());
      if (const auto* error = std::get_if<TokenError>(&verified)) {
        metrics.reject(RejectReason::unauthorized);
        log_refusal(fmt::format("token {}", to_string(*error)), req);
        return refuse_token(to_string(*error));
      }
      auto& claims = std::get<TokenClaims>(verified);
      params.user_id = std::move(claims.subject);
      params.token_expiry = claims.expires_at;
      params.rooms_claim = std::move(claims.rooms);
    } else if (config.auth_required) {
      metrics.reject(RejectReason::unauthorized);
      HttpResponse response = json_error(401, "token required");
      response.headers.emplace_back("WWW-Authenticate", "Bearer");
      return respond(std::move(response), false, false);
    }
    if (!handler_->accepting()) return fail(503, "shutting down");
    if (!handler_->try_reserve_slot()) {
      metrics.reject(RejectReason::capacity);
      return fail(503, "server at capacity");
    }
    if (config.max_connections_per_ip != 0) {
      boost::system::error_code endpoint_ec;
      const auto remote = socket_.remote_endpoint(endpoint_ec);
      if (endpoint_ec || !handler_->try_reserve_ip(remote.address())) {
        handler_->release_slot();
        metrics.reject(RejectReason::per_ip);
        return fail(429, "too many connections from this address");
      }
      params.peer = remote.address();
      params.ip_slot = true;
    } else {
      params.peer = peer_;
    }
    // A socket's opening takes from its client's bucket of openings (RateCarry): its join and its
    // close are presence events for the whole room. Taken once the upgrade can otherwise go ahead,
    // so that a refusal for capacity costs the client nothing.
    if (const auto client = RateCarry::client_key(params.user_id, params.peer,
                                                  config.max_connections_per_ip != 0)) {
      if (const double wait =
              handler_->rate_carry().take_connect(*client, std::chrono::steady_clock::now());
          wait > 0) {
        handler_->release_slot();
        if (params.ip_slot) handler_->release_ip(params.peer);
        metrics.reject(RejectReason::rate_limited);
        log_refusal("connecting too often", req);
        HttpResponse response = json_error(429, "connecting too often; slow down");
        constexpr double kMaxRetryAfter = 86400;  // (a tiny connect_rate would overflow the cast)
        response.headers.emplace_back(
            "Retry-After",
            std::to_string(static_cast<long>(std::ceil(std::min(wait, kMaxRetryAfter)))));
        return respond(std::move(response), false, false);
      }
    }
    params.room = target.kind == protocol::WsTarget::Kind::room ? target.room : std::string();
    params.last_id = target.last_id;

    // The session writes the 101 itself, ahead of the welcome and in the same write, after it has
    // joined its room: a client that sees the socket open is already a member.
    std::string& response = params.handshake_response;
    response.reserve(160);
    response += "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
    response += "Sec-WebSocket-Accept: ";
    response += accept_key(key);
    response += "\r\n\r\n";
    // Bytes that followed the request (a client may send frames before reading the 101).
    const auto leftover = buffer_.data();
    params.leftover.assign(static_cast<const char*>(leftover.data()), leftover.size());
    timer_.cancel();
    Shard& home = params.room.empty() ? shard_ : handler_->core().room_shard(params.room);
    if (&home == &shard_ || !move_to(home, params)) {
      std::make_shared<WsSession>(handler_, shard_, std::move(socket_), std::move(params))->start();
    }
  }

  // An info line for a refused upgrade, at most one per interval for the pod (a client can refuse
  // itself thousands of times a second); the line says how many were left out before it.
  void log_refusal(std::string_view why, const http::request<http::string_body>& req) {
    const auto held_back = handler_->refusal_log().admit();
    if (!held_back) return;
    const auto target = protocol::loggable_target(std::string_view(req.target()));
    if (*held_back == 0) {
      handler_->log().info("upgrade refused: {} ({})", why, target);
    } else {
      handler_->log().info("upgrade refused: {} ({}) ({} more refused since the last report)", why,
                           target, *held_back);
    }
  }

  // Hands the socket to the room's home shard: its descriptor leaves this loop and is adopted by
  // the other, where the session starts. False when the descriptor cannot be released: the session
  // then starts here (a room may have members on several shards; only the hand-off of broadcasts
  // between threads is saved). params is taken only on success.
  bool move_to(Shard& home, SessionParams& params) {
    boost::system::error_code ec;
    const auto protocol = socket_.local_endpoint(ec).protocol();
    const int fd = ec ? -1 : socket_.release(ec);
    if (ec || fd < 0) return false;
    auto owned = std::make_shared<OwnedDescriptor>(fd);
    asio::post(home.context(),
               [handler = handler_, &home, protocol, owned, params = std::move(params)]() mutable {
                 TcpSocket socket(home.context());
                 boost::system::error_code assign_ec;
                 socket.assign(protocol, owned->fd, assign_ec);
                 if (assign_ec) {
                   handler->log().warn("could not move a socket to its room's thread: {}",
                                       assign_ec.message());
                   handler->release_slot();
                   if (params.ip_slot) handler->release_ip(params.peer);
                   return;  // owned closes the descriptor
                 }
                 owned->fd = -1;
                 auto session = std::make_shared<WsSession>(handler, home, std::move(socket),
                                                            std::move(params));
                 session->start();
                 // A shutdown that began while the socket was on its way has closed this shard's
                 // sessions already: this one goes the same way.
                 if (!handler->accepting())
                   session->close(close_code::going_away, "server shutting down");
               });
    return true;
  }

  // 401 for a token: the reason in the body and in RFC 6750's challenge, so a client can tell a
  // token to refresh ("expired") from one that will never pass (the in-band `auth` answer says as
  // much).
  void refuse_token(std::string_view reason) {
    HttpResponse response;
    response.status = 401;
    response.body = R"({"error":"invalid token","reason":)";
    protocol::append_json_string(response.body, reason);
    response.body += '}';
    std::string challenge = R"(Bearer error="invalid_token", error_description=)";
    protocol::append_json_string(challenge, reason);  // (a quoted string; reasons hold no '\')
    response.headers.emplace_back("WWW-Authenticate", std::move(challenge));
    respond(std::move(response), false, false);
  }

  void fail(unsigned status, std::string_view text) {
    HttpResponse response = json_error(status, text);
    // A refused HEAD gets the headers alone, as any HEAD does.
    const bool head =
        parser_ && parser_->is_header_done() && parser_->get().method() == http::verb::head;
    respond(std::move(response), false, head);
  }

  void respond(HttpResponse response, bool keep_alive, bool head) {
    // A connection being sent its response, and then lingering before its close, holds a
    // descriptor as one reading a request does: it counts against the same cap, as the newest (a
    // client that pipelines requests and reads no answer would otherwise hold its descriptors for
    // the whole write deadline, uncapped).
    stop_waiting();  // (a refusal may come before the whole request was read)
    start_waiting();
    // The body is held until written: shared with other responses, or this one's own.
    std::shared_ptr<const std::string> body =
        response.shared_body ? std::move(response.shared_body)
                             : std::make_shared<const std::string>(std::move(response.body));
    auto res = std::make_shared<http::response<http::span_body<const char>>>(
        static_cast<http::status>(response.status), 11);
    res->set(http::field::server, "realtime");
    res->set(http::field::content_type, response.content_type);
    res->set(http::field::cache_control, "no-store");
    for (auto& [name, value] : response.headers) res->set(name, value);
    res->keep_alive(keep_alive);
    if (!head) res->body() = {body->data(), body->size()};
    res->content_length(body->size());
    // The client has the handshake timeout to take each response, as it had to send the request:
    // one that stops reading (say, pipelining requests for the client file without reading the
    // answers) would otherwise hold the socket forever, and plain HTTP sockets count against no
    // connection limit. The chat page and the client file (tens of KiB) fit the socket buffers
    // at once, so a client that reads is far inside it; a large room list is one string shared by
    // every response that sends it (SharedAnswers).
    arm_deadline(handler_->config().handshake_timeout);
    http::async_write(
        socket_, *res,
        [self = shared_from_this(), res, body, keep_alive](beast::error_code ec, std::size_t) {
          // (Evicted after the write completed: closed already.)
          if (ec || !self->socket_.is_open()) return self->close();
          if (!keep_alive) return self->linger_close();
          self->do_read();
        });
  }

  // Closing with unread input makes the kernel send a reset, which can destroy the response before
  // the client reads it: stop sending, read and discard for a moment, then close.
  void linger_close() {
    boost::system::error_code ec;
    socket_.shutdown(TcpSocket::shutdown_send, ec);
    timer_.expires_after(kLinger);
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& wait_ec) {
      if (!wait_ec) self->close();
    });
    drain();
  }

  void drain() {
    socket_.async_read_some(asio::buffer(drain_buffer_),
                            [self = shared_from_this()](beast::error_code ec, std::size_t) {
                              if (ec) return self->close();
                              self->drain();
                            });
  }

  void close() {
    stop_waiting();
    timer_.cancel();
    boost::system::error_code ec;
    socket_.shutdown(TcpSocket::shutdown_send, ec);
    socket_.close(ec);
  }

  std::shared_ptr<HandlerCore> handler_;
  Shard& shard_;
  TcpSocket socket_;
  asio::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::array<char, 512> drain_buffer_{};
  std::optional<Shard::HttpWaiting::Slot> waiting_at_;
  boost::asio::ip::address peer_;  // the client's address
  std::string peer_key_;           // as one client (client_address_key), for HttpWaiting
};

}  // namespace

void start_http_session(std::shared_ptr<HandlerCore> handler, Shard& shard, TcpSocket socket) {
  std::make_shared<HttpSession>(std::move(handler), shard, std::move(socket))->start();
}

}  // namespace realtime::detail
