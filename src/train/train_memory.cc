// Closed-form training memory (see train_memory.h), mirroring ParamLayout::build without building it.
#include "train/train_memory.h"

#include <fmt/format.h>

#include <string>
#include <vector>

#include "runtime/process_limits.h"

namespace moe::train {
namespace {

using Num = long double;

Num attention_params(const ModelConfig& c) {
  const Num D = c.d_model, H = c.n_head;
  if (!c.is_mla()) {
    const Num Dh = c.head_dim, Hkv = c.n_kv_head;
    const Num qk_norm = c.qk_norm() == QkNorm::kPerHead     ? 2 * Dh
                        : c.qk_norm() == QkNorm::kFullWidth ? (H + Hkv) * Dh
                                                            : 0;
    return 2 * H * Dh * D + 2 * Hkv * Dh * D + qk_norm;  // q, o; k, v; q_norm, k_norm
  }
  const Num r = c.kv_lora_rank, qk = Num(c.qk_nope_dim) + c.qk_rope_dim, ql = c.q_lora_rank;
  const Num q = c.q_lora_rank > 0 ? ql * D + ql + H * qk * ql : H * qk * D;
  return q + (r + c.qk_rope_dim) * D + r + H * (Num(c.qk_nope_dim) + c.v_head_dim) * r + D * H * c.v_head_dim;
}

// Activations one step keeps per token and layer (f32): norms, q/k/v/o, the router, the K routed
// expert rows (gate, up, activation, output) and the attention probabilities over the sequence.
Num activation_floats_per_token_layer(const TrainOptions& o) {
  const ModelConfig& c = o.model;
  const Num D = c.d_model, H = c.n_head, Dh = c.head_dim, K = Num(c.top_k) + c.n_shared_expert;
  return 12 * D + 4 * H * Dh + 2 * Num(c.n_expert) + 4 * K * c.d_ff_expert + H * Num(o.seq);
}

struct Candidate {
  std::string name;      // "num_hidden_layers = 100000 (--layers)"
  TrainOptions smaller;  // the options with this field at its default
};

std::vector<Candidate> candidates(const TrainOptions& o) {
  const ModelConfig d{};
  const TrainOptions defaults{};
  std::vector<Candidate> out;
  auto add = [&](const char* field, const char* flag, auto value, auto setter) {
    Candidate c{fmt::format("{} = {} ({})", field, value, flag), o};
    setter(c.smaller);
    out.push_back(std::move(c));
  };
  const ModelConfig& m = o.model;
  add("num_hidden_layers", "--layers", m.n_layer, [&](TrainOptions& t) { t.model.n_layer = d.n_layer; });
  add("hidden_size", "--d-model", m.d_model, [&](TrainOptions& t) { t.model.d_model = d.d_model; });
  add("num_attention_heads", "--heads", m.n_head, [&](TrainOptions& t) { t.model.n_head = d.n_head; });
  add("num_key_value_heads", "--kv-heads", m.n_kv_head, [&](TrainOptions& t) { t.model.n_kv_head = d.n_kv_head; });
  add("head_dim", "--head-dim", m.head_dim, [&](TrainOptions& t) { t.model.head_dim = d.head_dim; });
  add("num_experts", "--experts", m.n_expert, [&](TrainOptions& t) { t.model.n_expert = d.n_expert; });
  add("moe_intermediate_size", "--d-ff", m.d_ff_expert, [&](TrainOptions& t) { t.model.d_ff_expert = d.d_ff_expert; });
  add("vocab_size", "config.json", m.vocab, [&](TrainOptions& t) { t.model.vocab = d.vocab; });
  add("kv_lora_rank", "--kv-lora-rank", m.kv_lora_rank,
      [&](TrainOptions& t) { t.model.kv_lora_rank = d.kv_lora_rank; });
  add("q_lora_rank", "--q-lora-rank", m.q_lora_rank, [&](TrainOptions& t) { t.model.q_lora_rank = d.q_lora_rank; });
  add("n_shared_experts", "--shared-experts", m.n_shared_expert,
      [&](TrainOptions& t) { t.model.n_shared_expert = d.n_shared_expert; });
  add("intermediate_size", "--d-ff-dense", m.d_ff_dense, [&](TrainOptions& t) { t.model.d_ff_dense = d.d_ff_dense; });
  add("batch", "--batch", o.batch, [&](TrainOptions& t) { t.batch = defaults.batch; });
  add("seq", "--seq", o.seq, [&](TrainOptions& t) { t.seq = defaults.seq; });
  return out;
}

}  // namespace

long double param_count(const ModelConfig& c) {
  const Num D = c.d_model, E = c.n_expert, F = c.d_ff_expert, L = c.n_layer;
  const Num moe_layers = c.n_moe_layers(), dense_layers = L - moe_layers;
  const Num routed = E * D + E * 3 * F * D + (c.is_mla() ? 3 * F * Num(c.n_shared_expert) * D : 0);
  const Num dense = 3 * Num(c.d_ff_dense) * D;
  return L * (2 * D + attention_params(c)) + moe_layers * routed + dense_layers * dense + 2 * Num(c.vocab) * D + D;
}

long double train_bytes(const TrainOptions& o) {
  const Num tokens = Num(o.batch) * Num(o.seq);
  const Num activations =
      tokens * (Num(o.model.n_layer) * activation_floats_per_token_layer(o) + 3 * Num(o.model.vocab));
  return 4 * (4 * param_count(o.model) + activations);
}

void check_train_fits_in_memory(const TrainOptions& o) {
  const Num need = train_bytes(o);
  const MemoryLimits limits = read_memory_limits();
  const uint64_t usable = usable_memory(limits);
  if (usable == 0 || need <= static_cast<Num>(usable)) return;
  std::string culprit = "the model and batch";
  Num best_ratio = 1;
  for (const Candidate& c : candidates(o)) {
    const Num ratio = need / train_bytes(c.smaller);
    if (ratio > best_ratio) {
      best_ratio = ratio;
      culprit = c.name;
    }
  }
  check_fits_in_memory(
      need, "train",
      fmt::format("{}: training ({:.3g} parameters x 16 bytes for weights, gradients and AdamW moments, "
                  "plus the activations of {} x {} tokens)",
                  culprit, static_cast<double>(param_count(o.model)), o.batch, o.seq));
}

}  // namespace moe::train
