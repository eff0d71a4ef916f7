// Next-token choice from a row of logits, in Hugging Face's order: penalties (repetition, then
// OpenAI presence / frequency), greedy at temperature 0, else temperature, top-k, top-p, min-p and
// one draw from a seeded generator whose draws are defined here (mt19937_64, 53-bit uniforms), so
// a seed gives the same tokens on every platform. Log-probabilities of the model's distribution
// (with top alternatives) for --logprobs. docs/GENERATION.md gives the exact semantics.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <unordered_map>
#include <vector>

namespace moe {

struct SamplerOptions {
  float temperature = 0.0f;  // 0: greedy
  int64_t top_k = 0;         // 0: no limit
  float top_p = 1.0f;        // keep the smallest set of most likely tokens whose mass reaches top_p
  uint64_t seed = 0;
  float min_p = 0.0f;  // keep tokens whose probability is at least min_p times the largest; 0: off
  // Hugging Face repetition_penalty over every token of the context (prompt and generated): a
  // positive logit is divided by it, a negative one multiplied. 1: off.
  float repetition_penalty = 1.0f;
  // OpenAI: logit -= presence_penalty * (count > 0) + frequency_penalty * count, counts of the
  // generated tokens. 0: off.
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
};

// Index of the largest logit; the lowest index wins ties. n > 0.
int32_t argmax(const float* logits, int64_t n);

struct TokenLogprob {
  int32_t token = 0;
  double logprob = 0.0;
};

// log softmax(logits)[token] and the top_n most likely tokens (ties: lower id first), of the model's
// own distribution (before penalties and temperature, as the OpenAI API reports them).
struct TokenLogprobs {
  TokenLogprob chosen;
  std::vector<TokenLogprob> top;
};
TokenLogprobs logprobs_of(const float* logits, int64_t n, int32_t token, int64_t top_n);

// Ranks the ids in order (distinct, in [0, vocabulary)) and keeps the k with the largest logits, by
// decreasing logit, the lower id first on ties (-0 ties +0); 0 < k <= order.size(), no NaN. A heap
// when k is small next to the candidates, else a stable radix sort of all of them in O(n) (scratch:
// 16 bytes per candidate), so ranking a whole vocabulary costs about what reading it does.
void rank_tokens(const float* logits, std::vector<int32_t>& order, int64_t k, std::vector<uint32_t>& scratch);

class Sampler {
 public:
  // Throws moe::Error "[sampler] ..." on temperature < 0, top_k < 0, top_p outside (0, 1], min_p
  // outside [0, 1], repetition_penalty <= 0, or a non-finite penalty.
  explicit Sampler(const SamplerOptions& options);
  // Tokens the repetition penalty counts besides the generated ones (the prompt).
  void add_context(std::span<const int32_t> tokens);
  // logits [n]; NaN logits are an error (moe::Error). The chosen token joins the penalties' history.
  int32_t sample(const float* logits, int64_t n);
  const SamplerOptions& options() const { return options_; }

 private:
  double uniform();                              // [0, 1)
  int32_t draw(const float* logits, int64_t n);  // temperature > 0
  void weigh(const float* logits, float mx, bool in_id_order);
  const float* penalized(const float* logits, int64_t n);
  SamplerOptions options_;
  std::mt19937_64 rng_;
  std::unordered_map<int32_t, int64_t> generated_;  // token -> times generated
  std::unordered_map<int32_t, bool> context_;       // every token seen (prompt and generated)
  std::vector<float> work_;
  std::vector<int32_t> order_;
  std::vector<float> probs_;
  std::vector<uint32_t> rank_keys_;
};

}  // namespace moe
