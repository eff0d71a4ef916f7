// `moe plot`'s SVG: well-formed XML, axis labels with units, round (1-2-5) tick values, a colour
// bar with its scale, dead experts (load exactly 0) hatched and in the legend only when present,
// titles that fit their panel, and the panel description behind `moe plot --json`.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <vector>

#include <nlohmann/json.hpp>

#include "train/plot.h"
#include "train/trainer.h"

namespace moe::train {
namespace {
namespace fs = std::filesystem;

// A small XML well-formedness check: every element closed in order, attributes quoted, one root.
bool well_formed(const std::string& xml, std::string* why) {
  std::vector<std::string> open;
  size_t i = 0, roots = 0;
  while ((i = xml.find('<', i)) != std::string::npos) {
    const size_t end = xml.find('>', i);
    if (end == std::string::npos) return *why = "unclosed tag at " + std::to_string(i), false;
    const std::string tag = xml.substr(i + 1, end - i - 1);
    i = end + 1;
    if (tag.empty()) return *why = "empty tag", false;
    if (tag[0] == '/') {
      if (open.empty() || open.back() != tag.substr(1)) return *why = "mismatched </" + tag.substr(1) + ">", false;
      open.pop_back();
      continue;
    }
    const std::string name = tag.substr(0, tag.find_first_of(" /"));
    if (!std::regex_search(tag, std::regex("^[A-Za-z][A-Za-z0-9]*(\\s+[A-Za-z][A-Za-z0-9:-]*='[^'<]*')*\\s*/?$")))
      return *why = "malformed tag <" + tag + ">", false;
    if (open.empty()) ++roots;
    if (tag.back() != '/') open.push_back(name);
  }
  if (!open.empty()) return *why = "unclosed <" + open.back() + ">", false;
  if (roots != 1) return *why = "expected one root element", false;
  return true;
}

// The text of every <text class='tick'> element.
std::vector<std::string> ticks(const std::string& svg) {
  std::vector<std::string> out;
  const std::regex re("<text class='tick'[^>]*>([^<]*)</text>");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), re); it != std::sregex_iterator(); ++it)
    out.push_back((*it)[1]);
  return out;
}

// m x 10^k with m in {1, 2, 5} (or 0).
bool round_step(double step) {
  const double mag = std::pow(10.0, std::floor(std::log10(step) + 1e-12));
  const double m = step / mag;
  return std::fabs(m - 1) < 1e-9 || std::fabs(m - 2) < 1e-9 || std::fabs(m - 5) < 1e-9;
}

std::string metrics_file(const std::string& name, const std::vector<std::vector<int64_t>>& routed_per_step) {
  const std::string path = fs::temp_directory_path().string() + "/moe_plot_test_" + name + ".jsonl";
  std::ofstream f(path);
  for (size_t s = 0; s < routed_per_step.size(); ++s) {
    const nlohmann::json layer = load_summary(routed_per_step[s], 0, 64);
    nlohmann::json line = {{"step", 10 * (s + 1)}, {"ce", 5.0 - 0.37 * s}, {"layers", {layer, layer}}};
    if (s % 2 == 1) line["val_loss"] = 5.1 - 0.33 * s;
    f << line.dump() << "\n";
  }
  return path;
}

TEST(NiceTicks, AreRoundStepsCoveringTheRange) {
  for (const auto& [lo, hi] : std::vector<std::pair<double, double>>{
           {0, 1}, {0, 137}, {2.31, 5.57}, {0.00123, 0.0051}, {0, 3}, {-4.2, 17}, {0, 200000}, {5, 5}}) {
    const std::vector<double> t = nice_ticks(lo, hi, 6);
    ASSERT_GE(t.size(), 2u) << lo << " " << hi;
    EXPECT_LE(t.front(), lo);
    EXPECT_GE(t.back(), std::max(hi, lo));
    EXPECT_LE(t.size(), 8u) << lo << " " << hi;
    const double step = t[1] - t[0];
    EXPECT_TRUE(round_step(step)) << step;
    for (double v : t) EXPECT_NEAR(v / step, std::round(v / step), 1e-6) << v;
  }
  EXPECT_EQ(nice_ticks(0, 137, 6), (std::vector<double>{0, 50, 100, 150}));
}

TEST(Plot, SvgIsWellFormedWithUnitsRoundTicksAndAColourBar) {
  const std::string path =
      metrics_file("plain", {{16, 16, 16, 16}, {20, 12, 16, 16}, {30, 2, 16, 16}, {22, 10, 16, 16}});
  const Plot p = plot_metrics({{"a run", path}});
  std::string why;
  EXPECT_TRUE(well_formed(p.svg, &why)) << why;
  for (const char* label : {"optimizer step", "cross-entropy (nats/token)", "load x E (1 = balanced)",
                            "expert (top to bottom)", "layer 1<", "a run (final"})
    EXPECT_NE(p.svg.find(label), std::string::npos) << label;
  EXPECT_NE(p.svg.find("url(#heat)"), std::string::npos) << "no colour bar";
  EXPECT_EQ(p.svg.find("dead (0)"), std::string::npos) << "a dead-expert legend without dead experts";
  EXPECT_EQ(p.svg.find("url(#dead)'/>"), std::string::npos);
  const std::vector<std::string> t = ticks(p.svg);
  ASSERT_GT(t.size(), 10u);
  for (const std::string& v : t) {
    const double x = std::stod(v);
    EXPECT_TRUE(x == 0 || std::fabs(x * 100 - std::round(x * 100)) < 1e-9) << "not a round tick: " << v;
  }
  for (const char* v : {">0<", ">10<", ">20<", ">40<", ">3.0+<", ">1.5<"})
    EXPECT_NE(p.svg.find(v), std::string::npos) << v;
  ASSERT_EQ(p.panels.size(), 2u);
  EXPECT_EQ(p.panels[1]["dead_cells"], 0);
  fs::remove(path);
}

TEST(Plot, DeadExpertsAreHatchedAndInTheLegend) {
  const std::string path = metrics_file("dead", {{32, 32, 0, 0}, {31, 32, 1, 0}});
  const Plot p = plot_metrics({{"collapsed", path}});
  std::string why;
  EXPECT_TRUE(well_formed(p.svg, &why)) << why;
  EXPECT_NE(p.svg.find("dead (0)"), std::string::npos);
  size_t hatched = 0;
  for (size_t i = 0; (i = p.svg.find("fill='url(#dead)'", i)) != std::string::npos; ++i) ++hatched;
  EXPECT_EQ(hatched, 2u * 3u + 1u) << "dead cells (2 layers x 3) plus the legend swatch";
  EXPECT_EQ(p.panels[1]["dead_cells"], 6);
  // The nearly dead expert (1 of 64 slots) is drawn from the colour map, not hatched.
  fs::remove(path);
}

TEST(Plot, LongTitlesAreCutToTheirPanel) {
  const std::string path = metrics_file("long", {{16, 16, 16, 16}});
  const std::string label(300, 'x');
  const Plot p = plot_metrics({{label, path}});
  EXPECT_EQ(p.svg.find(label), std::string::npos);
  const std::regex title("<text class='title'[^>]*>([^<]*)</text>");
  for (auto it = std::sregex_iterator(p.svg.begin(), p.svg.end(), title); it != std::sregex_iterator(); ++it)
    EXPECT_LE((*it)[1].str().size() * 0.6 * 14, 900.0) << (*it)[1];
  fs::remove(path);
}

}  // namespace
}  // namespace moe::train
