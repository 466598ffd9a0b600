// RedisBroadcasterCore's publish path: see redis_broadcaster_core.hpp and ARCHITECTURE.md
// ("Several pods: Redis").

#include <algorithm>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include <boost/asio/post.hpp>

#include "protocol/envelope.hpp"
#include "redis/redis_broadcaster_core.hpp"

namespace realtime::detail {
namespace {

namespace asio = boost::asio;

// A room's history keys get their TTL renewed at most this often by one pod.
constexpr std::chrono::seconds kTtlRefreshInterval{60};
// Past this many rooms in the refresh table, entries older than the interval are dropped.
constexpr std::size_t kMaxTrackedRooms = 10000;
// How long room messages wait for a lost connection to Redis to come back (see hold_publishes()):
// longer than a restart plus the reconnect backoff (capped at 1 s), short enough that a pod cut off
// from Redis keeps its own members talking.
constexpr std::chrono::milliseconds kPublishHold{2000};
// At most this many room messages wait for the connection (at start or in a hold); one more and
// they are delivered locally at once (~300 bytes each: a bound of ~20 MB).
constexpr std::size_t kMaxHeldPublishes = 65536;
// While stopping the lanes, how often to check that the hub still runs their threads.
constexpr std::chrono::milliseconds kLaneStopPoll{20};
// How long a stop waits for the lanes' calls already sent (or queued) to be answered: what a client
// or the API was told was taken reaches the other pods, unless Redis does not answer in that time.
constexpr std::chrono::milliseconds kLaneDrain{1000};

// What a message waiting in a lane is counted for against max_unsent_bytes (its text and about
// what the queue and the message add to it).
std::size_t unsent_cost(const Message& msg) {
  return msg.data.size() + msg.room.size() + msg.from.size() + 160;
}

}  // namespace

std::string RedisBroadcasterCore::publish(Message msg) {
  // The id is known at once when this pod numbers the message; otherwise the callback runs later,
  // maybe on another thread, and finds the slot closed: the caller got "".
  struct Slot {
    std::mutex mutex;
    bool open = true;
    std::string id;
  };
  auto slot = std::make_shared<Slot>();
  publish_then(std::move(msg), [slot](const std::string& assigned) {
    std::lock_guard lock(slot->mutex);
    if (slot->open && assigned != kNotPublished) slot->id = assigned;
  });
  std::lock_guard lock(slot->mutex);
  slot->open = false;
  return std::move(slot->id);
}

void RedisBroadcasterCore::publish_then(Message msg, std::function<void(const std::string&)> done) {
  if (msg.timestamp == Clock::time_point{}) msg.timestamp = Clock::now();
  if (!msg.room.empty() && msg.id.empty() && msg.type != MessageType::presence) {
    // Stopping: the sockets are closed, and Redis may not be reached any more.
    if (stopping_.load(std::memory_order_acquire)) return done(std::string(kNotPublished));
    // The shared history numbers it; this pod delivers it on the answer (not on the echo). On
    // an I/O thread whose lane is connected, all of it happens on this thread.
    const auto since = std::chrono::steady_clock::now();
    PublishLane* lane = this_thread_lane();
    const auto& handed_off = lane != nullptr ? lane->handed_off : foreign_handed_off_;
    const bool handing_off = handed_off->load(std::memory_order_acquire) > 0;
    // (Behind a call in flight, also when the connection is gone: if that call fails, its
    // messages are delivered here before the queue behind it is handed over.)
    if (lane != nullptr && !handing_off && (lane->publisher.connected() || lane->in_flight)) {
      publish_numbered(*lane, {std::move(msg), std::move(done), {}, since});
      return;
    }
    // Else through the Redis thread's connection, which a pod that has just started, or whose
    // connection was lost a moment ago, waits for (so a message the API took at once still
    // reaches every pod). The subscriber's health does not matter: a message numbered through
    // Redis reaches the other pods even while this pod's own subscription is being rebuilt.
    // Until what this thread handed over is numbered (or, Redis down, delivered locally), its
    // later messages follow the same way.
    if (redis_thread_runs_.load(std::memory_order_acquire) &&
        (handing_off || publish_state_.load(std::memory_order_acquire) != PublishState::down)) {
      hand_off(handed_off, {std::move(msg), std::move(done), {}, since}, true);
      return;
    }
  }
  // Redis unreachable, the Redis thread not running, or not a history message: this pod numbers
  // it and delivers at once.
  const std::string id = core_.deliver(msg);
  std::string channel;
  if (msg.room.empty()) {
    channel = kGlobalChannel;
  } else {
    channel = kRoomPrefix;
    channel += msg.room;
    // A room message numbered by this pod alone is no place in the shared history: the other pods
    // (if the publish gets through) get it without an id, and give it one of their own.
    if (msg.type != MessageType::presence) msg.id.clear();
  }
  send(std::move(channel), encode(msg));
  done(id);
}

std::string RedisBroadcasterCore::publish_to_user(const std::string& user, Message msg) {
  std::string id = core_.deliver_to_user(user, msg);
  std::string channel(kUserPrefix);
  channel += user;
  send(std::move(channel), encode(msg));
  return id;
}

// The envelope with this pod's id in a "pod" field, last, so the echo is recognised by its
// suffix.
std::string RedisBroadcasterCore::encode(const Message& msg) const {
  std::string payload;
  payload.reserve(128 + msg.data.size());
  append_encoded(payload, msg);
  return payload;
}

void RedisBroadcasterCore::append_encoded(std::string& out, const Message& msg) const {
  const std::size_t start = out.size();
  protocol::append_envelope(out, msg);
  if (out.size() > start && out.back() == '}') out.pop_back();
  out += pod_suffix_;
}

// The I/O thread's lane when called on one, else null.
PublishLane* RedisBroadcasterCore::this_thread_lane() const {
  for (unsigned k = 0; k < lanes_.size(); ++k) {
    if (core_.shard(k).context().get_executor().running_in_this_thread()) return lanes_[k].get();
  }
  return nullptr;
}

// Each lane is stopped and destroyed on its own thread: what its connection's close completes
// (posted handlers that refer to the lane) runs before the lane goes. Lanes whose thread does not
// run (the hub not started, or stopped first) are stopped by the destructor.
void RedisBroadcasterCore::stop_lanes() {
  // First the calls already on their way get their answer (within kLaneDrain).
  const auto until = std::chrono::steady_clock::now() + kLaneDrain;
  for (unsigned k = 0; k < lanes_.size(); ++k) {
    while (core_.running() && std::chrono::steady_clock::now() < until) {
      auto busy = std::make_shared<std::promise<bool>>();
      auto answer = busy->get_future();
      asio::post(lanes_[k]->context, [lane = lanes_[k].get(), busy] {
        busy->set_value(lane->in_flight || !lane->queue.empty());
      });
      while (answer.wait_for(kLaneStopPoll) != std::future_status::ready && core_.running() &&
             std::chrono::steady_clock::now() < until) {
      }
      if (answer.wait_for(std::chrono::seconds(0)) != std::future_status::ready || !answer.get())
        break;
      std::this_thread::sleep_for(kLaneStopPoll);
    }
  }
  // Then each lane's thread stops its connection and lets go of the lane. When the hub stops
  // meanwhile, its threads may never run what was posted, or be running it now: what has not
  // begun is abandoned (it will touch nothing; the destructor stops the lane), what runs is
  // waited for, so that nothing here is touched by two threads at once.
  struct LaneStop {
    std::mutex mutex;
    std::condition_variable changed;
    bool abandoned = false;
    bool running = false;
    bool done = false;
  };
  for (unsigned k = 0; k < lanes_.size(); ++k) {
    if (!core_.running()) break;
    auto state = std::make_shared<LaneStop>();
    const auto step = [state](bool last, auto&& body) {
      {
        const std::lock_guard lock(state->mutex);
        if (state->abandoned) return false;
        state->running = true;
      }
      body();
      {
        const std::lock_guard lock(state->mutex);
        state->running = false;
        state->done = last;
      }
      state->changed.notify_all();
      return true;
    };
    asio::post(lanes_[k]->context, [this, k, step] {
      const bool went_on = step(false, [&] { lanes_[k]->publisher.stop(); });
      if (!went_on) return;
      asio::post(lanes_[k]->context, [this, k, step] { step(true, [&] { lanes_[k].reset(); }); });
    });
    std::unique_lock lock(state->mutex);
    while (!state->done) {
      state->changed.wait_for(lock, kLaneStopPoll);
      if (!state->done && !state->running && !core_.running()) {
        state->abandoned = true;  // (the hub stopped meanwhile)
        return;
      }
    }
  }
}

// To the Redis thread's lane, from a thread whose messages `handed_off` counts: until Redis has
// numbered them (or they were delivered locally), the thread's later messages follow the same
// way, so a publisher's order is kept across the switch back to its lane, or to local delivery.
// They wait in one queue (handoff_), which one posted take_handed_off() empties, rather than a
// post each: a stop can answer what is still there, and a bound can refuse the excess at once
// (an application thread publishing faster than Redis numbers would otherwise fill the Redis
// thread's queue without limit, and a stop would drop it unanswered).
void RedisBroadcasterCore::hand_off(const std::shared_ptr<std::atomic<std::uint32_t>>& handed_off,
                                    PendingPublish pending, bool bounded) {
  const std::size_t cost = unsent_cost(pending.msg);
  std::function<void(const std::string&)> refused;  // the callback of one not taken
  bool taken = false;
  bool first = false;
  {
    const std::lock_guard lock(handoff_mutex_);
    if (handoff_closed_ ||
        (bounded && !handoff_.empty() && handoff_bytes_ + cost > max_unsent_bytes_)) {
      refused = std::move(pending.done);
    } else {
      handed_off->fetch_add(1, std::memory_order_relaxed);
      pending.done = [handed_off, done = std::move(pending.done)](const std::string& id) {
        struct Answered {  // (also when `done` throws)
          std::atomic<std::uint32_t>& count;
          ~Answered() { count.fetch_sub(1, std::memory_order_release); }
        } answered{*handed_off};
        done(id);
      };
      first = handoff_.empty();
      handoff_bytes_ += cost;
      handoff_.push_back(std::move(pending));
      taken = true;
    }
  }
  if (!taken) {
    // Stopped (or stopping) meanwhile, or past the bound: not taken, as publish_numbered() refuses.
    if (!stopping_.load(std::memory_order_acquire)) core_.metrics().drop(DropReason::overload);
    if (refused) refused(std::string(kNotPublished));
    return;
  }
  if (first) asio::post(context_, [this] { take_handed_off(); });
}

// On the Redis thread: what was handed over, in order, to its lane.
void RedisBroadcasterCore::take_handed_off() {
  for (PendingPublish& pending : handed_over(false)) {
    publish_numbered(*redis_lane_, std::move(pending));
  }
}

// What waits in handoff_, taken out; `close`: and later hand-offs are refused.
std::vector<PendingPublish> RedisBroadcasterCore::handed_over(bool close) {
  std::vector<PendingPublish> taken;
  const std::lock_guard lock(handoff_mutex_);
  handoff_closed_ = handoff_closed_ || close;
  taken.swap(handoff_);
  handoff_bytes_ = 0;
  return taken;
}

void RedisBroadcasterCore::refuse_unsent() {
  std::vector<PendingPublish> refused = handed_over(true);
  refused.insert(refused.end(), std::make_move_iterator(redis_lane_->queue.begin()),
                 std::make_move_iterator(redis_lane_->queue.end()));
  redis_lane_->queue.clear();
  redis_lane_->queued_bytes = 0;
  for (PendingPublish& pending : refused) {
    core_.metrics().redis_publish_errors.fetch_add(1, std::memory_order_relaxed);
    answer(pending, std::string(kNotPublished));
  }
}

// On an I/O thread whose lane lost its connection: what it had not sent yet goes through the
// Redis thread (held there while that connection is lost too), not only to this pod.
bool RedisBroadcasterCore::hand_off_unsent(PublishLane& lane, std::vector<PendingPublish>& unsent) {
  if (&lane == redis_lane_.get() || lane.publisher.connected() ||
      !redis_thread_runs_.load(std::memory_order_acquire)) {
    return false;
  }
  for (PendingPublish& pending : unsent) hand_off(lane.handed_off, std::move(pending), false);
  if (&unsent == &lane.queue) lane.queued_bytes = 0;
  unsent.clear();
  return true;
}

// On the Redis thread, when its command connection was lost: room messages wait for it to come
// back, for up to kPublishHold, rather than reach only this pod (a Redis restart, a failover or a
// network blip of a second or so then loses nothing); after that, this pod numbers and delivers
// them itself, and so every later one until the connection is back.
void RedisBroadcasterCore::hold_publishes() {
  publish_state_.store(PublishState::holding, std::memory_order_release);
  const std::uint64_t hold = ++hold_generation_;
  hold_timer_.expires_after(kPublishHold);
  hold_timer_.async_wait([this, hold](const boost::system::error_code& ec) {
    // (An expiry already queued when the connection came back and was lost again is not this
    // hold's.)
    if (ec || hold != hold_generation_ ||
        publish_state_.load(std::memory_order_acquire) != PublishState::holding) {
      return;
    }
    release_held_publishes();
  });
}

// The hold (or the wait at start) ends without the connection: what waited is delivered
// locally, in order (the threads that handed it over send their later messages the same way
// until it is).
void RedisBroadcasterCore::release_held_publishes() {
  hold_timer_.cancel();
  publish_state_.store(PublishState::down, std::memory_order_release);
  if (!redis_lane_->in_flight) send_publish_batch(*redis_lane_);
}

// On the lane's thread: queued, and sent with whatever else is queued when no call is in flight.
void RedisBroadcasterCore::publish_numbered(PublishLane& lane, PendingPublish pending) {
  const std::size_t cost = unsent_cost(pending.msg);
  // (The Redis thread's lane, while it holds for a lost connection or waits for the first one,
  // is bounded by kMaxHeldPublishes below instead: a short outage loses nothing.)
  const bool holding = &lane == redis_lane_.get() &&
                       publish_state_.load(std::memory_order_acquire) != PublishState::up;
  if (!holding && lane.queued_bytes + cost > max_unsent_bytes_ && !lane.queue.empty()) {
    // Redis numbers them slower than they come: refused rather than held without bound (nor
    // delivered here alone, which would split the room between pods).
    core_.metrics().drop(DropReason::overload);
    const auto now = std::chrono::steady_clock::now();
    if (now - lane.overload_logged >= std::chrono::seconds(5)) {
      lane.overload_logged = now;
      log_->warn("redis: {} bytes of room messages wait for Redis on one thread; refusing more",
                 lane.queued_bytes);
    }
    answer(pending, std::string(kNotPublished));
    return;
  }
  lane.queued_bytes += cost;
  lane.queue.push_back(std::move(pending));
  if (&lane == redis_lane_.get() && lane.queue.size() > kMaxHeldPublishes &&
      publish_state_.load(std::memory_order_acquire) != PublishState::up) {
    release_held_publishes();  // too many waiting: no longer
    return;
  }
  if (!lane.in_flight) send_publish_batch(lane);
}

void RedisBroadcasterCore::send_publish_batch(PublishLane& lane) {
  if (lane.queue.empty()) return;
  // Until the Redis thread's connection first comes up (or its first attempt fails), and while
  // it is held for after a loss, its messages wait for it.
  if (&lane == redis_lane_.get()) {
    const PublishState state = publish_state_.load(std::memory_order_acquire);
    if (state == PublishState::starting || state == PublishState::holding) return;
  }
  auto batch = std::make_shared<std::vector<PendingPublish>>();
  if (lane.queue.size() <= kMaxPublishBatch) {
    batch->swap(lane.queue);
  } else {
    const auto split = lane.queue.begin() + static_cast<std::ptrdiff_t>(kMaxPublishBatch);
    batch->assign(std::make_move_iterator(lane.queue.begin()), std::make_move_iterator(split));
    lane.queue.erase(lane.queue.begin(), split);
  }
  for (const PendingPublish& pending : *batch) lane.queued_bytes -= unsent_cost(pending.msg);
  const auto now = std::chrono::steady_clock::now();
  std::unique_lock numbering_lock(numbering_mutex_);
  if (numbering_.size() > std::max(kMaxTrackedRooms, numbering_clean_at_)) {
    std::erase_if(numbering_, [&](const auto& entry) {
      return now - entry.second.refreshed >= kTtlRefreshInterval;
    });
    // What is left is in use: the next clean-up waits until the table has doubled, so that each
    // pays for the rooms added since (not a walk of every room on every call).
    numbering_clean_at_ = 2 * numbering_.size();
  }
  std::vector<std::string> args = {"EVALSHA",
                                   publish_sha_,
                                   "0",
                                   std::to_string(core_.options().history_size),
                                   std::to_string(kHistoryTtlSeconds),
                                   core_.new_history_epoch(),
                                   std::string()};
  args.reserve(args.size() + batch->size() * 4);
  std::string& flags = args.back();  // (no reallocation past the reserve above)
  for (PendingPublish& pending : *batch) {
    RoomNumbering& room = numbering_[pending.msg.room];
    pending.epoch = room.epoch;
    const bool refresh = now - room.refreshed >= kTtlRefreshInterval;
    if (refresh) room.refreshed = now;
    flags += refresh ? '1' : '0';
    // The pod field ends the item, as on every copy we publish; the id, when the pod can guess
    // it, starts it (else the script puts it there).
    std::string item;
    item.reserve(160 + room.epoch.size() + pending.msg.data.size());
    std::string guess;
    if (!room.epoch.empty() && room.next_seq > 0) {
      guess = std::to_string(room.next_seq++);
      item += R"({"id":")";
      item += room.epoch;
      item += '-';
      item += guess;
      item += '"';
    }
    const std::size_t envelope = item.size();
    append_encoded(item, pending.msg);
    // The envelope's "{": the comma after a guessed id, else dropped.
    if (guess.empty()) {
      item.erase(0, 1);
    } else {
      item[envelope] = ',';
    }
    args.push_back(pending.msg.room);
    args.push_back(std::move(item));
    args.push_back(room.epoch);
    args.push_back(std::move(guess));
  }
  numbering_lock.unlock();
  lane.in_flight = true;
  const auto ec = eval_by_sha(
      lane.publisher, publish_script(), std::move(args),
      [this, &lane, batch](std::error_code error, const RedisReply& reply) {
        lane.in_flight = false;
        if (error || reply.elements.size() != batch->size()) {
          // Redis may or may not have run the call: its messages reach this pod only.
          for (PendingPublish& pending : *batch) publish_locally(pending);
          if (hand_off_unsent(lane, lane.queue)) return;
        } else {
          for (std::size_t i = 0; i < batch->size(); ++i) {
            PendingPublish& pending = (*batch)[i];
            const RedisReply& numbered = reply.elements[i];
            std::string epoch;
            std::uint64_t seq = 0;
            if (numbered.type == RedisReply::Type::integer) {
              epoch = pending.epoch;
              seq = static_cast<std::uint64_t>(numbered.integer);
            } else if (const auto id = parse_message_id(numbered.str)) {
              epoch = std::string(id->epoch);
              seq = id->seq;
            } else {
              publish_locally(pending);  // not an answer this script gives
              continue;
            }
            {
              std::lock_guard numbering_lock(numbering_mutex_);
              if (auto it = numbering_.find(pending.msg.room); it != numbering_.end()) {
                // (Another pod's or lane's later message may have taught it more already.)
                RoomNumbering& room = it->second;
                room.next_seq = room.epoch == epoch ? std::max(room.next_seq, seq + 1) : seq + 1;
                room.epoch = epoch;
              }
            }
            pending.msg.id = epoch + "-" + std::to_string(seq);
            core_.deliver_sequenced(pending.msg, epoch, seq, HubCore::Numbered::own, pending.since);
            answer(pending, pending.msg.id);
          }
        }
        send_publish_batch(lane);
      });
  if (ec) {
    lane.in_flight = false;
    // Not sent: through the Redis thread if this is a lane whose connection is lost, else (the
    // Redis thread's own connection down) locally, the rest of the queue the same way.
    if (hand_off_unsent(lane, *batch)) {
      hand_off_unsent(lane, lane.queue);
      return;
    }
    if (&lane == redis_lane_.get() && !lane.publisher.connected() &&
        publish_state_.load(std::memory_order_acquire) == PublishState::up) {
      // The Redis thread's connection is gone and the notice of it has not come yet (the failed
      // calls' completions come first): hold, as the notice would have.
      for (const PendingPublish& pending : *batch) lane.queued_bytes += unsent_cost(pending.msg);
      lane.queue.insert(lane.queue.begin(), std::make_move_iterator(batch->begin()),
                        std::make_move_iterator(batch->end()));
      hold_publishes();
      return;
    }
    for (PendingPublish& pending : *batch) publish_locally(pending);
    send_publish_batch(lane);
  }
}

// On a broadcaster's thread (the Redis thread, a lane's): what a caller's `done` throws is its
// bug, logged here, so that it does not unwind through hiredis or end the thread.
void RedisBroadcasterCore::answer(PendingPublish& pending, const std::string& id) noexcept {
  try {
    pending.done(id);
  } catch (const std::exception& error) {
    log_->error("a publish_then callback threw (ignored): {}", error.what());
  } catch (...) {
    log_->error("a publish_then callback threw (ignored; not a std::exception)");
  }
}

// Redis could not number it: this pod does, and delivers it (not shared with other pods). While
// stopping, it is not taken at all (the pod's sockets are closed: nobody would get it).
void RedisBroadcasterCore::publish_locally(PendingPublish& pending) {
  if (stopping_.load(std::memory_order_acquire)) {
    core_.metrics().redis_publish_errors.fetch_add(1, std::memory_order_relaxed);
    answer(pending, std::string(kNotPublished));
    return;
  }
  {
    std::lock_guard numbering_lock(numbering_mutex_);
    if (auto it = numbering_.find(pending.msg.room); it != numbering_.end()) {
      it->second.next_seq = 0;  // the guesses sent with it were never checked
    }
  }
  core_.metrics().redis_publish_errors.fetch_add(1, std::memory_order_relaxed);
  const std::string id = core_.deliver(pending.msg);
  answer(pending, id);
}

void RedisBroadcasterCore::send(std::string channel, std::string payload) {
  // Every publish of one loop turn goes out in one write: hiredis buffers until the socket is
  // writable, which is pipelining.
  asio::post(context_, [this, channel = std::move(channel), payload = std::move(payload)] {
    publisher_->publish(channel, payload);
  });
}

}  // namespace realtime::detail
