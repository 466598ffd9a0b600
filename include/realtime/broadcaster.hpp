// How a message reaches every member of its room: on this pod only (LocalBroadcaster) or on every
// pod of the cluster (RedisBroadcaster).
//
// Thread safety: implementations are called from any I/O thread and from the application's threads.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "realtime/hub.hpp"
#include "realtime/message.hpp"

namespace realtime {

// What a shared history answers for a recovery: whether everything after last_id is known, and
// those messages (sequence number, envelope JSON), oldest first; and the room's position, the id
// of the last message numbered ("<epoch>-0" before the first), which the client is told to resume
// from (empty when the history could not be read).
struct HistoryResult {
  bool recovered = false;
  std::vector<std::pair<std::uint64_t, std::string>> messages;
  std::string position;
};

// What Broadcaster::publish_then() reports instead of an id for a message it refused.
inline constexpr std::string_view kNotPublished = "!not-published";

class Broadcaster {
 public:
  virtual ~Broadcaster() = default;
  // Delivers msg to its room (or to everyone when msg.room is empty) on every pod this broadcaster
  // reaches. Assigns the id and returns it, or returns "" when the id is assigned later by a shared
  // history (RedisBroadcaster): use publish_then() to learn it. LocalBroadcaster and
  // RedisBroadcaster refuse what Hub::broadcast() refuses, with std::invalid_argument (publish*,
  // publish_then() before anything is published or `done` runs).
  virtual std::string publish(Message msg) = 0;
  // Delivers msg to every socket of user_id on every pod this broadcaster reaches.
  virtual std::string publish_to_user(const std::string& user_id, Message msg) = 0;
  // True when the broadcaster can deliver; otherwise sets *reason (for /readyz).
  virtual bool ready(std::string* reason) const {
    (void)reason;
    return true;
  }

  // Publishes msg and reports its id to `done` (from any thread): with a shared history the id is
  // known only once the history numbered the message. kNotPublished instead of an id: refused,
  // nobody gets it (a RedisBroadcaster while Redis falls behind, or stopping). An empty id only
  // means that the id is not known here. `done` should not throw: RedisBroadcaster logs and
  // drops what it throws on its own threads (called at once, on the caller's thread, it reaches the
  // caller).
  // NOLINTNEXTLINE(performance-unnecessary-value-param): overrides keep `done` for later
  virtual void publish_then(Message msg, std::function<void(const std::string& id)> done) {
    done(publish(std::move(msg)));
  }

  // True when recovery is served by a history shared by every pod (then fetch_history() answers);
  // false: the hub's own history serves it.
  virtual bool shared_history() const { return false; }
  // Fetches the room's messages after last_id; `done` runs once, from any thread (recovered false
  // when the history cannot vouch for the gap, or cannot be reached).
  // `done` is a sink: overrides keep it for later.
  virtual void fetch_history(
      const std::string& room, const std::string& last_id,
      std::function<void(HistoryResult)> done) {  // NOLINT(performance-unnecessary-value-param)
    (void)room;
    (void)last_id;
    done(HistoryResult{});
  }

  // A new socket's output (its welcome first) waits for this, so that what other pods publish once
  // the client has its welcome reaches it. Returns true when `done` will run, once and from any
  // thread, as soon as this pod receives what is published to `room` (empty: no room) and to
  // `user_id`, or after a bound; false when there is nothing to wait for (`done` is not called).
  // The bound is the implementation's: the library sets none, and everything the socket is sent,
  // the HTTP 101 of its upgrade included, waits until `done` (a second call is ignored).
  virtual bool await_subscribed(
      const std::string& room, const std::string& user_id,
      std::function<void()> done) {  // NOLINT(performance-unnecessary-value-param)
    (void)room;
    (void)user_id;
    (void)done;
    return false;
  }

  // Presence. A user's status in a room is derived from its sockets there (online while any of
  // them is online, away when all are). The session calls these when that status on this pod
  // changes: online on the user's first socket here, offline when its last one leaves, or another
  // status (the last online socket turned away or left while away ones remain, or one turned back
  // or joined online). The broadcaster derives the cluster's status of the user from every pod's
  // and publishes a presence message when that changes. Single pod: the pod is the cluster.
  virtual void user_joined(const std::string& room, const std::string& user_id) {
    publish(presence_message(room, {PresenceStatus::online, user_id}));
  }
  virtual void user_left(const std::string& room, const std::string& user_id) {
    publish(presence_message(room, {PresenceStatus::offline, user_id}));
  }
  virtual void status_changed(const std::string& room, const std::string& user_id,
                              PresenceStatus status) {
    publish(presence_message(room, {status, user_id}));
  }

  // Rooms with their member counts, and a room's users, for the whole cluster this broadcaster
  // reaches. The callback may run on another thread.
  virtual void query_rooms(std::function<void(std::vector<RoomCount>)> done) = 0;
  virtual void query_presence(const std::string& room,
                              std::function<void(std::vector<PresenceEntry>)> done) = 0;
};

// Single pod: publishing is delivering through the hub. Presence is announced by the hub, under
// the room's lock, with the user's status at that moment (a join: online), unless the members were
// told it last: two sockets of one user on two threads, one leaving as the other joins, then
// cannot reach members as "offline" last while the user is in the room.
class LocalBroadcaster final : public Broadcaster {
 public:
  explicit LocalBroadcaster(Hub& hub) : hub_(hub) {}
  std::string publish(Message msg) override { return hub_.broadcast(std::move(msg)); }
  std::string publish_to_user(const std::string& user_id, Message msg) override {
    return hub_.send_to_user(user_id, std::move(msg));
  }
  void user_joined(const std::string& room, const std::string& user_id) override;
  void user_left(const std::string& room, const std::string& user_id) override;
  void status_changed(const std::string& room, const std::string& user_id,
                      PresenceStatus status) override;
  void query_rooms(std::function<void(std::vector<RoomCount>)> done) override {
    done(hub_.rooms());
  }
  void query_presence(const std::string& room,
                      std::function<void(std::vector<PresenceEntry>)> done) override {
    done(hub_.presence(room));
  }

 private:
  Hub& hub_;
};

}  // namespace realtime
