#include "protocol/request.hpp"

#include <algorithm>
#include <array>
#include <string>
#include <utility>

namespace realtime::protocol {
namespace {

constexpr std::array<bool, 256> make_room_chars() {
  std::array<bool, 256> t{};
  for (int c = 0; c < 256; ++c) {
    t[static_cast<std::size_t>(c)] = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                                     (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.' ||
                                     c == ':';
  }
  return t;
}
constexpr auto kRoomChars = make_room_chars();

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// '+' means a space only in a query component; in a path it is itself.
std::optional<std::string> decode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      const int hi = hex_value(text[i + 1]);
      const int lo = hex_value(text[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

bool equals_ignore_case(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

bool is_secret_param(std::string_view raw_name) {
  const auto name = decode(raw_name, true);
  if (!name) return false;
  for (std::string_view secret : {"token", "access_token", "api_key"}) {
    // Case-insensitive on purpose: redacting too much in a log costs nothing.
    if (equals_ignore_case(*name, secret)) return true;
  }
  return false;
}

// Calls f(name, value, has_equals) for each '&'-separated parameter, raw (still encoded); stops
// when f returns false.
template <class F>
void for_each_param(std::string_view query, F&& f) {
  std::size_t pos = 0;
  while (pos <= query.size()) {
    // A '?' separates too: the seed's client appends "?last_id=..." to a URL that may carry
    // "?token=..." already. (No parameter of ours holds a raw '?'; one that must is escaped.)
    std::size_t end = query.find_first_of("&?", pos);
    if (end == std::string_view::npos) end = query.size();
    const std::string_view param = query.substr(pos, end - pos);
    const std::size_t eq = param.find('=');
    const bool keep_going = eq == std::string_view::npos
                                ? f(param, std::string_view{}, false)
                                : f(param.substr(0, eq), param.substr(eq + 1), true);
    if (!keep_going) return;
    pos = end + 1;
  }
}

}  // namespace

bool is_valid_room(std::string_view room) noexcept {
  if (room.empty() || room.size() > kMaxRoomLength) return false;
  for (const char c : room) {
    if (!kRoomChars[static_cast<unsigned char>(c)]) return false;
  }
  return true;
}

std::optional<std::string> percent_decode(std::string_view text) { return decode(text, true); }

QueryParam find_query_param(std::string_view query, std::string_view name) {
  QueryParam result;
  for_each_param(query, [&](std::string_view raw_name, std::string_view raw_value, bool) {
    const auto decoded_name = decode(raw_name, true);
    if (!decoded_name || *decoded_name != name) return true;
    if (result.present) {
      result.repeated = true;
      return false;
    }
    // The first occurrence decides, even when malformed: a later duplicate must not win.
    result.present = true;
    result.value = decode(raw_value, true);
    return true;
  });
  return result;
}

std::optional<std::string> query_param(std::string_view query, std::string_view name) {
  return find_query_param(query, name).value;
}

Target split_target(std::string_view target) noexcept {
  const std::size_t q = target.find('?');
  if (q == std::string_view::npos) return {target, {}};
  return {target.substr(0, q), target.substr(q + 1)};
}

WsTarget parse_ws_target(std::string_view target) {
  WsTarget result;
  const Target parts = split_target(target);
  constexpr std::string_view kPrefix = "/ws";
  const std::string_view path = parts.path;
  if (path.substr(0, kPrefix.size()) != kPrefix) return result;
  std::string_view rest = path.substr(kPrefix.size());
  if (rest.empty() || rest == "/") {
    result.kind = WsTarget::Kind::no_room;
  } else if (rest.front() != '/') {
    return result;  // "/wsx" is another path, not a room
  } else {
    rest.remove_prefix(1);
    auto room = decode(rest, false);
    // A '/' (raw, or decoded from %2F) fails the room rule, so "/ws/a/b" is a bad room, not a 404.
    if (!room || !is_valid_room(*room)) {
      result.kind = WsTarget::Kind::bad_room;
      return result;
    }
    result.kind = WsTarget::Kind::room;
    result.room = std::move(*room);
  }
  QueryParam token = find_query_param(parts.query, "token");
  result.token = std::move(token.value);
  // A second "token" is a credential the first does not account for (?token=&token=T would
  // otherwise be anonymous): refused, however they differ.
  result.bad_token = (token.present && !result.token) || token.repeated;
  // ?last_id= that is not decodable is a position this cluster never gave: the client is told
  // recovered: false, as for any unknown id (an empty one stands for it).
  QueryParam last_id = find_query_param(parts.query, "last_id");
  if (last_id.present) result.last_id = last_id.value.value_or(std::string());
  return result;
}

std::string redact_target(std::string_view target) {
  const Target parts = split_target(target);
  if (parts.query.empty()) return std::string(target);
  std::string out;
  out.reserve(target.size() + 16);
  out.append(parts.path);
  out.push_back('?');
  bool first = true;
  for_each_param(parts.query, [&](std::string_view name, std::string_view value, bool has_equals) {
    if (!first) out.push_back('&');
    first = false;
    out.append(name);
    if (has_equals) {
      out.push_back('=');
      out.append(is_secret_param(name) ? std::string_view("REDACTED") : value);
    }
    return true;
  });
  return out;
}

std::string loggable_target(std::string_view target) {
  const std::string redacted = redact_target(target);
  const std::size_t kept = std::min(redacted.size(), kMaxLoggedTarget);
  // Bytes outside printable ASCII percent-encoded: a text log line cannot be broken or forged by
  // a control character, NEL or U+2028 in the target (nor cut in the middle of a UTF-8 sequence).
  std::string out;
  out.reserve(kept + 32);
  for (std::size_t i = 0; i < kept; ++i) {
    const auto c = static_cast<unsigned char>(redacted[i]);
    if (c < 0x20 || c >= 0x7F) {
      constexpr std::string_view kHex = "0123456789ABCDEF";
      out += '%';
      out += kHex[c >> 4U];
      out += kHex[c & 0xFU];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (redacted.size() > kept) {
    out += "...[";
    out += std::to_string(redacted.size() - kept);
    out += " more bytes]";
  }
  return out;
}

}  // namespace realtime::protocol
