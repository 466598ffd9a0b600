// How many CPUs this process may use: the default number of I/O threads (HubOptions::threads 0).
// std::thread::hardware_concurrency() counts the machine's CPUs, not those of the CPU affinity mask
// (taskset, cpusets) nor the cgroup's CPU quota (a container's CPU limit).
//
// Pure parsing here, unit tested; the reading of /proc and /sys is in cpu_count.cpp.
#pragma once

#include <optional>
#include <string_view>

namespace realtime::detail {

// The CPUs a cgroup v2 `cpu.max` file allows ("QUOTA PERIOD", in microseconds): QUOTA / PERIOD
// rounded up, at least 1. nullopt for "max" (no quota) or text that is not such a line.
std::optional<unsigned> cpus_of_cpu_max(std::string_view text);

// The cgroup v2 path of this process, from /proc/self/cgroup's "0::PATH" line; nullopt when there
// is none (cgroup v1 only).
std::optional<std::string_view> cgroup_v2_path(std::string_view proc_self_cgroup);

}  // namespace realtime::detail
