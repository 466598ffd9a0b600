#include "processes.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include "json_writer.hpp"
#include "proc_stats.hpp"
#include "report.hpp"

namespace realtime::bench {

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
// three "H histogram" lines (same pod, other pod, send lag), then closes its sockets on "Q".
// Latency needs no shared clock beyond CLOCK_MONOTONIC, which every process of the machine shares.
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
      const auto r =
          fleet.run_step(o, Schedule::Mode::open_loop, o.rate, o.warmup, o.duration, start, false);
      const StepStats& st = r.stats;
      dprintf(to_parent, "D %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %u %.4f\n",
              static_cast<unsigned long long>(st.sent),
              static_cast<unsigned long long>(st.sent_window),
              static_cast<unsigned long long>(st.expected),
              static_cast<unsigned long long>(st.delivered),
              static_cast<unsigned long long>(st.delivered_window),
              static_cast<unsigned long long>(st.reordered),
              static_cast<unsigned long long>(st.duplicates),
              static_cast<unsigned long long>(st.other_messages),
              static_cast<unsigned long long>(st.send_errors),
              static_cast<unsigned long long>(st.received_window),
              static_cast<unsigned long long>(st.misrouted), r.unexpected_closes,
              r.generator_cores * r.window_wall);  // CPU seconds in the measured window
      dprintf(to_parent, "H %s\nH %s\nH %s\n", st.same_pod.serialize().c_str(),
              st.cross_pod.serialize().c_str(), st.send_lag.serialize().c_str());
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

}  // namespace

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
  // The CPU figures are over the measured window, as the children's own.
  CpuMeter server_cpu(o.server_pids);
  CpuMeter redis_cpu(o.redis_pid ? std::vector<pid_t>{o.redis_pid} : std::vector<pid_t>{});
  CpuMeter step_wall;
  step_wall.begin();
  const std::uint64_t start_ns = now_ns() + 200'000'000ULL;
  const std::string start = "S " + std::to_string(start_ns) + "\n";
  for (auto& c : children) (void)!::write(c.to, start.data(), start.size());
  const auto from_ns = start_ns + static_cast<std::uint64_t>(o.warmup * 1e9);
  const ServerWindow window = server_window(
      o.server_metrics ? o.targets : std::vector<Endpoint>{}, o.redis_port, from_ns,
      from_ns + static_cast<std::uint64_t>(o.duration * 1e9), {&server_cpu, &redis_cpu});
  double generator_cpu = 0;
  Fleet::StepResult& r = out.result;
  window.apply(r);
  for (auto& c : children) {
    unsigned long long v[11] = {0};
    unsigned unexpected = 0;
    double cpu = 0;
    if (std::fscanf(c.from, " D %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %u %lf",
                    &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &v[10],
                    &unexpected, &cpu) == 13) {
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
      st.received_window = v[9];
      st.misrouted = v[10];
      (void)read_line(c.from);  // the rest of the D line
      for (Histogram* h : {&st.same_pod, &st.cross_pod, &st.send_lag}) {
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
  step_wall.end();
  for (auto& c : children) (void)!::write(c.to, "Q\n", 2);
  reap(children);
  r.wall = step_wall.wall_seconds();
  r.window_wall = server_cpu.wall_seconds();
  r.generator_cores = r.window_wall > 0 ? generator_cpu / r.window_wall : 0;
  r.server_cores = server_cpu.others_cores();
  r.redis_cores = redis_cpu.others_cores();
  r.machine_cores = server_cpu.machine_cores();
  return out;
}

// idle: several generator processes (each under the fd limit) hold their share of the sockets;
// this process only measures and coordinates them through pipes.
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
