// Panel copies of a model's matrices kept in a file, so that loads after the first map them instead of
// repacking. The kernels read weights in an interleaved panel layout (kernels/packed_weights.h) that no
// checkpoint format stores; packing at load reads every byte and, worse, fills gigabytes of fresh memory
// (page faults, zeroing: seconds on a VM). The first load packs as before and then writes the panels to
// "<cache dir>/<hash of the model path>.moepack"; a later load of the same, unchanged source with the same
// layout maps that file (populated, read-only, shared: the weights are resident once, as page cache the
// kernel may evict, as llama.cpp's mmap of a GGUF is) and never touches the source's pages of those
// matrices. The mapping asks for 2 MiB pages and gets them where the page cache holds the file in 2 MiB
// pieces; a file cached in small pages is dropped and read again once (weights stream about 13% faster
// through huge pages: pack_cache.cc).
//
// The file is valid only for what it was written from: its header holds the source's identity (each
// file's path, size and modification time) and the layout (format version, ISA, which experts this
// process loads) and any difference means a rebuild. Entries are named ("model.layers.3.self_attn.q_proj",
// "layer 3 routed experts") with their byte count, both checked on every lookup.
//
// Settings (PackCacheOptions::from_env): MOE_PACK_CACHE=0 turns it off; MOE_CACHE_DIR picks the folder
// (default $XDG_CACHE_HOME/moe, else $HOME/.cache/moe); MOE_PACK_CACHE_MIN_BYTES (default 256 MiB): models
// whose panels are smaller repack in well under a second and are not cached; MOE_PACK_CACHE_MAX_BYTES
// (default 64 GiB) bounds the folder, least recently used files evicted first. The cache is an
// optimization: a folder that cannot be written is a warning, never an error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace moe {

struct PackCacheOptions {
  bool enabled = true;
  std::string dir;  // empty: no folder could be determined (disabled)
  uint64_t min_bytes = uint64_t{256} << 20;
  // The folder's .moepack files together stay under this: before a new file is written, the least recently
  // used ones (a hit touches its file) are deleted until it fits; a file larger than this is not written.
  uint64_t max_bytes = uint64_t{64} << 30;
  static PackCacheOptions from_env();
};

class PackCache {
 public:
  // source: the model path (a checkpoint folder, a .safetensors or a .gguf file); layout: what else
  // decides the panels' bytes (the caller's format version, ISA, expert filter).
  PackCache(const std::string& source, const std::string& layout, PackCacheOptions options);
  ~PackCache();
  PackCache(const PackCache&) = delete;
  PackCache& operator=(const PackCache&) = delete;

  bool hit() const { return map_ != nullptr; }
  bool enabled() const { return options_.enabled; }
  const std::string& path() const { return path_; }
  // On a hit: the stored bytes of `name` when present with exactly `bytes` bytes (64-byte aligned), else null.
  const uint8_t* find(const std::string& name, size_t bytes) const;
  // On a miss: remembers a packed buffer to write by save(); data must stay valid until then.
  void record(const std::string& name, const void* data, size_t bytes);
  // On a miss, with at least min_bytes recorded: writes the file atomically and returns its size in
  // bytes (0 when nothing was written; a failure to write is logged as a warning).
  uint64_t save();
  // Bytes mapped (hit) or recorded (miss).
  uint64_t bytes() const;
  // On a hit: bytes of the mapping in 2 MiB pages (0 where the kernel gave 4 KiB pages or cannot say).
  uint64_t huge_page_bytes() const;

 private:
  struct Entry {
    uint64_t offset, bytes;
    const void* data;  // miss: the caller's buffer
  };
  PackCacheOptions options_;
  std::string path_, identity_;
  std::map<std::string, Entry> entries_;
  std::vector<std::string> order_;  // miss: names in recording order
  const uint8_t* map_ = nullptr;
  size_t map_bytes_ = 0;
};

}  // namespace moe
