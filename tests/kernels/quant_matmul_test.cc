// Quantized matmul (kernels/quant_matmul.h): panel packing round trips; activation quantization gives the
// same bytes at every ISA level; every kernel (scalar reference on rows, on panels, AVX2, AVX-512 VNNI)
// gives the same bits for every block type at odd sizes (m, n across the 8-row tile and 16-column group,
// several blocks), with gathered and scaled rows and accumulation; and the result is within the 8-bit
// activations' error of the f32 product on the dequantized weights.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "common/llamacpp_ref.h"
#include "kernels/quant_blocks.h"
#include "kernels/quant_internal.h"
#include "kernels/quant_matmul.h"
#include "runtime/aligned.h"
#include "runtime/cpu_features.h"

namespace moe {
namespace {

const DType kTypes[] = {DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1,  DType::kQ8_0,
                        DType::kQ4_K, DType::kQ5_K, DType::kQ6_K, DType::kMXFP4, DType::kIQ4_XS};

struct Weights {
  std::vector<float> f32;     // [n, k] original
  std::vector<uint8_t> rows;  // [n] quantized rows
  std::vector<float> deq;     // [n, k] dequantized
};

Weights make_weights(DType t, int64_t n, int64_t k, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 0.5f);
  Weights w;
  w.f32.resize(size_t(n * k));
  for (auto& v : w.f32) v = normal(rng);
  const int64_t rb = dtype_row_bytes(t, k);
  w.rows.resize(size_t(n * rb));
  w.deq.resize(size_t(n * k));
  for (int64_t j = 0; j < n; ++j) {
    quantize_row(t, w.f32.data() + j * k, w.rows.data() + j * rb, k);
    dequantize_row(t, w.rows.data() + j * rb, w.deq.data() + j * k, k);
  }
  return w;
}

std::vector<float> make_acts(int64_t m, int64_t k, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(size_t(m * k));
  for (size_t i = 0; i < x.size(); ++i) x[i] = normal(rng) * (i % 97 == 0 ? 8.0f : 1.0f);
  return x;
}

struct Packed {
  AlignedBuffer<uint8_t> buf;
  WeightView view;
};
Packed pack(DType t, const std::vector<uint8_t>& rows, int64_t n, int64_t k) {
  Packed p;
  p.buf = AlignedBuffer<uint8_t>(quant_panel_bytes(t, n, k));
  p.view = pack_quant_panels(WeightView{rows.data(), t, k, WeightLayout::kRows}, n, k, p.buf.data());
  return p;
}

class QuantMatmul : public ::testing::TestWithParam<DType> {};

TEST_P(QuantMatmul, PanelsRoundTripToTheSameBytes) {
  const DType t = GetParam();
  std::mt19937 rng(11);
  for (int64_t n : {1, 15, 16, 17, 33}) {
    for (int64_t blocks : {1, 3}) {
      const int64_t k = blocks * dtype_block_elems(t);
      const Weights w = make_weights(t, n, k, rng);
      const Packed p = pack(t, w.rows, n, k);
      std::vector<uint8_t> back(w.rows.size());
      unpack_quant_panels(p.view, n, k, back.data());
      ASSERT_EQ(back, w.rows) << dtype_name(t) << " n " << n << " k " << k;
    }
  }
}

TEST(QuantActivations, SameBytesAtEveryIsa) {
  std::mt19937 rng(5);
  for (ActFormat f : {ActFormat::kQ8_0, ActFormat::kQ8_1, ActFormat::kQ8_K}) {
    for (int64_t k : {256, 768, 2048}) {
      const int64_t m = 5;
      std::vector<float> x = make_acts(m, k, rng);
      x[3] = 0.0f;
      std::fill(x.begin() + 32, x.begin() + 64, 0.0f);    // an all-zero block
      std::fill(x.begin() + k, x.begin() + 2 * k, 0.0f);  // an all-zero row
      x[2 * k + 5] = 7.5f;                                // equal magnitudes of both signs: the first wins
      x[2 * k + 9] = -7.5f;
      const int64_t rb = q8_row_bytes(k);
      std::vector<uint8_t> simd(size_t(m * rb), 0), scalar(size_t(m * rb), 0);
      quantize_rows_q8(f, x.data(), k, m, k, simd.data());
      const Isa prev = set_isa_override(Isa::kScalar);
      quantize_rows_q8(f, x.data(), k, m, k, scalar.data());
      set_isa_override(prev);
      ASSERT_EQ(simd, scalar) << int(f) << " k " << k;
    }
  }
}

// A row quantized block range by block range (as a producer of h's column blocks does) has the bytes of
// the row quantized at once.
TEST(QuantActivations, PartsMakeTheWholeRow) {
  std::mt19937 rng(6);
  for (ActFormat f : {ActFormat::kQ8_0, ActFormat::kQ8_1, ActFormat::kQ8_K}) {
    const int64_t k = 1536, bs = act_block(f);
    const std::vector<float> x = make_acts(1, k, rng);
    std::vector<uint8_t> whole(static_cast<size_t>(q8_row_bytes(k)), 0), parts(whole.size(), 0);
    quantize_rows_q8(f, x.data(), k, 1, k, whole.data());
    int64_t n = 1;
    for (int64_t c0 = 0; c0 < k; n = n % 3 + 1) {  // uneven parts of 1, 2, 3 blocks
      const int64_t c1 = std::min(k, c0 + n * bs);
      quantize_row_q8_part(f, x.data(), k, c0, c1, parts.data());
      c0 = c1;
    }
    EXPECT_EQ(whole, parts) << int(f);
  }
}

// Our activation rows hold the same codes and scales as ggml's CPU quantize_row_q8_0 / q8_1 / q8_K (the
// AVX2 build llama.cpp runs on such machines).
TEST(QuantActivations, SameCodesAndScalesAsGgml) {
  if (!cpu_features().avx2 || !cpu_features().fma || !cpu_features().f16c) GTEST_SKIP() << "needs AVX2";
  MOE_GGML_REF(ref);
  void* cpu = dlopen((testing::llamacpp_lib_dir() + "/libggml-cpu-haswell.so").c_str(), RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(cpu, nullptr);
  using QuantizeFn = void (*)(const float*, void*, int64_t);
  std::mt19937 rng(8);
  const int64_t k = 1024;
  const std::vector<float> x = make_acts(1, k, rng);
  const int64_t rb = q8_row_bytes(k);
  for (ActFormat f : {ActFormat::kQ8_0, ActFormat::kQ8_1, ActFormat::kQ8_K}) {
    const char* name = f == ActFormat::kQ8_0   ? "quantize_row_q8_0"
                       : f == ActFormat::kQ8_1 ? "quantize_row_q8_1"
                                               : "quantize_row_q8_K";
    auto fn = reinterpret_cast<QuantizeFn>(dlsym(cpu, name));
    ASSERT_NE(fn, nullptr) << name;
    std::vector<uint8_t> theirs(static_cast<size_t>(k * 2), 0), ours(static_cast<size_t>(rb));
    fn(x.data(), theirs.data(), k);
    quantize_rows_q8(f, x.data(), k, 1, k, ours.data());
    const quant_detail::Q8Row r = quant_detail::q8_row(ours.data(), k);
    if (f == ActFormat::kQ8_K) {  // block_q8_K: f32 d, int8 qs[256], int16 bsums[16]
      for (int64_t b = 0; b < k / 256; ++b) {
        const uint8_t* blk = theirs.data() + b * 292;
        float d;
        std::memcpy(&d, blk, 4);
        EXPECT_EQ(d, r.d[b]) << name << " block " << b;
        EXPECT_EQ(0, std::memcmp(blk + 4, r.q + 256 * b, 256)) << name << " block " << b;
        EXPECT_EQ(0, std::memcmp(blk + 260, r.sum16 + 16 * b, 32)) << name << " block " << b;
      }
    } else {  // block_q8_0: f16 d, int8 qs[32]; block_q8_1: f16 d, f16 s, int8 qs[32]
      const int64_t bb = f == ActFormat::kQ8_0 ? 34 : 36, qs = f == ActFormat::kQ8_0 ? 2 : 4;
      for (int64_t b = 0; b < k / 32; ++b) {
        const uint8_t* blk = theirs.data() + b * bb;
        uint16_t h;
        std::memcpy(&h, blk, 2);
        EXPECT_EQ(f16_to_f32(h), r.d[b]) << name << " block " << b;
        EXPECT_EQ(0, std::memcmp(blk + qs, r.q + 32 * b, 32)) << name << " block " << b;
        if (f == ActFormat::kQ8_1) {
          std::memcpy(&h, blk + 2, 2);
          EXPECT_EQ(f16_to_f32(h), r.s[b]) << name << " block " << b;
        }
      }
    }
  }
  dlclose(cpu);
}

using Kernel = void (*)(const quant_detail::QuantArgs&);

std::vector<std::pair<const char*, Kernel>> panel_kernels() {
  std::vector<std::pair<const char*, Kernel>> kernels;
  if (detected_isa() >= Isa::kAvx2) kernels.push_back({"avx2", quant_detail::quant_panels_avx2});
  if (detected_isa() >= Isa::kAvx512 && cpu_features().avx512_vnni)
    kernels.push_back({"avx512vnni", quant_detail::quant_panels_avx512vnni});
  if (amx_ready()) kernels.push_back({"amx", quant_detail::quant_panels_amx});  // any row count, not only >= 8
  return kernels;
}

// The look-ahead address follows one stream of G groups: within its group, then into the group G on, as
// far as the look-ahead passes (the far prefetch passes several groups of a narrow matrix).
TEST(QuantLookAhead, FollowsTheStreamAcrossGroups) {
  const int64_t nb = 3, tile = 100, group = nb * tile;
  const std::vector<uint8_t> weights(size_t(8 * group));
  const auto at = [&](int64_t grp, int64_t b) {
    return reinterpret_cast<uintptr_t>(weights.data() + grp * group + b * tile);
  };
  const auto ahead = [&](int64_t grp, int64_t b, int k, int g) {
    return quant_detail::ahead_address(weights.data() + grp * group + b * tile, b, nb, k, g, tile);
  };
  EXPECT_EQ(ahead(0, 0, 1, 2), at(0, 1));              // within the group
  EXPECT_EQ(ahead(0, 2, 1, 2), at(2, 0));              // past its end: the stream's next group, 2 on
  EXPECT_EQ(ahead(1, 1, 8, 2), at(7, 0));              // 8 on from block 1 of group 1: past groups 1, 3 and 5
  EXPECT_EQ(ahead(0, 0, 8, 1), at(2, 2));              // one stream: the groups are contiguous
  const uint8_t* t11 = weights.data() + group + tile;  // block 1 of group 1
  using quant_detail::far_address;
  EXPECT_EQ(far_address(t11, 1, nb, 8, 2, tile, {at(8, 0), 0}), at(7, 0));
  EXPECT_EQ(far_address(t11, 1, nb, 8, 2, tile, {at(7, 0), 0}), 0u);  // at the end: none
  EXPECT_EQ(far_address(t11, 1, nb, 0, 2, tile, {at(8, 0), 0}), 0u);  // no far look-ahead
  // Past the end, with the next product's weights given: as far into those.
  EXPECT_EQ(far_address(t11, 1, nb, 8, 2, tile, {at(6, 0), 1000}), 1000 + at(7, 0) - at(6, 0));
}

// The dispatch picks AMX for prefill-sized products where the CPU has it; the bits stay the reference's.
TEST(QuantMatmulAmx, DispatchGivesTheSameBitsWithAndWithoutAmx) {
  if (!amx_ready()) GTEST_SKIP() << "no AMX-INT8 here (or MOE_AMX=0)";
  std::mt19937 rng(5);
  for (DType t :
       {DType::kQ8_0, DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1, DType::kMXFP4, DType::kIQ4_XS}) {
    for (int64_t blocks : {1, 3, 4}) {  // blocks of 32 an odd and even count: the tile kernel's two tile sets
      const int64_t n = 33, k = blocks * dtype_block_elems(t), m = 37;
      const Weights w = make_weights(t, n, k, rng);
      const Packed p = pack(t, w.rows, n, k);
      const std::vector<float> x = make_acts(m, k, rng);
      std::vector<uint8_t> qa(size_t(m * q8_row_bytes(k)));
      quantize_rows_q8(act_format(t), x.data(), k, m, k, qa.data());
      const Q8Rows a{qa.data(), q8_row_bytes(k), nullptr, nullptr, act_format(t)};
      std::vector<float> with(size_t(m * n)), without(size_t(m * n)), ref(size_t(m * n));
      matmul_q8(a, p.view, with.data(), n, {m, n, k}, false);
      const bool was = set_amx_enabled(false);
      matmul_q8(a, p.view, without.data(), n, {m, n, k}, false);
      set_amx_enabled(was);
      matmul_q8_ref(a, WeightView{w.rows.data(), t, k, WeightLayout::kRows}, ref.data(), n, {m, n, k}, false);
      EXPECT_EQ(0, std::memcmp(with.data(), ref.data(), ref.size() * 4)) << dtype_name(t) << " k " << k;
      EXPECT_EQ(0, std::memcmp(without.data(), ref.data(), ref.size() * 4)) << dtype_name(t) << " k " << k;
    }
  }
}

// Every panel kernel on rows [n] of type t against the scalar reference on the file's rows, bit for bit, for
// x [m + 3, k] quantized (rows picked through idx, scaled, accumulated: three variants).
void expect_reference_bits(DType t, const std::vector<uint8_t>& rows, int64_t n, int64_t k, const Packed& p,
                           const std::vector<float>& x, int64_t m) {
  const int64_t rb = q8_row_bytes(k);
  std::vector<uint8_t> qa(size_t((m + 3) * rb));
  quantize_rows_q8(act_format(t), x.data(), k, m + 3, k, qa.data());
  std::vector<int32_t> idx(static_cast<size_t>(m));
  std::vector<float> scale(static_cast<size_t>(m));
  for (int64_t i = 0; i < m; ++i) {
    idx[size_t(i)] = int32_t((i * 7 + 1) % (m + 3));
    scale[size_t(i)] = 0.25f + 0.1f * float(i);
  }
  for (int variant = 0; variant < 3; ++variant) {
    Q8Rows a{qa.data(), rb, nullptr, nullptr, act_format(t)};
    if (variant >= 1) a.idx = idx.data();
    if (variant >= 2) a.scale = scale.data();
    const bool accumulate = variant == 2;
    const int64_t ldc = n + 3;
    std::vector<float> init(size_t(m * ldc));
    for (size_t i = 0; i < init.size(); ++i) init[i] = float(i % 13) - 6.0f;
    std::vector<float> ref = init, ref_panels = init;
    matmul_q8_ref(a, WeightView{rows.data(), t, k, WeightLayout::kRows}, ref.data(), ldc, {m, n, k}, accumulate);
    matmul_q8_ref(a, p.view, ref_panels.data(), ldc, {m, n, k}, accumulate);
    ASSERT_EQ(0, std::memcmp(ref.data(), ref_panels.data(), ref.size() * 4)) << dtype_name(t);
    for (const auto& [name, kernel] : panel_kernels()) {
      std::vector<float> out = init;
      kernel(quant_detail::QuantArgs{a, p.view, out.data(), ldc, {m, n, k}, accumulate});
      for (size_t i = 0; i < out.size(); ++i) {
        ASSERT_EQ(std::memcmp(&out[i], &ref[i], 4), 0)
            << name << " " << dtype_name(t) << " m " << m << " n " << n << " k " << k << " variant " << variant
            << " at " << i << ": " << out[i] << " vs " << ref[i];
      }
    }
  }
}

// Every row count up to 17 (the row tiles of the m >= 2 kernels and their remainders) and across the 64-row
// chunks, n below, at and past the 16-row groups; and for m = 1 (8 weight groups at a time, then the rest)
// n of 9 and 18 groups, the last one partial.
TEST_P(QuantMatmul, EveryKernelGivesTheReferenceBits) {
  const DType t = GetParam();
  std::mt19937 rng(21);
  for (int64_t blocks : {1, 3}) {
    const int64_t k = blocks * dtype_block_elems(t);
    for (int64_t n : {1, 16, 17, 40, 141, 277}) {
      const Weights w = make_weights(t, n, k, rng);
      const Packed p = pack(t, w.rows, n, k);
      std::vector<int64_t> ms;
      for (int64_t m = 1; m <= (n > 40 ? 2 : 17); ++m) ms.push_back(m);
      if (n == 40) ms.insert(ms.end(), {64, 65, 70});
      for (int64_t m : ms) {
        expect_reference_bits(t, w.rows, n, k, p, make_acts(m + 3, k, rng), m);
        if (HasFatalFailure()) return;
      }
    }
  }
}

// The largest codes against the largest activations, where an i16 sum could first overflow or vpmaddubsw
// saturate: weights of +-1 (largest codes of each type; Q8_0 also -128, which no quantizer writes but a file
// may hold) times activations of +-1 (codes +-127) in rows of one sign and of alternating signs.
TEST_P(QuantMatmul, LargestCodesStayExact) {
  const DType t = GetParam();
  const int64_t n = 24, k = 2 * dtype_block_elems(t), m = 9;
  Weights w;
  w.f32.resize(size_t(n * k));
  for (int64_t j = 0; j < n; ++j)
    for (int64_t p = 0; p < k; ++p) w.f32[size_t(j * k + p)] = (j % 3 == 0 || (j % 3 == 2 && p % 2)) ? -1.0f : 1.0f;
  const int64_t rb = dtype_row_bytes(t, k);
  w.rows.resize(size_t(n * rb));
  for (int64_t j = 0; j < n; ++j) quantize_row(t, w.f32.data() + j * k, w.rows.data() + j * rb, k);
  if (t == DType::kQ8_0) {  // rows 4 and 5: codes -128 (block: f16 d, then 32 int8)
    for (int64_t j : {4, 5})
      for (int64_t b = 0; b < k / 32; ++b) std::memset(w.rows.data() + j * rb + b * 34 + 2, 0x80, 32);
  }
  const Packed p = pack(t, w.rows, n, k);
  std::vector<float> x(size_t((m + 3) * k));
  for (int64_t i = 0; i < m + 3; ++i)
    for (int64_t q = 0; q < k; ++q) x[size_t(i * k + q)] = (i % 3 == 0 || (i % 3 == 2 && q % 2)) ? -1.0f : 1.0f;
  expect_reference_bits(t, w.rows, n, k, p, x, m);
}

TEST_P(QuantMatmul, CloseToTheF32ProductOnTheDequantizedWeights) {
  const DType t = GetParam();
  std::mt19937 rng(31);
  const int64_t m = 6, n = 37, k = 2 * 256;
  const Weights w = make_weights(t, n, k, rng);
  const Packed p = pack(t, w.rows, n, k);
  const std::vector<float> x = make_acts(m, k, rng);
  std::vector<float> c(size_t(m * n));
  matmul_nt(x.data(), k, p.view, c.data(), n, {m, n, k}, false);  // the dispatcher quantizes A itself
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double exact = 0, norm = 0;
      for (int64_t q = 0; q < k; ++q) {
        exact += double(x[i * k + q]) * w.deq[j * k + q];
        norm += std::fabs(double(x[i * k + q]) * w.deq[j * k + q]);
      }
      const float got = c[i * n + j];
      ASSERT_FALSE(std::isnan(got));
      EXPECT_NEAR(got, exact, 0.01 * norm) << dtype_name(t) << " (" << i << ", " << j << ")";
    }
  }
}

// One row against one row: our reference kernel equals ggml's own dot product (ggml_vec_dot_<type>_q8_*
// of the baseline CPU build, on blocks converted from our activation row) up to float reordering.
TEST_P(QuantMatmul, SameDotProductAsGgml) {
  MOE_GGML_REF(ref);
  void* cpu = dlopen((testing::llamacpp_lib_dir() + "/libggml-cpu-x64.so").c_str(), RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(cpu, nullptr);
  reinterpret_cast<void (*)()>(dlsym(cpu, "ggml_cpu_init"))();  // its f16 tables
  const DType t = GetParam();
  const ActFormat af = act_format(t);
  std::string type = std::string(dtype_name(t));
  for (char& ch : type)
    if (ch != 'K') ch = static_cast<char>(std::tolower(ch));
  const std::string name = "ggml_vec_dot_" + type +
                           (af == ActFormat::kQ8_K   ? "_q8_K"
                            : af == ActFormat::kQ8_1 ? "_q8_1"
                                                     : "_q8_0");
  using DotFn = void (*)(int, float*, size_t, const void*, size_t, const void*, size_t, int);
  auto dot = reinterpret_cast<DotFn>(dlsym(cpu, name.c_str()));
  ASSERT_NE(dot, nullptr) << name;
  std::mt19937 rng(41);
  const int64_t k = 2048;
  for (int round = 0; round < 10; ++round) {
    const Weights w = make_weights(t, 1, k, rng);
    const std::vector<float> x = make_acts(1, k, rng);
    std::vector<uint8_t> qa(static_cast<size_t>(q8_row_bytes(k)));
    quantize_rows_q8(af, x.data(), k, 1, k, qa.data());
    const quant_detail::Q8Row r = quant_detail::q8_row(qa.data(), k);
    std::vector<uint8_t> blocks;  // our row in ggml's block_q8_0 / q8_1 / q8_K layout
    for (int64_t b = 0; b < k / (af == ActFormat::kQ8_K ? 256 : 32); ++b) {
      if (af == ActFormat::kQ8_K) {
        const uint8_t* d = reinterpret_cast<const uint8_t*>(&r.d[b]);
        blocks.insert(blocks.end(), d, d + 4);
        blocks.insert(blocks.end(), r.q + 256 * b, r.q + 256 * b + 256);
        const auto* bs = reinterpret_cast<const uint8_t*>(r.sum16 + 16 * b);
        blocks.insert(blocks.end(), bs, bs + 32);
        continue;
      }
      const uint16_t d = f32_to_f16(r.d[b]), sv = f32_to_f16(r.s[b]);
      blocks.insert(blocks.end(), reinterpret_cast<const uint8_t*>(&d), reinterpret_cast<const uint8_t*>(&d) + 2);
      if (af == ActFormat::kQ8_1)
        blocks.insert(blocks.end(), reinterpret_cast<const uint8_t*>(&sv), reinterpret_cast<const uint8_t*>(&sv) + 2);
      blocks.insert(blocks.end(), r.q + 32 * b, r.q + 32 * b + 32);
    }
    float theirs = 0, ours = 0;
    dot(static_cast<int>(k), &theirs, 0, w.rows.data(), 0, blocks.data(), 0, 1);
    matmul_q8_ref(Q8Rows{qa.data(), q8_row_bytes(k), nullptr, nullptr, af},
                  WeightView{w.rows.data(), t, k, WeightLayout::kRows}, &ours, 1, {1, 1, k}, false);
    double norm = 0;
    for (int64_t p = 0; p < k; ++p) norm += std::fabs(double(x[p]) * w.deq[p]);
    EXPECT_NEAR(ours, theirs, 1e-6 * norm) << name << " round " << round;
  }
  dlclose(cpu);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, QuantMatmul, ::testing::ValuesIn(kTypes),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace moe
