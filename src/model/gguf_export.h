// `moe quantize`: a Hugging Face checkpoint (f32 / bf16 / FP8 block-scaled) written as a GGUF file that
// llama.cpp and moe load: the architecture's metadata (gguf_config.h read backwards), tensors under GGUF
// names (experts stacked into 3-D [E, rows, cols], Mixtral/Llama q/k rows permuted for llama.cpp's
// interleaved rotary pairs, gpt-oss's gate_up de-interleaved and transposed), each 2-D/3-D weight quantized
// to the mixture's type. One tensor in memory at a time; the file appears whole or not at all.
// Mixtures (docs/QUANTIZATION.md): Q8_0, Q4_0, Q6_K: every matrix of that type; Q4_K_M / Q5_K_M: Q4_K / Q5_K
// with Q6_K for attn_v and ffn_down in the "more bits" layers (the first and last eighth and every third in
// between), Q8_0 attn_k / attn_v and Q5_K attn_output for 8-expert models (Q4_K_M); MXFP4: routed experts in
// MXFP4, other matrices Q8_0; IQ4_XS: every matrix IQ4_XS. The output matrix (or a tied embedding) is Q6_K
// (Q8_0 for Q8_0 and MXFP4). Norms, biases, sinks and routers stay F32. Rows whose length a 256-block type
// does not divide fall back to Q5_0 (for Q4_K and IQ4_XS), Q5_1 (Q5_K) or Q8_0 (Q6_K).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "util/dtype.h"

namespace moe {

struct QuantizeOptions {
  std::string type = "Q8_0";  // Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K_M, Q5_K_M, Q6_K, IQ4_XS, MXFP4, BF16, F32
  std::function<void(uint64_t done, uint64_t total)> progress;  // bytes of the output written so far
};

struct QuantizeSummary {
  std::map<std::string, int64_t> tensors_by_type;  // "Q4_K" -> count
  std::map<std::string, int64_t> params_by_type;   // "Q4_K" -> parameters stored in it
  int64_t tensors = 0, params = 0;
  uint64_t file_bytes = 0;
  double bits_per_weight() const { return params > 0 ? 8.0 * double(file_bytes) / double(params) : 0.0; }
};

// The quantization types moe quantize accepts, space-separated.
const char* quantize_types();

// Writes out (a .gguf path) from the checkpoint folder in. Throws moe::Error naming the problem (unknown
// type, a family GGUF cannot hold, a bad tensor) before anything is written, or while writing (the
// temporary file is then removed).
QuantizeSummary quantize_to_gguf(const std::string& in, const std::string& out, const QuantizeOptions& options);

}  // namespace moe
