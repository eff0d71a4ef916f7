// The training loop: batches from byte-level text, forward/backward, clipping, AdamW with
// warmup + cosine, the bias update, validation, metrics as JSON lines (loss, tokens/s, MFU,
// per-layer expert load), a progress bar with ETA, and checkpoints with exact resume.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "train/data.h"
#include "train/model.h"
#include "train/optimizer.h"
#include "train/run_settings.h"  // run_fingerprint

namespace moe::train {

struct TrainOptions {
  ModelConfig model;
  BalanceOptions balance;
  AdamWOptions adamw;
  int64_t batch = 8;             // B sequences per step
  int64_t seq = 64;              // S tokens per sequence
  int64_t steps = 200;           // total optimizer steps
  uint64_t seed = 1;             // initialization and batch sampling
  int64_t log_every = 10;        // metrics line every N steps (and the last)
  int64_t eval_every = 50;       // validation loss every N steps (and the last); 0 = only the last
  int64_t eval_batches = 4;      // validation batches per evaluation
  int64_t checkpoint_every = 0;  // 0 = only at the end
  std::string init_dir;          // start from this HF checkpoint's weights (fine-tuning); empty = random
  std::string out_dir;           // checkpoints and metrics.jsonl; empty = none
  bool resume = false;           // continue from out_dir/latest
  bool overwrite = false;        // out_dir holds another run: delete it instead of refusing
  bool progress = true;          // progress bar on stderr
  bool measure_mfu = true;       // measure the FMA ceiling once for MFU
  int64_t stop_after = 0;        // stop (after checkpointing) at this step; 0 = run all steps
};

struct TrainResult {
  std::vector<double> losses;  // total loss of every step run in this call
  double final_val_loss = 0;
  double tokens_per_s = 0;
  double mfu = 0;  // < 0: not measured (--no-mfu)
  int64_t last_step = 0;
};

// Trains on `data`; metrics go to <out_dir>/metrics.jsonl (when out_dir is set) and `metrics_out`.
TrainResult train(const TrainOptions& options, const TextData& data);

// Training FLOPs per token: 6 x active parameters + attention scores (causal, forward + backward).
double train_flops_per_token(const ModelConfig& c, int64_t seq);

// One metrics line's per-layer load summary from routed counts [E]; a dense layer (no slots) is
// {"dense": true, "load": []}.
nlohmann::json load_summary(const std::vector<int64_t>& routed, int64_t dropped, int64_t slots);

}  // namespace moe::train
