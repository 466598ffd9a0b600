// Figures read from /proc: CPU time and resident memory of a process, and the kernel's socket and
// slab memory. Every reader returns 0 (or an empty value) when the figure cannot be read.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <sys/types.h>

namespace realtime::bench {

// utime + stime of a process, in seconds (from /proc/PID/stat).
double process_cpu_seconds(pid_t pid);
// The sum over several processes.
double processes_cpu_seconds(const std::vector<pid_t>& pids);
// This process and its finished, waited-for children (getrusage).
double self_cpu_seconds();
// VmRSS of a process in bytes (from /proc/PID/status).
std::uint64_t process_rss_bytes(pid_t pid);
std::uint64_t processes_rss_bytes(const std::vector<pid_t>& pids);
// "TCP: ... mem N" of /proc/net/sockstat: pages of socket buffer memory, in bytes.
std::uint64_t kernel_tcp_mem_bytes();
// "TCP: inuse N".
std::uint64_t kernel_tcp_inuse();
// Slab: of /proc/meminfo, in bytes (struct sock, inodes, files, epoll items of both ends).
std::uint64_t kernel_slab_bytes();
// CPU time used by the whole machine (every process, user + system + interrupts), in seconds, from
// the first line of /proc/stat.
double machine_busy_seconds();
// The 1-minute load average.
double load_average();
// Wall clock, monotonic, in nanoseconds (CLOCK_MONOTONIC, the same in every process).
std::uint64_t now_ns() noexcept;

// CPU of a set of processes (and of this one) over an interval: begin() then end().
class CpuMeter {
 public:
  explicit CpuMeter(std::vector<pid_t> pids = {}) : pids_(std::move(pids)) {}
  void begin();
  void end();
  double wall_seconds() const noexcept { return wall_; }
  // Cores used on average over the interval (1.0 = one core busy).
  double others_cores() const noexcept { return wall_ > 0 ? others_ / wall_ : 0; }
  double self_cores() const noexcept { return wall_ > 0 ? self_ / wall_ : 0; }
  // Cores busy on the whole machine, everything included.
  double machine_cores() const noexcept { return wall_ > 0 ? machine_ / wall_ : 0; }
  // Adds CPU seconds spent elsewhere by this side (generator child processes).
  void add_self_seconds(double s) noexcept { self_ += s; }

 private:
  std::vector<pid_t> pids_;
  std::uint64_t t0_ = 0;
  double others0_ = 0, self0_ = 0, machine0_ = 0;
  double wall_ = 0, others_ = 0, self_ = 0, machine_ = 0;
};

}  // namespace realtime::bench
