#include "hub/shard.hpp"

#include <algorithm>
#include <optional>

#include <boost/asio/post.hpp>

#include "hub/hub_core.hpp"
#include "session/ws_session.hpp"

namespace realtime::detail {

Shard::Shard(HubCore& hub, unsigned index)
    : hub_(hub),
      index_(index),
      context_(1),  // one thread runs this loop: Asio may skip some locking
      sweep_timer_(context_),
      read_buffer_(std::make_unique<char[]>(kReadBufferSize)),
      write_buffer_(std::make_unique<char[]>(kWriteBufferSize)) {}

Shard::~Shard() = default;

bool Shard::in_this_thread() const noexcept {
  return const_cast<boost::asio::io_context&>(context_).get_executor().running_in_this_thread();
}

void Shard::post_delivery(Delivery delivery) {
  // The loops have ended: nothing would take it, and it would be held until the Hub goes.
  if (hub_.stopped()) return;
  bool post = false;
  {
    std::lock_guard lock(inbox_mutex_);
    if (inbox_.size() >= kMaxInbox) {
      // This loop has fallen far behind: shed the new broadcast rather than grow without bound.
      hub_.metrics().drop(DropReason::overload);
      return;
    }
    inbox_.push_back(std::move(delivery));
    post = !drain_posted_;
    drain_posted_ = true;
  }
  if (post) boost::asio::post(context_, [this] { drain_inbox(); });
}

std::size_t Shard::waiting() const {
  const std::lock_guard lock(inbox_mutex_);
  return inbox_.size();
}

void Shard::deliver_pending() {
  if (!in_drain_) drain_inbox();
}

void Shard::drain_inbox() {
  {
    std::lock_guard lock(inbox_mutex_);
    draining_.swap(inbox_);
    drain_posted_ = false;
  }
  in_drain_ = true;
  for (std::size_t i = 0; i < draining_.size(); ++i) {
    const Delivery& delivery = draining_[i];
    switch (delivery.kind) {
      case Delivery::Kind::room:
        deliver_room(delivery.frame, i);
        break;
      case Delivery::Kind::all:
        deliver_all(delivery.frame, i);
        break;
      case Delivery::Kind::user:
        deliver_user(delivery.user, delivery.frame, i);
        break;
    }
  }
  draining_.clear();
  batch_indexed_ = false;
  batch_rooms_.clear();
  inbox_rooms_.clear();
  inbox_read_ = 0;
  in_drain_ = false;
}

// The copies of one notification or global broadcast, each naming a room's position: where the
// room stands on the pod (HubCore::room_position), before the earliest of the room's frames that
// were posted to this thread and are not delivered yet (later in the batch, or in the inbox). A
// frame whose id is not the pod's own form (another program's) goes out as it is.
class Shard::PositionNames {
 public:
  PositionNames(Shard& shard, const FramePtr& frame, std::size_t batch_index)
      : shard_(shard), frame_(frame), batch_index_(batch_index), suffix_(position_suffix(*frame)) {}

  const FramePtr& for_session(const WsSession& session) {
    const std::string* room = suffix_.empty() ? nullptr : session.position_room(frame_->room);
    return room == nullptr ? frame_ : for_room(*room);
  }

  // The copy naming `room`'s position (the frame as it is when none can be named).
  const FramePtr& for_room(const std::string& room) {
    if (suffix_.empty()) return frame_;
    auto [it, added] = named_.try_emplace(room);
    if (added) it->second = name(room);
    return it->second ? it->second : frame_;
  }

 private:
  FramePtr name(const std::string& room) {
    const std::string position = shard_.hub_.room_position(room);
    const auto id = parse_message_id(position);
    if (!id) return nullptr;
    // Read after the position: what was numbered up to it was posted here before.
    std::uint64_t seq = id->seq;
    if (const auto next = shard_.undelivered(room, batch_index_)) {
      const bool same_history = shard_.hub_.shared_history()
                                    ? !next->local && next->epoch_tag == shared_epoch_tag(id->epoch)
                                    : next->local;
      if (next->mixed || !same_history) return nullptr;  // another history on its way
      if (next->seq <= seq) seq = next->seq - 1;
    }
    return with_socket_position(*frame_, position_id(id->epoch, seq), suffix_);
  }

  Shard& shard_;
  const FramePtr& frame_;
  std::size_t batch_index_;
  std::string suffix_;
  std::unordered_map<std::string, FramePtr> named_;  // room -> its copy (null: none named)
};

// Both of two accounts of a room's undelivered frames.
Shard::Undelivered Shard::merged(const Undelivered& a, const Undelivered& b) {
  Undelivered out = a;
  out.seq = std::min(a.seq, b.seq);  // (an own message answered late comes later)
  out.mixed = a.mixed || b.mixed || a.epoch_tag != b.epoch_tag || a.local != b.local;
  return out;
}

std::optional<Shard::Undelivered> Shard::undelivered(std::string_view room,
                                                     std::size_t batch_index) {
  const auto numbered = [](const Delivery& delivery) {
    return delivery.kind == Delivery::Kind::room && delivery.frame->seq != 0;
  };
  const auto of = [](const OutFrame& frame) {
    return Undelivered{frame.seq, frame.epoch_tag, frame.local_seq};
  };
  if (!batch_indexed_) {
    // Each room's frames in batch order, then from the last back: each entry what the batch
    // holds of the room from it on.
    batch_indexed_ = true;
    for (std::size_t i = 0; i < draining_.size(); ++i) {
      if (!numbered(draining_[i])) continue;
      const OutFrame& frame = *draining_[i].frame;
      batch_rooms_[std::string_view(frame.room)].emplace_back(i, of(frame));
    }
    for (auto& [name, entries] : batch_rooms_) {
      for (std::size_t j = entries.size() - 1; j-- > 0;) {
        entries[j].second = merged(entries[j].second, entries[j + 1].second);
      }
    }
  }
  {
    const std::lock_guard lock(inbox_mutex_);  // (it only grows while the batch runs)
    for (; inbox_read_ < inbox_.size(); ++inbox_read_) {
      if (!numbered(inbox_[inbox_read_])) continue;
      const OutFrame& frame = *inbox_[inbox_read_].frame;
      const auto [it, added] = inbox_rooms_.try_emplace(std::string_view(frame.room), of(frame));
      if (!added) it->second = merged(it->second, of(frame));
    }
  }
  std::optional<Undelivered> found;
  if (const auto it = batch_rooms_.find(room); it != batch_rooms_.end()) {
    const auto& entries = it->second;
    const auto later =
        std::upper_bound(entries.begin(), entries.end(), batch_index,
                         [](std::size_t index, const auto& entry) { return index < entry.first; });
    if (later != entries.end()) found = later->second;
  }
  if (const auto it = inbox_rooms_.find(room); it != inbox_rooms_.end()) {
    found = found ? merged(*found, it->second) : it->second;
  }
  return found;
}

void Shard::deliver_all(const FramePtr& frame, std::size_t batch_index) {
  PositionNames names(*this, frame, batch_index);
  for (auto& [raw, session] : sessions_) session->enqueue(names.for_session(*session));
}

void Shard::deliver_user(const std::string& user, const FramePtr& frame, std::size_t batch_index) {
  PositionNames names(*this, frame, batch_index);
  const auto [first, last] = users_.equal_range(user);
  for (auto it = first; it != last; ++it) it->second->enqueue(names.for_session(*it->second));
}

void Shard::deliver_room(const FramePtr& frame, std::size_t batch_index) {
  auto it = rooms_.find(frame->room);
  if (it == rooms_.end()) return;
  // A message no history numbered (this pod's own while Redis is away, another program's): its
  // members get it behind the room's position, as a notification about the room, so that a
  // client resuming from its id resumes the room.
  const FramePtr* named = &frame;
  std::optional<PositionNames> names;
  if (frame->seq == 0) named = &names.emplace(*this, frame, batch_index).for_room(frame->room);
  for (Member& member : it->second) {
    if (member.buffering) {
      // (Being recovered: the position it would name may be behind the replay's end. As a
      // notification to it, it keeps the pod's own id.)
      member.session->buffer_live(frame);
      continue;
    }
    if (frame->seq != 0 && !frame->local_seq && member.min_shared_seq != 0) {
      // After a recovery: what the replay covered is skipped, however late it comes (this pod's
      // own message whose answer came after newer ones, say). The first frame of another history
      // (Redis lost its data: numbers start again at 1) ends it.
      if (frame->epoch_tag == member.min_shared_epoch) {
        if (frame->seq <= member.min_shared_seq) continue;
      } else {
        member.min_shared_seq = 0;
      }
    }
    if (!frame->local_seq || frame->seq > member.min_seq) member.session->enqueue(*named);
  }
}

void Shard::add_session(const std::shared_ptr<WsSession>& session) {
  const std::lock_guard lock(sessions_mutex_);
  sessions_.emplace(session->id(), session);
}

void Shard::remove_session(WsSession* session) {
  const std::lock_guard lock(sessions_mutex_);
  sessions_.erase(session->id());
}

std::shared_ptr<WsSession> Shard::find_session(std::string_view connection_id) const {
  const std::lock_guard lock(sessions_mutex_);
  const auto it = sessions_.find(connection_id);
  return it == sessions_.end() ? nullptr : it->second;
}

void Shard::join_local(const std::string& room, WsSession* session, std::uint64_t min_seq,
                       bool buffer_live) {
  rooms_[room].push_back({session, min_seq, buffer_live});
}

void Shard::set_live(const std::string& room, WsSession* session, std::uint64_t replayed_seq,
                     std::uint32_t epoch_tag) {
  auto it = rooms_.find(room);
  if (it == rooms_.end()) return;
  for (Member& member : it->second) {
    if (member.session != session) continue;
    member.buffering = false;
    member.min_shared_seq = replayed_seq;
    member.min_shared_epoch = epoch_tag;
  }
}

void Shard::leave_local(const std::string& room, WsSession* session) {
  auto it = rooms_.find(room);
  if (it == rooms_.end()) return;
  auto& members = it->second;
  auto pos = std::find_if(members.begin(), members.end(),
                          [session](const Member& m) { return m.session == session; });
  if (pos != members.end()) {
    *pos = members.back();  // order among members does not matter
    members.pop_back();
  }
  if (members.empty()) rooms_.erase(it);
}

void Shard::add_user(WsSession* session) { users_.emplace(session->user_id(), session); }

void Shard::remove_user(WsSession* session) {
  const auto [first, last] = users_.equal_range(session->user_id());
  for (auto it = first; it != last; ++it) {
    if (it->second == session) {
      users_.erase(it);
      return;
    }
  }
}

void Shard::schedule_flush(WsSession* session) {
  dirty_.push_back(session->shared_from_this());
  if (!flush_scheduled_) {
    flush_scheduled_ = true;
    // Runs two passes of the loop's queue later: after every handler already queued, and after
    // what they and the next poll of the sockets queue, so what a burst of broadcasts owes to a
    // socket goes out in one write. An idle loop gets there at once; under load a write carries
    // more frames (hot room: ~36 frames per write instead of ~23, ~4-8 % more deliveries per core).
    boost::asio::post(context_, [this] { boost::asio::post(context_, [this] { flush_dirty(); }); });
  }
}

void Shard::flush_dirty() {
  flush_scheduled_ = false;
  std::vector<std::shared_ptr<WsSession>> batch;
  batch.swap(dirty_);
  for (auto& session : batch) session->flush();
  batch.clear();
  if (dirty_.empty()) dirty_.swap(batch);  // keep the capacity for the next turn
  publish_counts();
}

void Shard::count_sent(const OutFrame& frame, std::chrono::steady_clock::time_point now,
                       std::chrono::steady_clock::time_point replayed_at) noexcept {
  if (!frame.is_message) return;
  ++sent_pending_;
  // Broadcasts only; a replayed frame was created before its replay (a live frame created before
  // it, still queued, goes unsampled too: rare, and only ever a sample fewer).
  if (frame.created == std::chrono::steady_clock::time_point{} || frame.created < replayed_at)
    return;
  const auto latency = std::chrono::duration_cast<std::chrono::nanoseconds>(now - frame.created);
  ++latency_pending_[Metrics::latency_bucket(latency)];
  latency_sum_pending_ns_ += static_cast<std::uint64_t>(std::max<std::int64_t>(0, latency.count()));
}

void Shard::publish_counts() noexcept {
  if (sent_pending_ == 0) return;
  Metrics& metrics = hub_.metrics();
  metrics.messages_sent.fetch_add(sent_pending_, std::memory_order_relaxed);
  metrics.add_latency_counts(latency_pending_, latency_sum_pending_ns_);
  sent_pending_ = 0;
  latency_pending_.fill(0);
  latency_sum_pending_ns_ = 0;
}

std::vector<std::shared_ptr<WsSession>> Shard::all_sessions() const {
  std::vector<std::shared_ptr<WsSession>> all;
  all.reserve(sessions_.size());
  for (const auto& [raw, session] : sessions_) all.push_back(session);
  return all;
}

void Shard::close_all(const HandlerCore& handler, std::uint16_t code, std::string_view reason) {
  for (auto& session : all_sessions()) {
    if (&session->handler() == &handler) session->close(code, reason);
  }
}

std::size_t Shard::session_count(const HandlerCore& handler) const noexcept {
  return static_cast<std::size_t>(
      std::count_if(sessions_.begin(), sessions_.end(),
                    [&](const auto& entry) { return &entry.second->handler() == &handler; }));
}

void Shard::finish_all() {
  for (auto& session : all_sessions()) session->finish();
  run_deferred_disconnects();
}

void Shard::defer_disconnect(std::shared_ptr<WsSession> session) {
  const bool post = deferred_disconnects_.empty();
  deferred_disconnects_.push_back(std::move(session));
  if (post) boost::asio::post(context_, [this] { run_deferred_disconnects(); });
}

void Shard::run_deferred_disconnects() {
  while (!deferred_disconnects_.empty()) {
    std::vector<std::shared_ptr<WsSession>> due;
    due.swap(deferred_disconnects_);
    for (auto& session : due) session->run_disconnect_hook();
  }
}

void Shard::start_sweep(std::chrono::milliseconds period) {
  sweep_period_ = period;
  if (sweeping_) return;
  sweeping_ = true;
  arm_sweep();
}

void Shard::arm_sweep() {
  sweep_timer_.expires_after(std::max<std::chrono::milliseconds>(sweep_period_ / kSweepSlices,
                                                                 std::chrono::milliseconds(1)));
  sweep_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) on_sweep();
  });
}

void Shard::stop_sweep() {
  boost::asio::post(context_, [this] {
    sweeping_ = false;
    sweep_timer_.cancel();
  });
}

void Shard::on_sweep() {
  if (!sweeping_) return;
  const auto now = std::chrono::steady_clock::now();
  // The slice is a run of the session table's buckets, so one pass over kSweepSlices turns visits
  // every session once. A rehash in between may make a session wait one more pass or be visited
  // twice; a tick is a comparison of times, so neither matters.
  const std::size_t buckets = sessions_.bucket_count();
  if (sweep_bucket_ >= buckets) sweep_bucket_ = 0;
  const std::size_t end =
      std::min(buckets, sweep_bucket_ + (buckets + kSweepSlices - 1) / kSweepSlices);
  for (std::size_t b = sweep_bucket_; b < end; ++b) {
    for (auto it = sessions_.begin(b); it != sessions_.end(b); ++it)
      sweep_slice_.push_back(it->second);
  }
  sweep_bucket_ = end;
  // Ticks may close sessions (and so erase them from sessions_): they run on copies.
  for (auto& session : sweep_slice_) session->tick(now);
  sweep_slice_.clear();
  if (index_ == 0 && now - last_eviction_ >= kEvictionPeriod) {
    last_eviction_ = now;
    hub_.evict_idle_rooms();
  }
  arm_sweep();
}

Shard::HttpWaiting::Slot Shard::HttpWaiting::add(HttpWaiter* waiter, const std::string& client) {
  ++per_address_[client];
  return waiting_.insert(waiting_.end(), {waiter, client});
}

void Shard::HttpWaiting::remove(Slot slot) noexcept {
  const auto count = per_address_.find(slot->second);
  if (count != per_address_.end() && --count->second == 0) per_address_.erase(count);
  waiting_.erase(slot);
}

void Shard::HttpWaiting::touch(Slot slot) noexcept {
  waiting_.splice(waiting_.end(), waiting_, slot);
}

Shard::HttpWaiter* Shard::HttpWaiting::victim() const {
  HttpWaiter* chosen = nullptr;
  std::size_t most = 0;
  std::size_t looked = 0;
  for (const auto& [waiter, address] : waiting_) {
    const auto count = per_address_.find(address);
    if (count != per_address_.end() && count->second > most) {
      most = count->second;
      chosen = waiter;
    }
    if (++looked == kLookedAt) break;
  }
  return chosen;  // (every address listed has a count: null only when none waits)
}

}  // namespace realtime::detail
