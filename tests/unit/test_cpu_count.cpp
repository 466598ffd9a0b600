// The default number of I/O threads: the parsing of cgroup v2's cpu.max and /proc/self/cgroup, and
// the count itself within the CPUs the process may use.
#include <gtest/gtest.h>
#include <sched.h>

#include "hub/cpu_count.hpp"
#include "realtime/hub.hpp"

namespace realtime::detail {
namespace {

TEST(CpuMax, NoQuota) {
  EXPECT_EQ(cpus_of_cpu_max("max 100000\n"), std::nullopt);
  EXPECT_EQ(cpus_of_cpu_max("max 100000"), std::nullopt);
}

TEST(CpuMax, QuotaOverPeriodRoundedUp) {
  EXPECT_EQ(cpus_of_cpu_max("200000 100000\n"), 2U);
  EXPECT_EQ(cpus_of_cpu_max("150000 100000\n"), 2U);  // 1.5 CPUs: 2 threads
  EXPECT_EQ(cpus_of_cpu_max("100000 100000\n"), 1U);
  EXPECT_EQ(cpus_of_cpu_max("400000 50000"), 8U);
}

TEST(CpuMax, AtLeastOne) {
  EXPECT_EQ(cpus_of_cpu_max("1000 100000\n"), 1U);  // 1 % of a CPU
  EXPECT_EQ(cpus_of_cpu_max("0 100000\n"), 1U);
}

TEST(CpuMax, NotACpuMaxLine) {
  for (const char* text : {"", "\n", "max", "100000", "abc 100000", "100000 abc", "100000 0",
                           "-1 100000", "100000 100000 7", "1e5 100000"}) {
    EXPECT_EQ(cpus_of_cpu_max(text), std::nullopt) << text;
  }
}

TEST(CgroupPath, TheV2Line) {
  EXPECT_EQ(cgroup_v2_path("0::/\n"), std::optional<std::string_view>("/"));
  EXPECT_EQ(cgroup_v2_path("0::/system.slice/realtime.service\n"),
            std::optional<std::string_view>("/system.slice/realtime.service"));
  // Hybrid: v1 controllers first, then the unified hierarchy.
  EXPECT_EQ(cgroup_v2_path("12:cpu,cpuacct:/docker/abc\n1:name=systemd:/x\n0::/kube/pod1\n"),
            std::optional<std::string_view>("/kube/pod1"));
}

TEST(CgroupPath, NoneOnV1Only) {
  EXPECT_EQ(cgroup_v2_path("12:cpu,cpuacct:/docker/abc\n1:name=systemd:/x\n"), std::nullopt);
  EXPECT_EQ(cgroup_v2_path(""), std::nullopt);
}

TEST(DefaultThreadCount, WithinTheAffinityMask) {
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
  const unsigned threads = default_thread_count();
  EXPECT_GE(threads, 1U);
  EXPECT_LE(threads, static_cast<unsigned>(CPU_COUNT(&set)));
}

}  // namespace
}  // namespace realtime::detail
