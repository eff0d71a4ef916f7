// Process limits: the default thread count from the affinity mask and the cgroup v1/v2 CPU quota,
// the usable memory from meminfo and the cgroup memory limit, read from fake /proc and cgroup trees.
#include "runtime/process_limits.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "util/error.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

TEST(CpuLimits, UsableCpusTakesTheTightestLimit) {
  EXPECT_EQ(usable_cpus({}), 1);
  EXPECT_EQ(usable_cpus({.online = 8}), 8);
  EXPECT_EQ(usable_cpus({.online = 8, .affinity = 2}), 2);
  EXPECT_EQ(usable_cpus({.online = 8, .affinity = 6, .quota = 1.5}), 2);  // a partial CPU still helps
  EXPECT_EQ(usable_cpus({.online = 8, .affinity = 6, .quota = 4.0}), 4);
  EXPECT_EQ(usable_cpus({.online = 8, .affinity = 6, .quota = 0.1}), 1);
  EXPECT_EQ(usable_cpus({.online = 8, .affinity = 2, .quota = 16.0}), 2);
  EXPECT_EQ(usable_cpus({.online = 0, .affinity = 0, .quota = 3.0}), 1);
}

TEST(CpuLimits, ParsesQuotaFiles) {
  EXPECT_FALSE(parse_cgroup2_cpu_max("max 100000\n"));
  EXPECT_DOUBLE_EQ(*parse_cgroup2_cpu_max("150000 100000\n"), 1.5);
  EXPECT_DOUBLE_EQ(*parse_cgroup2_cpu_max("200000 50000"), 4.0);
  for (const char* bad : {"", "junk", "0 100000", "-5 100000", "100000 0", "100000", "nan 100000"}) {
    EXPECT_FALSE(parse_cgroup2_cpu_max(bad)) << bad;
  }
  EXPECT_FALSE(parse_cgroup1_quota("-1\n", "100000\n"));
  EXPECT_DOUBLE_EQ(*parse_cgroup1_quota("300000\n", "100000\n"), 3.0);
  EXPECT_FALSE(parse_cgroup1_quota("", "100000"));
  EXPECT_FALSE(parse_cgroup1_quota("100000", "x"));
}

class FakeRoot : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("moe_cpu_limits_" + std::to_string(::getpid()) + "_" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "proc/self");
  }
  void TearDown() override { fs::remove_all(root_); }
  void write(const std::string& rel, const std::string& text) {
    const fs::path p = root_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }
  double quota() { return read_cpu_limits(root_.string()).quota; }
  fs::path root_;
};

TEST_F(FakeRoot, CgroupV2QuotaOfTheProcessAndItsAncestors) {
  write("proc/self/cgroup", "0::/jobs/build\n");
  write("proc/self/mountinfo",
        "23 1 0:21 / /proc rw - proc proc rw\n"
        "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n");
  write("sys/fs/cgroup/jobs/build/cpu.max", "max 100000\n");
  write("sys/fs/cgroup/jobs/cpu.max", "250000 100000\n");
  write("sys/fs/cgroup/cpu.max", "max 100000\n");
  EXPECT_DOUBLE_EQ(quota(), 2.5);
  write("sys/fs/cgroup/jobs/build/cpu.max", "50000 100000\n");
  EXPECT_DOUBLE_EQ(quota(), 0.5);
}

TEST_F(FakeRoot, CgroupV2InsideANamespace) {
  write("proc/self/cgroup", "0::/\n");
  write("proc/self/mountinfo", "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
  write("sys/fs/cgroup/cpu.max", "100000 100000\n");
  EXPECT_DOUBLE_EQ(quota(), 1.0);
}

TEST_F(FakeRoot, CgroupV1CpuController) {
  write("proc/self/cgroup", "4:memory:/x\n3:cpuset:/\n2:cpu,cpuacct:/docker/abc\n0::/\n");
  write("proc/self/mountinfo",
        "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
        "34 31 0:31 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset\n"
        "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n");
  write("sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "300000\n");
  write("sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
  write("sys/fs/cgroup/cpu,cpuacct/docker/cpu.cfs_quota_us", "-1\n");
  write("sys/fs/cgroup/cpu,cpuacct/docker/cpu.cfs_period_us", "100000\n");
  EXPECT_DOUBLE_EQ(quota(), 3.0);
}

TEST_F(FakeRoot, NoCgroupOrUnreadableFilesMeanNoQuota) {
  EXPECT_DOUBLE_EQ(quota(), 0.0);
  write("proc/self/cgroup", "0::/a\n");
  write("proc/self/mountinfo", "garbage line\n30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
  EXPECT_DOUBLE_EQ(quota(), 0.0);  // no cpu.max anywhere
  write("sys/fs/cgroup/a/cpu.max", "lots of junk here\n");
  EXPECT_DOUBLE_EQ(quota(), 0.0);
}

TEST_F(FakeRoot, MemoryFromMeminfoAndCgroups) {
  write("proc/meminfo", "MemTotal:       24000000 kB\nMemFree:  100 kB\nSwapTotal:  1000 kB\n");
  EXPECT_EQ(read_memory_limits(root_.string()).physical, 24000000ull * 1024);
  EXPECT_EQ(usable_memory(read_memory_limits(root_.string())), 24001000ull * 1024);
  write("proc/self/cgroup", "4:memory:/job\n0::/job\n");
  write("proc/self/mountinfo",
        "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n");
  write("sys/fs/cgroup/memory/job/memory.limit_in_bytes", "9223372036854771712\n");  // v1 "no limit"
  write("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
  EXPECT_EQ(read_memory_limits(root_.string()).cgroup, 0u);
  write("sys/fs/cgroup/unified/job/memory.max", "4294967296\n");
  EXPECT_EQ(usable_memory(read_memory_limits(root_.string())), 4294967296ull);
  write("sys/fs/cgroup/memory/job/memory.limit_in_bytes", "1073741824\n");
  EXPECT_EQ(usable_memory(read_memory_limits(root_.string())), 1073741824ull);
  write("sys/fs/cgroup/unified/job/memory.max", "max\n");
  EXPECT_EQ(usable_memory(read_memory_limits(root_.string())), 1073741824ull);
}

TEST(MemoryLimits, UsableTakesTheTightestAndSizesFormat) {
  EXPECT_EQ(usable_memory({}), 0u);
  EXPECT_EQ(usable_memory({.physical = 100, .swap = 20}), 120u);
  EXPECT_EQ(usable_memory({.physical = 100, .swap = 20, .cgroup = 50}), 50u);
  EXPECT_EQ(usable_memory({.physical = 100, .swap = 20, .cgroup = 50, .rlimit = 30}), 30u);
  EXPECT_EQ(format_byte_size(512), "512 B");
  EXPECT_EQ(format_byte_size(1536), "1.5 KiB");
  EXPECT_EQ(format_byte_size(3.4L * 1024 * 1024 * 1024 * 1024 * 1024), "3.4 PiB");
}

// A size beyond the machine is an error naming what set it; a small one passes.
TEST(MemoryLimits, CheckFitsNamesTheField) {
  EXPECT_NO_THROW(check_fits_in_memory(4096, "test", "a page"));
  try {
    check_fits_in_memory(1e30L, "train", "num_hidden_layers = 1000000000: the weights");
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("[train] num_hidden_layers = 1000000000: the weights needs"), std::string::npos) << what;
    EXPECT_NE(what.find("this process may use"), std::string::npos) << what;
  }
}

TEST(CpuLimits, ThisProcessHasAtLeastOneCpu) {
  const CpuLimits l = read_cpu_limits();
  EXPECT_GE(l.affinity, 1);
  EXPECT_GE(process_usable_cpus(), 1);
  EXPECT_LE(process_usable_cpus(), l.affinity);
}

}  // namespace
}  // namespace moe
