#include "hub/room_registry.hpp"

#include <algorithm>
#include <tuple>

namespace realtime::detail {

RoomRegistry::RoomRegistry(unsigned shards, std::function<std::string()> new_epoch,
                           std::atomic<std::int64_t>& retained)
    : shards_(shards), new_epoch_(std::move(new_epoch)), retained_(retained) {}

RoomState RoomRegistry::new_state() const {
  RoomState state;
  state.epoch = new_epoch_();
  state.shard_members.assign(shards_, 0);
  return state;
}

void RoomRegistry::for_each_room(
    const std::function<void(const std::string&, const RoomState&)>& f) const {
  for (const Stripe& stripe : stripes_) {
    std::lock_guard lock(stripe.mutex);
    for (const auto& [name, state] : stripe.rooms) f(name, state);
  }
}

std::size_t RoomRegistry::count_retained_bytes() const {
  std::size_t bytes = 0;
  for (const Stripe& stripe : stripes_) {
    std::lock_guard lock(stripe.mutex);
    for (const auto& [name, state] : stripe.rooms)
      bytes += state.history.bytes() + (state.members == 0 ? room_bytes(name) : 0);
  }
  return bytes;
}

RoomMap::iterator RoomRegistry::erase_locked(Stripe& stripe, RoomMap::iterator it) {
  add_retained(-static_cast<std::ptrdiff_t>(room_bytes(it->first) + it->second.history.bytes()));
  return stripe.rooms.erase(it);
}

void RoomRegistry::erase_if_unused(const std::string& room) {
  Stripe& stripe = stripe_for(room);
  std::lock_guard lock(stripe.mutex);
  auto it = stripe.rooms.find(room);
  if (it != stripe.rooms.end() && it->second.forgettable() && it->second.history.empty()) {
    erase_locked(stripe, it);
  }
}

std::size_t RoomRegistry::evict_idle(std::chrono::steady_clock::duration max_idle) {
  const auto now = std::chrono::steady_clock::now();
  std::size_t evicted = 0;
  for (Stripe& stripe : stripes_) {
    std::lock_guard lock(stripe.mutex);
    for (auto it = stripe.rooms.begin(); it != stripe.rooms.end();) {
      const RoomState& state = it->second;
      if (state.forgettable() && now - state.last_used >= max_idle) {
        it = erase_locked(stripe, it);
        ++evicted;
      } else {
        ++it;
      }
    }
  }
  return evicted;
}

RoomRegistry::Shrunk RoomRegistry::shrink_to(std::size_t target) {
  struct Candidate {
    bool members;  // rooms without members go first
    std::chrono::steady_clock::time_point last_used;
    std::size_t stripe;
    std::string room;
  };
  Shrunk shrunk;
  std::vector<Candidate> candidates;
  // Rooms other threads create meanwhile are in no snapshot: another pass takes them, as long as
  // the last one freed something.
  for (bool freed = true; freed && retained_bytes() > target;) {
    freed = false;
    candidates.clear();
    for (std::size_t i = 0; i < kStripes; ++i) {
      std::lock_guard lock(stripes_[i].mutex);
      for (const auto& [name, state] : stripes_[i].rooms) {
        if (state.forgettable() || !state.history.empty())
          candidates.push_back({!state.forgettable(), state.last_used, i, name});
      }
    }
    std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
      return std::tie(a.members, a.last_used) < std::tie(b.members, b.last_used);
    });
    for (const Candidate& candidate : candidates) {
      if (retained_bytes() <= target) break;
      Stripe& stripe = stripes_[candidate.stripe];
      std::lock_guard lock(stripe.mutex);
      auto it = stripe.rooms.find(candidate.room);
      if (it == stripe.rooms.end()) continue;
      RoomState& state = it->second;
      if (state.forgettable()) {
        erase_locked(stripe, it);
        ++shrunk.rooms_forgotten;
        freed = true;
      } else if (!state.history.empty()) {
        // The numbering stays (members were given positions in it); what a recovery would replay
        // is gone, so a last_id before the latest message is answered "not recovered".
        add_retained(-static_cast<std::ptrdiff_t>(state.history.clear()));
        ++shrunk.histories_dropped;
        freed = true;
      }
    }
  }
  return shrunk;
}

}  // namespace realtime::detail
