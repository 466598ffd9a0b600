#include "realtime/metrics.hpp"

#include <string_view>

#include <fmt/format.h>

namespace realtime {
namespace {

constexpr std::array<std::string_view, static_cast<std::size_t>(RejectReason::count_)>
    kRejectNames = {"capacity", "origin", "unauthorized", "bad_request", "per_ip", "rate_limited"};
constexpr std::array<std::string_view, static_cast<std::size_t>(DropReason::count_)> kDropNames = {
    "rate_limited", "suppressed", "invalid", "too_big", "slow_consumer", "overload"};

template <typename T>
T load(const std::atomic<T>& value) {
  return value.load(std::memory_order_relaxed);
}

void family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

template <typename T>
void sample(std::string& out, std::string_view name, std::string_view type, std::string_view help,
            T value) {
  family(out, name, type, help);
  fmt::format_to(std::back_inserter(out), "{} {}\n", name, value);
}

}  // namespace

std::size_t Metrics::latency_bucket(std::chrono::nanoseconds latency) noexcept {
  const double seconds = std::chrono::duration<double>(latency).count();
  std::size_t bucket = 0;
  while (bucket < kLatencyBuckets.size() && seconds > kLatencyBuckets[bucket]) ++bucket;
  return bucket;
}

void Metrics::add_latency_counts(
    const std::array<std::uint64_t, kLatencyBuckets.size() + 1>& counts,
    std::uint64_t sum_ns) noexcept {
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    if (counts[i] == 0) continue;
    latency_buckets_[i].fetch_add(counts[i], std::memory_order_relaxed);
    total += counts[i];
  }
  latency_count_.fetch_add(total, std::memory_order_relaxed);
  latency_sum_ns_.fetch_add(sum_ns, std::memory_order_relaxed);
}

void Metrics::observe_latency(std::chrono::nanoseconds latency) noexcept {
  latency_buckets_[latency_bucket(latency)].fetch_add(1, std::memory_order_relaxed);
  latency_count_.fetch_add(1, std::memory_order_relaxed);
  latency_sum_ns_.fetch_add(static_cast<std::uint64_t>(latency.count() > 0 ? latency.count() : 0),
                            std::memory_order_relaxed);
}

std::string Metrics::render(std::string_view pod_id) const {
  std::string out;
  out.reserve(4096);
  if (!pod_id.empty()) {
    family(out, "realtime_pod_info", "gauge", "This pod; the label names it.");
    std::string escaped;
    for (char c : pod_id) {
      if (c == '\\' || c == '"') escaped += '\\';
      if (c == '\n') {
        escaped += "\\n";
        continue;
      }
      escaped += c;
    }
    fmt::format_to(std::back_inserter(out), "realtime_pod_info{{pod=\"{}\"}} 1\n", escaped);
  }
  sample(out, "realtime_connections_total", "gauge", "Active WebSocket connections.",
         load(connections));
  sample(out, "realtime_rooms_total", "gauge", "Rooms with at least one member on this pod.",
         load(rooms));
  sample(out, "realtime_messages_sent", "counter", "Envelopes written to client sockets.",
         load(messages_sent));
  sample(out, "realtime_messages_received", "counter",
         "Messages (data frames, text or binary) received from clients.", load(messages_received));
  sample(out, "realtime_redis_publish_errors", "counter", "Publishes to Redis that failed.",
         load(redis_publish_errors));
  sample(out, "realtime_connections_accepted_total", "counter", "WebSocket upgrades accepted.",
         load(connections_accepted));
  family(out, "realtime_connections_rejected_total", "counter", "Upgrades refused, by reason.");
  for (std::size_t i = 0; i < kRejectNames.size(); ++i) {
    fmt::format_to(std::back_inserter(out),
                   "realtime_connections_rejected_total{{reason=\"{}\"}} {}\n", kRejectNames[i],
                   load(rejected[i]));
  }
  family(out, "realtime_messages_dropped_total", "counter", "Messages not delivered, by reason.");
  for (std::size_t i = 0; i < kDropNames.size(); ++i) {
    fmt::format_to(std::back_inserter(out), "realtime_messages_dropped_total{{reason=\"{}\"}} {}\n",
                   kDropNames[i], load(dropped[i]));
  }
  sample(out, "realtime_slow_consumer_closes_total", "counter",
         "Sockets closed with 1013 because their send queue overflowed.",
         load(slow_consumer_closes));
  sample(out, "realtime_protocol_closes_total", "counter",
         "Sockets closed for a WebSocket protocol violation.", load(protocol_closes));
  sample(out, "realtime_keepalive_closes_total", "counter",
         "Sockets closed for silence past the pong timeout.", load(keepalive_closes));
  sample(out, "realtime_redis_up", "gauge", "1 when the Redis link is up and proven, else 0.",
         load(redis_up));
  sample(out, "realtime_redis_reconnects_total", "counter", "Redis subscriber rebuilds.",
         load(redis_reconnects));
  sample(out, "realtime_room_retained_bytes", "gauge",
         "Memory held by room histories and rooms without members (estimate).",
         load(room_retained_bytes));
  sample(out, "realtime_history_evictions_total", "counter",
         "Rooms forgotten or histories dropped to stay within --history-bytes.",
         load(history_evictions));
  family(out, "realtime_recoveries_total", "counter",
         "Sockets opened with a last_id, by whether the gap was recovered.");
  fmt::format_to(std::back_inserter(out),
                 "realtime_recoveries_total{{result=\"recovered\"}} {}\n"
                 "realtime_recoveries_total{{result=\"not_recovered\"}} {}\n",
                 load(recoveries_recovered), load(recoveries_not_recovered));
  sample(out, "realtime_recovery_replayed_messages_total", "counter",
         "Messages replayed to recovered sockets.", load(recovery_replayed));

  family(out, "realtime_broadcast_latency_seconds", "histogram",
         "Time from a broadcast call to the write of the message on a socket.");
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < kLatencyBuckets.size(); ++i) {
    cumulative += load(latency_buckets_[i]);
    fmt::format_to(std::back_inserter(out),
                   "realtime_broadcast_latency_seconds_bucket{{le=\"{}\"}} {}\n",
                   kLatencyBuckets[i], cumulative);
  }
  cumulative += load(latency_buckets_.back());
  fmt::format_to(std::back_inserter(out),
                 "realtime_broadcast_latency_seconds_bucket{{le=\"+Inf\"}} {}\n"
                 "realtime_broadcast_latency_seconds_sum {}\n"
                 "realtime_broadcast_latency_seconds_count {}\n",
                 cumulative, static_cast<double>(load(latency_sum_ns_)) / 1e9,
                 load(latency_count_));
  return out;
}

}  // namespace realtime
