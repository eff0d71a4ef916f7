// CPU limits of this process: sched_getaffinity plus the cgroup v1/v2 CPU quota found through
// /proc/self/cgroup and /proc/self/mountinfo, walking from the process's cgroup up to the mount.
#include "runtime/cpu_limits.h"

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

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

// The cgroup path of this process in the v2 hierarchy (`v2`) or the v1 hierarchy with `cpu`.
std::optional<std::string> cgroup_path(const std::string& proc_cgroup, bool v2) {
  std::istringstream in(proc_cgroup);
  for (std::string line; std::getline(in, line);) {
    const size_t c1 = line.find(':'), c2 = line.find(':', c1 + 1);
    if (c1 == std::string::npos || c2 == std::string::npos) continue;
    const std::string controllers = line.substr(c1 + 1, c2 - c1 - 1);
    if (v2 && line.compare(0, c1, "0") == 0 && controllers.empty()) return line.substr(c2 + 1);
    if (!v2) {
      for (const std::string& c : split(controllers, ',')) {
        if (c == "cpu") return line.substr(c2 + 1);
      }
    }
  }
  return std::nullopt;
}

// The mount of the v2 hierarchy, or of the v1 hierarchy carrying the cpu controller.
std::optional<CgroupDir> cgroup_mount(const std::string& mountinfo, bool v2, const std::string& path) {
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
      if (std::find(opts.begin(), opts.end(), "cpu") == opts.end()) continue;
    }
    // The process's path relative to the mount's root (a cgroup namespace may hide the prefix).
    std::string rel = path;
    if (root != "/" && rel.compare(0, root.size(), root) == 0) rel = rel.substr(root.size());
    if (rel == "/") rel.clear();
    return CgroupDir{mount + rel, mount};
  }
  return std::nullopt;
}

// The tightest quota from `d.dir` up to `d.mount`; `read_one(folder)` reads one level's quota.
template <typename ReadOne>
double tightest_quota(const std::string& root, const CgroupDir& d, ReadOne read_one) {
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

double cgroup_quota(const std::string& root) {
  const std::string proc_cgroup = read_text(root + "/proc/self/cgroup");
  const std::string mountinfo = read_text(root + "/proc/self/mountinfo");
  double quota = 0.0;
  auto take = [&](double q) {
    if (q > 0 && (quota == 0.0 || q < quota)) quota = q;
  };
  if (auto path = cgroup_path(proc_cgroup, true)) {
    if (auto d = cgroup_mount(mountinfo, true, *path)) {
      take(tightest_quota(root, *d,
                          [](const std::string& dir) { return parse_cgroup2_cpu_max(read_text(dir + "/cpu.max")); }));
    }
  }
  if (auto path = cgroup_path(proc_cgroup, false)) {
    if (auto d = cgroup_mount(mountinfo, false, *path)) {
      take(tightest_quota(root, *d, [](const std::string& dir) {
        return parse_cgroup1_quota(read_text(dir + "/cpu.cfs_quota_us"), read_text(dir + "/cpu.cfs_period_us"));
      }));
    }
  }
  return quota;
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
