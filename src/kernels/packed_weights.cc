// Packing of weights into the matmul kernels' panel layout (see packed_weights.h): pack, unpack,
// element access for the portable and reference paths, and the owning PackedWeights.
#include "kernels/packed_weights.h"

#include <algorithm>
#include <cstring>

#include "kernels/quant_blocks.h"
#include "kernels/quant_matmul.h"
#include "runtime/cpu_features.h"
#include "util/check.h"

namespace moe {
namespace {

constexpr int64_t kPanel = 32;  // rows of B per panel (the micro-kernels' column width)

inline int64_t panel_index(const WeightView& b, int64_t j, int64_t p) {
  const int64_t base = (j / kPanel) * kPanel * b.ld;
  if (b.dtype == DType::kBF16) return base + (p / 2) * 2 * kPanel + (j % kPanel) * 2 + (p & 1);
  return base + p * kPanel + (j % kPanel);
}

template <typename T>
void pack_typed(const WeightView& src, int64_t n, int64_t k, const WeightView& out, T* dst) {
  const T* s = static_cast<const T*>(src.data);
  constexpr int64_t kBlock = 64;  // columns per pass: a panel's 32 x 64 block stays in L1 while it is written
  for (int64_t j0 = 0; j0 < n; j0 += kPanel) {
    for (int64_t p0 = 0; p0 < k; p0 += kBlock) {
      const int64_t p1 = std::min(k, p0 + kBlock);
      for (int64_t j = j0; j < std::min(n, j0 + kPanel); ++j) {
        for (int64_t p = p0; p < p1; ++p) dst[panel_index(out, j, p)] = s[j * src.ld + p];
      }
    }
  }
}

template <typename T>
void unpack_typed(const WeightView& src, int64_t n, int64_t k, T* dst, int64_t ld_dst) {
  const T* s = static_cast<const T*>(src.data);
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t p = 0; p < k; ++p) dst[j * ld_dst + p] = s[panel_index(src, j, p)];
  }
}

}  // namespace

bool panel_layout_supported(DType dtype) {
  if (dtype == DType::kF8E4M3_B128) return false;  // computed on in rows (kernels/fp8_matmul.h)
  if (dtype_is_block(dtype)) return quant_panels_supported();
  const Isa isa = active_isa();
  if (dtype == DType::kF32) return isa == Isa::kAvx512 || isa == Isa::kAvx512Bf16;
  if (dtype == DType::kBF16) return isa == Isa::kAvx512Bf16;
  return false;
}

int64_t panel_ld(DType dtype, int64_t k) { return dtype == DType::kBF16 ? (k + 1) / 2 * 2 : k; }

size_t panel_bytes(DType dtype, int64_t n, int64_t k) {
  if (dtype_is_block(dtype)) return quant_panel_bytes(dtype, n, k);
  const int64_t n_pad = (n + kPanel - 1) / kPanel * kPanel;
  return static_cast<size_t>(n_pad * panel_ld(dtype, k)) * dtype_size(dtype);
}

WeightView pack_panels(const WeightView& src, int64_t n, int64_t k, void* dst) {
  if (dtype_is_block(src.dtype)) return pack_quant_panels(src, n, k, dst);
  MOE_CHECK(src.layout == WeightLayout::kRows && (src.dtype == DType::kF32 || src.dtype == DType::kBF16));
  MOE_CHECK(n >= 0 && k >= 0 && (n == 0 || k == 0 || (src.data && src.ld >= k)));
  const WeightView out{dst, src.dtype, panel_ld(src.dtype, k), WeightLayout::kPanels};
  std::memset(dst, 0, panel_bytes(src.dtype, n, k));  // padding rows and the odd-k pair half stay zero
  if (src.dtype == DType::kBF16) {
    pack_typed(src, n, k, out, static_cast<uint16_t*>(dst));
  } else {
    pack_typed(src, n, k, out, static_cast<float*>(dst));
  }
  return out;
}

WeightView panel_view(DType dtype, int64_t k, const void* data) {
  return WeightView{data, dtype, dtype_is_block(dtype) ? k : panel_ld(dtype, k), WeightLayout::kPanels};
}

void unpack_panels(const WeightView& src, int64_t n, int64_t k, void* dst, int64_t ld_dst) {
  if (dtype_is_block(src.dtype)) {
    MOE_CHECK(ld_dst == k);
    return unpack_quant_panels(src, n, k, dst);
  }
  MOE_CHECK(src.layout == WeightLayout::kPanels && src.ld >= k && ld_dst >= k);
  if (src.dtype == DType::kBF16) {
    unpack_typed(src, n, k, static_cast<uint16_t*>(dst), ld_dst);
  } else {
    unpack_typed(src, n, k, static_cast<float*>(dst), ld_dst);
  }
}

float weight_element(const WeightView& b, int64_t j, int64_t p) {
  if (b.dtype == DType::kF8E4M3_B128) {
    MOE_CHECK(b.layout == WeightLayout::kRows);
    float block[128];
    dequantize_row(b.dtype, static_cast<const uint8_t*>(b.data) + j * dtype_row_bytes(b.dtype, b.ld) + p / 128 * 132,
                   block, 128);
    return block[p % 128];
  }
  if (dtype_is_block(b.dtype)) return quant_weight_element(b, j, p);
  const int64_t i = b.layout == WeightLayout::kPanels ? panel_index(b, j, p) : j * b.ld + p;
  if (b.dtype == DType::kBF16) return bf16_to_f32(static_cast<const uint16_t*>(b.data)[i]);
  return static_cast<const float*>(b.data)[i];
}

PackedWeights PackedWeights::pack(const WeightView& src, int64_t n, int64_t k) {
  PackedWeights w;
  w.buf_ = AlignedBuffer<uint8_t>(panel_bytes(src.dtype, n, k), kUninitialized);  // packing writes every byte
  w.view_ = pack_panels(src, n, k, w.buf_.data());
  w.n_ = n;
  w.k_ = k;
  return w;
}

WeightView pack_dense(const WeightView& w, int64_t n, std::deque<PackedWeights>* store) {
  if (!panel_layout_supported(w.dtype) || w.layout != WeightLayout::kRows || panel_ld(w.dtype, w.ld) != w.ld) return w;
  store->push_back(PackedWeights::pack(w, n, w.ld));
  return store->back().view();
}

}  // namespace moe
