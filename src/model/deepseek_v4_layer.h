// Internal to model/: one DeepSeek-V4 block's weights (deepseek_v4.cc loads them, deepseek_v4_attention.cc
// runs the attention) and the small row helpers both files use.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "model/deepseek_v4.h"
#include "moe/moe_layer.h"

namespace moe {

// A KV compressor: wkv / wgate [cols, D], ape [ratio, cols], norm [width]; cols = 2 width when ratio is 4.
struct Dsv4CompressorWeights {
  int64_t ratio = 0, width = 0, cols = 0;
  WeightView wkv, wgate;
  const float *ape = nullptr, *norm = nullptr;
};

struct DeepseekV4Model::Layer {
  int ratio = 0;
  bool hash = false;
  const float *attn_norm = nullptr, *ffn_norm = nullptr;
  Mixer hc_attn, hc_ffn;
  // attention
  const float *sink = nullptr, *q_norm = nullptr, *kv_norm = nullptr;
  WeightView wq_a, wq_b, wkv, wo_b;
  std::vector<WeightView> wo_a;  // [o_groups]: rows [g o_lora_rank, (g + 1) o_lora_rank) of wo_a
  Dsv4CompressorWeights comp, index_comp;
  WeightView index_wq_b, index_weights;
  std::vector<double> inv_freq;  // [qk_rope_head_dim / 2]
  // MoE
  WeightView gate;
  const float* gate_bias = nullptr;  // [E], non-hash layers
  std::vector<int32_t> tid2eid;      // [V, K], hash layers
  std::vector<WeightView> w1, w2, w3;
  WeightView s1, s2, s3;
  // The engine's MoE layer over these weights (routing, dispatch, expert kernels, combine), and the hash
  // layers' given expert ids of a call.
  std::unique_ptr<MoeLayer> block;
  std::vector<int32_t> ids;
};

namespace dsv4 {

// y [T, out] = x [T, in] . w^T on the thread pool.
void linear(const float* x, const WeightView& w, float* y, int64_t T, int64_t out, int64_t in);
// The rotary angles' frequencies of a layer: rope_theta for window-only layers, compress_rope_theta with
// YaRN interpolation (no magnitude factor) for compressed ones.
std::vector<double> rope_inv_freq(const ModelSpec& s, bool compressed);
// Rotates the pairs (2i, 2i+1) of the last 2 x inv_freq.size() floats of row [dim] by pos x inv_freq[i]
// (the conjugate rotation when inverse).
void rope_row(float* row, int64_t dim, const std::vector<double>& inv_freq, int64_t pos, bool inverse);
// rope_row on n rows [n, stride] of one position: the angles computed once.
void rope_rows(float* rows, int64_t n, int64_t stride, int64_t dim, const std::vector<double>& inv_freq, int64_t pos,
               bool inverse);

// out = the k highest of score [n] (1 <= k <= n), ascending, ties going to the lower entry: the indexer's top-k.
// values: scratch.
void top_entries(const float* score, int64_t n, int64_t k, std::vector<float>& values, std::vector<int32_t>& out);

}  // namespace dsv4
}  // namespace moe
