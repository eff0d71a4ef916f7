// DeepSeek-V4 (deepseek_v4, DeepseekV4ForCausalLM): hc_mult residual streams mixed by manifold-constrained
// hyper-connections, attention over one shared K=V head with a sliding window plus compressed KV entries
// (ratio 4: overlapping windows and a lightning indexer that picks index_topk entries per query; any other
// ratio: non-overlapping windows, all entries), grouped low-rank output, and a MoE block with sqrtsoftplus
// scores, hash routing (tid2eid) in the first num_hash_layers layers and a shared expert. f32 compute over
// f32 / bf16 weights, from the official checkpoint layout or the transformers one (docs/DEEPSEEK_V4.md).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/matmul.h"
#include "model/decoder.h"
#include "model/forward_tap.h"
#include "model/weights.h"
#include "moe/moe_layer.h"
#include "spec/deepseek_v4_names.h"
#include "spec/model_spec.h"

namespace moe {

// One sequence's state between forwards: per layer the last sliding_window K=V rows, and per compressor the
// projected rows of its last two windows and the entries it has emitted. Prefill and decode both append to it.
class Dsv4Cache {
 public:
  int64_t length() const { return length_; }
  // Bytes of the K=V rows the sequence keeps, all layers: the window's min(length, sliding_window) rows and
  // every compressed entry (attention's and the indexer's), f32. What the accounting calls the KV cache.
  uint64_t kv_bytes() const;
  // Bytes of the compressors' pending windows (projected rows and scores of the last two windows): fixed.
  uint64_t pending_bytes() const;

  // The state's parts (read by the model's attention).
  struct Compressor {
    int64_t ratio = 0, width = 0, cols = 0;  // cols = width x (2 when ratio is 4, else 1)
    std::vector<float> kv, score;            // [2 ratio, cols]: rows of position p at slot p % (2 ratio)
    std::vector<float> entries;              // [n, width], normalised and rotated
    int64_t n_entries() const { return width ? static_cast<int64_t>(entries.size()) / width : 0; }
  };
  struct Layer {
    int64_t head_dim = 0;
    std::vector<float> window;  // [sliding_window, head_dim]: the K=V row of position p at slot p % window
    Compressor attn, index;     // attn: ratio > 0; index: ratio 4 only
  };

 private:
  friend class DeepseekV4Model;
  std::vector<Layer> layers_;
  int64_t length_ = 0;
};

struct Dsv4Options {
  // FP4 experts dequantized to f32 rows at load (exact, 8x their bytes) instead of MXFP4 with 8-bit activations:
  // for checking the format's decoding against a reference.
  bool fp4_as_f32 = false;
};

class DeepseekV4Model {
 public:
  // Reads config.json and model.safetensors (or shards) of a checkpoint folder in either layout; every
  // tensor is checked against the registry. Throws moe::Error naming the file, tensor or field.
  explicit DeepseekV4Model(const std::string& path, Dsv4Options options = {});
  ~DeepseekV4Model();
  DeepseekV4Model(const DeepseekV4Model&) = delete;
  DeepseekV4Model& operator=(const DeepseekV4Model&) = delete;

  const ModelSpec& spec() const { return spec_; }
  bool hf_layout() const { return dsv4_hf_layout(spec_); }
  Dsv4Cache make_cache() const;

  // Runs n_tokens tokens after the cached ones, appends them to the cache, and writes logits [T, V] (every
  // position). The tap gets "embed" (kModelTensor) and every layer's "hidden", each [T, hc_mult x D]: the
  // streams of a token side by side. Throws moe::Error "[model] ..." for no tokens or an id outside the vocabulary.
  // stats (optional): every layer's routing (expert ids and weights [T, K]) and MoE telemetry.
  void forward(const int32_t* ids, int64_t n_tokens, Dsv4Cache& cache, float* logits, const ForwardTap& tap = {},
               ForwardStats* stats = nullptr);

 private:
  struct Layer;
  struct Mixer {
    WeightView fn;  // [m, n D] (m = (2 + n) n, or n for the head)
    const float *base = nullptr, *scale = nullptr;
  };
  void load_layer(int64_t li);
  void load_experts(Layer& layer, int64_t li);
  std::string name(const std::string& official) const;
  WeightView matrix(const std::string& official);
  const float* f32(const std::string& official);
  WeightView fp4_matrix(const std::string& base, int64_t rows, int64_t cols);
  // Block input of the mixer over the streams X [T, n D]: y [T, D], post [T, n], comb [T, n, n].
  void hc_pre(const Mixer& mix, const float* X, int64_t T, float* y, float* post, float* comb) const;
  struct QueryInputs;
  struct QueryScratch;
  void compressed_keys(const QueryInputs& in, int64_t t, QueryScratch& scratch) const;
  void attend_query(const QueryInputs& in, int64_t t, QueryScratch& scratch, float* o) const;
  void attention(Layer& layer, int64_t li, const float* x, int64_t T, Dsv4Cache::Layer& cache, int64_t p0, float* out);
  std::unique_ptr<MoeLayer> make_moe_block(const Layer& layer) const;
  void moe(Layer& layer, const float* x, const int32_t* ids, int64_t T, float* out, ForwardStats* stats, int64_t li);

  ModelSpec spec_;
  std::string path_;
  Dsv4Options options_;
  std::unique_ptr<WeightStore> store_;
  std::vector<std::unique_ptr<Layer>> layers_;
  const float* embed_ = nullptr;
  WeightView head_;
  const float* final_norm_ = nullptr;
  Mixer hc_head_;
};

}  // namespace moe
