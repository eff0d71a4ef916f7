// 64-byte aligned buffers: AlignedBuffer<T> owns n elements, zero-initialized unless the owner overwrites
// every element anyway (kUninitialized: packed weights), which saves a pass over gigabytes at load.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

namespace moe {

constexpr size_t kAlignment = 64;

void* aligned_alloc_bytes(size_t bytes);  // throws std::bad_alloc; never returns null
void aligned_free(void* p);

struct Uninitialized {};
inline constexpr Uninitialized kUninitialized{};

template <typename T>
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t n) : data_(static_cast<T*>(aligned_alloc_bytes(n * sizeof(T)))), size_(n) {
    std::memset(static_cast<void*>(data_), 0, n * sizeof(T));
  }
  AlignedBuffer(size_t n, Uninitialized) : data_(static_cast<T*>(aligned_alloc_bytes(n * sizeof(T)))), size_(n) {}
  ~AlignedBuffer() { aligned_free(data_); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  AlignedBuffer(AlignedBuffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    if (this != &o) {
      aligned_free(data_);
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }

  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }
  T* begin() { return data_; }
  T* end() { return data_ + size_; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + size_; }

 private:
  T* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace moe
