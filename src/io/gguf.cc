// GGUF reading (validated, mmapped) and atomic writing (see gguf.h).
#include "io/gguf.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "io/atomic_file.h"
#include "util/error.h"

namespace moe {
namespace {

constexpr const char* kComponent = "gguf";
constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr int kMaxDims = 4;
constexpr int kMaxArrayDepth = 8;

// ggml's types by id (ggml.h enum ggml_type; block bytes from its block structs). Removed ids have 0.
const GgmlTypeInfo kGgmlTypes[] = {
    {0, "F32", 1, 4, DType::kF32},
    {1, "F16", 1, 2, DType::kF16},
    {2, "Q4_0", 32, 18, DType::kQ4_0},
    {3, "Q4_1", 32, 20, DType::kQ4_1},
    {4, "Q4_2 (removed)", 0, 0, {}},
    {5, "Q4_3 (removed)", 0, 0, {}},
    {6, "Q5_0", 32, 22, DType::kQ5_0},
    {7, "Q5_1", 32, 24, DType::kQ5_1},
    {8, "Q8_0", 32, 34, DType::kQ8_0},
    {9, "Q8_1", 32, 36, {}},
    {10, "Q2_K", 256, 84, {}},
    {11, "Q3_K", 256, 110, {}},
    {12, "Q4_K", 256, 144, DType::kQ4_K},
    {13, "Q5_K", 256, 176, DType::kQ5_K},
    {14, "Q6_K", 256, 210, DType::kQ6_K},
    {15, "Q8_K", 256, 292, {}},
    {16, "IQ2_XXS", 256, 66, {}},
    {17, "IQ2_XS", 256, 74, {}},
    {18, "IQ3_XXS", 256, 98, {}},
    {19, "IQ1_S", 256, 50, {}},
    {20, "IQ4_NL", 32, 18, {}},
    {21, "IQ3_S", 256, 110, {}},
    {22, "IQ2_S", 256, 82, {}},
    {23, "IQ4_XS", 256, 136, DType::kIQ4_XS},
    {24, "I8", 1, 1, DType::kI8},
    {25, "I16", 1, 2, DType::kI16},
    {26, "I32", 1, 4, DType::kI32},
    {27, "I64", 1, 8, DType::kI64},
    {28, "F64", 1, 8, DType::kF64},
    {29, "IQ1_M", 256, 56, {}},
    {30, "BF16", 1, 2, DType::kBF16},
    {31, "Q4_0_4_4 (removed)", 0, 0, {}},
    {32, "Q4_0_4_8 (removed)", 0, 0, {}},
    {33, "Q4_0_8_8 (removed)", 0, 0, {}},
    {34, "TQ1_0", 256, 54, {}},
    {35, "TQ2_0", 256, 66, {}},
    {36, "IQ4_NL_4_4 (removed)", 0, 0, {}},
    {37, "IQ4_NL_4_8 (removed)", 0, 0, {}},
    {38, "IQ4_NL_8_8 (removed)", 0, 0, {}},
    {39, "MXFP4", 32, 17, DType::kMXFP4},
    {40, "NVFP4", 64, 36, {}},
    {41, "Q1_0", 128, 18, {}},
    {42, "Q2_0", 64, 18, {}},
};

size_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::kU8:
    case GgufType::kI8:
    case GgufType::kBool:
      return 1;
    case GgufType::kU16:
    case GgufType::kI16:
      return 2;
    case GgufType::kU32:
    case GgufType::kI32:
    case GgufType::kF32:
      return 4;
    case GgufType::kU64:
    case GgufType::kI64:
    case GgufType::kF64:
      return 8;
    default:
      return 0;  // string, array: variable
  }
}

bool valid_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::kF64); }

uint64_t pad_to(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

}  // namespace

// A bounds-checked little-endian cursor over the mapped file; every error names the file and `where`.
class GgufParser {
 public:
  GgufParser(const std::string& path, const uint8_t* data, uint64_t size) : path_(path), p_(data), size_(size) {}

  [[noreturn]] void bad(const std::string& where, const std::string& what) const {
    fail(kComponent, "{}: {}: {} (at byte {} of {})", path_, where, what, pos_, size_);
  }
  void need(uint64_t n, const std::string& where) const {
    if (n > size_ - pos_) bad(where, fmt::format("needs {} more bytes, the file ends first; truncated?", n));
  }
  template <typename T>
  T read(const std::string& where) {
    need(sizeof(T), where);
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string read_string(const std::string& where) {
    const uint64_t n = read<uint64_t>(where);
    need(n, where + " (string of " + std::to_string(n) + " bytes)");
    std::string s(reinterpret_cast<const char*>(p_ + pos_), n);
    pos_ += n;
    return s;
  }
  GgufValue read_value(GgufType type, const std::string& where, int depth);
  uint64_t pos() const { return pos_; }

  GgufFile parse(std::shared_ptr<MappedFile> map);

 private:
  void read_header(GgufFile& f, uint64_t* n_tensors, uint64_t* n_kv);
  void read_metadata(GgufFile& f, uint64_t n_kv);
  void read_tensor_infos(GgufFile& f, uint64_t n_tensors);
  void check_tensor_data(GgufFile& f);

  const std::string& path_;
  const uint8_t* p_;
  uint64_t size_, pos_ = 0;
};

GgufValue GgufParser::read_value(GgufType type, const std::string& where, int depth) {
  GgufValue v;
  v.type = type;
  switch (type) {
    case GgufType::kU8:
      v.u = read<uint8_t>(where);
      break;
    case GgufType::kU16:
      v.u = read<uint16_t>(where);
      break;
    case GgufType::kU32:
      v.u = read<uint32_t>(where);
      break;
    case GgufType::kU64:
      v.u = read<uint64_t>(where);
      break;
    case GgufType::kI8:
      v.i = read<int8_t>(where);
      break;
    case GgufType::kI16:
      v.i = read<int16_t>(where);
      break;
    case GgufType::kI32:
      v.i = read<int32_t>(where);
      break;
    case GgufType::kI64:
      v.i = read<int64_t>(where);
      break;
    case GgufType::kF32:
      v.f = read<float>(where);
      break;
    case GgufType::kF64:
      v.f = read<double>(where);
      break;
    case GgufType::kBool: {
      const uint8_t b = read<uint8_t>(where);
      if (b > 1) bad(where, fmt::format("bool value {} (expected 0 or 1)", b));
      v.i = b;
      break;
    }
    case GgufType::kString:
      v.s = read_string(where);
      break;
    case GgufType::kArray: {
      if (depth >= kMaxArrayDepth) bad(where, fmt::format("arrays nested deeper than {}", kMaxArrayDepth));
      const uint32_t et = read<uint32_t>(where);
      if (!valid_type(et)) bad(where, fmt::format("unknown array element type {} (expected 0..12)", et));
      v.elem = static_cast<GgufType>(et);
      const uint64_t n = read<uint64_t>(where);
      const size_t es = scalar_size(v.elem);
      // Every element takes at least one byte (strings 8): a count beyond the remaining bytes is corrupt.
      const uint64_t min_bytes = es > 0 ? es : 8;
      if (n > (size_ - pos_) / min_bytes) {
        bad(where,
            fmt::format("array of {} {} elements does not fit in the rest of the file", n, gguf_type_name(v.elem)));
      }
      if (es > 0) {
        if (v.elem == GgufType::kBool) {
          for (uint64_t k = 0; k < n; ++k) {
            if (p_[pos_ + k] > 1) bad(where, fmt::format("bool array element {} is {}", k, p_[pos_ + k]));
          }
        }
        v.raw.assign(p_ + pos_, p_ + pos_ + n * es);
        pos_ += n * es;
      } else if (v.elem == GgufType::kString) {
        v.strs.reserve(n);
        for (uint64_t k = 0; k < n; ++k) v.strs.push_back(read_string(where));
      } else {
        for (uint64_t k = 0; k < n; ++k) v.items.push_back(read_value(GgufType::kArray, where, depth + 1));
      }
      break;
    }
  }
  return v;
}

void GgufParser::read_header(GgufFile& f, uint64_t* n_tensors, uint64_t* n_kv) {
  if (size_ < 4 || read<uint32_t>("header") != kMagic) {
    fail(kComponent, "{}: not a GGUF file (the first 4 bytes are not \"GGUF\")", path_);
  }
  f.version_ = read<uint32_t>("header version");
  if (f.version_ == 1) bad("header version", "GGUF v1 (32-bit counts) is not supported; convert the file to v3");
  if (f.version_ != 2 && f.version_ != 3) {
    if ((f.version_ & 0xffff) == 0) bad("header version", "big-endian GGUF is not supported");
    bad("header version", fmt::format("version {} (expected 2 or 3)", f.version_));
  }
  *n_tensors = read<uint64_t>("header tensor count");
  *n_kv = read<uint64_t>("header metadata count");
  // A tensor info takes >= 28 bytes and a key/value >= 13: larger counts cannot fit in the file.
  if (*n_tensors > size_ / 28) {
    bad("header tensor count", fmt::format("{} tensors cannot fit in the file; truncated or corrupt?", *n_tensors));
  }
  if (*n_kv > size_ / 13) {
    bad("header metadata count", fmt::format("{} key/values cannot fit in the file; truncated or corrupt?", *n_kv));
  }
}

void GgufParser::read_metadata(GgufFile& f, uint64_t n_kv) {
  for (uint64_t k = 0; k < n_kv; ++k) {
    const std::string key = read_string(fmt::format("metadata key {}", k));
    const std::string where = "key " + key;
    if (f.kv_.count(key)) bad(where, "duplicate key");
    const uint32_t t = read<uint32_t>(where + " type");
    if (!valid_type(t)) bad(where, fmt::format("unknown value type {} (expected 0..12)", t));
    f.kv_.emplace(key, read_value(static_cast<GgufType>(t), where, 0));
    f.key_order_.push_back(key);
  }
  if (const GgufValue* a = f.find("general.alignment")) {
    if (a->type != GgufType::kU32) {
      bad("key general.alignment", fmt::format("type {} (expected u32)", gguf_type_name(a->type)));
    }
    if (a->u == 0 || (a->u & (a->u - 1)) != 0)
      bad("key general.alignment", fmt::format("{} is not a power of 2", a->u));
    f.alignment_ = a->u;
  }
}

void GgufParser::read_tensor_infos(GgufFile& f, uint64_t n_tensors) {
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensor t;
    t.name = read_string(fmt::format("tensor info {}", k));
    const std::string where = "tensor " + t.name;
    if (f.tensor_index_.count(t.name)) bad(where, "duplicate tensor name");
    const uint32_t n_dims = read<uint32_t>(where + " n_dims");
    if (n_dims == 0 || n_dims > kMaxDims) bad(where, fmt::format("{} dimensions (expected 1 to {})", n_dims, kMaxDims));
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const int64_t ne = read<int64_t>(where + " dims");
      if (ne < 0) bad(where, fmt::format("dimension {} is {} (negative)", d, ne));
      if (ne > 0 && numel > (uint64_t(INT64_MAX) / uint64_t(ne))) bad(where, "element count overflows");
      numel *= static_cast<uint64_t>(ne);
      t.ne.push_back(ne);
    }
    t.ggml_type = static_cast<int>(read<uint32_t>(where + " type"));
    const GgmlTypeInfo* ti = ggml_type_info(t.ggml_type);
    if (!ti) bad(where, fmt::format("unknown ggml type {}", t.ggml_type));
    if (ti->block_elems == 0) bad(where, fmt::format("type {} was removed from GGUF", ti->name));
    if (t.ne[0] % ti->block_elems != 0) {
      bad(where,
          fmt::format("row of {} elements is not a multiple of {}'s block of {}", t.ne[0], ti->name, ti->block_elems));
    }
    const uint64_t blocks = numel / static_cast<uint64_t>(ti->block_elems);
    if (blocks > UINT64_MAX / static_cast<uint64_t>(ti->block_bytes)) bad(where, "byte count overflows");
    t.nbytes = blocks * static_cast<uint64_t>(ti->block_bytes);
    t.offset = read<uint64_t>(where + " offset");
    f.tensor_index_.emplace(t.name, f.tensors_.size());
    f.tensors_.push_back(std::move(t));
  }
}

void GgufParser::check_tensor_data(GgufFile& f) {
  f.data_offset_ = pad_to(pos_, f.alignment_);
  if (!f.tensors_.empty() && f.data_offset_ > size_) {
    bad("data section", fmt::format("starts at byte {}, past the end of the file; truncated?", f.data_offset_));
  }
  const uint64_t data_size = size_ - std::min(size_, f.data_offset_);
  std::vector<const GgufTensor*> by_offset;
  for (const GgufTensor& t : f.tensors_) {
    const std::string where = "tensor " + t.name;
    if (t.offset % f.alignment_ != 0) {
      bad(where, fmt::format("data offset {} is not a multiple of the alignment {}", t.offset, f.alignment_));
    }
    if (t.offset > data_size || t.nbytes > data_size - t.offset) {
      bad(where, fmt::format("data [{}, {}) runs past the data section ({} bytes); truncated?", t.offset,
                             t.offset + t.nbytes, data_size));
    }
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t k = 1; k < by_offset.size(); ++k) {
    const GgufTensor &a = *by_offset[k - 1], &b = *by_offset[k];
    if (a.nbytes > 0 && b.nbytes > 0 && b.offset < a.offset + a.nbytes) {
      bad("tensor " + b.name, fmt::format("data [{}, {}) overlaps tensor {} [{}, {})", b.offset, b.offset + b.nbytes,
                                          a.name, a.offset, a.offset + a.nbytes));
    }
  }
}

GgufFile GgufParser::parse(std::shared_ptr<MappedFile> map) {
  GgufFile f;
  f.path_ = path_;
  f.file_size_ = size_;
  uint64_t n_tensors = 0, n_kv = 0;
  read_header(f, &n_tensors, &n_kv);
  read_metadata(f, n_kv);
  read_tensor_infos(f, n_tensors);
  check_tensor_data(f);
  f.map_ = std::move(map);
  return f;
}

// ---- values ---------------------------------------------------------------------------------------

const char* gguf_type_name(GgufType t) {
  static const char* names[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                "bool", "string", "array", "u64", "i64", "f64"};
  const auto i = static_cast<uint32_t>(t);
  return i < 13 ? names[i] : "unknown";
}

GgufValue GgufValue::u32(uint32_t v) {
  GgufValue x;
  x.type = GgufType::kU32;
  x.u = v;
  return x;
}
GgufValue GgufValue::i32(int32_t v) {
  GgufValue x;
  x.type = GgufType::kI32;
  x.i = v;
  return x;
}
GgufValue GgufValue::u64(uint64_t v) {
  GgufValue x;
  x.type = GgufType::kU64;
  x.u = v;
  return x;
}
GgufValue GgufValue::f32(float v) {
  GgufValue x;
  x.type = GgufType::kF32;
  x.f = v;
  return x;
}
GgufValue GgufValue::boolean(bool v) {
  GgufValue x;
  x.type = GgufType::kBool;
  x.i = v ? 1 : 0;
  return x;
}
GgufValue GgufValue::str(std::string v) {
  GgufValue x;
  x.type = GgufType::kString;
  x.s = std::move(v);
  return x;
}
GgufValue GgufValue::str_array(std::vector<std::string> v) {
  GgufValue x;
  x.type = GgufType::kArray;
  x.elem = GgufType::kString;
  x.strs = std::move(v);
  return x;
}
GgufValue GgufValue::i32_array(const std::vector<int32_t>& v) {
  GgufValue x;
  x.type = GgufType::kArray;
  x.elem = GgufType::kI32;
  x.raw.resize(v.size() * 4);
  if (!v.empty()) std::memcpy(x.raw.data(), v.data(), x.raw.size());
  return x;
}
GgufValue GgufValue::f32_array(const std::vector<float>& v) {
  GgufValue x;
  x.type = GgufType::kArray;
  x.elem = GgufType::kF32;
  x.raw.resize(v.size() * 4);
  if (!v.empty()) std::memcpy(x.raw.data(), v.data(), x.raw.size());
  return x;
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufType::kF32:
    case GgufType::kF64:
    case GgufType::kString:
    case GgufType::kArray:
      return false;
    default:
      return true;
  }
}
bool GgufValue::is_number() const { return is_integer() || type == GgufType::kF32 || type == GgufType::kF64; }

size_t GgufValue::array_size() const {
  if (type != GgufType::kArray) return 0;
  if (elem == GgufType::kString) return strs.size();
  if (elem == GgufType::kArray) return items.size();
  return raw.size() / scalar_size(elem);
}

double GgufValue::number_at(size_t k) const {
  const uint8_t* p = raw.data() + k * scalar_size(elem);
  auto get = [p](auto tag) {
    decltype(tag) v;
    std::memcpy(&v, p, sizeof(v));
    return static_cast<double>(v);
  };
  switch (elem) {
    case GgufType::kU8:
      return get(uint8_t{});
    case GgufType::kI8:
      return get(int8_t{});
    case GgufType::kU16:
      return get(uint16_t{});
    case GgufType::kI16:
      return get(int16_t{});
    case GgufType::kU32:
      return get(uint32_t{});
    case GgufType::kI32:
      return get(int32_t{});
    case GgufType::kF32:
      return get(float{});
    case GgufType::kBool:
      return get(uint8_t{});
    case GgufType::kU64:
      return get(uint64_t{});
    case GgufType::kI64:
      return get(int64_t{});
    case GgufType::kF64:
      return get(double{});
    default:
      return 0;
  }
}

const GgmlTypeInfo* ggml_type_info(int id) {
  for (const GgmlTypeInfo& t : kGgmlTypes)
    if (t.id == id) return &t;
  return nullptr;
}

int ggml_type_of(DType d) {
  for (const GgmlTypeInfo& t : kGgmlTypes)
    if (t.dtype && *t.dtype == d) return t.id;
  return -1;
}

std::vector<int64_t> GgufTensor::shape() const { return std::vector<int64_t>(ne.rbegin(), ne.rend()); }
int64_t GgufTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

// ---- file -----------------------------------------------------------------------------------------

GgufFile GgufFile::open(const std::string& path) {
  auto map = std::make_shared<MappedFile>(MappedFile::open(path));
  GgufParser parser(path, map->data(), map->size());
  return parser.parse(std::move(map));
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

std::optional<int64_t> GgufFile::opt_int(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_integer())
    fail(kComponent, "{}: key {}: type {}, expected an integer", path_, key, gguf_type_name(v->type));
  if (v->type == GgufType::kU64 && v->u > uint64_t(INT64_MAX))
    fail(kComponent, "{}: key {}: {} is too large", path_, key, v->u);
  switch (v->type) {
    case GgufType::kU8:
    case GgufType::kU16:
    case GgufType::kU32:
    case GgufType::kU64:
      return static_cast<int64_t>(v->u);
    default:
      return v->i;
  }
}

int64_t GgufFile::req_int(const std::string& key) const {
  auto v = opt_int(key);
  if (!v) fail(kComponent, "{}: missing key {} (an integer)", path_, key);
  return *v;
}

std::optional<double> GgufFile::opt_float(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type == GgufType::kF32 || v->type == GgufType::kF64) return v->f;
  if (v->is_integer()) return static_cast<double>(*opt_int(key));
  fail(kComponent, "{}: key {}: type {}, expected a number", path_, key, gguf_type_name(v->type));
}

std::optional<bool> GgufFile::opt_bool(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::kBool)
    fail(kComponent, "{}: key {}: type {}, expected bool", path_, key, gguf_type_name(v->type));
  return v->i != 0;
}

std::optional<std::string> GgufFile::opt_str(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::kString) {
    fail(kComponent, "{}: key {}: type {}, expected string", path_, key, gguf_type_name(v->type));
  }
  return v->s;
}

const std::vector<std::string>& GgufFile::req_str_array(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail(kComponent, "{}: missing key {} (an array of strings)", path_, key);
  if (v->type != GgufType::kArray || v->elem != GgufType::kString) {
    fail(kComponent, "{}: key {}: expected an array of strings", path_, key);
  }
  return v->strs;
}

std::vector<double> GgufFile::opt_num_array(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return {};
  if (v->type != GgufType::kArray || scalar_size(v->elem) == 0) {
    fail(kComponent, "{}: key {}: expected an array of numbers", path_, key);
  }
  std::vector<double> out(v->array_size());
  for (size_t k = 0; k < out.size(); ++k) out[k] = v->number_at(k);
  return out;
}

const GgufTensor* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufTensor& GgufFile::tensor(const std::string& name) const {
  const GgufTensor* t = find_tensor(name);
  if (!t) fail(kComponent, "{}: missing tensor {}", path_, name);
  return *t;
}

std::span<const uint8_t> GgufFile::bytes(const GgufTensor& t) const {
  return {map_->data() + data_offset_ + t.offset, static_cast<size_t>(t.nbytes)};
}

// ---- writer ---------------------------------------------------------------------------------------

void GgufWriter::set(const std::string& key, GgufValue value) {
  if (key == "general.alignment") {
    if (value.type != GgufType::kU32 || value.u == 0 || (value.u & (value.u - 1)) != 0) {
      fail(kComponent, "general.alignment must be a u32 power of 2");
    }
    alignment_ = value.u;
  }
  for (auto& kv : kv_) {
    if (kv.first == key) {
      kv.second = std::move(value);
      return;
    }
  }
  kv_.emplace_back(key, std::move(value));
}

void GgufWriter::add_tensor(const std::string& name, const std::vector<int64_t>& shape, DType dtype) {
  const int id = ggml_type_of(dtype);
  if (id < 0) fail(kComponent, "tensor {}: dtype {} has no GGUF type", name, dtype_name(dtype));
  GgufTensor t;
  t.name = name;
  t.ne.assign(shape.rbegin(), shape.rend());
  t.ggml_type = id;
  const GgmlTypeInfo* ti = ggml_type_info(id);
  if (t.ne.empty() || t.ne[0] % ti->block_elems != 0) {
    fail(kComponent, "tensor {}: rows of {} elements are not a multiple of {}'s block of {}", name,
         t.ne.empty() ? 0 : t.ne[0], ti->name, ti->block_elems);
  }
  t.nbytes = static_cast<uint64_t>(t.numel() / ti->block_elems * ti->block_bytes);
  t.offset = tensors_.empty() ? 0 : pad_to(tensors_.back().offset + tensors_.back().nbytes, alignment_);
  tensors_.push_back(std::move(t));
}

uint64_t GgufWriter::data_bytes() const {
  return tensors_.empty() ? 0 : tensors_.back().offset + tensors_.back().nbytes;
}

namespace {

class Bytes {
 public:
  template <typename T>
  void put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    buf.insert(buf.end(), p, p + sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    buf.insert(buf.end(), s.begin(), s.end());
  }
  void put_value(const GgufValue& v) {
    switch (v.type) {
      case GgufType::kU8:
        put<uint8_t>(static_cast<uint8_t>(v.u));
        break;
      case GgufType::kU16:
        put<uint16_t>(static_cast<uint16_t>(v.u));
        break;
      case GgufType::kU32:
        put<uint32_t>(static_cast<uint32_t>(v.u));
        break;
      case GgufType::kU64:
        put<uint64_t>(v.u);
        break;
      case GgufType::kI8:
        put<int8_t>(static_cast<int8_t>(v.i));
        break;
      case GgufType::kI16:
        put<int16_t>(static_cast<int16_t>(v.i));
        break;
      case GgufType::kI32:
        put<int32_t>(static_cast<int32_t>(v.i));
        break;
      case GgufType::kI64:
        put<int64_t>(v.i);
        break;
      case GgufType::kBool:
        put<uint8_t>(v.i ? 1 : 0);
        break;
      case GgufType::kF32:
        put<float>(static_cast<float>(v.f));
        break;
      case GgufType::kF64:
        put<double>(v.f);
        break;
      case GgufType::kString:
        put_string(v.s);
        break;
      case GgufType::kArray:
        put<uint32_t>(static_cast<uint32_t>(v.elem));
        put<uint64_t>(v.array_size());
        if (v.elem == GgufType::kString) {
          for (const std::string& s : v.strs) put_string(s);
        } else if (v.elem == GgufType::kArray) {
          for (const GgufValue& item : v.items) put_value(item);
        } else {
          buf.insert(buf.end(), v.raw.begin(), v.raw.end());
        }
        break;
    }
  }
  std::vector<uint8_t> buf;
};

}  // namespace

void GgufWriter::write(const std::string& path, const Fill& fill, const Progress& progress) const {
  Bytes h;
  h.put<uint32_t>(kMagic);
  h.put<uint32_t>(3);
  h.put<uint64_t>(tensors_.size());
  h.put<uint64_t>(kv_.size());
  for (const auto& [key, value] : kv_) {
    h.put_string(key);
    h.put<uint32_t>(static_cast<uint32_t>(value.type));
    h.put_value(value);
  }
  for (const GgufTensor& t : tensors_) {
    h.put_string(t.name);
    h.put<uint32_t>(static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) h.put<int64_t>(d);
    h.put<uint32_t>(static_cast<uint32_t>(t.ggml_type));
    h.put<uint64_t>(t.offset);
  }
  h.buf.resize(pad_to(h.buf.size(), alignment_), 0);
  TempFile out(path);
  out.write(h.buf.data(), h.buf.size());
  const uint64_t total = data_bytes();
  uint64_t written = 0;
  std::vector<uint8_t> data;
  const std::vector<uint8_t> zeros(alignment_, 0);
  for (size_t k = 0; k < tensors_.size(); ++k) {
    const GgufTensor& t = tensors_[k];
    if (written < t.offset) out.write(zeros.data(), t.offset - written);
    data.clear();
    fill(k, data);
    if (data.size() != t.nbytes) {
      fail(kComponent, "{}: tensor {}: {} bytes produced, its shape and type need {}", path, t.name, data.size(),
           t.nbytes);
    }
    out.write(data.data(), data.size());
    written = t.offset + t.nbytes;
    if (progress) progress(written, total);
  }
  out.commit();
}

}  // namespace moe
