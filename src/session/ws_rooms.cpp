// WsSession's rooms: joins (with their welcome held until Redis confirms the subscriptions),
// leaves, recovery from a resume point, and presence. The socket's I/O, framing, auth and close are
// in ws_session.cpp, its rate limits in ws_rate.cpp.

#include <algorithm>
#include <atomic>
#include <limits>

#include <boost/asio/post.hpp>

#include "http/handler_core.hpp"
#include "hub/hub_core.hpp"
#include "hub/shard.hpp"
#include "protocol/envelope.hpp"
#include "protocol/request.hpp"
#include "realtime/error.hpp"
#include "session/ws_session.hpp"

namespace realtime::detail {

namespace asio = boost::asio;

void WsSession::hold_until_subscribed(const std::string& room,
                                      std::unique_ptr<Announcement> announcement) {
  std::shared_ptr<Announcement> told(std::move(announcement));
  bool waiting = false;
  if (holds_ != std::numeric_limits<decltype(holds_)>::max()) {  // else enough said already
    // (Once: a broadcaster that calls `done` twice would release another hold of the socket.)
    waiting = handler_->broadcaster().await_subscribed(
        room, user_id_,
        [weak = weak_from_this(), context = &shard_.context(), told,
         called = std::make_shared<std::atomic<bool>>(false)] {
          if (called->exchange(true)) return;
          asio::post(*context, [weak, told] {
            const auto self = weak.lock();
            if (!self || self->holds_ == 0) return;
            if (told) self->add_position(*told, self->handler_->core().shared_position(told->room));
            if (--self->holds_ == 0) self->flush();
          });
        });
  }
  if (waiting) {
    ++holds_;
  } else if (told) {
    add_position(*told, handler_->core().shared_position(told->room));
  }
}

void WsSession::add_position(Announcement& announcement, const std::string& room_position) {
  if (room_position.empty() || state_ != State::open || overflowed_ || !announcement.frame) return;
  // The frame is still queued (the output is held, or nothing has been written since it was).
  const auto queued = [&] {
    const auto it = std::find(queue_.begin() + static_cast<std::ptrdiff_t>(head_), queue_.end(),
                              announcement.frame);
    if (it == queue_.begin() + static_cast<std::ptrdiff_t>(head_) && head_offset_ != 0)
      return queue_.end();
    return it;
  };
  if (queued() == queue_.end()) return;
  // The position is where the socket's stream of the room stands behind this message: messages
  // numbered up to the room's position that reached the socket while its output was held are
  // queued behind it, so it names the position before the first of them. (The room's position was
  // read before this: what was numbered up to it was posted to this thread, and is delivered now.)
  std::string position = room_position;
  if (const auto id = parse_message_id(room_position)) {
    shard_.deliver_pending();
    if (state_ != State::open || overflowed_) return;
    const std::uint32_t tag = shared_epoch_tag(id->epoch);
    std::uint64_t seq = id->seq;
    for (auto it = queued(); it != queue_.end(); ++it) {
      const OutFrame& frame = **it;
      if (frame.room == announcement.room && frame.seq != 0 && !frame.local_seq &&
          frame.epoch_tag == tag && frame.seq <= seq) {
        seq = frame.seq - 1;
      }
    }
    if (seq != id->seq) position = std::string(id->epoch) + '-' + std::to_string(seq);
  }
  const auto it = queued();
  if (it == queue_.end()) return;
  std::string& data = announcement.msg.data;  // {"event":...}: the position goes before the '}'
  data.pop_back();
  data += ",\"last_id\":";
  protocol::append_json_string(data, position);
  data += '}';
  // Its id names the position too: a client that resumes from it resumes from there.
  announcement.msg.id = handler_->core().next_direct_id(position);
  FramePtr frame = make_direct_frame(announcement.msg);
  queued_bytes_ += frame->bytes.size() - announcement.frame->bytes.size();
  announcement.frame = frame;
  *it = std::move(frame);
  name_presence_positions(it + 1, announcement.room, position);
}

void WsSession::name_presence_positions(std::vector<FramePtr>::iterator from,
                                        const std::string& room, const std::string& position) {
  // Presence behind the announcement that the pod named before it knew the room's position
  // ("<tag>-p<n>") names the position the socket's stream of the room stands at before it: the
  // announcement's, or the last room message between them.
  const auto named = parse_message_id(position);
  if (!named) return;
  const std::uint32_t tag = shared_epoch_tag(named->epoch);
  std::uint64_t at = named->seq;
  for (auto it = from; it != queue_.end(); ++it) {
    const OutFrame& frame = **it;
    if (frame.room != room || frame.local_seq) continue;
    if (frame.seq != 0) {
      if (frame.epoch_tag != tag) return;  // another history from here on
      at = std::max(at, frame.seq);
    } else if (FramePtr moved = with_position(frame, named->epoch, at)) {
      queued_bytes_ = queued_bytes_ - frame.bytes.size() + moved->bytes.size();
      *it = std::move(moved);
    }
  }
}

bool WsSession::in_room(const std::string& room) const {
  return std::find(rooms_.begin(), rooms_.end(), room) != rooms_.end();
}

void WsSession::handle_join(const std::string& room, const std::optional<std::string>& given_id,
                            std::unique_ptr<Announcement> welcome) {
  // (The id of a presence message or of the welcome stands for the room position it names.)
  const std::optional<std::string> last_id =
      given_id ? std::optional<std::string>(resume_point(*given_id)) : std::nullopt;
  if (!protocol::is_valid_room(room)) {
    send_error(error_code::bad_room, "invalid room name");
    return;
  }
  if (in_room(room)) return;  // joining twice is harmless
  if (!may_join(room)) {
    if (state_ == State::open) {
      send_error(error_code::room_not_allowed, "not allowed to join this room", room);
    }
    return;
  }
  if (rooms_.size() >= handler_->config().max_rooms_per_connection) {
    send_error(error_code::too_many_rooms, "too many rooms on one socket", room);
    return;
  }
  rooms_.push_back(room);
  Broadcaster& broadcaster = handler_->broadcaster();
  if (last_id && broadcaster.shared_history()) {
    // Join now with live frames kept aside, fetch the shared history, then replay and go live.
    const auto result = handler_->core().join(room, user_id_, *this, std::nullopt, true, status_);
    const std::uint32_t serial = ++recovery_serial_;
    recovering_.push_back({room, serial, {}, 0});
    broadcaster.fetch_history(
        room, *last_id,
        [weak = weak_from_this(), room, serial, last_id = *last_id,
         context = &shard_.context()](HistoryResult history) {
          boost::asio::post(*context,
                            [weak, room, serial, last_id, history = std::move(history)]() mutable {
                              if (auto self = weak.lock())
                                self->finish_recovery(room, serial, last_id, history);
                            });
        });
    announce_join(room, result.user_first, result.status_change);
    return;
  }
  const auto result = handler_->core().join(room, user_id_, *this, last_id, false, status_);
  // Here a last_id is served by this pod's own history (see above); without one the join is
  // announced, with the room's position: from this pod's history now, or from the shared one
  // once the pod receives the room.
  if (last_id) {
    send_recovered(room, result.recovered, result.replayed, result.position);
  } else {
    if (!welcome) {
      Message joined = system_message("joined", {});
      joined.room = room;
      joined.id = handler_->core().next_direct_id();
      welcome = std::make_unique<Announcement>(Announcement{room, joined, nullptr});
      welcome->frame = send_direct(std::move(joined));
    }
    if (!broadcaster.shared_history()) {
      add_position(*welcome, result.position);
      welcome.reset();
    }
  }
  announce_join(room, result.user_first, result.status_change);
  hold_until_subscribed(room, std::move(welcome));
}

void WsSession::announce_join(const std::string& room, bool user_first,
                              std::optional<PresenceStatus> changed) {
  Broadcaster& broadcaster = handler_->broadcaster();
  if (user_first) broadcaster.user_joined(room, user_id_);
  if (changed) broadcaster.status_changed(room, user_id_, *changed);
}

void WsSession::announce_leave(const std::string& room, bool user_last,
                               std::optional<PresenceStatus> changed) {
  Broadcaster& broadcaster = handler_->broadcaster();
  if (user_last) {
    broadcaster.user_left(room, user_id_);
  } else if (changed) {
    broadcaster.status_changed(room, user_id_, *changed);
  }
}

void WsSession::send_recovered(const std::string& room, bool recovered, std::size_t replayed,
                               const std::string& position) {
  Metrics& metrics = handler_->metrics();
  (recovered ? metrics.recoveries_recovered : metrics.recoveries_not_recovered)
      .fetch_add(1, std::memory_order_relaxed);
  metrics.recovery_replayed.fetch_add(replayed, std::memory_order_relaxed);
  std::string fields = "\"recovered\":";
  fields += recovered ? "true" : "false";
  fields += ",\"replayed\":";
  fields += std::to_string(replayed);
  if (!position.empty()) {
    fields += ",\"last_id\":";
    protocol::append_json_string(fields, position);
  }
  Message message = system_message("recovered", fields);
  message.room = room;
  message.id = handler_->core().next_direct_id(position);
  send_direct(std::move(message));
}

void WsSession::buffer_live(const FramePtr& frame) {
  auto it = std::find_if(recovering_.begin(), recovering_.end(),
                         [&](const Recovery& r) { return r.room == frame->room; });
  if (it == recovering_.end()) {
    enqueue(frame);
    return;
  }
  if (state_ != State::open || overflowed_) return;
  it->bytes += frame->bytes.size();
  it->live.push_back(frame);
  // The same bound as enqueue()'s: what other rooms' replays queued is allowed on top.
  if (it->bytes + queued_bytes_ > handler_->config().send_queue_bytes + replay_allowance_) {
    overflow();
  }
}

void WsSession::finish_recovery(const std::string& room, std::uint32_t serial,
                                const std::string& last_id, const HistoryResult& result) {
  auto it = std::find_if(recovering_.begin(), recovering_.end(),
                         [&](const Recovery& r) { return r.room == room && r.serial == serial; });
  // Left the room (or closed) meanwhile; after a rejoin, the recovery is the rejoin's own.
  if (it == recovering_.end()) return;
  Recovery recovery = std::move(*it);
  recovering_.erase(it);
  std::optional<std::uint64_t> after_seq;
  std::uint32_t epoch_tag = 0;
  if (const auto id = parse_message_id(last_id)) {
    after_seq = id->seq;
    epoch_tag = shared_epoch_tag(id->epoch);
  }
  // A replay the socket may not queue (see may_replay) is not recovered. (Each frame is the JSON
  // and a header of at most 10 bytes.)
  std::size_t bytes = 0;
  for (const auto& message : result.messages) bytes += message.second.size() + 10;
  const bool recovered = result.recovered && may_replay(bytes);
  std::uint64_t last = after_seq.value_or(0);
  if (recovered && !result.messages.empty()) last = result.messages.back().first;
  // Live again; frames of the shared history up to `last` (in flight, or held behind a gap) are
  // skipped from now on. (A recovery succeeds only in the history its last_id came from.)
  shard_.set_live(room, this, recovered ? last : 0, epoch_tag);
  if (state_ != State::open) return;
  std::size_t replayed = 0;
  if (recovered) {
    for (const auto& [seq, json] : result.messages) {
      enqueue_replay(make_frame_from_json(json, room, seq));
      ++replayed;
    }
  }
  // The history was read after this pod's subscription to the room began: what is numbered after
  // its position reaches the socket live (what is numbered up to it and still comes live is sent
  // after this message).
  send_recovered(room, recovered, replayed, result.position);
  const auto replayed_to = recovered ? parse_message_id(result.position) : std::nullopt;
  std::uint64_t sent_to = last;  // the socket's stream of the room, before the next live frame
  for (const FramePtr& frame : recovery.live) {
    // What the replay covered is not sent twice. Frames outside the shared numbering (seq 0, or
    // numbered by this pod while Redis was away), or of another shared history, are always live.
    const bool shared = frame->seq != 0 && !frame->local_seq && frame->epoch_tag == epoch_tag;
    if (!recovered || !shared || frame->seq > last) {
      // A presence message kept aside names the position it followed (or none, named before the
      // pod knew the room's); sent after the replay, it is behind the replay's end and what
      // followed it (a client resuming from it must not get them again).
      FramePtr moved = frame->seq == 0 && replayed_to
                           ? with_position(*frame, replayed_to->epoch, sent_to)
                           : nullptr;
      if (shared) sent_to = std::max(sent_to, frame->seq);
      enqueue(moved ? moved : frame);
    }
  }
}

void WsSession::handle_leave(const std::string& room) {
  if (!protocol::is_valid_room(room)) {
    send_error(error_code::bad_room, "invalid room name");
    return;
  }
  auto it = std::find(rooms_.begin(), rooms_.end(), room);
  if (it == rooms_.end()) {
    send_error(error_code::not_in_room, "not in that room", room);
    return;
  }
  rooms_.erase(it);
  std::erase_if(recovering_, [&](const Recovery& r) { return r.room == room; });
  drop_unsent(room);
  const auto result = handler_->core().leave(room, user_id_, *this, status_);
  announce_leave(room, result.user_last, result.status_change);
}

void WsSession::drop_unsent(const std::string& room) {
  // (A frame partly written stays: the rest of it must follow. The socket's own messages stay
  // too: the welcome and the answers to its requests, a leave pipelined behind them included.)
  const auto unsent = static_cast<std::ptrdiff_t>(head_ + (head_offset_ != 0));
  const auto first = queue_.begin() + unsent;
  if (first >= queue_.end()) return;
  std::size_t dropped = 0;
  std::string first_dropped;  // the id of the first numbered frame dropped
  const auto kept = std::remove_if(first, queue_.end(), [&](const FramePtr& frame) {
    if (frame->room != room || frame->own) return false;
    if (frame->seq != 0 && first_dropped.empty()) first_dropped = frame_id(*frame);
    dropped += frame->bytes.size();
    return true;
  });
  queue_.erase(kept, queue_.end());
  queued_bytes_ -= dropped;
  // What stays and named a position of the room behind a dropped frame (a pong, a notification,
  // the socket's own message about the room) names the one before the first dropped: a client
  // resuming from it gets what it never got.
  if (const auto from = parse_message_id(first_dropped)) {
    const std::string epoch(from->epoch);
    for (auto it = queue_.begin() + unsent; it < queue_.end(); ++it) {
      const bool of_room = (*it)->room.empty() || ((*it)->own && (*it)->room == room);
      if (!of_room) continue;
      if (FramePtr moved = with_position_before(**it, epoch, from->seq)) {
        queued_bytes_ = queued_bytes_ - (*it)->bytes.size() + moved->bytes.size();
        *it = std::move(moved);
      }
    }
  }
  // The queue shrinks at least as much as its bound does.
  replay_allowance_ -=
      static_cast<std::uint32_t>(std::min<std::size_t>(dropped, replay_allowance_));
}

void WsSession::handle_presence(PresenceStatus status) {
  const PresenceStatus before = status_;
  if (before == status) return;
  if (!presence_within_rate()) {
    refuse_rate();
    return;
  }
  status_ = status;
  for (const std::string& room : rooms_) {
    if (const auto user_status = handler_->core().set_status(room, user_id_, before, status))
      handler_->broadcaster().status_changed(room, user_id_, *user_status);
  }
}

}  // namespace realtime::detail
