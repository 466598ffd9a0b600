#include "fleet.hpp"

#include <chrono>
#include <thread>

#include <arpa/inet.h>

namespace realtime::bench {
namespace {

std::vector<in_addr> source_addresses(unsigned count) {
  std::vector<in_addr> out;
  for (unsigned i = 0; i < std::max(1U, count); ++i) {
    in_addr a{};
    a.s_addr = htonl(0x7F000001U + i);  // 127.0.0.1 + i
    out.push_back(a);
  }
  return out;
}

}  // namespace

void sleep_s(double s) {
  if (s > 0) std::this_thread::sleep_for(std::chrono::duration<double>(s));
}

Plan make_plan(const Options& o, std::uint32_t connections, std::uint32_t rooms,
               std::uint32_t publishers) {
  Plan plan;
  plan.protocol = o.protocol;
  plan.targets = o.targets;
  plan.sources = source_addresses(o.sources);
  plan.room_prefix = o.room_prefix;
  plan.connections = connections;
  plan.rooms = std::max(1U, rooms);
  plan.publishers = publishers;
  plan.payload_pad = o.payload_pad;
  plan.room_affinity = o.room_affinity;
  return plan;
}

ServerWindow server_window(const std::vector<Endpoint>& metrics_pods, std::uint16_t redis_port,
                           std::uint64_t from_ns, std::uint64_t to_ns,
                           std::vector<CpuMeter*> meters) {
  ServerWindow w;
  // Redis's count is read next to the CPU meters (a local round trip, well under a millisecond),
  // so its rate is over the same window as Redis's CPU.
  auto read_publishes = [redis_port](std::optional<std::uint64_t>& calls, std::uint64_t& at) {
    if (redis_port == 0) return;
    calls = redis_command_calls(redis_port, "publish");
    at = now_ns();
  };
  while (now_ns() < from_ns) sleep_s(0.001);
  for (CpuMeter* m : meters) m->begin();
  read_publishes(w.publishes_before, w.publishes_before_ns);
  if (!metrics_pods.empty()) w.before = scrape_latency(metrics_pods);
  while (now_ns() < to_ns) sleep_s(0.001);
  for (CpuMeter* m : meters) m->end();
  read_publishes(w.publishes_after, w.publishes_after_ns);
  if (w.before) w.after = scrape_latency(metrics_pods);
  return w;
}

}  // namespace realtime::bench
