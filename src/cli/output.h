// What every command prints, the same way (docs/CLI.md): with --json, exactly one JSON object on
// stdout (2-space indent, a final newline, invalid UTF-8 replaced, nothing else on stdout); progress
// for long work on stderr, only when stderr is a terminal and --json is off.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "runtime/timer.h"
#include "util/json_out.h"  // json_count, json_measured, CeilingFraction

namespace moe::cli {

struct GlobalOptions;

void print_json_report(const nlohmann::ordered_json& j);

// A one-line progress display on stderr: "label [#####.....]  42.0%  12/30 unit  3 s". Silent unless
// `enabled` (the command's --no-progress not given), --json is off and stderr is a terminal; the
// line is cleared by done() or the destructor, so what follows starts on a clean line.
class Progress {
 public:
  Progress(std::string label, bool enabled, const GlobalOptions& global);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  bool active() const { return active_; }
  // done of total units (`unit` names them: "tensors", "GB", "tokens"); redraws at most 10 times a second.
  void update(double done, double total, const char* unit = "");
  void done();

 private:
  std::string label_;
  bool active_ = false;
  Timer timer_;
  double last_draw_ = -1;
};

}  // namespace moe::cli
