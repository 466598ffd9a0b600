// What a user id may be, header-only: the publish API's user ids (request.cpp) and token subjects
// (the auth library, which links no protocol code) are checked by the same rule.
#pragma once

#include <cstddef>
#include <string_view>

namespace realtime::protocol {

inline constexpr std::size_t kMaxUserIdBytes = 256;

// User ids (JWT sub, or connection ids) used in Redis channel names and keys: 1 to 256 bytes, no
// control characters (C0, DEL, C1).
constexpr bool is_valid_user_id(std::string_view user) noexcept {
  if (user.empty() || user.size() > kMaxUserIdBytes) return false;
  for (std::size_t i = 0; i < user.size(); ++i) {
    const auto u = static_cast<unsigned char>(user[i]);
    if (u < 0x20 || u == 0x7F) return false;
    // C1 controls, U+0080..U+009F, are 0xC2 0x80..0x9F in UTF-8.
    if (u == 0xC2 && i + 1 < user.size()) {
      const auto next = static_cast<unsigned char>(user[i + 1]);
      if (next >= 0x80 && next <= 0x9F) return false;
    }
  }
  return true;
}

}  // namespace realtime::protocol
