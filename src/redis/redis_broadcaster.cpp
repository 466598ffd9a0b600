#include "realtime/redis_broadcaster.hpp"

#include <stdexcept>

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "protocol/envelope.hpp"
#include "protocol/outgoing.hpp"
#include "protocol/request.hpp"
#include "redis/redis_broadcaster_core.hpp"
#include "redis/redis_url.hpp"

namespace realtime {
namespace detail {
namespace {

namespace asio = boost::asio;

// A malformed payload on our channels is logged at most this often.
constexpr std::chrono::seconds kBadPayloadLogInterval{10};
// How often frames held behind a gap in a room's sequence are checked (HubCore::kHoldLimit).
constexpr std::chrono::milliseconds kReleasePeriod{25};
// A recovery waits at most this long for the Redis link and the room's subscription (a pod that has
// just started is still connecting), so that nothing published between the history read and the
// subscription can fall between the two. A new socket's welcome waits as long at most for its
// room's and user's subscriptions.
constexpr std::chrono::milliseconds kSubscribeWait{2000};
// How many kSubscribeWait a room read before its subscription was confirmed waits for it, to read
// back what came in between (past them, or the subscriber down, the reconnect's read-back covers
// the room).
constexpr int kReadBackWaits = 15;
constexpr std::chrono::milliseconds kSubscribePoll{5};
// How long a join's wait gives the read of the room's position (after the subscription's).
constexpr std::chrono::milliseconds kPositionReadWait{1000};
// On stop, how long to wait for Redis to confirm that this pod left the shared state.
constexpr std::chrono::milliseconds kLeaveTimeout{1000};

}  // namespace

std::error_code eval_by_sha(RedisPublisher& connection, std::string_view script,
                            std::vector<std::string> call, RedisPublisher::ReplyHandler done) {
  auto shared = std::make_shared<std::vector<std::string>>(std::move(call));
  return connection.command(*shared, [&connection, script, shared, done = std::move(done)](
                                         std::error_code error, const RedisReply& reply) {
    if (error && reply.str.starts_with("NOSCRIPT")) {
      (*shared)[0] = "EVAL";
      (*shared)[1] = std::string(script);
      if (const auto ec = connection.command(*shared, done)) done(ec, RedisReply{});
      return;
    }
    done(error, reply);
  });
}

RedisBroadcasterCore::RedisBroadcasterCore(Hub& hub, const RedisBroadcasterOptions& options)
    : core_(hub.core()),
      log_(core_.logger() ? core_.logger() : spdlog::default_logger()),
      max_unsent_bytes_(options.max_unsent_bytes) {
  auto parsed = parse_redis_url(options.url);
  if (!parsed) throw std::invalid_argument("Redis URL: " + parsed.error);
  // (Zero would rebuild the subscription in a loop: "no heartbeat for 0 ms".)
  if (options.heartbeat_interval <= std::chrono::milliseconds::zero() ||
      options.heartbeat_timeout <= options.heartbeat_interval) {
    throw std::invalid_argument(
        "heartbeat_interval must be above 0, and heartbeat_timeout longer than it");
  }
  if (parsed.url->db != 0) {
    log_->warn(
        "redis: database {} keeps this deployment's keys apart, not its messages: pub/sub "
        "channels are shared by every database of a Redis server, so give each deployment its "
        "own Redis server",
        parsed.url->db);
  }
  // The echo of our own publishes ends with this tag (see encode()).
  pod_suffix_ = ",\"pod\":";
  protocol::append_json_string(pod_suffix_, core_.pod_id());
  pod_suffix_ += '}';

  RedisPublisherOptions pub;
  pub.url = *parsed.url;
  pub.client_name = "realtime-pub-" + sanitized_pod();
  // Every connection that numbers messages or reads histories checks, before its first command,
  // that Redis is the run the rooms were numbered on (restart_check_script()).
  pub.restart_check_script = std::string(restart_check_script());
  publisher_ = std::make_unique<RedisPublisher>(context_, pub, log_);
  publisher_->set_on_publish_error([this](std::string_view, std::error_code) {
    core_.metrics().redis_publish_errors.fetch_add(1, std::memory_order_relaxed);
  });

  RedisSubscriberOptions sub;
  sub.url = *parsed.url;
  sub.client_name = "realtime-sub-" + sanitized_pod();
  sub.control_channel = "realtime:control:" + core_.pod_id();
  sub.heartbeat_interval = options.heartbeat_interval;
  sub.heartbeat_timeout = options.heartbeat_timeout;
  keepalive_interval_ = options.room_keepalive_interval;
  subscriber_ = std::make_unique<RedisSubscriber>(context_, sub, *publisher_, log_);
  redis_lane_ = std::make_unique<PublishLane>(context_, *publisher_);
  for (unsigned k = 0; k < core_.shard_count(); ++k) {
    RedisPublisherOptions lane = pub;
    lane.client_name += "-" + std::to_string(k);
    auto lane_publisher =
        std::make_unique<RedisPublisher>(core_.shard(k).context(), std::move(lane), log_);
    lane_publisher->set_on_state_change([this](bool connected, const std::string&) {
      if (connected) asio::post(context_, [this] { reconnect_all_now(); });
    });
    auto& io = core_.shard(k).context();
    lanes_.push_back(std::make_unique<PublishLane>(io, *lane_publisher));
    lanes_.back()->owned = std::move(lane_publisher);
  }
  cluster_ = std::make_unique<ClusterState>(
      context_, core_, *publisher_,
      [this](const std::string& room, const std::string& user, PresenceStatus status,
             ClusterState::Reach reach) {
        Message msg = presence_message(room, {status, user});
        if (reach == ClusterState::Reach::every_pod) {
          publish(std::move(msg));
        } else {
          core_.deliver(msg);
        }
      },
      sub.control_channel,
      [this, control = sub.control_channel] { return subscriber_->subscribed(control); });
  // Redis lost the cluster state without a reconnect: a user who left in the meantime was never
  // announced (the leave found no entry to change). Each room's presence is read at once (which
  // takes the new state epoch, on_presence_sync), and compared with what its members here were
  // told once every pod has written its part again (resync_after_loss).
  cluster_->set_on_part_lost([this] {
    std::vector<std::string> rooms;
    for (const RoomCount& room : core_.rooms()) rooms.push_back(room.room);
    if (!rooms.empty()) cluster_->sync_presence(rooms, false);
  });
  cluster_->set_on_id_shared([this](bool shared) {
    {
      const std::lock_guard lock(health_mutex_);
      id_shared_ = shared;
    }
    if (shared) {
      log_->error(
          "pod id {} is used by another live pod: each takes the other's messages for its own and "
          "drops them; give every pod its own --pod-id (this pod reports not ready meanwhile)",
          core_.pod_id());
    } else {
      log_->info("pod id {} is this pod's alone again", core_.pod_id());
    }
  });
  control_channel_ = sub.control_channel;
  publisher_->set_on_state_change([this](bool connected, const std::string&) {
    const PublishState was = publish_state_.load(std::memory_order_acquire);
    if (connected) {
      publish_state_.store(PublishState::up, std::memory_order_release);
      hold_timer_.cancel();
      cluster_->on_connected();
      reconnect_all_now();
    } else if (was == PublishState::up) {
      hold_publishes();
      return;
    } else if (was == PublishState::holding) {
      return;  // another attempt failed: still within the hold
    } else {
      publish_state_.store(PublishState::down, std::memory_order_release);
    }
    // What waited for the connection goes now: through it, or (it failed) locally.
    if (!redis_lane_->in_flight) send_publish_batch(*redis_lane_);
  });
  subscriber_->set_on_connected([this] {
    cluster_->subscriber_reconnected();
    reconnect_all_now();
  });
  subscriber_->set_on_message(
      [this](std::string_view channel, std::string_view payload) { on_message(channel, payload); });
  subscriber_->set_on_health_change([this](bool healthy, const std::string& reason) {
    {
      std::lock_guard lock(health_mutex_);
      const bool changed = healthy != healthy_;
      healthy_ = healthy;
      health_reason_ = reason;
      if (!changed) return;  // only why it is down moved on (what /readyz tells)
    }
    core_.metrics().redis_up.store(healthy ? 1 : 0, std::memory_order_relaxed);
    if (healthy) {
      log_->info("redis fan-out proven (heartbeat round trip)");
      // What other pods published while the subscription was down (or wedged) is in the shared
      // history: each followed room's is read back, and presence (not in the history) is sent from
      // a resync; both once the rooms' subscriptions are confirmed again (they follow the control
      // channel's), so that nothing falls between the read and the subscription.
      std::vector<std::string> rooms;
      std::vector<std::string> channels;
      for (const RoomCount& room : core_.rooms()) {
        rooms.push_back(room.room);
        channels.push_back(std::string(kRoomPrefix) + room.room);
      }
      subscriber_->when_subscribed(
          std::move(channels), std::chrono::steady_clock::now() + kSubscribeWait,
          [this, rooms = std::move(rooms)] {
            for (const HubCore::SharedPosition& room : core_.followed_rooms())
              fill_gap(room, false);
            cluster_->sync_presence(rooms, false);
          });
    } else {
      core_.metrics().redis_reconnects.fetch_add(1, std::memory_order_relaxed);
      // This pod's own stop takes the fan-out down too: no trouble to warn of.
      if (stopping_.load(std::memory_order_acquire)) {
        log_->info("redis fan-out down: {}", reason);
      } else {
        log_->warn("redis fan-out down: {}", reason);
      }
    }
  });

  core_.use_shared_history();
  // Subscriptions by interest: a room's channel while this pod has members of the room.
  core_.set_room_observer([this](const std::string& room, bool active) {
    std::string channel(kRoomPrefix);
    channel += room;
    asio::post(context_, [this, room, channel = std::move(channel), active] {
      if (!active) {
        subscriber_->remove(channel);
        return;
      }
      subscriber_->add(channel);
      // What the room's members here know of its presence from now on: a snapshot read once the
      // room's presence messages reach this pod (a resync compares with it). When the
      // subscription cannot be confirmed (Redis or the subscriber is down), it is read at once
      // instead, and the resync once the subscription is back sends the members what changed.
      subscriber_->when_subscribed(
          {channel}, std::chrono::steady_clock::now() + kSubscribeWait, [this, room, channel] {
            if (subscriber_->subscribed(channel)) {
              cluster_->sync_presence({room}, true);
            } else {
              cluster_->read_presence(room,
                                      [this](std::string_view sync) { on_presence_sync(sync); });
            }
          });
    });
  });
  core_.set_members_observer([this](const std::string& room) {
    asio::post(context_, [this, room] { cluster_->room_changed(room); });
  });
  core_.set_user_observer([this](const std::string& user, bool active) {
    std::string channel(kUserPrefix);
    channel += user;
    asio::post(context_, [this, channel = std::move(channel), active] {
      active ? subscriber_->add(channel) : subscriber_->remove(channel);
    });
  });
}

RedisBroadcasterCore::~RedisBroadcasterCore() {
  core_.set_room_observer({});
  core_.set_user_observer({});
  core_.set_members_observer({});
  stop();
  // Lanes whose thread did not stop them (see stop_lanes()); their threads no longer run.
  for (auto& lane : lanes_) {
    if (lane) lane->publisher.stop();
  }
}

void RedisBroadcasterCore::start() {
  std::lock_guard lock(lifecycle_mutex_);
  // Runs once: stop() released the lanes and ended the context for good.
  if (thread_.joinable() || stopped_) return;
  redis_thread_runs_.store(true, std::memory_order_release);
  asio::post(context_, [this] {
    publisher_->start();
    subscriber_->add(kGlobalChannel);
    subscriber_->start();
    start_release_timer();
    start_keepalive_timer();
  });
  for (auto& lane : lanes_) {
    asio::post(lane->context, [lane = lane.get()] { lane->publisher.start(); });
  }
  thread_ = std::thread([this] { context_.run(); });
}

void RedisBroadcasterCore::stop() {
  std::lock_guard lock(lifecycle_mutex_);
  if (!thread_.joinable()) return;
  stopping_.store(true, std::memory_order_release);
  redis_thread_runs_.store(false, std::memory_order_release);
  if (core_.running() && this_thread_lane() != nullptr) {
    log_->error(
        "RedisBroadcaster stopped on one of the hub's I/O threads: that thread waits for its own "
        "connection's stop until Hub::stop(); stop it on a thread of the application's own");
  }
  stop_lanes();
  // Leave the cluster's shared state (so other pods report our users offline at once), then
  // close.
  auto finish = [this] {
    if (finished_) return;
    finished_ = true;
    // What waits for the connection (lost, or not up yet since start) is delivered here.
    const PublishState state = publish_state_.load(std::memory_order_acquire);
    if (state == PublishState::holding || state == PublishState::starting) {
      release_held_publishes();
    }
    cluster_->stop();
    release_timer_.cancel();
    keepalive_timer_.cancel();
    hold_timer_.cancel();
    loss_resync_timer_.cancel();
    subscriber_->stop();
    publisher_->stop();
    // Its calls in flight are answered on a later turn (kNotPublished, as stopping_ is set; when
    // this runs inside a reply's callback, hiredis frees the connection, and so answers them, only
    // once it returns), then what still waits for Redis is refused, and the loop ends.
    end_after_answers(kMaxEndTurns);
  };
  asio::post(context_, [this, finish] {
    cluster_->leave_cluster(finish);
    exit_timer_.expires_after(kLeaveTimeout);
    exit_timer_.async_wait([finish](const boost::system::error_code& ec) {
      if (!ec) finish();
    });
  });
  thread_.join();
  stopped_ = true;
  stopping_.store(false, std::memory_order_release);  // stopped: this pod numbers messages itself
}

void RedisBroadcasterCore::end_after_answers(unsigned turns) {
  asio::post(context_, [this, turns] {
    if (redis_lane_->in_flight && turns > 0) return end_after_answers(turns - 1);
    refuse_unsent();
    guard_.reset();
    context_.stop();
  });
}

void RedisBroadcasterCore::fetch_history(const std::string& room, const std::string& last_id,
                                         std::function<void(HistoryResult)> done) {
  asio::post(context_, [this, room, last_id, done = std::move(done)]() mutable {
    fetch_when_subscribed(room, last_id, std::move(done),
                          std::chrono::steady_clock::now() + kSubscribeWait);
  });
}

bool RedisBroadcasterCore::await_subscribed(const std::string& room, const std::string& user,
                                            std::function<void()> done) {
  if (!redis_thread_runs_.load(std::memory_order_acquire)) return false;
  std::vector<std::string> channels;
  channels.reserve(2);
  channels.push_back(std::string(kUserPrefix) + user);
  if (!room.empty()) channels.push_back(std::string(kRoomPrefix) + room);
  // Posted after the join's add() of these channels (same thread, in order), so the subscriber
  // knows them. `done` runs even if the loop stops before this handler does.
  auto once = std::make_shared<OnceCall>(std::move(done));
  asio::post(context_, [this, room, channels = std::move(channels), once]() mutable {
    subscriber_->when_subscribed(std::move(channels),
                                 std::chrono::steady_clock::now() + kSubscribeWait,
                                 [this, room, once] { read_start(room, once); });
  });
  return true;
}

// On the Redis thread, when one of this pod's connections to Redis came up: the Redis thread's
// connections that wait to reconnect (their backoff reaches seconds) try now. Otherwise, after
// Redis restarted, the I/O threads could publish for seconds while the subscription, and the
// connection that reads gaps back, were still waiting: what other pods published then would be
// lost on this pod. (A lane still waiting hands its messages to the Redis thread meanwhile.)
void RedisBroadcasterCore::reconnect_all_now() {
  if (finished_) return;
  publisher_->retry_now();
  subscriber_->retry_now();
}

// On the Redis thread, once the room's subscription is confirmed (or the wait ended): where the
// room's delivery starts on this pod, when not known yet, is read from the shared history (so a
// joining client can be told its position), then `once` runs; within kPositionReadWait.
void RedisBroadcasterCore::read_start(const std::string& room,
                                      const std::shared_ptr<OnceCall>& once) {
  const auto generation = room.empty() ? std::nullopt : core_.start_to_read(room);
  if (!generation || !publisher_->connected() ||
      !subscriber_->subscribed(std::string(kRoomPrefix) + room)) {
    once->run();
    return;
  }
  auto timer = std::make_shared<asio::steady_timer>(context_, kPositionReadWait);
  timer->async_wait([once](const boost::system::error_code&) { once->run(); });
  const auto ec = read_history(
      room, 0, {},
      [this, room, generation, once, timer](std::error_code error, const RedisReply& reply) {
        timer->cancel();
        if (!error) {
          if (const auto position = history_position(reply))
            core_.set_start(room, *generation, position->epoch, position->seq);
        }
        once->run();
      });
  if (ec) once->run();
}

// The history script for `room`: its epoch and current number, and of its last `keep` items
// those a client that last saw `last_id` needs (none for an id that is not of this cluster; the
// script starts a history for a room without one).
std::error_code RedisBroadcasterCore::read_history(const std::string& room, std::size_t keep,
                                                   const std::string& last_id,
                                                   RedisPublisher::ReplyHandler done) {
  std::vector<std::string> args = {"2",
                                   room_key("ids", room),
                                   room_key("history", room),
                                   std::to_string(keep),
                                   core_.new_history_epoch(),
                                   std::to_string(kHistoryTtlSeconds)};
  if (const auto id = parse_message_id(last_id); id && keep > 0) {
    args.emplace_back(id->epoch);
    args.push_back(std::to_string(id->seq));
  }
  return eval(history_script(), history_sha_, std::move(args), std::move(done));
}

// Runs a script on the Redis thread's connection (see eval_by_sha).
std::error_code RedisBroadcasterCore::eval(std::string_view script, const std::string& sha,
                                           std::vector<std::string> args,
                                           RedisPublisher::ReplyHandler done) {
  std::vector<std::string> call;
  call.reserve(args.size() + 2);
  call.emplace_back("EVALSHA");
  call.push_back(sha);
  std::move(args.begin(), args.end(), std::back_inserter(call));
  return eval_by_sha(*publisher_, script, std::move(call), std::move(done));
}

// A change of a user's status here is written as the hub has it when the Redis thread gets to it,
// not as the session saw it: two sockets of one user on two I/O threads (one leaving a room as the
// other joins it) post their changes in either order, and a fixed "offline" posted last would
// leave the user out of the cluster's presence while its socket is in the room. The last change
// posted runs after the last change made, so what Redis keeps ends as the hub has it. A join
// writes "online" while the user is there (a socket away before it joined is announced online,
// then away, by the status change its session posts right behind it).
void RedisBroadcasterCore::presence_changed(const std::string& room, const std::string& user,
                                            bool joined) {
  asio::post(context_, [this, room, user, joined] {
    auto status = core_.user_status(room, user);
    if (status && joined) status = PresenceStatus::online;
    cluster_->status_changed(room, user, status.value_or(PresenceStatus::offline));
  });
}

void RedisBroadcasterCore::user_joined(const std::string& room, const std::string& user) {
  presence_changed(room, user, true);
}

void RedisBroadcasterCore::user_left(const std::string& room, const std::string& user) {
  presence_changed(room, user, false);
}

void RedisBroadcasterCore::status_changed(const std::string& room, const std::string& user,
                                          PresenceStatus /*status*/) {
  presence_changed(room, user, false);
}

void RedisBroadcasterCore::query_rooms(std::function<void(std::vector<RoomCount>)> done) {
  asio::post(context_, [this, done = std::move(done)]() mutable { cluster_->query_rooms(done); });
}

void RedisBroadcasterCore::query_presence(const std::string& room,
                                          std::function<void(std::vector<PresenceEntry>)> done) {
  asio::post(context_, [this, room, done = std::move(done)]() mutable {
    cluster_->query_presence(room, done);
  });
}

void RedisBroadcasterCore::start_release_timer() {
  release_timer_.expires_after(kReleasePeriod);
  release_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || finished_) return;
    for (const HubCore::SharedPosition& gap : core_.release_held(true)) fill_gap(gap, true);
    start_release_timer();
  });
}

// Renews the shared numbering and history of the rooms with members here (a message renews them
// too, but a quiet room sends none): their clients' positions stay resumable.
void RedisBroadcasterCore::start_keepalive_timer() {
  if (keepalive_interval_ <= std::chrono::milliseconds::zero()) return;  // turned off
  keepalive_timer_.expires_after(keepalive_interval_);
  keepalive_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || finished_) return;
    const std::vector<RoomCount> rooms = core_.rooms();
    for (std::size_t first = 0; first < rooms.size(); first += kMaxPublishBatch) {
      std::vector<std::string> args = {"0", std::to_string(kHistoryTtlSeconds)};
      const std::size_t last = std::min(rooms.size(), first + kMaxPublishBatch);
      for (std::size_t i = first; i < last; ++i) args.push_back(rooms[i].room);
      // A failure (Redis away) is retried at the next round; nothing else waits for it.
      eval(keep_rooms_script(), keep_rooms_sha_, std::move(args),
           [](std::error_code, const RedisReply&) {});
    }
    start_keepalive_timer();
  });
}

bool RedisBroadcasterCore::ready(std::string* reason) const {
  std::lock_guard lock(health_mutex_);
  if (id_shared_) {
    if (reason != nullptr) *reason = "pod id " + core_.pod_id() + " is used by another live pod";
    return false;
  }
  if (!healthy_ && reason != nullptr) {
    *reason = health_reason_.empty() ? "redis not connected yet" : "redis: " + health_reason_;
  }
  return healthy_;
}

std::string RedisBroadcasterCore::sanitized_pod() const {
  std::string name = core_.pod_id();
  for (char& c : name) {
    if (c < 0x21 || c > 0x7e) c = '_';  // CLIENT SETNAME takes no spaces or controls
  }
  return name;
}

void RedisBroadcasterCore::fetch_when_subscribed(const std::string& room,
                                                 const std::string& last_id,
                                                 std::function<void(HistoryResult)> done,
                                                 std::chrono::steady_clock::time_point deadline,
                                                 bool woken) {
  std::string channel = std::string(kRoomPrefix) + room;
  // A subscription that went quiet (this process was stopped, say) is not trusted: the history
  // read here must come after the subscription that brings what follows it.
  subscriber_->check_liveness();
  const bool subscribed = subscriber_->subscribed(channel);
  const bool linked = subscribed && publisher_->connected();
  if (!linked && std::chrono::steady_clock::now() < deadline) {
    if (!subscribed && !woken) {
      // Woken as soon as Redis confirms the subscription (or the subscriber stops waiting).
      subscriber_->when_subscribed(
          {std::move(channel)}, deadline, [this, room, last_id, done, deadline]() mutable {
            asio::post(context_, [this, room, last_id, done = std::move(done), deadline] {
              fetch_when_subscribed(room, last_id, done, deadline, true);
            });
          });
      return;
    }
    // The publisher is still connecting (or the subscriber gave up): look again shortly.
    auto timer = std::make_shared<asio::steady_timer>(context_, kSubscribePoll);
    timer->async_wait([this, timer, room, last_id, done = std::move(done),
                       deadline](const boost::system::error_code& ec) mutable {
      if (ec) return done(HistoryResult{});
      fetch_when_subscribed(room, last_id, std::move(done), deadline);
    });
    return;
  }
  auto callback = std::make_shared<std::function<void(HistoryResult)>>(std::move(done));
  // The read says where the room starts here. Made after the subscription began, what is numbered
  // after it reaches this pod live; otherwise (the subscription not confirmed in time: the
  // subscriber down, say) it is read back from the shared history once the subscription is
  // confirmed, so the replay's client misses nothing either way. Only a linked read gives the
  // client a position.
  const auto generation = core_.start_to_read(room);
  const auto ec =
      read_history(room, core_.options().history_size, last_id,
                   [this, room, callback, last_id, linked, generation](std::error_code error,
                                                                       const RedisReply& reply) {
                     if (error) return (*callback)(HistoryResult{});
                     const auto position = history_position(reply);
                     if (position && generation)
                       core_.set_start(room, *generation, position->epoch, position->seq);
                     HistoryResult result = history_after(reply, last_id);
                     if (!linked) {
                       result.position.clear();
                       read_back_when_subscribed(room, kReadBackWaits);
                     }
                     (*callback)(std::move(result));
                   });
  if (ec) (*callback)(HistoryResult{});
}

// A room whose start was read before its subscription was confirmed: what was numbered in between
// is read back once it is (or, the subscriber down, when it is healthy again: see above). Each
// wait is as long as the others' (the subscriber releases its waiters in deadline order).
void RedisBroadcasterCore::read_back_when_subscribed(const std::string& room, int waits) {
  std::string channel = std::string(kRoomPrefix) + room;
  subscriber_->when_subscribed(
      {channel}, std::chrono::steady_clock::now() + kSubscribeWait, [this, room, channel, waits] {
        asio::post(context_, [this, room, channel, waits] {
          if (subscriber_->subscribed(channel)) {
            if (const auto from = core_.followed_room(room)) fill_gap(*from, false);
          } else if (subscriber_->healthy() && waits > 1) {
            read_back_when_subscribed(room, waits - 1);  // confirmed later than usual
          }
        });
      });
}

// Reads a room's messages from `from.next` on back from the shared history and delivers those of
// other pods this pod has not delivered (its own come with their publish's answer). `reported`:
// release_held() returned this gap and waits for gap_repaired().
void RedisBroadcasterCore::fill_gap(const HubCore::SharedPosition& from, bool reported) {
  auto done = [this, from, reported](std::error_code error, const RedisReply& reply) {
    if (!error) {
      for (const auto& [seq, item] : gap_items(reply)) {
        if (item.ends_with(pod_suffix_)) continue;
        auto decoded = protocol::decode_envelope(item);
        if (decoded.error != protocol::DecodeError::none) continue;
        Message& msg = decoded.message;
        msg.room = from.room;
        core_.deliver_repaired(msg, from.epoch, seq);
      }
    }
    if (reported) core_.gap_repaired(from.room, !error);
  };
  const auto ec = eval(gap_script(), gap_sha_,
                       {"2", room_key("ids", from.room), room_key("history", from.room), from.epoch,
                        std::to_string(from.next)},
                       done);
  if (ec) done(ec, RedisReply{});
}

// A presence change this pod's script made, published to the room's channel for the other pods
// and to this pod's control channel for its own members: delivered here in the order of the
// subscription, so after every change another pod made before it and before every one made
// after it.
void RedisBroadcasterCore::on_own_presence(std::string_view payload) {
  auto decoded = protocol::decode_envelope(payload);
  Message& msg = decoded.message;
  if (decoded.error != protocol::DecodeError::none || msg.type != MessageType::presence ||
      !protocol::is_valid_room(msg.room)) {
    return;
  }
  msg.id.clear();
  core_.deliver(msg);
  cluster_->echo_received();
}

// A room's presence in the cluster, read by ClusterState::sync_presence(): the changes the
// room's members here missed (a resync) are delivered to them, in the subscription's order.
void RedisBroadcasterCore::on_presence_sync(std::string_view payload) {
  const auto sync = ClusterState::parse_presence_sync(payload);
  if (!sync) return;
  const HubCore::PresenceResync resync =
      core_.sync_presence(sync->room, sync->users, sync->epoch, sync->read);
  for (const PresenceEntry& change : resync.changes) {
    Message msg = presence_message(sync->room, {change.status, change.user_id});
    core_.deliver(msg);
  }
  if (resync.lost) resync_after_loss(sync->room);
}

// Redis lost its data: every live pod rewrites its part within a lease renewal (at once when its
// connection broke, within kLeaseRenew when it did not) or is gone. Once that is done, the room's
// presence is compared again with what its members here were told: a user who left while the data
// was being lost (never announced: their pod could not reach Redis) is announced offline, one who
// came then online.
void RedisBroadcasterCore::resync_after_loss(const std::string& room) {
  const bool arm = loss_resync_rooms_.empty();
  loss_resync_rooms_.insert(room);
  if (!arm) return;
  loss_resync_timer_.expires_after(kLossResyncDelay);
  loss_resync_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || finished_) return;
    std::vector<std::string> rooms(loss_resync_rooms_.begin(), loss_resync_rooms_.end());
    loss_resync_rooms_.clear();
    cluster_->sync_presence(rooms, false);
  });
}

void RedisBroadcasterCore::on_own_echo(std::string_view channel, std::string_view payload) {
  auto decoded = protocol::decode_envelope(payload);
  if (decoded.error != protocol::DecodeError::none) return;
  Message& msg = decoded.message;
  msg.room = std::string(channel.substr(kRoomPrefix.size()));
  const auto id = parse_message_id(msg.id);
  if (!id || msg.type == MessageType::presence) return;
  core_.own_echo(msg.room, id->epoch, id->seq);
}

void RedisBroadcasterCore::on_message(std::string_view channel, std::string_view payload) {
  if (channel == control_channel_) {
    if (payload.starts_with(ClusterState::kPresenceSyncHead)) {
      on_presence_sync(payload);
    } else {
      on_own_presence(payload);
    }
    return;
  }
  if (payload.ends_with(pod_suffix_)) {
    // Our own publish, delivered locally when Redis answered. Its echo matters only to a room
    // whose start on this pod is not known yet (HubCore::deliver_sequenced).
    if (channel.starts_with(kRoomPrefix) &&
        core_.start_unknown(channel.substr(kRoomPrefix.size()))) {
      on_own_echo(channel, payload);
    }
    return;
  }
  auto decoded = protocol::decode_envelope(payload);
  const bool malformed = decoded.error != protocol::DecodeError::none;
  // A client's command (join, leave, auth) is never sent to clients, whoever published it.
  if (malformed || protocol::is_client_command(decoded.message.type)) {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_bad_payload_log_ >= kBadPayloadLogInterval) {
      last_bad_payload_log_ = now;
      if (malformed) {
        log_->warn("dropping a malformed message on {}: {}", channel, decoded.detail);
      } else {
        log_->warn("dropping a message of type {} on {}: clients never receive it",
                   to_string(decoded.message.type), channel);
      }
    }
    return;
  }
  Message& msg = decoded.message;
  const bool from_pod = pod_field_at(payload) != std::string_view::npos;
  if (channel.starts_with(kRoomPrefix)) {
    msg.room = std::string(channel.substr(kRoomPrefix.size()));
    if (!protocol::is_valid_room(msg.room)) return;
    // Numbered by the shared history only if a pod published it (with its "pod" field): another
    // program's id, however it looks, is not a place in the room's history.
    const auto id = from_pod ? parse_message_id(msg.id) : std::optional<MessageId>{};
    if (id && msg.type != MessageType::presence) {
      const std::string epoch(id->epoch);
      // Another pod's message: the next number this pod guesses for the room follows it.
      {
        std::lock_guard numbering_lock(numbering_mutex_);
        if (auto it = numbering_.find(msg.room);
            it != numbering_.end() && it->second.epoch == epoch) {
          it->second.next_seq = std::max(it->second.next_seq, id->seq + 1);
        }
      }
      core_.deliver_sequenced(msg, epoch, id->seq);
      return;
    }
    // Another program's message without our numbering: delivered, but not a recovery point.
    // (A presence message gets the id of its place in the room here: HubCore::deliver.)
    if (msg.type == MessageType::presence) {
      msg.id.clear();
    } else {
      msg.id = core_.next_direct_id();
    }
    core_.deliver(msg);
  } else {
    // A notification or a broadcast keeps the id its pod gave it (the same on every pod); another
    // program's id, or one a client could not put into its next URL, is replaced by one of this
    // pod's (HubCore::deliver, deliver_to_user), as unique as the pod's own.
    if (!from_pod || !protocol::is_url_safe_id(msg.id)) msg.id.clear();
    if (!msg.room.empty() && !protocol::is_valid_room(msg.room)) return;
    if (channel.starts_with(kUserPrefix)) {
      core_.deliver_to_user(std::string(channel.substr(kUserPrefix.size())), msg);
    } else if (channel == kGlobalChannel) {
      msg.room.clear();
      core_.deliver(msg);
    }
  }
}

}  // namespace detail

RedisBroadcaster::RedisBroadcaster(Hub& hub, const RedisBroadcasterOptions& options)
    : core_(std::make_unique<detail::RedisBroadcasterCore>(hub, options)) {}
RedisBroadcaster::~RedisBroadcaster() = default;
void RedisBroadcaster::start() { core_->start(); }
void RedisBroadcaster::stop() { core_->stop(); }
std::string RedisBroadcaster::publish(Message msg) {
  detail::check_unless_checked(msg, "RedisBroadcaster::publish");
  return core_->publish(std::move(msg));
}
std::string RedisBroadcaster::publish_to_user(const std::string& user_id, Message msg) {
  detail::check_unless_checked(msg, "RedisBroadcaster::publish_to_user");
  return core_->publish_to_user(user_id, std::move(msg));
}
bool RedisBroadcaster::ready(std::string* reason) const { return core_->ready(reason); }
void RedisBroadcaster::publish_then(Message msg, std::function<void(const std::string&)> done) {
  detail::check_unless_checked(msg, "RedisBroadcaster::publish_then");
  core_->publish_then(std::move(msg), std::move(done));
}
bool RedisBroadcaster::shared_history() const { return core_->shared_history(); }
void RedisBroadcaster::fetch_history(const std::string& room, const std::string& last_id,
                                     std::function<void(HistoryResult)> done) {
  core_->fetch_history(room, last_id, std::move(done));
}
bool RedisBroadcaster::await_subscribed(const std::string& room, const std::string& user_id,
                                        std::function<void()> done) {
  return core_->await_subscribed(room, user_id, std::move(done));
}
void RedisBroadcaster::user_joined(const std::string& room, const std::string& user_id) {
  core_->user_joined(room, user_id);
}
void RedisBroadcaster::user_left(const std::string& room, const std::string& user_id) {
  core_->user_left(room, user_id);
}
void RedisBroadcaster::status_changed(const std::string& room, const std::string& user_id,
                                      PresenceStatus status) {
  core_->status_changed(room, user_id, status);
}
void RedisBroadcaster::query_rooms(std::function<void(std::vector<RoomCount>)> done) {
  core_->query_rooms(std::move(done));
}
void RedisBroadcaster::query_presence(const std::string& room,
                                      std::function<void(std::vector<PresenceEntry>)> done) {
  core_->query_presence(room, std::move(done));
}

}  // namespace realtime
