// IQ4_XS's block codec (one super-block of 256 elements; layout in kernels/quant_blocks.h): the scalar
// decoder and ggml's reference quantizer without importance weights, for quant_blocks.cc's row functions.
#pragma once

#include <cstdint>

namespace moe {

// Sub-block ib's (0..7) 6-bit scale less 32, from the block's scales_h (u16 at byte 2) and scales_l (bytes 4-7).
int iq4_xs_scale(const uint8_t* block, int ib);
void dequantize_block_iq4_xs(const uint8_t* block, float* y);
void quantize_block_iq4_xs(const float* x, uint8_t* block);

}  // namespace moe
