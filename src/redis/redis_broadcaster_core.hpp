#pragma once

// RedisBroadcaster's implementation, shared by its two translation units:
// - redis_broadcaster.cpp: start and stop, subscriptions by interest, the history reads (welcome
//   positions, recovery, gaps), presence, and what arrives from Redis;
// - publish_lanes.cpp: the publish path (a lane per I/O thread and the Redis thread's, numbering
//   through the shared history, the hold while the connection is lost).
// Internal to the library: not installed.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/logger.h>

#include "hub/hub_core.hpp"
#include "realtime/redis_broadcaster.hpp"
#include "redis/cluster_state.hpp"
#include "redis/redis_publisher.hpp"
#include "redis/redis_subscriber.hpp"
#include "redis/shared_history.hpp"

namespace realtime::detail {

inline constexpr std::string_view kRoomPrefix = "realtime:room:";
inline constexpr std::string_view kUserPrefix = "realtime:user:";
inline constexpr std::string_view kGlobalChannel = "realtime:global";
// Shared history keys live this long after a room's last message (each pod renews them with its
// first publish to the room in every kTtlRefreshInterval): recovery is for reconnects, not for
// archives. The same as HubCore::kIdleRoomTtl.
inline constexpr int kHistoryTtlSeconds = 3600;
// The most messages one publish call (or one call that renews rooms' keys) carries.
inline constexpr std::size_t kMaxPublishBatch = 256;

// Runs `call` (EVALSHA, the script's SHA-1, its arguments) on `connection`; the whole script goes
// only when Redis does not have it (its first use, or Redis restarted). A failure to send the
// first call is returned; one of the second is given to `done`.
std::error_code eval_by_sha(RedisPublisher& connection, std::string_view script,
                            std::vector<std::string> call, RedisPublisher::ReplyHandler done);

// Runs a callback once: by run(), or else when destroyed (a handler dropped by a stopped loop).
class OnceCall {
 public:
  explicit OnceCall(std::function<void()> call) : call_(std::move(call)) {}
  OnceCall(const OnceCall&) = delete;
  OnceCall& operator=(const OnceCall&) = delete;
  ~OnceCall() { run(); }
  void run() {
    if (!call_) return;
    auto call = std::move(call_);
    call_ = nullptr;
    call();
  }

 private:
  std::function<void()> call_;
};

struct PendingPublish {
  Message msg;
  std::function<void(const std::string&)> done;
  std::string epoch;  // the room's epoch as this pod knew it when sending
  // When it was published on this pod: its broadcast latency counts from here, the Redis round
  // trip included.
  std::chrono::steady_clock::time_point since;
};

// A connection that numbers and publishes room messages through the shared history, driven by one
// thread's loop. Each I/O thread has one, so a message published on that thread is sent, answered
// and delivered there, without waking another thread twice (a wake-up of a sleeping thread can
// cost more CPU than the rest of the call); the Redis thread has one for messages from
// any other thread and for an I/O thread whose own lane is not connected.
struct PublishLane {
  PublishLane(boost::asio::io_context& io, RedisPublisher& pub) : context(io), publisher(pub) {}
  boost::asio::io_context& context;
  RedisPublisher& publisher;
  std::unique_ptr<RedisPublisher> owned;  // an I/O thread's lane owns its connection
  std::vector<PendingPublish> queue;      // sent with the next call
  std::size_t queued_bytes = 0;           // unsent_cost() of what `queue` holds
  std::chrono::steady_clock::time_point overload_logged{};  // refusals are logged once per 5 s
  bool in_flight = false;  // one call at a time, so a lane keeps its order
  // Messages of this lane's thread handed to the Redis thread's lane and not numbered yet.
  std::shared_ptr<std::atomic<std::uint32_t>> handed_off =
      std::make_shared<std::atomic<std::uint32_t>>(0);
};

class RedisBroadcasterCore {
 public:
  RedisBroadcasterCore(Hub& hub, const RedisBroadcasterOptions& options);
  RedisBroadcasterCore(const RedisBroadcasterCore&) = delete;
  RedisBroadcasterCore& operator=(const RedisBroadcasterCore&) = delete;
  ~RedisBroadcasterCore();

  void start();
  void stop();
  bool ready(std::string* reason) const;

  // publish_lanes.cpp
  std::string publish(Message msg);
  void publish_then(Message msg, std::function<void(const std::string&)> done);
  // Runs pending.done(id); what it throws is logged and dropped.
  void answer(PendingPublish& pending, const std::string& id) noexcept;
  std::string publish_to_user(const std::string& user, Message msg);

  // Recovery reads the shared history whenever Redis is configured, also on a pod that has just
  // started and not yet proven its link: fetch_history() waits (briefly) for it.
  bool shared_history() const { return true; }
  void fetch_history(const std::string& room, const std::string& last_id,
                     std::function<void(HistoryResult)> done);
  bool await_subscribed(const std::string& room, const std::string& user,
                        std::function<void()> done);

  void user_joined(const std::string& room, const std::string& user);
  // user_joined, user_left and status_changed: the user's status in the room, as the hub has it
  // when the Redis thread runs this, written to this pod's part (see the definition).
  void presence_changed(const std::string& room, const std::string& user, bool joined);
  void user_left(const std::string& room, const std::string& user);
  void status_changed(const std::string& room, const std::string& user, PresenceStatus status);
  void query_rooms(std::function<void(std::vector<RoomCount>)> done);
  void query_presence(const std::string& room,
                      std::function<void(std::vector<PresenceEntry>)> done);

 private:
  // The Redis thread's command connection: not connected yet since start, up, lost less than
  // kPublishHold ago (holding room messages for it), or down.
  enum class PublishState : std::uint8_t { starting, up, holding, down };
  // What this pod knows of a room's numbering: when it last renewed the keys' TTL, and the epoch
  // Redis last numbered it in (the script's fast path; a stale one only costs a slower call).
  struct RoomNumbering {
    std::chrono::steady_clock::time_point refreshed;
    std::string epoch;
    std::uint64_t next_seq = 0;  // the number Redis should give the next message (0: unknown)
  };

  // redis_broadcaster.cpp
  void reconnect_all_now();
  void read_start(const std::string& room, const std::shared_ptr<OnceCall>& once);
  std::error_code read_history(const std::string& room, std::size_t keep,
                               const std::string& last_id, RedisPublisher::ReplyHandler done);
  std::error_code eval(std::string_view script, const std::string& sha,
                       std::vector<std::string> args, RedisPublisher::ReplyHandler done);
  void start_release_timer();
  void start_keepalive_timer();
  std::string sanitized_pod() const;
  void fetch_when_subscribed(const std::string& room, const std::string& last_id,
                             std::function<void(HistoryResult)> done,
                             std::chrono::steady_clock::time_point deadline, bool woken = false);
  void read_back_when_subscribed(const std::string& room, int waits);
  void fill_gap(const HubCore::SharedPosition& from, bool reported);
  void on_own_presence(std::string_view payload);
  void on_presence_sync(std::string_view payload);
  void resync_after_loss(const std::string& room);
  void on_own_echo(std::string_view channel, std::string_view payload);
  void on_message(std::string_view channel, std::string_view payload);

  // publish_lanes.cpp
  std::string encode(const Message& msg) const;
  void append_encoded(std::string& out, const Message& msg) const;
  PublishLane* this_thread_lane() const;
  void stop_lanes();
  // `bounded`: a new message, refused (kNotPublished, overload) when max_unsent_bytes of handed-off
  // messages wait already; a lane's unsent ones, taken before, are not.
  void hand_off(const std::shared_ptr<std::atomic<std::uint32_t>>& handed_off,
                PendingPublish pending, bool bounded);
  void take_handed_off();
  std::vector<PendingPublish> handed_over(bool close);
  // The end of stop(), on the Redis thread: once the Redis lane's call in flight is answered (or
  // after `turns` more turns of the loop), refuse_unsent(), then the loop ends.
  static constexpr unsigned kMaxEndTurns = 16;
  void end_after_answers(unsigned turns);
  // At stop, on the Redis thread: what still waits for Redis gets kNotPublished.
  void refuse_unsent();
  bool hand_off_unsent(PublishLane& lane, std::vector<PendingPublish>& unsent);
  void hold_publishes();
  void release_held_publishes();
  void publish_numbered(PublishLane& lane, PendingPublish pending);
  void send_publish_batch(PublishLane& lane);
  void publish_locally(PendingPublish& pending);
  void send(std::string channel, std::string payload);

  HubCore& core_;
  std::shared_ptr<spdlog::logger> log_;
  std::string pod_suffix_;
  std::string control_channel_;  // this pod's own (heartbeats, its presence changes' echo)
  boost::asio::io_context context_{1};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_{
      context_.get_executor()};
  std::unique_ptr<RedisPublisher> publisher_;
  std::unique_ptr<RedisSubscriber> subscriber_;
  std::unique_ptr<ClusterState> cluster_;
  // Publishing through the shared history: a lane per I/O thread, and the Redis thread's.
  const std::string publish_sha_ = script_sha1(publish_script());
  const std::string history_sha_ = script_sha1(history_script());
  const std::string gap_sha_ = script_sha1(gap_script());
  const std::string keep_rooms_sha_ = script_sha1(keep_rooms_script());
  std::vector<std::unique_ptr<PublishLane>> lanes_;  // [k]: shard k's, touched on its thread only
  std::unique_ptr<PublishLane> redis_lane_;
  std::mutex numbering_mutex_;  // the lanes' threads and the Redis thread share the table
  std::unordered_map<std::string, RoomNumbering> numbering_;
  std::size_t numbering_clean_at_ = 0;  // the size past which old entries are dropped next
  boost::asio::steady_timer exit_timer_{context_};
  boost::asio::steady_timer release_timer_{context_};
  boost::asio::steady_timer keepalive_timer_{context_};
  boost::asio::steady_timer hold_timer_{context_};
  // Rooms whose presence is compared again once the pods have rewritten their part after Redis
  // lost its data (resync_after_loss); on the Redis thread.
  static constexpr std::chrono::milliseconds kLossResyncDelay{5000};  // a lease renewal (3 s), 2 s
  std::set<std::string> loss_resync_rooms_;
  boost::asio::steady_timer loss_resync_timer_{context_};
  std::uint64_t hold_generation_ = 0;  // which hold the timer is for
  // Messages handed to the Redis thread (hand_off()), in the order they came; taken by one posted
  // take_handed_off() at a time. Closed by refuse_unsent(): later ones are refused at once.
  std::mutex handoff_mutex_;
  std::vector<PendingPublish> handoff_;  // guarded by handoff_mutex_
  std::size_t handoff_bytes_ = 0;        // guarded by handoff_mutex_
  bool handoff_closed_ = false;          // guarded by handoff_mutex_
  // handed_off for threads without a lane (an application's own): see hand_off().
  std::shared_ptr<std::atomic<std::uint32_t>> foreign_handed_off_ =
      std::make_shared<std::atomic<std::uint32_t>>(0);
  std::chrono::milliseconds keepalive_interval_{};
  bool finished_ = false;
  std::thread thread_;
  std::mutex lifecycle_mutex_;
  bool stopped_ = false;  // guarded by lifecycle_mutex_: stop() ran; start() no more
  std::atomic<PublishState> publish_state_{PublishState::starting};
  std::atomic<bool> redis_thread_runs_{false};  // between start() and stop()
  // While stop() runs: a room message not numbered by Redis is not taken (its callback gets
  // kNotPublished). (The server's sockets are closed by then; once stopped, this pod numbers
  // messages itself.)
  std::atomic<bool> stopping_{false};
  mutable std::mutex health_mutex_;
  bool healthy_ = false;
  std::string health_reason_;
  bool id_shared_ = false;  // guarded by health_mutex_: another live pod renews this pod's lease
  std::chrono::steady_clock::time_point last_bad_payload_log_{};
  std::size_t max_unsent_bytes_;  // RedisBroadcasterOptions::max_unsent_bytes
};

}  // namespace realtime::detail
