#include "hub/room_registry.hpp"

namespace realtime::detail {

RoomRegistry::RoomRegistry(unsigned shards, std::function<std::string()> new_epoch)
    : shards_(shards), new_epoch_(std::move(new_epoch)) {}

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

void RoomRegistry::erase_if_unused(const std::string& room) {
  Stripe& stripe = stripe_for(room);
  std::lock_guard lock(stripe.mutex);
  auto it = stripe.rooms.find(room);
  if (it != stripe.rooms.end() && it->second.members == 0 && it->second.history.empty() &&
      it->second.held.empty()) {
    stripe.rooms.erase(it);
  }
}

}  // namespace realtime::detail

namespace realtime::detail {

std::size_t RoomRegistry::evict_idle(std::chrono::steady_clock::duration max_idle) {
  const auto now = std::chrono::steady_clock::now();
  std::size_t evicted = 0;
  for (Stripe& stripe : stripes_) {
    std::lock_guard lock(stripe.mutex);
    evicted += std::erase_if(stripe.rooms, [&](const auto& entry) {
      const RoomState& state = entry.second;
      return state.members == 0 && state.held.empty() && now - state.last_used >= max_idle;
    });
  }
  return evicted;
}

}  // namespace realtime::detail
