// How many CPUs this process may really use: its affinity mask (taskset, cpuset) and the CPU
// quota of its cgroup (v1 cpu.cfs_quota_us / cpu.cfs_period_us, v2 cpu.max, the tightest of the
// cgroup and its ancestors), not the machine's core count. The default thread count comes from it.
#pragma once

#include <optional>
#include <string>

namespace moe {

struct CpuLimits {
  int online = 0;      // CPUs the machine has online (0: unknown)
  int affinity = 0;    // CPUs in this process's affinity mask (0: unknown)
  double quota = 0.0;  // cgroup CPU quota in CPUs, e.g. 1.5 (0: no quota)
};

// CPUs usable under the limits: the affinity count (else online), capped by the quota rounded
// up (a 1.5-CPU quota still runs two threads usefully), at least 1.
int usable_cpus(const CpuLimits& limits);

// The limits of the running process. `root` prefixes every path read (/proc/self/cgroup,
// /proc/self/mountinfo, the cgroup files), so tests can point it at a fake tree; with a
// non-empty root the affinity and online counts are left 0.
CpuLimits read_cpu_limits(const std::string& root = "");

// cgroup v2 cpu.max ("max 100000", "150000 100000"): the quota in CPUs, nullopt for none or junk.
std::optional<double> parse_cgroup2_cpu_max(const std::string& text);
// cgroup v1 cpu.cfs_quota_us and cpu.cfs_period_us: the quota in CPUs, nullopt for -1 or junk.
std::optional<double> parse_cgroup1_quota(const std::string& quota_us, const std::string& period_us);

// usable_cpus(read_cpu_limits()), computed once per process.
int process_usable_cpus();

}  // namespace moe
