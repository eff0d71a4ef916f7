// ModelSpec -> MoeLayerConfig: the family's row of moe/family_routing.h plus the config's router fields.
#include "moe/layer_config.h"

#include "moe/family_routing.h"
#include "util/error.h"

namespace moe {

MoeLayerConfig moe_layer_config(const ModelSpec& spec) {
  if (spec.n_expert < 1) fail("moe_layer", "{}: not an MoE model (n_expert = 0)", spec.source);
  const FamilyRouting* row = find_family_routing(spec.family);
  if (!row || !row->routed)
    fail("moe_layer", "{}: model_type {} has no router row in moe/family_routing.h", spec.source, spec.model_type);
  MoeLayerConfig c;
  c.d_model = spec.d_model;
  RouterOptions& r = c.router;
  r.n_expert = static_cast<int>(spec.n_expert);
  r.top_k = static_cast<int>(spec.n_expert_used);
  r.scoring = spec.router.scoring;
  r.norm_topk_prob = spec.router.norm_topk_prob;
  r.routed_scaling_factor = static_cast<float>(spec.router.routed_scaling_factor);
  r.use_correction_bias = spec.router.has_score_bias;
  if (spec.router.topk_method != TopkMethod::kGreedy) {
    r.n_group = static_cast<int>(spec.router.n_group);
    r.topk_group = static_cast<int>(spec.router.topk_group);
    r.group_score = spec.router.topk_method == TopkMethod::kNoAuxTc ? GroupScore::kTop2Sum : GroupScore::kMax;
  }
  r.selection = row->selection;
  if (row->scale == ScaleRule::kUnlessNormalized && r.norm_topk_prob && r.top_k > 1) r.routed_scaling_factor = 1.0f;
  if (r.selection == Selection::kSparseMixer) r.sparsemixer_eps = static_cast<float>(spec.router.jitter_eps);
  c.weight_before_expert = row->weight_before_expert;
  switch (spec.activation) {
    case Activation::kSilu:
      c.activation.kind = GluKind::kSwiGLU;
      break;
    case Activation::kGelu:
      c.activation.kind = GluKind::kGeGLU;
      break;
    case Activation::kGeluTanh:
      c.activation.kind = GluKind::kGeGLUTanh;
      break;
    case Activation::kSwigluClamped:
      c.activation.kind = GluKind::kSwiGLU;
      break;
  }
  if (row->oai_swiglu) {
    c.activation.kind = GluKind::kSwiGLUOai;
    c.activation.alpha = spec.swiglu_alpha > 0 ? static_cast<float>(spec.swiglu_alpha) : 1.702f;
  }
  c.activation.limit = static_cast<float>(spec.swiglu_limit);
  return c;
}

}  // namespace moe
