// SVG plotting of training metrics (see plot.h), written directly (no plotting library).
#include "train/plot.h"

#include <algorithm>
#include <cmath>
#include <fstream>

#include <fmt/format.h>

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
    try {
      const nlohmann::json j = nlohmann::json::parse(line);
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

constexpr double kHeatMax = 3.0;  // load x E at the top of the colour scale (3x the balanced load)

// Sequential colour map: 0 black -> 1 (balanced) teal -> 3+ (hot) yellow. A dead expert (exactly
// 0) is not drawn with it but hatched (url(#dead)).
std::string heat_color(double v) {
  const double t = std::clamp(v / kHeatMax, 0.0, 1.0);
  const double stops[4][3] = {{0, 0, 0}, {40, 80, 160}, {30, 170, 140}, {250, 230, 40}};
  const double x = t * 3.0;
  const int i = std::min(2, static_cast<int>(x));
  const double f = x - i;
  auto ch = [&](int c) { return static_cast<int>(stops[i][c] + f * (stops[i + 1][c] - stops[i][c])); };
  return fmt::format("rgb({},{},{})", ch(0), ch(1), ch(2));
}

const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '&')
      out += "&amp;";
    else if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '\'')
      out += "&apos;";
    else if (c == '"')
      out += "&quot;";
    else
      out += c;
  }
  return out;
}

// Text cut (with "...") to fit `width` pixels at `font_size` (sans-serif: ~0.6 em per character).
std::string fit(const std::string& text, double width, double font_size) {
  const size_t max_chars = static_cast<size_t>(std::max(4.0, width / (0.6 * font_size)));
  if (text.size() <= max_chars) return xml_escape(text);
  return xml_escape(text.substr(0, max_chars - 3)) + "...";
}

std::string tick_label(double v, double step) {
  const int decimals = std::max(0, -static_cast<int>(std::floor(std::log10(step) + 1e-9)));
  return fmt::format("{:.{}f}", std::abs(v) < step * 1e-9 ? 0.0 : v, decimals);
}

// A plot area [L, R] x [T, B] in pixels over data [x0, x1] x [y0, y1].
struct Frame {
  double L, R, T, B, x0, x1, y0, y1;
  double px(double x) const { return L + (R - L) * (x - x0) / (x1 - x0); }
  double py(double y) const { return B - (B - T) * (y - y0) / (y1 - y0); }
};

// Grid, tick values and axis labels (with units) of a frame.
std::string axes(const Frame& f, const std::vector<double>& xt, const std::vector<double>& yt,
                 const std::string& xlabel, const std::string& ylabel) {
  std::string out;
  const double xs = xt.size() > 1 ? xt[1] - xt[0] : 1, ys = yt.size() > 1 ? yt[1] - yt[0] : 1;
  for (double x : xt) {
    out += fmt::format("<line x1='{0:.1f}' y1='{1}' x2='{0:.1f}' y2='{2}' stroke='#e4e4e4'/>\n", f.px(x), f.T, f.B);
    out += fmt::format("<text class='tick' x='{:.1f}' y='{}' font-size='10' text-anchor='middle'>{}</text>\n", f.px(x),
                       f.B + 13, tick_label(x, xs));
  }
  for (double y : yt) {
    out += fmt::format("<line x1='{0}' y1='{1:.1f}' x2='{2}' y2='{1:.1f}' stroke='#e4e4e4'/>\n", f.L, f.py(y), f.R);
    out += fmt::format("<text class='tick' x='{}' y='{:.1f}' font-size='10' text-anchor='end'>{}</text>\n", f.L - 4,
                       f.py(y) + 3, tick_label(y, ys));
  }
  out += fmt::format("<rect x='{}' y='{}' width='{}' height='{}' fill='none' stroke='#888'/>\n", f.L, f.T, f.R - f.L,
                     f.B - f.T);
  out += fmt::format("<text class='axis-label' x='{}' y='{}' font-size='11' text-anchor='middle'>{}</text>\n",
                     (f.L + f.R) / 2, f.B + 28, xml_escape(xlabel));
  const double cy = (f.T + f.B) / 2;
  out += fmt::format(
      "<text class='axis-label' x='{0}' y='{1}' font-size='11' text-anchor='middle' transform='rotate(-90 {0} {1})'>{2}"
      "</text>\n",
      f.L - 44, cy, xml_escape(ylabel));
  return out;
}

std::string loss_panel(const std::vector<PlotRun>& runs, const std::vector<Series>& ss, double y0, double w, double h,
                       nlohmann::ordered_json& panel) {
  double xmax = 1, lo = 1e30, hi = -1e30;
  for (const auto& s : ss) {
    xmax = std::max(xmax, s.step.back());
    for (double v : s.ce) lo = std::min(lo, v), hi = std::max(hi, v);
    for (double v : s.val) lo = std::min(lo, v), hi = std::max(hi, v);
  }
  if (hi <= lo) hi = lo + 1;
  const std::vector<double> xt = nice_ticks(0, xmax, 8), yt = nice_ticks(lo, hi, 6);
  const Frame f{70, w - 20, y0 + 34, y0 + h - 40, xt.front(), xt.back(), yt.front(), yt.back()};
  std::string out = fmt::format("<text class='title' x='{}' y='{}' font-size='14'>{}</text>\n", f.L, y0 + 20,
                                fit("Loss: train cross-entropy (solid), validation (dashed)", f.R - f.L, 14));
  out += axes(f, xt, yt, "optimizer step", "cross-entropy (nats/token)");
  nlohmann::ordered_json shown = nlohmann::ordered_json::array();
  for (size_t r = 0; r < ss.size(); ++r) {
    const char* col = kColors[r % 8];
    auto poly = [&](const std::vector<double>& xs, const std::vector<double>& ys, const char* dash) {
      std::string pts;
      for (size_t i = 0; i < xs.size(); ++i) pts += fmt::format("{:.1f},{:.1f} ", f.px(xs[i]), f.py(ys[i]));
      return fmt::format("<polyline fill='none' stroke='{}' stroke-width='1.5' {} points='{}'/>\n", col, dash, pts);
    };
    out += poly(ss[r].step, ss[r].ce, "");
    if (!ss[r].val.empty()) out += poly(ss[r].val_step, ss[r].val, "stroke-dasharray='5,3'");
    for (size_t i = 0; i < ss[r].val.size(); ++i)  // a marker per validation point (a single one shows too)
      out += fmt::format("<circle cx='{:.1f}' cy='{:.1f}' r='2.5' fill='{}'/>\n", f.px(ss[r].val_step[i]),
                         f.py(ss[r].val[i]), col);
    const std::string entry = fmt::format("{} (final {:.4f}{})", runs[r].label, ss[r].ce.back(),
                                          ss[r].val.empty() ? "" : fmt::format(", val {:.4f}", ss[r].val.back()));
    const double ly = f.T + 16 + 14 * static_cast<double>(r);
    out += fmt::format("<line x1='{}' y1='{}' x2='{}' y2='{}' stroke='{}' stroke-width='2'/>\n", f.R - 370, ly - 4,
                       f.R - 352, ly - 4, col);
    out += fmt::format("<text class='legend' x='{}' y='{}' font-size='11' fill='{}'>{}</text>\n", f.R - 348, ly, col,
                       fit(entry, 344, 11));
    shown.push_back({{"run", runs[r].label},
                     {"final_train_ce", ss[r].ce.back()},
                     {"final_val_loss", ss[r].val.empty() ? nlohmann::json() : nlohmann::json(ss[r].val.back())}});
  }
  panel = {{"panel", "loss"},
           {"shows", "train cross-entropy (solid) and validation loss (dashed) per run"},
           {"x", "optimizer step"},
           {"y", "cross-entropy (nats/token)"},
           {"runs", shown}};
  return out;
}

// The colour bar of the load heatmap (load x E from 0 to kHeatMax) and, when any expert was
// dead in a window, the hatched legend entry for it.
std::string color_bar(double x, double y, double h, bool any_dead) {
  std::string out = "<defs><linearGradient id='heat' x1='0' y1='1' x2='0' y2='0'>";
  for (int i = 0; i <= 12; ++i) {
    out += fmt::format("<stop offset='{:.3f}' stop-color='{}'/>", i / 12.0, heat_color(kHeatMax * i / 12.0));
  }
  out += "</linearGradient></defs>\n";
  out += fmt::format("<rect x='{}' y='{}' width='12' height='{}' fill='url(#heat)' stroke='#888'/>\n", x, y, h);
  const std::vector<double> ticks = nice_ticks(0, kHeatMax, 7);
  for (double v : ticks) {
    const double vy = y + h - h * v / kHeatMax;
    out += fmt::format("<line x1='{}' y1='{:.1f}' x2='{}' y2='{:.1f}' stroke='#444'/>\n", x + 12, vy, x + 15, vy);
    out += fmt::format("<text class='tick' x='{}' y='{:.1f}' font-size='10'>{}{}</text>\n", x + 17, vy + 3,
                       tick_label(v, ticks[1] - ticks[0]), v >= kHeatMax ? "+" : "");
  }
  out += fmt::format(
      "<text class='axis-label' x='{0}' y='{1}' font-size='11' text-anchor='middle' transform='rotate(-90 {0} {1})'>"
      "load x E (1 = balanced)</text>\n",
      x + 52, y + h / 2);
  if (any_dead) {
    out += fmt::format("<rect x='{}' y='{}' width='12' height='12' fill='url(#dead)' stroke='#888'/>\n", x, y + h + 8);
    out += fmt::format("<text class='legend' x='{}' y='{}' font-size='10'>dead (0)</text>\n", x + 16, y + h + 18);
  }
  return out;
}

struct HeatShape {
  size_t n_log = 0, n_layer = 0, n_exp = 0;
};

HeatShape heat_shape(const Series& s) {
  HeatShape h{s.load.size(), s.load[0].size(), 0};
  for (const auto& layer : s.load[0]) h.n_exp = std::max(h.n_exp, layer.size());  // dense layers: no load row
  return h;
}

// The cells of one MoE layer: expert e of metrics line t at row e, between the steps of lines
// t - 1 and t. Counts the dead cells (load exactly 0, hatched) and all cells.
std::string layer_cells(const Series& s, size_t l, size_t n_exp, const Frame& f, double top, double cell_h,
                        int64_t& dead, int64_t& cells) {
  std::string out;
  for (size_t e = 0; e < n_exp; ++e) {
    for (size_t t = 0; t < s.load.size(); ++t) {
      const double v = l < s.load[t].size() && e < s.load[t][l].size() ? s.load[t][l][e] : 0.0;
      const double x0 = f.px(t == 0 ? 0.0 : s.step[t - 1]), x1 = f.px(s.step[t]);
      dead += v == 0.0;
      ++cells;
      out += fmt::format("<rect x='{:.2f}' y='{:.2f}' width='{:.2f}' height='{:.2f}' fill='{}'/>\n", x0,
                         top + static_cast<double>(e) * cell_h, x1 - x0 + 0.3, cell_h,
                         v == 0.0 ? "url(#dead)" : heat_color(v));
    }
  }
  return out;
}

std::string heatmap(const PlotRun& run, const Series& s, double y0, double w, double* height,
                    nlohmann::ordered_json& panel) {
  const HeatShape hs = heat_shape(s);
  const double cell_h =
      std::max(3.0, std::min(12.0, 240.0 / static_cast<double>(std::max<size_t>(1, hs.n_layer * hs.n_exp))));
  std::vector<double> top{y0 + 30};  // [L + 1]: each layer's first row; a dense layer is one short row
  for (size_t l = 0; l < hs.n_layer; ++l)
    top.push_back(top.back() + (s.load[0][l].empty() ? 14.0 : static_cast<double>(hs.n_exp) * cell_h) + 4);
  const std::vector<double> xt = nice_ticks(0, s.step.back(), 8);
  const Frame f{110, w - 110, top.front(), top.back() - 4, xt.front(), xt.back(), 0, 1};
  std::string out = fmt::format("<text class='title' x='{}' y='{}' font-size='13'>{}</text>\n", f.L, y0 + 18,
                                fit(run.label + ": expert load per layer over training", w - 90, 13));
  int64_t dead = 0, cells = 0;
  for (size_t l = 0; l < hs.n_layer; ++l) {
    const bool dense = s.load[0][l].empty();
    out += fmt::format("<text class='row-label' x='{}' y='{:.1f}' font-size='10' text-anchor='end'>layer {}{}</text>\n",
                       f.L - 4, (top[l] + top[l + 1] - 4) / 2 + 3, l, dense ? " (dense)" : "");
    if (dense) {
      out += fmt::format("<text class='note' x='{}' y='{:.1f}' font-size='10' fill='#666'>dense: no routing</text>\n",
                         f.L + 4, top[l] + 10);
      continue;
    }
    out += layer_cells(s, l, hs.n_exp, f, top[l], cell_h, dead, cells);
  }
  for (double x : xt) {
    out += fmt::format("<text class='tick' x='{:.1f}' y='{}' font-size='10' text-anchor='middle'>{}</text>\n", f.px(x),
                       f.B + 13, tick_label(x, xt.size() > 1 ? xt[1] - xt[0] : 1));
  }
  out += fmt::format(
      "<text class='axis-label' x='{}' y='{}' font-size='11' text-anchor='middle'>optimizer step"
      " (each column: the steps since the previous metrics line)</text>\n",
      (f.L + f.R) / 2, f.B + 28);
  out += fmt::format(
      "<text class='axis-label' x='{0}' y='{1}' font-size='11' text-anchor='middle' transform='rotate(-90 {0} {1})'>"
      "expert (top to bottom)</text>\n",
      14, (f.T + f.B) / 2);
  out += color_bar(f.R + 14, f.T, std::max(60.0, std::min(160.0, f.B - f.T)), dead > 0);
  *height = std::max(f.B - y0 + 44, 30 + 160 + 40.0);
  panel = {{"panel", "expert_load"},
           {"run", run.label},
           {"shows", "load x E per layer and expert (rows) per metrics window (columns); 1 = balanced, 0 = dead"},
           {"layers", hs.n_layer},
           {"experts", hs.n_exp},
           {"windows", hs.n_log},
           {"dead_cells", dead},
           {"cells", cells}};
  return out;
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int max_ticks) {
  if (!(hi > lo)) hi = lo + 1;
  const double raw = (hi - lo) / std::max(1, max_ticks - 1);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = 10 * mag;
  for (double m : {1.0, 2.0, 5.0}) {
    if (m * mag >= raw * (1 - 1e-9)) {
      step = m * mag;
      break;
    }
  }
  std::vector<double> out;
  const double first = std::floor(lo / step + 1e-9), last = std::ceil(hi / step - 1e-9);
  for (double k = first; k <= last + 0.5; ++k) out.push_back(k * step);
  return out;
}

Plot plot_metrics(const std::vector<PlotRun>& runs) {
  if (runs.empty()) fail("plot", "no metrics files given");
  std::vector<Series> ss;
  for (const auto& r : runs) ss.push_back(read_series(r));
  const double w = 900, loss_h = 340;
  Plot p;
  p.panels = nlohmann::ordered_json::array();
  nlohmann::ordered_json panel;
  std::string body = loss_panel(runs, ss, 0, w, loss_h, panel);
  p.panels.push_back(panel);
  double y = loss_h;
  for (size_t r = 0; r < runs.size(); ++r) {
    double h = 0;
    body += heatmap(runs[r], ss[r], y, w, &h, panel);
    p.panels.push_back(panel);
    y += h;
  }
  p.svg = fmt::format(
      "<svg xmlns='http://www.w3.org/2000/svg' width='{}' height='{}' font-family='sans-serif'>\n"
      "<defs><pattern id='dead' width='6' height='6' patternUnits='userSpaceOnUse' patternTransform='rotate(45)'>"
      "<rect width='6' height='6' fill='#ffffff'/><line x1='0' y1='0' x2='0' y2='6' stroke='#d62728' "
      "stroke-width='3'/></pattern></defs>\n"
      "<rect width='100%' height='100%' fill='white'/>\n{}</svg>\n",
      w, y, body);
  return p;
}

}  // namespace moe::train
