// Element types of weights and activations, their names as safetensors spells them,
// and scalar conversions between f32 and the narrow float formats (bf16, f16, fp8).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace moe {

enum class DType : uint8_t {
  kF64,
  kF32,
  kF16,
  kBF16,
  kI64,
  kI32,
  kI16,
  kI8,
  kU64,
  kU32,
  kU16,
  kU8,
  kBool,
  kF8E4M3,
  kF8E5M2,
  kF8E8M0,
  // Block-quantized weight types (GGUF / ggml): a row of k elements is k / block_elems blocks of
  // block_bytes each. They have no per-element size: use dtype_row_bytes.
  kQ4_0,   // 32: f16 d, 16 bytes of nibbles; w = d * (q - 8)
  kQ4_1,   // 32: f16 d, f16 m, nibbles; w = d * q + m
  kQ5_0,   // 32: f16 d, 4 bytes of high bits, nibbles; w = d * (q - 16)
  kQ5_1,   // 32: f16 d, f16 m, high bits, nibbles; w = d * q + m
  kQ8_0,   // 32: f16 d, 32 int8; w = d * q
  kQ4_K,   // 256: f16 d, f16 dmin, 12 bytes of 6-bit scales/mins for 8 sub-blocks of 32, nibbles
  kQ5_K,   // 256: as Q4_K plus 32 bytes of high bits
  kQ6_K,   // 256: 128 bytes low nibbles, 64 bytes 2-bit highs, 16 int8 scales (sub-blocks of 16), f16 d
  kMXFP4,  // 32: E8M0 exponent, nibbles indexing the FP4 (E2M1) values
  // FP8 E4M3 codes in blocks of 128 with their f32 scale first (132 bytes): w = scale * fp8(q). Not a GGUF
  // type: block-scaled FP8 checkpoints (weight_scale_inv) are held so, each row carrying its blocks' scales.
  // Its kernels compute in f32 on the A given (kernels/fp8_matmul.h), not on 8-bit activations.
  kF8E4M3_B128,
  // 256: f16 d, u16 scales_h, u8 scales_l[4], u8 qs[128]; 8 sub-blocks of 32 with a 6-bit scale ls (low four
  // bits in scales_l, top two in scales_h): w = d * (ls - 32) * kIq4nlValues[nibble] (kernels/quant_blocks.h).
  // Last in the enum so the other types keep their values.
  kIQ4_XS,
};

// Name as written in a safetensors header ("F32", "BF16", "F8_E4M3", ...).
std::string_view dtype_name(DType t);
// Parses a safetensors dtype name (block-quantized types are not safetensors dtypes); nullopt when unknown.
std::optional<DType> dtype_from_name(std::string_view name);
// Bytes per element (not for block-quantized types: see dtype_row_bytes).
size_t dtype_size(DType t);
bool dtype_is_float(DType t);  // also true for block-quantized weight types (they encode floats)
// Block-quantized weight types: elements per block (1 for the others) and bytes per block.
bool dtype_is_block(DType t);
int64_t dtype_block_elems(DType t);
int64_t dtype_block_bytes(DType t);
// Bytes of n consecutive elements of a row (n a multiple of dtype_block_elems for block types).
int64_t dtype_row_bytes(DType t, int64_t n);
// Parses a dtype name as dtype_name writes it, block types included ("Q4_K"); nullopt when unknown.
std::optional<DType> dtype_from_any_name(std::string_view name);

// bf16 <-> f32. f32 -> bf16 rounds to nearest, ties to even; NaN stays NaN (quiet).
inline float bf16_to_f32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  const uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

// IEEE half <-> f32 (round to nearest even).
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// OCP FP8: E4M3 ("fn": no infinities, 0x7f/0xff NaN, max 448) and E5M2 (IEEE-like).
// f32 -> fp8 rounds to nearest even and saturates E4M3 to +-448.
float f8e4m3_to_f32(uint8_t v);
uint8_t f32_to_f8e4m3(float f);
float f8e5m2_to_f32(uint8_t v);
uint8_t f32_to_f8e5m2(float f);
// E8M0: a power-of-two scale 2^(v-127); 0xff is NaN.
float f8e8m0_to_f32(uint8_t v);

// Converts n elements of src (of type t) to f32. Integer types convert by value.
void convert_to_f32(DType t, const void* src, float* dst, size_t n);
// Converts n f32 values to dst of type t (float types only).
void convert_from_f32(DType t, const float* src, void* dst, size_t n);

}  // namespace moe
