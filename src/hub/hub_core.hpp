// The Hub's implementation, shared with the library's other parts (sessions, HTTP, broadcasters).
//
// Owned by Hub. Thread safety: everything may be called from any thread, except join()/leave(),
// which run on the session's own shard thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <spdlog/logger.h>

#include "hub/room_registry.hpp"
#include "hub/shard.hpp"
#include "realtime/hub.hpp"
#include "realtime/metrics.hpp"

namespace realtime::detail {

class WsSession;

class HubCore {
 public:
  explicit HubCore(HubOptions options);
  ~HubCore();
  HubCore(const HubCore&) = delete;
  HubCore& operator=(const HubCore&) = delete;

  // start() after stop() does nothing: a Hub runs once.
  void start();
  void stop();
  void wait();
  bool stopped() const noexcept { return stopped_.load(std::memory_order_acquire); }
  // start() has run: the shards' threads may be running handlers (until they are joined).
  bool started() const noexcept { return started_.load(std::memory_order_acquire); }
  // Started and not stopped: the shards' threads run what is posted to their contexts.
  bool running() const noexcept { return started_.load(std::memory_order_acquire) && !stopped(); }
  // Whether the calling thread is one of this hub's I/O threads (in a hook, say).
  bool on_io_thread() const noexcept;

  unsigned shard_count() const noexcept { return static_cast<unsigned>(shards_.size()); }
  Shard& shard(unsigned index) noexcept { return *shards_[index]; }
  // The shard for the next accepted socket (round robin).
  Shard& next_shard() noexcept;
  // The home shard of a room: a socket that opens /ws/{room} is moved to it, so a room's members
  // (and its publishers) share one thread and a broadcast stays on it.
  Shard& room_shard(std::string_view room) noexcept;
  Metrics& metrics() noexcept { return metrics_; }
  const std::string& pod_id() const noexcept { return pod_id_; }
  const HubOptions& options() const noexcept { return options_; }
  // The logger of HubOptions::log, or null without one (then the components use spdlog's default).
  const std::shared_ptr<spdlog::logger>& logger() const noexcept { return logger_; }
  // A new connection id: unique in the cluster (a random per-process prefix), URL-safe.
  std::string next_connection_id();
  // An id for a message to one socket (welcome, error, pong, ...): unique. With the room position
  // the message stands at (welcome, joined, recovered), "<position>.d<tag><n>": a client resuming
  // from it resumes from that position (see resume_point()); without, "<tag>-d<n>": not a recovery
  // point.
  std::string next_direct_id(std::string_view position = {});

  // A fresh random epoch (8 characters of [0-9a-z]) for a new history.
  std::string new_history_epoch() { return new_epoch(); }
  // Delivers msg to this pod's sockets: its room's members, or everyone when msg.room is empty.
  // A room message without an id gets the room's next id and joins its history. Returns the id.
  std::string deliver(Message& msg);
  // Without Redis (LocalBroadcaster's presence hooks): announces to the room the user's status as
  // it is now, under the room's lock, unless the members were told it last; `joined`: online while
  // the user is there (a first socket that is away is announced online, then away). Announcing
  // the change a session saw, after the lock, could reach members out of order when two sockets
  // of one user on two threads changed at once (one leaving as the other joined: offline last).
  void announce_presence(const std::string& room, const std::string& user, bool joined);
  // Delivers msg to every socket of `user` on this pod.
  std::string deliver_to_user(const std::string& user, Message& msg);
  // Where a message numbered by a shared history reaches this pod from.
  enum class Numbered : std::uint8_t {
    remote,  // the subscription, in the history's order: another pod's message
    own,     // the answer to this pod's own publish (it may overtake what the subscription brings)
  };
  // Delivers a room message whose id comes from a shared history (epoch, seq): in seq order on this
  // pod, each seq once (a repeat or a late one is dropped). Where this pod's delivery of a room
  // starts (after its first member joined, or a new history began) is set by the subscription
  // alone: an own message answered before that is held, since others' messages numbered ahead of
  // it may still be on their way; its echo (own_echo()) or another pod's message settles it.
  // `broadcast_at`: when it was published here (an own message), else now.
  void deliver_sequenced(Message& msg, std::string_view epoch, std::uint64_t seq,
                         Numbered from = Numbered::remote,
                         std::chrono::steady_clock::time_point broadcast_at = {});
  // Whether the room has members here and where its delivery starts is not known yet (then the
  // subscription's copy of this pod's own message matters, and a joining client's position needs
  // the shared history's numbering: set_start()).
  bool start_unknown(std::string_view room);
  // The room's membership period here when its start is not settled (unknown, or set by giving up
  // on a gap before anything came): a read of the shared history's numbering would settle it.
  std::optional<std::uint64_t> start_to_read(std::string_view room);
  // The shared history's numbering of `room` (epoch, last seq issued), read in membership period
  // `generation` after this pod's subscription to it began: unless the subscription has shown the
  // start already, delivery starts after seq (own messages held numbered up to it go out now).
  void set_start(const std::string& room, std::uint64_t generation, std::string_view epoch,
                 std::uint64_t seq);
  // A client joining `room` now gets every message numbered after this id: "<epoch>-<seq>" of the
  // shared history. Empty while the start is unknown.
  std::string shared_position(std::string_view room) const;
  // Where the room stands on this pod: the shared position with a shared history, else this pod's
  // own (`<epoch>-<seq>`, seq 0 before the first message). What was numbered up to it has been
  // posted to the shards (both are read under the room's lock). Empty: not known, or no such room.
  std::string room_position(std::string_view room) const;
  // The subscription brought this pod's own message (epoch, seq) of `room`: the room's delivery
  // starts there (see deliver_sequenced).
  void own_echo(const std::string& room, std::string_view epoch, std::uint64_t seq);
  // A room's place in a shared history on this pod: the next number it is to deliver.
  struct SharedPosition {
    std::string room;
    std::string epoch;
    std::uint64_t next = 0;
  };
  // Delivers frames held behind a gap for longer than kHoldLimit (call periodically). With
  // `repair` (a shared history to read the missing messages from), such a gap is first returned,
  // once, to be filled (deliver_repaired(), then gap_repaired()), and given up after kRepairLimit.
  std::vector<SharedPosition> release_held(bool repair = false);
  // The rooms with members here whose delivery follows a shared history (a lost subscription may
  // have missed some of their messages).
  std::vector<SharedPosition> followed_rooms();
  // followed_rooms()'s entry for one room, if it is followed.
  std::optional<SharedPosition> followed_room(std::string_view room);
  // A message read back from the shared history: delivered in order like the subscription's when
  // this pod follows the room in that history and has not delivered `seq` yet; else ignored.
  void deliver_repaired(Message& msg, std::string_view epoch, std::uint64_t seq);
  // The history answered for a gap release_held() returned: what is still missing is given up.
  // Not `answered` (the read failed): the gap is named again by release_held() until kRepairLimit.
  void gap_repaired(const std::string& room, bool answered = true);
  // How long a frame may wait for a missing predecessor (a message lost, or published before this
  // pod subscribed) before the gap is accepted.
  static constexpr std::chrono::milliseconds kHoldLimit{100};
  // How long, after kHoldLimit, a gap may wait for the shared history's answer.
  static constexpr std::chrono::milliseconds kRepairLimit{1000};
  // A room without members is forgotten (with its history) this long after its last message.
  static constexpr std::chrono::seconds kIdleRoomTtl{3600};
  // Forgets idle rooms; called now and then by shard 0's sweep.
  void evict_idle_rooms() {
    registry_.evict_idle(kIdleRoomTtl);
    shrink_floor_.store(0, std::memory_order_relaxed);
  }
  // Frees the least recently used rooms' histories (and rooms without members) when they hold more
  // than HubOptions::history_bytes, down to 7/8 of it. Cheap when within it; called (outside any
  // lock) after whatever can make rooms hold more.
  void keep_within_history_budget();
  const RoomRegistry& registry() const noexcept { return registry_; }
  // With Redis: `cluster` is the room's presence in the cluster (users not listed are offline),
  // read in cluster-state epoch `epoch` ("-": none) after every presence message this pod received
  // before it and before every later one. A snapshot (or the first read of a membership period)
  // becomes what the room's members are taken to know; otherwise the differences from what they
  // were told are returned (status offline for a user gone), for the caller to deliver. A read in
  // another epoch than the last one (or in none) changes nothing and returns nothing: Redis lost
  // its data since, nobody announces what a loss changed, and a pod's part may not be rewritten
  // yet; what the members were told stays what later messages and resyncs compare with. Nothing
  // for a room without members here. `only_if_unknown`: a read not ordered with the presence
  // messages, taken only when the members know nothing yet (else it could be older than them).
  struct PresenceResync {
    std::vector<PresenceEntry> changes;
    // Redis lost its data since the members were told (a new state epoch): nothing is announced
    // now, as the pods' rewrite may be partway; a resync once it is done compares again.
    bool lost = false;
  };
  PresenceResync sync_presence(const std::string& room, const std::vector<PresenceEntry>& cluster,
                               const std::string& epoch, bool only_if_unknown = false);
  // The epoch a read gives when Redis holds none (it lost its data, and no pod has set one yet).
  static constexpr std::string_view kNoStateEpoch = "-";

  struct JoinResult {
    bool user_first = false;  // the user's first socket in the room on this pod
    // The user's status in the room on this pod after the join (derived from its sockets here),
    // when it changed: from online (a first socket that is away: announced online, then away) or,
    // for a user already here, from what it was (an online socket joins away ones).
    std::optional<PresenceStatus> status_change;
    bool room_first = false;  // the room's first member on this pod
    bool recovered = false;   // last_id was given and everything after it was replayed
    std::size_t replayed = 0;
    // The pod's own history: the id of the last message before the socket's membership
    // ("<epoch>-0" before the first); every later one reaches the socket.
    std::string position;
  };
  // Adds session to room (and replays history after last_id into its queue, atomically with the
  // join, so nothing is missed or doubled between replay and live traffic). On the session's
  // thread. buffer_live: the member's live frames go to WsSession::buffer_live() until the shard is
  // told otherwise (recovery from a shared history under way). status: the socket's own status.
  JoinResult join(const std::string& room, const std::string& user, WsSession& session,
                  const std::optional<std::string>& last_id, bool buffer_live = false,
                  PresenceStatus status = PresenceStatus::online);
  struct LeaveResult {
    bool user_last = false;
    bool room_last = false;
    // Not the last: the user's status on this pod after the leave, when it changed (the last
    // online socket left while away ones remain).
    std::optional<PresenceStatus> status_change;
  };
  // status: the leaving socket's own status.
  LeaveResult leave(const std::string& room, const std::string& user, WsSession& session,
                    PresenceStatus status = PresenceStatus::online);
  // One socket of the user in the room changed its status from `from` to `to`: the user's status
  // on this pod (derived from all its sockets here) when that changed, else nullopt.
  std::optional<PresenceStatus> set_status(const std::string& room, const std::string& user,
                                           PresenceStatus from, PresenceStatus to);

  std::vector<RoomCount> rooms() const;
  std::vector<PresenceEntry> presence(std::string_view room) const;
  // The user's status in the room on this pod now (derived from its sockets here); nullopt when
  // it has none there.
  std::optional<PresenceStatus> user_status(std::string_view room, const std::string& user) const;
  // Members of `room` on this pod (0 when unknown).
  std::size_t room_members(std::string_view room) const;
  // Every room with members on this pod, with its users: for resynchronising shared state.
  struct RoomSnapshot {
    std::string room;
    std::size_t members = 0;
    std::vector<PresenceEntry> users;
  };
  std::vector<RoomSnapshot> snapshot() const;

  // Called (outside the registry's locks) when a room gets its first member on this pod (active =
  // true) or loses its last (false); used by the Redis broadcaster to subscribe by interest. The
  // observers may be set and cleared while the hub runs: a setter waits for the calls of the
  // observer it replaces, so that once it returns none runs any more. An observer must therefore
  // not set an observer itself (it only posts work elsewhere).
  void set_room_observer(std::function<void(const std::string& room, bool active)> observer);
  void notify_room(const std::string& room, bool active) const;
  // Room positions come from a history shared by every pod (Redis), not from this pod's own: a
  // room without members here is then forgotten when it has nothing else to keep. Set before
  // start().
  void use_shared_history() noexcept { shared_history_.store(true, std::memory_order_release); }
  bool shared_history() const noexcept { return shared_history_.load(std::memory_order_acquire); }
  // Called (outside any lock) after every change of a room's member count on this pod.
  void set_members_observer(std::function<void(const std::string& room)> observer);
  // Likewise for a user's first and last socket on this pod (user channels are subscribed by
  // interest).
  void set_user_observer(std::function<void(const std::string& user, bool active)> observer);
  // A socket of `user` opened or closed on this pod; calls the user observer on the first and last.
  void add_user_socket(const std::string& user);
  void remove_user_socket(const std::string& user);

  // Hands msg to the socket `connection_id` of this pod (WsSession::send); false when there is no
  // such socket open here (any more), or the hub is not running.
  bool send_to_connection(std::string_view connection_id, Message msg);

 private:
  std::string new_epoch();
  void post_to_shards(const RoomState* state, const FramePtr& frame);
  // deliver()'s presence, under the room's lock: its id named, and queued to the room's shards.
  void post_presence(RoomState& state, Message& msg);

  HubOptions options_;
  std::string pod_id_;
  std::string id_prefix_;  // random, per process: keeps connection ids and global ids unique
  Metrics metrics_;
  std::shared_ptr<spdlog::logger> logger_;  // HubOptions::log's, else null
  std::vector<std::unique_ptr<Shard>> shards_;
  RoomRegistry registry_;
  void notify_members(const std::string& room) const;
  // The observers are read on the I/O threads and set from any thread: a call holds the lock
  // shared, a setter exclusively (it waits for the calls under way). `observed_` spares a pod
  // without observers (no Redis) the lock on every join and leave.
  mutable std::shared_mutex observers_mutex_;
  std::atomic<bool> observed_{false};
  std::function<void(const std::string&, bool)> room_observer_;  // guarded by observers_mutex_
  std::function<void(const std::string&, bool)> user_observer_;  // guarded by observers_mutex_
  std::function<void(const std::string&)> members_observer_;     // guarded by observers_mutex_
  void update_observed();  // under observers_mutex_, exclusively
  std::atomic<bool> shared_history_{false};
  std::atomic<bool> shrinking_{false};  // a keep_within_history_budget() sweep is running
  // What the rooms held after the last sweep: when it could not get within the budget (histories
  // of rooms with members are dropped, but not the rooms), the next sweep waits for budget/8 more.
  std::atomic<std::size_t> shrink_floor_{0};
  std::mutex held_mutex_;
  std::set<std::string> rooms_holding_;  // guarded by held_mutex_
  // deliver_sequenced() under the room's lock; true when frames wait behind a gap.
  bool deliver_sequenced_locked(RoomState& state, std::string_view epoch, std::uint64_t seq,
                                Numbered from, const FramePtr& frame);
  // Keeps a frame until what precedes it has been delivered (or kHoldLimit passed). True.
  bool hold_locked(RoomState& state, std::uint64_t seq, const FramePtr& frame);
  // The room's delivery starts at seq, which came through the subscription: held own messages
  // numbered before it go first. True when frames wait behind a gap.
  bool start_at_locked(RoomState& state, std::uint64_t seq);
  // Delivers the held frames that follow shared_next without a gap (drops any it has passed).
  // True when frames still wait.
  bool drain_held_locked(RoomState& state);
  // Skips a room's gap: what is held after it goes out in order.
  void give_up_gap_locked(RoomState& state);
  // Lists a room for release_held().
  void note_holding(const std::string& room);
  std::mutex users_mutex_;
  std::unordered_map<std::string, std::uint32_t> user_sockets_;  // guarded by users_mutex_
  std::atomic<std::uint64_t> next_connection_{1};
  std::atomic<std::uint64_t> next_global_{1};
  std::atomic<std::uint64_t> next_generation_{1};
  std::atomic<unsigned> next_shard_{0};
  std::mutex random_mutex_;
  std::uint64_t random_state_;
  std::vector<std::thread> threads_;
  std::vector<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guards_;
  std::mutex lifecycle_mutex_;
  // While one caller of wait() joins the threads, the others wait for it on this.
  std::condition_variable joined_;
  bool joining_ = false;  // guarded by lifecycle_mutex_
  std::atomic<bool> started_{false};
  std::atomic<bool> stopped_{false};
};

// Marks, for the calling thread and while it lives, a message as checked already: a client's
// chat, decoded (its data re-serialised), its room checked, and an on_message rewrite checked, is
// not parsed a second time on its way to Hub::broadcast, Hub::send_to_user or a RedisBroadcaster's
// publish (a custom broadcaster's publish reaches the hub on the same thread). The mark holds a
// copy of what the check covers (type, id, room, data): a message that differs from it (a custom
// broadcaster's rewrite, another message) is checked as any other.
class CheckedMessage {
 public:
  explicit CheckedMessage(const Message& msg);
  ~CheckedMessage();
  CheckedMessage(const CheckedMessage&) = delete;
  CheckedMessage& operator=(const CheckedMessage&) = delete;
};
// Takes the mark (once): true when the calling thread is inside a CheckedMessage marking a message
// equal to msg in what the check covers.
bool take_checked(const Message& msg) noexcept;
// protocol::check_outgoing(msg, what) unless the message was marked checked.
void check_unless_checked(const Message& msg, std::string_view what);

// Parses "<epoch>-<seq>"; nullopt when it is not of that form.
struct MessageId {
  std::string_view epoch;
  std::uint64_t seq = 0;
};
std::optional<MessageId> parse_message_id(std::string_view id) noexcept;
// "<epoch>-<seq>": a room position, and the id of the room message at it.
std::string position_id(std::string_view epoch, std::uint64_t seq);
// The room position a client's last_id stands for: "<epoch>-<seq>" of a room message as it is, and
// that of an id the server gave a message at a known place in the room (a presence message, the
// welcome: "<epoch>-<seq>.p<tag><n>", ".d<tag><n>"); anything else unchanged (unknown: not
// recovered).
std::string resume_point(std::string_view last_id);

}  // namespace realtime::detail
