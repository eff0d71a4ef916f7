// The family x router table (moe/family_routing.h) as data: every family the spec layer knows has
// exactly one row, and the router and activation moe_layer_config builds from real configs (the
// embedded catalog and the reference fixtures) match their family's row.
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "moe/family_routing.h"
#include "moe/layer_config.h"
#include "spec/catalog.h"
#include "spec/config_families.h"
#include "util/error.h"

namespace moe {
namespace {

TEST(FamilyRouting, EveryFamilyOfTheSpecLayerHasOneRow) {
  std::set<Family> rows;
  for (const FamilyRouting& r : kFamilyRouting) EXPECT_TRUE(rows.insert(r.family).second) << family_name(r.family);
  for (const auto& e : spec_detail::family_table()) {
    EXPECT_TRUE(rows.count(e.family)) << e.model_type << " has no row";
    EXPECT_EQ(find_family_routing(e.family)->family, e.family);
  }
  EXPECT_EQ(rows.size(), static_cast<size_t>(Family::kLlama4) + 1) << "one row per Family enumerator";
}

// The built config against the row: what the row fixes, exactly; what the config sets, as published.
void expect_matches_row(const ModelSpec& spec, const std::string& who) {
  SCOPED_TRACE(who);
  const FamilyRouting* row = find_family_routing(spec.family);
  ASSERT_NE(row, nullptr);
  if (!row->routed) {
    EXPECT_EQ(spec.n_expert, 0);
    EXPECT_THROW(moe_layer_config(spec), Error);
    return;
  }
  const MoeLayerConfig c = moe_layer_config(spec);
  const RouterOptions& r = c.router;
  EXPECT_EQ(r.selection, row->selection);
  EXPECT_EQ(c.weight_before_expert, row->weight_before_expert);
  EXPECT_EQ(c.activation.kind == GluKind::kSwiGLUOai, row->oai_swiglu);
  EXPECT_EQ(r.scoring, row->scoring);
  EXPECT_EQ(r.use_correction_bias, row->correction_bias);
  EXPECT_EQ(spec.router.has_router_bias, row->router_bias);
  if (r.n_group > 1) {
    EXPECT_NE(row->groups, GroupLimit::kNone);
    EXPECT_EQ(r.group_score, row->groups == GroupLimit::kTop2Sum ? GroupScore::kTop2Sum : GroupScore::kMax);
  }
  const float scale = static_cast<float>(spec.router.routed_scaling_factor);
  const bool scaled = row->scale == ScaleRule::kAlways || !r.norm_topk_prob || r.top_k == 1;
  EXPECT_EQ(r.routed_scaling_factor, scaled ? scale : 1.0f);
}

TEST(FamilyRouting, CatalogRoutersMatchTheirRows) {
  int n = 0;
  for (const CatalogEntry& e : catalog()) {
    expect_matches_row(parse_model_spec(e.config, e.file), e.name);
    ++n;
  }
  EXPECT_GE(n, 20);
}

TEST(FamilyRouting, FixtureRoutersMatchTheirRows) {
  std::string dir = MOE_TEST_DATA_DIR;
  dir.append("/reference/fixtures/models");
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string config = (e.path() / "config.json").string();
    expect_matches_row(parse_model_spec(nlohmann::json::parse(std::ifstream(config)), config),
                       e.path().filename().string());
    ++n;
  }
  EXPECT_GE(n, 21);
}

}  // namespace
}  // namespace moe
