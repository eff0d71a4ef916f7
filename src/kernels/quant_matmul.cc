// Quantized matmul (see quant_matmul.h): the block anatomy of every type, activation quantization, the
// scalar reference twin on rows and panels, panel packing, and the dispatch to the ISA kernels.
#include "kernels/quant_matmul.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/quant_blocks.h"
#include "kernels/quant_internal.h"
#include "kernels/quant_iq4.h"
#include "runtime/cpu_features.h"
#include "runtime/thread_pool.h"
#include "util/check.h"

namespace moe {
namespace quant_detail {
namespace {

float h2f(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

QuantFormat make_format(DType t, int block, int sub, int bits, std::initializer_list<int> fields) {
  QuantFormat f;
  f.dtype = t;
  f.block = block;
  f.sub = sub;
  f.code_bits = bits;
  f.n_fields = 0;
  for (int b : fields) {
    f.field_bytes[f.n_fields++] = b;
    f.head_bytes += b;
  }
  f.block_bytes = f.head_bytes + block * bits / 8;
  MOE_CHECK(f.block_bytes == dtype_block_bytes(t) && block == dtype_block_elems(t));
  return f;
}

const QuantFormat* all_formats() {
  static const QuantFormat formats[] = {
      make_format(DType::kQ4_0, 32, 32, 4, {2}),
      make_format(DType::kQ4_1, 32, 32, 4, {2, 2}),
      make_format(DType::kQ5_0, 32, 32, 5, {2}),
      make_format(DType::kQ5_1, 32, 32, 5, {2, 2}),
      make_format(DType::kQ8_0, 32, 32, 8, {2}),
      make_format(DType::kMXFP4, 32, 32, 4, {1}),
      make_format(DType::kQ4_K, 256, 32, 4, {2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}),
      make_format(DType::kQ5_K, 256, 32, 5, {2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}),
      make_format(DType::kQ6_K, 256, 16, 6, {2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}),
      make_format(DType::kIQ4_XS, 256, 32, 4, {2, 2, 1, 1, 1, 1}),  // d, scales_h, scales_l[4]
  };
  return formats;
}
constexpr int kNumFormats = 10;

// Nibble pairs of the simple types: element j < 16 in the low nibble of qs[j], j + 16 in the high one.
void split_nibbles32(const uint8_t* qs, uint8_t* codes) {
  for (int j = 0; j < 16; ++j) {
    codes[j] = qs[j] & 15;
    codes[j + 16] = qs[j] >> 4;
  }
}
void join_nibbles32(const uint8_t* codes, uint8_t* qs) {
  for (int j = 0; j < 16; ++j) qs[j] = static_cast<uint8_t>((codes[j] & 15) | ((codes[j + 16] & 15) << 4));
}
uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

}  // namespace

int64_t QuantFormat::tile_lines_offset() const {
  const int64_t bits_planes = code_bits == 5 ? 2 * block : code_bits == 6 ? 4 * block : 0;
  return tile_bits_offset() + bits_planes;
}

const QuantFormat& quant_format(DType t) {
  const QuantFormat* f = all_formats();
  for (int i = 0; i < kNumFormats; ++i)
    if (f[i].dtype == t) return f[i];
  MOE_CHECK_MSG(false, "not a block-quantized dtype");
  return f[0];
}

void split_block(DType t, const uint8_t* b, uint8_t* head, uint8_t* codes) {
  static thread_local const QuantFormat* cached = nullptr;
  if (!cached || cached->dtype != t) cached = &quant_format(t);
  const QuantFormat& f = *cached;
  switch (t) {
    case DType::kQ4_0:
    case DType::kQ4_1:
    case DType::kMXFP4:
      std::memcpy(head, b, size_t(f.head_bytes));
      split_nibbles32(b + f.head_bytes, codes);
      return;
    case DType::kQ5_0:
    case DType::kQ5_1: {
      std::memcpy(head, b, size_t(f.head_bytes));
      const uint32_t qh = load_u32(b + f.head_bytes);
      split_nibbles32(b + f.head_bytes + 4, codes);
      for (int j = 0; j < 32; ++j) codes[j] = static_cast<uint8_t>(codes[j] | (((qh >> j) & 1) << 4));
      return;
    }
    case DType::kQ8_0:
      std::memcpy(head, b, 2);
      for (int j = 0; j < 32; ++j) codes[j] = b[2 + j] ^ 0x80;
      return;
    case DType::kQ4_K:
    case DType::kQ5_K: {
      std::memcpy(head, b, 16);
      const bool five = t == DType::kQ5_K;
      const uint8_t* qh = b + 16;
      const uint8_t* ql = b + (five ? 48 : 16);
      for (int j = 0; j < 4; ++j) {
        for (int l = 0; l < 32; ++l) {
          const int h0 = five ? (qh[l] >> (2 * j)) & 1 : 0, h1 = five ? (qh[l] >> (2 * j + 1)) & 1 : 0;
          codes[64 * j + l] = static_cast<uint8_t>((ql[32 * j + l] & 15) | (h0 << 4));
          codes[64 * j + 32 + l] = static_cast<uint8_t>((ql[32 * j + l] >> 4) | (h1 << 4));
        }
      }
      return;
    }
    case DType::kQ6_K: {
      std::memcpy(head, b + 208, 2);       // d
      std::memcpy(head + 2, b + 192, 16);  // scales
      for (int h = 0; h < 2; ++h) {
        const uint8_t* ql = b + 64 * h;
        const uint8_t* qh = b + 128 + 32 * h;
        uint8_t* c = codes + 128 * h;
        for (int l = 0; l < 32; ++l) {
          c[l] = static_cast<uint8_t>((ql[l] & 15) | (((qh[l] >> 0) & 3) << 4));
          c[l + 32] = static_cast<uint8_t>((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4));
          c[l + 64] = static_cast<uint8_t>((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
          c[l + 96] = static_cast<uint8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
        }
      }
      return;
    }
    case DType::kIQ4_XS:  // 8 sub-blocks laid out as the 32-blocks' nibbles
      std::memcpy(head, b, 8);
      for (int ib = 0; ib < 8; ++ib) split_nibbles32(b + 8 + 16 * ib, codes + 32 * ib);
      return;
    default:
      MOE_CHECK_MSG(false, "split_block: not a block type");
  }
}

void join_block(DType t, const uint8_t* head, const uint8_t* codes, uint8_t* b) {
  const QuantFormat& f = quant_format(t);
  switch (t) {
    case DType::kQ4_0:
    case DType::kQ4_1:
    case DType::kMXFP4:
      std::memcpy(b, head, size_t(f.head_bytes));
      join_nibbles32(codes, b + f.head_bytes);
      return;
    case DType::kQ5_0:
    case DType::kQ5_1: {
      std::memcpy(b, head, size_t(f.head_bytes));
      uint32_t qh = 0;
      for (int j = 0; j < 32; ++j) qh |= static_cast<uint32_t>((codes[j] >> 4) & 1) << j;
      std::memcpy(b + f.head_bytes, &qh, 4);
      join_nibbles32(codes, b + f.head_bytes + 4);
      return;
    }
    case DType::kQ8_0:
      std::memcpy(b, head, 2);
      for (int j = 0; j < 32; ++j) b[2 + j] = codes[j] ^ 0x80;
      return;
    case DType::kQ4_K:
    case DType::kQ5_K: {
      std::memcpy(b, head, 16);
      const bool five = t == DType::kQ5_K;
      uint8_t* qh = b + 16;
      uint8_t* ql = b + (five ? 48 : 16);
      if (five) std::memset(qh, 0, 32);
      for (int j = 0; j < 4; ++j) {
        for (int l = 0; l < 32; ++l) {
          const uint8_t c0 = codes[64 * j + l], c1 = codes[64 * j + 32 + l];
          ql[32 * j + l] = static_cast<uint8_t>((c0 & 15) | ((c1 & 15) << 4));
          if (five)
            qh[l] = static_cast<uint8_t>(qh[l] | (((c0 >> 4) & 1) << (2 * j)) | (((c1 >> 4) & 1) << (2 * j + 1)));
        }
      }
      return;
    }
    case DType::kQ6_K: {
      std::memcpy(b + 208, head, 2);
      std::memcpy(b + 192, head + 2, 16);
      for (int h = 0; h < 2; ++h) {
        uint8_t* ql = b + 64 * h;
        uint8_t* qh = b + 128 + 32 * h;
        const uint8_t* c = codes + 128 * h;
        for (int l = 0; l < 32; ++l) {
          ql[l] = static_cast<uint8_t>((c[l] & 15) | ((c[l + 64] & 15) << 4));
          ql[l + 32] = static_cast<uint8_t>((c[l + 32] & 15) | ((c[l + 96] & 15) << 4));
          qh[l] = static_cast<uint8_t>((c[l] >> 4) | ((c[l + 32] >> 4) << 2) | ((c[l + 64] >> 4) << 4) |
                                       ((c[l + 96] >> 4) << 6));
        }
      }
      return;
    }
    case DType::kIQ4_XS:
      std::memcpy(b, head, 8);
      for (int ib = 0; ib < 8; ++ib) join_nibbles32(codes + 32 * ib, b + 8 + 16 * ib);
      return;
    default:
      MOE_CHECK_MSG(false, "join_block: not a block type");
  }
}

void tile_write(const QuantFormat& f, uint8_t* tile, int r, const uint8_t* head, const uint8_t* codes) {
  int64_t plane = 0, off = 0;
  for (int i = 0; i < f.n_fields; ++i) {
    const int sz = f.field_bytes[i];
    std::memcpy(tile + plane + r * sz, head + off, size_t(sz));
    plane += 16 * sz;
    off += sz;
  }
  uint8_t* bits = tile + f.tile_bits_offset();
  uint8_t* lines = tile + f.tile_lines_offset();
  for (int e = 0; e < f.block; ++e) {
    const int kg = e / 4, byte = 4 * r + e % 4;
    const uint8_t c = codes[e];
    if (f.code_bits == 8) {
      lines[kg * 64 + byte] = c;
      continue;
    }
    lines[(kg / 2) * 64 + byte] |= static_cast<uint8_t>((c & 15) << (4 * (kg & 1)));
    if (f.code_bits == 5) bits[kg * 8 + byte / 8] |= static_cast<uint8_t>(((c >> 4) & 1) << (byte % 8));
    if (f.code_bits == 6) bits[(kg / 4) * 64 + byte] |= static_cast<uint8_t>(((c >> 4) & 3) << (2 * (kg % 4)));
  }
}

void tile_read(const QuantFormat& f, const uint8_t* tile, int r, uint8_t* head, uint8_t* codes) {
  int64_t plane = 0, off = 0;
  for (int i = 0; i < f.n_fields; ++i) {
    const int sz = f.field_bytes[i];
    std::memcpy(head + off, tile + plane + r * sz, size_t(sz));
    plane += 16 * sz;
    off += sz;
  }
  const uint8_t* bits = tile + f.tile_bits_offset();
  const uint8_t* lines = tile + f.tile_lines_offset();
  for (int e = 0; e < f.block; ++e) {
    const int kg = e / 4, byte = 4 * r + e % 4;
    if (f.code_bits == 8) {
      codes[e] = lines[kg * 64 + byte];
      continue;
    }
    int c = (lines[(kg / 2) * 64 + byte] >> (4 * (kg & 1))) & 15;
    if (f.code_bits == 5) c |= ((bits[kg * 8 + byte / 8] >> (byte % 8)) & 1) << 4;
    if (f.code_bits == 6) c |= ((bits[(kg / 4) * 64 + byte] >> (2 * (kg % 4))) & 3) << 4;
    codes[e] = static_cast<uint8_t>(c);
  }
}

void block_scales(DType t, const uint8_t* head, BlockScales* out) {
  switch (t) {
    case DType::kQ4_0:
    case DType::kQ5_0:
    case DType::kQ8_0:
      out->d = h2f(head);
      return;
    case DType::kQ4_1:
    case DType::kQ5_1:
      out->d = h2f(head);
      out->dmin = h2f(head + 2);
      return;
    case DType::kMXFP4:
      out->d = e8m0_to_f32_half(head[0]);
      return;
    case DType::kQ4_K:
    case DType::kQ5_K: {
      out->d = h2f(head);
      out->dmin = h2f(head + 2);
      for (int j = 0; j < 8; ++j) {
        uint8_t sc, m;
        k_scale_min(j, head + 4, &sc, &m);
        out->sc[j] = sc;
        out->mn[j] = m;
      }
      return;
    }
    case DType::kQ6_K:
      out->d = h2f(head);
      for (int j = 0; j < 16; ++j) out->sc[j] = static_cast<int8_t>(head[2 + j]);
      return;
    case DType::kIQ4_XS:  // the head is the block's first 8 bytes: d, scales_h, scales_l
      out->d = h2f(head);
      for (int j = 0; j < 8; ++j) out->sc[j] = iq4_xs_scale(head, j);
      return;
    default:
      MOE_CHECK_MSG(false, "block_scales: not a block type");
  }
}

int code_offset(DType t) {
  switch (t) {
    case DType::kQ4_0:
      return 8;
    case DType::kQ5_0:
      return 16;
    case DType::kQ8_0:
    case DType::kIQ4_XS:
      return 128;
    case DType::kMXFP4:
      return 12;
    case DType::kQ6_K:
      return 32;
    default:
      return 0;
  }
}

namespace {

// sum over [p0, p0 + n) of kernel code * activation code, exactly.
int32_t dot_codes(DType t, const uint8_t* codes, const int8_t* q, int64_t n) {
  int32_t s = 0;
  for (int64_t e = 0; e < n; ++e) s += int32_t(kernel_code(t, codes[e])) * q[e];
  return s;
}

// One block of weight row j against activation row r, added to acc (the header's formulas).
float block_dot(DType t, const QuantFormat& f, const uint8_t* codes, const BlockScales& w, const Q8Row& r, int64_t p0,
                float acc) {
  const int off = code_offset(t);
  if (f.block == 32) {
    const int32_t isum = dot_codes(t, codes, r.q + p0, 32) - off * r.sum32[p0 / 32];
    acc = std::fma(static_cast<float>(isum), w.d * r.d[p0 / 32], acc);
    if (t == DType::kQ4_1 || t == DType::kQ5_1) acc = std::fma(w.dmin, r.s[p0 / 32], acc);
    return acc;
  }
  const bool mins = t == DType::kQ4_K || t == DType::kQ5_K;
  int32_t sumi = 0, summ = 0;
  for (int j = 0; j < f.block / f.sub; ++j) {
    const int64_t s0 = p0 + j * f.sub;
    int32_t isum = dot_codes(t, codes + j * f.sub, r.q + s0, f.sub);
    isum -= off * (f.sub == 16 ? int32_t(r.sum16[s0 / 16]) : r.sum32[s0 / 32]);
    sumi += w.sc[j] * isum;
    if (mins) summ += w.mn[j] * r.sum32[s0 / 32];
  }
  const float da = r.d[p0 / 256];
  acc = std::fma(static_cast<float>(sumi), w.d * da, acc);
  if (mins) acc = std::fma(-static_cast<float>(summ), w.dmin * da, acc);
  return acc;
}

// The reference arithmetic for rows [0, m) x weight rows [0, n): block(j, b, head, codes) fills weight row
// j's block b. One decode per (j, b), then every activation row.
template <typename BlockSource>
void reference_kernel(const Q8Rows& a, DType t, int64_t k, float* c, int64_t ldc, MatmulShape s, bool accumulate,
                      const BlockSource& block) {
  const QuantFormat& f = quant_format(t);
  const int64_t nb = k / f.block;
  std::vector<Q8Row> rows(static_cast<size_t>(s.m));
  for (int64_t i = 0; i < s.m; ++i) rows[size_t(i)] = q8_row(q8_row_ptr(a, i), k);
  std::vector<float> acc(static_cast<size_t>(s.m));
  uint8_t head[32], codes[256];
  BlockScales w;
  for (int64_t j = 0; j < s.n; ++j) {
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (int64_t b = 0; b < nb; ++b) {
      block(j, b, head, codes);
      block_scales(t, head, &w);
      for (int64_t i = 0; i < s.m; ++i)
        acc[size_t(i)] = block_dot(t, f, codes, w, rows[size_t(i)], b * f.block, acc[size_t(i)]);
    }
    for (int64_t i = 0; i < s.m; ++i) {
      const float v = a.scale ? acc[size_t(i)] * a.scale[i] : acc[size_t(i)];
      float& out = c[i * ldc + j];
      out = accumulate ? out + v : v;
    }
  }
}

void check_quant_args(const Q8Rows& a, const WeightView& b, const float* c, int64_t ldc, MatmulShape s) {
  MOE_CHECK(dtype_is_block(b.dtype) && s.m >= 0 && s.n >= 0 && s.k >= 0);
  MOE_CHECK(s.k % dtype_block_elems(b.dtype) == 0 && b.ld >= s.k);
  MOE_CHECK_MSG(a.format == act_format(b.dtype), "activations quantized for another weight type");
  if (s.m == 0 || s.n == 0) return;
  MOE_CHECK(c != nullptr && ldc >= s.n && a.base != nullptr && a.row_bytes >= q8_row_bytes(s.k) && b.data);
  if (b.layout == WeightLayout::kPanels) MOE_CHECK(b.ld == s.k && reinterpret_cast<uintptr_t>(b.data) % 64 == 0);
}

bool has_vnni() { return active_isa() >= Isa::kAvx512 && cpu_features().avx512_vnni; }

std::atomic<bool> g_amx_enabled{true};

// Linux hands out the AMX tile state only to a process that asks (arch_prctl ARCH_REQ_XCOMP_PERM).
bool amx_permitted() {
  static const bool ok = [] {
    const CpuFeatures& f = cpu_features();
    if (!(f.amx_tile && f.amx_int8 && f.avx512_vnni)) return false;
    if (const char* env = std::getenv("MOE_AMX"); env != nullptr && std::string(env) == "0") return false;
    constexpr long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return ok;
}

// ggml's CPU quantization of activations, element for element, blocks [b0, b1) of a row.
void quantize_row_q8_32(bool with_s, const float* x, int64_t k, int64_t b0, int64_t b1, uint8_t* o) {
  const Q8Row r = q8_row(o, k);
  auto* q = const_cast<int8_t*>(r.q);
  for (int64_t b = b0; b < b1; ++b) {
    const float* xb = x + 32 * b;
    float amax = 0.0f;
    for (int e = 0; e < 32; ++e) amax = std::max(amax, std::fabs(xb[e]));
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int32_t sum[2] = {0, 0};
    for (int e = 0; e < 32; ++e) {
      const int v = static_cast<int>(std::nearbyint(xb[e] * id));
      q[32 * b + e] = static_cast<int8_t>(v);
      sum[e / 16] += v;
    }
    const_cast<float*>(r.d)[b] = f16_to_f32(f32_to_f16(d));
    const_cast<float*>(r.s)[b] = with_s ? f16_to_f32(f32_to_f16(d * static_cast<float>(sum[0] + sum[1]))) : 0.0f;
    const_cast<int32_t*>(r.sum32)[b] = sum[0] + sum[1];
    const_cast<int16_t*>(r.sum16)[2 * b] = static_cast<int16_t>(sum[0]);
    const_cast<int16_t*>(r.sum16)[2 * b + 1] = static_cast<int16_t>(sum[1]);
  }
}

void quantize_row_q8_256(const float* x, int64_t k, int64_t b0, int64_t b1, uint8_t* o) {
  const Q8Row r = q8_row(o, k);
  auto* q = const_cast<int8_t*>(r.q);
  for (int64_t b = b0; b < b1; ++b) {
    const float* xb = x + 256 * b;
    float max = 0.0f, amax = 0.0f;
    for (int e = 0; e < 256; ++e) {
      if (std::fabs(xb[e]) > amax) {
        amax = std::fabs(xb[e]);
        max = xb[e];
      }
    }
    const float iscale = amax != 0.0f ? -127.0f / max : 0.0f;
    for (int e = 0; e < 256; ++e)
      q[256 * b + e] = static_cast<int8_t>(std::min(127, static_cast<int>(std::nearbyint(iscale * xb[e]))));
    const_cast<float*>(r.d)[b] = amax != 0.0f ? 1.0f / iscale : 0.0f;
    for (int j = 0; j < 16; ++j) {
      int32_t s16 = 0;
      for (int e = 0; e < 16; ++e) s16 += q[256 * b + 16 * j + e];
      const_cast<int16_t*>(r.sum16)[16 * b + j] = static_cast<int16_t>(s16);
    }
    for (int j = 0; j < 8; ++j)
      const_cast<int32_t*>(r.sum32)[8 * b + j] = r.sum16[16 * b + 2 * j] + r.sum16[16 * b + 2 * j + 1];
  }
}

}  // namespace
}  // namespace quant_detail

using namespace quant_detail;

bool takes_q8_activations(DType weight) { return dtype_is_block(weight) && weight != DType::kF8E4M3_B128; }

ActFormat act_format(DType weight) {
  MOE_CHECK_MSG(takes_q8_activations(weight), "act_format of a weight type without Q8 kernels");
  switch (weight) {
    case DType::kQ4_1:
    case DType::kQ5_1:
      return ActFormat::kQ8_1;
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K:
    case DType::kIQ4_XS:
      return ActFormat::kQ8_K;
    default:
      return ActFormat::kQ8_0;
  }
}

int64_t q8_row_bytes(int64_t k) {
  const int64_t raw = k + 4 * (k / 32) * 3 + 2 * (k / 16);
  return (raw + 63) / 64 * 64;
}

int64_t act_block(ActFormat format) { return format == ActFormat::kQ8_K ? 256 : 32; }

void quantize_row_q8_part(ActFormat format, const float* x, int64_t k, int64_t c0, int64_t c1, uint8_t* row) {
  const int64_t bs = act_block(format);
  MOE_CHECK(k % bs == 0 && c0 % bs == 0 && c1 % bs == 0 && 0 <= c0 && c0 <= c1 && c1 <= k);
  if (active_isa() >= Isa::kAvx512) return quantize_part_avx512(format, x, k, c0 / bs, c1 / bs, row);
  if (format == ActFormat::kQ8_K) return quantize_row_q8_256(x, k, c0 / bs, c1 / bs, row);
  quantize_row_q8_32(format == ActFormat::kQ8_1, x, k, c0 / bs, c1 / bs, row);
}

void quantize_rows_q8_gathered(ActFormat format, const float* x, int64_t ldx, const int32_t* idx, int64_t m, int64_t k,
                               uint8_t* out) {
  const int64_t rb = q8_row_bytes(k);
  for (int64_t i = 0; i < m; ++i)
    quantize_row_q8_part(format, x + (idx ? int64_t(idx[i]) : i) * ldx, k, 0, k, out + i * rb);
}

void quantize_rows_q8(ActFormat format, const float* x, int64_t ldx, int64_t m, int64_t k, uint8_t* out) {
  quantize_rows_q8_gathered(format, x, ldx, nullptr, m, k, out);
}

void matmul_q8_ref(const Q8Rows& a, const WeightView& b, float* c, int64_t ldc, MatmulShape s, bool accumulate) {
  check_quant_args(a, b, c, ldc, s);
  if (s.m == 0 || s.n == 0) return;
  const QuantFormat& f = quant_format(b.dtype);
  const auto* base = static_cast<const uint8_t*>(b.data);
  if (b.layout == WeightLayout::kRows) {
    const int64_t row_bytes = dtype_row_bytes(b.dtype, b.ld);
    reference_kernel(a, b.dtype, s.k, c, ldc, s, accumulate, [&](int64_t j, int64_t blk, uint8_t* h, uint8_t* cd) {
      split_block(b.dtype, base + j * row_bytes + blk * f.block_bytes, h, cd);
    });
    return;
  }
  const int64_t group_bytes = 16 * dtype_row_bytes(b.dtype, s.k);
  reference_kernel(a, b.dtype, s.k, c, ldc, s, accumulate, [&](int64_t j, int64_t blk, uint8_t* h, uint8_t* cd) {
    tile_read(f, base + (j / 16) * group_bytes + blk * f.tile_bytes(), int(j % 16), h, cd);
  });
}

void matmul_q8(const Q8Rows& a, const WeightView& b, float* c, int64_t ldc, MatmulShape s, bool accumulate,
               const void* next) {
  check_quant_args(a, b, c, ldc, s);
  if (s.m == 0 || s.n == 0) return;
  if (b.layout == WeightLayout::kPanels) {
    const QuantArgs args{a, b, c, ldc, s, accumulate, next};
    if (has_vnni()) {
      if (s.m >= kAmxMinRows && quant_amx_supports(b.dtype) && amx_ready()) return quant_panels_amx(args);
      return quant_panels_avx512vnni(args);
    }
    if (active_isa() >= Isa::kAvx2) return quant_panels_avx2(args);
  }
  matmul_q8_ref(a, b, c, ldc, s, accumulate);
}

bool amx_ready() { return g_amx_enabled.load(std::memory_order_relaxed) && has_vnni() && amx_permitted(); }

bool set_amx_enabled(bool enabled) { return g_amx_enabled.exchange(enabled); }

bool quant_panels_supported() { return active_isa() >= Isa::kAvx2; }

size_t quant_panel_bytes(DType dtype, int64_t n, int64_t k) {
  return static_cast<size_t>((n + 15) / 16 * 16 * dtype_row_bytes(dtype, k));
}

namespace {

// One whole tile from the 16 rows' heads and raw codes (rows past n are zeros): the layout of tile_write,
// built plane by plane with plain loops rather than element by element.
void write_tile(const QuantFormat& f, int rows, const uint8_t (*head)[32], const uint8_t (*codes)[256], uint8_t* tile) {
  int64_t plane = 0, off = 0;
  for (int i = 0; i < f.n_fields; ++i) {
    const int sz = f.field_bytes[i];
    for (int r = 0; r < 16; ++r) {
      if (r < rows) {
        std::memcpy(tile + plane + r * sz, head[r] + off, size_t(sz));
      } else {
        std::memset(tile + plane + r * sz, 0, size_t(sz));
      }
    }
    plane += 16 * sz;
    off += sz;
  }
  uint8_t* bits = tile + f.tile_bits_offset();
  uint8_t* lines = tile + f.tile_lines_offset();
  const int n_kg = f.block / 4;
  if (f.code_bits == 8) {  // line kg: each row's codes 4kg..4kg+3
    for (int kg = 0; kg < n_kg; ++kg)
      for (int r = 0; r < 16; ++r) std::memcpy(lines + kg * 64 + 4 * r, codes[r] + 4 * kg, 4);
    return;
  }
  for (int L = 0; L < n_kg / 2; ++L)
    for (int r = 0; r < 16; ++r) {
      const uint8_t* c = codes[r] + 8 * L;
      for (int j = 0; j < 4; ++j)
        lines[L * 64 + 4 * r + j] = static_cast<uint8_t>((c[j] & 15) | ((c[4 + j] & 15) << 4));
    }
  if (f.code_bits == 5) {
    for (int kg = 0; kg < n_kg; ++kg) {
      uint64_t word = 0;
      for (int r = 0; r < 16; ++r)
        for (int j = 0; j < 4; ++j) word |= static_cast<uint64_t>((codes[r][4 * kg + j] >> 4) & 1) << (4 * r + j);
      std::memcpy(bits + kg * 8, &word, 8);
    }
  } else if (f.code_bits == 6) {
    for (int H = 0; H < n_kg / 4; ++H)
      for (int r = 0; r < 16; ++r)
        for (int j = 0; j < 4; ++j) {
          const uint8_t* c = codes[r] + 16 * H + j;
          bits[H * 64 + 4 * r + j] = static_cast<uint8_t>(((c[0] >> 4) & 3) | (((c[4] >> 4) & 3) << 2) |
                                                          (((c[8] >> 4) & 3) << 4) | (((c[12] >> 4) & 3) << 6));
        }
  }
}

// Where the low four bits of code e of a block are: the byte (from the block's nibble area) and
// whether in its high nibble. 32-blocks (and each 32-element sub-block of IQ4_XS, 16 bytes apart): bytes
// 0-15 hold codes e and e + 16. Q4_K / Q5_K: each 64
// codes take 32 bytes, low nibbles first. Q6_K: each half of 128 codes takes 64 bytes, the 32-code
// quarters q = 0..3 in bytes [32 (q & 1), +32), low nibbles for q < 2.
struct NibbleAt {
  int byte;
  bool high;
};
NibbleAt nibble_at(const QuantFormat& f, int e) {
  if (f.block == 32 || f.dtype == DType::kIQ4_XS) return {16 * (e / 32) + e % 16, e % 32 >= 16};
  if (f.code_bits == 6) return {64 * (e / 128) + 32 * ((e % 128 / 32) & 1) + e % 32, e % 128 >= 64};
  return {32 * (e / 64) + e % 32, e % 64 >= 32};
}

// A whole tile of any block type (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, MXFP4, Q4_K, Q5_K, Q6_K, IQ4_XS) straight from
// 16 rows' blocks, four codes a word, without the split into codes and back: the bytes of split_block +
// write_tile (PanelsRoundTripToTheSameBytes and every kernel's reference-bits test read them back),
// 1.3-3x as fast, since the expert cache re-lays every expert it reads from disk. False: not a type above.
bool write_tile_direct(const QuantFormat& f, const uint8_t* const* blk, uint8_t* tile) {
  const bool q6 = f.dtype == DType::kQ6_K;
  if (f.code_bits == 8 && f.block != 32) return false;
  // Heads, a plane per field; Q6_K's head is d (bytes 208-209) then the 16 scales (192-207).
  int64_t plane = 0, off = 0;
  for (int i = 0; i < f.n_fields; ++i) {
    const int sz = f.field_bytes[i];
    const int64_t from = q6 ? (i == 0 ? 208 : 192 + i - 1) : off;
    for (int r = 0; r < 16; ++r) std::memcpy(tile + plane + r * sz, blk[r] + from, size_t(sz));
    plane += 16 * sz;
    off += sz;
  }
  uint8_t* lines = tile + f.tile_lines_offset();
  const auto store = [](uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); };
  if (f.code_bits == 8) {  // line kg: each row's codes 4kg..4kg+3, stored offset by 128
    for (int kg = 0; kg < 8; ++kg)
      for (int r = 0; r < 16; ++r)
        store(lines + kg * 64 + 4 * r, load_u32(blk[r] + f.head_bytes + 4 * kg) ^ 0x80808080u);
    return true;
  }
  // Line L pairs the low nibbles of codes 8L + j (low half of the line byte) and 8L + 4 + j (high).
  constexpr uint32_t lo = 0x0F0F0F0Fu;
  // The nibble area: after the head, Q5_0 / Q5_1's 4 bytes and Q5_K's 32 bytes of fifth bits.
  const int64_t nibbles = q6 ? 0 : f.head_bytes + (f.code_bits == 5 ? f.block / 8 : 0);
  for (int L = 0; L < f.block / 8; ++L) {
    const NibbleAt at = nibble_at(f, 8 * L);
    uint8_t* line = lines + L * 64;
    const int64_t from = nibbles + at.byte;
    if (at.high) {
      for (int r = 0; r < 16; ++r)
        store(line + 4 * r, ((load_u32(blk[r] + from) >> 4) & lo) | (load_u32(blk[r] + from + 4) & ~lo));
    } else {
      for (int r = 0; r < 16; ++r)
        store(line + 4 * r, (load_u32(blk[r] + from) & lo) | ((load_u32(blk[r] + from + 4) & lo) << 4));
    }
  }
  uint8_t* bits = tile + f.tile_bits_offset();
  if (f.code_bits == 5) {  // k-group kg: bit 4r + j of its word is the fifth bit of row r's code 4kg + j
    for (int kg = 0; kg < f.block / 4; ++kg) {
      const int e = 4 * kg;
      uint64_t word = 0;
      for (int r = 0; r < 16; ++r) {
        const uint8_t* qh = blk[r] + f.head_bytes;
        uint32_t nib;
        if (f.block == 32) {  // Q5_0 / Q5_1: bit e of one 32-bit word
          nib = (load_u32(qh) >> e) & 15u;
        } else {  // Q5_K: code 64c + 32s + l keeps it in bit 2c + s of qh[l]; gather four bytes' bits
          const uint32_t t = (load_u32(qh + e % 32) >> (2 * (e / 64) + (e % 64) / 32)) & 0x01010101u;
          nib = ((t * 0x00204081u) >> 21) & 15u;
        }
        word |= uint64_t(nib) << (4 * r);
      }
      std::memcpy(bits + kg * 8, &word, 8);
    }
    return true;
  }
  if (!q6) return true;
  // Q6_K's top two bits: byte j of row r in plane H packs codes 16H + j + 4i (i = 0..3) two bits each;
  // code e = 128 h + 32 q + l keeps them in bits 2q, 2q + 1 of qh[32 h + l] (qh: bytes 128-191).
  for (int H = 0; H < f.block / 16; ++H) {
    const int e = 16 * H, q = e % 128 / 32;
    const int64_t from = 128 + 32 * (e / 128) + e % 32;
    for (int r = 0; r < 16; ++r) {
      uint32_t v = 0;
      for (int i = 0; i < 4; ++i) v |= ((load_u32(blk[r] + from + 4 * i) >> (2 * q)) & 0x03030303u) << (2 * i);
      store(bits + H * 64 + 4 * r, v);
    }
  }
  return true;
}

}  // namespace

WeightView pack_quant_panels(const WeightView& src, int64_t n, int64_t k, void* dst) {
  MOE_CHECK(src.layout == WeightLayout::kRows && dtype_is_block(src.dtype) && src.ld >= k);
  MOE_CHECK(reinterpret_cast<uintptr_t>(dst) % 64 == 0);
  const QuantFormat& f = quant_format(src.dtype);
  const int64_t nb = k / f.block, src_row = dtype_row_bytes(src.dtype, src.ld),
                group = 16 * dtype_row_bytes(src.dtype, k), n_groups = (n + 15) / 16;
  const auto* s = static_cast<const uint8_t*>(src.data);
  auto* d = static_cast<uint8_t*>(dst);
  // Groups are independent: split them across the pool (a call from inside a pool task runs inline).
  thread_pool().parallel_for(n_groups, [&](int64_t g0, int64_t g1, int) {
    uint8_t head[16][32], codes[16][256];
    std::memset(codes, 0, sizeof(codes));  // rows past n stay zero codes (and zero scales)
    const uint8_t* blk[16];
    for (int64_t g = g0; g < g1; ++g) {
      const int rows = static_cast<int>(std::min<int64_t>(16, n - 16 * g));
      for (int64_t b = 0; b < nb; ++b) {
        for (int r = 0; r < rows; ++r) blk[r] = s + (16 * g + r) * src_row + b * f.block_bytes;
        if (rows == 16 && write_tile_direct(f, blk, d + g * group + b * f.tile_bytes())) continue;
        for (int r = 0; r < rows; ++r) split_block(src.dtype, blk[r], head[r], codes[r]);
        write_tile(f, rows, head, codes, d + g * group + b * f.tile_bytes());
      }
    }
  });
  return {dst, src.dtype, k, WeightLayout::kPanels};
}

float quant_weight_element(const WeightView& b, int64_t j, int64_t p) {
  const QuantFormat& f = quant_format(b.dtype);
  const int64_t blk = p / f.block;
  uint8_t block[256], head[32], codes[256];
  const auto* base = static_cast<const uint8_t*>(b.data);
  const uint8_t* src = base + j * dtype_row_bytes(b.dtype, b.ld) + blk * f.block_bytes;
  if (b.layout == WeightLayout::kPanels) {
    tile_read(f, base + (j / 16) * 16 * dtype_row_bytes(b.dtype, b.ld) + blk * f.tile_bytes(), int(j % 16), head,
              codes);
    join_block(b.dtype, head, codes, block);
    src = block;
  }
  float values[256];
  dequantize_row(b.dtype, src, values, f.block);
  return values[p % f.block];
}

void unpack_quant_panels(const WeightView& src, int64_t n, int64_t k, void* dst) {
  MOE_CHECK(src.layout == WeightLayout::kPanels && dtype_is_block(src.dtype));
  const QuantFormat& f = quant_format(src.dtype);
  const int64_t nb = k / f.block, row = dtype_row_bytes(src.dtype, k), group = 16 * row;
  const auto* s = static_cast<const uint8_t*>(src.data);
  auto* d = static_cast<uint8_t*>(dst);
  uint8_t head[32], codes[256];
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t b = 0; b < nb; ++b) {
      tile_read(f, s + (j / 16) * group + b * f.tile_bytes(), int(j % 16), head, codes);
      join_block(src.dtype, head, codes, d + j * row + b * f.block_bytes);
    }
  }
}

}  // namespace moe
