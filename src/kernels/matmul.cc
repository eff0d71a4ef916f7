// Dispatch of the NT matmul kernels on active_isa(), the portable kernel (the scalar
// dispatch target), the scalar reference twin, and the per-thread scratch buffers.
#include "kernels/matmul.h"

#include <algorithm>
#include <cstring>

#include "kernels/fp8_matmul.h"
#include "kernels/matmul_internal.h"
#include "kernels/packed_weights.h"
#include "kernels/quant_matmul.h"
#include "runtime/aligned.h"
#include "runtime/cpu_features.h"
#include "util/check.h"

namespace moe {
namespace {

using matmul_detail::MatmulArgs;

// Portable f32-accumulating kernel (the scalar dispatch target; auto-vectorizes to SSE2).
void matmul_nt_scalar(const MatmulArgs& g) {
  const MatmulShape s = g.s;
  if (g.b.layout == WeightLayout::kPanels) {  // any ISA can compute packed weights, slowly
    for (int64_t i = 0; i < s.m; ++i) {
      for (int64_t j = 0; j < s.n; ++j) {
        float acc = 0.0f;
        for (int64_t p = 0; p < s.k; ++p) acc += g.a[i * g.lda + p] * weight_element(g.b, j, p);
        float& out = g.c[i * g.ldc + j];
        out = g.accumulate ? out + acc : acc;
      }
    }
    return;
  }
  for (int64_t i = 0; i < s.m; ++i) {
    const float* ar = g.a + i * g.lda;
    for (int64_t j = 0; j < s.n; ++j) {
      float acc = 0.0f;
      if (g.b.dtype == DType::kBF16) {
        const uint16_t* br = static_cast<const uint16_t*>(g.b.data) + j * g.b.ld;
        for (int64_t p = 0; p < s.k; ++p) acc += ar[p] * bf16_to_f32(br[p]);
      } else {
        const float* br = static_cast<const float*>(g.b.data) + j * g.b.ld;
        for (int64_t p = 0; p < s.k; ++p) acc += ar[p] * br[p];
      }
      float& out = g.c[i * g.ldc + j];
      out = g.accumulate ? out + acc : acc;
    }
  }
}

void check_args(const float* a, int64_t lda, const WeightView& b, const float* c, int64_t ldc, MatmulShape s) {
  MOE_CHECK(b.dtype == DType::kF32 || b.dtype == DType::kBF16 || dtype_is_block(b.dtype));
  if (dtype_is_block(b.dtype)) MOE_CHECK(s.k % dtype_block_elems(b.dtype) == 0);
  MOE_CHECK(s.m >= 0 && s.n >= 0 && s.k >= 0);
  if (b.layout == WeightLayout::kPanels) {  // the panel kernels use aligned loads and bf16 pairs
    MOE_CHECK(reinterpret_cast<uintptr_t>(b.data) % 64 == 0 && (b.dtype != DType::kBF16 || b.ld % 2 == 0));
  }
  if (s.m == 0 || s.n == 0) return;
  MOE_CHECK(c != nullptr && ldc >= s.n);
  if (s.k == 0) return;
  MOE_CHECK(a != nullptr && lda >= s.k && b.data != nullptr && b.ld >= s.k);
}

}  // namespace

namespace matmul_detail {

void* scratch(int slot, size_t bytes) {
  struct Slots {
    AlignedBuffer<unsigned char> buf[kScratchCount];
  };
  thread_local Slots slots;
  MOE_CHECK(slot >= 0 && slot < kScratchCount);
  AlignedBuffer<unsigned char>& b = slots.buf[slot];
  if (b.size() < bytes) b = AlignedBuffer<unsigned char>(bytes + bytes / 4 + 4096);
  return b.data();
}

}  // namespace matmul_detail

WeightView weight_rows(const WeightView& b, int64_t r0) {
  const auto* base = static_cast<const uint8_t*>(b.data);
  // Panels: r0 / 32 panels of 32 * ld elements each (block types: r0 / 16 groups of 16 rows), the same
  // offset as r0 rows of ld elements.
  MOE_CHECK(b.layout == WeightLayout::kRows || r0 % (dtype_is_block(b.dtype) ? kQuantGroupRows : 32) == 0);
  return {base + r0 * dtype_row_bytes(b.dtype, b.ld), b.dtype, b.ld, b.layout};
}

namespace {

// Block-quantized B: A quantized to Q8 rows once (per-thread scratch) as B's type needs, then the integer
// kernels.
Q8Rows quantized_a(const float* a, int64_t lda, MatmulShape s, DType b_type) {
  auto* qa = static_cast<uint8_t*>(
      matmul_detail::scratch(matmul_detail::kScratchQ8, size_t(std::max<int64_t>(1, s.m)) * q8_row_bytes(s.k)));
  const ActFormat f = act_format(b_type);
  quantize_rows_q8(f, a, lda, s.m, s.k, qa);
  return Q8Rows{qa, q8_row_bytes(s.k), nullptr, nullptr, f};
}

}  // namespace

void matmul_nt_ref(const float* a, int64_t lda, const WeightView& b, float* c, int64_t ldc, MatmulShape s,
                   bool accumulate) {
  check_args(a, lda, b, c, ldc, s);
  for (int64_t i = 0; i < s.m; ++i) {
    for (int64_t j = 0; j < s.n; ++j) {
      double acc = 0.0;
      for (int64_t p = 0; p < s.k; ++p) acc += double(a[i * lda + p]) * double(weight_element(b, j, p));
      c[i * ldc + j] = static_cast<float>(accumulate ? double(c[i * ldc + j]) + acc : acc);
    }
  }
}

void matmul_nt(const float* a, int64_t lda, const WeightView& b, float* c, int64_t ldc, MatmulShape shape,
               bool accumulate, const void* next_b) {
  check_args(a, lda, b, c, ldc, shape);
  if (shape.m == 0 || shape.n == 0) return;
  if (shape.k == 0) {
    if (!accumulate)
      for (int64_t i = 0; i < shape.m; ++i) std::memset(c + i * ldc, 0, size_t(shape.n) * sizeof(float));
    return;
  }
  if (b.dtype == DType::kF8E4M3_B128) return matmul_fp8(a, lda, b, c, ldc, shape, accumulate);
  if (dtype_is_block(b.dtype)) {
    return matmul_q8(quantized_a(a, lda, shape, b.dtype), b, c, ldc, shape, accumulate);
  }
  const MatmulArgs g{a, lda, b, c, ldc, shape, accumulate, next_b};
  if (b.layout == WeightLayout::kPanels) {
    const Isa isa = active_isa();
    if (b.dtype == DType::kBF16 && isa == Isa::kAvx512Bf16) return matmul_detail::gemm_panels_bf16dot_avx512bf16(g);
    if (b.dtype == DType::kF32 && (isa == Isa::kAvx512 || isa == Isa::kAvx512Bf16))
      return matmul_detail::gemm_panels_avx512(g);
    return matmul_nt_scalar(g);
  }
  const bool gemm = shape.m >= matmul_detail::kGemmMinRows;
  switch (active_isa()) {
    case Isa::kAvx512Bf16:
      // bf16 weights take the vdpbf16ps kernels at every m (A rounded to bf16), so a token's
      // result does not switch precision with the batch size; f32 weights fall through.
      if (b.dtype == DType::kBF16) {
        return gemm ? matmul_detail::gemm_bf16dot_avx512bf16(g) : matmul_detail::decode_bf16dot_avx512bf16(g);
      }
      [[fallthrough]];
    case Isa::kAvx512:
      return gemm ? matmul_detail::gemm_avx512(g) : matmul_detail::decode_avx512(g);
    case Isa::kAvx2:
      return gemm ? matmul_detail::gemm_avx2(g) : matmul_detail::decode_avx2(g);
    case Isa::kScalar:
      break;
  }
  matmul_nt_scalar(g);
}

void matmul_nt_dual(const float* a, int64_t lda, const WeightView& b0, const WeightView& b1, float* c0, float* c1,
                    int64_t ldc, MatmulShape shape) {
  const auto bf16_panels = [](const WeightView& b) {
    return b.layout == WeightLayout::kPanels && b.dtype == DType::kBF16;
  };
  if (takes_q8_activations(b0.dtype) && takes_q8_activations(b1.dtype) &&
      act_format(b0.dtype) == act_format(b1.dtype) && shape.m > 0 && shape.n > 0 && shape.k > 0) {
    check_args(a, lda, b0, c0, ldc, shape);
    check_args(a, lda, b1, c1, ldc, shape);
    const Q8Rows qa = quantized_a(a, lda, shape, b0.dtype);  // one quantization for both
    matmul_q8(qa, b0, c0, ldc, shape, false);
    return matmul_q8(qa, b1, c1, ldc, shape, false);
  }
  if (bf16_panels(b0) && bf16_panels(b1) && active_isa() == Isa::kAvx512Bf16 && shape.m > 0 && shape.n > 0 &&
      shape.k > 0) {
    check_args(a, lda, b0, c0, ldc, shape);
    check_args(a, lda, b1, c1, ldc, shape);
    // The first product's last slice prefetches the second's first.
    return matmul_detail::gemm_panels_bf16dot_dual_avx512bf16(MatmulArgs{a, lda, b0, c0, ldc, shape, false, b1.data},
                                                              MatmulArgs{a, lda, b1, c1, ldc, shape, false});
  }
  matmul_nt(a, lda, b0, c0, ldc, shape, false);
  matmul_nt(a, lda, b1, c1, ldc, shape, false);
}

bool matmul_rounds_a_to_bf16(const WeightView& b) {
  return b.layout == WeightLayout::kPanels && b.dtype == DType::kBF16 && active_isa() == Isa::kAvx512Bf16;
}

void round_to_bf16(const float* x, int64_t n, uint16_t* out) {
  if (active_isa() == Isa::kAvx512Bf16) return matmul_detail::round_bf16_avx512bf16(x, n, out);
  for (int64_t i = 0; i < n; ++i) out[i] = f32_to_bf16(x[i]);
}

void matmul_nt_bf16a(const uint16_t* a, int64_t lda, const WeightView& b, float* c, int64_t ldc, MatmulShape shape,
                     bool accumulate, const void* next_b) {
  MOE_CHECK(shape.m == 0 || shape.k == 0 || (a != nullptr && lda % 2 == 0 && lda >= (shape.k + 1) / 2 * 2));
  if (matmul_rounds_a_to_bf16(b) && shape.m > 0 && shape.n > 0 && shape.k > 0) {
    check_args(reinterpret_cast<const float*>(a), lda, b, c, ldc, shape);
    return matmul_detail::gemm_panels_bf16dot_bf16a_avx512bf16(
        MatmulArgs{nullptr, lda, b, c, ldc, shape, accumulate, next_b}, reinterpret_cast<const uint32_t*>(a), lda / 2);
  }
  float* rows = static_cast<float*>(matmul_detail::scratch(
      matmul_detail::kScratchGather, size_t(std::max<int64_t>(1, shape.m * shape.k)) * sizeof(float)));
  for (int64_t i = 0; i < shape.m; ++i)
    for (int64_t p = 0; p < shape.k; ++p) rows[i * shape.k + p] = bf16_to_f32(a[i * lda + p]);
  matmul_nt(rows, shape.k, b, c, ldc, shape, accumulate, next_b);
}

void gather_rows(const GatheredRows& a, int64_t m, int64_t k, float* dst, int64_t ldd) {
  for (int64_t i = 0; i < m; ++i) {
    const float* src = a.x + int64_t(a.idx[i]) * a.ldx;
    float* d = dst + i * ldd;
    if (a.scale) {
      const float w = a.scale[i];
      for (int64_t p = 0; p < k; ++p) d[p] = w * src[p];
    } else {
      std::memcpy(d, src, sizeof(float) * size_t(k));
    }
  }
}

void matmul_nt_dual_gathered(const GatheredRows& a, const WeightView& b0, const WeightView& b1, float* c0, float* c1,
                             int64_t ldc, MatmulShape shape) {
  MOE_CHECK(shape.m == 0 || (a.x != nullptr && a.idx != nullptr && a.ldx >= shape.k));
  if (takes_q8_activations(b0.dtype) && takes_q8_activations(b1.dtype) &&
      act_format(b0.dtype) == act_format(b1.dtype) && shape.m > 0 && shape.n > 0 && shape.k > 0) {
    check_args(a.x, a.ldx, b0, c0, ldc, shape);
    check_args(a.x, a.ldx, b1, c1, ldc, shape);
    // The rows quantized where they are; their scale multiplies the results (within f32 rounding of
    // quantizing the scaled rows, which would round the codes differently).
    auto* qa = static_cast<uint8_t*>(
        matmul_detail::scratch(matmul_detail::kScratchQ8, size_t(shape.m) * q8_row_bytes(shape.k)));
    const ActFormat f = act_format(b0.dtype);
    quantize_rows_q8_gathered(f, a.x, a.ldx, a.idx, shape.m, shape.k, qa);
    const Q8Rows rows{qa, q8_row_bytes(shape.k), nullptr, a.scale, f};
    matmul_q8(rows, b0, c0, ldc, shape, false);
    return matmul_q8(rows, b1, c1, ldc, shape, false);
  }
  const auto bf16_panels = [](const WeightView& b) {
    return b.layout == WeightLayout::kPanels && b.dtype == DType::kBF16;
  };
  if (bf16_panels(b0) && bf16_panels(b1) && active_isa() == Isa::kAvx512Bf16 && shape.m > 0 && shape.n > 0 &&
      shape.k > 0) {
    check_args(a.x, a.ldx, b0, c0, ldc, shape);
    check_args(a.x, a.ldx, b1, c1, ldc, shape);
    return matmul_detail::gemm_panels_bf16dot_dual_gathered_avx512bf16(
        a, MatmulArgs{nullptr, shape.k, b0, c0, ldc, shape, false, b1.data},
        MatmulArgs{nullptr, shape.k, b1, c1, ldc, shape, false});
  }
  float* rows = static_cast<float*>(matmul_detail::scratch(
      matmul_detail::kScratchGather, size_t(std::max<int64_t>(1, shape.m * shape.k)) * sizeof(float)));
  gather_rows(a, shape.m, shape.k, rows, shape.k);
  matmul_nt_dual(rows, shape.k, b0, b1, c0, c1, ldc, shape);
}

}  // namespace moe
