// `moe train`: trains an MoE language model (Qwen3-MoE or DeepSeek-V3 layout) on UTF-8 text, byte level,
// with a choice of load-balancing methods; `moe plot`: draws metrics.jsonl files as SVG.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "io/safetensors.h"
#include "runtime/thread_pool.h"
#include "train/checkpoint.h"
#include "train/plot.h"
#include "train/trainer.h"
#include "util/error.h"

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
};

// The embedded corpus: data/corpus/kjv.txt in the source tree this binary was built from.
std::string default_corpus() {
  const std::string path = std::string(MOE_DATA_DIR) + "/corpus/kjv.txt";
  if (!fs::exists(path)) fail_usage("train", "no --data given and the default corpus {} was not found", path);
  return path;
}

void add_model_flags(CLI::App* t, TrainCli& c) {
  auto& m = c.o.model;
  t->add_option("--config", c.config,
                "Hugging Face config.json (qwen3_moe or deepseek_v3) defining the model; overrides the flags below");
  t->add_option("--layers", m.n_layer, "decoder layers L")->capture_default_str();
  t->add_option("--d-model", m.d_model, "model dim D (hidden_size)")->capture_default_str();
  t->add_option("--heads", m.n_head, "attention heads H")->capture_default_str();
  t->add_option("--kv-heads", m.n_kv_head, "key/value heads Hkv")->capture_default_str();
  t->add_option("--head-dim", m.head_dim, "head dim Dh")->capture_default_str();
  t->add_option("--experts", m.n_expert, "routed experts E")->capture_default_str();
  t->add_option("--top-k", m.top_k, "experts per token K")->capture_default_str();
  t->add_option("--d-ff", m.d_ff_expert, "expert hidden dim F (moe_intermediate_size)")->capture_default_str();
  t->add_option("--max-seq", m.max_seq, "max_position_embeddings")->capture_default_str();
  t->add_option("--rope-theta", m.rope_theta, "RoPE base")->capture_default_str();
  t->add_flag("!--no-norm-topk", m.norm_topk_prob, "do not renormalize the top-k weights (norm_topk_prob false)");
  t->add_option("--arch", c.arch,
                "qwen3-moe (Qwen3MoeForCausalLM) or deepseek-v3 (DeepseekV3ForCausalLM: MLA, sigmoid router with "
                "e_score_correction_bias, shared experts)")
      ->capture_default_str();
  t->add_option("--q-lora-rank", m.q_lora_rank, "deepseek-v3: q_lora_rank (0: q_proj)")->capture_default_str();
  t->add_option("--kv-lora-rank", m.kv_lora_rank, "deepseek-v3: kv_lora_rank")->capture_default_str();
  t->add_option("--qk-nope-dim", m.qk_nope_dim, "deepseek-v3: qk_nope_head_dim")->capture_default_str();
  t->add_option("--qk-rope-dim", m.qk_rope_dim, "deepseek-v3: qk_rope_head_dim")->capture_default_str();
  t->add_option("--v-head-dim", m.v_head_dim, "deepseek-v3: v_head_dim")->capture_default_str();
  t->add_option("--shared-experts", m.n_shared_expert, "deepseek-v3: n_shared_experts (width F each)")
      ->capture_default_str();
  t->add_option("--dense-layers", m.first_dense, "deepseek-v3: first_k_dense_replace (dense first layers)")
      ->capture_default_str();
  t->add_option("--d-ff-dense", m.d_ff_dense, "deepseek-v3: intermediate_size of the dense layers")
      ->capture_default_str();
  t->add_option("--routed-scaling", m.routed_scaling_factor, "deepseek-v3: routed_scaling_factor")
      ->capture_default_str();
}

void add_run_flags(CLI::App* t, TrainCli& c) {
  auto& o = c.o;
  t->add_option("--data", c.data, "UTF-8 text file(s) (default: the embedded corpus data/corpus/kjv.txt)");
  t->add_option("--val-fraction", c.val_fraction, "tail fraction of the text used for validation")
      ->capture_default_str();
  t->add_option("--batch", o.batch, "sequences per step B")->capture_default_str();
  t->add_option("--seq", o.seq, "tokens per sequence S")->capture_default_str();
  t->add_option("--steps", o.steps, "optimizer steps")->capture_default_str();
  t->add_option("--seed", o.seed, "seed for initialization and batches")->capture_default_str();
  t->add_option("--lr", o.adamw.lr, "peak learning rate")->capture_default_str();
  t->add_option("--min-lr-ratio", o.adamw.min_lr_ratio, "cosine floor as a fraction of --lr")->capture_default_str();
  t->add_option("--warmup", o.adamw.warmup_steps, "linear warmup steps")->capture_default_str();
  t->add_option("--weight-decay", o.adamw.weight_decay, "AdamW weight decay (matrices)")->capture_default_str();
  t->add_option("--grad-clip", o.adamw.grad_clip, "max global gradient norm (0: off)")->capture_default_str();
  t->add_option("--aux-loss", o.balance.aux_coef, "Switch/GShard auxiliary loss coefficient")->capture_default_str();
  t->add_option("--seq-aux-loss", o.balance.seq_aux_coef, "sequence-level auxiliary loss coefficient")
      ->capture_default_str();
  t->add_option("--z-loss", o.balance.z_coef, "router z-loss coefficient")->capture_default_str();
  t->add_option("--bias-update", o.balance.bias_rate, "aux-loss-free bias update rate (DeepSeek-V3), 0: off")
      ->capture_default_str();
  t->add_option("--capacity-factor", o.balance.capacity_factor, "expert capacity factor (0: dropless)")
      ->capture_default_str();
  t->add_option("--drop-policy", c.drop_policy, "position|probability (with --capacity-factor)")->capture_default_str();
  t->add_option("--log-every", o.log_every, "metrics line every N steps")->capture_default_str();
  t->add_option("--eval-every", o.eval_every, "validation every N steps (0: at the end)")->capture_default_str();
  t->add_option("--eval-batches", o.eval_batches, "validation batches")->capture_default_str();
  t->add_option("--checkpoint-every", o.checkpoint_every, "checkpoint every N steps (0: at the end)")
      ->capture_default_str();
  t->add_option("--out", o.out_dir, "output folder: checkpoints (HF layout + optimizer) and metrics.jsonl");
  t->add_flag("--resume", o.resume, "continue from --out DIR/latest (exactly the same losses as an uninterrupted run)");
  t->add_option("--stop-after", o.stop_after, "stop after this step (checkpointing it), as if interrupted");
  t->add_flag("!--no-progress", o.progress, "no progress output on stderr");
  t->add_flag("!--no-mfu", o.measure_mfu, "skip the FMA-ceiling measurement (MFU reported as 0)");
}

// Flags of one architecture given with the other would be silently ignored: a usage error instead.
void check_arch_flags(const CLI::App& t, const std::string& arch) {
  const bool v3 = arch == "deepseek-v3";
  const auto& wrong = v3 ? std::vector<std::string>{"--kv-heads", "--head-dim"}
                         : std::vector<std::string>{"--q-lora-rank",  "--kv-lora-rank", "--qk-nope-dim",
                                                    "--qk-rope-dim",  "--v-head-dim",   "--shared-experts",
                                                    "--dense-layers", "--d-ff-dense",   "--routed-scaling"};
  for (const auto& flag : wrong) {
    if (t.count(flag) > 0) fail_usage("train", "{} does not apply to --arch {}", flag, arch);
  }
}

void run_train(TrainCli& c, const GlobalOptions& g) {
  if (c.arch == "deepseek-v3") {
    c.o.model.arch = train::Arch::kDeepseekV3;
    c.o.model.n_kv_head = c.o.model.n_head;  // MLA: per-head keys and values
    c.o.model.head_dim = c.o.model.qk_nope_dim + c.o.model.qk_rope_dim;
  } else if (c.arch != "qwen3-moe") {
    fail_usage("train", "--arch must be qwen3-moe or deepseek-v3, got {}", c.arch);
  }
  if (!c.config.empty()) {
    std::ifstream f(c.config);
    if (!f) fail("train", "{}: cannot open --config", c.config);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(f);
    } catch (const std::exception& e) {
      fail("train", "{}: not valid JSON ({})", c.config, e.what());
    }
    c.o.model = train::ModelConfig::from_hf_json(j, c.config);
  }
  c.o.model.validate();
  if (c.drop_policy == "position") {
    c.o.balance.drop_policy = DropPolicy::kPosition;
  } else if (c.drop_policy == "probability") {
    c.o.balance.drop_policy = DropPolicy::kProbability;
  } else {
    fail_usage("train", "--drop-policy must be position or probability, got {}", c.drop_policy);
  }
  if (c.data.empty()) c.data.push_back(default_corpus());
  const train::TextData data = train::TextData::load(c.data, c.val_fraction, c.o.seq);
  if (c.o.progress) {
    std::fprintf(stderr, "moe train: %lld parameters, %zu train / %zu val bytes, %d threads\n",
                 static_cast<long long>(train::ParamLayout::build(c.o.model).total), data.train.size(), data.val.size(),
                 num_threads());
  }
  const train::TrainResult r = train::train(c.o, data);
  nlohmann::json j;
  j["steps"] = r.last_step;
  j["final_loss"] = r.losses.empty() ? 0.0 : r.losses.back();
  j["final_val_loss"] = r.final_val_loss;
  j["tokens_per_s"] = r.tokens_per_s;
  j["mfu"] = r.mfu;
  j["threads"] = num_threads();
  if (!c.o.out_dir.empty()) j["checkpoint"] = train::resolve_checkpoint(c.o.out_dir);
  if (g.json) {
    std::cout << j.dump() << "\n";
  } else {
    std::cout << fmt::format("trained {} steps: loss {:.4f}, validation {:.4f}, {:.0f} tokens/s, MFU {:.1f}%\n",
                             r.last_step, j["final_loss"].get<double>(), r.final_val_loss, r.tokens_per_s, 100 * r.mfu);
    if (j.contains("checkpoint")) std::cout << "checkpoint: " << j["checkpoint"].get<std::string>() << "\n";
  }
}

}  // namespace

void register_train(CLI::App& app, const GlobalOptions& global) {
  auto cli = std::make_shared<TrainCli>();
  auto* t =
      app.add_subcommand("train", "Train an MoE language model (Qwen3-MoE or DeepSeek-V3 layout, byte level) on text");
  add_model_flags(t, *cli);
  add_run_flags(t, *cli);
  t->callback([cli, t, &global] {
    check_arch_flags(*t, cli->arch);
    run_train(*cli, global);
  });

  auto plot_logs = std::make_shared<std::vector<std::string>>();
  auto plot_out = std::make_shared<std::string>();
  auto* p = app.add_subcommand("plot", "Draw metrics.jsonl files of `moe train` as SVG (loss curves, load heatmaps)");
  p->add_option("logs", *plot_logs, "metrics.jsonl files (or training output folders)")->required();
  p->add_option("--out", *plot_out, "SVG file to write")->required();
  p->callback([plot_logs, plot_out] {
    std::vector<train::PlotRun> runs;
    for (const auto& l : *plot_logs) {
      const bool dir = fs::is_directory(l);
      const fs::path path = dir ? fs::path(l) / "metrics.jsonl" : fs::path(l);
      const std::string label = dir ? fs::path(l).filename().string() : path.parent_path().filename().string();
      runs.push_back({label.empty() ? path.string() : label, path.string()});
    }
    write_file_atomic(*plot_out, train::plot_metrics_svg(runs));
    std::cout << "wrote " << *plot_out << "\n";
  });
}

}  // namespace moe::cli
