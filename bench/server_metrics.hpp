// The server's own view of a step: realtime-server's broadcast-latency histogram (from a frame's
// creation to its write on a socket, `realtime_broadcast_latency_seconds` on /metrics), read before
// and after the measured window. Peers have no such endpoint; for them the scrape finds nothing.
// And Redis's count of PUBLISH commands, read at the same two instants.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "client.hpp"

namespace realtime::bench {

// Cumulative bucket counts by upper bound (seconds), as the histogram exposes them.
struct LatencyBuckets {
  std::vector<double> le;             // upper bounds, ascending (the last is +Inf)
  std::vector<std::uint64_t> counts;  // cumulative counts, same order
};

// GET /metrics on each pod and the sum of their broadcast-latency buckets; nullopt when a pod does
// not answer with them.
std::optional<LatencyBuckets> scrape_latency(const std::vector<Endpoint>& pods);

// How many times Redis at 127.0.0.1:port ran a command since it started (`INFO commandstats`,
// "cmdstat_COMMAND:calls=N", counting the calls scripts make too; 0 when it never ran); nullopt
// when Redis does not answer.
std::optional<std::uint64_t> redis_command_calls(std::uint16_t port, std::string_view command);

// The smallest bucket bound (ms) under which fraction q of the writes between two scrapes fell;
// nullopt when nothing was written in between or the scrapes do not match.
std::optional<double> bucket_quantile_ms(const LatencyBuckets& before, const LatencyBuckets& after,
                                         double q);

}  // namespace realtime::bench
