// Close codes and error codes: the one table clients can rely on (mirrored in docs/PROTOCOL.md).
#pragma once

#include <cstdint>
#include <string_view>

namespace realtime {

// WebSocket close codes the server sends.
namespace close_code {
inline constexpr std::uint16_t normal = 1000;
inline constexpr std::uint16_t going_away = 1001;        // server shutting down
inline constexpr std::uint16_t protocol_error = 1002;    // RFC 6455 framing violation
inline constexpr std::uint16_t invalid_payload = 1007;   // text frame that is not UTF-8
inline constexpr std::uint16_t policy_violation = 1008;  // not sent by the library itself
inline constexpr std::uint16_t message_too_big = 1009;   // frame over --max-message-bytes
inline constexpr std::uint16_t internal_error = 1011;
inline constexpr std::uint16_t try_again_later = 1013;  // slow consumer: send queue overflowed
inline constexpr std::uint16_t token_expired = 4001;    // JWT expired and was not refreshed
}  // namespace close_code

// Codes carried in error envelopes: {"type":"error","data":{"error":text,"code":code}}.
namespace error_code {
inline constexpr std::string_view invalid_json = "invalid_json";
inline constexpr std::string_view invalid_message = "invalid_message";
inline constexpr std::string_view unknown_type = "unknown_type";
inline constexpr std::string_view bad_room = "bad_room";
inline constexpr std::string_view not_in_room = "not_in_room";
inline constexpr std::string_view forbidden = "forbidden";
inline constexpr std::string_view rate_limited = "rate_limited";
inline constexpr std::string_view unsupported = "unsupported";
inline constexpr std::string_view too_many_rooms = "too_many_rooms";
// A join (or the URL's room) that the token's "rooms" claim or HandlerConfig::may_join refuses.
inline constexpr std::string_view room_not_allowed = "room_not_allowed";
inline constexpr std::string_view invalid_token = "invalid_token";
inline constexpr std::string_view unavailable = "unavailable";
}  // namespace error_code

}  // namespace realtime
