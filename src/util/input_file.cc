// Input file and folder checks (see input_file.h).
#include "util/input_file.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "util/error.h"

namespace moe {
namespace {

std::string named(const std::string& what, const std::string& path) { return what.empty() ? path : what + " " + path; }

}  // namespace

void require_input_file(const std::string& path, const std::string& what, const std::string& component) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail(component, "{}: {}", named(what, path), std::strerror(errno));
  if (S_ISDIR(st.st_mode)) fail_usage(component, "{}: is a folder; expected a file", named(what, path));
}

void require_input_folder(const std::string& path, const std::string& what, const std::string& component) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail(component, "{}: {}", named(what, path), std::strerror(errno));
  if (!S_ISDIR(st.st_mode)) fail_usage(component, "{}: is a file; expected a folder", named(what, path));
}

std::string read_input_file(const std::string& path, const std::string& what, const std::string& component) {
  if (path == "-") {  // standard input, read to its end
    std::ostringstream ss;
    ss << std::cin.rdbuf();
    if (std::cin.bad()) fail(component, "{}: reading standard input failed", named(what, path));
    return ss.str();
  }
  require_input_file(path, what, component);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(component, "{}: cannot open: {}", named(what, path), std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) fail(component, "{}: read failed", named(what, path));
  return ss.str();
}

}  // namespace moe
