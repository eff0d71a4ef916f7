// What this process may really use. CPUs: its affinity mask (taskset, cpuset) and the CPU quota of
// its cgroup (v1 cpu.cfs_quota_us / cpu.cfs_period_us, v2 cpu.max, the tightest of the cgroup and
// its ancestors), not the machine's core count; the default thread count comes from it. Memory:
// physical + swap, capped by the cgroup limit (v2 memory.max, v1 memory.limit_in_bytes) and by
// RLIMIT_AS / RLIMIT_DATA; a size from a config or a flag is checked against it before allocating,
// so it fails with an error naming the field instead of an out-of-memory kill half way.
#pragma once

#include <cstdint>
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

struct MemoryLimits {
  uint64_t physical = 0;  // MemTotal (0: unknown)
  uint64_t swap = 0;      // SwapTotal
  uint64_t cgroup = 0;    // the tightest cgroup memory limit on the way up (0: none)
  uint64_t rlimit = 0;    // the smaller of RLIMIT_AS and RLIMIT_DATA (0: unlimited)
};

// Usable bytes under the limits (physical + swap, capped by cgroup and rlimit); 0 if unknown.
uint64_t usable_memory(const MemoryLimits& limits);
// `root` prefixes /proc and cgroup paths as in read_cpu_limits; the rlimits are read only for "".
MemoryLimits read_memory_limits(const std::string& root = "");
// Where the usable figure comes from, e.g. "physical memory 23.4 GiB + swap 0 B; no cgroup limit".
std::string describe_memory_limits(const MemoryLimits& limits);

// "1.5 GiB", "3.4 PiB" (binary units, also for sizes far beyond uint64).
std::string format_byte_size(long double bytes);

// Throws moe::Error "[component] <what> needs <bytes>, more than the <usable> this process may use
// (<where from>)" when `bytes` (any size, even beyond uint64) exceeds the usable memory. `what`
// names the field and value that set the size, e.g. "num_hidden_layers = 1000000000: the weights".
void check_fits_in_memory(long double bytes, const std::string& component, const std::string& what);

// The same against the free space of the file system holding `path` (its nearest existing folder).
void check_fits_on_disk(long double bytes, const std::string& path, const std::string& component,
                        const std::string& what);

// This boot's id (/proc/sys/kernel/random/boot_id, without its newline); empty where it cannot be read.
// What per-boot caches key on (moe run's read ceiling, the pack cache's small-pages marker).
std::string boot_id();

// This process's resident memory now (/proc/self/statm) and its peak since start or since the last
// reset_peak_resident (VmHWM); 0 where /proc cannot be read.
uint64_t resident_bytes_now();
uint64_t peak_resident_bytes();
// Starts a new peak at the current resident size (writes 5 to /proc/self/clear_refs, Linux 4.0 on);
// false where that is not allowed (the peak then stays the process's).
bool reset_peak_resident();

}  // namespace moe
