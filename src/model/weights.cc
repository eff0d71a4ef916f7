// WeightStore (see weights.h).
#include "model/weights.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <span>

#include <fmt/ranges.h>

#include "io/gguf_config.h"
#include "kernels/quant_blocks.h"
#include "runtime/thread_pool.h"
#include "util/dtype.h"
#include "util/error.h"

namespace moe {

WeightStore::WeightStore(const std::string& path, const ModelSpec& spec) : path_(path) {
  if (is_gguf_path(path)) {
    gguf_ = std::make_unique<GgufTensorSource>(path, spec);
    return;
  }
  checkpoint_.emplace(Checkpoint::open(path));
  validate(spec);
}

void WeightStore::validate(const ModelSpec& spec) {
  RegistryOptions with_mtp;
  with_mtp.include_mtp = true;
  const TensorRegistry registry = build_registry(spec, with_mtp);
  const Checkpoint& ck = *checkpoint_;
  for (const TensorEntry& e : registry.tensors) {
    if (!ck.has(e.name)) {
      if (e.is_mtp) continue;  // MTP weights are optional: the decoder does not run them
      fail("weights", "{}: missing tensor {} (shape [{}])", ck.path(), e.name, fmt::join(e.shape, ", "));
    }
    const TensorInfo& info = ck.info(e.name);
    if (info.shape != e.shape) {
      fail("weights", "{}: tensor {} has shape [{}], the config implies [{}]", ck.path(), e.name,
           fmt::join(info.shape, ", "), fmt::join(e.shape, ", "));
    }
    if (dtype_is_float(e.dtype) != dtype_is_float(info.dtype) ||
        ((e.dtype == DType::kF8E4M3 || e.dtype == DType::kF8E5M2) && info.dtype != e.dtype)) {
      fail("weights", "{}: tensor {} is stored as {}, expected {}", ck.path(), e.name, dtype_name(info.dtype),
           dtype_name(e.dtype));
    }
    if (!e.scale_of.empty()) {
      if (e.dtype == DType::kU8 && info.dtype == DType::kU8) continue;  // MXFP4 E8M0 scales (read with the blocks)
      if (info.dtype != DType::kF32 && info.dtype != DType::kBF16 && info.dtype != DType::kF8E8M0) {
        fail("weights", "{}: block scales {} stored as {}; only F32 / BF16 / E8M0 scales are supported", ck.path(),
             e.name, dtype_name(info.dtype));
      }
      scale_of_[e.scale_of] = e.name;
    }
  }
  block_rows_ = spec.quant.block_rows;
  block_cols_ = spec.quant.block_cols;
  for (const std::string& name : ck.tensor_names()) {
    // A multimodal wrapper (Llama 4) keeps its vision tower and projector beside the text model: not run.
    if (spec.multimodal_wrapper && !name.starts_with(spec.tensor_prefix)) continue;
    if (!registry.find(name)) {
      fail("weights", "{}: unexpected tensor {} (not part of a {} model with this config)", ck.path(), name,
           spec.model_type);
    }
  }
}

std::optional<std::pair<std::string, uint64_t>> WeightStore::locate(const void* p, uint64_t n) const {
  const auto in = [&](const MappedFile* m) -> std::optional<std::pair<std::string, uint64_t>> {
    const auto* b = static_cast<const uint8_t*>(p);
    if (!m || b < m->data() || b + n > m->data() + m->size()) return std::nullopt;
    return std::make_pair(m->path(), static_cast<uint64_t>(b - m->data()));
  };
  if (gguf_) return in(&gguf_->file().mapping());
  for (const SafetensorsFile& f : checkpoint_->files())
    if (auto r = in(f.mapping())) return r;
  return std::nullopt;
}

bool WeightStore::has(const std::string& name) const {
  return gguf_ ? gguf_->find(name) != nullptr : checkpoint_->has(name);
}

WeightStore::Raw WeightStore::raw(const std::string& name) const {
  if (gguf_) {
    const SourceTensor* t = gguf_->find(name);
    if (!t) fail("gguf", "{}: missing tensor {}", path_, name);
    return {&t->shape, t->dtype, t->data, t->nbytes};
  }
  if (!checkpoint_->has(name)) fail("weights", "{}: missing tensor {}", checkpoint_->path(), name);
  const TensorInfo& info = checkpoint_->info(name);
  const auto bytes = checkpoint_->file_of(name).bytes(name);
  return {&info.shape, info.dtype, bytes.data(), bytes.size()};
}

const std::vector<int64_t>& WeightStore::shape(const std::string& name) const { return *raw(name).shape; }

WeightView WeightStore::matrix(const std::string& name) {
  const Raw r = raw(name);
  if (r.shape->size() != 2)
    fail("weights", "{}: tensor {} should be a matrix, found {} dims", path_, name, r.shape->size());
  if (r.dtype == DType::kF8E4M3) {
    if (const uint8_t* b = fp8_blocks(name)) return WeightView{b, DType::kF8E4M3_B128, (*r.shape)[1]};
  }
  // Zero-copy only when the mapped data is aligned for its type (safetensors does not promise it).
  const bool zero_copy = r.dtype == DType::kF32 || r.dtype == DType::kBF16;
  if (dtype_is_block(r.dtype) || (zero_copy && reinterpret_cast<uintptr_t>(r.data) % dtype_size(r.dtype) == 0)) {
    return WeightView{r.data, r.dtype, (*r.shape)[1]};
  }
  return WeightView{f32(name), DType::kF32, (*r.shape)[1]};
}

std::vector<float> WeightStore::read_f32(const std::string& name) const {
  const Raw r = raw(name);
  if (r.dtype == DType::kF8E4M3) return dequantize_fp8(name);
  if (!dtype_is_float(r.dtype))
    fail("weights", "{}: tensor {}: dtype {} is not a float type", path_, name, dtype_name(r.dtype));
  int64_t numel = 1;
  for (int64_t d : *r.shape) numel *= d;
  std::vector<float> out(static_cast<size_t>(numel));
  const int64_t cols = r.shape->empty() ? 1 : r.shape->back(), rows = cols == 0 ? 0 : numel / cols;
  const int64_t row_bytes = dtype_row_bytes(r.dtype, cols);
  for (int64_t i = 0; i < rows; ++i) dequantize_row(r.dtype, r.data + i * row_bytes, out.data() + i * cols, cols);
  return out;
}

WeightView WeightStore::rows(const std::string& name, int64_t first_row, int64_t n_rows) {
  const Raw r = raw(name);
  const std::vector<int64_t>& s = *r.shape;
  if (s.size() < 2) fail("weights", "{}: tensor {} should have at least 2 dims, found {}", path_, name, s.size());
  const int64_t cols = s.back();
  int64_t total = 1;
  for (size_t i = 0; i + 1 < s.size(); ++i) total *= s[i];
  if (first_row < 0 || n_rows < 0 || first_row + n_rows > total)
    fail("weights", "{}: rows [{}, {}) of tensor {} are outside its {} rows", path_, first_row, first_row + n_rows,
         name, total);
  if (r.dtype == DType::kF8E4M3 && s.size() == 2) {
    if (const uint8_t* b = fp8_blocks(name))
      return WeightView{b + first_row * dtype_row_bytes(DType::kF8E4M3_B128, cols), DType::kF8E4M3_B128, cols};
  }
  const bool zero_copy = r.dtype == DType::kF32 || r.dtype == DType::kBF16;
  if (dtype_is_block(r.dtype) || (zero_copy && reinterpret_cast<uintptr_t>(r.data) % dtype_size(r.dtype) == 0)) {
    return WeightView{r.data + first_row * dtype_row_bytes(r.dtype, cols), r.dtype, cols};
  }
  return WeightView{f32(name) + first_row * cols, DType::kF32, cols};
}

const float* WeightStore::f32(const std::string& name) {
  auto it = converted_.find(name);
  if (it == converted_.end()) it = converted_.emplace(name, read_f32(name)).first;
  return it->second.data();
}

size_t WeightStore::release(const WeightView& v, int64_t rows) {
  if (v.layout != WeightLayout::kRows || v.data == nullptr || rows <= 0) return 0;
  const size_t n = static_cast<size_t>(rows * dtype_row_bytes(v.dtype, v.ld));
  if (gguf_) return gguf_->file().mapping().release(v.data, n);
  size_t released = 0;
  for (const SafetensorsFile& f : checkpoint_->files())
    if (f.mapping()) released += f.mapping()->release(v.data, n);
  return released;
}

// W[i, j] = fp8(q[i, j]) * scale_inv[i / block_rows, j / block_cols] (DeepSeek-V3 block FP8).
std::vector<float> WeightStore::dequantize_fp8(const std::string& name) const {
  const Checkpoint& ck = *checkpoint_;
  const auto it = scale_of_.find(name);
  const std::vector<int64_t>& s = ck.info(name).shape;
  if (it == scale_of_.end() || s.size() != 2) {
    fail("weights", "{}: FP8 tensor {} has no block scales (weight_scale_inv) or is not a matrix", ck.path(), name);
  }
  const std::vector<float> scale = ck.file_of(it->second).to_f32(it->second);  // [ceil(N/br), ceil(K/bc)]
  const std::span<const uint8_t> q = ck.file_of(name).bytes(name);             // [N, K]
  const int64_t N = s[0], K = s[1], scale_cols = (K + block_cols_ - 1) / block_cols_;
  std::vector<float> w(static_cast<size_t>(N * K));  // [N, K]
  for (int64_t i = 0; i < N; ++i) {
    for (int64_t j = 0; j < K; ++j) {
      w[i * K + j] = f8e4m3_to_f32(q[i * K + j]) * scale[(i / block_rows_) * scale_cols + j / block_cols_];
    }
  }
  return w;
}

const uint8_t* WeightStore::fp8_blocks(const std::string& name) {
  if (const auto it = fp8_.find(name); it != fp8_.end()) return it->second.data();
  const Checkpoint& ck = *checkpoint_;
  const auto sit = scale_of_.find(name);
  const std::vector<int64_t>& s = ck.info(name).shape;
  if (sit == scale_of_.end() || s.size() != 2 || s[1] % 128 != 0 || block_cols_ % 128 != 0) return nullptr;
  const std::vector<float> scale = ck.file_of(sit->second).to_f32(sit->second);  // [ceil(N/br), ceil(K/bc)]
  const std::span<const uint8_t> q = ck.file_of(name).bytes(name);               // [N, K]
  const int64_t N = s[0], K = s[1], scale_cols = (K + block_cols_ - 1) / block_cols_, nb = K / 128;
  for (float v : scale) {
    if (!std::isfinite(v))
      fail("weights", "{}: block scales {} hold {} (expected finite values)", ck.path(), sit->second, v);
  }
  const int64_t row_bytes = dtype_row_bytes(DType::kF8E4M3_B128, K);
  AlignedBuffer<uint8_t> out(static_cast<size_t>(N * row_bytes), kUninitialized);
  // E4M3 has no infinities; 0x7f / 0xff are NaN, which no trained weight holds: a corrupt file.
  std::atomic<int64_t> first_nan{N * K};
  thread_pool().parallel_for(N, [&](int64_t r0, int64_t r1, int) {
    for (int64_t i = r0; i < r1; ++i) {
      for (int64_t b = 0; b < nb; ++b) {
        uint8_t* dst = out.data() + i * row_bytes + b * 132;
        const uint8_t* codes = q.data() + i * K + b * 128;
        const float sc = scale[static_cast<size_t>((i / block_rows_) * scale_cols + b * 128 / block_cols_)];
        std::memcpy(dst, &sc, 4);
        std::memcpy(dst + 4, codes, 128);
        for (int64_t j = 0; j < 128; ++j) {
          if ((codes[j] & 0x7f) != 0x7f) continue;
          int64_t seen = first_nan.load();
          const int64_t at = i * K + b * 128 + j;
          while (at < seen && !first_nan.compare_exchange_weak(seen, at)) {
          }
          break;
        }
      }
    }
  });
  if (const int64_t at = first_nan.load(); at < N * K) {
    fail("weights", "{}: FP8 tensor {} holds a NaN code at row {}, column {}", ck.path(), name, at / K, at % K);
  }
  release(WeightView{q.data(), DType::kF8E4M3, K}, N);
  return fp8_.emplace(name, std::move(out)).first->second.data();
}

std::vector<uint8_t>& WeightStore::own_bytes(size_t n) {
  owned_bytes_.emplace_back(n, uint8_t{0});
  return owned_bytes_.back();
}

WeightView WeightStore::own_packed(PackedWeights&& w) {
  owned_packed_.push_back(std::move(w));
  return owned_packed_.back().view();
}

WeightView WeightStore::keep_matrix(const uint8_t* rows, DType t, int64_t n, int64_t cols) {
  const WeightView v{rows, t, cols};
  if (panel_layout_supported(t)) return own_packed(PackedWeights::pack(v, n, cols));
  std::vector<uint8_t>& kept = own_bytes(static_cast<size_t>(n * dtype_row_bytes(t, cols)));
  std::copy_n(rows, kept.size(), kept.data());
  return WeightView{kept.data(), t, cols};
}

std::vector<float>& WeightStore::own(size_t n) {
  owned_.emplace_back(n, 0.0f);
  return owned_.back();
}

}  // namespace moe
