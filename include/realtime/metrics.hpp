// Counters and gauges of one pod, rendered in the Prometheus text format.
//
// Owned by the Hub. Thread safety: every member is a relaxed atomic, updated from any thread;
// render() reads a consistent-enough snapshot (each value atomically, not all at once).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace realtime {

// Reasons a connection is refused before or during the upgrade (label `reason`).
enum class RejectReason : std::uint8_t {
  capacity,
  origin,
  unauthorized,
  bad_request,
  per_ip,
  rate_limited,  // a client (token subject, or address with a per-address cap) connecting too often
  count_
};
// Reasons a message is not delivered (label `reason`).
enum class DropReason : std::uint8_t {
  rate_limited,
  suppressed,
  invalid,
  too_big,
  slow_consumer,
  overload,
  count_
};

class Metrics {
 public:
  // Upper bounds, in seconds, of the broadcast latency histogram (publish call to socket write).
  static constexpr std::array<double, 14> kLatencyBuckets = {
      0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
      0.01,    0.025,  0.05,    0.1,    0.25,  0.5,    1.0};

  std::atomic<std::int64_t> connections{0};         // realtime_connections_total (gauge)
  std::atomic<std::int64_t> rooms{0};               // realtime_rooms_total (gauge)
  std::atomic<std::uint64_t> messages_sent{0};      // envelopes written to sockets
  std::atomic<std::uint64_t> messages_received{0};  // text frames received from clients
  std::atomic<std::uint64_t> redis_publish_errors{0};
  std::atomic<std::uint64_t> connections_accepted{0};
  std::atomic<std::uint64_t> slow_consumer_closes{0};
  std::atomic<std::uint64_t> protocol_closes{0};
  std::atomic<std::uint64_t> keepalive_closes{0};
  std::atomic<std::int64_t> redis_up{0};  // 1 when the Redis link works, 0 when down or unused
  std::atomic<std::uint64_t> redis_reconnects{0};
  // Memory held by room histories and by rooms without members (an estimate; bounded by
  // HubOptions::history_bytes).
  std::atomic<std::int64_t> room_retained_bytes{0};
  // Rooms forgotten, or histories dropped, to keep room_retained_bytes within its budget.
  std::atomic<std::uint64_t> history_evictions{0};
  // Sockets opened with a last_id, by the answer they were given (`recovered: true` or false), and
  // the messages replayed to those recovered.
  std::atomic<std::uint64_t> recoveries_recovered{0};
  std::atomic<std::uint64_t> recoveries_not_recovered{0};
  std::atomic<std::uint64_t> recovery_replayed{0};
  std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(RejectReason::count_)> rejected{};
  std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(DropReason::count_)> dropped{};

  void reject(RejectReason reason) noexcept {
    rejected[static_cast<std::size_t>(reason)].fetch_add(1, std::memory_order_relaxed);
  }
  void drop(DropReason reason, std::uint64_t n = 1) noexcept {
    dropped[static_cast<std::size_t>(reason)].fetch_add(n, std::memory_order_relaxed);
  }
  void observe_latency(std::chrono::nanoseconds latency) noexcept;
  // The histogram bucket a latency falls in (kLatencyBuckets.size() for +Inf).
  static std::size_t latency_bucket(std::chrono::nanoseconds latency) noexcept;
  // Adds counts gathered elsewhere (one array entry per bucket, +Inf last) in one go.
  void add_latency_counts(const std::array<std::uint64_t, kLatencyBuckets.size() + 1>& counts,
                          std::uint64_t sum_ns) noexcept;

  // The Prometheus text exposition of every metric; pod_id labels realtime_pod_info.
  std::string render(std::string_view pod_id = {}) const;

 private:
  std::array<std::atomic<std::uint64_t>, kLatencyBuckets.size() + 1>
      latency_buckets_{};  // +Inf last
  std::atomic<std::uint64_t> latency_count_{0};
  std::atomic<std::uint64_t> latency_sum_ns_{0};
};

}  // namespace realtime
