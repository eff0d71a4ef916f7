// Safetensors reading (validated, mmapped) and atomic writing.
#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/json_keys.h"
#include "util/error.h"

namespace moe {
namespace {

constexpr const char* kComponent = "safetensors";
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // the format's own limit is 100 MB

bool mul_overflows(uint64_t a, uint64_t b, uint64_t* out) { return __builtin_mul_overflow(a, b, out); }

TensorInfo parse_entry(const std::string& path, const std::string& name, const nlohmann::json& v, uint64_t data_size) {
  if (!v.is_object()) fail(kComponent, "{}: tensor '{}': expected an object, found {}", path, name, v.type_name());
  TensorInfo t;
  t.name = name;
  auto dt = v.find("dtype");
  if (dt == v.end() || !dt->is_string()) fail(kComponent, "{}: tensor '{}': missing string field 'dtype'", path, name);
  auto parsed = dtype_from_name(dt->get<std::string>());
  if (!parsed) {
    fail(kComponent,
         "{}: tensor '{}': unknown dtype '{}' (expected one of F64 F32 F16 BF16 I64 I32 I16 I8 U64 U32 U16 U8 BOOL "
         "F8_E4M3 F8_E5M2 F8_E8M0)",
         path, name, dt->get<std::string>());
  }
  t.dtype = *parsed;
  auto sh = v.find("shape");
  if (sh == v.end() || !sh->is_array()) fail(kComponent, "{}: tensor '{}': missing array field 'shape'", path, name);
  uint64_t numel = 1;
  for (const auto& d : *sh) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0) {
      fail(kComponent, "{}: tensor '{}': shape entries must be non-negative integers, found {}", path, name, d.dump());
    }
    t.shape.push_back(d.get<int64_t>());
    if (mul_overflows(numel, static_cast<uint64_t>(t.shape.back()), &numel)) {
      fail(kComponent, "{}: tensor '{}': shape {} overflows", path, name, sh->dump());
    }
  }
  auto off = v.find("data_offsets");
  if (off == v.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
      !(*off)[1].is_number_unsigned()) {
    fail(kComponent, "{}: tensor '{}': 'data_offsets' must be [begin, end] of non-negative integers", path, name);
  }
  t.begin = (*off)[0].get<uint64_t>();
  t.end = (*off)[1].get<uint64_t>();
  if (t.end < t.begin)
    fail(kComponent, "{}: tensor '{}': data_offsets [{}, {}] end before begin", path, name, t.begin, t.end);
  if (t.end > data_size) {
    fail(kComponent, "{}: tensor '{}': data_offsets [{}, {}] run past the data section ({} bytes); file truncated?",
         path, name, t.begin, t.end, data_size);
  }
  uint64_t expected;
  if (mul_overflows(numel, dtype_size(t.dtype), &expected) || expected != t.end - t.begin) {
    fail(kComponent, "{}: tensor '{}': shape {} x {} needs {} bytes but data_offsets give {}", path, name, sh->dump(),
         dtype_name(t.dtype), numel * dtype_size(t.dtype), t.end - t.begin);
  }
  return t;
}

void check_no_overlap(const std::string& path, std::vector<TensorInfo> sorted) {
  std::sort(sorted.begin(), sorted.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (size_t i = 1; i < sorted.size(); ++i) {
    const TensorInfo& prev = sorted[i - 1];
    const TensorInfo& cur = sorted[i];
    if (cur.begin < prev.end && cur.nbytes() > 0 && prev.nbytes() > 0) {
      fail(kComponent, "{}: tensors '{}' [{}, {}) and '{}' [{}, {}) overlap", path, prev.name, prev.begin, prev.end,
           cur.name, cur.begin, cur.end);
    }
  }
}

std::string read_prefix(const std::string& path, uint64_t* file_size, uint64_t max_bytes) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    if (S_ISDIR(st.st_mode)) fail_usage(kComponent, "{}: is a folder; expected a file", path);
    fail(kComponent, "{}: not a regular file", path);
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(kComponent, "{}: cannot open: {}", path, std::strerror(errno));
  in.seekg(0, std::ios::end);
  *file_size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  std::string buf(std::min<uint64_t>(*file_size, max_bytes), '\0');
  in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
  return buf;
}

}  // namespace

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

MappedFile MappedFile::open(const std::string& path) {
  MappedFile m;
  m.path_ = path;
  // Checked before open(): opening a FIFO or a device for reading can block, or read forever.
  struct stat pre {};
  if (::stat(path.c_str(), &pre) == 0 && !S_ISREG(pre.st_mode)) {
    if (S_ISDIR(pre.st_mode)) fail_usage(kComponent, "{}: is a folder; expected a file", path);
    fail(kComponent, "{}: not a regular file", path);
  }
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(kComponent, "{}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    fail(kComponent, "{}: cannot stat: {}", path, std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    if (S_ISDIR(st.st_mode)) fail_usage(kComponent, "{}: is a folder; expected a file", path);
    fail(kComponent, "{}: not a regular file", path);
  }
  m.size_ = static_cast<size_t>(st.st_size);
  if (m.size_ > 0) {
    void* p = mmap(nullptr, m.size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int e = errno;
      ::close(fd);
      fail(kComponent, "{}: mmap failed: {}", path, std::strerror(e));
    }
    m.data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  return m;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) munmap(const_cast<uint8_t*>(data_), size_);
}

size_t MappedFile::release(const void* p, size_t n) const {
  const auto* b = static_cast<const uint8_t*>(p);
  if (data_ == nullptr || b < data_ || b + n > data_ + size_ || n == 0) return 0;
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t first = (reinterpret_cast<uintptr_t>(b) + page - 1) / page * page;
  const uintptr_t last = (reinterpret_cast<uintptr_t>(b) + n) / page * page;
  if (last <= first) return 0;
  madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);  // a hint: failure changes nothing
  return last - first;
}

MappedFile::MappedFile(MappedFile&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)), path_(std::move(o.path_)) {}

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  if (this != &o) {
    if (data_ != nullptr) munmap(const_cast<uint8_t*>(data_), size_);
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    path_ = std::move(o.path_);
  }
  return *this;
}

SafetensorsFile SafetensorsFile::parse(std::string path, const uint8_t* bytes, size_t size, bool header_only,
                                       uint64_t file_size) {
  if (file_size < 8) fail(kComponent, "{}: file is {} bytes, too short for the 8-byte header length", path, file_size);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  if (header_len > kMaxHeaderBytes) {
    fail(kComponent, "{}: header length {} exceeds the 100 MB limit; not a safetensors file?", path, header_len);
  }
  if (8 + header_len > file_size) {
    fail(kComponent, "{}: header length {} runs past the end of the file ({} bytes); truncated?", path, header_len,
         file_size);
  }
  if (8 + header_len > size) fail(kComponent, "{}: could not read the {}-byte header", path, header_len);
  nlohmann::json header;
  DuplicateKey dup;
  try {
    header = parse_json_checking_keys({reinterpret_cast<const char*>(bytes) + 8, header_len}, &dup);
  } catch (const nlohmann::json::exception& e) {
    fail(kComponent, "{}: header is not valid JSON: {}", path, e.what());
  }
  if (dup.depth == 1 && dup.key == "__metadata__") fail(kComponent, "{}: '__metadata__' appears twice", path);
  if (dup.depth == 1) fail(kComponent, "{}: tensor '{}' appears twice in the header", path, dup.key);
  if (!dup.key.empty()) fail(kComponent, "{}: '{}': field '{}' appears twice in the header", path, dup.parent, dup.key);
  if (!header.is_object()) fail(kComponent, "{}: header must be a JSON object, found {}", path, header.type_name());

  SafetensorsFile f;
  f.path_ = std::move(path);
  const uint64_t data_size = file_size - 8 - header_len;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) fail(kComponent, "{}: '__metadata__' must be an object of strings", f.path_);
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) fail(kComponent, "{}: '__metadata__' value '{}' must be a string", f.path_, m.key());
        f.metadata_[m.key()] = m->get<std::string>();
      }
      continue;
    }
    f.tensors_.push_back(parse_entry(f.path_, it.key(), *it, data_size));
  }
  // Keep the file's data order (nlohmann's object is sorted by key, the file is by offset).
  std::stable_sort(f.tensors_.begin(), f.tensors_.end(),
                   [](const TensorInfo& a, const TensorInfo& b) { return a.begin < b.begin; });
  check_no_overlap(f.path_, f.tensors_);
  for (size_t i = 0; i < f.tensors_.size(); ++i) f.index_[f.tensors_[i].name] = i;
  if (!header_only) f.data_section_ = bytes + 8 + header_len;
  return f;
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  auto map = std::make_shared<MappedFile>(MappedFile::open(path));
  SafetensorsFile f = parse(path, map->data(), map->size(), false, map->size());
  f.map_ = std::move(map);
  return f;
}

SafetensorsFile SafetensorsFile::open_header_only(const std::string& path) {
  uint64_t file_size = 0;
  std::string prefix = read_prefix(path, &file_size, 8);
  uint64_t header_len = 0;
  if (prefix.size() == 8) {
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(prefix[i]);
  }
  if (header_len <= kMaxHeaderBytes && 8 + header_len <= file_size) {
    prefix = read_prefix(path, &file_size, 8 + header_len);
  }
  return parse(path, reinterpret_cast<const uint8_t*>(prefix.data()), prefix.size(), true, file_size);
}

bool SafetensorsFile::has(const std::string& name) const { return index_.count(name) != 0; }

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail(kComponent, "{}: no tensor named '{}'", path_, name);
  return tensors_[it->second];
}

std::span<const uint8_t> SafetensorsFile::bytes(const std::string& name) const {
  const TensorInfo& t = info(name);
  if (data_section_ == nullptr) fail(kComponent, "{}: tensor '{}': file was opened header-only", path_, name);
  return {data_section_ + t.begin, t.nbytes()};
}

std::span<const uint8_t> SafetensorsFile::checked_bytes(const std::string& name, DType expected,
                                                        size_t alignment) const {
  const TensorInfo& t = info(name);
  if (t.dtype != expected) {
    fail(kComponent, "{}: tensor '{}': dtype is {}, expected {}", path_, name, dtype_name(t.dtype),
         dtype_name(expected));
  }
  if (!is_aligned(name, alignment)) {
    fail(kComponent, "{}: tensor '{}': data at offset {} is not {}-byte aligned for a typed view; copy it instead",
         path_, name, t.begin, alignment);
  }
  return bytes(name);
}

bool SafetensorsFile::is_aligned(const std::string& name, size_t alignment) const {
  const auto b = bytes(name);
  return reinterpret_cast<uintptr_t>(b.data()) % alignment == 0;
}

std::vector<float> SafetensorsFile::to_f32(const std::string& name) const {
  const TensorInfo& t = info(name);
  if (!dtype_is_float(t.dtype)) {
    fail(kComponent, "{}: tensor '{}': dtype {} is not a float type", path_, name, dtype_name(t.dtype));
  }
  auto b = bytes(name);
  std::vector<float> out(static_cast<size_t>(t.numel()));
  convert_to_f32(t.dtype, b.data(), out.data(), out.size());
  return out;
}

}  // namespace moe
