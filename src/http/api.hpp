// The HTTP API of a pod, free of Beast: a parsed request in, a response out.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace realtime {
struct HandlerConfig;
class Broadcaster;
}  // namespace realtime

namespace realtime::detail {

class HandlerCore;

struct HttpRequest {
  std::string_view method;
  std::string_view target;
  std::string_view body;
  std::string_view authorization;
  std::string_view origin;  // the Origin header; empty when absent (not a browser)
  std::string_view host;    // the Host header
};

struct HttpResponse {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  // Instead of body: one answer shared by several responses (held once, however many clients
  // are sent it).
  std::shared_ptr<const std::string> shared_body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
};

// The answers of GET /api/rooms (key "") and GET /api/rooms/{room}/presence (key: the room), each
// shared by every client at once: requests that come while an answer is being made wait for it (one
// query in flight per key), and a large answer serves the requests of the next second too, so the
// list of every room of the cluster (megabytes with tens of thousands of rooms) or of a large
// room's members (a copy and sort of them, and with Redis an HGETALL) is made at most once a second
// and held once however many clients read it; a small one (a few thousand rooms, a few hundred
// members) is made for each request, as fresh as can be. Whatever rooms clients ask for, only fresh
// large answers and queries in flight are held: a small answer is dropped once sent, a stale one at
// the next request that misses. Thread-safe.
class SharedAnswers {
 public:
  // Reused from these sizes: the room list from 64 KiB (a few thousand rooms); a room's presence,
  // dearer per byte to make, from 16 KiB (about 350 members).
  static constexpr std::size_t kRoomsReusedFrom = std::size_t{64} * 1024;
  static constexpr std::size_t kPresenceReusedFrom = std::size_t{16} * 1024;
  static constexpr std::chrono::seconds kFresh{1};
  static constexpr std::chrono::seconds kLost{5};
  using Done = std::function<void(std::shared_ptr<const std::string>)>;
  // `owner` keeps this and the broadcaster alive until the query is answered (the HandlerCore
  // holding both), which may be after the Handler has gone.
  void rooms(Broadcaster& broadcaster, std::shared_ptr<const void> owner, Done done);
  // `room`: a valid room name (so never "", the key of rooms()).
  void presence(Broadcaster& broadcaster, const std::string& room,
                std::shared_ptr<const void> owner, Done done);
  // At the Handler's shutdown: every request still waiting for a query gets a null body (answered
  // 503), and later ones at once, so that a broadcaster that never answers keeps no request (nor,
  // through it, the Handler) alive.
  void abandon();
  // The answers and queries held now (for tests).
  std::size_t held() const;

 private:
  struct Entry {
    std::shared_ptr<const std::string> body;  // a large answer, reused until made_at + kFresh
    std::chrono::steady_clock::time_point made_at{};
    bool in_flight = false;
    std::chrono::steady_clock::time_point asked_at{};
    std::vector<Done> waiting;
  };
  // Answers `done` at once from a fresh answer (false), or queues it for the next one: true when
  // the caller is to ask the broadcaster for it, and then to pass the body made to answered().
  bool wait(const std::string& key, Done& done);
  void answered(const std::string& key, std::size_t reused_from, std::string made);

  static constexpr std::size_t kPruneMin = 64;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Entry> entries_;       // guarded by mutex_
  std::size_t prune_at_ = kPruneMin;                     // guarded by mutex_
  std::chrono::steady_clock::time_point prune_after_{};  // guarded by mutex_
  bool abandoned_ = false;                               // guarded by mutex_
};

// Whether a request with this Origin (empty: none, so not a browser) may open a socket or publish:
// browsers send Origin as scheme://host[:port]; by default only the same origin (the Host header
// with http or https, host names without case, a default port written out or not) is allowed,
// else exactly the configured --allowed-origins ("*": any).
bool origin_allowed(const HandlerConfig& config, std::string_view origin, std::string_view host);

// A JSON error body {"error": text} with the given status.
HttpResponse json_error(unsigned status, std::string_view text);

// Routes every request that is not a WebSocket upgrade: /api/publish, /api/rooms,
// /api/rooms/{room}/presence, /metrics, /healthz, /readyz, / and /realtime-client.js (those the
// HandlerConfig turns off answer 404, as an unknown path does). `respond` is called once, at once
// or later from another thread (cluster-wide answers come from Redis).
using Responder = std::function<void(HttpResponse)>;
void handle_api(HandlerCore& handler, const HttpRequest& request, const Responder& respond);
// Whether a request to this target uses its body (POST /api/publish, when the API is served); the
// others are answered without reading it.
bool takes_body(const HandlerConfig& config, std::string_view target);
// A publish, its headers read (request.body empty): the answer when they decide it already (the
// method, a refused Origin, a missing or wrong API key), so that no body is buffered for a request
// that will be refused; nullopt: read the body.
std::optional<HttpResponse> refuse_before_body(HandlerCore& handler, const HttpRequest& request);

// The embedded files (generated from web/index.html and clients/js/realtime-client.js).
std::string_view chat_page_html() noexcept;
std::string_view client_js() noexcept;

}  // namespace realtime::detail
