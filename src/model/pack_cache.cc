// PackCache (see pack_cache.h). File: "MOEPACK1", u64 header length, the JSON header, zero padding to
// 4096, then the entries, each at a 4096-aligned offset.
#include "model/pack_cache.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "runtime/process_limits.h"
#include "util/check.h"
#include "util/error.h"
#include "util/log.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

constexpr char kMagic[8] = {'M', 'O', 'E', 'P', 'A', 'C', 'K', '1'};
constexpr uint64_t kAlign = 4096;

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Each file the model is read from: path, size and modification time in nanoseconds.
std::string source_identity(const std::string& source) {
  std::error_code ec;
  const fs::path canonical = fs::weakly_canonical(source, ec);
  std::vector<fs::path> files;
  if (fs::is_directory(canonical, ec)) {
    for (const auto& e : fs::directory_iterator(canonical, ec)) {
      const std::string ext = e.path().extension().string();
      if (e.is_regular_file(ec) && (ext == ".safetensors" || ext == ".json")) files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
  } else {
    files.push_back(canonical);
  }
  std::string id = canonical.string();
  for (const fs::path& f : files) {
    struct stat st {};
    if (::stat(f.c_str(), &st) != 0) return {};
    id += fmt::format("|{}:{}:{}.{:09}", f.filename().string(), static_cast<long long>(st.st_size),
                      static_cast<long long>(st.st_mtim.tv_sec), static_cast<long>(st.st_mtim.tv_nsec));
  }
  return id;
}

// Deletes the least recently written or used .moepack files of dir (never `keep`) until the others
// and `incoming` bytes fit in max_bytes. Returns false when `incoming` alone does not fit.
bool make_room(const std::string& dir, const std::string& keep, uint64_t incoming, uint64_t max_bytes) {
  if (incoming > max_bytes) return false;
  std::error_code ec;
  std::vector<std::pair<fs::file_time_type, fs::path>> files;
  uint64_t total = 0;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.path().extension() != ".moepack" || e.path() == fs::path(keep) || !e.is_regular_file(ec)) continue;
    total += e.file_size(ec);
    files.emplace_back(e.last_write_time(ec), e.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& [when, path] : files) {
    if (total + incoming <= max_bytes) break;
    const uint64_t size = fs::file_size(path, ec);
    if (fs::remove(path, ec)) {
      fs::remove(path.string() + ".small-pages", ec);
      total -= std::min(total, size);
      log_info("pack cache: removed {} ({:.1f} GB, least recently used) to stay under {:.1f} GB", path.string(),
               double(size) * 1e-9, double(max_bytes) * 1e-9);
    }
  }
  return true;
}

constexpr size_t kHugePage = size_t{2} << 20;

size_t round_to_page(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// The whole file, read-only and shared, at a 2 MiB-aligned address, asked for transparent huge pages and
// populated (every page mapped now, not at the first decode step). Null when it cannot be mapped.
uint8_t* map_aligned(int fd, size_t size) {
  const size_t len = round_to_page(size), reserved = len + kHugePage;
  void* r = ::mmap(nullptr, reserved, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (r == MAP_FAILED) return nullptr;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(r);
  const uintptr_t at = (begin + kHugePage - 1) & ~uintptr_t{kHugePage - 1};
  void* p = ::mmap(reinterpret_cast<void*>(at), len, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0);
  if (p == MAP_FAILED) {
    ::munmap(r, reserved);
    return nullptr;
  }
  if (at > begin) ::munmap(r, at - begin);
  if (begin + reserved > at + len) ::munmap(reinterpret_cast<void*>(at + len), begin + reserved - (at + len));
  ::madvise(p, len, MADV_HUGEPAGE);  // hints: without them the mapping stays in 4 KiB pages
  if (::madvise(p, len, MADV_POPULATE_READ) != 0 && errno == EINVAL) {  // kernels before 5.14: touch each page
    volatile const uint8_t* bytes = static_cast<const uint8_t*>(p);
    for (size_t i = 0; i < len; i += kAlign) (void)bytes[i];
  }  // other failures (a file cut short since its header was read) are left to the reads that follow
  return static_cast<uint8_t*>(p);
}

// Bytes of the file mapping starting at addr that are mapped through 2 MiB pages (its FilePmdMapped line
// in /proc/self/smaps); 0 when it cannot be read.
uint64_t pmd_mapped_bytes(const void* addr) {
  std::ifstream in("/proc/self/smaps");
  const std::string start = fmt::format("{:x}-", reinterpret_cast<uintptr_t>(addr));
  bool ours = false;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && (std::isdigit(static_cast<unsigned char>(line[0])) || (line[0] >= 'a' && line[0] <= 'f')))
      ours = line.compare(0, start.size(), start) == 0;  // a mapping's first line: "start-end perms ..."
    else if (ours && line.compare(0, 14, "FilePmdMapped:") == 0)
      return std::strtoull(line.c_str() + 14, nullptr, 10) << 10;
  }
  return 0;
}

bool huge_pages_available() {
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string s;
  std::getline(in, s);
  return !s.empty() && s.find("[never]") == std::string::npos;
}

// Maps a pack file so the kernels stream it through 2 MiB pages: read through 4 KiB pages (scattered
// physical pages, a page walk per 4 KiB, the hardware prefetchers stopping at each page's end) the same
// weights stream about 13% slower on the machines we measured. The page cache keeps a file's pages in
// the sizes it read them in: a file cached mostly in small pages (just written, read by another program,
// or split since) is dropped from the cache and read again through huge pages. Where that does not give
// huge pages (a file system that caches no large pages, memory too fragmented), a "<file>.small-pages"
// marker holding the boot's id stops further tries until the next boot.
const uint8_t* map_in_huge_pages(int fd, size_t size, const std::string& path) {
  uint8_t* p = map_aligned(fd, size);
  const auto mostly_huge = [size](const uint8_t* m) {  // of the whole 2 MiB pieces the file covers
    return pmd_mapped_bytes(m) >= size / kHugePage * kHugePage / 10 * 9;
  };
  if (!p || size < 4 * kHugePage || !huge_pages_available() || mostly_huge(p)) return p;
  const std::string marker = path + ".small-pages", boot = boot_id();
  std::string tried;
  std::getline(std::ifstream(marker), tried);
  if (!boot.empty() && tried == boot) return p;  // tried already since this boot
  const auto t0 = std::chrono::steady_clock::now();
  ::munmap(p, round_to_page(size));
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  p = map_aligned(fd, size);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!p) return p;
  if (mostly_huge(p)) {
    log_info("pack cache: {} read again into 2 MiB pages ({:.2f} s)", path, s);
  } else {
    std::ofstream(marker) << boot << "\n";
    log_info("pack cache: {} stays mostly in 4 KiB pages ({:.0f}% in 2 MiB pages; not tried again before a reboot)",
             path, 100.0 * double(pmd_mapped_bytes(p)) / double(size));
  }
  return p;
}

}  // namespace

PackCacheOptions PackCacheOptions::from_env() {
  PackCacheOptions o;
  if (const char* v = std::getenv("MOE_PACK_CACHE"); v && (std::string(v) == "0" || std::string(v) == "off"))
    o.enabled = false;
  if (const char* v = std::getenv("MOE_CACHE_DIR"); v && *v) {
    o.dir = v;
  } else if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) {
    o.dir = std::string(x) + "/moe";
  } else if (const char* h = std::getenv("HOME"); h && *h) {
    o.dir = std::string(h) + "/.cache/moe";
  }
  for (const auto& [name, field] :
       {std::pair{"MOE_PACK_CACHE_MIN_BYTES", &o.min_bytes}, std::pair{"MOE_PACK_CACHE_MAX_BYTES", &o.max_bytes}}) {
    const char* v = std::getenv(name);
    if (!v || !*v) continue;
    char* end = nullptr;
    const unsigned long long n = std::strtoull(v, &end, 10);
    if (end && *end == '\0') *field = n;
  }
  if (o.dir.empty()) o.enabled = false;
  return o;
}

PackCache::PackCache(const std::string& source, const std::string& layout, PackCacheOptions options)
    : options_(std::move(options)) {
  if (!options_.enabled) return;
  const std::string id = source_identity(source);
  if (id.empty()) {
    options_.enabled = false;
    return;
  }
  identity_ = id + "||" + layout;
  std::error_code ec;
  path_ = (fs::path(options_.dir) /
           fmt::format("{:016x}.moepack", fnv1a(fs::weakly_canonical(source, ec).string() + "|" + layout)))
              .string();
  const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;  // not cached yet
  struct stat st {};
  char magic[8];
  uint64_t header_len = 0;
  const bool ok_head = ::fstat(fd, &st) == 0 && st.st_size >= 16 && ::pread(fd, magic, 8, 0) == 8 &&
                       std::memcmp(magic, kMagic, 8) == 0 && ::pread(fd, &header_len, 8, 8) == 8 &&
                       header_len < uint64_t(st.st_size) - 16 && header_len < (uint64_t{64} << 20);
  std::string header(ok_head ? header_len : 0, '\0');
  if (!ok_head || ::pread(fd, header.data(), header_len, 16) != static_cast<ssize_t>(header_len)) {
    ::close(fd);
    return;  // not ours, or torn: rebuilt by this load
  }
  const size_t size = static_cast<size_t>(st.st_size);
  try {
    const nlohmann::json h = nlohmann::json::parse(header);
    if (h.at("identity").get<std::string>() != identity_) {
      ::close(fd);
      return;  // another source or layout: rebuilt
    }
    for (const auto& e : h.at("entries")) {
      const uint64_t offset = e.at(1).get<uint64_t>(), bytes = e.at(2).get<uint64_t>();
      if (offset % kAlign != 0 || offset > size || bytes > size - offset) {
        ::close(fd);
        return;
      }
      entries_[e.at(0).get<std::string>()] = Entry{offset, bytes, nullptr};
    }
  } catch (const nlohmann::json::exception&) {
    ::close(fd);
    entries_.clear();
    return;
  }
  map_ = map_in_huge_pages(fd, size, path_);
  ::close(fd);
  if (!map_) {
    entries_.clear();
    return;
  }
  map_bytes_ = size;
  fs::last_write_time(path_, fs::file_time_type::clock::now(), ec);  // recently used: evicted last
}

PackCache::~PackCache() {
  if (map_) ::munmap(const_cast<uint8_t*>(map_), map_bytes_);
}

const uint8_t* PackCache::find(const std::string& name, size_t bytes) const {
  if (!map_) return nullptr;
  const auto it = entries_.find(name);
  if (it == entries_.end() || it->second.bytes != bytes) return nullptr;
  return map_ + it->second.offset;
}

uint64_t PackCache::huge_page_bytes() const { return map_ ? pmd_mapped_bytes(map_) : 0; }

void PackCache::record(const std::string& name, const void* data, size_t bytes) {
  if (map_ || !options_.enabled || entries_.count(name)) return;
  entries_[name] = Entry{0, bytes, data};
  order_.push_back(name);
}

uint64_t PackCache::bytes() const {
  if (map_) return map_bytes_;
  uint64_t n = 0;
  for (const auto& [name, e] : entries_) n += e.bytes;
  return n;
}

uint64_t PackCache::save() {
  if (map_ || !options_.enabled || order_.empty() || bytes() < options_.min_bytes) return 0;
  try {
    std::error_code ec;
    fs::create_directories(options_.dir, ec);
    const fs::space_info space = fs::space(options_.dir, ec);
    if (ec || space.available < bytes() + (uint64_t{1} << 30)) {
      log_warn("packed weights not cached: {} has {:.1f} GB free, the panels need {:.1f} GB (and 1 GB to spare)",
               options_.dir, ec ? 0.0 : double(space.available) * 1e-9, double(bytes()) * 1e-9);
      return 0;
    }
    // Offsets: the header's size depends on them, so lay out with a bound on the header first.
    nlohmann::json h;
    h["identity"] = identity_;
    h["entries"] = nlohmann::json::array();
    for (const std::string& name : order_) h["entries"].push_back({name, uint64_t{0}, entries_[name].bytes});
    const uint64_t header_room = (16 + h.dump().size() + order_.size() * 24 + kAlign - 1) / kAlign * kAlign + kAlign;
    uint64_t offset = header_room;
    h["entries"] = nlohmann::json::array();
    for (const std::string& name : order_) {
      Entry& e = entries_[name];
      e.offset = offset;
      h["entries"].push_back({name, e.offset, e.bytes});
      offset = (offset + e.bytes + kAlign - 1) / kAlign * kAlign;
    }
    const std::string header = h.dump();
    MOE_CHECK(16 + header.size() <= header_room);
    if (!make_room(options_.dir, path_, offset, options_.max_bytes)) {
      log_warn(
          "packed weights not cached: the cache file ({:.1f} GB) would exceed the cache's limit of {:.1f} GB "
          "(MOE_PACK_CACHE_MAX_BYTES)",
          double(offset) * 1e-9, double(options_.max_bytes) * 1e-9);
      return 0;
    }
    TempFile out(path_);
    const uint64_t len = header.size();
    out.write(kMagic, 8);
    out.write(&len, 8);
    out.write(header.data(), header.size());
    static const uint8_t kZeros[kAlign] = {};
    const auto pad = [&out](uint64_t n) {  // the gap before the first entry may exceed one alignment unit
      for (; n > 0; n -= std::min<uint64_t>(n, kAlign)) out.write(kZeros, std::min<uint64_t>(n, kAlign));
    };
    uint64_t at = 16 + header.size();
    for (const std::string& name : order_) {
      const Entry& e = entries_.at(name);
      pad(e.offset - at);
      out.write(e.data, e.bytes);
      at = e.offset + e.bytes;
    }
    pad((kAlign - at % kAlign) % kAlign);
    out.commit();
    // The written pages sit in the page cache in small pieces, beside this process's own copy of the
    // panels: dropped now, the next load reads the file into huge pages (see map_in_huge_pages).
    if (const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC); fd >= 0) {
      ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
      ::close(fd);
    }
    return (at + kAlign - 1) / kAlign * kAlign;
  } catch (const Error& e) {
    log_warn("packed weights not cached: {}", e.what());
    return 0;
  }
}

}  // namespace moe
