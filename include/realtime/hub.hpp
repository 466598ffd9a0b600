// The Hub: this pod's rooms, sockets and I/O threads.
//
// A Hub owns N I/O threads, each running its own event loop (a "shard") with the sockets pinned to
// it and that shard's slice of every room. A broadcast is encoded once into an immutable WebSocket
// frame and handed to each shard that has members of the room; each shard writes it to its members,
// batching what every socket owes into one write per loop turn. See docs/ARCHITECTURE.md.
//
// Thread safety: every public member may be called from any thread; wait() called on one of the
// Hub's own I/O threads (from a hook) returns without waiting for that thread, and throws
// std::logic_error there before stop() (it would wait for good). The Hub must outlive
// the Handler and Broadcasters that use it, and must not be destroyed on one of its own I/O
// threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "realtime/message.hpp"
#include "realtime/metrics.hpp"

namespace realtime {

namespace detail {
class HubCore;
}

enum class LogLevel : std::uint8_t { debug, info, warning, error };
// Where the library's log lines go: the level and the line, without time stamp or prefix.
using LogSink = std::function<void(LogLevel level, std::string_view line)>;

struct HubOptions {
  unsigned threads = 0;            // I/O threads; 0 = default_thread_count()
  std::size_t history_size = 100;  // messages kept per room for last_id recovery
  std::string
      pod_id;  // names this pod, unique in the cluster; empty = host name + pid + a random tag
  // Memory the rooms' histories, and rooms without members, may hold on this pod. Past it the
  // least recently used are dropped (rooms without members first), so a recovery from them is
  // answered "not recovered". Counted as Metrics::room_retained_bytes.
  std::size_t history_bytes = std::size_t{256} << 20;
  // The seed's logger: the lines of this Hub's Handlers and RedisBroadcaster go to `log`, those
  // below `log_level` not made at all. Called on the thread that logs (an I/O thread, the Redis
  // thread, the application's), one call at a time; it must not block for long nor call into the
  // library. Empty: spdlog's default logger, as the server uses it (standard error).
  LogSink log = nullptr;
  LogLevel log_level = LogLevel::info;
};

// The default pod id: host name + "-" + process id + "-" + 4 random characters.
std::string default_pod_id();

// The I/O threads a Hub starts when HubOptions::threads is 0: the CPUs this process may use, that
// is those of its CPU affinity mask (sched_getaffinity), capped by its cgroup v2 CPU quota
// (`cpu.max`, quota / period rounded up) when one is set and readable; at least 1.
unsigned default_thread_count();

struct RoomCount {
  std::string room;
  std::size_t members = 0;
};

struct PresenceEntry {
  std::string user_id;
  PresenceStatus status = PresenceStatus::online;
};

class Hub {
 public:
  explicit Hub(HubOptions options = {});
  ~Hub();  // stops the threads and waits for them
  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;

  // Starts the I/O threads and returns. A Hub runs once: start() after stop() does nothing.
  void start();
  // Starts the I/O threads (if not started) and blocks until stop().
  void run();
  // Stops the event loops; idempotent. Sockets still open are dropped: close them first with
  // Handler::shutdown() for a graceful stop.
  void stop();
  // Blocks until the I/O threads have finished (also while run() waits for them on another
  // thread). After stop(), the sockets still open then end here: their on_disconnect runs.
  void wait();

  // Delivers msg to the sockets of this pod: the members of msg.room, or every socket when msg.room
  // is empty. Sets msg.id (when empty) and msg.timestamp (when unset). Returns the id. Once the
  // Hub has stopped, nothing is delivered or kept (the id is returned all the same).
  // Throws std::invalid_argument, delivering nothing, when msg.data is neither empty nor one valid
  // JSON value, msg.room is neither empty nor a valid room name, msg.id is neither empty nor
  // URL-safe (1 to 128 of A-Z a-z 0-9 - _ .), or msg.type is join, leave or auth (see
  // message.hpp); send_to_user() and send_to_connection() likewise.
  // A room message is kept in this pod's history for last_id recovery only when its id is left
  // empty: one given an id of its own is delivered as it is and never replayed. With a
  // RedisBroadcaster, a room's history is the shared one, which this local delivery does not
  // reach: publish room messages through the broadcaster (they reach every pod, and are
  // recovered), and keep broadcast() for what needs no recovery.
  // (A message to every socket, and one to a user, reaches a socket in a room with that room's
  // position in front of the id returned, "<epoch>-<seq>.g<tag><n>" for "<tag>-g<n>", so that a
  // client can resume the room from it: docs/PROTOCOL.md, "Ids".)
  std::string broadcast(Message msg);
  // Delivers msg to every socket of user_id on this pod. Returns the id, as broadcast() does.
  std::string send_to_user(const std::string& user_id, Message msg);
  // Queues msg for the one socket of this pod whose Connection::id() is connection_id, as
  // Connection::send() does: the way to answer a socket later, from any thread, without keeping
  // its Connection& past the hook (a socket that closed is simply not found). Returns false when
  // no such socket is open here (closed, closing, never was, or the Hub is not running); true when
  // msg was handed to it (dropped if the socket closes before its thread takes it).
  bool send_to_connection(std::string_view connection_id, Message msg);

  std::size_t connection_count() const noexcept;
  std::size_t room_count() const noexcept;
  std::vector<RoomCount> rooms() const;
  std::vector<PresenceEntry> presence(std::string_view room) const;
  unsigned thread_count() const noexcept;
  const std::string& pod_id() const noexcept;
  Metrics& metrics() noexcept;

  detail::HubCore& core() noexcept { return *core_; }

 private:
  std::unique_ptr<detail::HubCore> core_;
};

}  // namespace realtime
