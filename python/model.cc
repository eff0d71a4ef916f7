// moe.Model: a loaded model (a checkpoint folder or a .gguf file, as `moe eval --model` opens it).
// eval() gives the logits `moe eval --logits-out` writes; generate() is an iterator over the text of
// `moe run` (same defaults, sampling, stop ids and strings); trace is the routing of the last eval
// or generation as numpy arrays; report() the activation report of `moe run --json`. The engine
// computes with the GIL released, one forward pass of a model at a time.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "bindings.h"
#include "cli/offload_args.h"
#include "cli/run_common.h"
#include "cli/sampling_args.h"
#include "kernels/ceilings.h"
#include "model/decoder.h"
#include "model/generate.h"
#include "model/generation_config.h"
#include "model/run_report.h"
#include "runtime/thread_pool.h"
#include "runtime/timer.h"
#include "tokenizer/text_stream.h"
#include "tokenizer/tokenizer.h"

namespace moe::python {
namespace {

constexpr int64_t kMaxRunTokens = int64_t{1} << 24;  // `moe run --max-new-tokens / --context`

// What the last eval or finished generation of a model did: its forward rows and their routing.
struct RunRecord {
  bool generation = false;
  std::vector<int32_t> prompt;  // eval: the ids scored
  GenerateResult result;        // eval: prompt_tokens, prefill (its routing) and prefill_seconds only
  GenerateOptions options;      // generation only (callbacks cleared)
  GenerationDefaults defaults;  // generation only
};

class Model {
 public:
  Model(const std::optional<std::string>& path, const std::optional<int>& threads, const cli::OffloadArgs& offload)
      : dir_(cli::resolve_model_dir(path.value_or(""))),
        threads_(threads ? checked("threads", *threads, 1, kMaxThreads) : 0) {
    // --mem-budget / --expert-profile / --kv-type, parsed and checked as the CLI does
    const DecoderOptions options = offload.decoder_options();
    py::gil_scoped_release release;
    use_threads();
    decoder_ = std::make_unique<Decoder>(dir_, options);
    tok_ = cli::find_tokenizer(dir_, decoder_->spec());
  }

  const std::string& dir() const { return dir_; }
  const ModelSpec& spec() const { return decoder_->spec(); }
  const std::shared_ptr<Tokenizer>& tokenizer() const { return tok_; }
  int threads() const { return threads_ > 0 ? threads_ : num_threads(); }

  // The pool size this model asked for (the pool is process-wide); call with the lock held.
  void use_threads() const {
    if (threads_ > 0 && num_threads() != threads_) set_num_threads(threads_);
  }
  std::mutex& mutex() { return mu_; }
  Decoder& decoder() { return *decoder_; }

  const GenerationDefaults& defaults() {
    if (!defaults_) defaults_ = read_generation_defaults(dir_, tok_.get());
    return *defaults_;
  }

  void set_last(std::shared_ptr<const RunRecord> r) {
    std::lock_guard<std::mutex> lock(last_mu_);
    last_ = std::move(r);
  }
  std::shared_ptr<const RunRecord> last() {
    std::lock_guard<std::mutex> lock(last_mu_);
    if (!last_) fail("python", "{}: nothing ran yet: call eval() or run a generate() to its end first", dir_);
    return last_;
  }

 private:
  std::string dir_;
  int threads_ = 0;  // 0: the pool as it is
  std::unique_ptr<Decoder> decoder_;
  std::shared_ptr<Tokenizer> tok_;
  std::optional<GenerationDefaults> defaults_;
  std::mutex mu_;  // one forward pass at a time (the Decoder's scratch is shared)
  std::mutex last_mu_;
  std::shared_ptr<const RunRecord> last_;
};

// logits [T, V] float32 without a copy: the array owns the vector.
py::array_t<float> logits_array(std::vector<float>&& logits, int64_t T, int64_t V) {
  auto* owned = new std::vector<float>(std::move(logits));
  py::capsule owner(owned, [](void* p) { delete static_cast<std::vector<float>*>(p); });
  return py::array_t<float>({T, V}, owned->data(), owner);
}

py::array_t<float> eval(Model& m, const std::vector<int32_t>& ids) {
  EvalResult r;
  auto record = std::make_shared<RunRecord>();
  {
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(m.mutex());
    m.use_threads();
    Timer timer;
    r = evaluate(m.decoder(), ids, &record->result.prefill);
    record->result.prefill_seconds = timer.seconds();
  }
  cli::check_finite_logits(r.logits, m.dir());
  record->prompt = ids;
  record->result.prompt_tokens = static_cast<int64_t>(ids.size());
  m.set_last(record);
  return logits_array(std::move(r.logits), static_cast<int64_t>(ids.size()), m.spec().vocab);
}

// The iterator model.generate() returns: each step yields moe.Piece(text, ids), the text that
// became complete (UTF-8, stop strings cut) and the ids chosen in that step.
class GenerationIter {
 public:
  GenerationIter(std::shared_ptr<Model> model, std::vector<int32_t> prompt, GenerateOptions options)
      : model_(std::move(model)), prompt_(std::move(prompt)) {
    const ModelSpec& spec = model_->spec();
    text_ = std::make_unique<TextStream>(model_->tokenizer().get(), spec.vocab);
    options.text = text_.get();
    options.on_text = [this](std::string_view piece) { pending_text_.append(piece); };
    options_ = options;
    gen_ = std::make_unique<DecoderGeneration>(model_->decoder(), prompt_, options,
                                               [this](int32_t token) { pending_ids_.push_back(token); });
  }
  GenerationIter(const GenerationIter&) = delete;
  GenerationIter& operator=(const GenerationIter&) = delete;

  py::object next() {
    if (finished_) throw py::stop_iteration();
    std::optional<GenerateResult> result;
    try {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(model_->mutex());
      model_->use_threads();
      if (!gen_->next()) result = gen_->finish();  // finish() may add the held text to pending_text_
    } catch (...) {
      finished_ = true;
      throw;
    }
    if (result) finish(std::move(*result));
    if (pending_text_.empty() && pending_ids_.empty()) throw py::stop_iteration();
    py::object piece = py::module_::import("moe").attr("Piece")(to_str(pending_text_), py::cast(pending_ids_));
    pending_text_.clear();
    pending_ids_.clear();
    return piece;
  }

  py::str text() const { return to_str(record_ ? record_->result.text : gen_->partial().text); }
  std::vector<int32_t> tokens() const { return record_ ? record_->result.tokens : gen_->partial().tokens; }
  std::optional<std::string> finish_reason() const {
    if (!record_) return std::nullopt;
    return finish_reason_name(record_->result.finish_reason);
  }
  const std::vector<int32_t>& prompt_ids() const { return prompt_; }

 private:
  void finish(GenerateResult&& result) {
    auto record = std::make_shared<RunRecord>();
    record->generation = true;
    record->prompt = prompt_;
    record->result = std::move(result);
    record->options = options_;
    record->options.text = nullptr;
    record->options.on_text = nullptr;
    record->defaults = model_->defaults();
    record_ = record;
    finished_ = true;
    gen_.reset();
    model_->set_last(record_);
  }

  std::shared_ptr<Model> model_;
  std::vector<int32_t> prompt_;
  std::unique_ptr<TextStream> text_;
  GenerateOptions options_;
  std::unique_ptr<DecoderGeneration> gen_;
  std::string pending_text_;
  std::vector<int32_t> pending_ids_;
  bool finished_ = false;
  std::shared_ptr<const RunRecord> record_;
};

std::unique_ptr<GenerationIter> generate(const std::shared_ptr<Model>& m,
                                         const std::variant<std::string, std::vector<int32_t>>& prompt,
                                         int64_t max_new_tokens, std::optional<float> temperature,
                                         std::optional<int64_t> top_k, std::optional<float> top_p,
                                         std::optional<float> min_p, std::optional<float> repetition_penalty,
                                         std::optional<float> presence_penalty, std::optional<float> frequency_penalty,
                                         uint64_t seed, const std::variant<std::string, std::vector<std::string>>& stop,
                                         const std::vector<int32_t>& stop_ids, bool ignore_eos, int64_t logprobs,
                                         int64_t context) {
  checked("max_new_tokens", max_new_tokens, int64_t{0}, kMaxRunTokens);
  checked("context", context, int64_t{0}, kMaxRunTokens);
  checked("logprobs", logprobs, int64_t{-1}, int64_t{20});
  std::vector<int32_t> ids;
  if (const auto* text = std::get_if<std::string>(&prompt)) {
    ids = cli::prompt_text_ids(m->dir(), m->spec(), m->tokenizer().get(), *text);
  } else {
    ids = std::get<std::vector<int32_t>>(prompt);
  }
  std::vector<std::string> stops;
  if (const auto* one = std::get_if<std::string>(&stop)) {
    if (!one->empty()) stops.push_back(*one);
  } else {
    stops = std::get<std::vector<std::string>>(stop);
  }
  cli::SamplingOverrides given;
  given.temperature = temperature;
  given.top_k = top_k;
  given.top_p = top_p;
  given.min_p = min_p;
  given.repetition_penalty = repetition_penalty;
  given.presence_penalty = presence_penalty;
  given.frequency_penalty = frequency_penalty;
  given.seed = seed;
  GenerateOptions options = cli::run_generate_options(given, m->defaults(), stop_ids, std::move(stops), ignore_eos,
                                                      logprobs, max_new_tokens, context);
  return std::make_unique<GenerationIter>(m, std::move(ids), std::move(options));
}

// moe.Trace(layers, tokens, expert_ids, weights): the routing of every forward row of the last run.
py::object trace(Model& m) {
  const std::shared_ptr<const RunRecord> r = m.last();
  const GenerateResult& g = r->result;
  std::vector<const ForwardStats*> steps{&g.prefill};
  for (const ForwardStats& s : g.decode) steps.push_back(&s);
  // The rows fed: the prompt, then each generated token that was fed back (all but the last).
  std::vector<int32_t> tokens = r->prompt;
  tokens.insert(tokens.end(), g.tokens.begin(), g.tokens.begin() + static_cast<std::ptrdiff_t>(g.decode.size()));
  const int64_t T = static_cast<int64_t>(tokens.size());
  std::vector<int32_t> layers;
  int64_t K = 0;
  const int64_t prefill_rows = static_cast<int64_t>(r->prompt.size());
  for (size_t li = 0; li < g.prefill.expert_ids.size(); ++li) {
    if (g.prefill.expert_ids[li].empty()) continue;  // a dense layer
    layers.push_back(static_cast<int32_t>(li));
    K = std::max<int64_t>(K, static_cast<int64_t>(g.prefill.expert_ids[li].size()) / prefill_rows);
  }
  const int64_t L = static_cast<int64_t>(layers.size());
  py::array_t<int32_t> ids({L, T, K});
  py::array_t<float> weights({L, T, K});
  auto id = ids.mutable_unchecked<3>();
  auto w = weights.mutable_unchecked<3>();
  for (int64_t l = 0; l < L; ++l) {
    int64_t row = 0;
    for (const ForwardStats* s : steps) {
      const auto& e = s->expert_ids[static_cast<size_t>(layers[l])];
      const auto& p = s->expert_weights[static_cast<size_t>(layers[l])];
      const int64_t rows = s == &g.prefill ? prefill_rows : 1;
      const int64_t k = rows > 0 ? static_cast<int64_t>(e.size()) / rows : 0;
      for (int64_t t = 0; t < rows; ++t, ++row) {
        for (int64_t j = 0; j < K; ++j) {  // a layer of fewer experts per token: -1 and weight 0 after its k
          id(l, row, j) = j < k ? e[static_cast<size_t>(t * k + j)] : -1;
          w(l, row, j) = j < k && !p.empty() ? p[static_cast<size_t>(t * k + j)] : 0.0f;
        }
      }
    }
  }
  return py::module_::import("moe").attr("Trace")(py::cast(layers), py::cast(tokens), ids, weights);
}

py::object report(Model& m, bool ceiling) {
  const std::shared_ptr<const RunRecord> r = m.last();
  double read_gbps = 0;
  if (ceiling) {
    py::gil_scoped_release release;
    read_gbps = cli::read_ceiling_for_run();  // measured once per boot (cli/run_common.h)
  }
  const RunReport report = cli::report_of_generation(r->result, m.spec(), m.dir(), read_gbps);
  if (!r->generation) return to_python(nlohmann::ordered_json::parse(run_report_json(report)));
  return to_python(
      cli::run_json(r->result, r->prompt, r->options, r->defaults, m.tokenizer().get(), m.spec().vocab, report));
}

}  // namespace

void register_model(py::module_& m) {
  py::module_ collections = py::module_::import("collections");
  m.attr("Piece") = collections.attr("namedtuple")("Piece", std::vector<std::string>{"text", "ids"});
  m.attr("Piece").attr("__module__") = "moe";
  m.attr("Trace") =
      collections.attr("namedtuple")("Trace", std::vector<std::string>{"layers", "tokens", "expert_ids", "weights"});
  m.attr("Trace").attr("__module__") = "moe";

  py::class_<GenerationIter>(m, "Generation", "The iterator Model.generate returns; yields moe.Piece(text, ids).")
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__", &GenerationIter::next)
      .def_property_readonly("text", &GenerationIter::text, "The generated text so far (stop strings cut).")
      .def_property_readonly("tokens", &GenerationIter::tokens, "The generated ids so far (a stop id included).")
      .def_property_readonly("prompt_ids", &GenerationIter::prompt_ids)
      .def_property_readonly("finish_reason", &GenerationIter::finish_reason,
                             "'length' or 'stop' once it has ended, else None.");

  py::class_<Model, std::shared_ptr<Model>>(m, "Model", R"(A model: a checkpoint folder (config.json +
safetensors) or a .gguf file, loaded as `moe eval --model PATH` loads it; None: the embedded default.
threads sets the process-wide worker pool to that size whenever this model computes; mem_budget
(bytes or "12G") keeps the routed experts in the file and reads them into a cache, as --mem-budget;
kv_type ("auto", "f32", "f16", "bf16") the KV cache's rows, as --kv-type.)")
      .def(py::init([](const py::object& path, const std::optional<int>& threads, const py::object& mem_budget,
                       const std::optional<std::string>& expert_profile, const std::string& kv_type) {
             cli::OffloadArgs offload;  // mem_budget: bytes (int) or a size string ("12G"), as --mem-budget
             if (!mem_budget.is_none())
               offload.mem_budget = py::isinstance<py::int_>(mem_budget) ? std::to_string(mem_budget.cast<uint64_t>())
                                                                         : mem_budget.cast<std::string>();
             offload.expert_profile = expert_profile.value_or("");
             offload.kv_type = kv_type;
             return std::make_shared<Model>(path_arg(path), threads, offload);
           }),
           py::arg("path") = py::none(), py::kw_only(), py::arg("threads") = py::none(),
           py::arg("mem_budget") = py::none(), py::arg("expert_profile") = py::none(), py::arg("kv_type") = "auto")
      .def(
          "offload", [](Model& m) -> py::object { return to_python(cli::offload_json(m.decoder(), 0)); },
          "With mem_budget: the expert cache's report (the `offload` key of `moe run --json`), else None.")
      .def("eval", &eval, py::arg("ids"),
           "Logits [T, V] float32 of every position of ids (`moe eval --ids ... --logits-out F`).")
      .def("generate", &generate, py::arg("prompt"), py::kw_only(), py::arg("max_new_tokens") = int64_t{64},
           py::arg("temperature") = py::none(), py::arg("top_k") = py::none(), py::arg("top_p") = py::none(),
           py::arg("min_p") = py::none(), py::arg("repetition_penalty") = py::none(),
           py::arg("presence_penalty") = py::none(), py::arg("frequency_penalty") = py::none(),
           py::arg("seed") = uint64_t{0}, py::arg("stop") = std::vector<std::string>{},
           py::arg("stop_ids") = std::vector<int32_t>{}, py::arg("ignore_eos") = false,
           py::arg("logprobs") = int64_t{-1}, py::arg("context") = int64_t{0},
           R"(Generates as `moe run` does (prompt: text or a list of ids); an iterator of moe.Piece(text, ids).
Sampling keywords left None take the model's generation_config.json defaults, as unset flags do.)")
      .def_property_readonly("trace", &trace,
                             "moe.Trace(layers, tokens, expert_ids, weights) of the last eval or finished generation: "
                             "expert_ids int32 and weights float32, both [MoE layers, tokens, k].")
      .def("report", &report, py::kw_only(), py::arg("ceiling") = false,
           "The activation report of the last run as a dict (`moe run --json`; after eval, the report's keys); "
           "ceiling=True measures the read bandwidth for the roofline.")
      .def_property_readonly("path", &Model::dir)
      .def_property_readonly("tokenizer", &Model::tokenizer, "The model's moe.Tokenizer, or None (byte-level model).")
      .def_property_readonly("threads", &Model::threads)
      .def_property_readonly("vocab_size", [](const Model& m) { return m.spec().vocab; })
      .def_property_readonly("n_layer", [](const Model& m) { return m.spec().n_layer; })
      .def_property_readonly("n_expert", [](const Model& m) { return m.spec().n_expert; })
      .def_property_readonly("top_k", [](const Model& m) { return m.spec().n_expert_used; })
      .def("__repr__", [](const Model& m) { return "<moe.Model " + m.dir() + ">"; });
}

}  // namespace moe::python
