// realtime-server: wiring only. Parses the flags, builds a Hub and a Handler (and a Redis
// broadcaster when --redis is set), prints "listening on HOST:PORT", and shuts down gracefully on
// SIGTERM, SIGINT or SIGHUP.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>

#include <pthread.h>
#include <signal.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include "flags.hpp"
#include "protocol/envelope.hpp"
#include "realtime/handler.hpp"
#include "realtime/hub.hpp"
#include "realtime/redis_broadcaster.hpp"

namespace {

using realtime::server::Flags;

// Time the server gives its sockets to close after SIGTERM (the contract allows 10 s in all).
constexpr std::chrono::seconds kShutdownDeadline{5};

// %j in the JSON log pattern: the message as a JSON string body (escaped, no quotes).
class JsonMessageFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    std::string quoted;
    realtime::protocol::append_json_string(
        quoted, std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(quoted.data() + 1, quoted.data() + quoted.size() - 1);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessageFlag>();
  }
};

void setup_logging(const Flags& flags, const std::string& pod_id) {
  auto logger =
      std::make_shared<spdlog::logger>(pod_id, std::make_shared<spdlog::sinks::stderr_sink_mt>());
  // Times in UTC (the "Z"), whatever the machine's time zone; every line names the pod.
  auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  if (flags.log_format == "json") {
    formatter->add_flag<JsonMessageFlag>('j').set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","pod":"%n","msg":"%j"})");
  } else {
    formatter->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ [%n] %v");
  }
  logger->set_formatter(std::move(formatter));
  logger->set_level(spdlog::level::from_str(flags.log_level));
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
}

std::string read_file_or_exit(const std::string& path, const char* flag) {
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "realtime-server: invalid value for %s: cannot read '%s'\n", flag,
                 path.c_str());
    std::exit(2);
  }
  std::stringstream content;
  content << in.rdbuf();
  // (A directory opens, and reads as nothing; so does an empty file: no key, not "no JWT".)
  if (in.bad() || content.str().empty()) {
    std::fprintf(stderr, "realtime-server: invalid value for %s: '%s' holds no key\n", flag,
                 path.c_str());
    std::exit(2);
  }
  return content.str();
}

// Descriptors kept for everything but client sockets: standard streams, the listener, each loop's
// epoll, eventfd and timer (the I/O threads' and the Redis thread's), the Redis connections (two,
// and one publishing lane per I/O thread), files read at start.
constexpr std::size_t kDescriptorsReserved = 64;
constexpr std::size_t kDescriptorsReservedPerThread = 8;
// When the limit is short, this share of the remaining descriptors (1/32, at least 64) goes to
// HTTP requests not yet answered (probes, the API, upgrades being read and refused), unless
// HandlerConfig::max_http_waiting asks for fewer: enough for bursts of upgrades, little enough
// that a pod under a 20,000 limit still holds 19,000 sockets.
constexpr std::size_t kHttpShareDivisor = 32;
constexpr std::size_t kHttpShareMin = 64;

// Raises the soft limit on open files to the hard one (a common soft limit is 1024; the hard limit
// is usually far higher). Returns the soft limit in effect, or nullopt when there is none.
std::optional<std::size_t> raise_open_file_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return std::nullopt;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  if (limit.rlim_cur == RLIM_INFINITY) return std::nullopt;
  return static_cast<std::size_t>(limit.rlim_cur);
}

// Fits --max-connections and the HTTP requests in waiting into the open-file limit: past it
// accept() fails with EMFILE and every new socket, /healthz included, would wait unanswered.
// Lowered, the excess upgrades get the usual 503 "server at capacity" instead.
void fit_open_file_limit(realtime::HandlerConfig& config, unsigned threads) {
  const auto limit = raise_open_file_limit();
  if (!limit) return;
  const std::size_t reserved = kDescriptorsReserved + kDescriptorsReservedPerThread * threads;
  if (*limit >= reserved + config.max_connections + config.max_http_waiting) return;
  const std::size_t available = *limit > reserved ? *limit - reserved : 0;
  // The share, or what the connections leave when they fit.
  const std::size_t left =
      available > config.max_connections ? available - config.max_connections : 0;
  const std::size_t http = std::min(config.max_http_waiting,
                                    std::max({kHttpShareMin, available / kHttpShareDivisor, left}));
  const std::size_t connections = std::min(
      config.max_connections, std::max<std::size_t>(1, available - std::min(available, http)));
  config.max_http_waiting = http;
  if (connections == config.max_connections) return;  // only fewer requests may wait
  spdlog::warn(
      "the open-file limit ({} descriptors, RLIMIT_NOFILE; raised to the hard limit) is below what "
      "--max-connections {} needs: serving at most {} connections (and {} HTTP requests in "
      "waiting); upgrades past them get 503 \"server at capacity\". Raise the limit (ulimit -n, "
      "LimitNOFILE=, the container runtime's nofile) for more",
      *limit, config.max_connections, connections, http);
  config.max_connections = connections;
}

// HOST:PORT as --listen takes it (an IPv6 host in brackets); `port` when given (port 0 picked one).
std::string listen_address(const Flags& flags, std::optional<std::uint16_t> port = std::nullopt) {
  const bool v6 = flags.listen_host.find(':') != std::string::npos;
  return (v6 ? "[" + flags.listen_host + "]" : flags.listen_host) + ":" +
         std::to_string(port.value_or(flags.listen_port));
}

}  // namespace

int main(int argc, char** argv) {
  const Flags flags = realtime::server::parse_flags(argc, argv);

  // SIGTERM, SIGINT and SIGHUP (the terminal closed) are taken by sigwait() below, all three for
  // the same graceful shutdown; blocked before any thread starts so that every thread inherits the
  // mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  realtime::HubOptions hub_options;
  hub_options.threads = flags.threads;
  hub_options.history_size = flags.history_size;
  hub_options.history_bytes = flags.history_bytes;
  hub_options.pod_id = flags.pod_id.empty() ? realtime::default_pod_id() : flags.pod_id;
  setup_logging(flags, hub_options.pod_id);

  realtime::HandlerConfig config;
  config.auth_required = flags.auth_required;
  config.jwt.hs256_secret = flags.jwt_secret;
  // RFC 7518 (3.2) asks for an HS256 key of at least the hash's 256 bits: a shorter one can be
  // found offline from a single token (tokens travel in URLs), and then any user's forged.
  if (constexpr std::size_t kMinSecretBytes = 32;
      !flags.jwt_secret.empty() && flags.jwt_secret.size() < kMinSecretBytes) {
    spdlog::warn(
        "--jwt-secret is {} bytes: HS256 needs at least {} random bytes (RFC 7518, 3.2), or anyone "
        "holding one token can find it offline and sign tokens for any user",
        flags.jwt_secret.size(), kMinSecretBytes);
  }
  if (!flags.jwt_public_key_file.empty()) {
    config.jwt.public_key_pem = read_file_or_exit(flags.jwt_public_key_file, "--jwt-public-key");
  }
  config.jwt.issuer = flags.jwt_issuer;
  config.jwt.audience = flags.jwt_audience;
  config.api_key = flags.api_key;
  config.max_connections = flags.max_connections;
  config.max_message_bytes = flags.max_message_bytes;
  config.max_connections_per_ip = flags.max_connections_per_ip;
  config.handshake_timeout = std::chrono::seconds(flags.handshake_timeout);
  config.rate_limit = flags.rate_limit;
  config.rate_burst = flags.rate_burst;
  config.connect_rate = flags.connect_rate;
  config.connect_burst = flags.connect_burst;
  config.allowed_origins = flags.allowed_origins;
  config.ping_interval = std::chrono::seconds(flags.ping_interval);
  config.pong_timeout = std::chrono::seconds(flags.pong_timeout);
  config.send_queue_bytes = flags.send_queue_bytes;

  realtime::Hub hub(hub_options);
  fit_open_file_limit(config, hub.thread_count());
  std::shared_ptr<realtime::RedisBroadcaster> redis;
  std::unique_ptr<realtime::Handler> handler;
  try {
    if (!flags.redis.empty()) {
      try {
        redis = std::make_shared<realtime::RedisBroadcaster>(
            hub, realtime::RedisBroadcasterOptions{flags.redis});
      } catch (const std::invalid_argument& error) {
        // The library names what it refuses ("Redis URL: ..."); the server names its flag.
        std::string_view what = error.what();
        constexpr std::string_view kLibraryPrefix = "Redis URL: ";
        if (what.starts_with(kLibraryPrefix)) what.remove_prefix(kLibraryPrefix.size());
        std::fprintf(stderr, "realtime-server: --redis: %.*s\n", static_cast<int>(what.size()),
                     what.data());
        return 2;
      }
      config.broadcaster = redis;
    }
    handler = std::make_unique<realtime::Handler>(hub, config);
  } catch (const std::invalid_argument& error) {
    std::fprintf(stderr, "realtime-server: %s\n", error.what());
    return 2;
  }
  hub.start();
  if (redis) redis->start();
  if (auto ec = handler->listen(flags.listen_host, flags.listen_port)) {
    spdlog::error("--listen {}: cannot listen there: {}", listen_address(flags), ec.message());
    if (redis) redis->stop();
    hub.stop();
    hub.wait();
    return 1;
  }
  std::printf("listening on %s\n", listen_address(flags, handler->port()).c_str());
  std::fflush(stdout);
  spdlog::info("pod {} serving on {} with {} threads{}", hub.pod_id(),
               listen_address(flags, handler->port()), hub.thread_count(),
               flags.redis.empty() ? " (single pod)" : "");

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  spdlog::info("signal {}: closing every socket with 1001", signal_number);
  // A second signal while stopping (a second Ctrl-C): stop at once. (This thread may outlive
  // main(): it touches nothing that static destruction ends, the logger included.)
  std::thread([signals] {
    int again = 0;
    sigwait(&signals, &again);
    std::fprintf(stderr,
                 "realtime-server: signal %d again: exiting without finishing the shutdown\n",
                 again);
    std::_Exit(128 + again);
  }).detach();
  handler->shutdown(kShutdownDeadline);
  if (redis) redis->stop();
  hub.stop();
  hub.wait();
  // The broadcaster must go before the hub it observes (config holds a reference too).
  handler.reset();
  config.broadcaster.reset();
  redis.reset();
  spdlog::info("stopped");
  spdlog::default_logger()->flush();
  return 0;
}
