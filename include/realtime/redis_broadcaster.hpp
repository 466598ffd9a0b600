// Cross-pod delivery through Redis pub/sub, as in the seed's multi-pod setup.
//
// publish() delivers on this pod at once and PUBLISHes the envelope (tagged with this pod's id, so
// the Redis echo is dropped) on realtime:room:{room}, realtime:global or realtime:user:{user}. The
// pod SUBSCRIBEs to a room's channel while it has members of the room (and to a user's channel
// while it has sockets of the user), so cross-pod traffic grows with the rooms pods share. Anything
// any program PUBLISHes on those channels reaches the members on this pod.
//
// Redis trouble degrades: local delivery goes on, failed publishes are counted
// (realtime_redis_publish_errors) and logged at a limited rate, the subscriber reconnects with
// capped jittered backoff and resubscribes by itself, and a heartbeat through Redis proves fan-out
// works (ready() is false while it does not).
//
// Owns one thread running the Redis event loop (hiredis is single-threaded) for subscriptions,
// cluster state and commands, and gives each of the hub's I/O threads a connection of its own on
// that thread's loop, through which the room messages published there are numbered, published and
// delivered without crossing threads. Construct it before Hub::start(); stop() it before
// Hub::stop(), and destroy it before the Hub (while the Hub runs is fine: once the destructor
// returns, the Hub's threads no longer call into it). stop() (and so the destructor, when it runs
// stop()) waits for each I/O thread to let go of its connection: called on one of the Hub's I/O
// threads (in a hook, or where the last reference goes: a Handler that held it, dropped while its
// sockets are still closing, lets go of it on an I/O thread), that thread is held until
// Hub::stop(). Call stop() on a thread of the application's own before dropping it while the Hub
// runs. Thread safety: publish*, ready() from any thread.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "realtime/broadcaster.hpp"
#include "realtime/hub.hpp"

namespace realtime {

namespace detail {
class RedisBroadcasterCore;
}

struct RedisBroadcasterOptions {
  std::string url;                                     // redis://[user:pass@]host:port[/db]
  std::chrono::milliseconds heartbeat_interval{1000};  // a control message through Redis this often
  std::chrono::milliseconds heartbeat_timeout{3000};   // no heartbeat back for this long: rebuilt
  // The shared numbering and history of every room with members on this pod get their TTL (an
  // hour) renewed this often, so a quiet room in use keeps the positions its clients resume from
  // (zero: never).
  std::chrono::milliseconds room_keepalive_interval{std::chrono::minutes(10)};
  // Room messages one thread has waiting for Redis to number them (Redis slower than they come)
  // may hold this much memory; past it, new ones are refused (their publish_then() callback gets
  // kNotPublished: the API answers 503, a socket's chat an error `unavailable`), counted as dropped
  // (`overload`). The application's own threads (not the hub's) share one such bound, on top of
  // the Redis thread's. Every publish_then() is answered, by the time stop() returns at the latest.
  std::size_t max_unsent_bytes = std::size_t{64} << 20;
};

class RedisBroadcaster final : public Broadcaster {
 public:
  // Throws std::invalid_argument when the URL is malformed, or heartbeat_interval is not above 0
  // or heartbeat_timeout not longer than it.
  RedisBroadcaster(Hub& hub, const RedisBroadcasterOptions& options);
  ~RedisBroadcaster() override;
  RedisBroadcaster(const RedisBroadcaster&) = delete;
  RedisBroadcaster& operator=(const RedisBroadcaster&) = delete;

  // Starts the Redis thread; it connects (and reconnects) by itself. A broadcaster runs once:
  // start() after stop() does nothing (the pod then numbers its messages itself, as before start).
  void start();
  // Stops the Redis thread; idempotent.
  void stop();

  std::string publish(Message msg) override;
  std::string publish_to_user(const std::string& user_id, Message msg) override;
  bool ready(std::string* reason) const override;
  // Room messages are numbered by a history shared in Redis (realtime:seq|epoch|history:{room}), so
  // ids are ordered cluster-wide and a client recovers on any pod. While Redis is unreachable (and
  // before start(), after stop()) the pod numbers messages itself (and recovery from those ids
  // answers recovered: false elsewhere); after start(), messages wait for the first connection
  // to Redis, or for its first attempt to fail.
  void publish_then(Message msg, std::function<void(const std::string& id)> done) override;
  bool shared_history() const override;
  void fetch_history(const std::string& room, const std::string& last_id,
                     std::function<void(HistoryResult)> done) override;
  // Presence is decided cluster-wide: one online when a user's first socket in the cluster joins a
  // room, one offline when the last leaves (or its pod dies: within 13 s, by the pods' leases).
  bool await_subscribed(const std::string& room, const std::string& user_id,
                        std::function<void()> done) override;
  void user_joined(const std::string& room, const std::string& user_id) override;
  void user_left(const std::string& room, const std::string& user_id) override;
  void status_changed(const std::string& room, const std::string& user_id,
                      PresenceStatus status) override;
  // This pod's exact view merged with the other pods' shared state in Redis (this pod's view alone
  // while Redis is unreachable).
  void query_rooms(std::function<void(std::vector<RoomCount>)> done) override;
  void query_presence(const std::string& room,
                      std::function<void(std::vector<PresenceEntry>)> done) override;

 private:
  std::unique_ptr<detail::RedisBroadcasterCore> core_;
};

}  // namespace realtime
