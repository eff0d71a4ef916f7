// Pieces shared by `moe run`, `moe eval` and `moe bench model`: resolving the model folder,
// reading token ids and text, and the always-on weight bytes of a checkpoint.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/command.h"
#include "cli/offload_args.h"
#include "kernels/ceilings.h"
#include "model/decoder.h"
#include "model/generate.h"
#include "model/generation_config.h"
#include "model/run_report.h"
#include "parallel/ep_decoder.h"
#include "parallel/ep_setup.h"
#include "tokenizer/ids.h"
#include "tokenizer/tokenizer.h"

namespace CLI {
class App;
}

namespace moe::cli {

// --ep R and --ep-placement on a model-running command.
void add_ep_options(CLI::App* command, parallel::EpArgs& args);

// The Decoder of `moe run|eval` on this rank. With --ep R > 1 (under mpirun) each rank loads only
// its routed experts and runs them expert-parallel; `ep.is_root()` says whether this rank prints.
struct RankedModel {
  parallel::EpContext ep;
  std::unique_ptr<parallel::EpDecoderHook> hook;  // null for one process
  std::unique_ptr<Decoder> decoder;
  bool is_root() const { return ep.is_root(); }
  bool multi_rank() const { return ep.comm->size() > 1; }
};

// Checks --ep, then loads the model; `then` (reading the inputs) runs after the load. On several
// ranks both run collectively: a rank that fails makes every rank fail with its message.
// memory: --mem-budget and its options (one process only) and --kv-type. global: shows the loading
// progress (a terminal without --json only).
RankedModel load_ranked_model(const std::string& model_dir, const parallel::EpArgs& args,
                              const std::function<void(const Decoder&)>& then, const OffloadArgs& memory = {},
                              const GlobalOptions* global = nullptr);

// --model, or the embedded default model when empty.
std::string resolve_model_dir(const std::string& model);
// --ids-file through parse_ids (tokenizer/ids.h).
std::vector<int32_t> read_ids_file(const std::string& path);
// The model folder's tokenizer, or null for a byte-level (vocab 256) model without one.
std::unique_ptr<Tokenizer> find_tokenizer(const std::string& model_dir, const ModelSpec& spec);
std::vector<int32_t> encode_text(const Tokenizer* tok, const std::string& text);
// A text prompt's ids as `moe run --prompt` encodes them: the tokenizer's encode_prompt (BOS as its
// config says), bytes for a vocab-256 model without one; an error when the model has no tokenizer.
std::vector<int32_t> prompt_text_ids(const std::string& model_dir, const ModelSpec& spec, const Tokenizer* tok,
                                     const std::string& text);
// Text of ids: the tokenizer's decode, bytes for a vocab-256 model, else "<id>" per token.
std::string decode_ids(const Tokenizer* tok, const std::vector<int32_t>& ids, int64_t vocab);
// A GGUF file's tensors as the registry: each entry the file holds (under its Hugging Face name, as the
// loader maps it) takes the file's stored type; experts the file holds under other names (gpt-oss's fused
// gate_up_proj, Granite's fused input_linear) are replaced by the file's own tensors of that layer and
// expert kind, a split DeepSeek kv_b by its attn_k_b and attn_v_b; entries the file lacks keep the spec's
// type and are named in a note added to spec.
TensorRegistry gguf_file_registry(ModelSpec& spec, const std::string& path);
// Bytes of the weights every decode step reads (everything but routed experts and the embedding
// table, plus one embedding row), at the dtype the decoder holds them in.
double always_on_weight_bytes(const std::string& model_dir, const ModelSpec& spec);
// The compute peak a model's matrix products are measured against: the arithmetic of the kernels its
// routed experts' stored type runs on (the dense FFN's without experts): int8 dot products for the
// integer block types (GGUF quants, MXFP4; AMX-INT8 tiles, used for prefill where the CPU has them, are
// faster and not measured), the bf16 dot rate for bf16 on AVX512_BF16, else the f32 FMA rate (f32,
// f16 widened at load, FP8 blocks).
struct MatmulPeak {
  double gflops = 0;   // 2 operations per multiply-add
  std::string kind;    // "int8 dot", "bf16 dot", "f32 FMA"
  std::string stored;  // the dtype it was chosen for
};
MatmulPeak matmul_peak(const std::string& model_dir, const ModelSpec& spec, const CeilingRow& ceiling);

// `moe eval`'s check of its logits: an error naming the model when one is NaN or infinite.
void check_finite_logits(const std::vector<float>& logits, const std::string& model_dir);

// The read ceiling `moe run` reports its decode against (GB/s). Measuring it reads an array of twice the
// last-level cache, whose first touch alone took 4-8 s on a VM that hands out fresh huge pages from its
// host: so it is measured once per boot and kept, with the ISA and thread count it was measured for, in
// "<cache dir>/read-ceiling.json" (the pack cache's folder; see model/pack_cache.h). The benchmarks
// measure theirs beside each run instead. fresh: measured again and saved whatever was kept (`moe run`
// asks for it when its decode read faster than the kept figure, which a busy moment had set too low).
double read_ceiling_for_run(bool fresh = false);

// A decode step's speed as a fraction of its byte floor (fraction: tokens/s over floor tokens/s at the DRAM
// ceiling dram_gbps; bytes: what a step touches). Null with a note where the last-level cache holds the step
// (cache_holds: measured, not only the reported size); where the bytes fit the reported cache but read no
// faster than DRAM, the fraction stands and a note says so.
CeilingFraction step_floor_fraction(double fraction, double bytes, double dram_gbps);

// The activation report of a finished generation (decode time split evenly over its steps);
// read_gbps: the read ceiling measured in the same run, or 0.
RunReport report_of_generation(const GenerateResult& g, const ModelSpec& spec, const std::string& model_dir,
                               double read_gbps);

// `moe run --json` without the "ep" key: text, finish_reason, stop, prompt_ids, generated_ids,
// sampling, logprobs (when asked), then the activation report's keys (run_report_json).
nlohmann::ordered_json run_json(const GenerateResult& g, const std::vector<int32_t>& prompt_ids,
                                const GenerateOptions& options, const GenerationDefaults& defaults,
                                const Tokenizer* tok, int64_t vocab, const RunReport& report);

}  // namespace moe::cli
