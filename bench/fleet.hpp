// The load generator's driver inside one process: a Fleet of Workers holding a share of a run's
// connections, and what a measured step of it reports. Used by every scenario (scenarios.cpp) and
// by the generator processes of the multi-process ones (processes.cpp).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "client.hpp"
#include "proc_stats.hpp"
#include "scenarios.hpp"
#include "server_metrics.hpp"

namespace realtime::bench {

void sleep_s(double s);

// The plan of a run: o's targets, sources and protocol, with this many connections and rooms.
Plan make_plan(const Options& o, std::uint32_t connections, std::uint32_t rooms,
               std::uint32_t publishers);

// What one measured step gives: the generators' counters and histograms, and the CPU each side
// used.
struct StepResult {
  StepStats stats;
  double wall = 0;
  double generator_cores = 0;
  double server_cores = 0;
  double redis_cores = 0;
  double machine_cores = 0;
  double window_wall = 0;  // the measured window, over which the CPU figures are taken
  std::uint32_t unexpected_closes = 0;
  // realtime-server's own broadcast latency over the measured window (bucket bounds, ms).
  std::optional<double> server_p50_ms, server_p99_ms, server_p999_ms;
  // PUBLISH commands Redis ran per second over the measured window (--redis-port).
  std::optional<double> redis_publishes_per_sec;
};

// realtime-server's histogram and Redis's PUBLISH count read when the measured window opens and
// when it closes (sleeping until each); apply() puts what they say into a step's result.
struct ServerWindow {
  std::optional<LatencyBuckets> before, after;
  std::optional<std::uint64_t> publishes_before, publishes_after;
  std::uint64_t publishes_before_ns = 0, publishes_after_ns = 0;  // when each count was read
  void apply(StepResult& r) const {
    if (publishes_before && publishes_after && publishes_after_ns > publishes_before_ns &&
        *publishes_after >= *publishes_before) {
      r.redis_publishes_per_sec = static_cast<double>(*publishes_after - *publishes_before) /
                                  ((publishes_after_ns - publishes_before_ns) / 1e9);
    }
    if (!before || !after) return;
    r.server_p50_ms = bucket_quantile_ms(*before, *after, 0.50);
    r.server_p99_ms = bucket_quantile_ms(*before, *after, 0.99);
    r.server_p999_ms = bucket_quantile_ms(*before, *after, 0.999);
  }
};
// Waits for the measured window [from_ns, to_ns) and begins and ends the CPU meters given with it
// (the CPU columns are over the window alone, not the warm-up or the drain after it); right after
// each, reads Redis's PUBLISH count (redis_port 0: none) and the latency buckets of metrics_pods
// (empty: none; only targets known to serve realtime's /metrics, as a peer's late 404 would
// stretch the window).
ServerWindow server_window(const std::vector<Endpoint>& metrics_pods, std::uint16_t redis_port,
                           std::uint64_t from_ns, std::uint64_t to_ns,
                           std::vector<CpuMeter*> meters = {});

// A set of workers holding connections [first, first + count) of a plan.
class Fleet {
 public:
  // Holds the connections c of the plan with c % stride == offset (a generator process's share).
  Fleet(Plan plan, unsigned threads, std::uint32_t offset = 0, std::uint32_t stride = 1)
      : plan_(std::move(plan)) {
    threads = std::max(1U, threads);
    for (unsigned i = 0; i < threads; ++i) workers_.push_back(std::make_unique<Worker>(plan_, i));
    publishers_of_.assign(threads, 0);
    std::uint32_t k = 0;
    for (std::uint32_t c = offset; c < plan_.connections; c += stride, ++k) {
      workers_[k % threads]->add_connection(c);
      owned_.push_back(c);
      if (c < plan_.publishers) ++publishers_of_[k % threads];
    }
    for (auto& w : workers_) {
      w->set_siblings(&workers_);
      w->start_thread();
    }
  }
  ~Fleet() {
    abort_all();
    for (auto& w : workers_) w->stop_thread();
  }

  void abort_all() {
    for (auto& w : workers_) w->call([&w] { w->abort_all(); });
  }

  // Connects the owned connections with an index below limit (default: all); returns when each of
  // them is welcomed or failed, or at the timeout.
  void connect(std::uint32_t in_flight, double timeout_s, std::uint32_t limit = ~0U) {
    const std::uint32_t per_worker =
        in_flight == 0 ? 0 : std::max(1U, in_flight / static_cast<std::uint32_t>(workers_.size()));
    for (auto& w : workers_)
      w->call([&w, per_worker, limit] { w->connect_until(limit, per_worker); });
    const auto wanted = static_cast<std::uint32_t>(
        std::lower_bound(owned_.begin(), owned_.end(), limit) - owned_.begin());
    const std::uint64_t deadline = now_ns() + static_cast<std::uint64_t>(timeout_s * 1e9);
    while (open() + failed() + unexpected() < wanted && now_ns() < deadline) sleep_s(0.01);
    connected_ = open();
  }
  // Sockets open right after connect() (open() is the number still open now).
  std::uint32_t connected() const { return connected_; }

  // Waits until nothing has been received for quiet_s (the presence traffic of the joins), at most
  // max_s.
  void wait_quiet(double quiet_s, double max_s) {
    const std::uint64_t start = now_ns();
    const auto quiet = static_cast<std::uint64_t>(quiet_s * 1e9);
    const auto limit = static_cast<std::uint64_t>(max_s * 1e9);
    for (;;) {
      sleep_s(0.05);
      std::uint64_t last = 0;
      for (auto& w : workers_) last = std::max(last, w->last_rx_ns.load());
      const std::uint64_t now = now_ns();
      if (now - std::max(last, start) >= quiet || now - start >= limit) return;
    }
  }

  using StepResult = bench::StepResult;

  // One measured step. start_ns: the first scheduled send (0: in 20 ms), so several generator
  // processes can start together. local_drain: every delivery this fleet's publishers expect comes
  // to this fleet (one process); otherwise the drain waits until nothing has arrived for a second.
  StepResult run_step(const Options& o, Schedule::Mode mode, double rate, double warmup,
                      double duration, std::uint64_t start_ns = 0, bool local_drain = true) {
    std::vector<pid_t> server_pids = o.server_pids;
    CpuMeter server_cpu(server_pids);  // the whole step
    CpuMeter window_cpu(server_pids);  // the measured window alone
    CpuMeter redis_cpu(o.redis_pid ? std::vector<pid_t>{o.redis_pid} : std::vector<pid_t>{});
    const std::uint32_t closes_before = unexpected();
    Schedule s;
    s.mode = mode;
    s.window = o.window;
    s.max_outstanding =
        static_cast<std::uint64_t>(o.window) * plan_.publishers * plan_.room_size(0);
    s.start_ns = start_ns ? start_ns : now_ns() + 20'000'000;
    s.record_from_ns = s.start_ns + static_cast<std::uint64_t>(warmup * 1e9);
    s.end_ns = s.record_from_ns + static_cast<std::uint64_t>(duration * 1e9);
    s.record_to_ns = s.end_ns;
    server_cpu.begin();
    for (std::size_t i = 0; i < workers_.size(); ++i) {
      Schedule ws = s;
      ws.rate = plan_.publishers ? rate * publishers_of_[i] / plan_.publishers : 0;
      workers_[i]->call([&w = workers_[i], ws] { w->begin_step(ws); });
    }
    // (A process that holds only a share of the run leaves the server's view to its parent.)
    ServerWindow window;
    if (local_drain) {
      window = server_window(o.server_metrics ? o.targets : std::vector<Endpoint>{}, o.redis_port,
                             s.record_from_ns, s.end_ns, {&window_cpu, &redis_cpu});
    } else {
      (void)server_window({}, 0, s.record_from_ns, s.end_ns, {&window_cpu});
    }
    for (auto& w : workers_) w->call([&w] { w->stop_publishing(); });
    // Drain: until every expected delivery arrived, or nothing moved for a second, or 10 s.
    const std::uint64_t drain_start = now_ns();
    std::uint64_t last_delivered = 0, last_progress = drain_start;
    for (;;) {
      std::uint64_t delivered = 0, expected = 0;
      for (auto& w : workers_) {
        delivered += w->delivered_total.load();
        expected += w->expected_total.load();
      }
      const std::uint64_t now = now_ns();
      if (local_drain && delivered >= expected) break;
      if (delivered != last_delivered) {
        last_delivered = delivered;
        last_progress = now;
      }
      if (now - last_progress > 1'000'000'000ULL || now - drain_start > 10'000'000'000ULL) break;
      sleep_s(0.005);
    }
    server_cpu.end();
    StepResult r;
    for (auto& w : workers_) r.stats.merge(w->call([&w] { return w->take_stats(); }));
    r.wall = server_cpu.wall_seconds();
    r.window_wall = window_cpu.wall_seconds();
    r.generator_cores = window_cpu.self_cores();
    r.server_cores = window_cpu.others_cores();
    r.redis_cores = redis_cpu.others_cores();
    r.machine_cores = window_cpu.machine_cores();
    r.unexpected_closes = unexpected() - closes_before;
    window.apply(r);
    return r;
  }

  std::uint32_t open() const { return sum(&Worker::open); }
  std::uint32_t failed() const { return sum(&Worker::failed); }
  std::uint32_t unexpected() const { return sum(&Worker::unexpected_closes); }
  std::uint64_t refusals() const {
    std::uint64_t n = 0;
    for (auto& w : workers_) n += w->http_refusals.load();
    return n;
  }
  std::string first_error() {
    for (auto& w : workers_) {
      std::string e = w->call([&w] { return w->first_error(); });
      if (!e.empty()) return e;
    }
    return {};
  }
  std::vector<std::unique_ptr<Worker>>& workers() { return workers_; }
  const Plan& plan() const { return plan_; }

 private:
  std::uint32_t sum(std::atomic<std::uint32_t> Worker::*field) const {
    std::uint32_t n = 0;
    for (auto& w : workers_) n += ((*w).*field).load();
    return n;
  }
  Plan plan_;
  std::vector<std::uint32_t> owned_;  // ascending
  std::uint32_t connected_ = 0;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::uint32_t> publishers_of_;
};

}  // namespace realtime::bench
