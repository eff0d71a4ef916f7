// Internal to model/: one decoder layer's weights and settings (decoder.cc loads them; the attention
// variants in decoder_*.cc read them).
#pragma once

#include <memory>
#include <vector>

#include "model/decoder.h"
#include "model/mla.h"
#include "model/moa.h"
#include "model/rope.h"

namespace moe {

struct Decoder::Layer {
  const float* in_norm = nullptr;
  const float* post_norm = nullptr;
  const float *in_norm_b = nullptr, *post_norm_b = nullptr;  // LayerNorm biases (PhiMoE)
  // GQA / MHA
  WeightView q, k, v, o;
  const float *q_bias = nullptr, *k_bias = nullptr, *v_bias = nullptr, *o_bias = nullptr;
  const float *q_norm = nullptr, *k_norm = nullptr, *sinks = nullptr;
  int64_t window = 0;
  int64_t chunk = 0;     // Llama 4 chunked attention
  bool use_rope = true;  // Llama 4 NoPE layers: false
  // MLA
  WeightView q_a, q_b, kv_a;
  const float *q_a_norm = nullptr, *kv_a_norm = nullptr;
  std::unique_ptr<MlaAttention> mla;
  RopeTable rope;
  RopeTable rope_long;  // LongRoPE: the table of sequences longer than original_max_position_embeddings
  float scale = 1.0f;
  std::unique_ptr<MoaAttention> moa;  // JetMoE: routed q / o projections (k and v: kv_proj's two halves)
  // MiniMax lightning attention: qkv_proj [3 H Dh, D] (per head q, k, v), output_gate [H Dh, D] in `gate_attn`,
  // out_proj in `o`, the RMSNorm over H Dh, each head's decay exp(-slope), and the residual factors.
  bool lightning = false;
  WeightView qkv, gate_attn;
  const float* attn_norm = nullptr;
  std::vector<float> decay;         // [H]
  float alpha = 1.0f, beta = 1.0f;  // MiniMax: h = alpha x norm(h) + beta x attention
  // FFN: dense SwiGLU (biases when mlp_bias) or MoE
  WeightView gate, up, down;
  const float *gate_b = nullptr, *up_b = nullptr, *down_b = nullptr;
  std::unique_ptr<MoeBlock> moe;
  const float* moe_bias = nullptr;                   // JetMoE: [D] added to the MoE block's output
  PackedExpertWeights routed_packed, shared_packed;  // own the panel-packed experts `moe` reads
};

}  // namespace moe
