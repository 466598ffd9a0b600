#include "scenarios.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <thread>

#include <arpa/inet.h>
#include <sys/wait.h>
#include <unistd.h>

#include "json_writer.hpp"
#include "proc_stats.hpp"
#include "server_metrics.hpp"

namespace realtime::bench {
namespace {

void sleep_s(double s) {
  if (s > 0) std::this_thread::sleep_for(std::chrono::duration<double>(s));
}

std::vector<in_addr> source_addresses(unsigned count) {
  std::vector<in_addr> out;
  for (unsigned i = 0; i < std::max(1U, count); ++i) {
    in_addr a{};
    a.s_addr = htonl(0x7F000001U + i);  // 127.0.0.1 + i
    out.push_back(a);
  }
  return out;
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

// realtime-server's histogram read when the measured window opens and when it closes (sleeping
// until each); apply() puts its percentiles into a step's result.
struct ServerWindow {
  std::optional<LatencyBuckets> before, after;
  template <typename Result>
  void apply(Result& r) const {
    if (!before || !after) return;
    r.server_p50_ms = bucket_quantile_ms(*before, *after, 0.50);
    r.server_p99_ms = bucket_quantile_ms(*before, *after, 0.99);
    r.server_p999_ms = bucket_quantile_ms(*before, *after, 0.999);
  }
};
ServerWindow server_window(const std::vector<Endpoint>& pods, std::uint64_t from_ns,
                           std::uint64_t to_ns) {
  ServerWindow w;
  while (now_ns() < from_ns) sleep_s(0.005);
  w.before = scrape_latency(pods);
  while (now_ns() < to_ns) sleep_s(0.01);
  if (w.before) w.after = scrape_latency(pods);
  return w;
}

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

  struct StepResult {
    StepStats stats;
    double wall = 0;
    double generator_cores = 0;
    double server_cores = 0;
    double redis_cores = 0;
    double machine_cores = 0;
    std::uint32_t unexpected_closes = 0;
    // realtime-server's own broadcast latency over the measured window (bucket bounds, ms).
    std::optional<double> server_p50_ms, server_p99_ms, server_p999_ms;
  };

  // One measured step. start_ns: the first scheduled send (0: in 20 ms), so several generator
  // processes can start together. local_drain: every delivery this fleet's publishers expect comes
  // to this fleet (one process); otherwise the drain waits until nothing has arrived for a second.
  StepResult run_step(const Options& o, Schedule::Mode mode, double rate, double warmup,
                      double duration, std::uint64_t start_ns = 0, bool local_drain = true) {
    std::vector<pid_t> server_pids = o.server_pids;
    CpuMeter server_cpu(server_pids);
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
    redis_cpu.begin();
    for (std::size_t i = 0; i < workers_.size(); ++i) {
      Schedule ws = s;
      ws.rate = plan_.publishers ? rate * publishers_of_[i] / plan_.publishers : 0;
      workers_[i]->call([&w = workers_[i], ws] { w->begin_step(ws); });
    }
    // (A process that holds only a share of the run leaves the server's view to its parent.)
    ServerWindow window;
    if (local_drain) {
      window = server_window(o.targets, s.record_from_ns, s.end_ns);
    } else {
      while (now_ns() < s.end_ns) sleep_s(0.01);
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
    redis_cpu.end();
    StepResult r;
    for (auto& w : workers_) r.stats.merge(w->call([&w] { return w->take_stats(); }));
    r.wall = server_cpu.wall_seconds();
    r.generator_cores = server_cpu.self_cores();
    r.server_cores = server_cpu.others_cores();
    r.redis_cores = redis_cpu.others_cores();
    r.machine_cores = server_cpu.machine_cores();
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

// How busy the whole machine was, and how much of that was neither the server nor the generator
// (other programs running at the same time make every figure worse).
void write_machine(JsonWriter& j, double machine_cores, double ours) {
  j.field("machine_cpu_cores", machine_cores);
  j.field("other_cpu_cores", std::max(0.0, machine_cores - ours));
  j.field("load_average", load_average());
}

// Fields of one fan-out step: throughput, loss, order and latency.
void write_step(JsonWriter& j, const Fleet::StepResult& r, double rate, double duration) {
  const StepStats& s = r.stats;
  Histogram all = s.same_pod;
  all.merge(s.cross_pod);
  j.field("target_rate", rate);
  j.field("sent", s.sent);
  j.field("publishes_per_sec", s.sent_window / duration);
  j.field("expected", s.expected);
  j.field("delivered", s.delivered);
  j.field("deliveries_per_sec", s.delivered_window / duration);
  const std::uint64_t lost = s.expected > s.delivered ? s.expected - s.delivered : 0;
  j.field("lost", lost);
  j.field("loss_ratio", s.expected ? static_cast<double>(lost) / s.expected : 0.0);
  j.field("reordered", s.reordered);
  j.field("duplicates", s.duplicates);
  j.field("send_errors", s.send_errors);
  j.field("other_messages", s.other_messages);
  j.field("unexpected_closes", static_cast<std::uint64_t>(r.unexpected_closes));
  write_latency(j, "latency", all);
  if (s.cross_pod.count() > 0) {
    write_latency(j, "latency_same_pod", s.same_pod);
    write_latency(j, "latency_cross_pod", s.cross_pod);
  }
  j.field("wall_seconds", r.wall);
  j.field("generator_cpu_cores", r.generator_cores);
  j.field("server_cpu_cores", r.server_cores);
  if (r.redis_cores > 0) j.field("redis_cpu_cores", r.redis_cores);
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

// The fan-out step over several generator processes (more sockets than one process may hold).
struct ProcsStep {
  Fleet::StepResult result;
  std::uint32_t connected = 0;
  std::uint32_t failed = 0;
  double connect_seconds = 0;
  std::string first_error;
};
ProcsStep fanout_step_procs(const Options& o, const Plan& plan, std::uint32_t procs);

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
  // Several pods: "crosspod" (2 pods, latency split by pod) or, past one generator process,
  // "fanout-pods" (the small-rooms shape at a size one process cannot hold).
  const char* scenario = o.targets.size() > 1 ? (procs > 1 ? "fanout-pods" : "crosspod") : "fanout";
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
               r.stats.delivered_window / o.duration, summary_latency(all).c_str(),
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
  j.field("connected", fleet->connected()).field("connect_failed", fleet->failed());
  if (fleet->failed() > 0) j.field("first_error", fleet->first_error());
  j.field("p99_bound_ms", o.p99_bound_ms);
  j.key("steps").begin_array();
  double rate = o.rate;
  double knee_rate = 0, knee_deliveries = 0, knee_p99 = 0;
  double best_deliveries = 0;
  for (std::uint32_t step = 0; step < o.max_steps; ++step) {
    const auto r = fleet->run_step(o, Schedule::Mode::open_loop, rate, o.warmup, o.duration);
    Histogram all = r.stats.same_pod;
    all.merge(r.stats.cross_pod);
    const double p99_ms = all.quantile(0.99) / 1e6;
    const double loss = r.stats.expected
                            ? static_cast<double>(r.stats.expected -
                                                  std::min(r.stats.expected, r.stats.delivered)) /
                                  r.stats.expected
                            : 1.0;
    const double deliveries = r.stats.delivered_window / o.duration;
    best_deliveries = std::max(best_deliveries, deliveries);
    j.begin_object();
    write_step(j, r, rate, o.duration);
    j.end_object();
    std::fprintf(stderr, "[%s] saturation: %.0f msg/s -> %.0f deliveries/s, %s, loss %.4f\n",
                 o.label.c_str(), rate, deliveries, summary_latency(all).c_str(), loss);
    const bool ok = p99_ms <= o.p99_bound_ms && loss <= 0.001 && r.unexpected_closes == 0;
    if (!ok) break;
    knee_rate = rate;
    knee_deliveries = deliveries;
    knee_p99 = p99_ms;
    // Let a backlog, if any, clear before the next step.
    fleet->wait_quiet(0.2, 5);
    rate *= o.rate_factor;
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
  j.field("window", o.window);
  j.field("connected", fleet->connected()).field("connect_failed", fleet->failed());
  if (fleet->failed() > 0) j.field("first_error", fleet->first_error());
  j.field("connect_seconds", connect_s);
  write_step(j, r, 0, o.duration);
  j.end_object();
  std::fprintf(stderr,
               "[%s] hotroom: 1 x %u, %u publishers x %u in flight -> %.0f deliveries/s "
               "(%.0f publishes/s), %s; cpu server %.2f generator %.2f\n",
               o.label.c_str(), members, publishers, o.window,
               r.stats.delivered_window / o.duration, r.stats.sent_window / o.duration,
               summary_latency(r.stats.same_pod).c_str(), r.server_cores, r.generator_cores);
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

// ---------------------------------------------------------------------------------------------
// idle: several generator processes (each under the fd limit) hold their share of the sockets;
// this process only measures and coordinates them through pipes.

namespace {

struct Child {
  pid_t pid = 0;
  FILE* from = nullptr;  // lines the child writes
  int to = -1;           // a byte tells it to finish
};

// Forks `count` generator processes, each running body(index, to_parent, from_parent), which does
// not return (it ends with _exit); the parent keeps a pipe each way per child.
std::vector<Child> fork_children(std::uint32_t count,
                                 const std::function<void(std::uint32_t, int, int)>& body) {
  std::vector<Child> children;
  for (std::uint32_t i = 0; i < count; ++i) {
    int up[2], down[2];
    if (::pipe(up) != 0 || ::pipe(down) != 0) throw std::runtime_error("pipe failed");
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
      ::close(up[0]);
      ::close(down[1]);
      for (auto& c : children) {
        std::fclose(c.from);
        ::close(c.to);
      }
      body(i, up[1], down[0]);
      ::_exit(0);
    }
    ::close(up[1]);
    ::close(down[0]);
    children.push_back({pid, ::fdopen(up[0], "r"), down[1]});
  }
  return children;
}

// Closes the pipes and waits for every child to exit.
void reap(std::vector<Child>& children) {
  for (auto& c : children) {
    std::fclose(c.from);
    ::close(c.to);
    int status = 0;
    ::waitpid(c.pid, &status, 0);
  }
  children.clear();
}

// Commands from the parent, one a line: "N LIMIT" connects the share below LIMIT and answers
// "R OPEN FAILED REFUSALS"; "Q" closes everything and answers "C UNEXPECTED OPEN CPU_SECONDS".
[[noreturn]] void idle_child(const Options& o, const Plan& plan, std::uint32_t offset,
                             std::uint32_t stride, int to_parent, int from_parent) {
  {
    Fleet fleet(plan, o.threads, offset, stride);
    FILE* in = ::fdopen(from_parent, "r");
    char cmd = 0;
    unsigned limit = 0;
    while (in && std::fscanf(in, " %c", &cmd) == 1 && cmd == 'N' &&
           std::fscanf(in, " %u", &limit) == 1) {
      fleet.connect(o.concurrency, o.connect_timeout, limit);
      fleet.wait_quiet(0.3, 10);
      std::string error = fleet.failed() > 0 ? fleet.first_error() : std::string();
      for (char& ch : error) {
        if (ch == '\n' || ch == '\r') ch = ' ';
      }
      dprintf(to_parent, "R %u %u %llu %s\n", fleet.open(), fleet.failed(),
              static_cast<unsigned long long>(fleet.refusals()),
              error.empty() ? "-" : error.c_str());
    }
    const std::uint32_t unexpected = fleet.unexpected();
    const std::uint32_t still_open = fleet.open();
    fleet.abort_all();
    dprintf(to_parent, "C %u %u %.3f\n", unexpected, still_open, self_cpu_seconds());
  }
  ::_exit(0);
}

// fanout over processes. Each child holds connections c % procs == i, connects, and answers
// "R CONNECTED FAILED CONNECT_SECONDS ERROR"; the parent then sends "S START_NS" to all (one start
// for every publisher), and each child runs the step and answers "D counters... CPU_SECONDS" and
// two "H histogram" lines (same pod, other pod), then closes its sockets on "Q". Latency needs no
// shared clock beyond
// CLOCK_MONOTONIC, which every process of the machine shares.
[[noreturn]] void fanout_child(const Options& o, const Plan& plan, std::uint32_t offset,
                               std::uint32_t stride, int to_parent, int from_parent) {
  {
    Fleet fleet(plan, o.threads, offset, stride);
    const std::uint64_t t0 = now_ns();
    fleet.connect(o.concurrency, o.connect_timeout);
    const double connect_s = (now_ns() - t0) / 1e9;
    fleet.wait_quiet(0.3, 15);
    std::string error = fleet.failed() > 0 ? fleet.first_error() : std::string("-");
    for (char& ch : error) {
      if (ch == '\n' || ch == '\r') ch = ' ';
    }
    dprintf(to_parent, "R %u %u %.3f %s\n", fleet.connected(), fleet.failed(), connect_s,
            error.c_str());
    FILE* in = ::fdopen(from_parent, "r");
    unsigned long long start = 0;
    if (in && std::fscanf(in, " S %llu", &start) == 1) {
      const double cpu0 = self_cpu_seconds();
      const auto r =
          fleet.run_step(o, Schedule::Mode::open_loop, o.rate, o.warmup, o.duration, start, false);
      const StepStats& st = r.stats;
      dprintf(to_parent, "D %llu %llu %llu %llu %llu %llu %llu %llu %llu %u %.4f\n",
              static_cast<unsigned long long>(st.sent),
              static_cast<unsigned long long>(st.sent_window),
              static_cast<unsigned long long>(st.expected),
              static_cast<unsigned long long>(st.delivered),
              static_cast<unsigned long long>(st.delivered_window),
              static_cast<unsigned long long>(st.reordered),
              static_cast<unsigned long long>(st.duplicates),
              static_cast<unsigned long long>(st.other_messages),
              static_cast<unsigned long long>(st.send_errors), r.unexpected_closes,
              self_cpu_seconds() - cpu0);
      dprintf(to_parent, "H %s\nH %s\n", st.same_pod.serialize().c_str(),
              st.cross_pod.serialize().c_str());
      // The sockets go once the parent has read every process's figures ("Q" or end of file), so
      // their teardown is not counted as the machine's other load.
      char quit = 0;
      (void)!std::fscanf(in, " %c", &quit);
    }
    fleet.abort_all();
  }
  ::_exit(0);
}

// A line from a child, without its newline ("" at end of file).
std::string read_line(FILE* from) {
  std::string line;
  int ch = 0;
  while ((ch = std::fgetc(from)) != EOF && ch != '\n') line += static_cast<char>(ch);
  return line;
}

ProcsStep fanout_step_procs(const Options& o, const Plan& plan, std::uint32_t procs) {
  if (plan.connections > static_cast<std::uint64_t>(procs) * o.per_process) {
    throw std::invalid_argument("fanout: more connections than --procs processes may hold");
  }
  std::fflush(stdout);
  std::fflush(stderr);
  std::vector<Child> children =
      fork_children(procs, [&](std::uint32_t i, int to_parent, int from_parent) {
        fanout_child(o, plan, i, procs, to_parent, from_parent);
      });
  ProcsStep out;
  for (auto& c : children) {
    unsigned connected = 0, failed = 0;
    double seconds = 0;
    char error[512] = {0};
    if (std::fscanf(c.from, " R %u %u %lf %511[^\n]", &connected, &failed, &seconds, error) >= 3) {
      out.connected += connected;
      out.failed += failed;
      out.connect_seconds = std::max(out.connect_seconds, seconds);
      if (out.first_error.empty() && failed > 0 && std::strcmp(error, "-") != 0) {
        out.first_error = error;
      }
    }
  }
  sleep_s(0.5);  // the last joins' presence traffic, which other processes receive
  CpuMeter server_cpu(o.server_pids);
  CpuMeter redis_cpu(o.redis_pid ? std::vector<pid_t>{o.redis_pid} : std::vector<pid_t>{});
  server_cpu.begin();
  redis_cpu.begin();
  const std::uint64_t start_ns = now_ns() + 200'000'000ULL;
  const std::string start = "S " + std::to_string(start_ns) + "\n";
  for (auto& c : children) (void)!::write(c.to, start.data(), start.size());
  const auto from_ns = start_ns + static_cast<std::uint64_t>(o.warmup * 1e9);
  const ServerWindow window =
      server_window(o.targets, from_ns, from_ns + static_cast<std::uint64_t>(o.duration * 1e9));
  double generator_cpu = 0;
  Fleet::StepResult& r = out.result;
  window.apply(r);
  for (auto& c : children) {
    unsigned long long v[9] = {0};
    unsigned unexpected = 0;
    double cpu = 0;
    if (std::fscanf(c.from, " D %llu %llu %llu %llu %llu %llu %llu %llu %llu %u %lf", &v[0], &v[1],
                    &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &unexpected, &cpu) == 11) {
      StepStats st;
      st.sent = v[0];
      st.sent_window = v[1];
      st.expected = v[2];
      st.delivered = v[3];
      st.delivered_window = v[4];
      st.reordered = v[5];
      st.duplicates = v[6];
      st.other_messages = v[7];
      st.send_errors = v[8];
      (void)read_line(c.from);  // the rest of the D line
      for (Histogram* h : {&st.same_pod, &st.cross_pod}) {
        const std::string line = read_line(c.from);
        if (line.size() < 2 || !h->parse(std::string_view(line).substr(2))) {
          throw std::runtime_error("fanout: a generator process sent a bad histogram");
        }
      }
      r.stats.merge(st);
      r.unexpected_closes += unexpected;
      generator_cpu += cpu;
    } else {
      throw std::runtime_error("fanout: a generator process ended without its results");
    }
  }
  server_cpu.end();
  redis_cpu.end();
  for (auto& c : children) (void)!::write(c.to, "Q\n", 2);
  reap(children);
  r.wall = server_cpu.wall_seconds();
  r.generator_cores = r.wall > 0 ? generator_cpu / r.wall : 0;
  r.server_cores = server_cpu.others_cores();
  r.redis_cores = redis_cpu.others_cores();
  r.machine_cores = server_cpu.machine_cores();
  return out;
}

}  // namespace

std::string run_idle(const Options& o) {
  const std::uint32_t n = o.connections ? o.connections : 1000;
  const std::uint32_t members = o.members ? o.members : 10;
  const std::uint32_t procs =
      o.procs ? o.procs : std::max(1U, (n + o.per_process - 1) / o.per_process);
  std::vector<std::uint32_t> steps;
  for (auto v : o.steps) {
    if (v > 0 && v < n && (steps.empty() || v > steps.back())) steps.push_back(v);
  }
  steps.push_back(n);
  Plan plan = make_plan(o, n, (n + members - 1) / members, 0);
  plan.room_block = members;

  const std::uint64_t rss0 = processes_rss_bytes(o.server_pids);
  const std::uint64_t tcp0 = kernel_tcp_mem_bytes();
  const std::uint64_t slab0 = kernel_slab_bytes();
  const std::uint64_t inuse0 = kernel_tcp_inuse();
  std::fflush(stdout);
  std::fflush(stderr);

  std::vector<Child> children =
      fork_children(procs, [&](std::uint32_t i, int to_parent, int from_parent) {
        idle_child(o, plan, i, procs, to_parent, from_parent);
      });

  struct Point {
    std::uint32_t sockets, open, failed;
    std::uint64_t refusals, rss, tcp, slab;
    double seconds;
  };
  std::vector<Point> points;
  std::string idle_error;
  const std::uint64_t t0 = now_ns();
  for (const std::uint32_t step : steps) {
    const std::string cmd = "N " + std::to_string(step) + "\n";
    for (auto& c : children) (void)!::write(c.to, cmd.data(), cmd.size());
    Point p{step, 0, 0, 0, 0, 0, 0, 0};
    for (auto& c : children) {
      unsigned a = 0, b = 0;
      unsigned long long r = 0;
      if (std::fscanf(c.from, " R %u %u %llu", &a, &b, &r) == 3) {
        p.open += a;
        p.failed += b;
        p.refusals += r;
      }
      char line[512] = {0};
      if (std::fgets(line, sizeof line, c.from) != nullptr) {
        std::string e(line);
        while (!e.empty() && (e.back() == '\n' || e.front() == ' ')) {
          if (e.back() == '\n')
            e.pop_back();
          else
            e.erase(0, 1);
        }
        if (e != "-" && idle_error.empty()) idle_error = e;
      }
    }
    p.seconds = (now_ns() - t0) / 1e9;
    sleep_s(1.0);  // let the servers finish what the joins started
    p.rss = processes_rss_bytes(o.server_pids);
    p.tcp = kernel_tcp_mem_bytes();
    p.slab = kernel_slab_bytes();
    points.push_back(p);
    std::fprintf(stderr, "[%s] idle: %u of %u sockets open, server RSS +%.1f MB\n", o.label.c_str(),
                 p.open, step, (static_cast<double>(p.rss) - rss0) / 1e6);
  }
  const std::uint64_t inuse1 = kernel_tcp_inuse();
  const Point& last = points.back();

  CpuMeter hold_cpu(o.server_pids);
  hold_cpu.begin();
  sleep_s(o.hold);
  hold_cpu.end();
  const std::uint64_t rss2 = processes_rss_bytes(o.server_pids);

  std::uint32_t unexpected = 0, still_open = 0;
  double child_cpu = 0;
  for (auto& c : children) (void)!::write(c.to, "Q\n", 2);
  for (auto& c : children) {
    unsigned a = 0, b = 0;
    double cpu = 0;
    if (std::fscanf(c.from, " C %u %u %lf", &a, &b, &cpu) == 3) {
      unexpected += a;
      still_open += b;
      child_cpu += cpu;
    }
  }
  reap(children);
  const double wall = (now_ns() - t0) / 1e9;

  auto per = [](std::uint32_t count, std::uint64_t after, std::uint64_t before) {
    return count ? (static_cast<double>(after) - static_cast<double>(before)) / count : 0.0;
  };
  JsonWriter j;
  j.begin_object();
  write_common(j, o, o.targets.size() > 1 ? "idle-pods" : "idle");
  j.field("connections", n).field("members_per_room", members);
  j.field("generator_processes", procs);
  j.field("connected", last.open).field("connect_failed", last.failed);
  j.field("http_refusals", last.refusals);
  if (!idle_error.empty()) j.field("first_error", idle_error);
  j.field("connect_seconds", last.seconds);
  j.field("hold_seconds", o.hold);
  j.field("unexpected_closes", unexpected);
  j.field("open_at_end", still_open);
  j.field("server_rss_before", rss0).field("server_rss_after", last.rss);
  j.field("server_rss_after_hold", rss2);
  j.field("server_rss_per_socket", per(last.open, last.rss, rss0));
  j.field("kernel_tcp_mem_per_socket", per(last.open, last.tcp, tcp0));
  j.field("kernel_slab_per_socket", per(last.open, last.slab, slab0));
  j.field("tcp_sockets_added", inuse1 - std::min(inuse0, inuse1));
  j.key("steps").begin_array();
  for (const Point& p : points) {
    j.begin_object();
    j.field("sockets", p.open).field("server_rss_delta", static_cast<double>(p.rss) - rss0);
    j.field("server_rss_per_socket", per(p.open, p.rss, rss0));
    j.field("kernel_tcp_mem_per_socket", per(p.open, p.tcp, tcp0));
    j.field("kernel_slab_per_socket", per(p.open, p.slab, slab0));
    j.end_object();
  }
  j.end_array();
  j.field("hold_server_cpu_cores", hold_cpu.others_cores());
  j.field("server_cpu_cores", hold_cpu.others_cores());
  j.field("generator_cpu_seconds", child_cpu);
  j.field("generator_cpu_cores", wall > 0 ? child_cpu / wall : 0.0);
  write_machine(j, hold_cpu.machine_cores(), hold_cpu.others_cores());
  j.end_object();
  std::fprintf(stderr,
               "[%s] idle: %u of %u sockets (%u procs) in %.1f s; server RSS %.0f B/socket, kernel "
               "TCP buffers %.0f B/socket, slab %.0f B/socket (both ends); %u unexpected closes "
               "in %.0f s hold\n",
               o.label.c_str(), last.open, n, procs, last.seconds, per(last.open, last.rss, rss0),
               per(last.open, last.tcp, tcp0), per(last.open, last.slab, slab0), unexpected,
               o.hold);
  return j.str();
}

}  // namespace realtime::bench
