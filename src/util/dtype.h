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
};

// Name as written in a safetensors header ("F32", "BF16", "F8_E4M3", ...).
std::string_view dtype_name(DType t);
// Parses a safetensors dtype name; nullopt when unknown.
std::optional<DType> dtype_from_name(std::string_view name);
// Bytes per element.
size_t dtype_size(DType t);
bool dtype_is_float(DType t);

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
