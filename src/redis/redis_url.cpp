#include "redis/redis_url.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>

namespace realtime::detail {
namespace {

// Large enough for any real `databases` setting; keeps the value an int with room to spare.
constexpr int kMaxDb = 1'000'000;

RedisUrlParseResult fail(std::string message) {
  return RedisUrlParseResult{std::nullopt, std::move(message)};
}

bool iequals_prefix(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[i])) != prefix[i]) return false;
  }
  return true;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> percent_decode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return std::nullopt;
    const int hi = hex_value(in[i + 1]);
    const int lo = hex_value(in[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

bool valid_host_name(std::string_view host) {
  return std::all_of(host.begin(), host.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '.' || c == '_';
  });
}

bool valid_ipv6(std::string_view host) {
  return std::all_of(host.begin(), host.end(), [](char c) {
    return std::isxdigit(static_cast<unsigned char>(c)) != 0 || c == ':' || c == '.' || c == '%';
  });
}

template <class Int>
bool parse_decimal(std::string_view text, Int& out) {
  if (text.empty() ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && ptr == text.data() + text.size();
}

}  // namespace

RedisUrlParseResult parse_redis_url(std::string_view text) {
  constexpr std::string_view kScheme = "redis://";
  if (text.empty()) return fail("empty Redis URL");
  if (iequals_prefix(text, "rediss://")) {
    return fail(
        "rediss:// (TLS) is not supported; use redis:// (through a TLS tunnel for a Redis that "
        "requires TLS)");
  }
  if (!iequals_prefix(text, kScheme)) {
    return fail("Redis URL must start with redis:// (got '" + std::string(text) + "')");
  }
  std::string_view rest = text.substr(kScheme.size());
  if (rest.find_first_of("?#") != std::string_view::npos) {
    return fail("query strings and fragments are not supported in a Redis URL");
  }

  RedisUrl url;

  // User info ends at the last '@': none can appear in host, port or db, so a password holding an
  // unencoded '@' or '/' still parses.
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const auto colon = userinfo.find(':');
    if (colon == std::string_view::npos) {
      return fail(
          "Redis URL user info needs a ':' (redis://:password@host or "
          "redis://user:password@host)");
    }
    auto user = percent_decode(userinfo.substr(0, colon));
    auto pass = percent_decode(userinfo.substr(colon + 1));
    if (!user || !pass) return fail("bad percent-encoding in Redis URL user info");
    if (pass->empty() && !user->empty()) return fail("Redis URL has a user but no password");
    url.username = std::move(*user);
    url.password = std::move(*pass);
  }

  std::string_view authority = rest;
  std::string_view path;
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    authority = rest.substr(0, slash);
    path = rest.substr(slash + 1);
  }

  std::string_view host;
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return fail("unterminated '[' in Redis URL host");
    host = authority.substr(1, close - 1);
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return fail("unexpected text after ']' in Redis URL host");
      port_text = after.substr(1);
      if (port_text.empty()) return fail("empty port in Redis URL");
    }
    if (host.empty() || !valid_ipv6(host) || host.find(':') == std::string_view::npos) {
      return fail("bad IPv6 address in Redis URL: '" + std::string(host) + "'");
    }
  } else {
    const auto colon = authority.find(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.find(':') != std::string_view::npos) {
        return fail("IPv6 addresses in a Redis URL must be in brackets: redis://[::1]:6379");
      }
      if (port_text.empty()) return fail("empty port in Redis URL");
    }
    if (host.empty()) return fail("Redis URL has no host");
    if (!valid_host_name(host)) return fail("bad host in Redis URL: '" + std::string(host) + "'");
  }
  url.host = std::string(host);

  if (!port_text.empty()) {
    unsigned port = 0;
    if (!parse_decimal(port_text, port) || port == 0 ||
        port > std::numeric_limits<std::uint16_t>::max()) {
      return fail("bad port in Redis URL: '" + std::string(port_text) + "' (1 to 65535)");
    }
    url.port = static_cast<std::uint16_t>(port);
  }

  if (!path.empty()) {
    int db = 0;
    if (!parse_decimal(path, db) || db > kMaxDb) {
      return fail("bad database number in Redis URL: '" + std::string(path) + "'");
    }
    url.db = db;
  }
  return RedisUrlParseResult{std::move(url), {}};
}

std::string to_redacted_string(const RedisUrl& url) {
  std::string out = "redis://";
  if (!url.password.empty()) {
    out += url.username;
    out += ":***@";
  }
  if (url.host.find(':') != std::string::npos) {
    out += '[' + url.host + ']';
  } else {
    out += url.host;
  }
  out += ':' + std::to_string(url.port);
  out += '/' + std::to_string(url.db);
  return out;
}

}  // namespace realtime::detail
