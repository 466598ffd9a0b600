// HubCore's delivery of room messages numbered by a shared history (Redis): in seq order on this
// pod, whichever way each arrives (the subscription, the answer to this pod's own publish, a read
// of the history for a gap), and the presence resync of rooms with members after a lost
// subscription. See docs/ARCHITECTURE.md, "Several pods: Redis".
#include <chrono>
#include <set>
#include <string>
#include <vector>

#include "hub/hub_core.hpp"

namespace realtime::detail {

namespace {

// The frame of a message numbered (epoch, seq) by a shared history.
FramePtr make_shared_frame(Message& msg, std::string_view epoch, std::uint64_t seq,
                           std::chrono::steady_clock::time_point broadcast_at = {}) {
  if (msg.timestamp == Clock::time_point{}) msg.timestamp = Clock::now();
  auto frame = make_frame(msg, seq);
  frame->epoch_tag = shared_epoch_tag(epoch);
  if (broadcast_at != std::chrono::steady_clock::time_point{}) frame->created = broadcast_at;
  return frame;
}

}  // namespace

HubCore::PresenceResync HubCore::sync_presence(const std::string& room,
                                               const std::vector<PresenceEntry>& cluster,
                                               const std::string& epoch, bool only_if_unknown) {
  return registry_.with_existing_room(room, [&](RoomState* state) {
    PresenceResync result;
    if (state == nullptr || state->members == 0) return result;
    if (only_if_unknown && state->told_known) return result;
    if (!state->told_known) {  // (a snapshot comes only at the start of a membership period)
      state->told.assign(cluster);
      state->told_known = true;
      state->told_epoch = epoch;
      return result;
    }
    if (state->told_epoch != epoch || epoch == kNoStateEpoch) {
      // What a loss changed is not announced, and the read may miss a pod's part: only the epoch
      // is taken, so that the next resync in it compares `told` (still what the members know).
      state->told_epoch = epoch;
      result.lost = true;
      return result;
    }
    // Delivering the changes brings `told` to `now` (HubCore::deliver keeps it).
    ToldPresence now;
    now.assign(cluster);
    now.for_each([&](std::string_view user, PresenceStatus status) {
      if (state->told.get(user) != status) result.changes.push_back({std::string(user), status});
    });
    state->told.for_each([&](std::string_view user, PresenceStatus) {
      if (now.get(user) == PresenceStatus::offline)
        result.changes.push_back({std::string(user), PresenceStatus::offline});
    });
    return result;
  });
}

void HubCore::note_holding(const std::string& room) {
  std::lock_guard lock(held_mutex_);
  rooms_holding_.insert(room);
}

void HubCore::deliver_sequenced(Message& msg, std::string_view epoch, std::uint64_t seq,
                                Numbered from, std::chrono::steady_clock::time_point broadcast_at) {
  const FramePtr frame = make_shared_frame(msg, epoch, seq, broadcast_at);
  const bool holding = registry_.with_room(msg.room, [&](RoomState& state) {
    return deliver_sequenced_locked(state, epoch, seq, from, frame);
  });
  if (holding) note_holding(msg.room);
  keep_within_history_budget();  // a room without members here is kept (its numbering)
}

bool HubCore::deliver_sequenced_locked(RoomState& state, std::string_view epoch, std::uint64_t seq,
                                       Numbered from, const FramePtr& frame) {
  state.last_used = std::chrono::steady_clock::now();
  if (state.shared_epoch != epoch) {  // a new history (or the first message seen)
    const std::uint32_t tag = shared_epoch_tag(epoch);
    if (tag == state.retired_epoch_tag) {
      // The history this room left: an own message of it whose answer was overtaken by the new
      // history's messages is late, not lost; nothing else of it is still to come.
      if (from == Numbered::own && state.members > 0) post_to_shards(&state, frame);
      return !state.held.empty();
    }
    // Members followed the old history here: the new one began after they joined (Redis lost the
    // old one), so all of it is theirs, from 1; what this pod has not received is read back.
    const bool followed = state.members > 0 && state.start_settled && state.shared_next != 0;
    if (!state.shared_epoch.empty()) {
      state.retired_epoch_tag = shared_epoch_tag(state.shared_epoch);
      // Frames of the old history held behind a gap that can no longer fill: late, not lost.
      if (state.members > 0) {
        for (const auto& [held_seq, held_frame] : state.held) post_to_shards(&state, held_frame);
      }
    }
    state.shared_epoch.assign(epoch);
    state.shared_next = followed ? 1 : 0;
    state.start_settled = followed;
    state.held.clear();
    state.repair_since = {};
    state.repair_pending = false;
  }
  if (state.members == 0) {
    // Nobody here: nothing to order. (This pod may miss some of the room's numbers while it has
    // no members, since it is not subscribed; holding for those would only delay.)
    state.shared_next = seq + 1;
    state.held.clear();
    return false;
  }
  if (state.shared_next == 0) {
    // Others' messages numbered before an own one may still be on their way through the
    // subscription, which alone shows where this pod's delivery of the room starts.
    if (from == Numbered::own) return hold_locked(state, seq, frame);
    start_at_locked(state, seq);
    state.start_settled = true;
  }
  if (seq < state.shared_next) {
    // Another pod's: delivered already. An own message reaches this pod only through the answer
    // to its publish; one that comes after its gap was given up on (kHoldLimit) is late, not lost.
    if (from == Numbered::own) post_to_shards(&state, frame);
    return !state.held.empty();
  }
  if (seq > state.shared_next) return hold_locked(state, seq, frame);
  post_to_shards(&state, frame);
  ++state.shared_next;
  return drain_held_locked(state);
}

bool HubCore::hold_locked(RoomState& state, std::uint64_t seq, const FramePtr& frame) {
  if (state.held.empty()) state.held_since = std::chrono::steady_clock::now();
  state.held.emplace(seq, frame);
  return true;
}

bool HubCore::start_at_locked(RoomState& state, std::uint64_t seq) {
  // Own messages held with smaller numbers were published before seq; the subscription did not
  // bring their echoes (it began after them), so nothing else comes before them.
  while (!state.held.empty() && state.held.begin()->first < seq) {
    post_to_shards(&state, state.held.begin()->second);
    state.held.erase(state.held.begin());
  }
  state.shared_next = seq;
  return drain_held_locked(state);
}

bool HubCore::drain_held_locked(RoomState& state) {
  while (!state.held.empty() && state.held.begin()->first <= state.shared_next) {
    if (state.held.begin()->first == state.shared_next) {
      post_to_shards(&state, state.held.begin()->second);
      ++state.shared_next;
    }
    state.held.erase(state.held.begin());
  }
  if (state.held.empty()) {
    state.repair_since = {};
    state.repair_pending = false;
    return false;
  }
  state.held_since = std::chrono::steady_clock::now();
  return true;
}

bool HubCore::start_unknown(std::string_view room) {
  return registry_.find_room(room, [](const RoomState* state) {
    return state != nullptr && state->members > 0 && state->shared_next == 0;
  });
}

void HubCore::own_echo(const std::string& room, std::string_view epoch, std::uint64_t seq) {
  const bool holding = registry_.with_existing_room(room, [&](RoomState* state) {
    if (state == nullptr || state->members == 0 || state->shared_next != 0) return false;
    if (state->shared_epoch != epoch) {
      if (!state->held.empty()) return true;  // answers from another history are held already
      state->shared_epoch.assign(epoch);      // echoed before its answer: the history starts here
    }
    // Held (answered already) it goes out now; otherwise its answer, on its way, will find
    // shared_next at its number.
    state->start_settled = true;
    return start_at_locked(*state, seq);
  });
  if (holding) note_holding(room);
}

std::optional<std::uint64_t> HubCore::start_to_read(std::string_view room) {
  return registry_.find_room(room, [](const RoomState* state) -> std::optional<std::uint64_t> {
    if (state == nullptr || state->members == 0 || state->start_settled) return std::nullopt;
    return state->generation;
  });
}

void HubCore::set_start(const std::string& room, std::uint64_t generation, std::string_view epoch,
                        std::uint64_t seq) {
  const bool holding = registry_.with_existing_room(room, [&](RoomState* state) {
    if (state == nullptr || state->members == 0 || state->start_settled ||
        state->generation != generation) {
      return false;
    }
    // Answers held (or a start given up on) in another history: the subscription sorts it out.
    if ((!state->held.empty() || state->shared_next != 0) && state->shared_epoch != epoch)
      return !state->held.empty();
    state->start_settled = true;
    // A start given up on before anything came (an own message's gap) moves on to the read:
    // what was numbered up to it may never come, and joining clients are told they start there.
    if (state->shared_next > seq) return !state->held.empty();
    state->shared_epoch.assign(epoch);
    return start_at_locked(*state, seq + 1);
  });
  if (holding) note_holding(room);
}

std::string HubCore::shared_position(std::string_view room) const {
  return registry_.find_room(room, [](const RoomState* state) {
    std::string position;
    if (state == nullptr || state->shared_next == 0) return position;
    position = state->shared_epoch;
    position += '-';
    position += std::to_string(state->shared_next - 1);
    return position;
  });
}

std::vector<HubCore::SharedPosition> HubCore::release_held(bool repair) {
  std::set<std::string> rooms;
  {
    std::lock_guard lock(held_mutex_);
    rooms.swap(rooms_holding_);
  }
  const auto now = std::chrono::steady_clock::now();
  std::vector<std::string> still;
  std::vector<SharedPosition> gaps;
  for (const std::string& room : rooms) {
    // (A room forgotten meanwhile holds nothing: not created again.)
    registry_.with_existing_room(room, [&](RoomState* found) {
      if (found == nullptr || found->held.empty()) return;
      RoomState& state = *found;
      if (now - state.held_since >= kHoldLimit) {
        const bool first_read = state.repair_since == std::chrono::steady_clock::time_point{};
        if (repair && state.shared_next != 0 && !state.repair_pending &&
            (first_read || now - state.repair_since < kRepairLimit)) {
          // The subscription lost them, or they are slow: read them from the shared history
          // (again, when the read could not be sent: Redis's command connection was down).
          if (first_read) state.repair_since = now;
          state.repair_pending = true;
          gaps.push_back({room, state.shared_epoch, state.shared_next});
        } else if (!repair || state.shared_next == 0 || now - state.repair_since >= kRepairLimit) {
          // The gap is not going to fill (or, in a room whose start is not known, the
          // subscription brought nothing): skip it, and deliver what follows in order.
          give_up_gap_locked(state);
        }
      }
      if (!state.held.empty()) still.push_back(room);
    });
  }
  if (!still.empty()) {
    std::lock_guard lock(held_mutex_);
    rooms_holding_.insert(still.begin(), still.end());
  }
  return gaps;
}

void HubCore::give_up_gap_locked(RoomState& state) {
  state.repair_since = {};
  state.repair_pending = false;
  if (state.held.empty()) return;
  state.shared_next = state.held.begin()->first;
  drain_held_locked(state);
}

std::vector<HubCore::SharedPosition> HubCore::followed_rooms() {
  std::vector<SharedPosition> out;
  registry_.for_each_room([&](const std::string& name, const RoomState& state) {
    if (state.members > 0 && state.shared_next != 0) {
      out.push_back({name, state.shared_epoch, state.shared_next});
    }
  });
  return out;
}

std::optional<HubCore::SharedPosition> HubCore::followed_room(std::string_view room) {
  return registry_.find_room(room, [&](const RoomState* state) -> std::optional<SharedPosition> {
    if (state == nullptr || state->members == 0 || state->shared_next == 0) return std::nullopt;
    return SharedPosition{std::string(room), state->shared_epoch, state->shared_next};
  });
}

void HubCore::deliver_repaired(Message& msg, std::string_view epoch, std::uint64_t seq) {
  const FramePtr frame = make_shared_frame(msg, epoch, seq);
  const bool holding = registry_.with_existing_room(msg.room, [&](RoomState* state) {
    if (state == nullptr || state->members == 0 || state->shared_next == 0 ||
        state->shared_epoch != epoch || seq < state->shared_next) {
      return false;
    }
    return deliver_sequenced_locked(*state, epoch, seq, Numbered::remote, frame);
  });
  if (holding) note_holding(msg.room);
}

void HubCore::gap_repaired(const std::string& room, bool answered) {
  const auto now = std::chrono::steady_clock::now();
  registry_.with_existing_room(room, [&](RoomState* state) {
    if (state == nullptr) return false;
    state->repair_pending = false;
    // Unanswered (not sent: Redis's command connection was down): release_held() asks again
    // until kRepairLimit.
    if (!answered || state->repair_since == std::chrono::steady_clock::time_point{}) return false;
    // Another gap opened after the repaired one is not given up before its own kHoldLimit.
    if (!state->held.empty() && now - state->held_since >= kHoldLimit) {
      give_up_gap_locked(*state);
    } else {
      state->repair_since = {};
    }
    return false;
  });
}

}  // namespace realtime::detail
