// `moe plot`: draws training metrics (metrics.jsonl from `moe train`) as one SVG: the loss
// curves of every run (train cross-entropy, validation) against the optimizer step, then per run
// a heatmap of the expert load over training (rows: layer/expert, columns: logged windows; load x E:
// 1 = balanced, 0 = a dead expert, drawn hatched) with its colour bar. Axes carry units and round
// (1-2-5) tick values.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace moe::train {

struct PlotRun {
  std::string label;  // legend / heatmap title
  std::string path;   // metrics.jsonl
};

struct Plot {
  std::string svg;
  nlohmann::ordered_json panels;  // [{"panel": "loss" | "expert_load", ...what it shows}]
};

// Reads the runs and draws them. Throws moe::Error("plot", ...) naming a bad file or line.
Plot plot_metrics(const std::vector<PlotRun>& runs);
inline std::string plot_metrics_svg(const std::vector<PlotRun>& runs) { return plot_metrics(runs).svg; }

// Round tick values covering [lo, hi]: steps of 1, 2 or 5 times a power of ten, at most about
// `max_ticks` of them; the first tick <= lo and the last >= hi.
std::vector<double> nice_ticks(double lo, double hi, int max_ticks);

}  // namespace moe::train
