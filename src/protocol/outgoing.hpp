// Checks on what the application hands the library to send (Hub::broadcast, a broadcaster's
// publish, Connection::send, a hook's rewrite): the envelope copies `data` verbatim, so text that
// is not JSON, or a room name that breaks the rule, would reach clients as a broken message.
// Pure functions; safe to call from any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "realtime/message.hpp"

namespace realtime::protocol {

// True when `text` is exactly one JSON value (RFC 8259, UTF-8, nested at most kMaxJsonDepth),
// whitespace around it allowed. What a client's message is held to, less the re-serialisation.
bool is_json_value(std::string_view text);

// The longest id a message may carry (the server's own are at most ~60 characters).
inline constexpr std::size_t kMaxMessageIdBytes = 128;

// True when `id` may stand as a message's id: 1 to kMaxMessageIdBytes characters of A-Z a-z 0-9
// - _ . (URL-safe: clients put the last id they saw into their next URL as it is).
bool is_url_safe_id(std::string_view id) noexcept;

// join, leave and auth: what clients send, never the server.
bool is_client_command(MessageType type) noexcept;

// Why msg cannot be sent as it is, or empty when it can: `data` neither empty nor one JSON value,
// `room` neither empty nor a valid room name (is_valid_room), `id` neither empty nor
// is_url_safe_id, or a client command type (join, leave, auth), which the server never sends.
std::string outgoing_problem(const Message& msg);

// Throws std::invalid_argument naming `what` (e.g. "Hub::broadcast") and the problem when
// outgoing_problem(msg) is not empty.
void check_outgoing(const Message& msg, std::string_view what);

}  // namespace realtime::protocol
