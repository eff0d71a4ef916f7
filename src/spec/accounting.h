// Accounting of an MoE model, always summed from the TensorRegistry (never a separate formula):
// total vs activated parameters in three conventions, a breakdown by role, and the cost of a
// workload (FLOPs, KV cache, weight bytes per format, decode floor, EP traffic). Each cost figure
// carries the formula it used, for `moe inspect --explain` and for analytic-vs-measured reports.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "spec/model_spec.h"
#include "spec/tensor_registry.h"

namespace moe {

struct RoleCount {
  Role role = Role::kAttention;
  int64_t n_tensors = 0;
  int64_t params = 0;     // stored in the main model (MTP excluded)
  int64_t activated = 0;  // touched by one token (routed: top-k of E per layer)
  int64_t bytes = 0;      // at the registry's dtypes
};

struct ParamCounts {
  int64_t total_params = 0;                // main model, MTP excluded, tied weights once
  int64_t total_params_with_mtp = 0;       // everything the checkpoint stores
  int64_t total_params_non_embedding = 0;  // embedding and head left out (Qwen cards)
  int64_t mtp_params = 0;
  // Per token, main model: always-on + shared + top-k routed ...
  int64_t activated_params = 0;                // ... with the input embedding and the head
  int64_t activated_params_no_embedding = 0;   // ... without the input embedding (gpt-oss, DeepSeek-V4 cards)
  int64_t activated_params_non_embedding = 0;  // ... without the embedding and the head (GLM cards)
  int64_t mtp_activated_params = 0;
  int64_t routed_params = 0, routed_activated = 0;  // routed experts: total vs per token
  int64_t embedding_params = 0, lm_head_params = 0;
  int64_t n_tensors = 0;
  int64_t checkpoint_elements = 0;        // every stored element incl. MTP, scales, tables (the Hub's "model size")
  int64_t bytes = 0, bytes_with_mtp = 0;  // at the registry's dtypes, scales and tables included
  int64_t quant_scale_bytes = 0, index_table_bytes = 0;
  double activated_fraction = 0;     // activated_params / total_params
  double sparsity_ratio = 0;         // total_params / activated_params
  std::vector<RoleCount> breakdown;  // main model, every role that has tensors
};

ParamCounts count_params(const ModelSpec& spec, const TensorRegistry& registry);

// True for tensors whose use is a matrix product (2-D+ weights, not embeddings, norms, biases,
// position tables): their per-token FLOPs are 2 x parameters.
bool is_matmul_weight(const TensorEntry& t);

struct Workload {
  int64_t context = 4096;        // L: tokens already in the KV cache for decode
  int64_t batch = 1;             // B: sequences decoded together
  int64_t prompt = 0;            // N: prefill length (0: same as context)
  int64_t ep_ranks = 1;          // R: expert-parallel ranks
  double kv_bytes_per_elem = 2;  // bf16 cache
};

// One computed figure with the formula that produced it (for --explain).
struct Figure {
  std::string key;  // JSON key, e.g. "decode_flops_per_token"
  double value = 0;
  std::string unit;     // "FLOP", "B", "experts"
  std::string formula;  // e.g. "2 x activated matmul params (12.6B) + attention 4 x H x Dh x min(L, W) ..."
};

struct KvCacheCost {
  double bytes_per_token = 0;   // per cached position, summed over the layers that keep it (no caps)
  double bytes_at_context = 0;  // one sequence at L, with sliding/chunk/compression caps
  double bytes_at_batch = 0;    // B sequences at L
  std::string layout;           // "GQA 8 kv heads x 128", "MLA latent 512 + rope 64", ...
};

struct WeightBytes {
  double checkpoint = 0;  // as the checkpoint stores it (registry dtypes, scales included), MTP excluded
  double bf16 = 0;        // every parameter at 2 bytes
  double fp8 = 0;         // matmul weights fp8 + f32 scale per 128x128 block, the rest bf16
  double int4 = 0;        // matmul weights 4-bit + e8m0 scale per 32 (MXFP4-like), the rest bf16
};

struct DecodeFloor {
  double expected_experts_per_layer = 0;  // E(1-(1-K/E)^B)
  double always_on_bytes = 0;             // non-routed weights (+ B embedding rows)
  double expert_bytes = 0;                // sum over MoE layers of distinct experts x expert bytes
  double kv_bytes = 0;                    // B x KV at L
  double bytes_per_step = 0;
  double bytes_per_token = 0;
};

struct EpTraffic {
  int64_t ranks = 1;
  double remote_copies_per_token_layer = 0;  // K x (R-1)/R expert copies leave the rank
  double remote_ranks_per_token_layer = 0;   // distinct remote ranks (one copy per rank, DeepEP style)
  // Weights each rank holds with contiguous placement (the first E mod R ranks own one expert more):
  // its routed experts over all MoE layers + everything else (replicated), at checkpoint dtypes.
  double weight_bytes_rank_max = 0, weight_bytes_rank_min = 0;
  double dispatch_bf16_bytes = 0;  // per token per MoE layer, per expert copy
  double dispatch_fp8_bytes = 0;
  double combine_bf16_bytes = 0;
  double dispatch_bf16_bytes_dedup = 0;   // per token per MoE layer, one copy per remote rank
  double per_token_all_layers_bytes = 0;  // dispatch bf16 + combine bf16, all MoE layers
  double per_step_bytes = 0;              // x batch
};

struct Cost {
  Workload workload;
  double decode_flops_per_token = 0;  // at context L
  double decode_matmul_flops = 0, decode_attention_flops = 0;
  double prefill_flops = 0;  // whole prompt of N tokens, logits at every position (as training computes them)
  double prefill_flops_per_token = 0;
  // 2 x the untied LM head's parameters (0 when tied to the embedding, which is not a matmul weight here): the
  // head's share of each position's matmul FLOPs, which an inference prefill computes only where it samples.
  double lm_head_flops_per_token = 0;
  KvCacheCost kv;
  WeightBytes weights;
  DecodeFloor floor;
  EpTraffic ep;
  std::vector<Figure> figures;  // every figure above with its formula
};

// Cost of a workload. The registry gives the checkpoint bytes; parameter-based figures use the
// counts summed from it. Throws a usage error for impossible workloads (ep ranks not dividing E ...).
Cost compute_cost(const ModelSpec& spec, const TensorRegistry& registry, const Workload& workload);

// Attention FLOPs of one query token at position L (it sees L keys incl. itself), all main layers.
// decode=true uses the cached form (MLA absorbed into the latent), false the prefill form.
double attention_flops_per_token(const ModelSpec& spec, int64_t context, bool decode);
// Sum over t = 1..n of attention_flops_per_token(spec, t, false): closed forms, constant time in n.
double prefill_attention_flops(const ModelSpec& spec, int64_t n);

// Distinct experts a step of `batch` tokens touches per MoE layer when each picks k of E uniformly:
// E (1 - (1 - k/E)^batch); 0 for a dense model or an empty batch. The decode floor uses it, and
// `moe serve` / `moe bench serve` report it next to the measured count.
double expected_distinct_experts(int64_t n_expert, int64_t k, double batch);

// Human-readable count: 46.70B, 1.026T, 512.0M.
std::string format_count(double n);
std::string format_bytes(double b);

}  // namespace moe
