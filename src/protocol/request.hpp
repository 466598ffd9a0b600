// HTTP request targets and names: room rules, /ws paths, query strings. Pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/user_id.hpp"

namespace realtime::protocol {

inline constexpr std::size_t kMaxRoomLength = 128;
// 1 to 128 characters of A-Z a-z 0-9 _ - . :
bool is_valid_room(std::string_view room) noexcept;

// Percent-decoding of a query component ('+' is a space). nullopt on a malformed escape.
std::optional<std::string> percent_decode(std::string_view text);

// Query parameter `name` in `query` (the part after '?', without it): whether it is there (its
// first occurrence decides), and its value decoded (nullopt when absent or malformed).
struct QueryParam {
  bool present = false;
  std::optional<std::string> value;  // the first occurrence's
  bool repeated = false;             // the name occurs more than once
};
QueryParam find_query_param(std::string_view query, std::string_view name);

// The value of query parameter `name` in `query`, decoded; nullopt if absent or malformed.
std::optional<std::string> query_param(std::string_view query, std::string_view name);

// The parts of a request target.
struct Target {
  std::string_view path;   // before '?'
  std::string_view query;  // after '?', may be empty
};
Target split_target(std::string_view target) noexcept;

// A WebSocket target: "/ws" or "/ws/{room}" (room percent-decoded), with optional ?token= and
// ?last_id=.
struct WsTarget {
  enum class Kind : std::uint8_t { no_room, room, not_ws, bad_room } kind = Kind::not_ws;
  std::string room;
  std::optional<std::string> token;
  // ?token= present but not decodable (a bad percent escape): an invalid token, never no token.
  bool bad_token = false;
  std::optional<std::string> last_id;  // empty when present but not decodable
};
WsTarget parse_ws_target(std::string_view target);

// The target with the values of secret query parameters (token, access_token, api_key) replaced by
// "REDACTED", for logs.
std::string redact_target(std::string_view target);

// How much of a request target a log line keeps: enough to tell requests apart, while a flood of
// refused upgrades with 7 KiB query strings cannot fill the disk (the rest is counted, not kept).
inline constexpr std::size_t kMaxLoggedTarget = 256;
// redact_target, then cut to kMaxLoggedTarget bytes with a marker saying how many were left out.
std::string loggable_target(std::string_view target);

}  // namespace realtime::protocol
