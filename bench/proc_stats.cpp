#include "proc_stats.hpp"

#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

#include <sys/resource.h>
#include <unistd.h>

namespace realtime::bench {

double process_cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return 0;
  // The command name (field 2) may hold spaces: fields are counted after its closing parenthesis.
  const auto close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(line.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; fields >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) {
      stime = std::stoull(field);
      break;
    }
  }
  static const long ticks = sysconf(_SC_CLK_TCK);
  return static_cast<double>(utime + stime) / static_cast<double>(ticks);
}

double processes_cpu_seconds(const std::vector<pid_t>& pids) {
  double total = 0;
  for (auto pid : pids) total += process_cpu_seconds(pid);
  return total;
}

double self_cpu_seconds() {
  rusage self{}, children{};
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &children);
  auto secs = [](const timeval& tv) { return tv.tv_sec + tv.tv_usec / 1e6; };
  return secs(self.ru_utime) + secs(self.ru_stime) + secs(children.ru_utime) +
         secs(children.ru_stime);
}

std::uint64_t process_rss_bytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

std::uint64_t processes_rss_bytes(const std::vector<pid_t>& pids) {
  std::uint64_t total = 0;
  for (auto pid : pids) total += process_rss_bytes(pid);
  return total;
}

namespace {
std::uint64_t sockstat_tcp_field(const char* name) {
  std::ifstream in("/proc/net/sockstat");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("TCP:", 0) != 0) continue;
    std::istringstream words(line.substr(4));
    std::string key;
    std::uint64_t value = 0;
    while (words >> key >> value) {
      if (key == name) return value;
    }
  }
  return 0;
}
}  // namespace

std::uint64_t kernel_tcp_mem_bytes() {
  return sockstat_tcp_field("mem") * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
}

std::uint64_t kernel_tcp_inuse() { return sockstat_tcp_field("inuse"); }

std::uint64_t kernel_slab_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Slab:", 0) == 0) return std::stoull(line.substr(5)) * 1024;
  }
  return 0;
}

double machine_busy_seconds() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  unsigned long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0,
                     steal = 0;
  if (!(in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal)) return 0;
  static const long ticks = sysconf(_SC_CLK_TCK);
  return static_cast<double>(user + nice + system + irq + softirq + steal) /
         static_cast<double>(ticks);
}

double load_average() {
  std::ifstream in("/proc/loadavg");
  double one = 0;
  in >> one;
  return one;
}

std::uint64_t now_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

void CpuMeter::begin() {
  t0_ = now_ns();
  others0_ = processes_cpu_seconds(pids_);
  self0_ = self_cpu_seconds();
  machine0_ = machine_busy_seconds();
}

void CpuMeter::end() {
  wall_ = static_cast<double>(now_ns() - t0_) / 1e9;
  others_ = processes_cpu_seconds(pids_) - others0_;
  self_ += self_cpu_seconds() - self0_;
  machine_ = machine_busy_seconds() - machine0_;
}

}  // namespace realtime::bench
