// How a message reaches every member of its room: on this pod only (LocalBroadcaster) or on every
// pod of the cluster (RedisBroadcaster).
//
// Thread safety: implementations are called from any I/O thread and from the application's threads.
#pragma once

#include <string>

#include "realtime/hub.hpp"
#include "realtime/message.hpp"

namespace realtime {

class Broadcaster {
 public:
  virtual ~Broadcaster() = default;
  // Delivers msg to its room (or to everyone when msg.room is empty) on every pod this broadcaster
  // reaches; this pod's sockets get it at once. Assigns the id; returns it.
  virtual std::string publish(Message msg) = 0;
  // Delivers msg to every socket of user_id on every pod this broadcaster reaches.
  virtual std::string publish_to_user(const std::string& user_id, Message msg) = 0;
  // True when the broadcaster can deliver; otherwise sets *reason (for /readyz).
  virtual bool ready(std::string* reason) const {
    (void)reason;
    return true;
  }
};

// Single pod: publishing is delivering through the hub.
class LocalBroadcaster final : public Broadcaster {
 public:
  explicit LocalBroadcaster(Hub& hub) : hub_(hub) {}
  std::string publish(Message msg) override { return hub_.broadcast(std::move(msg)); }
  std::string publish_to_user(const std::string& user_id, Message msg) override {
    return hub_.send_to_user(user_id, std::move(msg));
  }

 private:
  Hub& hub_;
};

}  // namespace realtime
