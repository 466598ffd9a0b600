// Pod-wide state of every room: members per shard, presence per user, the id sequence and history.
//
// Owned by HubCore. Thread safety: all access goes through with_room()/for_each_room(), which lock
// the room's stripe; a stripe lock is never held across I/O or user hooks (only posts to event
// loops, which keeps the delivery order of a room equal to its id order on every shard).
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "hub/out_frame.hpp"
#include "realtime/hub.hpp"
#include "realtime/message.hpp"

namespace realtime::detail {

// A user's sockets in a room on this pod. Each socket keeps its own status; the user's status on
// the pod is derived from them: online while any socket is online, away when all of them are.
struct UserPresence {
  std::uint32_t sockets = 0;  // this user's sockets in the room, all shards
  std::uint32_t away = 0;     // how many of them are away
  // What the room's members were last told of the user (HubCore::announce_presence: a pod without
  // Redis); offline until its first announcement.
  PresenceStatus told = PresenceStatus::offline;
  PresenceStatus status() const noexcept {
    return away < sockets ? PresenceStatus::online : PresenceStatus::away;
  }
};

// The memory a frame kept in a history holds: its bytes, the frame and its allocation (an estimate;
// std::make_shared puts the frame and its count in one block).
inline std::size_t retained_frame_bytes(const OutFrame& frame) noexcept {
  constexpr std::size_t kBlock = sizeof(OutFrame) + 32;  // the frame, its counts, malloc's header
  const auto heap = [](const std::string& s) {
    return s.capacity() > 15 ? s.capacity() + 16 : std::size_t{0};  // beyond the inline buffer
  };
  return kBlock + heap(frame.bytes) + heap(frame.room);
}

// The last messages of a room, oldest first: a ring over a vector that takes its memory on the
// first message (a room without messages holds none; a std::deque takes ~600 bytes up front).
// Keeps count of the memory it holds (retained_frame_bytes() per frame, and its slots).
class FrameRing {
 public:
  // Appends frame, dropping the oldest past `limit` (limit 0: keeps nothing). Returns the change
  // in bytes().
  std::ptrdiff_t push(FramePtr frame, std::size_t limit) {
    if (limit == 0) return 0;
    const std::size_t before = bytes_;
    bytes_ += retained_frame_bytes(*frame);
    if (items_.size() < limit) {
      if (items_.empty()) {
        items_.reserve(limit);
        bytes_ += items_.capacity() * sizeof(FramePtr);
      }
      items_.push_back(std::move(frame));
    } else {
      bytes_ -= retained_frame_bytes(*items_[head_]);
      items_[head_] = std::move(frame);
      head_ = (head_ + 1) % items_.size();
    }
    return static_cast<std::ptrdiff_t>(bytes_) - static_cast<std::ptrdiff_t>(before);
  }
  // Drops every frame and the slots. Returns the bytes that held.
  std::size_t clear() noexcept {
    const std::size_t freed = bytes_;
    std::vector<FramePtr>().swap(items_);
    head_ = 0;
    bytes_ = 0;
    return freed;
  }
  bool empty() const noexcept { return items_.empty(); }
  std::size_t size() const noexcept { return items_.size(); }
  std::size_t bytes() const noexcept { return bytes_; }
  const FramePtr& front() const noexcept { return items_[head_]; }
  // f(const FramePtr&) for each frame, oldest first.
  template <typename F>
  void for_each(F&& f) const {
    for (std::size_t i = head_; i < items_.size(); ++i) f(items_[i]);
    for (std::size_t i = 0; i < head_; ++i) f(items_[i]);
  }

 private:
  std::vector<FramePtr> items_;
  std::size_t head_ = 0;   // the oldest frame once the ring is full
  std::size_t bytes_ = 0;  // retained_frame_bytes() of the frames, and the slots
};

// What a room's members on this pod were told of each user's presence: online or away (absent:
// offline), in user order. A flat vector (~40 bytes a user, the id inline up to 15 bytes) rather
// than a hash map (~80 with its node and bucket): every pod with members in a room keeps one entry
// per user of the room, on every pod.
class ToldPresence {
 public:
  PresenceStatus get(std::string_view user) const noexcept {
    const auto it = find(entries_, user);
    return it != entries_.end() && it->user == user ? it->status : PresenceStatus::offline;
  }
  // offline removes the user.
  void set(std::string_view user, PresenceStatus status) {
    auto it = find(entries_, user);
    const bool found = it != entries_.end() && it->user == user;
    if (status == PresenceStatus::offline) {
      if (found) entries_.erase(it);
    } else if (found) {
      it->status = status;
    } else {
      if (entries_.size() == entries_.capacity()) {
        // Grows by a quarter, not twice: most rooms are small, and there is one per room per pod.
        const auto at = it - entries_.begin();
        entries_.reserve(entries_.size() + entries_.size() / 4 + 2);
        it = entries_.begin() + at;
      }
      entries_.insert(it, {std::string(user), status});
    }
  }
  void clear() noexcept { std::vector<Entry>().swap(entries_); }
  // Replaces everything with `users` (offline ones skipped; a user listed twice keeps one status).
  void assign(const std::vector<PresenceEntry>& users) {
    std::vector<Entry> entries;
    entries.reserve(users.size());
    for (const PresenceEntry& u : users) {
      if (u.status != PresenceStatus::offline) entries.push_back({u.user_id, u.status});
    }
    std::sort(entries.begin(), entries.end(),
              [](const Entry& a, const Entry& b) { return a.user < b.user; });
    entries.erase(std::unique(entries.begin(), entries.end(),
                              [](const Entry& a, const Entry& b) { return a.user == b.user; }),
                  entries.end());
    entries_ = std::move(entries);
  }
  // f(user, status) for each user, in user order.
  template <typename F>
  void for_each(F&& f) const {
    for (const Entry& entry : entries_) f(std::string_view(entry.user), entry.status);
  }

 private:
  struct Entry {
    std::string user;
    PresenceStatus status;
  };
  // The first entry not before `user` (const or not, as `entries`).
  template <typename Entries>
  static auto find(Entries& entries, std::string_view user) noexcept -> decltype(entries.begin()) {
    return std::lower_bound(
        entries.begin(), entries.end(), user,
        [](const Entry& e, std::string_view u) { return e.user.compare(u) < 0; });
  }
  std::vector<Entry> entries_;
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
  // With Redis: each user's status in the room as this pod's members were last told it (absent:
  // offline), from the presence messages delivered here, whether it started from a snapshot of
  // the cluster's (HubCore::sync_presence), and in which cluster-state epoch: what a resync after
  // a lost subscription compares.
  ToldPresence told;
  bool told_known = false;
  std::string told_epoch;  // the cluster-state epoch its snapshot was read in
  std::chrono::steady_clock::time_point last_used = std::chrono::steady_clock::now();

  // No members here and nothing waiting to be delivered: the room may be forgotten (its history
  // and numbering with it).
  bool forgettable() const noexcept { return members == 0 && held.empty(); }
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
  // retained: where retained_bytes() is kept (a gauge of the pod's metrics).
  RoomRegistry(unsigned shards, std::function<std::string()> new_epoch,
               std::atomic<std::int64_t>& retained);

  // Runs f(RoomState&) with the room's stripe locked, creating the state when missing.
  template <typename F>
  decltype(auto) with_room(const std::string& room, F&& f) {
    Stripe& stripe = stripe_for(room);
    std::lock_guard lock(stripe.mutex);
    auto it = stripe.rooms.find(room);
    if (it == stripe.rooms.end()) {
      it = stripe.rooms.emplace(room, new_state()).first;
      add_retained(static_cast<std::ptrdiff_t>(room_bytes(room)));  // no members yet
    }
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

  // The memory the rooms hold beyond what their members account for (an estimate): every room's
  // history, and the state of each room without members here. Rooms with members are bounded by
  // the sockets; these are not, but by the memory budget (shrink_to()).
  // retained_bytes() counted afresh from every room (a check of the running count).
  std::size_t count_retained_bytes() const;
  std::size_t retained_bytes() const noexcept {
    const std::int64_t bytes = retained_.load(std::memory_order_relaxed);
    return bytes > 0 ? static_cast<std::size_t>(bytes) : 0;
  }
  void add_retained(std::ptrdiff_t bytes) noexcept {
    retained_.fetch_add(bytes, std::memory_order_relaxed);
  }
  // Under the room's lock, when its member count leaves 0 (first = true) or comes back to it: the
  // room's own state counts in retained_bytes() only while it has no members.
  void members_changed(const std::string& room, bool first) noexcept {
    const auto bytes = static_cast<std::ptrdiff_t>(room_bytes(room));
    add_retained(first ? -bytes : bytes);
  }
  struct Shrunk {
    std::size_t rooms_forgotten = 0;    // rooms without members, history and numbering
    std::size_t histories_dropped = 0;  // histories of rooms with members
  };
  // Frees the memory of the least recently used rooms until retained_bytes() <= target: rooms
  // without members are forgotten first (an id of theirs is then unknown to a recovery), then the
  // histories of rooms with members are dropped (their numbering stays). One stripe locked at a
  // time; the order is taken from a snapshot of the rooms' last use (taken again while rooms
  // created meanwhile keep it above target).
  Shrunk shrink_to(std::size_t target);

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
  // The memory of a room's state without its history and users (an estimate).
  std::size_t room_bytes(std::string_view room) const noexcept {
    return sizeof(RoomState) + 64 + room.size() + shards_ * sizeof(std::uint32_t);
  }
  // Forgets the room `it` (without members) with its stripe locked; returns the next room.
  RoomMap::iterator erase_locked(Stripe& stripe, RoomMap::iterator it);

  unsigned shards_;
  std::function<std::string()> new_epoch_;
  std::array<Stripe, kStripes> stripes_;
  std::atomic<std::int64_t>& retained_;
};

}  // namespace realtime::detail
