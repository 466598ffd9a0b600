#include "scenarios.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>

#include "fleet.hpp"
#include "json_writer.hpp"
#include "proc_stats.hpp"
#include "processes.hpp"
#include "report.hpp"

namespace realtime::bench {
namespace {

void require_fits(const Options& o, std::uint32_t connections) {
  if (connections > o.per_process) {
    throw std::invalid_argument("this scenario holds all its sockets in one process: at most " +
                                std::to_string(o.per_process) +
                                " connections (the fd limit); use fewer rooms or members");
  }
}

// Sets up a fleet for a room scenario: connect, wait for the joins' presence traffic to settle.
std::unique_ptr<Fleet> room_fleet(const Options& o, std::uint32_t rooms, std::uint32_t members,
                                  std::uint32_t publishers, double& connect_seconds) {
  const std::uint32_t connections = rooms * members;
  require_fits(o, connections);
  auto fleet = std::make_unique<Fleet>(make_plan(o, connections, rooms, publishers), o.threads);
  const std::uint64_t t0 = now_ns();
  fleet->connect(o.concurrency, o.connect_timeout);
  connect_seconds = (now_ns() - t0) / 1e9;
  fleet->wait_quiet(0.3, 15);
  return fleet;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::string run_fanout(const Options& o) {
  const std::uint32_t rooms = std::max(1U, o.rooms);
  const std::uint32_t members = std::max(1U, o.members);
  const std::uint32_t publishers = o.publishers ? o.publishers : rooms;
  const std::uint32_t connections = rooms * members;
  const std::uint32_t procs =
      o.procs ? o.procs : std::max(1U, (connections + o.per_process - 1) / o.per_process);
  Fleet::StepResult r;
  std::uint32_t connected = 0, failed = 0;
  double connect_s = 0;
  std::string first_error;
  if (procs > 1) {
    ProcsStep step = fanout_step_procs(o, make_plan(o, connections, rooms, publishers), procs);
    r = std::move(step.result);
    connected = step.connected;
    failed = step.failed;
    connect_s = step.connect_seconds;
    first_error = std::move(step.first_error);
  } else {
    auto fleet = room_fleet(o, rooms, members, publishers, connect_s);
    r = fleet->run_step(o, Schedule::Mode::open_loop, o.rate, o.warmup, o.duration);
    connected = fleet->connected();
    failed = fleet->failed();
    if (failed > 0) first_error = fleet->first_error();
  }
  // As asked ("crosspod": latency split by pod), but "fanout" over several pods is "fanout-pods"
  // (the small-rooms shape at a size one pod cannot hold).
  const char* scenario =
      o.scenario == "crosspod" ? "crosspod" : (o.targets.size() > 1 ? "fanout-pods" : "fanout");
  JsonWriter j;
  j.begin_object();
  write_common(j, o, scenario);
  j.field("rooms", rooms).field("members", members).field("publishers", publishers);
  j.field("connections", static_cast<std::uint64_t>(connections));
  j.field("generator_processes", procs);
  j.field("connected", connected).field("connect_failed", failed);
  if (!first_error.empty()) j.field("first_error", first_error);
  j.field("connect_seconds", connect_s);
  write_step(j, r, o.rate, o.duration);
  if (r.stats.cross_pod.count() > 0) {
    const double extra = (static_cast<double>(r.stats.cross_pod.quantile(0.99)) -
                          static_cast<double>(r.stats.same_pod.quantile(0.99))) /
                         1e3;
    j.field("cross_pod_extra_p99_us", extra);
  }
  j.end_object();
  Histogram all = r.stats.same_pod;
  all.merge(r.stats.cross_pod);
  std::fprintf(stderr, "[%s] %s: %u rooms x %u, %.0f msg/s -> %.0f deliveries/s, %s, lost %llu\n",
               o.label.c_str(), scenario, rooms, members, o.rate,
               r.stats.received_window / o.duration, summary_latency(all).c_str(),
               static_cast<unsigned long long>(r.stats.expected -
                                               std::min(r.stats.expected, r.stats.delivered)));
  return j.str();
}

std::string run_saturation(const Options& o) {
  const std::uint32_t rooms = std::max(1U, o.rooms);
  const std::uint32_t members = std::max(1U, o.members);
  const std::uint32_t publishers = o.publishers ? o.publishers : rooms;
  double connect_s = 0;
  auto fleet = room_fleet(o, rooms, members, publishers, connect_s);
  JsonWriter j;
  j.begin_object();
  write_common(j, o, "saturation");
  j.field("rooms", rooms).field("members", members).field("publishers", publishers);
  j.field("connections", static_cast<std::uint64_t>(rooms) * members);
  j.field("connected", fleet->connected()).field("connect_failed", fleet->failed());
  if (fleet->failed() > 0) j.field("first_error", fleet->first_error());
  j.field("p99_bound_ms", o.p99_bound_ms);
  j.key("steps").begin_array();
  double knee_rate = 0, knee_deliveries = 0, knee_p99 = 0;
  double best_deliveries = 0;
  bool closed = false;  // a socket closed: the rooms are no longer whole
  std::uint32_t steps_run = 0;
  // One step at this rate; true when it kept within the bound (then it is the knee so far).
  auto run_at = [&](double rate) {
    // Let a backlog, if any, clear before the next step.
    if (steps_run++ > 0) fleet->wait_quiet(0.2, 5);
    const auto r = fleet->run_step(o, Schedule::Mode::open_loop, rate, o.warmup, o.duration);
    Histogram all = r.stats.same_pod;
    all.merge(r.stats.cross_pod);
    const double p99_ms = all.quantile(0.99) / 1e6;
    const double loss = r.stats.expected
                            ? static_cast<double>(r.stats.expected -
                                                  std::min(r.stats.expected, r.stats.delivered)) /
                                  r.stats.expected
                            : 1.0;
    const double deliveries = r.stats.received_window / o.duration;
    best_deliveries = std::max(best_deliveries, deliveries);
    const bool ok = p99_ms <= o.p99_bound_ms && loss <= 0.001 && r.unexpected_closes == 0;
    closed = closed || r.unexpected_closes > 0;
    j.begin_object();
    write_step(j, r, rate, o.duration);
    j.field("within_bound", ok);
    j.end_object();
    std::fprintf(stderr, "[%s] saturation: %.0f msg/s -> %.0f deliveries/s, %s, loss %.4f%s\n",
                 o.label.c_str(), rate, deliveries, summary_latency(all).c_str(), loss,
                 ok ? "" : " (past the bound)");
    if (ok && rate > knee_rate) {
      knee_rate = rate;
      knee_deliveries = deliveries;
      knee_p99 = p99_ms;
    }
    return ok;
  };
  double rate = o.rate;
  double past_rate = 0;  // the lowest rate past the bound so far (0: none)
  for (std::uint32_t step = 0; step < o.max_steps; ++step) {
    if (!run_at(rate)) {
      past_rate = rate;
      break;
    }
    rate *= o.rate_factor;
  }
  // Past the bound at the first rate already: step down by the factor (as many times as the
  // bisection's steps) for a rate within it, so that a slow server's knee is not reported as 0.
  for (std::uint32_t step = 0; step < o.bisect_steps && knee_rate == 0 && past_rate > 0 && !closed;
       ++step) {
    const double lower = std::round(past_rate / o.rate_factor);
    if (lower < 1 || lower >= past_rate) break;
    if (!run_at(lower)) past_rate = lower;
  }
  // Stepping by the factor alone puts every knee at the first rate times a power of it (two
  // servers a factor apart could not be told from two a little apart): halve the gap between the
  // last rate within the bound and the first past it a few more times (to whole publishes/s).
  for (std::uint32_t step = 0; step < o.bisect_steps && knee_rate > 0 && past_rate > 0 && !closed;
       ++step) {
    const double mid = std::round((knee_rate + past_rate) / 2);
    if (mid <= knee_rate || mid >= past_rate) break;
    if (!run_at(mid)) past_rate = mid;
  }
  j.end_array();
  j.field("knee_rate", knee_rate);
  j.field("knee_deliveries_per_sec", knee_deliveries);
  j.field("knee_p99_ms", knee_p99);
  j.field("max_deliveries_per_sec", best_deliveries);
  j.end_object();
  return j.str();
}

std::string run_hotroom(const Options& o) {
  const std::uint32_t members = o.members ? o.members : 1000;
  const std::uint32_t publishers = o.publishers ? o.publishers : 10;
  double connect_s = 0;
  auto fleet = room_fleet(o, 1, members, publishers, connect_s);
  const auto r = fleet->run_step(o, Schedule::Mode::window, 0, o.warmup, o.duration);
  JsonWriter j;
  j.begin_object();
  write_common(j, o, "hotroom");
  j.field("rooms", 1).field("members", members).field("publishers", publishers);
  j.field("connections", members);  // what the report checks "connected" against
  j.field("window", o.window);
  j.field("connected", fleet->connected()).field("connect_failed", fleet->failed());
  if (fleet->failed() > 0) j.field("first_error", fleet->first_error());
  j.field("connect_seconds", connect_s);
  write_step(j, r, 0, o.duration);
  j.end_object();
  std::fprintf(stderr,
               "[%s] hotroom: 1 x %u, %u publishers x %u in flight -> %.0f deliveries/s "
               "(%.0f publishes/s), %s; cpu server %.2f generator %.2f\n",
               o.label.c_str(), members, publishers, o.window, r.stats.received_window / o.duration,
               r.stats.sent_window / o.duration, summary_latency(r.stats.same_pod).c_str(),
               r.server_cores, r.generator_cores);
  return j.str();
}

std::string run_connect(const Options& o) {
  const std::uint32_t connections = o.connections ? o.connections : 10000;
  require_fits(o, connections);
  const std::uint32_t rooms = o.rooms ? o.rooms : connections;
  CpuMeter cpu(o.server_pids);
  Fleet fleet(make_plan(o, connections, rooms, 0), o.threads);
  cpu.begin();
  fleet.connect(o.concurrency, o.connect_timeout);
  cpu.end();
  std::uint64_t first = ~0ULL, last = 0;
  std::vector<std::uint64_t> latencies;
  for (auto& w : fleet.workers()) {
    first = std::min(first, w->first_connect_ns.load());
    last = std::max(last, w->last_welcome_ns.load());
    auto l = w->call([&w] { return w->take_connect_latencies(); });
    latencies.insert(latencies.end(), l.begin(), l.end());
  }
  Histogram h;
  for (auto v : latencies) h.record(v);
  const double elapsed = last > first ? (last - first) / 1e9 : 0;
  const std::uint32_t open = fleet.open();
  JsonWriter j;
  j.begin_object();
  write_common(j, o, "connect");
  j.field("connections", connections).field("rooms", rooms).field("concurrency", o.concurrency);
  j.field("connected", open).field("connect_failed", fleet.failed());
  j.field("http_refusals", fleet.refusals());
  if (fleet.failed() > 0) j.field("first_error", fleet.first_error());
  j.field("elapsed_seconds", elapsed);
  j.field("upgrades_per_sec", elapsed > 0 ? open / elapsed : 0.0);
  write_latency(j, "latency", h);
  j.field("wall_seconds", cpu.wall_seconds());
  j.field("generator_cpu_cores", cpu.self_cores());
  j.field("server_cpu_cores", cpu.others_cores());
  write_machine(j, cpu.machine_cores(), cpu.others_cores() + cpu.self_cores());
  j.end_object();
  std::fprintf(stderr,
               "[%s] connect: %u of %u in %.2f s = %.0f upgrades/s, %s; cpu server %.2f "
               "generator %.2f\n",
               o.label.c_str(), open, connections, elapsed, elapsed > 0 ? open / elapsed : 0.0,
               summary_latency(h).c_str(), cpu.others_cores(), cpu.self_cores());
  return j.str();
}

}  // namespace realtime::bench
