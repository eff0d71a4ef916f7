// Checkpoint writing and loading (see checkpoint.h).
#include "train/checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "io/run_folder.h"
#include "io/safetensors.h"
#include "spec/model_spec.h"
#include "train/run_settings.h"
#include "util/error.h"
#include "util/input_file.h"
#include "util/json_depth.h"

namespace moe::train {
namespace fs = std::filesystem;
namespace {

std::span<const uint8_t> as_bytes(const float* p, int64_t n) {
  return {reinterpret_cast<const uint8_t*>(p), static_cast<size_t>(n) * sizeof(float)};
}

std::string read_text(const std::string& path) { return read_input_file(path, "", "checkpoint"); }

nlohmann::json read_json(const std::string& path) {
  const std::string text = read_text(path);
  try {
    check_json_depth(text, "checkpoint", path);
    return nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    fail("checkpoint", "{}: not valid JSON ({}); the checkpoint is corrupt", path, e.what());
  }
}

uint64_t parse_u64(const std::string& text, const std::string& path, const char* field) {
  size_t used = 0;
  uint64_t v = 0;
  try {
    v = std::stoull(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || text[0] == '-') {
    fail("checkpoint", "{}: {}: expected an unsigned 64-bit integer, found \"{}\"", path, field, text);
  }
  return v;
}

// A resumed run must not start from NaN or infinite weights or moments.
template <typename Vec>
void check_finite(const Vec& values, const std::string& path) {
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      fail("checkpoint", "{}: value {} is {} (not finite); the checkpoint is corrupt", path, i, values[i]);
    }
  }
}

// DeepSeek-V3 exports the learned selection bias as mlp.gate.e_score_correction_bias [E].
std::string correction_bias_name(int layer) {
  return fmt::format("model.layers.{}.mlp.gate.e_score_correction_bias", layer);
}

void write_model_files(const std::string& dir, const TrainModel<float>& model) {
  std::vector<TensorToWrite> ts;
  for (const auto& t : model.layout().tensors)
    ts.push_back({t.name, DType::kF32, t.shape, as_bytes(model.params.data() + t.offset, t.numel)});
  const ModelConfig& c = model.config();
  const bool selection_bias = c.router().use_correction_bias;  // stored by the family (DeepSeek-V3)
  for (int l = 0; selection_bias && l < c.n_layer; ++l) {
    if (c.is_moe_layer(l))
      ts.push_back(
          {correction_bias_name(l), DType::kF32, {c.n_expert}, as_bytes(model.router_bias[l].data(), c.n_expert)});
  }
  write_safetensors(dir + "/model.safetensors", ts, {{"format", "pt"}});
  write_file_atomic(dir + "/config.json", model.config().to_hf_json().dump(2) + "\n");
}

// Copies a float tensor out of `f` after checking its dtype and shape.
void read_tensor(const SafetensorsFile& f, const std::string& name, const std::vector<int64_t>& shape, float* out) {
  if (!f.has(name))
    fail("checkpoint", "{}: tensor {} is missing; the checkpoint does not match the model", f.path(), name);
  const TensorInfo& info = f.info(name);
  if (info.shape != shape) {
    fail("checkpoint", "{}: tensor {} has shape {} but the model needs {}", f.path(), name,
         nlohmann::json(info.shape).dump(), nlohmann::json(shape).dump());
  }
  auto v = f.view<float>(name, DType::kF32);
  std::copy(v.begin(), v.end(), out);
}

}  // namespace

void save_hf_model(const std::string& dir, const TrainModel<float>& model) {
  fs::create_directories(dir);
  write_model_files(dir, model);
}

namespace {

// Every file of one checkpoint into the folder `tmp` (created afresh).
void write_checkpoint_files(const std::string& tmp, const TrainModel<float>& model, const AdamW& opt,
                            const TrainerState& state) {
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  write_model_files(tmp, model);
  // A test hook: die half way through a checkpoint, as a kill would.
  if (const char* crash = std::getenv("MOE_TRAIN_CRASH_IN_CHECKPOINT"); crash && std::atoll(crash) == state.step) {
    _exit(86);
  }
  std::vector<TensorToWrite> ts;
  for (const auto& t : model.layout().tensors) {
    ts.push_back({"exp_avg." + t.name, DType::kF32, t.shape, as_bytes(opt.m.data() + t.offset, t.numel)});
    ts.push_back({"exp_avg_sq." + t.name, DType::kF32, t.shape, as_bytes(opt.v.data() + t.offset, t.numel)});
  }
  for (size_t l = 0; l < model.router_bias.size(); ++l) {
    ts.push_back({fmt::format("router_bias.layers.{}", l),
                  DType::kF32,
                  {static_cast<int64_t>(model.router_bias[l].size())},
                  as_bytes(model.router_bias[l].data(), static_cast<int64_t>(model.router_bias[l].size()))});
  }
  write_safetensors(tmp + "/optimizer.safetensors", ts, {{"adam_step", std::to_string(opt.step)}});
  nlohmann::json st;
  st["format"] = "moe-train-1";
  st["step"] = state.step;
  st["adam_step"] = opt.step;
  for (uint64_t w : state.rng) st["rng"].push_back(std::to_string(w));
  st["run"] = state.run;
  write_file_atomic(tmp + "/trainer_state.json", st.dump(2) + "\n");
}

// Keeps the newest `keep` step folders (and always `current`).
void remove_old_steps(const std::string& out_dir, const std::string& current, int keep) {
  std::vector<std::string> steps;
  for (const auto& e : fs::directory_iterator(out_dir)) {
    const std::string n = e.path().filename().string();
    if (e.is_directory() && n.rfind("step-", 0) == 0) steps.push_back(n);
  }
  std::sort(steps.begin(), steps.end());
  for (size_t i = 0; i + keep < steps.size(); ++i)
    if (steps[i] != current) fs::remove_all(out_dir + "/" + steps[i]);
}

}  // namespace

void save_checkpoint(const std::string& out_dir, const TrainModel<float>& model, const AdamW& opt,
                     const TrainerState& state, int keep) {
  fs::create_directories(out_dir);
  const std::string name = fmt::format("step-{:08d}", state.step);
  const std::string tmp = fmt::format("{}/.tmp-{}-{}", out_dir, name, getpid());
  try {
    write_checkpoint_files(tmp, model, opt, state);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);  // a full disk must not stay full of a half-written checkpoint
    throw;
  }
  const std::string final_dir = out_dir + "/" + name;
  fs::remove_all(final_dir);
  fs::rename(tmp, final_dir);
  write_file_atomic(out_dir + "/latest", name + "\n");
  remove_old_steps(out_dir, name, keep);
}

void prepare_out_dir(const std::string& out_dir, bool resume, bool overwrite) {
  std::error_code ec;
  if (fs::exists(out_dir, ec) && !fs::is_directory(out_dir, ec)) {
    fail_usage("train", "--out {}: is a file; expected a folder for checkpoints and metrics.jsonl", out_dir);
  }
  fs::create_directories(out_dir);
  remove_stale_temporaries(out_dir);
  if (resume) return;
  std::vector<fs::path> run_files;
  for (const auto& e : fs::directory_iterator(out_dir)) {
    const std::string n = e.path().filename().string();
    if (n == "metrics.jsonl" || n == "latest" || (n.rfind("step-", 0) == 0 && e.is_directory())) {
      run_files.push_back(e.path());
    }
  }
  if (run_files.empty()) return;
  if (!overwrite) {
    fail_usage("train",
               "--out {}: holds another run ({}{}); use --resume to continue it, --overwrite to replace it, or another "
               "folder",
               out_dir, run_files.front().filename().string(),
               run_files.size() > 1 ? fmt::format(" and {} more", run_files.size() - 1) : "");
  }
  for (const fs::path& p : run_files) fs::remove_all(p);
}

std::string resolve_checkpoint(const std::string& path) {
  if (fs::exists(path + "/trainer_state.json")) return path;
  if (is_run_folder(path)) {
    const std::string dir = resolve_model_path(path);
    if (!fs::exists(dir + "/trainer_state.json"))
      fail("checkpoint", "{}/latest names {} but {}/trainer_state.json does not exist", path,
           fs::path(dir).filename().string(), dir);
    return dir;
  }
  fail("checkpoint", "{}: not a checkpoint (no trainer_state.json) and no `latest` file in it", path);
}

ModelConfig read_init_config(const std::string& dir, std::vector<std::string>* notes) {
  if (!fs::is_directory(dir)) fail_usage("train", "--init {}: not a folder (expected a Hugging Face checkpoint)", dir);
  return ModelConfig::from_spec(load_model_spec(dir), notes);
}

void load_hf_weights(const std::string& dir, TrainModel<float>& model) {
  const int64_t n_mtp = load_model_spec(dir).n_mtp_layers;  // stored as layers n_layer .. n_layer + n_mtp - 1
  const Checkpoint ck = Checkpoint::open(dir);
  std::set<std::string> used;
  auto read = [&](const std::string& name, const std::vector<int64_t>& shape, float* out) {
    if (!ck.has(name))
      fail("checkpoint", "{}: tensor {} is missing; the checkpoint does not match config.json", dir, name);
    const SafetensorsFile& f = ck.file_of(name);
    const TensorInfo& info = f.info(name);
    if (info.shape != shape)
      fail("checkpoint", "{}: tensor {} has shape {} but config.json implies {}", f.path(), name,
           nlohmann::json(info.shape).dump(), nlohmann::json(shape).dump());
    const std::vector<float> v = f.to_f32(name);  // a non-float dtype is an error naming the tensor
    for (size_t i = 0; i < v.size(); ++i)
      if (!std::isfinite(v[i])) fail("checkpoint", "{}: tensor {} holds a non-finite value at {}", f.path(), name, i);
    std::copy(v.begin(), v.end(), out);
    used.insert(name);
  };
  for (const auto& t : model.layout().tensors) read(t.name, t.shape, model.params.data() + t.offset);
  const ModelConfig& c = model.config();
  const bool selection_bias = c.router().use_correction_bias;  // stored by the family (DeepSeek-V3)
  for (int l = 0; selection_bias && l < c.n_layer; ++l)
    if (c.is_moe_layer(l)) read(correction_bias_name(l), {c.n_expert}, model.router_bias[l].data());
  std::vector<std::string> left;
  for (const std::string& name : ck.tensor_names()) {
    if (used.count(name)) continue;
    int layer = -1;
    if (std::sscanf(name.c_str(), "model.layers.%d.", &layer) == 1 && layer >= c.n_layer && layer < c.n_layer + n_mtp)
      continue;  // the multi-token-prediction layers are not trained
    left.push_back(name);
  }
  if (!left.empty())
    fail("checkpoint", "{}: {} tensor(s) the model has no place for, e.g. {}; the trainer would drop them", dir,
         left.size(), left.front());
}

ModelConfig read_checkpoint_config(const std::string& dir) {
  const std::string path = dir + "/config.json";
  return ModelConfig::from_hf_json(read_json(path), path);
}

void load_checkpoint(const std::string& dir, TrainModel<float>& model, AdamW* opt, TrainerState* state) {
  const ModelConfig cfg = read_checkpoint_config(dir);
  if (!(cfg == model.config())) {
    fail_usage("train", "--resume: {}/config.json describes a different model: {}; resume with the run's model flags",
               dir, model_config_diff(cfg, model.config()));
  }
  const SafetensorsFile mf = SafetensorsFile::open(dir + "/model.safetensors");
  for (const auto& t : model.layout().tensors) read_tensor(mf, t.name, t.shape, model.params.data() + t.offset);
  const ModelConfig& c = model.config();
  const bool selection_bias = c.router().use_correction_bias;  // stored by the family (DeepSeek-V3)
  for (int l = 0; selection_bias && l < c.n_layer; ++l)
    if (c.is_moe_layer(l)) read_tensor(mf, correction_bias_name(l), {c.n_expert}, model.router_bias[l].data());
  if (opt == nullptr && state == nullptr) return;
  const SafetensorsFile of = SafetensorsFile::open(dir + "/optimizer.safetensors");
  for (const auto& t : model.layout().tensors) {
    read_tensor(of, "exp_avg." + t.name, t.shape, opt->m.data() + t.offset);
    read_tensor(of, "exp_avg_sq." + t.name, t.shape, opt->v.data() + t.offset);
  }
  for (size_t l = 0; l < model.router_bias.size(); ++l) {
    read_tensor(of, fmt::format("router_bias.layers.{}", l), {static_cast<int64_t>(model.router_bias[l].size())},
                model.router_bias[l].data());
  }
  const std::string sp = dir + "/trainer_state.json";
  const nlohmann::json st = read_json(sp);
  try {
    if (st.at("format") != "moe-train-1") fail("checkpoint", "{}: unknown format {}", sp, st.at("format").dump());
    state->step = st.at("step").get<int64_t>();
    opt->step = st.at("adam_step").get<int64_t>();
    if (st.at("rng").size() != 4) fail("checkpoint", "{}: rng: expected 4 words, found {}", sp, st.at("rng").dump());
    for (int i = 0; i < 4; ++i) state->rng[i] = parse_u64(st.at("rng").at(i).get<std::string>(), sp, "rng");
    state->run = st.at("run");
  } catch (const nlohmann::json::exception& e) {
    fail("checkpoint", "{}: missing or malformed field ({})", sp, e.what());
  }
  if (state->step < 0 || opt->step != state->step) {
    fail("checkpoint", "{}: step {} and adam_step {} must be equal and >= 0; the checkpoint is corrupt", sp,
         state->step, opt->step);
  }
  check_finite(model.params, dir + "/model.safetensors");
  check_finite(opt->m, dir + "/optimizer.safetensors");
  check_finite(opt->v, dir + "/optimizer.safetensors");
}

}  // namespace moe::train
