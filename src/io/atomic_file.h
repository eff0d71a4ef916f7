// A file written whole or not at all: data goes to "<path>.tmp.<pid>", commit() fsyncs and renames it
// over path; destroyed without commit() (an error, an exception) the temporary is removed.
#pragma once

#include <cstddef>
#include <string>

namespace moe {

class TempFile {
 public:
  explicit TempFile(const std::string& path);  // throws moe::Error("io", ...) naming the path
  ~TempFile();
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  void write(const void* data, size_t n);
  void commit();
  const std::string& temp_path() const { return tmp_; }

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace moe
