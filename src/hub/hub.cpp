#include <algorithm>
#include <charconv>
#include <mutex>
#include <optional>
#include <random>
#include <shared_mutex>
#include <stdexcept>
#include <utility>

#include <boost/asio/post.hpp>
#include <unistd.h>

#include "hub/hub_core.hpp"
#include "hub/log_sink.hpp"
#include "protocol/envelope.hpp"
#include "protocol/outgoing.hpp"
#include "realtime/broadcaster.hpp"
#include "session/ws_session.hpp"

namespace realtime {
namespace detail {
namespace {

constexpr std::string_view kIdAlphabet = "0123456789abcdefghijklmnopqrstuvwxyz";

}  // namespace
}  // namespace detail

std::string default_pod_id() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  std::string id = host[0] != '\0' ? host : "pod";
  id += '-';
  id += std::to_string(::getpid());
  // Host name and pid alone repeat: two Hubs of one process, or containers sharing the node's
  // host name with pid 1. Pods with one id take each other's messages for their own echoes.
  id += '-';
  std::uint32_t tag = std::random_device{}();
  for (int i = 0; i < 4; ++i, tag /= 36) id += detail::kIdAlphabet[tag % 36];
  return id;
}

namespace detail {
namespace {

void append_base36(std::string& out, std::uint64_t value) {
  char digits[16];
  int n = 0;
  do {
    digits[n++] = kIdAlphabet[value % 36];
    value /= 36;
  } while (value != 0);
  while (n > 0) out += digits[--n];
}

}  // namespace

std::string position_id(std::string_view epoch, std::uint64_t seq) {
  std::string id(epoch);
  id += '-';
  id += std::to_string(seq);
  return id;
}

std::optional<MessageId> parse_message_id(std::string_view id) noexcept {
  const auto dash = id.rfind('-');
  if (dash == std::string_view::npos || dash == 0 || dash + 1 == id.size()) return std::nullopt;
  MessageId parsed;
  parsed.epoch = id.substr(0, dash);
  const char* first = id.data() + dash + 1;
  const char* last = id.data() + id.size();
  auto [ptr, ec] = std::from_chars(first, last, parsed.seq);
  if (ec != std::errc{} || ptr != last) return std::nullopt;
  return parsed;
}

HubCore::HubCore(HubOptions options)
    : options_([&options] {
        // 0: the CPUs this process may use (affinity mask, cgroup quota), not the machine's.
        if (options.threads == 0) options.threads = default_thread_count();
        return std::move(options);
      }()),
      pod_id_(options_.pod_id.empty() ? default_pod_id() : options_.pod_id),
      registry_(
          options_.threads, [this] { return new_epoch(); }, metrics_.room_retained_bytes),
      random_state_(std::random_device{}() ^ (std::uint64_t{std::random_device{}()} << 32)) {
  id_prefix_ = new_epoch();
  if (options_.log) logger_ = make_sink_logger(options_.log, options_.log_level, pod_id_);
  for (unsigned i = 0; i < options_.threads; ++i)
    shards_.push_back(std::make_unique<Shard>(*this, i));
}

HubCore::~HubCore() {
  stop();
  wait();
  // Sessions first, while the rest of the hub is whole: a session may hold the last reference to a
  // Handler (and through it a Broadcaster) whose destructor still talks to the hub.
  shards_.clear();
}

std::string HubCore::new_epoch() {
  // 8 base-36 characters (~41 bits) from a per-hub xorshift generator: distinct histories and
  // processes get distinct ids without coordination.
  std::lock_guard lock(random_mutex_);
  random_state_ ^= random_state_ << 13;
  random_state_ ^= random_state_ >> 7;
  random_state_ ^= random_state_ << 17;
  std::string epoch;
  std::uint64_t value = random_state_;
  for (int i = 0; i < 8; ++i) {
    epoch += kIdAlphabet[value % 36];
    value /= 36;
  }
  return epoch;
}

void HubCore::start() {
  std::lock_guard lock(lifecycle_mutex_);
  if (started_ || stopped_) return;
  for (auto& shard : shards_) {
    guards_.emplace_back(shard->context().get_executor());
    threads_.emplace_back([&context = shard->context()] { context.run(); });
  }
  started_.store(true, std::memory_order_release);
}

void HubCore::stop() {
  std::lock_guard lock(lifecycle_mutex_);
  stopped_.store(true, std::memory_order_release);
  for (auto& guard : guards_) guard.reset();
  for (auto& shard : shards_) {
    shard->stop_sweep();
    shard->context().stop();
  }
}

bool HubCore::on_io_thread() const noexcept {
  return std::any_of(shards_.begin(), shards_.end(),
                     [](const std::unique_ptr<Shard>& shard) { return shard->in_this_thread(); });
}

void HubCore::wait() {
  // The other threads end only at stop(), and this one not before it returns: it would block its
  // own loop (its sockets) for good.
  if (!stopped() && on_io_thread()) {
    throw std::logic_error("Hub::wait() on one of the Hub's I/O threads before Hub::stop()");
  }
  std::unique_lock lock(lifecycle_mutex_);
  if (joining_) {
    // run() on another thread (or another wait()) is joining them: wait until it has, unless this
    // is one of the threads it joins (a hook's stop() and wait() while run() blocks): that one
    // waiting for it would wait for itself.
    if (on_io_thread()) return;
    joined_.wait(lock, [this] { return !joining_; });
    return;
  }
  joining_ = true;
  std::vector<std::thread> threads;
  threads.swap(threads_);
  lock.unlock();
  std::optional<std::thread> own;  // called on an I/O thread: it cannot join itself
  for (auto& thread : threads) {
    if (thread.get_id() == std::this_thread::get_id()) {
      own = std::move(thread);
    } else if (thread.joinable()) {
      thread.join();
    }
  }
  // The loops are over for good: the sockets still open are gone for the application too
  // (on_disconnect runs for each, here), unless this is one of the loops' own threads.
  if (!threads.empty() && !own && stopped()) {
    for (auto& shard : shards_) shard->finish_all();
  }
  lock.lock();
  // Left for a wait() on another thread (or the destructor) to join.
  if (own) threads_.push_back(std::move(*own));
  joining_ = false;
  joined_.notify_all();
}

Shard& HubCore::next_shard() noexcept {
  return *shards_[next_shard_.fetch_add(1, std::memory_order_relaxed) % shards_.size()];
}

Shard& HubCore::room_shard(std::string_view room) noexcept {
  return *shards_[std::hash<std::string_view>{}(room) % shards_.size()];
}

std::string HubCore::next_direct_id(std::string_view position) {
  std::string id(position.empty() ? std::string_view(id_prefix_) : position);
  id += position.empty() ? "-d" : ".d";
  // A position is the room's, the same on every pod and after a restart: the process's tag after
  // it keeps the id unique.
  if (!position.empty()) id += id_prefix_;
  append_base36(id, next_global_.fetch_add(1, std::memory_order_relaxed));
  return id;
}

std::string HubCore::room_position(std::string_view room) const {
  if (shared_history()) return shared_position(room);
  return registry_.find_room(room, [](const RoomState* state) {
    return state == nullptr || state->epoch.empty()
               ? std::string()
               : position_id(state->epoch, state->next_seq - 1);
  });
}

std::string resume_point(std::string_view last_id) {
  const auto dot = last_id.rfind('.');
  if (dot == std::string_view::npos || dot + 1 >= last_id.size()) return std::string(last_id);
  const std::string_view tag = last_id.substr(dot + 1);
  const auto lower = [](char c) { return c >= 'a' && c <= 'z'; };
  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (!lower(tag.front()) ||
      !std::all_of(tag.begin(), tag.end(), [&](char c) { return lower(c) || digit(c); })) {
    return std::string(last_id);
  }
  const std::string_view head = last_id.substr(0, dot);
  return parse_message_id(head) ? std::string(head) : std::string(last_id);
}

std::string HubCore::next_connection_id() {
  std::string id = id_prefix_;
  id += '.';
  append_base36(id, next_connection_.fetch_add(1, std::memory_order_relaxed));
  return id;
}

void HubCore::post_to_shards(const RoomState* state, const FramePtr& frame) {
  // Each shard gets its own copy of the frame: its reference count then lives on one thread, which
  // is cheaper than every shard bouncing one shared count between cores.
  bool first = true;
  for (auto& shard : shards_) {
    if (state != nullptr && state->shard_members[shard->index()] == 0) continue;
    FramePtr copy = first ? frame : std::make_shared<OutFrame>(*frame);
    first = false;
    if (frame->room.empty()) {
      shard->post_all(std::move(copy));
    } else {
      shard->post_room(std::move(copy));
    }
  }
}

std::string HubCore::deliver(Message& msg) {
  if (msg.timestamp == Clock::time_point{}) msg.timestamp = Clock::now();
  if (msg.room.empty()) {
    if (msg.id.empty()) {
      msg.id = id_prefix_ + "-g";
      append_base36(msg.id, next_global_.fetch_add(1, std::memory_order_relaxed));
    }
    post_to_shards(nullptr, make_frame(msg));
    return msg.id;
  }
  if (msg.type == MessageType::presence) {
    // Presence is live state, not history: it is not replayed. Its id names the room's position
    // it follows on this pod ("<epoch>-<seq>.p<tag><n>": a client that got it got every message up
    // to there), so a client resuming from it resumes from that position.
    registry_.with_existing_room(msg.room, [&](RoomState* state) {
      if (state != nullptr) post_presence(*state, msg);  // (no state: no members here)
    });
    if (msg.id.empty()) {  // no members here: nobody gets it
      msg.id = id_prefix_ + "-p";
      append_base36(msg.id, next_global_.fetch_add(1, std::memory_order_relaxed));
    }
    return msg.id;
  }
  // With a shared history (Redis), a message this pod numbers itself (Redis away) takes no place
  // in it, nor starts a history of the pod's own: it gets a direct id, which each socket gets
  // behind the room's shared position ("<epoch>-<seq>.d<tag><n>"), so a client resuming from it,
  // or from the last room message before it, resumes the shared history once Redis is back.
  if (msg.id.empty() && shared_history_.load(std::memory_order_acquire)) msg.id = next_direct_id();
  const std::size_t history_size = options_.history_size;
  registry_.with_room(msg.room, [&](RoomState& state) {
    std::uint64_t seq = 0;
    if (msg.id.empty()) {
      seq = state.next_seq++;
      msg.id = state.epoch;
      msg.id += '-';
      msg.id += std::to_string(seq);
    }
    state.last_used = std::chrono::steady_clock::now();
    auto frame = make_frame(msg, seq);
    frame->local_seq = seq != 0;
    if (seq != 0) registry_.add_retained(state.history.push(frame, history_size));
    // Queuing under the room's lock keeps every shard's delivery order equal to the id order.
    post_to_shards(&state, frame);
  });
  keep_within_history_budget();
  return msg.id;
}

void HubCore::post_presence(RoomState& state, Message& msg) {
  const bool track = shared_history_.load(std::memory_order_acquire);
  if (msg.id.empty()) {
    if (track ? state.shared_next != 0 : state.next_seq != 0) {
      msg.id = track ? state.shared_epoch : state.epoch;
      msg.id += '-';
      msg.id += std::to_string((track ? state.shared_next : state.next_seq) - 1);
      msg.id += ".p";
      msg.id += id_prefix_;  // (the position is the room's: the tag keeps the id unique)
    } else {
      msg.id = id_prefix_ + "-p";
    }
    append_base36(msg.id, next_global_.fetch_add(1, std::memory_order_relaxed));
  }
  if (track && state.members > 0) {
    if (auto presence = protocol::decode_presence_data(msg.data)) {
      // The members know it already: a change announced on this pod while Redis was away, and
      // again by the pod's rewrite once it was back.
      if (state.told_known && state.told.get(presence->user_id) == presence->status) return;
      state.told.set(presence->user_id, presence->status);
    }
  }
  post_to_shards(&state, make_frame(msg));
}

void HubCore::announce_presence(const std::string& room, const std::string& user, bool joined) {
  registry_.with_existing_room(room, [&](RoomState* state) {
    if (state == nullptr) return;  // (no members here: nobody to tell)
    const auto it = state->users.find(user);
    PresenceStatus now = PresenceStatus::offline;
    if (it != state->users.end() && it->second.sockets > 0) {
      now = joined ? PresenceStatus::online : it->second.status();
      if (it->second.told == now) return;
      it->second.told = now;
    }
    // (No entry: the user's last socket left; a socket of its that joined since would have one.)
    Message msg = presence_message(room, {now, user});
    msg.timestamp = Clock::now();
    post_presence(*state, msg);
  });
}

void HubCore::keep_within_history_budget() {
  const std::size_t budget = options_.history_bytes;
  const std::size_t retained = registry_.retained_bytes();
  if (retained <= budget || retained <= shrink_floor_.load(std::memory_order_relaxed) + budget / 8)
    return;
  if (shrinking_.exchange(true, std::memory_order_acquire)) return;  // another thread sweeps
  const RoomRegistry::Shrunk shrunk = registry_.shrink_to(budget - budget / 8);
  shrink_floor_.store(registry_.retained_bytes(), std::memory_order_relaxed);
  metrics_.history_evictions.fetch_add(shrunk.rooms_forgotten + shrunk.histories_dropped,
                                       std::memory_order_relaxed);
  shrinking_.store(false, std::memory_order_release);
}

std::string HubCore::deliver_to_user(const std::string& user, Message& msg) {
  if (msg.timestamp == Clock::time_point{}) msg.timestamp = Clock::now();
  if (msg.id.empty()) {
    msg.id = id_prefix_ + "-u";
    append_base36(msg.id, next_global_.fetch_add(1, std::memory_order_relaxed));
  }
  FramePtr frame = make_frame(msg);
  bool first = true;
  for (auto& shard : shards_) {
    FramePtr copy = first ? frame : std::make_shared<OutFrame>(*frame);
    first = false;
    shard->post_user(user, std::move(copy));
  }
  return msg.id;
}

HubCore::JoinResult HubCore::join(const std::string& room, const std::string& user,
                                  WsSession& session, const std::optional<std::string>& last_id,
                                  bool buffer_live, PresenceStatus status) {
  Shard& shard = session.shard();
  JoinResult result;
  registry_.with_room(room, [&](RoomState& state) {
    const std::uint64_t min_seq = state.next_seq - 1;
    result.position = state.epoch;
    result.position += '-';
    result.position += std::to_string(min_seq);
    if (last_id) {
      const auto id = parse_message_id(*last_id);
      const std::uint64_t oldest =
          state.history.empty() ? state.next_seq : state.history.front()->seq;
      // Recoverable when the id is from this history and nothing after it has been evicted.
      if (id && id->epoch == state.epoch && id->seq < state.next_seq && id->seq + 1 >= oldest) {
        std::size_t bytes = 0;
        state.history.for_each([&](const FramePtr& frame) {
          if (frame->seq > id->seq) bytes += frame->bytes.size();
        });
        // A replay the socket may not queue (see WsSession::may_replay) is not recovered.
        result.recovered = session.may_replay(bytes);
        if (result.recovered) {
          state.history.for_each([&](const FramePtr& frame) {
            if (frame->seq <= id->seq) return;
            session.enqueue_replay(frame);
            ++result.replayed;
          });
        }
      }
    }
    result.room_first = state.members == 0;
    if (result.room_first) {
      registry_.members_changed(room, true);
      state.told.clear();  // a new membership period: known again once a snapshot came
      state.told_known = false;
      state.told_epoch.clear();
      // This pod was not following the room's shared numbering: start again from what comes next.
      state.shared_next = 0;
      state.held.clear();
      state.start_settled = false;
      state.generation = next_generation_.fetch_add(1, std::memory_order_relaxed);
    }
    ++state.members;
    ++state.shard_members[shard.index()];
    UserPresence& presence = state.users[user];
    result.user_first = presence.sockets == 0;
    const PresenceStatus before = result.user_first ? PresenceStatus::online : presence.status();
    ++presence.sockets;
    if (status == PresenceStatus::away) ++presence.away;
    if (presence.status() != before) result.status_change = presence.status();
    shard.join_local(room, &session, min_seq, buffer_live);
  });
  if (result.room_first) {
    metrics_.rooms.fetch_add(1, std::memory_order_relaxed);
    notify_room(room, true);
  }
  notify_members(room);
  return result;
}

HubCore::LeaveResult HubCore::leave(const std::string& room, const std::string& user,
                                    WsSession& session, PresenceStatus status) {
  Shard& shard = session.shard();
  LeaveResult result;
  registry_.with_room(room, [&](RoomState& state) {
    shard.leave_local(room, &session);
    result.room_last = state.members == 1;
    if (state.members > 0) --state.members;
    if (state.shard_members[shard.index()] > 0) --state.shard_members[shard.index()];
    if (result.room_last) {
      registry_.members_changed(room, false);
      state.told.clear();  // nobody here to have been told anything (a room kept idle holds none)
      state.told_known = false;
    }
    state.last_used = std::chrono::steady_clock::now();
    auto it = state.users.find(user);
    if (it == state.users.end()) return;
    UserPresence& presence = it->second;
    const PresenceStatus before = presence.status();
    if (status == PresenceStatus::away && presence.away > 0) --presence.away;
    if (--presence.sockets == 0) {
      state.users.erase(it);
      result.user_last = true;
      return;
    }
    if (presence.status() != before) result.status_change = presence.status();
  });
  if (result.room_last) {
    metrics_.rooms.fetch_sub(1, std::memory_order_relaxed);
    notify_room(room, false);
    // A room of this pod's own history keeps its numbering (the positions its members were given)
    // until evict_idle() forgets it, an hour on, even without messages.
    if (shared_history_.load(std::memory_order_acquire) || options_.history_size == 0)
      registry_.erase_if_unused(room);
    keep_within_history_budget();
  }
  notify_members(room);
  return result;
}

std::optional<PresenceStatus> HubCore::set_status(const std::string& room, const std::string& user,
                                                  PresenceStatus from, PresenceStatus to) {
  return registry_.with_existing_room(room, [&](RoomState* state) -> std::optional<PresenceStatus> {
    if (state == nullptr || from == to) return std::nullopt;
    auto it = state->users.find(user);
    if (it == state->users.end()) return std::nullopt;
    UserPresence& presence = it->second;
    const PresenceStatus before = presence.status();
    if (to == PresenceStatus::away) {
      if (presence.away < presence.sockets) ++presence.away;
    } else if (presence.away > 0) {
      --presence.away;
    }
    if (presence.status() == before) return std::nullopt;
    return presence.status();
  });
}

std::vector<RoomCount> HubCore::rooms() const {
  std::vector<RoomCount> out;
  registry_.for_each_room([&](const std::string& name, const RoomState& state) {
    if (state.members > 0) out.push_back({name, state.members});
  });
  std::sort(out.begin(), out.end(),
            [](const RoomCount& a, const RoomCount& b) { return a.room < b.room; });
  return out;
}

std::vector<PresenceEntry> HubCore::presence(std::string_view room) const {
  std::vector<PresenceEntry> out;
  registry_.find_room(room, [&](const RoomState* state) {
    if (state == nullptr) return;
    for (const auto& [user, presence] : state->users) out.push_back({user, presence.status()});
  });
  std::sort(out.begin(), out.end(),
            [](const PresenceEntry& a, const PresenceEntry& b) { return a.user_id < b.user_id; });
  return out;
}

std::optional<PresenceStatus> HubCore::user_status(std::string_view room,
                                                   const std::string& user) const {
  return registry_.find_room(room, [&](const RoomState* state) -> std::optional<PresenceStatus> {
    if (state == nullptr) return std::nullopt;
    const auto it = state->users.find(user);
    if (it == state->users.end() || it->second.sockets == 0) return std::nullopt;
    return it->second.status();
  });
}

std::size_t HubCore::room_members(std::string_view room) const {
  return registry_.find_room(room, [](const RoomState* state) -> std::size_t {
    return state == nullptr ? 0 : state->members;
  });
}

std::vector<HubCore::RoomSnapshot> HubCore::snapshot() const {
  std::vector<RoomSnapshot> out;
  registry_.for_each_room([&](const std::string& name, const RoomState& state) {
    if (state.members == 0) return;
    RoomSnapshot room{name, state.members, {}};
    for (const auto& [user, presence] : state.users)
      room.users.push_back({user, presence.status()});
    out.push_back(std::move(room));
  });
  return out;
}

void HubCore::update_observed() {
  observed_.store(room_observer_ || user_observer_ || members_observer_, std::memory_order_release);
}

void HubCore::set_room_observer(std::function<void(const std::string&, bool)> observer) {
  // The observer replaced is destroyed after the lock is released (with `observer`).
  const std::unique_lock lock(observers_mutex_);
  std::swap(room_observer_, observer);
  update_observed();
}

void HubCore::notify_room(const std::string& room, bool active) const {
  if (!observed_.load(std::memory_order_acquire)) return;
  const std::shared_lock lock(observers_mutex_);
  if (room_observer_) room_observer_(room, active);
}

void HubCore::notify_members(const std::string& room) const {
  if (!observed_.load(std::memory_order_acquire)) return;
  const std::shared_lock lock(observers_mutex_);
  if (members_observer_) members_observer_(room);
}

void HubCore::set_members_observer(std::function<void(const std::string&)> observer) {
  const std::unique_lock lock(observers_mutex_);
  std::swap(members_observer_, observer);
  update_observed();
}

void HubCore::set_user_observer(std::function<void(const std::string&, bool)> observer) {
  const std::unique_lock lock(observers_mutex_);
  std::swap(user_observer_, observer);
  update_observed();
}

void HubCore::add_user_socket(const std::string& user) {
  // Only the user observer needs the counts (single pod: none).
  if (!observed_.load(std::memory_order_acquire)) return;
  const std::shared_lock observers(observers_mutex_);
  if (!user_observer_) return;
  bool first = false;
  {
    const std::lock_guard lock(users_mutex_);
    first = ++user_sockets_[user] == 1;
  }
  if (first) user_observer_(user, true);
}

void HubCore::remove_user_socket(const std::string& user) {
  if (!observed_.load(std::memory_order_acquire)) return;
  const std::shared_lock observers(observers_mutex_);
  if (!user_observer_) return;
  bool last = false;
  {
    const std::lock_guard lock(users_mutex_);
    auto it = user_sockets_.find(user);
    if (it == user_sockets_.end()) return;
    if (--it->second == 0) {
      user_sockets_.erase(it);
      last = true;
    }
  }
  if (last) user_observer_(user, false);
}

bool HubCore::send_to_connection(std::string_view connection_id, Message msg) {
  if (!running()) return false;  // a stopped loop would never run what is handed to it
  for (auto& shard : shards_) {
    if (auto session = shard->find_session(connection_id)) return session->send(std::move(msg));
  }
  return false;
}

namespace {
// What a CheckedMessage vouches for on this thread (its strings keep their capacity: no
// allocation per chat once warm).
struct CheckedMark {
  bool set = false;
  MessageType type = MessageType::chat;
  std::string id;
  std::string room;
  std::string data;
};
thread_local CheckedMark checked_mark;
}  // namespace

CheckedMessage::CheckedMessage(const Message& msg) {
  CheckedMark& mark = checked_mark;
  mark.type = msg.type;
  mark.id = msg.id;
  mark.room = msg.room;
  mark.data = msg.data;
  mark.set = true;
}
CheckedMessage::~CheckedMessage() { checked_mark.set = false; }

bool take_checked(const Message& msg) noexcept {
  CheckedMark& mark = checked_mark;
  if (!std::exchange(mark.set, false)) return false;
  return mark.type == msg.type && mark.id == msg.id && mark.room == msg.room &&
         mark.data == msg.data;
}

void check_unless_checked(const Message& msg, std::string_view what) {
  if (!take_checked(msg)) protocol::check_outgoing(msg, what);
}

}  // namespace detail

Hub::Hub(HubOptions options) : core_(std::make_unique<detail::HubCore>(std::move(options))) {}
Hub::~Hub() = default;
void Hub::start() { core_->start(); }
void Hub::run() {
  core_->start();
  core_->wait();
}
void Hub::stop() { core_->stop(); }
void Hub::wait() { core_->wait(); }
std::string Hub::broadcast(Message msg) {
  detail::check_unless_checked(msg, "Hub::broadcast");
  return core_->deliver(msg);
}
std::string Hub::send_to_user(const std::string& user_id, Message msg) {
  detail::check_unless_checked(msg, "Hub::send_to_user");
  return core_->deliver_to_user(user_id, msg);
}
bool Hub::send_to_connection(std::string_view connection_id, Message msg) {
  protocol::check_outgoing(msg, "Hub::send_to_connection");
  return core_->send_to_connection(connection_id, std::move(msg));
}
std::size_t Hub::connection_count() const noexcept {
  return static_cast<std::size_t>(core_->metrics().connections.load(std::memory_order_relaxed));
}
std::size_t Hub::room_count() const noexcept {
  return static_cast<std::size_t>(core_->metrics().rooms.load(std::memory_order_relaxed));
}
std::vector<RoomCount> Hub::rooms() const { return core_->rooms(); }
std::vector<PresenceEntry> Hub::presence(std::string_view room) const {
  return core_->presence(room);
}
unsigned Hub::thread_count() const noexcept { return core_->shard_count(); }
const std::string& Hub::pod_id() const noexcept { return core_->pod_id(); }
Metrics& Hub::metrics() noexcept { return core_->metrics(); }

void LocalBroadcaster::user_joined(const std::string& room, const std::string& user_id) {
  hub_.core().announce_presence(room, user_id, true);
}

void LocalBroadcaster::user_left(const std::string& room, const std::string& user_id) {
  hub_.core().announce_presence(room, user_id, false);
}

void LocalBroadcaster::status_changed(const std::string& room, const std::string& user_id,
                                      PresenceStatus /*status*/) {
  hub_.core().announce_presence(room, user_id, false);  // (the status the hub has now)
}

}  // namespace realtime
