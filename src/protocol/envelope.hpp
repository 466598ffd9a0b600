// The JSON envelope: decoding what clients (and the publish API, and Redis) send, encoding what the
// server sends. Pure functions, no I/O; safe to call from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "realtime/message.hpp"

namespace realtime::protocol {

inline constexpr std::size_t kMaxJsonDepth =
    32;  // deeper documents are refused (stack and CPU bound)
// The JSON parser reads up to this many bytes past the end of its input (SIMDJSON_PADDING). The
// decoders copy the input into a padded thread-local buffer unless told, through `readable_size`,
// that json.data()[0 .. json.size() + kJsonPadding) is readable memory (a buffer with spare room).
inline constexpr std::size_t kJsonPadding = 64;

enum class DecodeError : std::uint8_t {
  none,
  invalid_json,     // not JSON, or JSON nested deeper than kMaxJsonDepth
  not_an_object,    // valid JSON but not an object
  unknown_type,     // "type" missing, not a string, or not a known type
  invalid_message,  // a field of the wrong type or a bad value (presence status, empty token, ...)
};
// The wire code for an error envelope: "invalid_json", "unknown_type", "invalid_message".
std::string_view to_code(DecodeError error) noexcept;

// A message a client sent on its socket, checked for shape (not for permission).
struct ClientMessage {
  MessageType type = MessageType::chat;
  std::string room;  // "room" if present (not yet validated as a room name), else empty
  bool has_room = false;
  std::string data;                    // "data" re-serialised as minified JSON; empty if absent
  std::string token;                   // "token" of an auth message
  std::optional<std::string> last_id;  // "last_id" of a join message (recovery), when a string
  PresenceStatus status = PresenceStatus::online;  // data.status of a presence message
};

struct ClientDecodeResult {
  DecodeError error = DecodeError::none;
  std::string detail;  // human text for the error envelope
  ClientMessage message;
};
// Rules: an object with a string "type". chat: "data" optional, any JSON value (an object usually);
// "room" optional string. presence: data.status "online" | "away" (else invalid_message).
// join/leave: "room" required string. auth: "token" required non-empty string. ping: nothing else
// needed. Any other known type (pong, system, notification, error) decodes fine; the caller refuses
// it. Fields the client may not set ("id", "from", "timestamp") are ignored.
ClientDecodeResult decode_client_message(std::string_view json);
ClientDecodeResult decode_client_message(std::string_view json, std::size_t readable_size);

// Body of POST /api/publish: {"room": R, "type": T, "data": {...}} or {"room": R, "text": "..."}
// (= chat with data {"text": ...}) or {"user": U, ...}. Missing type = chat (notification when
// "user" is given). "data" must be an object when present, and not given with "text"; presence
// needs a room and presence data. Any other field is refused ("id", "from", "timestamp" are
// ignored).
struct PublishRequest {
  std::string room;  // empty: no room
  std::string user;  // empty: no user
  MessageType type = MessageType::chat;
  std::string data;  // minified JSON object, "{}" when absent
};
struct PublishDecodeResult {
  DecodeError error = DecodeError::none;
  std::string detail;
  PublishRequest request;
};
PublishDecodeResult decode_publish_request(std::string_view json);
PublishDecodeResult decode_publish_request(std::string_view json, std::size_t readable_size);

// A full envelope from elsewhere (Redis, another pod, another program). Requires a known "type";
// takes "id", "room", "from", "data", "timestamp" as given (timestamp parsed if RFC 3339, else
// now).
struct EnvelopeDecodeResult {
  DecodeError error = DecodeError::none;
  std::string detail;
  Message message;
};
EnvelopeDecodeResult decode_envelope(std::string_view json);
EnvelopeDecodeResult decode_envelope(std::string_view json, std::size_t readable_size);
// The data of a presence message, {"status": S, "user_id": U} (other members ignored); nullopt
// when it is not of that shape or S is not a status.
std::optional<PresenceData> decode_presence_data(std::string_view json);

// Appends the envelope of msg: keys in the order id, type, room, from, data, timestamp; room, from
// and data omitted when empty; id omitted when empty.
void append_envelope(std::string& out, const Message& msg);
// Appends s as a JSON string literal (quotes included), escaping as RFC 8259 requires.
void append_json_string(std::string& out, std::string_view s);
// RFC 3339, UTC, milliseconds: "2024-01-15T10:30:00.123Z".
std::string format_timestamp(Clock::time_point t);
void append_timestamp(std::string& out, Clock::time_point t);
// The inverse: "YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)" to UTC, the fraction truncated to
// milliseconds. nullopt when malformed or outside what Clock can represent.
std::optional<Clock::time_point> parse_timestamp(std::string_view text) noexcept;

}  // namespace realtime::protocol
