// Named intermediate tensors of a Decoder forward: every tensor between the embedding and the LM
// head has a name, so any of them can be dumped (`moe eval --dump-hidden`) or compared with a
// reference's, and the first layer and tensor that diverge can be named. DecoderOptions::tap (or
// Decoder::set_tap) receives them; unset, the forward does nothing more than test one pointer.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

namespace moe {

// The layer index of the tensors outside the blocks ("embed", "final_norm").
inline constexpr int64_t kModelTensor = -1;

// One tapped tensor: [rows, cols] f32, row-major, valid only during the callback.
struct TapView {
  const float* data = nullptr;
  int64_t rows = 0;  // T: the forward's tokens, every sequence's in chunk order (final_norm: see below)
  int64_t cols = 0;  // D
};

// The tensors, in the order one forward passes them to the tap (each [T, D] unless noted):
namespace tap {
inline constexpr std::string_view kEmbed = "embed";           // kModelTensor: embeddings (x Granite's multiplier)
inline constexpr std::string_view kAttnNorm = "attn_norm";    // the block's input norm: attention's input
inline constexpr std::string_view kAttnOut = "attn_out";      // attention's output, before the residual add
inline constexpr std::string_view kFfnNorm = "ffn_norm";      // the post-attention norm: the FFN's input
inline constexpr std::string_view kMoeOut = "moe_out";        // a MoE layer's output (JetMoE: + its bias)
inline constexpr std::string_view kFfnOut = "ffn_out";        // a dense layer's MLP output
inline constexpr std::string_view kHidden = "hidden";         // the residual stream after the layer
inline constexpr std::string_view kFinalNorm = "final_norm";  // kModelTensor: [n_out, D], the rows whose
                                                              // logits are computed (one per sequence
                                                              // with last_only), the LM head's input
}  // namespace tap

// layer: 0..L-1, or kModelTensor. Called on the thread that runs the forward, never concurrently.
using ForwardTap = std::function<void(int64_t layer, std::string_view name, const TapView& view)>;

}  // namespace moe
