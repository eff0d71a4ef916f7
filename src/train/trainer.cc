// The training loop (see trainer.h).
#include "train/trainer.h"

#include <time.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>

#include "io/safetensors.h"
#include "kernels/ceilings.h"
#include "runtime/thread_pool.h"
#include "runtime/timer.h"
#include "train/checkpoint.h"
#include "train/run_settings.h"
#include "train/train_memory.h"
#include "util/error.h"

namespace moe::train {

double train_flops_per_token(const ModelConfig& c, int64_t seq) {
  const double attn = 6.0 * c.n_layer * static_cast<double>(seq) * c.n_head * c.head_dim;  // QK^T and PV, causal
  return 6.0 * static_cast<double>(active_params_per_token(c)) - 6.0 * c.d_model + attn;   // embedding is a lookup
}

nlohmann::json load_summary(const std::vector<int64_t>& routed, int64_t dropped, int64_t slots) {
  if (slots == 0) {  // a dense layer (DeepSeek-V3's first_k_dense_replace): nothing was routed
    nlohmann::json j;
    j["dense"] = true;
    j["load"] = nlohmann::json::array();
    return j;
  }
  const double n = static_cast<double>(routed.size());
  double mean = 0, mx = 0;
  int dead = 0;
  for (int64_t r : routed) {
    mean += static_cast<double>(r) / n;
    mx = std::max(mx, static_cast<double>(r));
    dead += r == 0;
  }
  double var = 0;
  for (int64_t r : routed) var += (r - mean) * (r - mean) / n;
  nlohmann::json j;
  nlohmann::json load = nlohmann::json::array();
  for (int64_t r : routed) load.push_back(slots > 0 ? static_cast<double>(r) / static_cast<double>(slots) : 0.0);
  j["load"] = load;  // fraction of slots per expert (sums to 1)
  j["max_over_mean"] = mean > 0 ? mx / mean : 0.0;
  j["cv"] = mean > 0 ? std::sqrt(var) / mean : 0.0;
  j["dead"] = dead;
  j["dropped_rate"] = slots > 0 ? static_cast<double>(dropped) / static_cast<double>(slots) : 0.0;
  return j;
}

namespace {

// CPU seconds used by all threads of the process (per-CPU-second throughput on a shared machine).
double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

void progress_bar(int64_t step, int64_t total, double loss, double tok_s, double eta_s) {
  const int width = 30;
  const int fill = static_cast<int>(width * step / std::max<int64_t>(1, total));
  std::string bar(fill, '#');
  bar.resize(width, '.');
  const int eta = static_cast<int>(eta_s + 0.5);
  std::fprintf(stderr, "\r[%s] %lld/%lld loss %.4f %.0f tok/s ETA %dm%02ds ", bar.c_str(), static_cast<long long>(step),
               static_cast<long long>(total), loss, tok_s, eta / 60, eta % 60);
  std::fflush(stderr);
}

double evaluate(TrainModel<float>& model, const TextData& data, const TrainOptions& o) {
  double sum = 0;
  for (int64_t i = 0; i < o.eval_batches; ++i) {
    const Batch b = val_batch(data.val, o.batch, o.seq, i, o.eval_batches);
    sum += model.eval_loss(b.tokens.data(), b.targets.data(), o.batch, o.seq);
  }
  return sum / static_cast<double>(o.eval_batches);
}

// Keeps only metrics lines of steps <= `step` (a resumed run rewrites what follows).
void truncate_metrics(const std::string& path, int64_t step) {
  std::ifstream in(path);
  std::string line, kept;
  while (std::getline(in, line)) {
    try {
      if (nlohmann::json::parse(line).value("step", int64_t{0}) <= step) kept += line + "\n";
    } catch (const std::exception&) {
      break;  // a torn last line from a kill
    }
  }
  write_file_atomic(path, kept);
}

struct LoadWindow {
  std::vector<std::vector<int64_t>> routed;  // [L][E] since the last log
  std::vector<int64_t> dropped, slots;
  void reset(int layers, int experts) {
    routed.assign(layers, std::vector<int64_t>(experts, 0));
    dropped.assign(layers, 0);
    slots.assign(layers, 0);
  }
  void add(const std::vector<LayerLoad>& loads) {
    for (size_t l = 0; l < loads.size(); ++l) {
      for (size_t e = 0; e < loads[l].routed.size(); ++e) routed[l][e] += loads[l].routed[e];
      dropped[l] += loads[l].dropped;
      slots[l] += loads[l].slots;
    }
  }
};

// A NaN or infinite loss or gradient: stop before the optimizer or a checkpoint sees it, so the
// last checkpoint written stays the last good one.
[[noreturn]] void stop_on_non_finite(const TrainOptions& o, int64_t step, double loss, double gnorm) {
  std::string kept = "no checkpoint was written (no --out)";
  if (!o.out_dir.empty()) {
    std::error_code ec;
    kept = std::filesystem::exists(o.out_dir + "/latest", ec)
               ? fmt::format("the last good checkpoint is {} (continue with --resume, e.g. with a lower --lr)",
                             resolve_checkpoint(o.out_dir))
               : fmt::format("no checkpoint had been written to {} yet", o.out_dir);
  }
  fail("train", "step {}: the {} is {} (not finite); training stopped before updating the weights; {}", step,
       std::isfinite(loss) ? "gradient norm" : "loss", std::isfinite(loss) ? gnorm : loss, kept);
}

}  // namespace

namespace {

// Settings and data the run cannot start with: usage errors naming the flag.
void check_run(const TrainOptions& o, const TextData& data) {
  if (o.batch <= 0 || o.seq <= 0 || o.steps <= 0) fail_usage("train", "--batch, --seq and --steps must be > 0");
  if (o.seq > o.model.max_seq)
    fail_usage("train", "--seq {} exceeds max_position_embeddings {}", o.seq, o.model.max_seq);
  o.model.validate();
  for (const auto* split : {&data.train, &data.val})
    for (int32_t id : *split)
      if (id < 0 || id >= o.model.vocab)
        fail_usage("train", "the training data holds token id {}, outside the model's vocab_size {}", id,
                   o.model.vocab);
  check_train_fits_in_memory(o);
  if (o.resume && o.out_dir.empty())
    fail_usage("train", "--resume needs --out DIR (the folder holding the checkpoints)");
}

// A resumed run: the checkpoint's weights, moments and data position, the settings checked, the
// metrics after it dropped. Returns the step to continue from.
int64_t resume_run(const TrainOptions& o, TrainModel<float>& model, AdamW& opt, Rng& rng,
                   const std::string& metrics_path) {
  const std::string dir = resolve_checkpoint(o.out_dir);
  TrainerState st;
  load_checkpoint(dir, model, &opt, &st);
  const int64_t run_steps = check_resume_settings(st.run, st.step, o, dir);
  if (run_steps != o.steps && o.progress) {
    std::fprintf(stderr,
                 "moe train: extending the run from --steps %lld to %lld: the cosine learning-rate schedule now "
                 "spans %lld steps, so from step %lld on it differs from the original run's\n",
                 static_cast<long long>(run_steps), static_cast<long long>(o.steps), static_cast<long long>(o.steps),
                 static_cast<long long>(st.step));
  }
  rng.set_state(st.rng);
  if (std::filesystem::exists(metrics_path)) truncate_metrics(metrics_path, st.step);
  return st.step;
}

// The metrics lines: throughput, MFU, losses and expert load of the steps since the last line.
class MetricsLog {
 public:
  MetricsLog(const TrainOptions& o, const std::string& path)
      : o_(o), flops_tok_(train_flops_per_token(o.model, o.seq)) {
    if (!path.empty()) out_.open(path, std::ios::app);
    if (o.measure_mfu) peak_gflops_ = measure_quick_ceilings(3).fma_f32_gflops;
    win_.reset(o.model.n_layer, o.model.n_expert);
    cpu_ = process_cpu_seconds();
  }

  void count_step(const TrainModel<float>& model) {
    win_.add(model.layer_loads());
    tokens_ += o_.batch * o_.seq;
  }

  // Writes the line of step `done` (validation when due) and starts a new window.
  nlohmann::json write(int64_t done, const LossParts& loss, double lr, double gnorm, TrainModel<float>& model,
                       const TextData& data, TrainResult& res) {
    const double tok_s = tokens_ / std::max(timer_.seconds(), 1e-9);
    nlohmann::json j;
    j["step"] = done;
    j["loss"] = loss.total;
    j["ce"] = loss.ce;
    j["aux"] = loss.aux;
    j["seq_aux"] = loss.seq_aux;
    j["z"] = loss.z;
    j["lr"] = lr;
    j["grad_norm"] = gnorm;
    j["tokens_per_s"] = tok_s;
    j["tokens_per_cpu_s"] = tokens_ / std::max(process_cpu_seconds() - cpu_, 1e-9);  // all threads' CPU time
    // null when the FMA ceiling was not measured (--no-mfu)
    j["mfu"] = peak_gflops_ > 0 ? nlohmann::json(tok_s * flops_tok_ / (peak_gflops_ * 1e9)) : nlohmann::json(nullptr);
    if ((o_.eval_every > 0 && done % o_.eval_every == 0) || done == o_.steps) {
      res.final_val_loss = evaluate(model, data, o_);
      j["val_loss"] = res.final_val_loss;
    }
    for (int l = 0; l < o_.model.n_layer; ++l)
      j["layers"].push_back(load_summary(win_.routed[l], win_.dropped[l], win_.slots[l]));
    if (out_.is_open()) out_ << j.dump() << "\n" << std::flush;
    res.tokens_per_s = tok_s;
    res.mfu = peak_gflops_ > 0 ? j["mfu"].get<double>() : -1.0;
    win_.reset(o_.model.n_layer, o_.model.n_expert);
    tokens_ = 0;
    timer_.reset();
    cpu_ = process_cpu_seconds();
    return j;
  }

 private:
  const TrainOptions& o_;
  const double flops_tok_;
  double peak_gflops_ = 0;
  std::ofstream out_;
  LoadWindow win_;
  Timer timer_;
  double cpu_ = 0;
  int64_t tokens_ = 0;
};

// The progress output on stderr: a bar with ETA on a terminal, a line per metrics line otherwise.
void report_progress(const TrainOptions& o, bool tty, const nlohmann::json* line, int64_t done, int64_t start,
                     int64_t end, double ce, const Timer& run_timer) {
  if (!o.progress) return;
  if (tty) {
    const double per_step = run_timer.seconds() / static_cast<double>(done - start);
    progress_bar(done, o.steps, ce, (done - start) * o.batch * o.seq / std::max(run_timer.seconds(), 1e-9),
                 per_step * static_cast<double>(end - done));
  } else if (line) {
    const auto& j = *line;
    std::fprintf(stderr, "step %lld/%lld loss %.4f%s %.0f tok/s\n", static_cast<long long>(done),
                 static_cast<long long>(o.steps), ce,
                 j.contains("val_loss") ? fmt::format(" val {:.4f}", j["val_loss"].get<double>()).c_str() : "",
                 j["tokens_per_s"].get<double>());
  }
}

}  // namespace

TrainResult train(const TrainOptions& o, const TextData& data) {
  check_run(o, data);
  if (!o.out_dir.empty()) prepare_out_dir(o.out_dir, o.resume, o.overwrite);
#ifdef __GLIBC__
  // Each step allocates its gradient buffers (up to a few MB) afresh. Keep them on the heap:
  // glibc's default maps every block over 128 KiB anew and unmaps it on free, and those page
  // faults cost more than a step's expert GEMMs (measured: backward 75 -> 29 ms per step).
  mallopt(M_MMAP_THRESHOLD, 16 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
  TrainModel<float> model(o.model, o.balance);
  model.init_params(o.seed);
  if (!o.init_dir.empty() && !o.resume) load_hf_weights(o.init_dir, model);  // a resumed run loads its checkpoint
  AdamW opt(model.layout().total);
  AdamWOptions aw = o.adamw;
  if (aw.total_steps == 0) aw.total_steps = o.steps;
  Rng rng(o.seed ^ 0x5eedba7c4ull);
  const std::string metrics_path = o.out_dir.empty() ? "" : o.out_dir + "/metrics.jsonl";
  const int64_t start = o.resume ? resume_run(o, model, opt, rng, metrics_path) : 0;
  if (!o.resume && !o.out_dir.empty()) write_file_atomic(metrics_path, "");
  MetricsLog log(o, metrics_path);
  const int64_t end = o.stop_after > 0 ? std::min(o.stop_after, o.steps) : o.steps;
  TrainResult res;
  Timer run_timer;
  const bool tty = o.progress && isatty(2);
  for (int64_t step = start; step < end; ++step) {
    const Batch b = sample_batch(data.train, o.batch, o.seq, rng);
    // A test hook: poison one weight before this step, as a diverging run would (the NaN stop's tests).
    if (const char* p = std::getenv("MOE_TRAIN_POISON_STEP"); p && std::atoll(p) == step + 1) {
      model.params[static_cast<size_t>(model.layout().final_norm)] = std::numeric_limits<float>::quiet_NaN();
    }
    const LossParts loss = model.forward(b.tokens.data(), b.targets.data(), o.batch, o.seq);
    model.zero_grad();
    model.backward();
    const double gnorm = grad_norm(model.grads);
    if (!std::isfinite(loss.total) || !std::isfinite(gnorm)) stop_on_non_finite(o, step + 1, loss.total, gnorm);
    const double lr = learning_rate(aw, step);
    opt.update(model.params, model.grads, model.layout(), aw, lr, clip_coefficient(gnorm, aw.grad_clip));
    if (o.balance.bias_rate > 0) model.update_router_bias(o.balance.bias_rate);
    log.count_step(model);
    res.losses.push_back(loss.total);
    const int64_t done = step + 1;
    nlohmann::json line;
    const bool log_now = done % o.log_every == 0 || done == o.steps || done == end;
    if (log_now) line = log.write(done, loss, lr, gnorm, model, data, res);
    report_progress(o, tty, log_now ? &line : nullptr, done, start, end, loss.ce, run_timer);
    const bool ckpt = !o.out_dir.empty() && ((o.checkpoint_every > 0 && done % o.checkpoint_every == 0) || done == end);
    if (ckpt) save_checkpoint(o.out_dir, model, opt, TrainerState{done, rng.state(), run_fingerprint(o)});
    res.last_step = done;
  }
  if (tty) std::fprintf(stderr, "\n");
  return res;
}

}  // namespace moe::train
