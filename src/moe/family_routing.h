// The family x router table as data: how each model family of the spec layer routes its tokens and
// runs its experts. moe_layer_config (moe/layer_config.cc) builds every MoE layer's RouterOptions
// and activation from the row of the spec's family plus the config's fields; the columns marked
// "published" are what the family's released configs set (the spec parser reads the real value
// from config.json), kept here so a test can hold the built routers of real configs to their rows
// (tests/moe/family_routing_test.cc).
#pragma once

#include <cstddef>
#include <string_view>

#include "moe/router.h"
#include "spec/model_spec.h"

namespace moe {

// Where routed_scaling_factor applies.
enum class ScaleRule {
  kAlways,            // the final weights are multiplied by it
  kUnlessNormalized,  // DeepSeek-V2's code: only when norm_topk_prob is off (or K = 1)
};

// Group-limited routing of the published configs (the config's topk_method decides at run time).
enum class GroupLimit { kNone, kMax, kTop2Sum };

struct FamilyRouting {
  Family family;
  bool routed;  // false: a dense family (no router; moe_layer_config refuses it)
  // Fixed by the family's modeling code; moe_layer_config applies these.
  Selection selection;
  ScaleRule scale;
  bool weight_before_expert;  // Llama 4: the routing weight scales the expert's input
  bool oai_swiglu;            // gpt-oss: GluKind::kSwiGLUOai (alpha, clamp) instead of the config's act
  // Published: scoring_func, the group score of the group-limited configs, a selection-only correction
  // bias, a router logit bias.
  ScoringFunc scoring;
  GroupLimit groups;
  bool correction_bias;
  bool router_bias;
  std::string_view notes;
};

// One row per Family enumerator (the test checks it against the spec layer's family table).
inline constexpr FamilyRouting kFamilyRouting[] = {
    // clang-format off
    // family, routed, selection, scale, weight_before_expert, oai_swiglu, scoring, groups, correction_bias, router_bias, notes
    {Family::kLlama,      false, Selection::kTopK,            ScaleRule::kAlways, false, false, ScoringFunc::kSoftmax, GroupLimit::kNone, false, false, "dense"},
    {Family::kMistral,    false, Selection::kTopK,            ScaleRule::kAlways, false, false, ScoringFunc::kSoftmax, GroupLimit::kNone, false, false, "dense"},
    {Family::kQwen2,      false, Selection::kTopK,            ScaleRule::kAlways, false, false, ScoringFunc::kSoftmax, GroupLimit::kNone, false, false, "dense"},
    {Family::kQwen3,      false, Selection::kTopK,            ScaleRule::kAlways, false, false, ScoringFunc::kSoftmax, GroupLimit::kNone, false, false, "dense"},
    {Family::kMixtral,    true, Selection::kSoftmaxOverTopK, ScaleRule::kAlways, false, false, ScoringFunc::kSoftmax, GroupLimit::kNone, false, false, "softmax, top-k, renormalize: the softmax over the k logits"},
    {Family::kPhiMoe,     true, Selection::kSparseMixer,     ScaleRule::kAlways, false, false, ScoringFunc::kSoftmax, GroupLimit::kNone, false, false, "sparsemixer, top-2; router_jitter_noise is its eps"},
    {Family::kQwen2Moe,   true, Selection::kTopK,            ScaleRule::kAlways, false, false, ScoringFunc::kSoftmax, GroupLimit::kNone, false, false, "norm_topk_prob (57B: false); shared expert with a sigmoid gate [1, D]"},
    {Family::kQwen3Moe,   true, Selection::kTopK,            ScaleRule::kAlways, false, false, ScoringFunc::kSoftmax, GroupLimit::kNone, false, false, "norm_topk_prob (released: true); no shared expert"},
    {Family::kOlmoe,      true, Selection::kTopK,            ScaleRule::kAlways, false, false, ScoringFunc::kSoftmax, GroupLimit::kNone, false, false, "norm_topk_prob false"},
    {Family::kDeepseek,   true, Selection::kTopK,            ScaleRule::kAlways, false, false, ScoringFunc::kSoftmax, GroupLimit::kNone, false, false, "DeepSeekMoE 16B: shared experts, no gate"},
    {Family::kDeepseekV2, true, Selection::kTopK,            ScaleRule::kUnlessNormalized, false, false, ScoringFunc::kSoftmax, GroupLimit::kMax, false, false, "group_limited_greedy (V2-Lite: greedy)"},
    {Family::kDeepseekV3, true, Selection::kTopK,            ScaleRule::kAlways, false, false, ScoringFunc::kSigmoid, GroupLimit::kTop2Sum, true, false, "noaux_tc; Kimi-K2: n_group 1"},
    {Family::kDeepseekV4, true, Selection::kTopK,            ScaleRule::kAlways, false, false, ScoringFunc::kSqrtSoftplus, GroupLimit::kTop2Sum, true, false, "hash layers: RunOptions::expert_ids from tid2eid"},
    {Family::kGlm4Moe,    true, Selection::kTopK,            ScaleRule::kAlways, false, false, ScoringFunc::kSigmoid, GroupLimit::kTop2Sum, true, false, "noaux_tc, usually n_group 1"},
    {Family::kDots1,      true, Selection::kTopK,            ScaleRule::kAlways, false, false, ScoringFunc::kSigmoid, GroupLimit::kTop2Sum, true, false, "DeepSeek-V3's MoE block"},
    {Family::kErnie45Moe, true, Selection::kTopK,            ScaleRule::kAlways, false, false, ScoringFunc::kSoftmax, GroupLimit::kNone, true, false, "moe_statics: a selection-only bias"},
    {Family::kGraniteMoe, true, Selection::kSoftmaxOverTopK, ScaleRule::kAlways, false, false, ScoringFunc::kSoftmax, GroupLimit::kNone, false, false, "top-k of the logits, softmax over them"},
    {Family::kJetMoe,     true, Selection::kSoftmaxOverTopK, ScaleRule::kAlways, false, false, ScoringFunc::kSoftmax, GroupLimit::kNone, false, false, "the MoE MLP's router; attention has its own"},
    {Family::kMiniMax,    true, Selection::kSoftmaxOverTopK, ScaleRule::kAlways, false, false, ScoringFunc::kSoftmax, GroupLimit::kNone, false, false, "Mixtral's router"},
    {Family::kGrok1,      true, Selection::kTopK,            ScaleRule::kAlways, false, false, ScoringFunc::kSoftmax, GroupLimit::kNone, false, false, "counted, not run"},
    {Family::kMiniMaxM2,  true, Selection::kTopK,            ScaleRule::kAlways, false, false, ScoringFunc::kSigmoid, GroupLimit::kNone, true, false, "counted, not run"},
    {Family::kQwen3Next,  true, Selection::kTopK,            ScaleRule::kAlways, false, false, ScoringFunc::kSoftmax, GroupLimit::kNone, false, false, "counted, not run; gated shared expert"},
    {Family::kHunyuanMoe, true, Selection::kTopK,            ScaleRule::kAlways, false, false, ScoringFunc::kSoftmax, GroupLimit::kNone, false, false, "counted, not run"},
    {Family::kBailingMoe, true, Selection::kTopK,            ScaleRule::kAlways, false, false, ScoringFunc::kSoftmax, GroupLimit::kNone, false, false, "counted, not run"},
    {Family::kGptOss,     true, Selection::kSoftmaxOverTopK, ScaleRule::kAlways, false, true,  ScoringFunc::kSoftmax, GroupLimit::kNone, false, true,  "router logit bias [E]; experts with biases"},
    {Family::kDbrx,       true, Selection::kTopK,            ScaleRule::kAlways, false, false, ScoringFunc::kSoftmax, GroupLimit::kNone, false, false, "moe_normalize_expert_weights 1: L1 renormalize"},
    {Family::kLlama4,     true, Selection::kTopK,            ScaleRule::kAlways, true,  false, ScoringFunc::kSigmoid, GroupLimit::kNone, false, false, "top-1, sigmoid of the chosen logit scales the input"},
    // clang-format on
};

// The row of a family, or null when the table has none.
constexpr const FamilyRouting* find_family_routing(Family family) {
  for (const FamilyRouting& r : kFamilyRouting)
    if (r.family == family) return &r;
  return nullptr;
}

}  // namespace moe
