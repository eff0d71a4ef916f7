// Safetensors reader (memory-mapped, fully validated header, zero-copy typed views),
// sharded checkpoints through model.safetensors.index.json, and an atomic writer.
// Format: u64 little-endian header length N, N bytes of JSON
//   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}
// then the data section; offsets are relative to the start of the data section.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "util/dtype.h"

namespace moe {

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte range within the data section
  int64_t numel() const;
  uint64_t nbytes() const { return end - begin; }
};

// A read-only memory map of one file (moves, no copies).
class MappedFile {
 public:
  static MappedFile open(const std::string& path);  // throws moe::Error naming the path
  MappedFile() = default;
  ~MappedFile();
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Drops this process's pages of [p, p + n) (the whole pages inside it) when the range lies in this
  // mapping, after a caller has copied what it needs from them (a weight repacked at load): resident
  // memory then holds the copy only. Reading the range again faults it back in from the file.
  // Returns the bytes released.
  size_t release(const void* p, size_t n) const;

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

// One .safetensors file. All validation happens in open(): header length within the file,
// well-formed JSON, known dtypes, shape x dtype size == byte range, ranges inside the data
// section, no overlaps. Every error is a moe::Error "[safetensors] <file>: <tensor>: ...".
class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::string& path);
  // Parses only the header (reads the first bytes, no mmap of the data): for `moe inspect DIR`.
  static SafetensorsFile open_header_only(const std::string& path);

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // in header order
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool has(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;  // throws naming file and tensor
  // Raw bytes of a tensor (requires open(), not open_header_only()).
  std::span<const uint8_t> bytes(const std::string& name) const;
  // Typed zero-copy view; throws if the stored dtype is not `expected` or if the data is not
  // aligned for T (the format does not require alignment: copy from bytes() in that case).
  template <typename T>
  std::span<const T> view(const std::string& name, DType expected) const {
    auto b = checked_bytes(name, expected, alignof(T));
    return {reinterpret_cast<const T*>(b.data()), b.size() / sizeof(T)};
  }
  // True when the tensor's data is aligned to `alignment` bytes in memory.
  bool is_aligned(const std::string& name, size_t alignment) const;
  // Copies a float tensor (any float dtype) to f32.
  std::vector<float> to_f32(const std::string& name) const;
  const MappedFile* mapping() const { return map_.get(); }

 private:
  std::span<const uint8_t> checked_bytes(const std::string& name, DType expected, size_t alignment) const;
  static SafetensorsFile parse(std::string path, const uint8_t* bytes, size_t size, bool header_only,
                               uint64_t file_size);

  std::string path_;
  std::shared_ptr<MappedFile> map_;
  const uint8_t* data_section_ = nullptr;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// A checkpoint folder or file: model.safetensors, or shards listed by
// model.safetensors.index.json ("weight_map": tensor -> shard file), or one .safetensors path.
class Checkpoint {
 public:
  static Checkpoint open(const std::string& path, bool header_only = false);
  const std::string& path() const { return path_; }
  std::vector<std::string> tensor_names() const;  // sorted
  bool has(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;
  const SafetensorsFile& file_of(const std::string& name) const;
  size_t n_files() const { return files_.size(); }
  const std::vector<SafetensorsFile>& files() const { return files_; }

 private:
  std::string path_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, size_t> where_;  // tensor -> index into files_
};

// A tensor to write: name, dtype, shape and its bytes (size must equal numel x dtype size).
struct TensorToWrite {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::span<const uint8_t> bytes;
};

// Writes a .safetensors file atomically: to "<path>.tmp.<pid>", fsync, then rename over path.
// Tensors are written in the given order with 8-byte aligned offsets; header padded to 8 bytes.
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Writes text atomically (temporary file + rename): for config.json, reports, logs snapshots.
void write_file_atomic(const std::string& path, const std::string& contents);

// Removes what killed writers left in `dir`: "<name>.tmp.<pid>" files and ".tmp-<name>-<pid>"
// folders whose process no longer runs (a live writer's are kept). `only_of`, when not empty,
// limits it to the temporaries of that file name. Returns how many it removed. Both writers
// above call it for their target before writing, so a kill leaves nothing after the next run.
int remove_stale_temporaries(const std::string& dir, const std::string& only_of = "");

}  // namespace moe
