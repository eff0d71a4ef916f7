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

// Rows of one width kept as f32 or as 16-bit floats (f16 / bf16): the K=V rows of DeepSeek-V4's cache.
class Dsv4Rows {
 public:
  Dsv4Rows() = default;
  Dsv4Rows(DType dtype, int64_t width) : dtype_(dtype), width_(width) {}
  DType dtype() const { return dtype_; }
  int64_t width() const { return width_; }
  int64_t rows() const { return rows_; }
  uint64_t bytes() const { return static_cast<uint64_t>(rows_ * width_) * dtype_size(dtype_); }
  void resize(int64_t rows);              // new rows are zero
  void set(int64_t i, const float* row);  // row i = row [width], rounded to dtype
  void push(const float* row);            // appends a row
  // Rows [i0, i0 + n) as f32: in place for f32, else widened into scratch (grown as needed).
  const float* f32_rows(int64_t i0, int64_t n, std::vector<float>& scratch) const;
  void widen_row(int64_t i, float* dst) const;               // dst [width] = row i
  void widen_rows(int64_t i0, int64_t n, float* dst) const;  // dst [n, width] = rows [i0, i0 + n)

 private:
  DType dtype_ = DType::kF32;
  int64_t width_ = 0, rows_ = 0;
  std::vector<float> f32_;
  std::vector<uint16_t> half_;
};

// One sequence's state between forwards: per layer the last sliding_window K=V rows, and per compressor the
// projected rows of its last two windows and the entries it has emitted. Prefill and decode both append to it.
// The K=V rows (window and entries) are kept in the cache's kv_type (f32, f16 or bf16); the compressors' pending
// windows in f32.
class Dsv4Cache {
 public:
  int64_t length() const { return length_; }
  DType kv_type() const { return kv_type_; }
  // Bytes of the K=V rows the sequence keeps, all layers: the window's min(length, sliding_window) rows and
  // every compressed entry (attention's and the indexer's), in kv_type. What the accounting calls the KV cache.
  uint64_t kv_bytes() const;
  // Bytes of the compressors' pending windows (projected rows and scores of the last two windows): fixed.
  uint64_t pending_bytes() const;

  // The state's parts (read by the model's attention).
  struct Compressor {
    int64_t ratio = 0, width = 0, cols = 0;  // cols = width x (2 when ratio is 4, else 1)
    std::vector<float> kv, score;            // [2 ratio, cols]: rows of position p at slot p % (2 ratio)
    Dsv4Rows entries;                        // [n, width], normalised and rotated
    int64_t n_entries() const { return entries.rows(); }
  };
  struct Layer {
    Dsv4Rows window;         // [sliding_window, head_dim]: the K=V row of position p at slot p % window
    Compressor attn, index;  // attn: ratio > 0; index: ratio 4 only
  };

 private:
  friend class DeepseekV4Model;
  std::vector<Layer> layers_;
  int64_t length_ = 0;
  DType kv_type_ = DType::kF32;
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
  // A cache for one sequence with its K=V rows in kv_type (kF32, kF16 or kBF16; else moe::Error).
  Dsv4Cache make_cache(DType kv_type = DType::kF32) const;

  // Runs n_tokens tokens after the cached ones, appends them to the cache, and writes logits [T, V] (every
  // position). The tap gets "embed" (kModelTensor) and every layer's "hidden", each [T, hc_mult x D]: the
  // streams of a token side by side. Throws moe::Error "[model] ..." for no tokens or an id outside the vocabulary.
  // stats (optional): every layer's routing (expert ids and weights [T, K]) and MoE telemetry.
  // last_only: logits [1, V] of the last position only (a prefill that only samples after it).
  void forward(const int32_t* ids, int64_t n_tokens, Dsv4Cache& cache, float* logits, const ForwardTap& tap = {},
               ForwardStats* stats = nullptr, bool last_only = false);

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
  void index_picks(const QueryInputs& in, int64_t T, std::vector<std::vector<int32_t>>& picks) const;
  void attend(const QueryInputs& in, int64_t t, int64_t h0, int64_t hn, const std::vector<int32_t>& picks,
              float* o) const;
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
