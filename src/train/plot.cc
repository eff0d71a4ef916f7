// SVG plotting of training metrics (see plot.h), written directly (no plotting library).
#include "train/plot.h"

#include <algorithm>
#include <cmath>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/input_file.h"

namespace moe::train {
namespace {

struct Series {
  std::vector<double> step, ce, val_step, val;
  std::vector<std::vector<std::vector<double>>> load;  // [log entry][layer][expert] = load x E
};

Series read_series(const PlotRun& r) {
  require_input_file(r.path, "metrics file", "plot");
  std::ifstream in(r.path);
  if (!in) fail("plot", "{}: cannot open metrics file", r.path);
  Series s;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
      s.step.push_back(j.at("step").get<double>());
      s.ce.push_back(j.at("ce").get<double>());
      if (j.contains("val_loss")) {
        s.val_step.push_back(s.step.back());
        s.val.push_back(j["val_loss"].get<double>());
      }
      std::vector<std::vector<double>> layers;
      for (const auto& l : j.at("layers")) {
        std::vector<double> row;
        const double e = static_cast<double>(l.at("load").size());
        for (const auto& x : l.at("load")) row.push_back(x.get<double>() * e);
        layers.push_back(row);
      }
      s.load.push_back(layers);
    } catch (const std::exception& e) {
      fail("plot", "{}:{}: not a metrics line of `moe train` ({})", r.path, n, e.what());
    }
  }
  if (s.step.empty()) fail("plot", "{}: no metrics lines", r.path);
  return s;
}

// Sequential colour map: 0 (dead) black -> 1 (balanced) teal -> 3+ (hot) yellow.
std::string heat_color(double v) {
  const double t = std::clamp(v / 3.0, 0.0, 1.0);
  const double stops[4][3] = {{0, 0, 0}, {40, 80, 160}, {30, 170, 140}, {250, 230, 40}};
  const double x = t * 3.0;
  const int i = std::min(2, static_cast<int>(x));
  const double f = x - i;
  auto ch = [&](int c) { return static_cast<int>(stops[i][c] + f * (stops[i + 1][c] - stops[i][c])); };
  return fmt::format("rgb({},{},{})", ch(0), ch(1), ch(2));
}

const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};

std::string loss_panel(const std::vector<PlotRun>& runs, const std::vector<Series>& ss, double y0, double w, double h) {
  double xmax = 1, lo = 1e30, hi = -1e30;
  for (const auto& s : ss) {
    xmax = std::max(xmax, s.step.back());
    for (double v : s.ce) lo = std::min(lo, v), hi = std::max(hi, v);
    for (double v : s.val) lo = std::min(lo, v), hi = std::max(hi, v);
  }
  if (hi <= lo) hi = lo + 1;
  const double L = 60, R = w - 20, T = y0 + 30, B = y0 + h - 30;
  auto px = [&](double x) { return L + (R - L) * x / xmax; };
  auto py = [&](double y) { return B - (B - T) * (y - lo) / (hi - lo); };
  std::string out = fmt::format(
      "<text x='{}' y='{}' font-size='14'>loss (solid: train cross-entropy, dashed: validation)</text>\n", L, y0 + 18);
  out += fmt::format("<rect x='{}' y='{}' width='{}' height='{}' fill='none' stroke='#888'/>\n", L, T, R - L, B - T);
  for (int i = 0; i <= 4; ++i) {
    const double v = lo + (hi - lo) * i / 4;
    out += fmt::format("<text x='{}' y='{}' font-size='10' text-anchor='end'>{:.3f}</text>\n", L - 4, py(v) + 3, v);
  }
  out += fmt::format("<text x='{}' y='{}' font-size='10' text-anchor='end'>step {}</text>\n", R, B + 14, xmax);
  for (size_t r = 0; r < ss.size(); ++r) {
    const char* col = kColors[r % 8];
    auto poly = [&](const std::vector<double>& xs, const std::vector<double>& ys, const char* dash) {
      std::string pts;
      for (size_t i = 0; i < xs.size(); ++i) pts += fmt::format("{:.1f},{:.1f} ", px(xs[i]), py(ys[i]));
      return fmt::format("<polyline fill='none' stroke='{}' stroke-width='1.5' {} points='{}'/>\n", col, dash, pts);
    };
    out += poly(ss[r].step, ss[r].ce, "");
    if (!ss[r].val.empty()) out += poly(ss[r].val_step, ss[r].val, "stroke-dasharray='5,3'");
    out += fmt::format("<text x='{}' y='{}' font-size='11' fill='{}'>{} (final {:.4f})</text>\n", L + 10,
                       T + 15 + 14 * r, col, runs[r].label, ss[r].ce.back());
  }
  return out;
}

std::string heatmap(const PlotRun& run, const Series& s, double y0, double w, double* height) {
  const size_t n_log = s.load.size(), n_layer = s.load[0].size();
  size_t n_exp = 0;  // dense layers have no load row
  for (const auto& layer : s.load[0]) n_exp = std::max(n_exp, layer.size());
  const double L = 60, R = w - 20, cell_h = std::max(3.0, std::min(12.0, 240.0 / (n_layer * n_exp)));
  const double T = y0 + 24, cell_w = (R - L) / n_log;
  std::string out = fmt::format(
      "<text x='{}' y='{}' font-size='13'>{}: expert load x E per layer (rows: layer/expert, "
      "columns: log steps; black = dead, teal = balanced, yellow = 3x overloaded)</text>\n",
      L, y0 + 16, run.label);
  for (size_t l = 0; l < n_layer; ++l) {
    const double ly = T + l * (n_exp * cell_h + 4);
    const bool dense = s.load[0][l].empty();
    out += fmt::format("<text x='{}' y='{}' font-size='10' text-anchor='end'>layer {}{}</text>\n", L - 4,
                       ly + n_exp * cell_h / 2 + 3, l, dense ? " (dense)" : "");
    if (dense) continue;
    for (size_t e = 0; e < n_exp; ++e)
      for (size_t t = 0; t < n_log; ++t) {
        const double v = l < s.load[t].size() && e < s.load[t][l].size() ? s.load[t][l][e] : 0.0;
        out += fmt::format("<rect x='{:.2f}' y='{:.2f}' width='{:.2f}' height='{:.2f}' fill='{}'/>\n", L + t * cell_w,
                           ly + e * cell_h, cell_w + 0.3, cell_h, heat_color(v));
      }
  }
  *height = 30 + n_layer * (n_exp * cell_h + 4) + 10;
  return out;
}

}  // namespace

std::string plot_metrics_svg(const std::vector<PlotRun>& runs) {
  if (runs.empty()) fail("plot", "no metrics files given");
  std::vector<Series> ss;
  for (const auto& r : runs) ss.push_back(read_series(r));
  const double w = 900, loss_h = 320;
  std::string body = loss_panel(runs, ss, 0, w, loss_h);
  double y = loss_h;
  for (size_t r = 0; r < runs.size(); ++r) {
    double h = 0;
    body += heatmap(runs[r], ss[r], y, w, &h);
    y += h;
  }
  return fmt::format(
      "<svg xmlns='http://www.w3.org/2000/svg' width='{}' height='{}' font-family='sans-serif'>\n"
      "<rect width='100%' height='100%' fill='white'/>\n{}</svg>\n",
      w, y, body);
}

}  // namespace moe::train
