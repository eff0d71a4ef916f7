// Weights packed once (at load time) into the panel layout the matmul kernels read in place,
// so no matmul call packs B: panel q holds rows [32q, 32q+32) of B [n, k].
//   f32:  element (row j, column p) at data[q*32*ld + p*32 + j%32], ld = k.
//   bf16: bf16 pairs for vdpbf16ps: element (j, p) at data[q*32*ld + (p/2)*64 + (j%32)*2 + p%2], ld = k rounded up
//         to even. Rows past n in the last panel and the odd-k pad column are zero.
// Same bytes as the row layout when n % 32 == 0 (and k even for bf16): memory is not doubled.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>

#include "kernels/matmul.h"
#include "runtime/aligned.h"

namespace moe {

// True when the active ISA has panel kernels for this weight dtype (AVX-512: f32; AVX512_BF16: bf16).
// Other ISA levels still compute panel views correctly (portable loop), only slowly: pack only when true.
bool panel_layout_supported(DType dtype);

int64_t panel_ld(DType dtype, int64_t k);               // k extent of a panel (k, or k rounded up to even)
size_t panel_bytes(DType dtype, int64_t n, int64_t k);  // bytes of [n, k] in panels (n rounded up to 32)

// src: kRows view of [n, k]; dst: panel_bytes(src.dtype, n, k) bytes. Returns the kPanels view of dst.
WeightView pack_panels(const WeightView& src, int64_t n, int64_t k, void* dst);
// The view pack_panels returns for a dtype and k, on panels already at data (a cache of them).
WeightView panel_view(DType dtype, int64_t k, const void* data);
// src: kPanels view of [n, k]; dst: [n, k] rows with row stride ld_dst, src's dtype.
void unpack_panels(const WeightView& src, int64_t n, int64_t k, void* dst, int64_t ld_dst);

// Element (row j, column p) of a view of either layout, widened to f32 (reference and portable paths).
float weight_element(const WeightView& b, int64_t j, int64_t p);

// One owned packed matrix.
class PackedWeights {
 public:
  PackedWeights() = default;
  static PackedWeights pack(const WeightView& src, int64_t n, int64_t k);
  WeightView view() const { return view_; }
  int64_t n() const { return n_; }
  int64_t k() const { return k_; }
  size_t bytes() const { return buf_.size(); }

 private:
  AlignedBuffer<uint8_t> buf_;
  WeightView view_;
  int64_t n_ = 0, k_ = 0;
};

// A dense [n, k] matrix read by linear layers (k = its row length, w.ld): packed into panels kept in
// `store` when the ISA has panel kernels for its dtype, else returned as given. Left in rows: bf16 with
// an odd row length (the panel would be padded, and callers take k from ld) and views already packed.
WeightView pack_dense(const WeightView& w, int64_t n, std::deque<PackedWeights>* store);

}  // namespace moe
