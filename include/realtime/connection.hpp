// One client socket as the application sees it (in hooks).
//
// Owned by the server; the reference handed to a hook is valid for that call only: to answer a
// socket later (after an asynchronous check, say), keep its id() and call
// Hub::send_to_connection(id, msg), from any thread; it returns false once the socket is gone.
// Thread safety: a hook runs on the connection's own I/O thread, except on_disconnect for a socket
// still open when the Hub stops without Handler::shutdown() first, which runs on the thread in
// Hub::wait() once the I/O threads have ended; the accessors (rooms() too) may be used in the hook
// only. send() and close() may be called from any thread, on a reference that is still valid.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "realtime/message.hpp"

namespace realtime {

class Connection {
 public:
  virtual ~Connection() = default;
  // Unique in the cluster; URL-safe.
  virtual const std::string& id() const noexcept = 0;
  // The JWT subject, or the connection id when the socket is anonymous. Never client-chosen.
  virtual const std::string& user_id() const noexcept = 0;
  // The rooms the socket is in now; on the connection's I/O thread (in a hook) only.
  virtual std::vector<std::string> rooms() const = 0;
  // Queues msg for this socket alone (an id and timestamp are set when empty). Returns false once
  // the socket is closing or closed (in on_disconnect too); otherwise, called from another thread,
  // it hands msg to the socket's thread and returns true (a socket that closes meanwhile drops it).
  // Throws std::invalid_argument, queuing nothing, for a message Hub::broadcast() refuses (data
  // not one JSON value, a bad room name or id, a join, leave or auth type).
  virtual bool send(Message msg) = 0;
  // Closes the socket with a WebSocket close code: 1000-1003, 1007-1014 or 3000-4999 (the reason
  // is cut to 123 bytes of UTF-8). Any other code (0, the reserved 1004-1006 and 1015, ...) may
  // not be sent: throws std::invalid_argument and leaves the socket open. Its on_disconnect runs
  // once the hook that calls this (if any) has returned.
  virtual void close(std::uint16_t code, std::string_view reason) = 0;
};

}  // namespace realtime
