// Cluster-wide rooms and presence, kept in Redis next to the pub/sub fan-out.
//
// Each pod writes only its own part, as absolute values (so a reconnect can simply rewrite it):
//   realtime:pods                  SET     live pod ids
//   realtime:pod:{pod}             STRING  the pod's lease (PX kLeaseTtl, renewed every
//   kLeaseRenew) realtime:pod:{pod}:rooms       HASH    room -> members on that pod
//   realtime:pod:{pod}:prooms      SET     rooms where the pod holds presence entries
//   realtime:presence:{room}       HASH    "{pod}|{user}" -> the user's status on that pod
//                                          (online if any of its sockets there is, else away)
//   realtime:state-epoch           STRING  changes only when Redis lost its data
// A user's status in the cluster is derived from every pod's entry (online if any is online, else
// away; offline without any); Lua scripts change a pod's entry and compute that status before and
// after atomically, so each change of it is announced once. The script that made a change
// publishes it (PUBLISH from inside the script), so every pod receives one user's changes in the
// order Redis made them; the pod that ran the script gets a copy on its own control channel, on the
// same subscription, for its own members (from the script's answer when that copy cannot come: the
// channel not subscribed yet, or the subscriber's connection replaced before it came). Every pod
// sweeps: a pod whose lease expired is removed by whichever pod gets there first, and that pod's
// script announces the presence the removal changed (offline, or the status other pods still hold).
// A pod that finds its own lease gone when renewing it rewrites its part (Redis lost it: FLUSHALL;
// or the pod was stopped and swept), as after a reconnect; the rewrite announces the changes it
// makes to the cluster's statuses (a swept pod's users come back online), unless the epoch shows
// that Redis lost its data (nothing was announced for the loss, so nothing is for the rewrite).
//
// Owned by RedisBroadcasterCore; runs on its Redis thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/steady_timer.hpp>

#include "hub/hub_core.hpp"
#include "redis/redis_publisher.hpp"

namespace realtime::detail {

// The presence-sync script (see ClusterState::sync_presence): KEYS pods set and epoch; ARGV this
// pod, the kind, the channel to publish on ("": answer instead), the budget of entries, then rooms.
const std::string& presence_sync_script();
// The script that removes a pod's part (see ClusterState::remove_pod): KEYS pods set; ARGV the pod,
// force ("1": this pod leaving), the presence messages' tail, the echo channel, the budget.
const std::string& remove_pod_script();

class ClusterState {
 public:
  // How long a pod's lease lives without renewal, and how often it is renewed (and dead pods
  // swept): a pod that dies is reported offline within kLeaseTtl + kLeaseRenew (13 s).
  static constexpr std::chrono::milliseconds kLeaseTtl{10000};
  static constexpr std::chrono::milliseconds kLeaseRenew{3000};
  // Member counts are written at most this often per room (coalesced).
  static constexpr std::chrono::milliseconds kCountFlush{100};
  // The other pods' member counts (GET /api/rooms) are read from Redis at most this often: the
  // read walks every room of every pod, and the API is not for the hot path.
  static constexpr std::chrono::milliseconds kRoomsReadInterval{1000};
  // A rewrite of the pod's part goes in script calls of at most this many rooms or users (the
  // users of one room always go together), so that one call does not hold Redis for long.
  static constexpr std::size_t kRewriteBatchRooms = 256;
  static constexpr std::size_t kRewriteBatchUsers = 2048;
  // A presence sync call stops after the room that brings the entries it read past this many.
  static constexpr std::size_t kPresenceSyncBudget = 16384;
  // A call removing a pod's part stops after the room that brings the presence entries it read
  // past this many (the next call goes on).
  static constexpr std::size_t kRemovePodBudget = 16384;

  // Where a presence message goes: to this pod's members (a script published it to the other
  // pods, and its echo could not be counted on), or to every pod (no script ran: Redis failed).
  enum class Reach : std::uint8_t { this_pod, every_pod };
  // announce sends a presence message to a room's members.
  using PresenceAnnouncer = std::function<void(const std::string& room, const std::string& user,
                                               PresenceStatus status, Reach reach)>;

  // The scripts also publish each change on `control_channel`, this pod's own, while echo_ready()
  // says the pod's subscriber has it subscribed; the broadcaster delivers those copies to the
  // pod's members (in order with every other pod's changes, on the same subscription).
  ClusterState(boost::asio::io_context& context, HubCore& hub, RedisPublisher& redis,
               PresenceAnnouncer announce, std::string control_channel,
               std::function<bool()> echo_ready);

  // Rewrites this pod's part from the hub (after every (re)connect) and starts the lease timer.
  void on_connected();
  // Told (on the Redis thread) when the lease renewal finds this pod's id held by another live
  // process (true), and when it holds it again (false).
  void set_on_id_shared(std::function<void(bool)> handler) { on_id_shared_ = std::move(handler); }
  // Told (on the Redis thread) when the lease renewal found this pod's part gone without a
  // reconnect (FLUSHALL, a failover to an empty replica, a sweep while stopped), once the part is
  // being written again: what the members here were told may no longer hold.
  void set_on_part_lost(std::function<void()> handler) { on_part_lost_ = std::move(handler); }
  // Removes this pod's part (graceful stop); calls done when Redis answered or failed.
  void leave_cluster(const std::function<void()>& done);
  void stop();

  // The user's status on this pod in `room` (derived from its sockets here) became online on its
  // first socket, offline on its last, or `status`. Each writes this pod's entry and announces the
  // user's status in the cluster (derived from every pod's entry) when that changed.
  void user_joined(const std::string& room, const std::string& user);

  // Presence resync. Asks Redis to publish on this pod's control channel each room's presence in
  // the cluster (one message per room, kPresenceSyncHead first, with the cluster-state epoch): a
  // snapshot (a room that just got members here: what they are taken to know from now on) or a
  // resync (after the subscription was lost: the members are sent what changed meanwhile; see
  // HubCore::sync_presence). Nothing when the control channel is not subscribed (the message could
  // not come).
  void sync_presence(const std::vector<std::string>& rooms, bool snapshot);
  // The room's presence in the cluster read at once, not through the subscription, so not in order
  // with presence messages: what a room's members are taken to know when the room's subscription
  // could not be confirmed (its snapshot could not come); a resync once the subscription is back
  // sends them what changed. `done` gets the message (kind kPresenceRead); nothing on a failure.
  void read_presence(const std::string& room, std::function<void(std::string_view)> done);
  static constexpr std::string_view kPresenceSyncHead = "presence-sync";
  static constexpr std::string_view kPresenceSnapshot = "snapshot";
  static constexpr std::string_view kPresenceResync = "resync";
  static constexpr std::string_view kPresenceRead = "read";
  struct PresenceSync {
    bool snapshot = false;
    bool read = false;  // read_presence()'s: taken only for a room whose members know nothing yet
    std::string room;
    std::string epoch;                 // the cluster-state epoch it was read in ('-': none)
    std::vector<PresenceEntry> users;  // online or away; the others are offline
  };
  // Such a control message; nullopt when it is not one (or is malformed).
  static std::optional<PresenceSync> parse_presence_sync(std::string_view payload);
  void user_left(const std::string& room, const std::string& user);
  void status_changed(const std::string& room, const std::string& user, PresenceStatus status);
  void room_changed(const std::string& room);  // member count on this pod changed

  // Other pods' data merged with this pod's own (exact, from the hub). The other pods' counts are
  // read at most once per kRoomsReadInterval; calls meanwhile share that read.
  void query_rooms(const std::function<void(std::vector<RoomCount>)>& done);
  void query_presence(const std::string& room,
                      const std::function<void(std::vector<PresenceEntry>)>& done);

  // The broadcaster delivered the echo of one of this pod's changes (they come in the order the
  // scripts ran, as the answers do).
  void echo_received();
  // The subscriber has a new connection: the echoes the old one did not bring are lost, and the
  // changes they were for are delivered to this pod's members now, from the answers.
  void subscriber_reconnected();

 private:
  // Writes this pod's whole part again from the hub (after a reconnect, or a lease found gone).
  void rewrite_part();
  // The presence-sync script's call up to its rooms: `kind`, and the channel to publish on ("":
  // answer instead).
  std::vector<std::string> presence_sync_call(std::string_view kind, std::string channel) const;
  // Syncs rooms[first..] (see sync_presence), a call at a time.
  void send_presence_sync(std::shared_ptr<const std::vector<std::string>> rooms, std::size_t first,
                          bool snapshot);
  // Writes this pod's entry (offline: removes it) and announces the cluster's change, if any.
  void set_pod_status(const std::string& room, const std::string& user, PresenceStatus status);
  // What a script is told of the echo: `channel`, its `echo` argument (the control channel when
  // it is subscribed, else empty), and the subscriber connection it was asked of.
  struct Echo {
    std::string channel;
    std::uint64_t subscription = 0;
  };
  Echo echo_for_script() const;
  // A change a script made and reported (it published it to the other pods). This pod's members
  // get it on the echo, else (no echo asked for, or its connection gone) from the answer.
  void own_change(const std::string& room, const std::string& user, PresenceStatus status,
                  const Echo& echo);
  // own_change() for each {room, user, status, ...} of a script's answer, from element `first` on.
  void own_changes(const RedisReply& reply, std::size_t first, const Echo& echo);
  // The end of the presence messages the scripts publish: a timestamp, and this pod's "pod" field.
  std::string presence_tail() const;
  void schedule_lease();
  void renew_lease();
  void sweep(const std::vector<std::string>& pods);
  // Removes `pod`'s part (`own`: this pod leaving; else a pod whose lease is gone), announcing the
  // presence that changes, a call at a time of at most kRemovePodBudget presence entries read;
  // `done` when all of it is gone, or a call failed.
  void remove_pod(const std::string& pod, bool own, const std::function<void()>& done);
  void flush_counts();
  // query_rooms()'s answer: this pod's own counts added to the other pods' `others`.
  std::vector<RoomCount> with_ours(const std::map<std::string, std::size_t>& others);
  std::string pod_key(std::string_view suffix) const;

  HubCore& hub_;
  RedisPublisher& redis_;
  PresenceAnnouncer announce_;
  std::string control_channel_;
  std::function<bool()> echo_ready_;
  // This pod's changes whose echo is awaited, in order (the answers reported them first), and the
  // echoes that came before their answer.
  struct Change {
    std::string room;
    std::string user;
    PresenceStatus status;
  };
  // At most this many await their echo; past it, they are delivered from the answers at once.
  static constexpr std::size_t kMaxUnechoed = 4096;
  std::deque<Change> unechoed_;
  std::size_t early_echoes_ = 0;
  std::uint64_t subscription_ = 0;  // counts the subscriber's connections
  std::string pod_;
  std::string lease_token_;  // this process's, in the lease: told apart from another's
  boost::asio::steady_timer lease_timer_;
  boost::asio::steady_timer count_timer_;
  bool lease_running_ = false;
  bool id_shared_ = false;
  std::function<void(bool)> on_id_shared_;
  std::function<void()> on_part_lost_;
  bool count_flush_pending_ = false;
  bool stopped_ = false;
  std::set<std::string> dirty_rooms_;
  // query_rooms(): the other pods' counts last read, when, and the calls waiting for a read.
  std::map<std::string, std::size_t> others_;
  bool others_known_ = false;
  std::chrono::steady_clock::time_point others_read_at_{};
  std::vector<std::function<void(std::vector<RoomCount>)>> rooms_waiting_;
  // The cluster-state epoch (realtime:state-epoch) at this pod's last rewrite; empty before the
  // first. Another value in Redis means Redis lost its data since.
  std::string epoch_;
};

}  // namespace realtime::detail
