// The message envelope every realtime socket speaks:
// {"id","type","room","from","data","timestamp"}.
//
// A Message is a plain value type. Thread safety: none of its own; copy it to share it across
// threads. `data` holds raw JSON text (an object, usually) that is copied into the envelope
// verbatim, so it must be one valid JSON value; the factories below guarantee that, and the
// protocol decoder re-serialises whatever a client sent before it lands here. What the application
// builds itself is checked where it enters the library (Hub::broadcast, Hub::send_to_user, a
// Broadcaster's publish, Connection::send, an on_message rewrite): `data` that is not one JSON
// value, a `room` that breaks the room rule (1 to 128 characters of A-Z a-z 0-9 _ - . :), an `id`
// of the application's own that is not URL-safe (1 to 128 characters of A-Z a-z 0-9 - _ .: clients
// put the last id into their next URL) and the client command types are refused with
// std::invalid_argument before anything is sent.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace realtime {

enum class MessageType : std::uint8_t {
  chat,
  presence,
  notification,
  system,
  error,
  ping,
  pong,
  // Client-to-server commands; the server never sends them (the library refuses a message of
  // these types with std::invalid_argument).
  join,
  leave,
  auth,
};

// "chat", "presence", ... as they appear on the wire.
std::string_view to_string(MessageType type) noexcept;
// The inverse of to_string; nullopt for anything else.
std::optional<MessageType> parse_message_type(std::string_view text) noexcept;

enum class PresenceStatus : std::uint8_t { online, offline, away };
std::string_view to_string(PresenceStatus status) noexcept;
std::optional<PresenceStatus> parse_presence_status(std::string_view text) noexcept;

struct PresenceData {
  PresenceStatus status = PresenceStatus::online;
  std::string user_id;
};

using Clock = std::chrono::system_clock;

struct Message {
  std::string id;  // server-assigned when empty (the usual case); see above for one's own
  MessageType type = MessageType::chat;
  std::string room;  // empty: not about a room
  std::string from;  // empty: from the server
  std::string data;  // raw JSON value; empty means absent
  Clock::time_point timestamp{};
};

// `text` as a JSON string literal, quotes included, escaped as RFC 8259 requires (invalid UTF-8
// replaced): the safe way to put an application's text into `data` or `fields_json`, e.g.
// "{\"name\":" + json_string(name) + "}".
std::string json_string(std::string_view text);

// Factories. All set the timestamp to now.
// A message of type `system` whose data is {"event": event, ...fields}: unlike the seed's
// SystemMessage(type, data), which makes a message of the type it is given, this one is always of
// type `system`, and `event` names it inside data (for another type, set Message::type and data
// yourself). `fields_json` is the inside of a JSON object without braces (e.g.
// R"("connection_id":"c1")", or "\"name\":" + json_string(name)) or empty; throws
// std::invalid_argument when the data it makes is not one valid JSON object.
Message system_message(std::string_view event, std::string_view fields_json = {});
// An `error` message with data {"error": text, "code": code}, and "room" when `room` is not empty:
// the room the refused request was about (a join past the limit, chat to a room the socket is
// not in, a chat not delivered).
Message error_message(std::string_view code, std::string_view text, std::string_view room = {});
// A `presence` message with data {"status": ..., "user_id": ...} for `room`.
Message presence_message(std::string_view room, const PresenceData& presence);
// A `chat` message with data {"text": text}.
Message chat_message(std::string_view room, std::string_view text);

// The JSON envelope of `msg`, as sent on a socket and on Redis.
std::string to_json(const Message& msg);

}  // namespace realtime
