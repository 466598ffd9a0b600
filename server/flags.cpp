#include "flags.hpp"

#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <thread>
#include <utility>

#include <CLI/CLI.hpp>
#include <arpa/inet.h>
#include <netinet/in.h>

namespace realtime::server {
namespace {

[[noreturn]] void bad_value(const std::string& flag, const std::string& why) {
  std::fprintf(stderr, "realtime-server: invalid value for %s: %s\n", flag.c_str(), why.c_str());
  std::exit(2);
}

// "HOST:PORT", "[v6]:PORT" or ":PORT".
void parse_listen(const std::string& text, Flags& flags) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) bad_value("--listen", "expected HOST:PORT, got '" + text + "'");
  std::string host = text.substr(0, colon);
  const std::string port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host.empty()) host = "0.0.0.0";
  // An IP literal (or localhost), as the server binds without resolving names.
  in6_addr parsed{};
  if (host != "localhost" && inet_pton(AF_INET, host.c_str(), &parsed) != 1 &&
      inet_pton(AF_INET6, host.c_str(), &parsed) != 1) {
    bad_value("--listen", "host must be an IP address or localhost, got '" + host + "'");
  }
  char* end = nullptr;
  const long value = port.empty() ? -1 : std::strtol(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || value < 0 || value > 65535) {
    bad_value("--listen", "port must be 0 to 65535, got '" + port + "'");
  }
  flags.listen_host = host;
  flags.listen_port = static_cast<std::uint16_t>(value);
}

// An --allowed-origins entry as browsers send Origin (the server compares them exactly): "*",
// "null", or scheme://host[:port] with the scheme and host in lower case and no default port.
// Anything else could never match: refused.
std::string browser_origin(const std::string& entry) {
  if (entry == "*" || entry == "null") return entry;
  const auto refuse = [&] {
    bad_value("--allowed-origins", "'" + entry +
                                       "' is not an origin: scheme://host[:port], with no path or "
                                       "trailing '/', as browsers send it (or '*', 'null')");
  };
  const auto sep = entry.find("://");
  if (sep == std::string::npos || sep == 0) refuse();
  std::string origin;
  for (char c : entry) {
    if (c == '/' && origin.size() > sep + 2) refuse();  // a path, or a trailing '/'
    if (c == '?' || c == '#' || c == '@' || c == ' ' || c == '\t') refuse();
    origin += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  }
  if (origin.size() == sep + 3) refuse();  // no host
  for (const auto& [scheme, port] :
       {std::pair<std::string_view, std::string_view>{"http", ":80"}, {"https", ":443"}}) {
    if (origin.compare(0, sep, scheme) == 0 && sep == scheme.size() && origin.ends_with(port)) {
      origin.resize(origin.size() - port.size());
    }
  }
  return origin;
}

}  // namespace

Flags parse_flags(int argc, char** argv) {
  Flags flags;
  CLI::App app{
      "realtime-server: WebSocket rooms, presence and broadcast; scales out through Redis"};
  app.option_defaults()->always_capture_default();
  std::string listen = "0.0.0.0:8080";
  std::string allowed_origins;
  const auto env = [](const char* name) { return std::string("REALTIME_") + name; };

  app.add_option("--listen", listen, "HOST:PORT to listen on; port 0 picks a free port")
      ->envname(env("LISTEN"));
  app.add_option("--redis", flags.redis, "redis://[user:pass@]host:port[/db]; unset: single pod")
      ->envname(env("REDIS"));
  auto* pod_id = app.add_option("--pod-id", flags.pod_id,
                                "name of this pod (default: host name + pid + a random tag)")
                     ->envname(env("POD_ID"));
  app.add_option("--threads", flags.threads,
                 "I/O threads; 0: one per CPU this process may use (its CPU affinity, capped by "
                 "its cgroup's CPU quota)")
      ->envname(env("THREADS"))
      ->check(CLI::Range(0U, 1024U));
  app.add_flag("--auth-required", flags.auth_required, "every WebSocket must carry a valid JWT")
      ->envname(env("AUTH_REQUIRED"));
  app.add_option("--jwt-secret", flags.jwt_secret, "HS256 key")->envname(env("JWT_SECRET"));
  app.add_option("--jwt-public-key", flags.jwt_public_key_file,
                 "PEM file with an RS256/ES256 public key")
      ->envname(env("JWT_PUBLIC_KEY"));
  app.add_option("--jwt-issuer", flags.jwt_issuer, "required iss")->envname(env("JWT_ISSUER"));
  app.add_option("--jwt-audience", flags.jwt_audience, "required aud")
      ->envname(env("JWT_AUDIENCE"));
  app.add_option("--api-key", flags.api_key,
                 "required by POST /api/publish as 'Authorization: Bearer K'")
      ->envname(env("API_KEY"));
  app.add_option("--max-connections", flags.max_connections, "per pod; past it upgrades get 503")
      ->envname(env("MAX_CONNECTIONS"))
      ->check(CLI::Range(std::size_t{1}, std::size_t{10000000}));
  app.add_option("--max-connections-per-ip", flags.max_connections_per_ip,
                 "per client address; past it upgrades get 429 (0: no cap; keep 0 behind a proxy)")
      ->envname(env("MAX_CONNECTIONS_PER_IP"))
      ->check(CLI::Range(std::size_t{0}, std::size_t{10000000}));
  app.add_option("--handshake-timeout", flags.handshake_timeout,
                 "seconds a client has to send each HTTP request and to take each response")
      ->envname(env("HANDSHAKE_TIMEOUT"))
      ->check(CLI::Range(1U, 3600U));
  app.add_option("--max-message-bytes", flags.max_message_bytes,
                 "larger client frames close with 1009")
      ->envname(env("MAX_MESSAGE_BYTES"))
      ->check(CLI::Range(std::size_t{64}, std::size_t{64} << 20));
  app.add_option("--rate-limit", flags.rate_limit, "messages per second per connection")
      ->envname(env("RATE_LIMIT"))
      ->check(CLI::Range(0.001, 1e9));
  app.add_option("--rate-burst", flags.rate_burst, "token bucket size")
      ->envname(env("RATE_BURST"))
      ->check(CLI::Range(1.0, 1e9));
  app.add_option("--connect-rate", flags.connect_rate,
                 "sockets per second a client (a token's user; an address, with "
                 "--max-connections-per-ip) may open, per pod; 0: no limit")
      ->envname(env("CONNECT_RATE"))
      ->check(CLI::Range(0.0, 1e9));
  app.add_option("--connect-burst", flags.connect_burst, "its bucket size")
      ->envname(env("CONNECT_BURST"))
      ->check(CLI::Range(1.0, 1e9));
  app.add_option("--history-size", flags.history_size,
                 "messages kept per room for last_id recovery")
      ->envname(env("HISTORY_SIZE"))
      ->check(CLI::Range(std::size_t{0}, std::size_t{100000}));
  app.add_option("--history-bytes", flags.history_bytes,
                 "memory the rooms' histories may hold; past it the least recently used go")
      ->envname(env("HISTORY_BYTES"))
      ->check(CLI::Range(std::size_t{1} << 16, std::size_t{1} << 40));
  app.add_option("--allowed-origins", allowed_origins,
                 "comma list of allowed browser Origins; '*' for any (default: same origin)")
      ->envname(env("ALLOWED_ORIGINS"));
  app.add_option("--ping-interval", flags.ping_interval, "seconds between WebSocket pings")
      ->envname(env("PING_INTERVAL"))
      ->check(CLI::Range(1U, 86400U));
  app.add_option("--pong-timeout", flags.pong_timeout,
                 "seconds of silence before a socket is closed")
      ->envname(env("PONG_TIMEOUT"))
      ->check(CLI::Range(1U, 86400U));
  app.add_option("--send-queue-bytes", flags.send_queue_bytes,
                 "unsent bytes past which a client is a slow consumer (closed with 1013)")
      ->envname(env("SEND_QUEUE_BYTES"))
      ->check(CLI::Range(std::size_t{1024}, std::size_t{1} << 34));
  app.add_option("--log-format", flags.log_format, "text or json")
      ->envname(env("LOG_FORMAT"))
      ->check(CLI::IsMember({"text", "json"}));
  // "warning" is how the log lines name the level: accepted too.
  app.add_option("--log-level", flags.log_level,
                 "trace, debug, info, warn (or warning), error, critical or off")
      ->envname(env("LOG_LEVEL"))
      ->check(
          CLI::IsMember({"trace", "debug", "info", "warn", "warning", "error", "critical", "off"}));
  app.set_version_flag("--version", std::string("realtime-server ") + REALTIME_VERSION,
                       "print the version and exit");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::printf("%s", app.help().c_str());
    std::exit(0);
  } catch (const CLI::CallForVersion& version) {
    std::printf("%s\n", version.what());
    std::exit(0);
  } catch (const CLI::ParseError& error) {
    std::fprintf(stderr, "realtime-server: %s\nRun with --help for the flags.\n", error.what());
    std::exit(2);
  }

  parse_listen(listen, flags);
  const char* redis_source = "--redis";
  if (flags.redis.empty()) {
    if (const char* url = std::getenv("REDIS_URL"); url != nullptr) {
      flags.redis = url;
      redis_source = "REDIS_URL";
    }
  }
  // The seed's REDIS_URL is an address, host:port, without a scheme.
  if (!flags.redis.empty() && flags.redis.find("://") == std::string::npos) {
    flags.redis = "redis://" + flags.redis;
  }
  if (flags.redis.rfind("rediss://", 0) == 0) {
    bad_value(redis_source,
              "rediss:// (TLS) is not supported: point it at a local TLS tunnel's redis:// "
              "address (docs/OPERATIONS.md)");
  }
  if (!flags.redis.empty() && flags.redis.rfind("redis://", 0) != 0) {
    bad_value(redis_source, "expected redis://[user:pass@]host:port[/db] or host:port");
  }
  std::size_t start = 0;
  while (start <= allowed_origins.size() && !allowed_origins.empty()) {
    const auto comma = allowed_origins.find(',', start);
    std::string origin = allowed_origins.substr(
        start, comma == std::string::npos ? std::string::npos : comma - start);
    while (!origin.empty() && origin.front() == ' ') origin.erase(origin.begin());
    while (!origin.empty() && origin.back() == ' ') origin.pop_back();
    if (origin.empty()) bad_value("--allowed-origins", "empty entry in '" + allowed_origins + "'");
    flags.allowed_origins.push_back(browser_origin(origin));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  // No ':' (it separates the parts of Redis key names: pod "a:rooms" would be pod "a"'s rooms).
  if (pod_id->count() > 0 && flags.pod_id.empty()) {
    bad_value("--pod-id", "1 to 128 characters of A-Z a-z 0-9 _ - .");
  }
  for (char c : flags.pod_id) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.';
    if (!ok || flags.pod_id.size() > 128) {
      bad_value("--pod-id", "1 to 128 characters of A-Z a-z 0-9 _ - .");
    }
  }
  // (CLI11's range check lets NaN through: no comparison with it is true.)
  if (!(flags.rate_limit >= 0.001 && flags.rate_limit <= 1e9)) {
    bad_value("--rate-limit", "a number from 0.001 to 1e9");
  }
  if (!(flags.rate_burst >= 1 && flags.rate_burst <= 1e9)) {
    bad_value("--rate-burst", "a number from 1 to 1e9");
  }
  if (!(flags.connect_rate >= 0 && flags.connect_rate <= 1e9)) {
    bad_value("--connect-rate", "a number from 0 (no limit) to 1e9");
  }
  if (!(flags.connect_burst >= 1 && flags.connect_burst <= 1e9)) {
    bad_value("--connect-burst", "a number from 1 to 1e9");
  }
  if (flags.pong_timeout <= flags.ping_interval) {
    bad_value("--pong-timeout", "must be longer than --ping-interval (" +
                                    std::to_string(flags.ping_interval) +
                                    " s): an idle socket would be closed before it is pinged");
  }
  if (flags.log_level == "warning") flags.log_level = "warn";
  if (flags.auth_required && flags.jwt_secret.empty() && flags.jwt_public_key_file.empty()) {
    bad_value("--auth-required", "needs --jwt-secret or --jwt-public-key");
  }
  if (!flags.jwt_secret.empty() && !flags.jwt_public_key_file.empty()) {
    bad_value("--jwt-secret", "give either --jwt-secret or --jwt-public-key, not both");
  }
  return flags;
}

}  // namespace realtime::server
