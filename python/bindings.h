// Pieces shared by the Python module's files (module.cc: errors, inspect, Tokenizer; model.cc:
// Model, its generation iterator, trace and report).
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/flags.h"
#include "util/error.h"

namespace moe::python {

namespace py = pybind11;

// Text the engine produced (a decode, a generated piece) as a Python str; bytes that are not valid
// UTF-8 become U+FFFD, as `moe run --json` replaces them.
inline py::str to_str(std::string_view bytes) {
  PyObject* s = PyUnicode_DecodeUTF8(bytes.data(), static_cast<Py_ssize_t>(bytes.size()), "replace");
  if (s == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(s);
}

// A path argument: a str or an os.PathLike (pathlib.Path); None gives nullopt.
inline std::optional<std::string> path_arg(const py::object& path) {
  if (path.is_none()) return std::nullopt;
  return py::module_::import("os").attr("fspath")(path).cast<std::string>();
}

// json.loads of the engine's JSON: the dict `json.loads` gives for the command's --json output.
inline py::object to_python(const nlohmann::ordered_json& j) {
  return py::module_::import("json").attr("loads")(
      j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
}

// A keyword's value checked against the range of the CLI flag it mirrors (cli/flags.h), so Python
// and the command accept the same values: `moe.UsageError: [python] context: expected an integer
// from 1 to ..., found 0`.
template <typename T>
T checked(const char* keyword, T value, T lo, T hi, bool lo_open = false) {
  const cli::NumberRange range{
      cli::number_kind<T>(),     static_cast<long double>(lo), static_cast<long double>(hi), lo_open, "",
      sizeof(T) == sizeof(float)};
  std::string text = fmt::format("{}", value);
  if (const std::string problem = cli::check_number(text, range); !problem.empty()) {
    throw UsageError("python", fmt::format("{}: {}", keyword, problem));
  }
  return value;
}

void register_model(py::module_& m);
void init_module(py::module_& m);

}  // namespace moe::python
