// A redis-server child process for tests, and a small synchronous client to inspect it.
//
// RedisServer starts `redis-server` on a free loopback port (no persistence, its own temporary
// directory), waits until it answers PING, and can stop, kill, pause (SIGSTOP), resume and
// restart it on the same port. RedisClient is a blocking hiredis client with a timeout, for
// assertions (PUBSUB NUMSUB, CLIENT KILL, PUBLISH, GET ...).
//
// Header-only, for tests only: it blocks, forks and throws std::runtime_error on failure.
// Not thread-safe; one test thread drives it. The binary is $REDIS_SERVER, else redis-server
// from PATH.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace realtime::test {

// A free TCP port on 127.0.0.1, found by binding port 0. Another process could take it before
// the caller binds it; good enough for tests.
inline std::uint16_t free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot find a free port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

struct ReplyDeleter {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

// Blocking client. Every call waits at most `timeout` (a paused server cannot hang a test).
class RedisClient {
 public:
  RedisClient(std::string host, std::uint16_t port, std::string password = {},
              std::chrono::milliseconds timeout = std::chrono::milliseconds(2000)) {
    const timeval tv{static_cast<time_t>(timeout.count() / 1000),
                     static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
    ctx_.reset(redisConnectWithTimeout(host.c_str(), port, tv));
    if (!ctx_ || ctx_->err != 0) {
      throw std::runtime_error("cannot connect to redis: " +
                               std::string(ctx_ ? ctx_->errstr : "out of memory"));
    }
    redisSetTimeout(ctx_.get(), tv);
    if (!password.empty()) {
      auto reply = command({"AUTH", password});
      if (reply->type == REDIS_REPLY_ERROR)
        throw std::runtime_error("AUTH failed: " + std::string(reply->str));
    }
  }

  // Throws when the command cannot be sent or no reply comes; an error reply is returned.
  ReplyPtr command(const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(
        redisCommandArgv(ctx_.get(), static_cast<int>(args.size()), argv.data(), lens.data()));
    if (r == nullptr)
      throw std::runtime_error("redis command failed: " + std::string(ctx_->errstr));
    return ReplyPtr(r);
  }

  // Subscribers of `channel` as Redis counts them (PUBSUB NUMSUB).
  long long numsub(const std::string& channel) {
    auto r = command({"PUBSUB", "NUMSUB", channel});
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2)
      throw std::runtime_error("bad NUMSUB reply");
    return r->element[1]->integer;
  }

  long long publish(const std::string& channel, const std::string& payload) {
    return command({"PUBLISH", channel, payload})->integer;
  }

  // Drops every subscribe-mode client connection; returns how many were killed.
  long long kill_pubsub_clients() { return command({"CLIENT", "KILL", "TYPE", "pubsub"})->integer; }

  std::string get(const std::string& key) {
    auto r = command({"GET", key});
    return r->type == REDIS_REPLY_STRING ? std::string(r->str, r->len) : std::string();
  }

 private:
  struct ContextDeleter {
    void operator()(redisContext* c) const noexcept { redisFree(c); }
  };
  std::unique_ptr<redisContext, ContextDeleter> ctx_;
};

class RedisServer {
 public:
  struct Options {
    std::string password;                 // --requirepass when set
    std::vector<std::string> extra_args;  // appended to the command line
    std::chrono::milliseconds start_timeout{10'000};
  };

  RedisServer() : RedisServer(Options{}) {}
  explicit RedisServer(Options options) : options_(std::move(options)) {
    port_ = free_loopback_port();
    char pattern[] = "/tmp/realtime-redis-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = pattern;
    start();
  }

  ~RedisServer() {
    stop(SIGKILL);
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  std::uint16_t port() const noexcept { return port_; }
  const std::string& password() const noexcept { return options_.password; }
  bool running() const noexcept { return pid_ > 0; }
  // redis://[:password@]127.0.0.1:port/db
  std::string url(int db = 0) const {
    std::string out = "redis://";
    if (!options_.password.empty()) out += ":" + options_.password + "@";
    return out + "127.0.0.1:" + std::to_string(port_) + "/" + std::to_string(db);
  }

  // Starts the server (on the same port as before) and waits until it answers PING.
  void start() {
    if (pid_ > 0) return;
    std::vector<std::string> args = {binary(), "--port",       std::to_string(port_),
                                     "--bind", "127.0.0.1",    "--save",
                                     "",       "--appendonly", "no",
                                     "--dir",  dir_,           "--daemonize",
                                     "no",     "--logfile",    dir_ + "/redis.log"};
    if (!options_.password.empty()) {
      args.push_back("--requirepass");
      args.push_back(options_.password);
    }
    args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    pid_t pid = 0;
    const int rc = ::posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw std::runtime_error("cannot start " + args[0]);
    pid_ = pid;
    paused_ = false;

    const auto deadline = std::chrono::steady_clock::now() + options_.start_timeout;
    while (!answers_ping()) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("redis-server exited at start; see " + dir_ + "/redis.log");
      }
      if (std::chrono::steady_clock::now() > deadline) {
        stop(SIGKILL);
        throw std::runtime_error("redis-server did not answer PING in time");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling, not a timing claim
    }
  }

  // Stops the server with `signal` (SIGTERM: clean shutdown; SIGKILL: a crash) and reaps it.
  void stop(int signal = SIGTERM) {
    if (pid_ <= 0) return;
    if (paused_) ::kill(pid_, SIGCONT);
    ::kill(pid_, signal);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    paused_ = false;
  }
  void kill() { stop(SIGKILL); }
  void restart(int signal = SIGKILL) {
    stop(signal);
    start();
  }

  // SIGSTOP / SIGCONT: the process freezes with every TCP connection still open (a wedged server).
  void pause() {
    if (pid_ > 0 && !paused_ && ::kill(pid_, SIGSTOP) == 0) paused_ = true;
  }
  void resume() {
    if (pid_ > 0 && paused_ && ::kill(pid_, SIGCONT) == 0) paused_ = false;
  }

  RedisClient client(std::chrono::milliseconds timeout = std::chrono::milliseconds(2000)) const {
    return RedisClient("127.0.0.1", port_, options_.password, timeout);
  }

 private:
  static std::string binary() {
    const char* env = std::getenv("REDIS_SERVER");
    return env != nullptr && *env != '\0' ? env : "redis-server";
  }

  bool answers_ping() const {
    try {
      auto c = client(std::chrono::milliseconds(200));
      auto r = c.command({"PING"});
      return r->type == REDIS_REPLY_STATUS;
    } catch (const std::runtime_error&) {
      return false;
    }
  }

  Options options_;
  std::uint16_t port_ = 0;
  std::string dir_;
  pid_t pid_ = -1;
  bool paused_ = false;
};

}  // namespace realtime::test
