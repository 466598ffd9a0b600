// Parsing of Redis connection URLs: redis://[user:pass@]host[:port][/db].
//
// Pure functions, no I/O; safe to call from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace realtime::detail {

inline constexpr std::uint16_t kDefaultRedisPort = 6379;

// Where and how to reach one Redis server. `host` is a host name or an IP literal (IPv6 without
// brackets). `username` and `password` are percent-decoded; an empty password means no AUTH, an
// empty username with a password means the legacy `AUTH password`.
struct RedisUrl {
  std::string host = "127.0.0.1";
  std::uint16_t port = kDefaultRedisPort;
  std::string username;
  std::string password;
  int db = 0;

  friend bool operator==(const RedisUrl&, const RedisUrl&) = default;
};

// Either a URL or a human-readable reason why the text is not one.
struct RedisUrlParseResult {
  std::optional<RedisUrl> url;
  std::string error;  // empty when `url` is set

  explicit operator bool() const noexcept { return url.has_value(); }
};

// Accepts:
//   redis://host                    port 6379, db 0
//   redis://host:port/db
//   redis://:password@host          legacy AUTH with a password only
//   redis://user:password@host      ACL user (Redis 6+)
//   redis://[::1]:6379              IPv6 literal in brackets
// User and password may be percent-encoded (%40 for '@', %3A for ':', %2F for '/').
// Refuses other schemes (rediss:// included: no TLS), query strings, bad ports and db numbers.
RedisUrlParseResult parse_redis_url(std::string_view text);

// The URL back as text with the password masked, for logs: redis://user:***@host:port/db.
std::string to_redacted_string(const RedisUrl& url);

}  // namespace realtime::detail
