// The expert slot pool (see expert_cache.h).
#include "model/expert_cache.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "kernels/packed_weights.h"
#include "runtime/timer.h"
#include "util/dtype.h"
#include "util/error.h"

namespace moe {
namespace {

constexpr uint64_t kBlock = 4096;  // O_DIRECT alignment of offsets, lengths and buffers

size_t round64(size_t n) { return (n + 63) / 64 * 64; }

// Panels when the ISA has panel kernels for all three dtypes (as pack_expert_weights decides), else rows.
bool packs(const ExpertSource& s) {
  for (const ExpertSlice& m : s.m)
    if (!panel_layout_supported(m.dtype)) return false;
  return true;
}

size_t matrix_bytes(const ExpertSlice& m, bool panels) {
  return panels ? panel_bytes(m.dtype, m.n, m.k) : static_cast<size_t>(m.bytes);
}

}  // namespace

size_t ExpertCache::slot_bytes_for(const ExpertSource& s) {
  const bool p = packs(s);
  size_t b = 0;
  for (const ExpertSlice& m : s.m) b += round64(matrix_bytes(m, p));
  return b;
}

ExpertCache::ExpertCache(std::vector<std::string> files, std::vector<std::vector<ExpertSource>> sources,
                         Options options)
    : paths_(std::move(files)), sources_(std::move(sources)), options_(std::move(options)) {
  if (options_.slots < 1) fail("offload", "the expert cache needs at least one slot, got {}", options_.slots);
  if (options_.io_threads < 1) options_.io_threads = 1;
  for (const std::string& p : paths_) {
    int fd = options_.direct_io ? ::open(p.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC) : -1;
    const bool direct = fd >= 0;
    if (fd < 0) fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      for (int f : fds_) ::close(f);
      fail("offload", "{}: cannot open for expert reads: {}", p, std::strerror(errno));
    }
    fds_.push_back(fd);
    direct_.push_back(direct);
  }
  uint64_t largest = 0;
  for (const auto& layer : sources_) {
    for (const ExpertSource& s : layer) {
      slot_bytes_ = std::max(slot_bytes_, slot_bytes_for(s));
      for (const ExpertSlice& m : s.m) {
        if (m.file < 0 || m.file >= static_cast<int>(paths_.size()))
          fail("offload", "expert slice names file {} of {}", m.file, paths_.size());
        largest = std::max(largest, m.bytes);
      }
    }
  }
  staging_bytes_ = static_cast<size_t>((largest + 2 * kBlock + kBlock - 1) / kBlock * kBlock);
  slots_.resize(static_cast<size_t>(options_.slots));
  stats_.layers.resize(sources_.size());
  // Pages are committed as slots fill: an unused pool costs address space only.
  const size_t total = std::max<size_t>(slot_bytes_, 64) * slots_.size();
  arena_ = static_cast<uint8_t*>(std::aligned_alloc(kBlock, (total + kBlock - 1) / kBlock * kBlock));
  if (!arena_) fail("offload", "cannot reserve {} bytes for {} expert slots", total, slots_.size());
  for (int i = 0; i < options_.io_threads; ++i) readers_.emplace_back([this] { reader(); });
}

ExpertCache::~ExpertCache() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  jobs_cv_.notify_all();
  for (std::thread& t : readers_) t.join();
  for (int fd : fds_) ::close(fd);
  std::free(arena_);
}

void ExpertCache::touch_locked(Slot& s) {
  s.use.count += 1;
  s.use.last = ++tick_;
  if (++uses_since_decay_ >= slots_.size()) {  // old popularity fades
    uses_since_decay_ = 0;
    for (Slot& o : slots_) o.use.count *= 0.5;
  }
}

int64_t ExpertCache::find_victim_locked(bool for_prefetch) const {
  int64_t best = -1;
  for (size_t i = 0; i < slots_.size(); ++i) {
    const Slot& s = slots_[i];
    if (s.pins > 0 || s.forever || s.state == State::kLoading) continue;
    if (s.state == State::kEmpty) return static_cast<int64_t>(i);
    if (for_prefetch && s.prefetched) continue;  // prefetches do not chase each other out
    if (best < 0) {
      best = static_cast<int64_t>(i);
      continue;
    }
    if (colder(s.use, slots_[size_t(best)].use)) best = static_cast<int64_t>(i);
  }
  return best;
}

int64_t ExpertCache::start_load_locked(int64_t layer, int32_t expert, bool prefetch) {
  const int64_t v = find_victim_locked(prefetch);
  if (v < 0) return -1;
  Slot& s = slots_[size_t(v)];
  if (s.state != State::kEmpty) where_.erase({s.layer, s.expert});
  s = Slot{};
  s.state = State::kLoading;
  s.layer = layer;
  s.expert = expert;
  s.prefetched = prefetch;
  s.use.last = ++tick_;
  where_[{layer, expert}] = v;
  s.parts_left = 3;
  for (int part = 0; part < 3; ++part) {
    if (prefetch) {
      jobs_.push_back({v, part});
    } else {
      jobs_.push_front({v, 2 - part});  // demand reads go first, in order
    }
  }
  jobs_cv_.notify_all();
  return v;
}

void ExpertCache::acquire(int64_t layer, const std::vector<int32_t>& ids, std::vector<ExpertMatrices>& views) {
  if (layer < 0 || layer >= static_cast<int64_t>(sources_.size()) || sources_[size_t(layer)].empty())
    fail("offload", "layer {} has no offloaded experts", layer);
  const int64_t E = static_cast<int64_t>(sources_[size_t(layer)].size());
  std::unique_lock lock(mu_);
  int64_t evictable = 0;
  for (const Slot& s : slots_) evictable += s.forever ? 0 : 1;
  for (int32_t id : ids) {
    if (id < 0 || id >= E) fail("offload", "layer {}: expert {} out of range [0, {})", layer, id, E);
  }
  std::vector<int64_t> held;
  held.reserve(ids.size());
  ExpertCacheLayerStats& ls = stats_.layers[size_t(layer)];
  for (int32_t id : ids) {
    ls.requests++;
    stats_.requests++;
    auto it = where_.find({layer, id});
    if (it != where_.end() && !slots_[size_t(it->second)].error.empty() && slots_[size_t(it->second)].pins == 0) {
      where_.erase(it);  // a failed prefetch: read again on demand
      it = where_.end();
    }
    if (it != where_.end()) {
      Slot& s = slots_[size_t(it->second)];
      ls.hits++;
      stats_.hits++;
      if (s.prefetched) ls.prefetch_hits++;
      s.prefetched = false;
      s.pins++;
      touch_locked(s);
      held.push_back(it->second);
      continue;
    }
    ls.misses++;
    stats_.misses++;
    int64_t v = start_load_locked(layer, id, false);
    while (v < 0) {  // every slot pinned or in flight: wait for an unpinned read (a prefetch) to finish
      const bool in_flight = std::any_of(slots_.begin(), slots_.end(),
                                         [](const Slot& s) { return s.state == State::kLoading && s.pins == 0; });
      if (!in_flight) {
        for (int64_t h : held) slots_[size_t(h)].pins--;
        ready_cv_.notify_all();
        fail("offload",
             "layer {}: {} experts needed at once, but the cache's {} evictable slots are all in use (raise "
             "--mem-budget)",
             layer, ids.size(), evictable);
      }
      ready_cv_.wait(lock);
      v = start_load_locked(layer, id, false);
    }
    Slot& s = slots_[size_t(v)];
    s.pins++;
    touch_locked(s);
    held.push_back(v);
  }
  Timer wait;
  ready_cv_.wait(lock, [&] {
    return std::all_of(held.begin(), held.end(), [&](int64_t h) { return slots_[size_t(h)].state == State::kReady; });
  });
  stats_.wait_seconds += wait.seconds();
  std::string error;
  for (int64_t h : held)
    if (!slots_[size_t(h)].error.empty()) error = slots_[size_t(h)].error;
  if (!error.empty()) {
    for (int64_t h : held) {
      Slot& s = slots_[size_t(h)];
      s.pins--;
      if (!s.error.empty() && s.pins == 0) {  // never used: the slot is free again
        where_.erase({s.layer, s.expert});
        s = Slot{};
      }
    }
    ready_cv_.notify_all();
    fail("offload", "{}", error);
  }
  for (size_t i = 0; i < ids.size(); ++i) views[size_t(ids[i])] = slots_[size_t(held[i])].view;
}

void ExpertCache::release(int64_t layer, const std::vector<int32_t>& ids) {
  {
    std::lock_guard lock(mu_);
    for (int32_t id : ids) {
      auto it = where_.find({layer, id});
      if (it != where_.end() && slots_[size_t(it->second)].pins > 0) slots_[size_t(it->second)].pins--;
    }
  }
  ready_cv_.notify_all();
}

void ExpertCache::prefetch(int64_t layer, const std::vector<int32_t>& ids) {
  if (layer < 0 || layer >= static_cast<int64_t>(sources_.size()) || sources_[size_t(layer)].empty()) return;
  const int64_t E = static_cast<int64_t>(sources_[size_t(layer)].size());
  std::lock_guard lock(mu_);
  for (int32_t id : ids) {
    if (id < 0 || id >= E || where_.count({layer, id})) continue;
    if (start_load_locked(layer, id, true) < 0) break;
    stats_.layers[size_t(layer)].prefetches++;
  }
}

int64_t ExpertCache::pin_forever(const std::vector<std::pair<int64_t, int32_t>>& experts, int64_t keep_free) {
  std::vector<int32_t> one(1);
  int64_t pinned = 0;
  for (const auto& [layer, expert] : experts) {
    if (pinned + keep_free >= n_slots()) break;
    if (layer < 0 || layer >= static_cast<int64_t>(sources_.size()) || sources_[size_t(layer)].empty()) continue;
    if (expert < 0 || expert >= static_cast<int32_t>(sources_[size_t(layer)].size())) continue;
    std::vector<ExpertMatrices> views(sources_[size_t(layer)].size());
    one[0] = expert;
    acquire(layer, one, views);
    {
      std::lock_guard lock(mu_);
      Slot& s = slots_[size_t(where_.at({layer, expert}))];
      s.forever = true;
      s.pins--;
    }
    ++pinned;
  }
  return pinned;
}

ExpertCacheStats ExpertCache::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void ExpertCache::reset_stats() {
  std::lock_guard lock(mu_);
  const size_t n = stats_.layers.size();
  stats_ = ExpertCacheStats{};
  stats_.layers.resize(n);
}

void ExpertCache::reader() {
  std::vector<uint8_t*> staging(2, nullptr);  // O_DIRECT blocks; buffered rows to pack
  for (uint8_t*& s : staging) s = static_cast<uint8_t*>(std::aligned_alloc(kBlock, staging_bytes_));
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mu_);
      jobs_cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
      if (stop_) break;
      job = jobs_.front();
      jobs_.pop_front();
    }
    load(job, staging);
  }
  for (uint8_t* s : staging) std::free(s);
}

const uint8_t* ExpertCache::read_exact(int file, uint64_t offset, uint64_t bytes, uint8_t* dst,
                                       uint8_t* staging) const {
  const std::string& path = paths_[size_t(file)];
  const int fd = fds_[size_t(file)];
  const auto rd = [&](void* buf, size_t n, uint64_t off) -> long {
    return options_.read ? options_.read(fd, buf, n, off) : static_cast<long>(::pread(fd, buf, n, off_t(off)));
  };
  if (direct_[size_t(file)]) {  // whole aligned blocks into the staging buffer, then the rows out of it
    const uint64_t begin = offset / kBlock * kBlock, end = (offset + bytes + kBlock - 1) / kBlock * kBlock;
    uint64_t got = 0;
    while (begin + got < offset + bytes) {
      const long r = rd(staging + got, size_t(end - begin - got), begin + got);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) fail("offload", "{}: reading {} bytes at offset {}: {}", path, bytes, offset, std::strerror(errno));
      if (r == 0) break;
      got += uint64_t(r);
    }
    if (begin + got < offset + bytes)
      fail("offload", "{}: short read at offset {}: got {} of {} bytes (file truncated?)", path, offset,
           begin + got > offset ? begin + got - offset : 0, bytes);
    return staging + (offset - begin);
  }
  uint64_t got = 0;
  while (got < bytes) {
    const long r = rd(dst + got, size_t(bytes - got), offset + got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail("offload", "{}: reading {} bytes at offset {}: {}", path, bytes, offset, std::strerror(errno));
    if (r == 0) break;
    got += uint64_t(r);
  }
  if (got < bytes)
    fail("offload", "{}: short read at offset {}: got {} of {} bytes (file truncated?)", path, offset, got, bytes);
  ::posix_fadvise(fd, off_t(offset), off_t(bytes), POSIX_FADV_DONTNEED);  // not cached twice
  return dst;
}

void ExpertCache::load(const Job& job, std::vector<uint8_t*>& staging) {
  int64_t layer;
  int32_t expert;
  {
    std::lock_guard lock(mu_);
    layer = slots_[size_t(job.slot)].layer;
    expert = slots_[size_t(job.slot)].expert;
    if (in_flight_++ == 0) in_flight_since_ = now_seconds();
  }
  const ExpertSource& src = sources_[size_t(layer)][size_t(expert)];
  const bool panels = packs(src);
  size_t at = 0;  // the matrix's place in the slot: gate, up, down in turn
  for (int j = 0; j < job.part; ++j) at += round64(matrix_bytes(src.m[j], panels));
  uint8_t* dst = arena_ + size_t(job.slot) * slot_bytes_ + at;
  const ExpertSlice& m = src.m[job.part];
  WeightView view;
  std::string error;
  try {
    // Buffered reads land in the second staging buffer (panels) or straight in the slot (rows); O_DIRECT
    // ones stay in the first, and are packed (or copied) from there.
    uint8_t* want = panels ? staging[1] : dst;
    const uint8_t* rows = read_exact(m.file, m.offset, m.bytes, want, staging[0]);
    if (rows != want && reinterpret_cast<uintptr_t>(rows) % 4 != 0) {  // an offset the element type cannot load at
      std::memcpy(want, rows, m.bytes);
      rows = want;
    }
    if (panels) {
      view = pack_panels(WeightView{rows, m.dtype, m.k}, m.n, m.k, dst);
    } else {
      if (rows != want) std::memcpy(want, rows, m.bytes);
      view = WeightView{want, m.dtype, m.k};
    }
  } catch (const std::exception& e) {
    std::string what = e.what();
    if (what.rfind("[offload] ", 0) == 0) what = what.substr(10);
    error = fmt::format("layer {} expert {}: {}", layer, expert, what);
  }
  bool ready = false;
  {
    std::lock_guard lock(mu_);
    Slot& s = slots_[size_t(job.slot)];
    WeightView* out[3] = {&s.view.gate, &s.view.up, &s.view.down};
    *out[job.part] = view;
    if (s.error.empty()) s.error = error;
    if (--s.parts_left == 0) {
      s.state = State::kReady;
      s.view.gate_bias = src.bias[0];
      s.view.up_bias = src.bias[1];
      s.view.down_bias = src.bias[2];
      ready = true;
    }
    if (--in_flight_ == 0) stats_.read_seconds += now_seconds() - in_flight_since_;
    stats_.bytes_read += m.bytes;
    stats_.layers[size_t(layer)].bytes_read += m.bytes;
  }
  if (ready) ready_cv_.notify_all();
}

}  // namespace moe
