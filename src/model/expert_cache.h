// Routed experts served from the model file through a fixed pool of expert slots (models bigger than
// RAM, `--mem-budget`). Every expert's gate / up / down rows live at known byte ranges of the file; a
// slot holds one expert in the kernels' layout (packed into panels exactly as the all-in-RAM load packs
// them, so outputs are bit-identical). Reads are issued by reader threads with pread (O_DIRECT when the
// file system allows it, so the page cache neither hides nor duplicates them) and overlap compute:
// acquire() waits only for what it needs, prefetch() queues reads behind the demand ones.
//
// Replacement: frequency with recency. Each use adds 1 to an expert's count, every n_slots uses halve
// all counts (old popularity fades), and the victim is the unpinned slot with the lowest count, the
// least recently used among equals. Experts pinned from a profile are never evicted.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "kernels/matmul.h"
#include "moe/expert_ffn.h"

namespace moe {

// One matrix of one expert in the file: rows [n, k] of `dtype`, row-major, `bytes` long at `offset`.
struct ExpertSlice {
  int file = 0;
  uint64_t offset = 0;
  uint64_t bytes = 0;
  DType dtype = DType::kF32;
  int64_t n = 0, k = 0;
};

// Where one expert is: gate, up, down; its biases (small, resident) or null.
struct ExpertSource {
  ExpertSlice m[3];
  const float* bias[3] = {nullptr, nullptr, nullptr};
};

struct ExpertCacheLayerStats {
  int64_t requests = 0;       // experts asked for by a forward call (distinct per call)
  int64_t hits = 0;           // resident (or already being read) when asked
  int64_t prefetch_hits = 0;  // of the hits: brought in by a prefetch, not yet used before
  int64_t misses = 0;         // read on demand
  int64_t prefetches = 0;     // reads issued ahead of need
  uint64_t bytes_read = 0;    // demand and prefetch reads
  double hit_rate() const { return requests ? double(hits) / double(requests) : 0.0; }
};

struct ExpertCacheStats {
  std::vector<ExpertCacheLayerStats> layers;  // [L]; zero for dense layers
  double read_seconds = 0;                    // wall time with at least one read in flight (pread and packing)
  double wait_seconds = 0;                    // compute stalled in acquire()
  uint64_t bytes_read = 0;
  int64_t requests = 0, hits = 0, misses = 0;
  double hit_rate() const { return requests ? double(hits) / double(requests) : 0.0; }
  // The disk rate the reads achieved (bytes over the time reads were in flight; 0 when nothing was read).
  double read_gbps() const { return read_seconds > 0 ? double(bytes_read) / read_seconds * 1e-9 : 0.0; }
};

// The replacement rule, shared by the cache and by `moe inspect --mem-budget`'s replay of a trace: each
// use adds 1 to count, every n_slots uses halve all counts, and the coldest entry is evicted first.
struct ExpertUse {
  double count = 0;
  uint64_t last = 0;  // tick of the latest use
};
inline bool colder(const ExpertUse& a, const ExpertUse& b) {
  return a.count < b.count || (a.count == b.count && a.last < b.last);
}

class ExpertCache {
 public:
  // pread-like reader: returns bytes read (0 at end of file) or -1 with errno set. Tests inject failures.
  using ReadFn = std::function<long(int fd, void* buf, size_t n, uint64_t offset)>;
  struct Options {
    int64_t slots = 0;      // expert slots in the pool (>= 1)
    int io_threads = 2;     // reader threads
    bool direct_io = true;  // O_DIRECT when the file system takes it
    ReadFn read;            // empty: pread
  };
  // files: the paths ExpertSlice::file indexes; sources: [layer][expert] (empty for dense layers).
  ExpertCache(std::vector<std::string> files, std::vector<std::vector<ExpertSource>> sources, Options options);
  ~ExpertCache();
  ExpertCache(const ExpertCache&) = delete;
  ExpertCache& operator=(const ExpertCache&) = delete;

  // Makes the distinct experts `ids` of `layer` resident and pins them until release(); views[e] is
  // filled for each id (the other entries are left alone). Waits for their reads; throws moe::Error
  // naming the file and offset when a read fails or comes back short (the slot is freed, never used).
  // Throws when more experts are asked for at once than the pool has slots.
  void acquire(int64_t layer, const std::vector<int32_t>& ids, std::vector<ExpertMatrices>& views);
  void release(int64_t layer, const std::vector<int32_t>& ids);
  // Reads these experts ahead of need when a slot can be freed for them without evicting a pinned or
  // in-flight one; never blocks and never throws (a failed prefetch is retried on demand).
  void prefetch(int64_t layer, const std::vector<int32_t>& ids);
  // Loads and keeps these experts for good (a routing profile's hottest); returns how many were pinned
  // (stops leaving `keep_free` slots evictable).
  int64_t pin_forever(const std::vector<std::pair<int64_t, int32_t>>& experts, int64_t keep_free);

  ExpertCacheStats stats() const;
  void reset_stats();
  int64_t n_slots() const { return static_cast<int64_t>(slots_.size()); }
  size_t slot_bytes() const { return slot_bytes_; }
  // Slot bytes one expert of these sources needs (panels when the ISA has panel kernels, else rows).
  static size_t slot_bytes_for(const ExpertSource& s);

 private:
  enum class State { kEmpty, kLoading, kReady };
  struct Slot {
    State state = State::kEmpty;
    int64_t layer = -1;
    int32_t expert = -1;
    int pins = 0;
    bool forever = false;
    bool prefetched = false;  // loaded ahead of need and not used since
    int parts_left = 0;       // matrices (gate, up, down) still being read while kLoading
    ExpertUse use;
    std::string error;  // a failed read, reported to the waiters
    ExpertMatrices view;
  };
  struct Job {  // one matrix of one expert: the three are read by whichever readers are free
    int64_t slot;
    int part;
  };

  int64_t find_victim_locked(bool for_prefetch) const;
  int64_t start_load_locked(int64_t layer, int32_t expert, bool prefetch);
  void touch_locked(Slot& s);
  void reader();
  void load(const Job& job, std::vector<uint8_t*>& staging);
  // Reads [offset, offset + bytes) of a file; returns where the bytes are: in `staging` (O_DIRECT: whole
  // aligned blocks, the rows inside them) or `dst` (buffered reads land there).
  const uint8_t* read_exact(int file, uint64_t offset, uint64_t bytes, uint8_t* dst, uint8_t* staging) const;

  std::vector<std::string> paths_;
  std::vector<int> fds_;
  std::vector<bool> direct_;
  std::vector<std::vector<ExpertSource>> sources_;
  Options options_;
  size_t slot_bytes_ = 0, staging_bytes_ = 0;
  uint8_t* arena_ = nullptr;
  std::vector<Slot> slots_;
  std::map<std::pair<int64_t, int32_t>, int64_t> where_;  // (layer, expert) -> slot
  mutable std::mutex mu_;
  std::condition_variable ready_cv_, jobs_cv_;
  std::deque<Job> jobs_;
  bool stop_ = false;
  uint64_t tick_ = 0, uses_since_decay_ = 0;
  int in_flight_ = 0;           // reads running now
  double in_flight_since_ = 0;  // when in_flight_ last went from 0 to 1
  ExpertCacheStats stats_;
  std::vector<std::thread> readers_;
};

}  // namespace moe
