// An outgoing WebSocket frame, encoded once and shared by every socket that receives it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "realtime/message.hpp"

namespace realtime::detail {

struct OutFrame {
  std::string bytes;      // header + payload of one unmasked frame
  std::string room;       // routing: the room it goes to (empty for user and global messages)
  std::uint64_t seq = 0;  // position in its room's history; 0 when not a room message
  std::chrono::steady_clock::time_point created;  // for the broadcast latency histogram
  bool is_message = true;  // false for control frames (ping, pong, close): not counted as sent
};
using FramePtr = std::shared_ptr<const OutFrame>;

// Encodes msg as one text frame (its JSON envelope behind a frame header).
FramePtr make_frame(const Message& msg, std::uint64_t seq = 0);
// A control frame (ping, pong or close) ready to queue.
FramePtr make_control_frame(std::string bytes);

}  // namespace realtime::detail
