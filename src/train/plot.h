// `moe plot`: draws training metrics (metrics.jsonl from `moe train`) as one SVG: the loss
// curves of every run (train cross-entropy, validation), then per run a layer x expert heatmap
// of the expert load over time (load x E: 1 = perfectly balanced, 0 = a dead expert).
#pragma once

#include <string>
#include <vector>

namespace moe::train {

struct PlotRun {
  std::string label;  // legend / heatmap title
  std::string path;   // metrics.jsonl
};

// Reads the runs and returns the SVG text. Throws moe::Error("plot", ...) naming a bad file or line.
std::string plot_metrics_svg(const std::vector<PlotRun>& runs);

}  // namespace moe::train
