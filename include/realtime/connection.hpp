// One client socket as the application sees it (in hooks).
//
// Owned by the server; the reference handed to a hook is valid for that call only. Thread safety:
// a hook runs on the connection's own I/O thread, and the accessors (rooms() too) may be used
// there only; send() and close() may be called from any thread. To reach one socket later from
// elsewhere, keep its reference from on_connect until its on_disconnect (which runs once for every
// socket, also when the Hub stops), and guard that registry with a lock: send() and close() on it
// are safe from any thread.
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
  // Queues msg for this socket alone (an id and timestamp are set when empty). Returns false when
  // the socket is closing; called from another thread, it hands msg to the socket's thread and
  // returns true (a socket that closes meanwhile drops it).
  virtual bool send(Message msg) = 0;
  // Closes the socket with a WebSocket close code. Its on_disconnect runs once the hook that calls
  // this (if any) has returned.
  virtual void close(std::uint16_t code, std::string_view reason) = 0;
};

}  // namespace realtime
