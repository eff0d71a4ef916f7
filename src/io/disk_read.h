// The disk's read ceiling for a file: chunks read with pread (O_DIRECT where the file system allows it,
// so the page cache does not serve them) by a few threads at once, as the expert cache reads.
#pragma once

#include <cstdint>
#include <string>

namespace moe {

struct DiskReadCeiling {
  double gbps = 0;
  uint64_t bytes = 0;
  double seconds = 0;
  bool direct = false;  // O_DIRECT was used (else buffered reads: cached pages may inflate the figure)
  int threads = 0;
  uint64_t chunk_bytes = 0;
};

// Reads up to max_bytes of `path` (from the start, in chunk_bytes chunks spread over `threads`).
// Throws moe::Error naming the file when it cannot be opened or read.
DiskReadCeiling measure_disk_read(const std::string& path, uint64_t max_bytes, int threads = 2,
                                  uint64_t chunk_bytes = uint64_t{4} << 20);

}  // namespace moe
