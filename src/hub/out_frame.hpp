// An outgoing WebSocket frame, encoded once and shared by every socket that receives it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "realtime/message.hpp"

namespace realtime::detail {

struct OutFrame {
  std::string bytes;      // header + payload of one unmasked frame
  std::string room;       // routing: the room it goes to (empty for user and global messages)
  std::uint64_t seq = 0;  // position in its room's history; 0 when not a room message
  // For the broadcast latency histogram: when the message was broadcast on this pod (published
  // here, or received from Redis). Not set (time_point{}) for what is not a broadcast: a socket's
  // own messages (welcome, pong, errors) and a shared history's replay.
  std::chrono::steady_clock::time_point created;
  bool is_message = true;  // false for control frames (ping, pong, close): not counted as sent
  bool local_seq =
      false;  // seq is from this pod's own history (members may skip what they replayed)
  // For seq from a shared history (Redis): which one (shared_epoch_tag() of its epoch); 0
  // otherwise.
  std::uint32_t epoch_tag = 0;
  // A socket's own message (welcome, join answer, pong, error): kept when the socket leaves the
  // room it names, unlike the room's traffic.
  bool own = false;
};
using FramePtr = std::shared_ptr<const OutFrame>;

// A short tag of a shared history's epoch (never 0), so that a member can tell whether a frame's
// seq counts in the history it replayed from. Two epochs with one tag would be 1 in 2^32.
std::uint32_t shared_epoch_tag(std::string_view epoch) noexcept;

// Encodes msg as one text frame (its JSON envelope behind a frame header).
// (Mutable until it is shared: the caller may still set flags.)
std::shared_ptr<OutFrame> make_frame(const Message& msg, std::uint64_t seq = 0);
// make_frame() for a message to one socket (welcome, pong, errors): not a broadcast.
std::shared_ptr<OutFrame> make_direct_frame(const Message& msg);
// A text frame around an envelope that is already JSON (from the shared history).
std::shared_ptr<OutFrame> make_frame_from_json(std::string_view json, std::string room,
                                               std::uint64_t seq);
// A presence frame whose id names a room position of `epoch` before `seq` ("<epoch>-<n>.p<tag><k>")
// or none ("<tag>-p<k>", from a pod that did not know the room's position yet): a copy naming
// `seq` ("<epoch>-<seq>.p<tag><k>"); null when its id is of neither form, or names another history
// or a position not before `seq`.
FramePtr with_position(const OutFrame& frame, std::string_view epoch, std::uint64_t seq);
// A user notification, global broadcast or room message no history numbered, with a pod's own id
// ("<tag>-u<n>", "<tag>-g<n>", "<tag>-d<n>"): the suffix its id takes when it names a socket's
// room position (".u<tag><n>", ...); empty for any other id (another program's, say), which names
// none.
std::string position_suffix(const OutFrame& frame);
// The id of the envelope a frame holds (empty when none).
std::string_view frame_id(const OutFrame& frame);
// A frame whose id names a position of `epoch` at or after `seq` ("<epoch>-<s>.<kind><tag><n>",
// s >= seq): a copy naming the one before `seq`; null for any other.
FramePtr with_position_before(const OutFrame& frame, std::string_view epoch, std::uint64_t seq);
// A copy of the frame whose id is position + suffix (null when the frame holds no envelope).
FramePtr with_socket_position(const OutFrame& frame, std::string_view position,
                              std::string_view suffix);
// A control frame (ping, pong or close) ready to queue.
FramePtr make_control_frame(std::string bytes);

}  // namespace realtime::detail
