// GGUF (v2 and v3, little-endian) reader and atomic writer. The reader memory-maps the file, validates
// everything in open() (magic, version, counts, every metadata value, every tensor's dims, type, byte
// count, offset, alignment and range, no overlaps, no duplicate names) and gives zero-copy tensor views.
// Errors are moe::Error "[gguf] <file>: <key or tensor>: what was expected, what was found".
// Layout: u32 magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv | n_kv x (string key, u32 type, value)
// | n_tensors x (string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset) | pad to alignment
// | data section (offsets relative to its start, each a multiple of general.alignment, default 32).
// ggml's dims ne[] run innermost first; shape() gives them outermost first, as PyTorch and safetensors do.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "util/dtype.h"

namespace moe {

enum class GgufType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};
const char* gguf_type_name(GgufType t);

// One metadata value. Scalars: the number in i (signed types, bool), u (unsigned) or f (floats), or s.
// Arrays: elem is the element type; strings in strs, numbers as their raw little-endian bytes in raw,
// nested arrays in items.
struct GgufValue {
  GgufType type = GgufType::kU8;
  GgufType elem = GgufType::kU8;
  int64_t i = 0;
  uint64_t u = 0;
  double f = 0;
  std::string s;
  std::vector<std::string> strs;
  std::vector<uint8_t> raw;
  std::vector<GgufValue> items;

  static GgufValue u32(uint32_t v);
  static GgufValue i32(int32_t v);
  static GgufValue u64(uint64_t v);
  static GgufValue f32(float v);
  static GgufValue boolean(bool v);
  static GgufValue str(std::string v);
  static GgufValue str_array(std::vector<std::string> v);
  static GgufValue i32_array(const std::vector<int32_t>& v);
  static GgufValue f32_array(const std::vector<float>& v);

  bool is_integer() const;  // any integer type or bool
  bool is_number() const;   // integer or float
  size_t array_size() const;
  // Number i of a numeric array, converted.
  double number_at(size_t index) const;
};

// ggml's tensor types: name, block size (elements) and block bytes; dtype when moe computes on it.
struct GgmlTypeInfo {
  int id = -1;
  const char* name = "";
  int64_t block_elems = 0, block_bytes = 0;  // 0: removed from the format
  std::optional<DType> dtype;
};
const GgmlTypeInfo* ggml_type_info(int id);  // null for ids that never existed
// ggml's id of a dtype moe stores (F32, F16, BF16, the block types); -1 for others.
int ggml_type_of(DType t);

struct GgufTensor {
  std::string name;
  std::vector<int64_t> ne;  // ggml order: ne[0] is the row length
  int ggml_type = 0;
  uint64_t offset = 0;  // within the data section
  uint64_t nbytes = 0;
  std::vector<int64_t> shape() const;  // outermost first
  int64_t numel() const;
};

class GgufFile {
 public:
  static GgufFile open(const std::string& path);

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // file offset of the data section
  uint64_t file_size() const { return file_size_; }

  const std::vector<std::string>& keys() const { return key_order_; }  // in file order
  bool has(const std::string& key) const { return kv_.count(key) != 0; }
  const GgufValue* find(const std::string& key) const;
  // Typed getters: throw naming the key when it is absent (req_*) or of another type.
  int64_t req_int(const std::string& key) const;
  std::optional<int64_t> opt_int(const std::string& key) const;
  std::optional<double> opt_float(const std::string& key) const;  // floats and integers
  std::optional<bool> opt_bool(const std::string& key) const;
  std::optional<std::string> opt_str(const std::string& key) const;
  const std::vector<std::string>& req_str_array(const std::string& key) const;
  std::vector<double> opt_num_array(const std::string& key) const;  // empty when absent

  const std::vector<GgufTensor>& tensors() const { return tensors_; }  // in file order
  const GgufTensor* find_tensor(const std::string& name) const;
  const GgufTensor& tensor(const std::string& name) const;  // throws naming it
  std::span<const uint8_t> bytes(const GgufTensor& t) const;
  const MappedFile& mapping() const { return *map_; }

 private:
  std::string path_;
  std::shared_ptr<MappedFile> map_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32, data_offset_ = 0, file_size_ = 0;
  std::map<std::string, GgufValue> kv_;
  std::vector<std::string> key_order_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t> tensor_index_;

  friend class GgufParser;
};

// Writes a GGUF v3 file atomically. Metadata in the order set; tensors in the order added, their data
// produced one at a time by fill(tensor_index, buffer) when write() streams the data section (so a
// quantizer holds one tensor at a time). progress(done_bytes, total_bytes) after each tensor, if given.
class GgufWriter {
 public:
  void set(const std::string& key, GgufValue value);
  // dims outermost first (PyTorch order); dtype F32, F16, BF16 or a block type.
  void add_tensor(const std::string& name, const std::vector<int64_t>& shape, DType dtype);
  size_t n_tensors() const { return tensors_.size(); }
  uint64_t data_bytes() const;
  using Fill = std::function<void(size_t index, std::vector<uint8_t>& out)>;
  using Progress = std::function<void(uint64_t done, uint64_t total)>;
  void write(const std::string& path, const Fill& fill, const Progress& progress = {}) const;

 private:
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<GgufTensor> tensors_;
  uint64_t alignment_ = 32;
};

}  // namespace moe
