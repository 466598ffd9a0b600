#include "http/api.hpp"

#include <algorithm>
#include <cctype>
#include <iterator>
#include <optional>
#include <utility>

#include "http/handler_core.hpp"
#include "protocol/envelope.hpp"
#include "protocol/request.hpp"

namespace realtime::detail {
namespace {

constexpr std::string_view kRoomsPrefix = "/api/rooms/";
constexpr std::string_view kPresenceSuffix = "/presence";

// host[:port] in lower case, without the scheme's default port (":80" for http, ":443" for https).
std::string canonical_authority(std::string_view authority, std::string_view default_port) {
  std::string out(authority);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (out.ends_with(default_port)) out.resize(out.size() - default_port.size());
  return out;
}

HttpResponse text(unsigned status, std::string body, std::string content_type = "text/plain") {
  HttpResponse response;
  response.status = status;
  response.content_type = std::move(content_type);
  response.body = std::move(body);
  return response;
}

}  // namespace

std::optional<HttpResponse> refuse_before_body(HandlerCore& handler, const HttpRequest& request) {
  if (request.method != "POST") {
    auto response = json_error(405, "use POST");
    response.headers.emplace_back("Allow", "POST");
    return response;
  }
  // A page on another site can make the victim's browser POST here without a preflight (a
  // text/plain body is a "simple" request): the Origin a browser sends is held to the rule of the
  // WebSocket upgrade. curl and other non-browser clients send no Origin and are not affected.
  if (!origin_allowed(handler.config(), request.origin, request.host)) {
    return json_error(403, "origin not allowed");
  }
  const std::string& api_key = handler.config().api_key;
  if (!api_key.empty()) {
    const auto presented = bearer_token(request.authorization);
    if (!presented || !api_key_matches(api_key, *presented)) {
      auto response = json_error(401, "missing or wrong API key");
      response.headers.emplace_back("WWW-Authenticate", "Bearer");
      return response;
    }
  }
  // Shutting down: the sockets are being closed, so a message taken now would reach nobody here.
  if (!handler.accepting()) return json_error(503, "shutting down");
  return std::nullopt;
}

namespace {

// Validates a publish request; on success returns nullopt and fills msg and user.
std::optional<HttpResponse> check_publish(HandlerCore& handler, const HttpRequest& request,
                                          Message& msg, std::string& user) {
  if (auto refused = refuse_before_body(handler, request)) return refused;
  if (request.body.size() > handler.config().max_message_bytes) {
    return json_error(413, "body larger than --max-message-bytes");
  }
  auto decoded = protocol::decode_publish_request(request.body);
  if (decoded.error != protocol::DecodeError::none) return json_error(400, decoded.detail);
  protocol::PublishRequest& req = decoded.request;
  if (!req.room.empty() && !protocol::is_valid_room(req.room)) {
    return json_error(400, "invalid room name");
  }
  if (!req.user.empty() && !protocol::is_valid_user_id(req.user)) {
    return json_error(400, "invalid user id");
  }
  msg.type = req.type;
  msg.room = std::move(req.room);
  msg.data = std::move(req.data);
  msg.timestamp = Clock::now();
  user = std::move(req.user);
  return std::nullopt;
}

HttpResponse accepted(const std::string& id) {
  HttpResponse response;
  response.status = 202;
  response.body = "{\"id\":";
  protocol::append_json_string(response.body, id);
  response.body += '}';
  return response;
}

void publish(HandlerCore& handler, const HttpRequest& request, const Responder& respond) {
  Message msg;
  std::string user;
  if (auto refused = check_publish(handler, request, msg, user))
    return respond(std::move(*refused));
  if (!user.empty())
    return respond(accepted(handler.broadcaster().publish_to_user(user, std::move(msg))));
  handler.broadcaster().publish_then(std::move(msg), [respond](const std::string& id) {
    // kNotPublished: not taken (Redis slower than messages come, or a pod stopping before it
    // answered).
    respond(id == kNotPublished
                ? json_error(503,
                             "not published: Redis is not keeping up, or the server is "
                             "stopping; try again")
                : accepted(id));
  });
}

// A cluster-wide answer made while the pod is not ready (Redis unreachable) holds this pod's part,
// and other pods' as last read at best: it says so.
void end_partial(std::string& body, bool partial) {
  body += partial ? "],\"partial\":true}" : "]}";
}

std::string rooms_body(const std::vector<RoomCount>& rooms, bool partial) {
  std::string body = "{\"rooms\":[";
  bool first = true;
  for (const RoomCount& room : rooms) {
    if (!first) body += ',';
    first = false;
    body += "{\"room\":";
    protocol::append_json_string(body, room.room);
    body += ",\"members\":";
    body += std::to_string(room.members);
    body += '}';
  }
  end_partial(body, partial);
  return body;
}

std::string presence_body(const std::string& room, const std::vector<PresenceEntry>& users,
                          bool partial) {
  std::string body = "{\"room\":";
  protocol::append_json_string(body, room);
  body += ",\"users\":[";
  bool first = true;
  for (const PresenceEntry& entry : users) {
    if (!first) body += ',';
    first = false;
    body += "{\"user_id\":";
    protocol::append_json_string(body, entry.user_id);
    body += ",\"status\":";
    protocol::append_json_string(body, to_string(entry.status));
    body += '}';
  }
  end_partial(body, partial);
  return body;
}

// Sends a shared answer as the response.
SharedAnswers::Done respond_shared(const Responder& respond) {
  return [respond](std::shared_ptr<const std::string> body) {
    if (!body) return respond(json_error(503, "shutting down"));  // SharedAnswers::abandon()
    HttpResponse response;
    response.shared_body = std::move(body);
    respond(std::move(response));
  };
}

bool is_read(std::string_view method) { return method == "GET" || method == "HEAD"; }

// Whether the HandlerConfig switches off the route of this path (every path under /api/ is the
// API's or unknown, so turning the API off answers them all alike).
bool switched_off(const HandlerConfig& config, std::string_view path) {
  if (path.starts_with("/api/")) return !config.serve_api;
  if (path == "/metrics") return !config.serve_metrics;
  if (path == "/" || path == "/index.html" || path == "/realtime-client.js") {
    return !config.serve_chat_page;
  }
  return false;
}

// The answer to GET or HEAD of a path outside /api/; nullopt when there is no such path.
std::optional<HttpResponse> page_response(HandlerCore& handler, std::string_view path);

}  // namespace

bool origin_allowed(const HandlerConfig& config, std::string_view origin, std::string_view host) {
  if (origin.empty()) return true;  // not a browser
  if (config.allowed_origins.empty()) {
    for (const auto& [scheme, default_port] :
         {std::pair{std::string_view("http://"), std::string_view(":80")},
          std::pair{std::string_view("https://"), std::string_view(":443")}}) {
      if (origin.size() > scheme.size() &&
          canonical_authority(origin.substr(0, scheme.size()), "") == scheme &&
          canonical_authority(origin.substr(scheme.size()), default_port) ==
              canonical_authority(host, default_port)) {
        return true;
      }
    }
    return false;
  }
  for (const std::string& allowed : config.allowed_origins) {
    if (allowed == "*" || allowed == origin) return true;
  }
  return false;
}

HttpResponse json_error(unsigned status, std::string_view text) {
  HttpResponse response;
  response.status = status;
  response.body = "{\"error\":";
  protocol::append_json_string(response.body, text);
  response.body += '}';
  return response;
}

bool takes_body(const HandlerConfig& config, std::string_view target) {
  return config.serve_api && protocol::split_target(target).path == "/api/publish";
}

bool SharedAnswers::wait(const std::string& key, Done& done) {
  std::unique_lock lock(mutex_);
  if (abandoned_) {
    lock.unlock();
    done(nullptr);
    return false;
  }
  const auto now = std::chrono::steady_clock::now();
  if (const auto found = entries_.find(key); found != entries_.end()) {
    const Entry& entry = found->second;
    if (entry.body && now - entry.made_at < kFresh) {
      auto body = entry.body;
      lock.unlock();
      done(std::move(body));
      return false;
    }
  }
  // A miss: what is no longer worth holding goes (the stale answers of rooms nobody asks for now),
  // so that however many rooms are asked for, only fresh answers and queries in flight are held.
  // Once the map has doubled or a second has passed: not a walk of every entry on every miss.
  if (entries_.size() >= prune_at_ || now >= prune_after_) {
    std::erase_if(entries_, [now](const auto& held) {
      const Entry& entry = held.second;
      return !entry.in_flight && entry.waiting.empty() && now - entry.made_at >= kFresh;
    });
    prune_at_ = std::max(kPruneMin, 2 * entries_.size());
    prune_after_ = now + kFresh;
  }
  Entry& entry = entries_[key];
  entry.waiting.push_back(std::move(done));
  // One query at a time; one that has not been answered for a while is taken for lost (a
  // broadcaster that dropped it), and asked again.
  if (entry.in_flight && now - entry.asked_at < kLost) return false;
  entry.in_flight = true;
  entry.asked_at = now;
  entry.body = nullptr;  // stale: not held while the next is made
  return true;
}

void SharedAnswers::answered(const std::string& key, std::size_t reused_from, std::string made) {
  auto body = std::make_shared<const std::string>(std::move(made));
  std::vector<Done> waiting;
  {
    const std::lock_guard lock(mutex_);
    const auto found = entries_.find(key);
    // (Gone: a query asked again when this one was taken for lost answered first, or the other way
    // round; nobody is waiting.)
    if (found == entries_.end()) return;
    Entry& entry = found->second;
    waiting.swap(entry.waiting);
    // A small answer costs little to make again: only a large one is reused.
    if (body->size() >= reused_from) {
      entry.body = body;
      entry.made_at = std::chrono::steady_clock::now();
      entry.in_flight = false;
    } else {
      entries_.erase(found);
    }
  }
  for (Done& answer : waiting) answer(body);
}

// The answer may come at once, on this thread (no lock is held across the query), or later on
// another; `partial` is taken when it comes.
void SharedAnswers::rooms(Broadcaster& broadcaster, std::shared_ptr<const void> owner, Done done) {
  if (!wait("", done)) return;
  broadcaster.query_rooms(
      [this, &broadcaster, owner = std::move(owner)](const std::vector<RoomCount>& rooms) {
        answered("", kRoomsReusedFrom, rooms_body(rooms, !broadcaster.ready(nullptr)));
      });
}

void SharedAnswers::presence(Broadcaster& broadcaster, const std::string& room,
                             std::shared_ptr<const void> owner, Done done) {
  if (!wait(room, done)) return;
  broadcaster.query_presence(room, [this, &broadcaster, room, owner = std::move(owner)](
                                       const std::vector<PresenceEntry>& users) {
    answered(room, kPresenceReusedFrom, presence_body(room, users, !broadcaster.ready(nullptr)));
  });
}

void SharedAnswers::abandon() {
  std::vector<Done> waiting;
  {
    const std::lock_guard lock(mutex_);
    abandoned_ = true;
    for (auto& [key, entry] : entries_) {
      std::move(entry.waiting.begin(), entry.waiting.end(), std::back_inserter(waiting));
    }
    entries_.clear();
  }
  for (Done& answer : waiting) answer(nullptr);
}

std::size_t SharedAnswers::held() const {
  const std::lock_guard lock(mutex_);
  return entries_.size();
}

void handle_api(HandlerCore& handler, const HttpRequest& request, const Responder& respond) {
  const auto path = protocol::split_target(request.target).path;
  if (switched_off(handler.config(), path)) return respond(json_error(404, "not found"));
  if (path == "/api/publish") return publish(handler, request, respond);
  constexpr std::size_t kAffixes = kRoomsPrefix.size() + kPresenceSuffix.size();
  const bool presence =
      path.size() > kAffixes && path.starts_with(kRoomsPrefix) && path.ends_with(kPresenceSuffix);
  std::optional<HttpResponse> page;
  if (path != "/api/rooms" && !presence) {
    page = page_response(handler, path);
    if (!page) return respond(json_error(404, "not found"));
  }
  // Every other path here is read-only.
  if (!is_read(request.method)) {
    auto response = json_error(405, "method not allowed");
    response.headers.emplace_back("Allow", "GET, HEAD");
    return respond(std::move(response));
  }
  if (page) return respond(std::move(*page));
  if (!presence) {
    return handler.answers().rooms(handler.broadcaster(), handler.shared_from_this(),
                                   respond_shared(respond));
  }
  auto room = protocol::percent_decode(path.substr(kRoomsPrefix.size(), path.size() - kAffixes));
  if (!room || !protocol::is_valid_room(*room))
    return respond(json_error(400, "invalid room name"));
  handler.answers().presence(handler.broadcaster(), *room, handler.shared_from_this(),
                             respond_shared(respond));
}

namespace {
// What /readyz answers: ready, or why not.
bool ready(HandlerCore& handler, std::string& reason) {
  if (!handler.accepting()) {
    reason = "shutting down";
    return false;
  }
  if (!handler.broadcaster().ready(&reason)) {
    reason = "not ready: " + reason;
    return false;
  }
  return true;
}

std::optional<HttpResponse> page_response(HandlerCore& handler, std::string_view path) {
  if (path == "/healthz") return text(200, "ok\n");
  if (path == "/readyz") {
    std::string reason;
    if (!ready(handler, reason)) return text(503, reason + "\n");
    return text(200, "ready\n");
  }
  if (path == "/metrics") {
    std::string body = handler.metrics().render(handler.hub().pod_id());
    // Taken as /readyz takes it, at the time of the scrape (not a counter the library keeps).
    std::string reason;
    body +=
        "# HELP realtime_ready 1 when /readyz would answer 200, else 0.\n"
        "# TYPE realtime_ready gauge\n"
        "realtime_ready ";
    body += ready(handler, reason) ? "1\n" : "0\n";
    return text(200, std::move(body), "text/plain; version=0.0.4; charset=utf-8");
  }
  if (path == "/" || path == "/index.html") {
    return text(200, std::string(chat_page_html()), "text/html; charset=utf-8");
  }
  if (path == "/realtime-client.js") {
    return text(200, std::string(client_js()), "text/javascript; charset=utf-8");
  }
  return std::nullopt;
}
}  // namespace

}  // namespace realtime::detail
