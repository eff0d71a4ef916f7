// Disk read ceiling (see disk_read.h).
#include "io/disk_read.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "util/error.h"

namespace moe {

DiskReadCeiling measure_disk_read(const std::string& path, uint64_t max_bytes, int threads, uint64_t chunk_bytes) {
  DiskReadCeiling c;
  c.threads = threads < 1 ? 1 : threads;
  c.chunk_bytes = (chunk_bytes + 4095) / 4096 * 4096;
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  c.direct = fd >= 0;
  if (fd < 0) fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("io", "{}: cannot open to measure the disk: {}", path, std::strerror(errno));
  struct stat st {};
  ::fstat(fd, &st);
  const uint64_t size = std::min<uint64_t>(uint64_t(st.st_size), max_bytes);
  const uint64_t chunks = (size + c.chunk_bytes - 1) / c.chunk_bytes;
  std::atomic<uint64_t> next{0}, total{0};
  std::atomic<int> error{0};
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < c.threads; ++t) {
    pool.emplace_back([&] {
      void* buf = std::aligned_alloc(4096, size_t(c.chunk_bytes));
      for (uint64_t i; (i = next.fetch_add(1)) < chunks && error.load() == 0;) {
        const ssize_t r = ::pread(fd, buf, size_t(c.chunk_bytes), off_t(i * c.chunk_bytes));
        if (r < 0) {
          error = errno;
          break;
        }
        total += uint64_t(r);
      }
      std::free(buf);
    });
  }
  for (std::thread& t : pool) t.join();
  c.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ::close(fd);
  if (error) fail("io", "{}: reading to measure the disk: {}", path, std::strerror(error));
  c.bytes = total;
  c.gbps = c.seconds > 0 ? double(c.bytes) / c.seconds * 1e-9 : 0;
  return c;
}

}  // namespace moe
