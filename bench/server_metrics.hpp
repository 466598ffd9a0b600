// The server's own view of a step: realtime-server's broadcast-latency histogram (from a frame's
// creation to its write on a socket, `realtime_broadcast_latency_seconds` on /metrics), read before
// and after the measured window. Peers have no such endpoint; for them the scrape finds nothing.
#pragma once

#include <cstdint>
#include <optional>
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

// The smallest bucket bound (ms) under which fraction q of the writes between two scrapes fell;
// nullopt when nothing was written in between or the scrapes do not match.
std::optional<double> bucket_quantile_ms(const LatencyBuckets& before, const LatencyBuckets& after,
                                         double q);

}  // namespace realtime::bench
