#include "report.hpp"

#include <algorithm>
#include <cstdio>

#include "proc_stats.hpp"

namespace realtime::bench {

void write_latency(JsonWriter& j, std::string_view name, const Histogram& h) {
  j.key(name).begin_object();
  j.field("count", h.count());
  j.field("p50_us", h.quantile(0.50) / 1e3);
  j.field("p90_us", h.quantile(0.90) / 1e3);
  j.field("p99_us", h.quantile(0.99) / 1e3);
  j.field("p999_us", h.quantile(0.999) / 1e3);
  j.field("max_us", h.max() / 1e3);
  j.field("mean_us", h.mean() / 1e3);
  j.end_object();
}

void write_common(JsonWriter& j, const Options& o, std::string_view scenario) {
  j.field("scenario", scenario);
  j.field("label", o.label);
  j.field("protocol", o.protocol == WireProtocol::socketio ? "socketio" : "realtime");
  j.field("pods", static_cast<std::uint64_t>(o.targets.size()));
  j.field("generator_threads", static_cast<std::uint64_t>(o.threads));
  if (o.targets.size() > 1) j.field("pod_placement", o.room_affinity ? "room" : "spread");
}

void write_machine(JsonWriter& j, double machine_cores, double ours) {
  j.field("machine_cpu_cores", machine_cores);
  j.field("other_cpu_cores", std::max(0.0, machine_cores - ours));
  j.field("load_average", load_average());
}

void write_step(JsonWriter& j, const Fleet::StepResult& r, double rate, double duration) {
  const StepStats& s = r.stats;
  Histogram all = s.same_pod;
  all.merge(s.cross_pod);
  j.field("target_rate", rate);
  j.field("sent", s.sent);
  j.field("publishes_per_sec", s.sent_window / duration);
  j.field("expected", s.expected);
  j.field("delivered", s.delivered);
  j.field("deliveries_per_sec", s.received_window / duration);
  const std::uint64_t lost = s.expected > s.delivered ? s.expected - s.delivered : 0;
  j.field("lost", lost);
  j.field("loss_ratio", s.expected ? static_cast<double>(lost) / s.expected : 0.0);
  j.field("reordered", s.reordered);
  j.field("duplicates", s.duplicates);
  j.field("misrouted", s.misrouted);
  j.field("send_errors", s.send_errors);
  j.field("other_messages", s.other_messages);
  j.field("unexpected_closes", static_cast<std::uint64_t>(r.unexpected_closes));
  write_latency(j, "latency", all);
  if (s.cross_pod.count() > 0) {
    write_latency(j, "latency_same_pod", s.same_pod);
    write_latency(j, "latency_cross_pod", s.cross_pod);
  }
  if (s.send_lag.count() > 0) write_latency(j, "generator_send_lag", s.send_lag);
  j.field("wall_seconds", r.wall);
  j.field("window_seconds", r.window_wall);
  j.field("generator_cpu_cores", r.generator_cores);
  j.field("server_cpu_cores", r.server_cores);
  if (r.redis_cores > 0) j.field("redis_cpu_cores", r.redis_cores);
  // What Redis processed, not what the generator offered (publishes_per_sec): pods that saturate
  // first hand Redis fewer messages than were scheduled.
  if (r.redis_publishes_per_sec) j.field("redis_publishes_per_sec", *r.redis_publishes_per_sec);
  if (r.server_p99_ms) {
    // Bucket bounds of realtime-server's own histogram (frame built -> written), same window.
    j.key("server_latency").begin_object();
    if (r.server_p50_ms) j.field("p50_le_ms", *r.server_p50_ms);
    j.field("p99_le_ms", *r.server_p99_ms);
    if (r.server_p999_ms) j.field("p999_le_ms", *r.server_p999_ms);
    j.end_object();
  }
  write_machine(j, r.machine_cores, r.generator_cores + r.server_cores + r.redis_cores);
}

std::string summary_latency(const Histogram& h) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "p50 %.0f us, p99 %.0f us, p99.9 %.0f us, max %.0f us",
                h.quantile(0.5) / 1e3, h.quantile(0.99) / 1e3, h.quantile(0.999) / 1e3,
                h.max() / 1e3);
  return buf;
}

}  // namespace realtime::bench
