// dtype names, sizes and scalar narrow-float conversions.
#include "util/dtype.h"

#include <cmath>
#include <limits>

#include "util/check.h"

namespace moe {
namespace {

struct DTypeInfo {
  DType type;
  std::string_view name;
  size_t size;  // bytes per element; 0 for block types
  bool is_float;
  int64_t block_elems = 1, block_bytes = 0;  // block types only
};

constexpr DTypeInfo kDTypes[] = {
    {DType::kF64, "F64", 8, true},
    {DType::kF32, "F32", 4, true},
    {DType::kF16, "F16", 2, true},
    {DType::kBF16, "BF16", 2, true},
    {DType::kI64, "I64", 8, false},
    {DType::kI32, "I32", 4, false},
    {DType::kI16, "I16", 2, false},
    {DType::kI8, "I8", 1, false},
    {DType::kU64, "U64", 8, false},
    {DType::kU32, "U32", 4, false},
    {DType::kU16, "U16", 2, false},
    {DType::kU8, "U8", 1, false},
    {DType::kBool, "BOOL", 1, false},
    {DType::kF8E4M3, "F8_E4M3", 1, true},
    {DType::kF8E5M2, "F8_E5M2", 1, true},
    {DType::kF8E8M0, "F8_E8M0", 1, true},
    {DType::kQ4_0, "Q4_0", 0, true, 32, 18},
    {DType::kQ4_1, "Q4_1", 0, true, 32, 20},
    {DType::kQ5_0, "Q5_0", 0, true, 32, 22},
    {DType::kQ5_1, "Q5_1", 0, true, 32, 24},
    {DType::kQ8_0, "Q8_0", 0, true, 32, 34},
    {DType::kQ4_K, "Q4_K", 0, true, 256, 144},
    {DType::kQ5_K, "Q5_K", 0, true, 256, 176},
    {DType::kQ6_K, "Q6_K", 0, true, 256, 210},
    {DType::kMXFP4, "MXFP4", 0, true, 32, 17},
    {DType::kF8E4M3_B128, "F8_E4M3_B128", 0, true, 128, 132},
    {DType::kIQ4_XS, "IQ4_XS", 0, true, 256, 136},
};

const DTypeInfo& info(DType t) {
  for (const auto& d : kDTypes)
    if (d.type == t) return d;
  MOE_CHECK_MSG(false, "unknown DType");
  return kDTypes[0];
}

float bits_to_f32(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
uint32_t f32_to_bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

// Decodes a small float with e exponent bits, m mantissa bits and the given bias.
float decode_minifloat(uint32_t sign, uint32_t exp, uint32_t mant, int mant_bits, int bias) {
  float v;
  if (exp == 0) {
    v = std::ldexp(static_cast<float>(mant), 1 - bias - mant_bits);
  } else {
    v = std::ldexp(static_cast<float>(mant | (1u << mant_bits)), static_cast<int>(exp) - bias - mant_bits);
  }
  return sign ? -v : v;
}

// Encodes |f| (finite) as a small float, round to nearest even, no infinities:
// values beyond the largest finite code saturate to max_code.
uint32_t encode_minifloat_magnitude(float a, int mant_bits, int bias, uint32_t max_code) {
  if (a == 0.0f) return 0;
  int e;
  std::frexp(a, &e);  // a = f * 2^e, f in [0.5, 1)
  int exp_field = e - 1 + bias;
  int shift;  // value of one unit of the mantissa LSB is 2^shift
  if (exp_field <= 0) {
    shift = 1 - bias - mant_bits;  // subnormal
  } else {
    shift = e - 1 - mant_bits;
  }
  const double scaled = std::ldexp(static_cast<double>(a), -shift);
  double rounded = std::nearbyint(scaled);  // default rounding mode: nearest even
  uint64_t q = static_cast<uint64_t>(rounded);
  uint32_t code;
  if (exp_field <= 0) {
    code = static_cast<uint32_t>(q);  // may round up into the first normal: the encoding is continuous
  } else {
    // q in [2^m, 2^(m+1)]; rounding up to 2^(m+1) bumps the exponent, also continuous.
    code = static_cast<uint32_t>((static_cast<uint64_t>(exp_field) << mant_bits) + (q - (1ull << mant_bits)));
  }
  return code > max_code ? max_code : code;
}

}  // namespace

std::string_view dtype_name(DType t) { return info(t).name; }
size_t dtype_size(DType t) {
  MOE_CHECK_MSG(info(t).size > 0, "dtype_size of a block-quantized type: use dtype_row_bytes");
  return info(t).size;
}
bool dtype_is_float(DType t) { return info(t).is_float; }
bool dtype_is_block(DType t) { return info(t).size == 0; }
int64_t dtype_block_elems(DType t) { return info(t).block_elems; }
int64_t dtype_block_bytes(DType t) {
  const DTypeInfo& d = info(t);
  return d.size == 0 ? d.block_bytes : static_cast<int64_t>(d.size);
}
int64_t dtype_row_bytes(DType t, int64_t n) {
  const DTypeInfo& d = info(t);
  if (d.size > 0) return n * static_cast<int64_t>(d.size);
  MOE_CHECK_MSG(n % d.block_elems == 0, "row length is not a multiple of the block size");
  return n / d.block_elems * d.block_bytes;
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& d : kDTypes)
    if (d.name == name && d.size > 0) return d.type;
  return std::nullopt;
}

std::optional<DType> dtype_from_any_name(std::string_view name) {
  for (const auto& d : kDTypes)
    if (d.name == name) return d.type;
  return std::nullopt;
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = h >> 15, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  if (exp == 0x1f) {
    const uint32_t bits = (sign << 31) | 0x7f800000u | (mant << 13);
    return bits_to_f32(bits);
  }
  return decode_minifloat(sign, exp, mant, 10, 15);
}

uint16_t f32_to_f16(float f) {
  const uint32_t bits = f32_to_bits(f);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const float a = std::fabs(f);
  if (std::isnan(f)) return static_cast<uint16_t>(sign | 0x7e00u);
  if (std::isinf(f) || a >= 65520.0f) return static_cast<uint16_t>(sign | 0x7c00u);
  return static_cast<uint16_t>(sign | encode_minifloat_magnitude(a, 10, 15, 0x7bffu));
}

float f8e4m3_to_f32(uint8_t v) {
  const uint32_t sign = v >> 7, exp = (v >> 3) & 0xf, mant = v & 0x7;
  if (exp == 0xf && mant == 0x7) return std::numeric_limits<float>::quiet_NaN();
  return decode_minifloat(sign, exp, mant, 3, 7);
}

uint8_t f32_to_f8e4m3(float f) {
  if (std::isnan(f)) return 0x7f;
  const uint8_t sign = std::signbit(f) ? 0x80 : 0;
  const float a = std::fabs(f);
  if (std::isinf(f)) return static_cast<uint8_t>(sign | 0x7e);  // saturate to 448
  return static_cast<uint8_t>(sign | encode_minifloat_magnitude(a, 3, 7, 0x7e));
}

float f8e5m2_to_f32(uint8_t v) {
  const uint32_t sign = v >> 7, exp = (v >> 2) & 0x1f, mant = v & 0x3;
  if (exp == 0x1f) {
    if (mant != 0) return std::numeric_limits<float>::quiet_NaN();
    return sign ? -std::numeric_limits<float>::infinity() : std::numeric_limits<float>::infinity();
  }
  return decode_minifloat(sign, exp, mant, 2, 15);
}

uint8_t f32_to_f8e5m2(float f) {
  if (std::isnan(f)) return 0x7f;
  const uint8_t sign = std::signbit(f) ? 0x80 : 0;
  const float a = std::fabs(f);
  if (std::isinf(f) || a >= 61440.0f) return static_cast<uint8_t>(sign | 0x7c);
  return static_cast<uint8_t>(sign | encode_minifloat_magnitude(a, 2, 15, 0x7b));
}

float f8e8m0_to_f32(uint8_t v) {
  if (v == 0xff) return std::numeric_limits<float>::quiet_NaN();
  return std::ldexp(1.0f, static_cast<int>(v) - 127);
}

void convert_to_f32(DType t, const void* src, float* dst, size_t n) {
  const auto* b = static_cast<const uint8_t*>(src);
  auto load = [&](auto tag, size_t i) {
    decltype(tag) v;
    std::memcpy(&v, b + i * sizeof(v), sizeof(v));
    return v;
  };
  for (size_t i = 0; i < n; ++i) {
    switch (t) {
      case DType::kF64:
        dst[i] = static_cast<float>(load(double{}, i));
        break;
      case DType::kF32:
        dst[i] = load(float{}, i);
        break;
      case DType::kF16:
        dst[i] = f16_to_f32(load(uint16_t{}, i));
        break;
      case DType::kBF16:
        dst[i] = bf16_to_f32(load(uint16_t{}, i));
        break;
      case DType::kI64:
        dst[i] = static_cast<float>(load(int64_t{}, i));
        break;
      case DType::kI32:
        dst[i] = static_cast<float>(load(int32_t{}, i));
        break;
      case DType::kI16:
        dst[i] = static_cast<float>(load(int16_t{}, i));
        break;
      case DType::kI8:
        dst[i] = static_cast<float>(static_cast<int8_t>(b[i]));
        break;
      case DType::kU64:
        dst[i] = static_cast<float>(load(uint64_t{}, i));
        break;
      case DType::kU32:
        dst[i] = static_cast<float>(load(uint32_t{}, i));
        break;
      case DType::kU16:
        dst[i] = static_cast<float>(load(uint16_t{}, i));
        break;
      case DType::kU8:
      case DType::kBool:
        dst[i] = static_cast<float>(b[i]);
        break;
      case DType::kF8E4M3:
        dst[i] = f8e4m3_to_f32(b[i]);
        break;
      case DType::kF8E5M2:
        dst[i] = f8e5m2_to_f32(b[i]);
        break;
      case DType::kF8E8M0:
        dst[i] = f8e8m0_to_f32(b[i]);
        break;
      default:
        MOE_CHECK_MSG(false, "convert_to_f32: block-quantized types are dequantized by kernels/quant_blocks.h");
    }
  }
}

void convert_from_f32(DType t, const float* src, void* dst, size_t n) {
  auto* b = static_cast<uint8_t*>(dst);
  for (size_t i = 0; i < n; ++i) {
    switch (t) {
      case DType::kF64: {
        const double v = src[i];
        std::memcpy(b + 8 * i, &v, 8);
        break;
      }
      case DType::kF32:
        std::memcpy(b + 4 * i, &src[i], 4);
        break;
      case DType::kF16: {
        const uint16_t v = f32_to_f16(src[i]);
        std::memcpy(b + 2 * i, &v, 2);
        break;
      }
      case DType::kBF16: {
        const uint16_t v = f32_to_bf16(src[i]);
        std::memcpy(b + 2 * i, &v, 2);
        break;
      }
      case DType::kF8E4M3:
        b[i] = f32_to_f8e4m3(src[i]);
        break;
      case DType::kF8E5M2:
        b[i] = f32_to_f8e5m2(src[i]);
        break;
      default:
        MOE_CHECK_MSG(false, "convert_from_f32: target must be a float type");
    }
  }
}

}  // namespace moe
