// What a closed socket left of its rate limit, for the next socket of the same client.
//
// The rate limit is a token bucket per socket, and a new socket's bucket used to start full: a
// client that reconnected in a loop (its burst in the upgrade's write, then drop) sent as fast as
// it could connect. A socket that ends with its bucket not full leaves what it had here, keyed by
// its user (a token's subject) or, anonymous, by its client address; the next socket of that key
// starts from it, refilled for the time between. An entry goes once it would be full again (the
// burst over the rate: 2 s by default), so the map holds only clients that spent lately. (The
// presence limit, WsSession::presence_within_rate, is not carried: the client could not know it.)
//
// Opening a socket takes a token from a second bucket of the client, with a rate and burst of its
// own (--connect-rate, --connect-burst), at the upgrade (take_connect): the join a socket opens
// with and the leave its close makes are presence events for every member of the room, and a
// client that connected and dropped in a loop made thousands a second without sending a message.
// The take is made on the map itself, so sockets opened at once share the bucket; past it the
// upgrade is refused (429). (A bucket of its own: a client that spent its messages may still
// reconnect at once.)
//
// Thread safety: any thread (sessions of one client live on several I/O threads); a mutex, taken
// by a socket that ends having spent, by a new one while some entry is held, and by every upgrade
// of a client with a key (take_connect).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include <boost/asio/ip/address.hpp>

namespace realtime::detail {

// A client address as one client, for per-address limits: an IPv4 address (also as a dual-stack
// listener's ::ffff:a.b.c.d), or an IPv6 address's /64, which one client commonly holds whole.
// Bytes, not text.
std::string client_address_key(const boost::asio::ip::address& address);

class RateCarry {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  struct Bucket {
    double tokens = 0;  // as of `at`
    TimePoint at{};
  };

  // Entries live burst / rate seconds (2 s by default, hours at --rate-limit 0.01): a bound on the
  // memory many addresses or users could take meanwhile (~100 bytes each).
  static constexpr std::size_t kMaxEntries = std::size_t{1} << 17U;

  // Messages: `rate` a second after a burst of `burst`; openings: `connect_rate` (0: no limit)
  // after `connect_burst`.
  RateCarry(double rate, double burst, double connect_rate = 0, double connect_burst = 1)
      : messages_{rate, burst}, openings_{connect_rate, connect_burst} {}

  // The key of a socket: its user when it has one, else its client address (client_address_key).
  static std::string key(std::string_view user_id, const boost::asio::ip::address& peer);
  // The key of a client, or none: a token's subject (`token_user`, empty when anonymous), else
  // its address where addresses tell clients apart (`by_address`: the operator caps sockets per
  // address; behind a proxy, or many clients behind one NAT, every socket has the same address).
  static std::optional<std::string> client_key(std::string_view token_user,
                                               const boost::asio::ip::address& peer,
                                               bool by_address);

  // A socket of `key` opens at `now`: takes a token from the key's bucket of openings (created
  // full less one). Zero when taken; else the seconds until a token is there (nothing taken).
  // Always taken when kMaxEntries other entries are held, or without a limit on openings.
  double take_connect(const std::string& key, TimePoint now);

  // The bucket a new socket of `key` starts with, refilled to `now`; nullopt: a full one.
  std::optional<Bucket> find(const std::string& key, TimePoint now);
  // A socket of `key` ends at `now` with `bucket` (its tokens as of `bucket.at`); kept unless full,
  // or unless kMaxEntries are held (then forgotten: the next socket starts full).
  void leave(std::string key, const Bucket& bucket, TimePoint now);
  // Whether no entry is held (then find() need not be called).
  bool empty() const noexcept { return size_.load(std::memory_order_relaxed) == 0; }
  // Whether a message bucket is full again.
  bool full(const Bucket& bucket, TimePoint now) const noexcept;

 private:
  struct Limit {
    double rate;
    double burst;
  };
  static double refilled(const Bucket& bucket, TimePoint now, const Limit& limit) noexcept;
  static bool full(const Bucket& bucket, TimePoint now, const Limit& limit) noexcept;
  const Limit& limit_of(const std::string& key) const noexcept;
  // Under mutex_: drops the entries full again, when the map doubled or a second passed since.
  void maybe_prune(TimePoint now);

  const Limit messages_;
  const Limit openings_;  // entries keyed 'c' + the client's key
  std::mutex mutex_;
  std::unordered_map<std::string, Bucket> left_;  // guarded by mutex_
  std::size_t prune_at_ = kPruneMin;              // guarded by mutex_
  TimePoint prune_after_{};                       // guarded by mutex_
  std::atomic<std::size_t> size_{0};
  static constexpr std::size_t kPruneMin = 256;
  static constexpr char kOpening = 'c';
  static constexpr std::chrono::seconds kPruneInterval{1};
};

}  // namespace realtime::detail
