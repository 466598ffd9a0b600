#include "hub/cpu_count.hpp"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>

#include <sched.h>

#include "realtime/hub.hpp"

namespace realtime {
namespace detail {
namespace {

std::optional<std::uint64_t> parse_number(std::string_view text) {
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::string trimmed(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  return std::string(text);
}

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return content.str();
}

// The CPUs of the affinity mask; the machine's when it cannot be read.
unsigned affinity_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int count = CPU_COUNT(&set);
    if (count > 0) return static_cast<unsigned>(count);
  }
  return std::max(1U, std::thread::hardware_concurrency());
}

// The smallest quota of this process's cgroup and its ancestors (a limit on a parent holds for its
// children); nullopt when none is set or none can be read.
std::optional<unsigned> cgroup_quota_cpus() {
  const auto self = read_file("/proc/self/cgroup");
  if (!self) return std::nullopt;
  const auto path = cgroup_v2_path(*self);
  if (!path) return std::nullopt;
  std::string dir(*path);
  std::optional<unsigned> cpus;
  for (;;) {
    if (const auto text = read_file("/sys/fs/cgroup" + dir + (dir == "/" ? "" : "/") + "cpu.max")) {
      if (const auto here = cpus_of_cpu_max(*text)) cpus = std::min(cpus.value_or(*here), *here);
    }
    if (dir == "/" || dir.empty()) break;
    const auto slash = dir.rfind('/');
    dir = slash == 0 || slash == std::string::npos ? "/" : dir.substr(0, slash);
  }
  return cpus;
}

}  // namespace

std::optional<unsigned> cpus_of_cpu_max(std::string_view text) {
  const std::string line = trimmed(text);
  const auto space = line.find(' ');
  if (space == std::string::npos) return std::nullopt;
  const std::string_view quota_text = std::string_view(line).substr(0, space);
  const std::string_view period_text = std::string_view(line).substr(space + 1);
  const auto period = parse_number(period_text);
  if (!period || *period == 0) return std::nullopt;
  if (quota_text == "max") return std::nullopt;
  const auto quota = parse_number(quota_text);
  if (!quota) return std::nullopt;
  const std::uint64_t cpus = (*quota + *period - 1) / *period;
  return static_cast<unsigned>(std::clamp<std::uint64_t>(cpus, 1, 1U << 20));
}

std::optional<std::string_view> cgroup_v2_path(std::string_view proc_self_cgroup) {
  while (!proc_self_cgroup.empty()) {
    const auto end = proc_self_cgroup.find('\n');
    const std::string_view line = proc_self_cgroup.substr(0, end);
    if (line.starts_with("0::")) {
      const std::string_view path = line.substr(3);
      if (path.empty() || path.front() != '/') return std::nullopt;
      return path;
    }
    if (end == std::string_view::npos) break;
    proc_self_cgroup.remove_prefix(end + 1);
  }
  return std::nullopt;
}

}  // namespace detail

unsigned default_thread_count() {
  const unsigned cpus = detail::affinity_cpus();
  const auto quota = detail::cgroup_quota_cpus();
  return std::max(1U, quota ? std::min(cpus, *quota) : cpus);
}

}  // namespace realtime
