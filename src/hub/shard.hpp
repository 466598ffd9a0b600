// One I/O thread's event loop and its slice of the pod: the sockets pinned to it and, for every
// room, the members that live on this thread.
//
// Owned by HubCore. Thread safety: deliver_*() and the membership functions run on the shard's own
// thread only; other threads reach them by posting to context(). Sessions are owned here
// (shared_ptr in sessions_) and by their pending I/O operations; room lists hold plain pointers
// that a session removes when it detaches, on this same thread, so rooms never keep a session
// alive.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "hub/out_frame.hpp"
#include "hub/room_registry.hpp"

namespace realtime {
class Metrics;
}

namespace realtime::detail {

class WsSession;
class HubCore;
class HandlerCore;

class Shard {
 public:
  Shard(HubCore& hub, unsigned index);
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;
  ~Shard();

  boost::asio::io_context& context() noexcept { return context_; }
  unsigned index() const noexcept { return index_; }
  bool in_this_thread() const noexcept;
  HubCore& hub() noexcept { return hub_; }

  // From any thread: queues a delivery in this shard's inbox. Deliveries run in the order they were
  // queued (an Asio post from the loop's own thread may overtake earlier posts from other threads,
  // so order cannot rest on posts); one post drains everything queued meanwhile.
  void post_room(FramePtr frame) { post_delivery({std::move(frame), {}, Delivery::Kind::room}); }
  void post_all(FramePtr frame) { post_delivery({std::move(frame), {}, Delivery::Kind::all}); }
  void post_user(std::string user, FramePtr frame) {
    post_delivery({std::move(frame), std::move(user), Delivery::Kind::user});
  }

  // Delivery; on this shard's thread.
  void deliver_room(const FramePtr& frame, std::size_t batch_index);
  // (A global broadcast or notification names, for each socket, the position of its first room,
  // as a pong does: one copy of the frame per room. `batch_index`: the delivery's place in the
  // batch drain_inbox() runs, whose later room frames are not delivered yet.)
  void deliver_all(const FramePtr& frame, std::size_t batch_index);
  void deliver_user(const std::string& user, const FramePtr& frame, std::size_t batch_index);

  // Membership; on this shard's thread.
  void add_session(const std::shared_ptr<WsSession>& session);
  void remove_session(WsSession* session);
  // The session with this connection id, if it is on this shard; from any thread.
  std::shared_ptr<WsSession> find_session(std::string_view connection_id) const;
  // min_seq: frames of the room with seq <= min_seq are skipped for this member (already replayed).
  // buffer_live: deliveries go to session->buffer_live() (a recovery is under way) until
  // set_live() is called.
  void join_local(const std::string& room, WsSession* session, std::uint64_t min_seq,
                  bool buffer_live = false);
  // Deliveries waiting in the inbox (from any thread).
  std::size_t waiting() const;
  // Delivers at once what waits in the inbox (on this thread; nothing while a delivery runs): what
  // was posted here before the call has reached the sessions when it returns.
  void deliver_pending();
  // Whether a delivery runs (then deliver_pending() does nothing).
  bool delivering() const noexcept { return in_drain_; }
  // Ends buffering; frames of the shared history `epoch_tag` (shared_epoch_tag()) up to
  // replayed_seq are skipped from now on.
  void set_live(const std::string& room, WsSession* session, std::uint64_t replayed_seq,
                std::uint32_t epoch_tag);
  void leave_local(const std::string& room, WsSession* session);
  // Lists the session under its user id (WsSession::user_id(), which must not change meanwhile).
  void add_user(WsSession* session);
  void remove_user(WsSession* session);
  std::size_t session_count() const noexcept { return sessions_.size(); }

  // Asks for session->flush() at the end of this loop turn (corking: one write for all it owes).
  void schedule_flush(WsSession* session);
  // Records a written message for the metrics (batched; published once per flush pass).
  void count_sent(const OutFrame& frame, std::chrono::steady_clock::time_point now,
                  std::chrono::steady_clock::time_point replayed_at) noexcept;
  // Adds what count_sent() gathered to the shared metrics.
  void publish_counts() noexcept;

  // Closes every session of `handler` with `code` (its shutdown); on this shard's thread.
  void close_all(const HandlerCore& handler, std::uint16_t code, std::string_view reason);
  // The sessions of `handler` here; on this shard's thread.
  std::size_t session_count(const HandlerCore& handler) const noexcept;
  // Once the loop has stopped for good (Hub::stop() without Handler::shutdown() first): ends
  // every session still here, without a close handshake; its on_disconnect runs. On the thread
  // that joined the loop's.
  void finish_all();
  // A session's on_disconnect to run once the hook now running on this thread has returned (the
  // application closed a socket from inside a hook: a lock it holds there is free again by then).
  // Run from a handler of its own, or by finish_all() once the loop has stopped.
  void defer_disconnect(std::shared_ptr<WsSession> session);
  // A copy of the session table, for loops whose calls may end sessions (and so erase them).
  std::vector<std::shared_ptr<WsSession>> all_sessions() const;

  // A receive buffer shared by every socket of this thread (sockets read into it, so an idle socket
  // owns no buffer). kReadBufferSize is the most one read takes.
  static constexpr std::size_t kReadBufferSize = std::size_t{64} * 1024;
  char* read_buffer() noexcept { return read_buffer_.get(); }
  // A send buffer shared the same way: the small frames a socket owes are copied into it and go out
  // in one send(), which costs the kernel less than a gather write of many small pieces (hot room:
  // about 20 % more deliveries per core, see ARCHITECTURE.md). kWriteBufferSize bounds one copy.
  static constexpr std::size_t kWriteBufferSize = std::size_t{64} * 1024;
  char* write_buffer() noexcept { return write_buffer_.get(); }

  // Starts the keepalive sweep (ping, pong timeout, close deadlines): every session is visited once
  // per `period`, a slice of them every period / kSweepSlices, so a thread with many sockets never
  // stalls for a whole pass (about 0.2 µs per session: 100,000 sessions would hold the loop for
  // ~20 ms at once).
  static constexpr unsigned kSweepSlices = 10;
  void start_sweep(std::chrono::milliseconds period);
  void stop_sweep();

  // A connection of this thread that is reading an HTTP request (before its upgrade, or between a
  // keep-alive connection's requests) or being sent a response. http_session.cpp keeps them in
  // http_waiting() and has one evict() itself (close) when a new one would pass
  // HandlerConfig::max_http_waiting: descriptors held by silent or slow clients are bounded.
  class HttpWaiter {
   public:
    virtual ~HttpWaiter() = default;
    virtual void evict() = 0;

   protected:
    HttpWaiter() = default;
    HttpWaiter(const HttpWaiter&) = default;
    HttpWaiter(HttpWaiter&&) = default;
    HttpWaiter& operator=(const HttpWaiter&) = default;
    HttpWaiter& operator=(HttpWaiter&&) = default;
  };
  // The thread's waiting connections, the one that has waited longest first, and how many each
  // client address has (by client_address_key: an IPv6 client by its /64).
  class HttpWaiting {
   public:
    using Slot = std::list<std::pair<HttpWaiter*, std::string>>::iterator;
    Slot add(HttpWaiter* waiter, const std::string& client);
    void remove(Slot slot) noexcept;
    void touch(Slot slot) noexcept;  // now the newest
    std::size_t size() const noexcept { return waiting_.size(); }
    // The one to close for a new one: of the kLookedAt that have waited longest, the one whose
    // address has the most connections waiting (the longest waiting of them): a client address
    // holding many pushes out its own before one of another address.
    static constexpr std::size_t kLookedAt = 64;
    HttpWaiter* victim() const;

   private:
    std::list<std::pair<HttpWaiter*, std::string>> waiting_;
    std::unordered_map<std::string, std::size_t> per_address_;
  };
  HttpWaiting& http_waiting() noexcept { return http_waiting_; }

 private:
  struct Member {
    WsSession* session;
    std::uint64_t min_seq;  // frames of this pod's own history up to it were replayed already
    bool buffering;
    std::uint32_t min_shared_epoch = 0;  // the shared history min_shared_seq counts in
    std::uint64_t min_shared_seq = 0;    // likewise for the shared history (after a recovery)
  };
  struct Delivery {
    FramePtr frame;
    std::string user;
    enum class Kind : std::uint8_t { room, all, user } kind;
  };
  void post_delivery(Delivery delivery);
  void drain_inbox();
  class PositionNames;
  void flush_dirty();
  void arm_sweep();
  void on_sweep();

  HubCore& hub_;
  unsigned index_;
  // Before context_: connections destroyed with the loop's pending handlers still leave it.
  HttpWaiting http_waiting_;
  boost::asio::io_context context_;
  boost::asio::steady_timer sweep_timer_;
  std::chrono::milliseconds sweep_period_{1000};
  bool sweeping_ = false;
  std::size_t sweep_bucket_ = 0;                         // the next slice starts at this bucket
  std::vector<std::shared_ptr<WsSession>> sweep_slice_;  // kept for its capacity
  std::vector<std::shared_ptr<WsSession>> deferred_disconnects_;  // see defer_disconnect()
  void run_deferred_disconnects();
  static constexpr std::chrono::seconds kEvictionPeriod{60};  // idle-room eviction (shard 0)
  std::chrono::steady_clock::time_point last_eviction_ = std::chrono::steady_clock::now();
  // Keyed by the session's connection id (a view of its own id_, which outlives the entry), so
  // that Hub::send_to_connection() finds a socket without another table. Changed on this shard's
  // thread only, under sessions_mutex_, which find_session() takes from other threads.
  std::unordered_map<std::string_view, std::shared_ptr<WsSession>> sessions_;
  mutable std::mutex sessions_mutex_;
  std::unordered_map<std::string, std::vector<Member>> rooms_;
  // A user's sessions on this loop. Keys view the session's own user_id_, which outlives the
  // entry (added in WsSession::start(), removed when it detaches): no copy of the id per socket.
  std::unordered_multimap<std::string_view, WsSession*> users_;
  // Deliveries waiting for this loop at most; past it new ones are dropped (metric reason
  // "overload"). A loop drains its whole inbox each turn, so this is reached only when the thread
  // stalls for a long time under a flood.
  static constexpr std::size_t kMaxInbox = std::size_t{1} << 20U;
  mutable std::mutex inbox_mutex_;
  std::vector<Delivery> inbox_;     // guarded by inbox_mutex_
  bool drain_posted_ = false;       // guarded by inbox_mutex_
  bool in_drain_ = false;           // drain_inbox() runs
  std::vector<Delivery> draining_;  // this thread's batch, kept for its capacity
  // A room's numbered frames not delivered yet (see PositionNames): the lowest number, in which
  // history (`mixed`: frames of two, so no position can be named).
  struct Undelivered {
    std::uint64_t seq;
    std::uint32_t epoch_tag;
    bool local;
    bool mixed = false;
  };
  // What the batch and the inbox hold of each room from a batch index on: read once per batch and
  // once per inbox entry (a flood of global messages made each of them read the whole batch).
  // Keys view the frames' own room names (the batch and the inbox keep them until it ends).
  std::optional<Undelivered> undelivered(std::string_view room, std::size_t batch_index);
  static Undelivered merged(const Undelivered& a, const Undelivered& b);
  bool batch_indexed_ = false;
  // room -> (batch index, what the batch holds of the room from that index on), by index.
  std::unordered_map<std::string_view, std::vector<std::pair<std::size_t, Undelivered>>>
      batch_rooms_;
  std::unordered_map<std::string_view, Undelivered> inbox_rooms_;  // what the inbox gained
  std::size_t inbox_read_ = 0;
  std::vector<std::shared_ptr<WsSession>> dirty_;
  bool flush_scheduled_ = false;
  std::unique_ptr<char[]> read_buffer_;
  std::unique_ptr<char[]> write_buffer_;
  // Batched metrics: plain counters on this thread, added to the shared atomics once per flush
  // pass.
  std::uint64_t sent_pending_ = 0;
  std::array<std::uint64_t, 15> latency_pending_{};
  std::uint64_t latency_sum_pending_ns_ = 0;
};

}  // namespace realtime::detail
