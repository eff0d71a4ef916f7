// The whole decoder of a Hugging Face checkpoint: embeddings, L blocks of (RMSNorm, attention
// (GQA/MHA with QK-norm, biases, sliding windows, sinks; or MLA), residual, RMSNorm, dense MLP
// or MoE layer, residual), final norm, LM head. Batched prefill and token-by-token decode share
// one forward over a KV cache. Family differences come from ModelSpec flags and families.h.
#pragma once

#include <deque>

#include "kernels/packed_weights.h"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "model/families.h"
#include "model/kv_cache.h"
#include "model/moe_block.h"
#include "model/offload.h"
#include "model/weights.h"
#include "moe/telemetry.h"
#include "spec/model_spec.h"

namespace moe {

class DeepseekV4Model;  // model/deepseek_v4.h

struct ForwardStats {
  std::vector<MoeTelemetry> moe_layers;            // [L]; empty telemetry for dense layers
  std::vector<std::vector<int32_t>> expert_ids;    // [L] -> [T * K] routed experts of this call
  std::vector<std::vector<float>> expert_weights;  // [L] -> [T * K] their combine weights
  // Wall time of the call's parts, summed over layers: attention (its norm, projections, cache and
  // residual), the FFN or MoE block (norm, router, experts, residual) and the LM head (final norm
  // included). Not split for DeepSeek-V4 (forward_v4): zero there.
  double attention_seconds = 0, ffn_seconds = 0, head_seconds = 0;
};

// One sequence's share of a batched forward: its new tokens, its own KV cache, and where its logits go.
struct SequenceChunk {
  const int32_t* ids = nullptr;
  int64_t n_tokens = 0;
  KvCache* cache = nullptr;  // distinct for every chunk of one call
  float* logits = nullptr;   // [n_tokens, V], or [1, V] (the last position) when last_only
  bool last_only = false;
};

class Decoder {
 public:
  // Reads config.json and the weights of a checkpoint folder, or a .gguf file. Throws moe::Error naming the problem.
  // options: how MoE layers run and which routed experts are loaded (default: all, MoeLayer).
  explicit Decoder(const std::string& path, DecoderOptions options = {});
  ~Decoder();
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  const ModelSpec& spec() const { return spec_; }
  // Where the weights' panels came from: mapped from the pack cache (hit) or packed at this load.
  const PackCache& pack_cache() const { return *pack_cache_; }
  // With DecoderOptions::offload.mem_budget: the routed experts' disk cache and what it did; else null.
  const ExpertOffload* offload() const { return offload_.get(); }
  ExpertOffload* offload() { return offload_.get(); }
  KvCache make_cache(int64_t max_tokens) const;
  // The KV caches' row type: DecoderOptions::kv_type, else f32 for a float32 checkpoint and f16 otherwise.
  // DeepSeek-V4 keeps its own f32 window and compressed rows whatever this says.
  DType kv_type() const;

  // Runs T tokens after the cached ones and appends them to the cache. logits: [T, V] for every
  // position. Errors (moe::Error "[model] ..."): no tokens, an id outside the vocabulary, or more
  // tokens than the cache holds.
  void forward(const int32_t* ids, int64_t n_tokens, KvCache& cache, float* logits, ForwardStats* stats = nullptr);
  // Several sequences in one pass (continuous batching): every per-token step (norms, projections,
  // MoE layers, LM head) runs once over the rows of all chunks, attention runs per sequence over its
  // own cache. Row i of chunk c gives the same logits as forward() of that sequence alone. stats
  // rows follow the chunks' order. Same errors as forward(), naming the chunk.
  void forward_batch(const SequenceChunk* chunks, int64_t n_chunks, ForwardStats* stats = nullptr);
  // Replaces DecoderOptions::tap: the callback every later forward passes its named intermediate
  // tensors to (model/forward_tap.h); an empty one turns the tap off.
  void set_tap(ForwardTap tap) { options_.tap = std::move(tap); }

 private:
  struct Layer;
  // Attention over the rows of all chunks (row offsets `rows`, [n_chunks + 1]); each chunk reads and
  // extends its own cache.
  void attention_gqa(Layer& layer, int64_t li, const float* x, const SequenceChunk* chunks, int64_t n_chunks,
                     const int64_t* rows, float* out);
  void attention_mla(Layer& layer, int64_t li, const float* x, const SequenceChunk* chunks, int64_t n_chunks,
                     const int64_t* rows, float* out);
  // MiniMax lightning attention (decoder_lightning.cc): each chunk extends its own recurrent state.
  void attention_lightning(Layer& layer, int64_t li, const float* x, const SequenceChunk* chunks, int64_t n_chunks,
                           const int64_t* rows, float* out);
  void load_lightning(Layer& layer, const std::string& attn_prefix, int64_t li);
  // DeepSeek-V4 (deepseek_v4_decoder.cc): each chunk through v4_ with the state its cache holds.
  void forward_v4(const SequenceChunk* chunks, int64_t n_chunks, ForwardStats* stats);
  void load_v4(const std::string& path);
  KvCache v4_cache(int64_t max_tokens) const;
  void ffn(Layer& layer, const float* x, int64_t T, float* out, MoeTelemetry* telemetry);
  // Passes [rows, D] at data to the tap under (layer, name), when there is a tap.
  void tap(int64_t layer, std::string_view name, const float* data, int64_t rows) const {
    if (options_.tap) options_.tap(layer, name, TapView{data, rows, spec_.d_model});
  }
  // The family's norm (RMSNorm, or LayerNorm with an optional bias) over T rows of d_model: a block's
  // (block_norm_eps when set), or the final one (norm_eps).
  void norm(const float* x, const float* weight, const float* bias, float* y, int64_t T, bool block = true) const;
  // One forward pass over the rows of a batch: chunk c owns rows [rows[c], rows[c + 1]) of the T rows;
  // h is the residual stream, x and y scratch, each [T, D].
  struct Pass {
    const SequenceChunk* chunks;
    int64_t n_chunks;
    const int64_t* rows;
    int64_t T;
    float *h, *x, *y;
    ForwardStats* stats;
  };
  // The chunks this pass runs together; a chunk whose LongRoPE factors switch at this pass is run over
  // its whole sequence alone instead (its cache reset and refilled, its logits written).
  std::vector<SequenceChunk> chunks_to_batch(const SequenceChunk* chunks, int64_t n_chunks, ForwardStats* stats);
  void embed(const Pass& pass);                                    // token rows into h, scaled, tapped
  void layer_forward(Layer& layer, int64_t li, const Pass& pass);  // attention and FFN with their residuals
  void lm_head(const Pass& pass);  // final norm and head over the rows asked for, into the chunks' logits
  void load_layer(int64_t li);
  void load_mla_attention(Layer& layer, const std::string& attn_prefix);
  void load_gqa_attention(Layer& layer, const std::string& attn_prefix, const LayerSpec& ls);
  void load_moe(Layer& layer, int64_t li, const std::string& layer_prefix);
  void load_gqa_projections(Layer& layer, const std::string& attn_prefix);
  void load_moa(Layer& layer, const std::string& attn_prefix);
  WeightView packed_matrix(const std::string& name);
  // rows [n, rows.ld] in the kernels' panels (pack_dense), from the pack cache when it holds `key`; else
  // packed, the file's pages of the rows released, and recorded for the cache.
  WeightView panels(const std::string& key, const WeightView& rows, int64_t n);
  PackedExpertWeights expert_panels(const std::string& key, const ExpertWeights& rows);
  // Where each routed expert's rows are in the model file (offload); throws when they are not file views.
  std::vector<ExpertSource> expert_sources(int64_t layer, const ExpertWeights& experts);

  ModelSpec spec_;
  DecoderNames names_;
  DecoderOptions options_;
  std::unique_ptr<WeightStore> store_;
  std::unique_ptr<PackCache> pack_cache_;
  std::unique_ptr<DeepseekV4Model> v4_;         // DeepSeek-V4: its own forward; the members below stay empty
  std::unique_ptr<ExpertOffload> offload_;      // --mem-budget: routed experts read from disk into slots
  std::vector<std::vector<char>> expert_keep_;  // [layer][expert]: options_.load_expert's answers
  std::vector<std::unique_ptr<Layer>> layers_;
  WeightView embed_, head_;
  std::deque<PackedWeights> packed_;  // panel copies of the dense matrices (see pack_dense in decoder.cc)
  const float* final_norm_ = nullptr;
  const float* final_norm_b_ = nullptr;  // LayerNorm bias (PhiMoE) or null
  const float* head_bias_ = nullptr;     // [V] or null
  std::vector<float> scratch_q_, scratch_k_, scratch_v_, scratch_o_, scratch_g_, scratch_u_;
};

}  // namespace moe
