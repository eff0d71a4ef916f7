// Limits of this process: sched_getaffinity and the cgroup v1/v2 CPU quota; MemTotal + SwapTotal,
// the cgroup v1/v2 memory limit and the address-space rlimits. Cgroup files are found through
// /proc/self/cgroup and /proc/self/mountinfo, walking from the process's cgroup up to the mount.
#include "runtime/process_limits.h"

#include <sched.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "util/error.h"

namespace moe {
namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  if (!in) return {};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

std::optional<double> parse_number(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\n");
  size_t b = s.find_last_not_of(" \t\n");
  if (a == std::string::npos) return std::nullopt;
  const std::string t = s.substr(a, b - a + 1);
  char* end = nullptr;
  const double v = std::strtod(t.c_str(), &end);
  if (end == t.c_str() || *end != '\0' || !std::isfinite(v)) return std::nullopt;
  return v;
}

// One cgroup hierarchy: the folder of this process's cgroup and the mount point above it.
struct CgroupDir {
  std::string dir, mount;
};

// The cgroup path of this process in the v2 hierarchy (`v2`) or the v1 hierarchy with `controller`.
std::optional<std::string> cgroup_path(const std::string& proc_cgroup, bool v2, const std::string& controller) {
  std::istringstream in(proc_cgroup);
  for (std::string line; std::getline(in, line);) {
    const size_t c1 = line.find(':'), c2 = line.find(':', c1 + 1);
    if (c1 == std::string::npos || c2 == std::string::npos) continue;
    const std::string controllers = line.substr(c1 + 1, c2 - c1 - 1);
    if (v2 && line.compare(0, c1, "0") == 0 && controllers.empty()) return line.substr(c2 + 1);
    if (!v2) {
      for (const std::string& c : split(controllers, ',')) {
        if (c == controller) return line.substr(c2 + 1);
      }
    }
  }
  return std::nullopt;
}

// The mount of the v2 hierarchy, or of the v1 hierarchy carrying `controller`.
std::optional<CgroupDir> cgroup_mount(const std::string& mountinfo, bool v2, const std::string& controller,
                                      const std::string& path) {
  std::istringstream in(mountinfo);
  for (std::string line; std::getline(in, line);) {
    const size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream left(line.substr(0, dash)), right(line.substr(dash + 3));
    std::string id, parent, devno, root, mount, fstype, source, super;
    left >> id >> parent >> devno >> root >> mount;
    right >> fstype >> source >> super;
    if (v2 ? fstype != "cgroup2" : fstype != "cgroup") continue;
    if (!v2) {
      const std::vector<std::string> opts = split(super, ',');
      if (std::find(opts.begin(), opts.end(), controller) == opts.end()) continue;
    }
    // The process's path relative to the mount's root (a cgroup namespace may hide the prefix).
    std::string rel = path;
    if (root != "/" && rel.compare(0, root.size(), root) == 0) rel = rel.substr(root.size());
    if (rel == "/") rel.clear();
    return CgroupDir{mount + rel, mount};
  }
  return std::nullopt;
}

// The tightest limit from `d.dir` up to `d.mount`; `read_one(folder)` reads one level's limit.
template <typename ReadOne>
double tightest_limit(const std::string& root, const CgroupDir& d, ReadOne read_one) {
  double best = 0.0;
  std::string dir = d.dir;
  for (int depth = 0; depth < 64; ++depth) {
    if (std::optional<double> q = read_one(root + dir); q && *q > 0 && (best == 0.0 || *q < best)) best = *q;
    if (dir.size() <= d.mount.size()) break;
    const size_t slash = dir.find_last_of('/');
    if (slash == std::string::npos || slash < d.mount.size()) break;
    dir = slash == 0 ? "/" : dir.substr(0, slash);
    if (dir.size() < d.mount.size()) dir = d.mount;
  }
  return best;
}

// The tightest limit of `controller` over the v2 and v1 hierarchies (0: none). `v2_file(dir)` and
// `v1_file(dir)` read one folder's limit.
template <typename V2, typename V1>
double cgroup_limit(const std::string& root, const std::string& controller, V2 v2_file, V1 v1_file) {
  const std::string proc_cgroup = read_text(root + "/proc/self/cgroup");
  const std::string mountinfo = read_text(root + "/proc/self/mountinfo");
  double limit = 0.0;
  auto take = [&](double q) {
    if (q > 0 && (limit == 0.0 || q < limit)) limit = q;
  };
  if (auto path = cgroup_path(proc_cgroup, true, controller)) {
    if (auto d = cgroup_mount(mountinfo, true, controller, *path)) take(tightest_limit(root, *d, v2_file));
  }
  if (auto path = cgroup_path(proc_cgroup, false, controller)) {
    if (auto d = cgroup_mount(mountinfo, false, controller, *path)) take(tightest_limit(root, *d, v1_file));
  }
  return limit;
}

double cgroup_quota(const std::string& root) {
  return cgroup_limit(
      root, "cpu", [](const std::string& dir) { return parse_cgroup2_cpu_max(read_text(dir + "/cpu.max")); },
      [](const std::string& dir) {
        return parse_cgroup1_quota(read_text(dir + "/cpu.cfs_quota_us"), read_text(dir + "/cpu.cfs_period_us"));
      });
}

// A memory limit file: bytes, or nullopt for "max", the v1 "no limit" value (>= 2^62) or junk.
std::optional<double> parse_memory_limit(const std::string& text) {
  const std::optional<double> v = parse_number(text);
  if (!v || *v <= 0 || *v >= 4.6e18) return std::nullopt;
  return *v;
}

double cgroup_memory(const std::string& root) {
  return cgroup_limit(
      root, "memory", [](const std::string& dir) { return parse_memory_limit(read_text(dir + "/memory.max")); },
      [](const std::string& dir) { return parse_memory_limit(read_text(dir + "/memory.limit_in_bytes")); });
}

// "MemTotal:       24567890 kB" -> bytes; 0 if absent.
uint64_t meminfo_bytes(const std::string& meminfo, const std::string& key) {
  std::istringstream in(meminfo);
  for (std::string line; std::getline(in, line);) {
    if (line.compare(0, key.size() + 1, key + ":") != 0) continue;
    const std::optional<double> kb = parse_number(line.substr(key.size() + 1, line.find("kB") - key.size() - 1));
    return kb ? static_cast<uint64_t>(*kb) * 1024 : 0;
  }
  return 0;
}

}  // namespace

std::optional<double> parse_cgroup2_cpu_max(const std::string& text) {
  std::istringstream in(text);
  std::string quota, period;
  if (!(in >> quota >> period) || quota == "max") return std::nullopt;
  const std::optional<double> q = parse_number(quota), p = parse_number(period);
  if (!q || !p || *q <= 0 || *p <= 0) return std::nullopt;
  return *q / *p;
}

std::optional<double> parse_cgroup1_quota(const std::string& quota_us, const std::string& period_us) {
  const std::optional<double> q = parse_number(quota_us), p = parse_number(period_us);
  if (!q || !p || *q <= 0 || *p <= 0) return std::nullopt;
  return *q / *p;
}

int usable_cpus(const CpuLimits& limits) {
  int n = limits.affinity > 0 ? limits.affinity : limits.online;
  if (n < 1) n = 1;
  if (limits.quota > 0) n = std::min(n, static_cast<int>(std::min(std::ceil(limits.quota - 1e-9), 1e6)));
  return std::max(n, 1);
}

CpuLimits read_cpu_limits(const std::string& root) {
  CpuLimits l;
  if (root.empty()) {
    l.online = static_cast<int>(std::thread::hardware_concurrency());
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) l.affinity = CPU_COUNT(&set);
  }
  l.quota = cgroup_quota(root);
  return l;
}

int process_usable_cpus() {
  static const int n = usable_cpus(read_cpu_limits());
  return n;
}

}  // namespace moe

namespace moe {

MemoryLimits read_memory_limits(const std::string& root) {
  MemoryLimits l;
  const std::string meminfo = read_text(root + "/proc/meminfo");
  l.physical = meminfo_bytes(meminfo, "MemTotal");
  l.swap = meminfo_bytes(meminfo, "SwapTotal");
  l.cgroup = static_cast<uint64_t>(cgroup_memory(root));
  if (root.empty()) {
    for (int resource : {RLIMIT_AS, RLIMIT_DATA}) {
      rlimit r{};
      if (getrlimit(resource, &r) == 0 && r.rlim_cur != RLIM_INFINITY && (l.rlimit == 0 || r.rlim_cur < l.rlimit)) {
        l.rlimit = r.rlim_cur;
      }
    }
  }
  return l;
}

uint64_t usable_memory(const MemoryLimits& l) {
  uint64_t n = l.physical == 0 ? 0 : l.physical + l.swap;
  for (uint64_t cap : {l.cgroup, l.rlimit}) {
    if (cap != 0 && (n == 0 || cap < n)) n = cap;
  }
  return n;
}

std::string format_byte_size(long double bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"};
  int u = 0;
  while (bytes >= 1024 && u < 8) {
    bytes /= 1024;
    ++u;
  }
  if (u == 0) return fmt::format("{} B", static_cast<uint64_t>(bytes));
  return fmt::format("{:.1f} {}", static_cast<double>(bytes), kUnits[u]);
}

std::string describe_memory_limits(const MemoryLimits& l) {
  std::string s = fmt::format("physical memory {} + swap {}", format_byte_size(l.physical), format_byte_size(l.swap));
  s += l.cgroup ? fmt::format("; cgroup limit {}", format_byte_size(l.cgroup)) : "; no cgroup limit";
  s += l.rlimit ? fmt::format("; address-space limit {}", format_byte_size(l.rlimit)) : "";
  return s;
}

void check_fits_in_memory(long double bytes, const std::string& component, const std::string& what) {
  static const MemoryLimits limits = read_memory_limits();
  const uint64_t usable = usable_memory(limits);
  if (usable == 0 || bytes <= static_cast<long double>(usable)) return;
  fail(component, "{} needs {}, more than the {} this process may use ({})", what, format_byte_size(bytes),
       format_byte_size(usable), describe_memory_limits(limits));
}

void check_fits_on_disk(long double bytes, const std::string& path, const std::string& component,
                        const std::string& what) {
  std::filesystem::path dir = std::filesystem::absolute(path);
  std::error_code ec;
  while (!std::filesystem::is_directory(dir, ec) && dir.has_parent_path() && dir != dir.parent_path()) {
    dir = dir.parent_path();
  }
  struct statvfs st {};
  if (statvfs(dir.c_str(), &st) != 0) return;
  const long double free_bytes = static_cast<long double>(st.f_bavail) * st.f_frsize;
  if (bytes <= free_bytes) return;
  fail(component, "{} needs {} of disk, more than the {} free in {}", what, format_byte_size(bytes),
       format_byte_size(free_bytes), dir.string());
}

std::string boot_id() {
  std::string id = read_text("/proc/sys/kernel/random/boot_id");
  while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
  return id;
}

uint64_t resident_bytes_now() {
  std::ifstream in("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  in >> size >> resident;
  return resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

uint64_t peak_resident_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("VmHWM:")) return std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;  // "VmHWM: N kB"
  }
  return 0;
}

bool reset_peak_resident() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

}  // namespace moe
