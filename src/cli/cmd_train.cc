// `moe train`: trains an MoE language model (Qwen3-MoE, OLMoE, Mixtral or DeepSeek-V3 layout; from
// random weights or, with --init, from an HF checkpoint) on UTF-8 text, byte level,
// with a choice of load-balancing methods; `moe plot`: draws metrics.jsonl files as SVG.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/flags.h"
#include "cli/output.h"
#include "io/paths.h"
#include "io/safetensors.h"
#include "runtime/thread_pool.h"
#include "spec/model_spec.h"
#include "tokenizer/tokenizer.h"
#include "train/checkpoint.h"
#include "train/plot.h"
#include "train/train_memory.h"
#include "train/trainer.h"
#include "util/error.h"
#include "util/json_depth.h"

namespace moe::cli {
namespace {

namespace fs = std::filesystem;

struct TrainCli {
  train::TrainOptions o;
  std::string arch = "qwen3-moe";
  std::vector<std::string> data;
  std::string config;
  double val_fraction = 0.05;
  std::string drop_policy = "position";
  std::vector<std::string> model_flags;  // the flags add_model_flags adds after --config / --init
};

// The embedded corpus: data/corpus/kjv.txt in the source tree this binary was built from.
std::string default_corpus() {
  const std::string path = std::string(MOE_DATA_DIR) + "/corpus/kjv.txt";
  if (!fs::exists(path)) fail_usage("train", "no --data given and the default corpus {} was not found", path);
  return path;
}

constexpr int kMaxDim = train::kMaxTrainWidth;    // widths (D, F, ranks)
constexpr int kMaxCount = train::kMaxTrainCount;  // layers, heads, experts
constexpr int64_t kMaxSteps = 1'000'000'000'000;  // steps and step intervals

void add_model_flags(CLI::App* t, TrainCli& c) {
  auto& m = c.o.model;
  t->add_option("--config", c.config,
                "Hugging Face config.json (qwen3_moe, olmoe, mixtral or deepseek_v3) defining the model; replaces the "
                "flags below");
  t->add_option("--init", c.o.init_dir,
                "Fine-tune: start from this Hugging Face checkpoint folder (its config.json and weights, f32/bf16/f16) "
                "instead of random weights; replaces the model flags below");
  const size_t first_model_flag = t->get_options().size();
  add_number(t, "--layers", m.n_layer, "Decoder layers L", 1, kMaxCount);
  add_number(t, "--d-model", m.d_model, "Model dim D (hidden_size)", 1, kMaxDim);
  add_number(t, "--heads", m.n_head, "Attention heads H", 1, kMaxCount);
  add_number(t, "--kv-heads", m.n_kv_head, "Key/value heads Hkv", 1, kMaxCount);
  add_number(t, "--head-dim", m.head_dim, "Head dim Dh", 1, kMaxCount);
  add_number(t, "--experts", m.n_expert, "Routed experts E", 1, kMaxCount);
  add_number(t, "--experts-per-token", m.top_k, "Experts per token K (num_experts_per_tok)", 1, kMaxCount);
  add_number(t, "--d-ff", m.d_ff_expert, "Expert hidden dim F (moe_intermediate_size)", 1, kMaxDim);
  add_number(t, "--max-seq", m.max_seq, "Max_position_embeddings", 1, train::kMaxTrainTokens);
  add_number_above(t, "--rope-theta", m.rope_theta, "RoPE base", 0.0, 1e12);
  add_off_flag(t, "--no-norm-topk", m.norm_topk_prob, "Do not renormalize the top-k weights (norm_topk_prob false)");
  t->add_option("--arch", c.arch,
                "Qwen3-moe (Qwen3MoeForCausalLM), olmoe (OlmoeForCausalLM: full-width QK-norm), mixtral "
                "(MixtralForCausalLM: no QK-norm) or deepseek-v3 (DeepseekV3ForCausalLM: MLA, sigmoid router with "
                "e_score_correction_bias, shared experts)")
      ->capture_default_str();
  add_number(t, "--q-lora-rank", m.q_lora_rank, "Deepseek-v3: q_lora_rank", 0, kMaxDim, "0 = q_proj");
  add_number(t, "--kv-lora-rank", m.kv_lora_rank, "Deepseek-v3: kv_lora_rank", 1, kMaxDim);
  add_number(t, "--qk-nope-dim", m.qk_nope_dim, "Deepseek-v3: qk_nope_head_dim", 1, kMaxCount);
  add_number(t, "--qk-rope-dim", m.qk_rope_dim, "Deepseek-v3: qk_rope_head_dim", 1, kMaxCount);
  add_number(t, "--v-head-dim", m.v_head_dim, "Deepseek-v3: v_head_dim", 1, kMaxCount);
  add_number(t, "--shared-experts", m.n_shared_expert, "Deepseek-v3: n_shared_experts (width F each)", 0, kMaxCount);
  add_number(t, "--dense-layers", m.first_dense, "Deepseek-v3: first_k_dense_replace (dense first layers)", 0,
             kMaxCount);
  add_number(t, "--d-ff-dense", m.d_ff_dense, "Deepseek-v3: intermediate_size of the dense layers", 1, kMaxDim);
  add_number_above(t, "--routed-scaling", m.routed_scaling_factor, "Deepseek-v3: routed_scaling_factor", 0.0, 1e6);
  // Every flag added above describes the model: --config and --init refuse them (check_arch_flags).
  const auto options = t->get_options();
  for (size_t i = first_model_flag; i < options.size(); ++i) c.model_flags.push_back(options[i]->get_name());
}

void add_run_flags(CLI::App* t, TrainCli& c) {
  auto& o = c.o;
  t->add_option("--data", c.data, "UTF-8 text file(s) (default: the embedded corpus data/corpus/kjv.txt)");
  add_number_above(t, "--val-fraction", c.val_fraction, "Tail fraction of the text used for validation", 0.0, 0.99);
  add_number(t, "--batch", o.batch, "Sequences per step B", int64_t{1}, int64_t{1} << 20);
  add_number(t, "--seq", o.seq, "Tokens per sequence S", int64_t{1}, int64_t{1} << 24);
  add_number(t, "--steps", o.steps, "Optimizer steps (the cosine schedule's length)", int64_t{1}, kMaxSteps);
  t->add_option("--seed", o.seed, "Seed for initialization and batches")
      ->transform(any_number<uint64_t>())
      ->capture_default_str();
  add_number_above(t, "--lr", o.adamw.lr, "Peak learning rate", 0.0, 10.0);
  add_number(t, "--min-lr-ratio", o.adamw.min_lr_ratio, "Cosine floor as a fraction of --lr", 0.0, 1.0);
  add_number(t, "--warmup", o.adamw.warmup_steps, "Linear warmup steps", int64_t{0}, kMaxSteps);
  add_number(t, "--weight-decay", o.adamw.weight_decay, "AdamW weight decay (matrices)", 0.0, 100.0);
  add_number(t, "--grad-clip", o.adamw.grad_clip, "Max global gradient norm", 0.0, 1e12, "0 = off");
  add_number(t, "--aux-loss", o.balance.aux_coef, "Switch/GShard auxiliary loss coefficient", 0.0, 1e6);
  add_number(t, "--seq-aux-loss", o.balance.seq_aux_coef, "Sequence-level auxiliary loss coefficient", 0.0, 1e6);
  add_number(t, "--z-loss", o.balance.z_coef, "Router z-loss coefficient", 0.0, 1e6);
  add_number(t, "--bias-update", o.balance.bias_rate, "Aux-loss-free bias update rate (DeepSeek-V3)", 0.0, 1e6,
             "0 = off");
  add_number(t, "--capacity-factor", o.balance.capacity_factor, "Expert capacity factor", 0.0, 1e6, "0 = dropless");
  t->add_option("--drop-policy", c.drop_policy, "Position|probability (with --capacity-factor)")->capture_default_str();
  add_number(t, "--log-every", o.log_every, "Metrics line every N steps", int64_t{1}, kMaxSteps);
  add_number(t, "--eval-every", o.eval_every, "Validation every N steps", int64_t{0}, kMaxSteps, "0 = at the end");
  add_number(t, "--eval-batches", o.eval_batches, "Validation batches", int64_t{1}, int64_t{1} << 20);
  add_number(t, "--checkpoint-every", o.checkpoint_every, "Checkpoint every N steps", int64_t{0}, kMaxSteps,
             "0 = at the end");
  t->add_option("-o,--out", o.out_dir, "Output folder: checkpoints (HF layout + optimizer) and metrics.jsonl");
  t->add_flag("--resume", o.resume,
              "Continue from --out DIR/latest with the run's settings (exactly the same losses as an uninterrupted "
              "run); a larger --steps extends the run, and the cosine schedule then spans the new --steps, changing "
              "the learning rate from the resume point on");
  t->add_flag("--overwrite", o.overwrite, "Replace the run already in --out (its checkpoints and metrics are deleted)");
  add_number(t, "--stop-after", o.stop_after, "Stop after this step (checkpointing it), as if interrupted", int64_t{0},
             kMaxSteps, "0 = run every step");
  add_off_flag(t, "--no-progress", o.progress, "No progress output on stderr");
  add_off_flag(t, "--no-mfu", o.measure_mfu, "Skip the FMA-ceiling measurement (MFU reported as null)");
}

// Flags of one architecture given with another, or model flags beside --config / --init, would be
// silently ignored: a usage error instead.
void check_arch_flags(const CLI::App& t, const TrainCli& c) {
  if (!c.config.empty() && !c.o.init_dir.empty())
    fail_usage("train", "--config and --init both define the model; --init DIR reads DIR/config.json");
  if (!c.config.empty() || !c.o.init_dir.empty()) {
    for (const auto& flag : c.model_flags)
      if (t.count(flag) > 0)
        fail_usage("train", "{} does not apply with {}: the model comes from its config.json", flag,
                   c.config.empty() ? "--init" : "--config");
    return;
  }
  const bool v3 = c.arch == "deepseek-v3";
  const auto& wrong = v3 ? std::vector<std::string>{"--kv-heads", "--head-dim"}
                         : std::vector<std::string>{"--q-lora-rank",  "--kv-lora-rank", "--qk-nope-dim",
                                                    "--qk-rope-dim",  "--v-head-dim",   "--shared-experts",
                                                    "--dense-layers", "--d-ff-dense",   "--routed-scaling"};
  for (const auto& flag : wrong) {
    if (t.count(flag) > 0) fail_usage("train", "{} does not apply to --arch {}", flag, c.arch);
  }
  if (c.arch == "mixtral" && t.count("--no-norm-topk") > 0)
    fail_usage("train", "--no-norm-topk does not apply to --arch mixtral (its router always renormalizes)");
}

void print_notes(const std::vector<std::string>& notes) {
  for (const std::string& n : notes) std::fprintf(stderr, "moe train: note: %s\n", n.c_str());
}

// The training text: tokenized by the --init checkpoint's own tokenizer when it has one (a real
// model's ids), else as bytes (vocab 256, what `moe train` from scratch uses).
train::TextData load_train_data(const TrainCli& c, const GlobalOptions& g) {
  const std::string what = c.data.size() == 1 ? c.data[0] : c.data[0] + " (+ more)";
  if (!c.o.init_dir.empty() && fs::exists(fs::path(c.o.init_dir) / "tokenizer.json")) {
    const auto tok = load_tokenizer(c.o.init_dir);
    if (!g.json && c.o.progress)
      std::fprintf(stderr, "moe train: tokenizing the data with %s/tokenizer.json\n", c.o.init_dir.c_str());
    return train::TextData::from_tokens(tok->encode(train::TextData::read_files(c.data)), c.val_fraction, c.o.seq,
                                        what);
  }
  return train::TextData::load(c.data, c.val_fraction, c.o.seq);
}

void run_train(TrainCli& c, const GlobalOptions& g) {
  train::ModelConfig& m = c.o.model;
  m.family = train::train_family_from_arch(c.arch);
  if (m.family == Family::kMixtral) m.norm_topk_prob = true;
  if (m.is_mla()) {
    m.n_kv_head = m.n_head;  // MLA: per-head keys and values
    m.head_dim = m.qk_nope_dim + m.qk_rope_dim;
  }
  std::vector<std::string> notes;
  if (!c.config.empty()) {
    require_input_file(c.config, "--config", "train");
    m = train::ModelConfig::from_spec(load_model_spec(c.config), &notes);
  } else if (!c.o.init_dir.empty()) {
    m = train::read_init_config(c.o.init_dir, &notes);
  }
  if (!g.json) print_notes(notes);
  c.o.model.validate();
  train::check_train_fits_in_memory(c.o);
  if (c.drop_policy == "position") {
    c.o.balance.drop_policy = DropPolicy::kPosition;
  } else if (c.drop_policy == "probability") {
    c.o.balance.drop_policy = DropPolicy::kProbability;
  } else {
    fail_usage("train", "--drop-policy must be position or probability, got {}", c.drop_policy);
  }
  if (c.data.empty()) c.data.push_back(default_corpus());
  for (const std::string& d : c.data) require_input_file(d, "--data", "train");
  if (!c.o.out_dir.empty()) {
    std::vector<std::string> inputs = c.data;
    inputs.push_back(c.config);
    inputs.push_back(c.o.init_dir);
    check_output_folder(c.o.out_dir, "--out", inputs, "train");
  }
  const train::TextData data = load_train_data(c, g);
  if (c.o.progress) {
    std::fprintf(stderr, "moe train: %lld parameters, %zu train / %zu val bytes, %d threads\n",
                 static_cast<long long>(train::ParamLayout::build(c.o.model).total), data.train.size(), data.val.size(),
                 num_threads());
  }
  const train::TrainResult r = train::train(c.o, data);
  nlohmann::ordered_json j;
  j["steps"] = r.last_step;
  j["final_loss"] = r.losses.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(r.losses.back());
  j["final_val_loss"] = json_measured(r.final_val_loss, data.val.size() > 0);
  j["tokens_per_s"] = r.tokens_per_s;
  j["mfu"] = json_measured(r.mfu, r.mfu >= 0);
  j["threads"] = num_threads();
  j["out"] = c.o.out_dir.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(c.o.out_dir);
  j["checkpoint"] = c.o.out_dir.empty() ? nlohmann::ordered_json(nullptr)
                                        : nlohmann::ordered_json(train::resolve_checkpoint(c.o.out_dir));
  if (g.json) {
    print_json_report(j);
  } else {
    std::cout << fmt::format("trained {} steps: loss {:.4f}, validation {:.4f}, {:.0f} tokens/s", r.last_step,
                             r.losses.empty() ? 0.0 : r.losses.back(), r.final_val_loss, r.tokens_per_s);
    if (r.mfu >= 0) std::cout << fmt::format(", MFU {:.1f}%", 100 * r.mfu);
    std::cout << "\n";
    if (!j["checkpoint"].is_null()) std::cout << "checkpoint: " << j["checkpoint"].get<std::string>() << "\n";
  }
}

}  // namespace

void register_train(CLI::App& app, const GlobalOptions& global) {
  auto cli = std::make_shared<TrainCli>();
  auto* t = app.add_subcommand(
      "train", "Train or fine-tune an MoE language model (Qwen3-MoE, OLMoE, Mixtral or DeepSeek-V3 layout) on text");
  add_model_flags(t, *cli);
  add_run_flags(t, *cli);
  t->callback([cli, t, &global] {
    check_arch_flags(*t, *cli);
    run_train(*cli, global);
  });

  auto plot_logs = std::make_shared<std::vector<std::string>>();
  auto plot_out = std::make_shared<std::string>();
  auto* p = app.add_subcommand("plot", "Draw metrics.jsonl files of `moe train` as SVG (loss curves, load heatmaps)");
  p->add_option("logs", *plot_logs, "metrics.jsonl files (or training output folders)")->required();
  p->add_option("-o,--out", *plot_out, "SVG file to write")->required();
  p->callback([plot_logs, plot_out, &global] {
    std::vector<train::PlotRun> runs;
    std::vector<std::string> inputs;
    for (const auto& l : *plot_logs) {
      const bool dir = fs::is_directory(l);
      const fs::path path = dir ? fs::path(l) / "metrics.jsonl" : fs::path(l);
      require_input_file(path.string(), "metrics", "plot");
      const std::string label = dir ? fs::path(l).filename().string() : path.parent_path().filename().string();
      runs.push_back({label.empty() ? path.string() : label, path.string()});
      inputs.push_back(path.string());
    }
    check_output_file(*plot_out, "--out", inputs, "plot");
    const train::Plot plot = train::plot_metrics(runs);
    write_file_atomic(*plot_out, plot.svg);
    if (global.json) {
      nlohmann::ordered_json j;
      j["files"] = {{{"path", *plot_out}, {"format", "svg"}, {"bytes", plot.svg.size()}}};
      j["inputs"] = inputs;
      j["panels"] = plot.panels;
      print_json_report(j);
    } else {
      std::cout << "wrote " << *plot_out << "\n";
    }
  });
}

}  // namespace moe::cli
