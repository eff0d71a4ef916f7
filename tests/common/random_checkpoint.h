// A random Hugging Face checkpoint for a config (config.json + model.safetensors in f32, every tensor of
// the TensorRegistry with its own values), for tests that need realistic shapes rather than the tiny
// committed fixtures: GGUF quantization needs rows that are multiples of 32 or 256. Norms are near 1;
// routers are scaled up so that expert choices are decisive (two engines computing in different orders
// then route alike); the LM head is scaled so the next-token argmax has a margin.
// confident: the LM head is the embedding with its rows permuted (and the embedding larger than the
// blocks' outputs), so the next token after t is almost surely pi(t) with a wide margin, as in a trained
// model's confident predictions: greedy continuations of two engines whose logits differ by quantization
// noise then agree, while attention and the MoE layers still shape every logit.
#pragma once

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "spec/model_spec.h"
#include "spec/tensor_registry.h"

namespace moe::testing {

inline void write_random_checkpoint(const std::string& dir, const nlohmann::json& config, uint32_t seed,
                                    bool confident = false) {
  std::filesystem::create_directories(dir);
  {
    std::ofstream out(dir + "/config.json");
    out << config.dump(2);
  }
  const ModelSpec spec = parse_model_spec(config, dir + "/config.json");
  RegistryOptions opt;
  opt.include_mtp = false;
  opt.format = WeightFormat::kDense;
  opt.dense_dtype = DType::kF32;
  const TensorRegistry reg = build_registry(spec, opt);
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<std::vector<float>> data;
  std::vector<TensorToWrite> tensors;
  data.reserve(reg.tensors.size());
  for (const TensorEntry& t : reg.tensors) {
    std::vector<float>& v = data.emplace_back(static_cast<size_t>(t.numel()));
    const int64_t fan_in = t.shape.empty() ? 1 : t.shape.back();
    float scale = 1.0f / std::sqrt(static_cast<float>(fan_in));
    // Decisive routers: softmax logits spread wide; sigmoid scores kept out of saturation (where every
    // score is ~1 and group sums tie).
    if (t.role == Role::kRouter) scale *= spec.router.scoring == ScoringFunc::kSigmoid ? 2.0f : 8.0f;
    if (t.role == Role::kLmHead) scale *= 6.0f;
    if (t.role == Role::kEmbedding) scale = 1.0f;
    const bool norm = t.role == Role::kNorm;
    for (float& x : v) x = norm ? 1.0f + 0.1f * normal(rng) : scale * normal(rng);
    if (t.name.find("e_score_correction_bias") != std::string::npos)
      for (float& x : v) x = 0.01f * normal(rng);
    if (confident && t.role == Role::kEmbedding)
      for (float& x : v) x *= 3.0f;
  }
  if (confident) {
    const std::vector<float>* embed = nullptr;
    for (size_t i = 0; i < reg.tensors.size(); ++i)
      if (reg.tensors[i].role == Role::kEmbedding && !reg.tensors[i].is_mtp) embed = &data[i];
    for (size_t i = 0; i < reg.tensors.size(); ++i) {
      if (reg.tensors[i].role != Role::kLmHead || !embed) continue;
      const int64_t V = reg.tensors[i].shape[0], D = reg.tensors[i].shape[1];
      std::vector<int64_t> inverse(static_cast<size_t>(V));  // pi(t) = (7 t + 3) mod V (V odd or not a multiple of 7)
      for (int64_t c = 0; c < V; ++c) inverse[size_t((7 * c + 3) % V)] = c;
      for (int64_t v = 0; v < V; ++v)
        for (int64_t d = 0; d < D; ++d)
          data[i][size_t(v * D + d)] = (*embed)[size_t(inverse[size_t(v)] * D + d)] / 3.0f;
    }
  }
  for (size_t i = 0; i < reg.tensors.size(); ++i) {
    const TensorEntry& t = reg.tensors[i];
    tensors.push_back({t.name, DType::kF32, t.shape,
                       std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(data[i].data()), data[i].size() * 4)});
  }
  write_safetensors(dir + "/model.safetensors", tensors);
}

}  // namespace moe::testing
