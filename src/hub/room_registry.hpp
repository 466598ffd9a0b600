// Pod-wide state of every room: members per shard, presence per user, the id sequence and history.
//
// Owned by HubCore. Thread safety: all access goes through with_room()/for_each_room(), which lock
// the room's stripe; a stripe lock is never held across I/O or user hooks (only posts to event
// loops, which keeps the delivery order of a room equal to its id order on every shard).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "hub/out_frame.hpp"
#include "realtime/message.hpp"

namespace realtime::detail {

// A user's sockets in a room on this pod. Each socket keeps its own status; the user's status on
// the pod is derived from them: online while any socket is online, away when all of them are.
struct UserPresence {
  std::uint32_t sockets = 0;  // this user's sockets in the room, all shards
  std::uint32_t away = 0;     // how many of them are away
  PresenceStatus status() const noexcept {
    return away < sockets ? PresenceStatus::online : PresenceStatus::away;
  }
};

// The last messages of a room, oldest first: a ring over a vector that takes its memory on the
// first message (a room without messages holds none; a std::deque takes ~600 bytes up front).
class FrameRing {
 public:
  // Appends frame, dropping the oldest past `limit` (limit 0: keeps nothing).
  void push(FramePtr frame, std::size_t limit) {
    if (limit == 0) return;
    if (items_.size() < limit) {
      if (items_.empty()) items_.reserve(limit);
      items_.push_back(std::move(frame));
      return;
    }
    items_[head_] = std::move(frame);
    head_ = (head_ + 1) % items_.size();
  }
  bool empty() const noexcept { return items_.empty(); }
  std::size_t size() const noexcept { return items_.size(); }
  const FramePtr& front() const noexcept { return items_[head_]; }
  // f(const FramePtr&) for each frame, oldest first.
  template <typename F>
  void for_each(F&& f) const {
    for (std::size_t i = head_; i < items_.size(); ++i) f(items_[i]);
    for (std::size_t i = 0; i < head_; ++i) f(items_[i]);
  }

 private:
  std::vector<FramePtr> items_;
  std::size_t head_ = 0;  // the oldest frame once the ring is full
};

struct RoomState {
  std::string epoch;  // identifies this history; ids are "<epoch>-<seq>"
  std::uint64_t next_seq = 1;
  std::uint32_t members = 0;
  std::vector<std::uint32_t> shard_members;  // members on each shard
  std::unordered_map<std::string, UserPresence> users;
  FrameRing history;  // the last history_size messages, oldest first
  // Messages numbered by a shared history (Redis): delivered in seq order. Frames that arrive ahead
  // of a gap wait in `held` until the gap fills or they are older than HubCore::kHoldLimit.
  std::string shared_epoch;
  std::uint64_t shared_next = 0;  // 0: nothing delivered yet
  // This pod's membership period of the room (HubCore numbers them): a read of the room's
  // numbering applies only to the period it was sent in.
  std::uint64_t generation = 0;
  // The start (shared_next) came from the subscription or from a read of the room's numbering
  // made after the subscription began, not from giving up on a gap before anything came.
  bool start_settled = false;
  std::map<std::uint64_t, FramePtr> held;
  std::chrono::steady_clock::time_point held_since{};
  std::chrono::steady_clock::time_point repair_since{};  // a gap is being read from the history
  bool repair_pending =
      false;  // that read is on its way (a read that could not be sent is retried)
  // The shared history this room followed before its current one (Redis lost its data): an own
  // message of it answered late is delivered, and does not switch the room back.
  std::uint32_t retired_epoch_tag = 0;
  std::chrono::steady_clock::time_point last_used = std::chrono::steady_clock::now();
};

struct TransparentHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};
using RoomMap = std::unordered_map<std::string, RoomState, TransparentHash, std::equal_to<>>;

class RoomRegistry {
 public:
  RoomRegistry(unsigned shards, std::function<std::string()> new_epoch);

  // Runs f(RoomState&) with the room's stripe locked, creating the state when missing.
  template <typename F>
  decltype(auto) with_room(const std::string& room, F&& f) {
    Stripe& stripe = stripe_for(room);
    std::lock_guard lock(stripe.mutex);
    auto it = stripe.rooms.find(room);
    if (it == stripe.rooms.end()) it = stripe.rooms.emplace(room, new_state()).first;
    return f(it->second);
  }
  // Runs f(RoomState*) with the stripe locked, without creating the room (nullptr when unknown).
  template <typename F>
  decltype(auto) with_existing_room(std::string_view room, F&& f) {
    Stripe& stripe = stripe_for(room);
    std::lock_guard lock(stripe.mutex);
    auto it = stripe.rooms.find(room);
    return f(it == stripe.rooms.end() ? nullptr : &it->second);
  }
  // Forgets rooms without members whose last use is older than max_idle (history included).
  std::size_t evict_idle(std::chrono::steady_clock::duration max_idle);
  // Runs f(const RoomState*) with the stripe locked; nullptr when the room is unknown.
  template <typename F>
  decltype(auto) find_room(std::string_view room, F&& f) const {
    const Stripe& stripe = stripe_for(room);
    std::lock_guard lock(stripe.mutex);
    auto it = stripe.rooms.find(room);
    return f(it == stripe.rooms.end() ? nullptr : &it->second);
  }
  // Calls f(name, state) for each known room, one stripe locked at a time.
  void for_each_room(const std::function<void(const std::string&, const RoomState&)>& f) const;
  // Forgets a room that has no members and no history worth keeping (call with no lock held).
  void erase_if_unused(const std::string& room);

 private:
  static constexpr std::size_t kStripes =
      64;  // lock striping: joins/leaves of unrelated rooms rarely meet
  struct Stripe {
    mutable std::mutex mutex;
    RoomMap rooms;
  };
  Stripe& stripe_for(std::string_view room) { return stripes_[TransparentHash{}(room) % kStripes]; }
  const Stripe& stripe_for(std::string_view room) const {
    return stripes_[TransparentHash{}(room) % kStripes];
  }
  RoomState new_state() const;

  unsigned shards_;
  std::function<std::string()> new_epoch_;
  std::array<Stripe, kStripes> stripes_;
};

}  // namespace realtime::detail
