// Sampling flags and their JSON (see sampling_args.h).
#include "cli/sampling_args.h"

#include <CLI/CLI.hpp>

#include "cli/flags.h"
#include "cli/run_common.h"

namespace moe::cli {

void add_sampling_options(CLI::App* cmd, SamplingArgs& a) {
  SamplerOptions& v = a.values;
  a.temp =
      add_number(cmd, "--temp,--temperature", v.temperature,
                 "Sampling temperature; default: generation_config.json, else greedy", 0.0f, 1000.0f, "0 = greedy");
  a.top_k =
      add_number(cmd, "--top-k", v.top_k, "Keep the k most likely tokens", int64_t{0}, int64_t{1} << 31, "0 = all");
  a.top_p =
      add_number_above(cmd, "--top-p", v.top_p, "Nucleus: keep the most likely tokens up to this mass", 0.0f, 1.0f);
  a.min_p = add_number(cmd, "--min-p", v.min_p, "Drop tokens less likely than min-p times the most likely", 0.0f, 1.0f,
                       "0 = off");
  a.repeat = add_number_above(cmd, "--repeat-penalty,--repetition-penalty", v.repetition_penalty,
                              "Hugging Face repetition penalty over prompt and output (1 = off)", 0.0f, 100.0f);
  a.presence =
      add_number(cmd, "--presence-penalty", v.presence_penalty,
                 "OpenAI presence penalty: subtracted once from each generated token's logit", -2.0f, 2.0f, "0 = off");
  a.frequency =
      add_number(cmd, "--frequency-penalty", v.frequency_penalty,
                 "OpenAI frequency penalty: subtracted per occurrence of each generated token", -2.0f, 2.0f, "0 = off");
  cmd->add_option("--seed", v.seed, "Sampling seed (the same seed gives the same tokens)")
      ->transform(any_number<uint64_t>())
      ->capture_default_str();
  cmd->add_option("--stop", a.stop, "Stop string (repeatable): generation ends there, the text is cut before it")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  add_number(cmd, "--logprobs", a.logprobs, "Report each token's logprob and the N most likely alternatives (--json)",
             int64_t{-1}, int64_t{20}, "-1 = off");
  cmd->add_flag("--ignore-eos", a.ignore_eos, "Do not stop at the model's end-of-sequence ids");
}

SamplingOverrides sampling_overrides(const SamplingArgs& a) {
  const SamplerOptions& v = a.values;
  auto given = [](const CLI::Option* o) { return o != nullptr && o->count() > 0; };
  SamplingOverrides g;
  if (given(a.temp)) g.temperature = v.temperature;
  if (given(a.top_k)) g.top_k = v.top_k;
  if (given(a.top_p)) g.top_p = v.top_p;
  if (given(a.min_p)) g.min_p = v.min_p;
  if (given(a.repeat)) g.repetition_penalty = v.repetition_penalty;
  if (given(a.presence)) g.presence_penalty = v.presence_penalty;
  if (given(a.frequency)) g.frequency_penalty = v.frequency_penalty;
  g.seed = v.seed;
  return g;
}

SamplerOptions resolve_sampling(const SamplingOverrides& g, const GenerationDefaults& d) {
  SamplerOptions s = d.sampler;
  if (g.temperature) s.temperature = *g.temperature;
  if (g.top_k) s.top_k = *g.top_k;
  if (g.top_p) s.top_p = *g.top_p;
  if (g.min_p) s.min_p = *g.min_p;
  if (g.repetition_penalty) s.repetition_penalty = *g.repetition_penalty;
  if (g.presence_penalty) s.presence_penalty = *g.presence_penalty;
  if (g.frequency_penalty) s.frequency_penalty = *g.frequency_penalty;
  s.seed = g.seed;
  return s;
}

SamplerOptions resolve_sampling(const SamplingArgs& a, const GenerationDefaults& d) {
  return resolve_sampling(sampling_overrides(a), d);
}

GenerateOptions run_generate_options(const SamplingOverrides& given, const GenerationDefaults& defaults,
                                     std::vector<int32_t> stop_ids, std::vector<std::string> stop_strings,
                                     bool ignore_eos, int64_t logprobs, int64_t max_new_tokens, int64_t context) {
  GenerateOptions opts;
  opts.max_new_tokens = max_new_tokens;
  opts.sampler = resolve_sampling(given, defaults);
  opts.stop_ids = std::move(stop_ids);
  if (!ignore_eos) opts.stop_ids.insert(opts.stop_ids.end(), defaults.eos_ids.begin(), defaults.eos_ids.end());
  opts.stop_strings = std::move(stop_strings);
  opts.logprobs = logprobs;
  opts.context = context;
  opts.record_routing = true;
  return opts;
}

nlohmann::ordered_json sampling_json(const GenerateOptions& o, const GenerationDefaults& d) {
  const SamplerOptions& s = o.sampler;
  return {{"temperature", s.temperature},
          {"top_k", s.top_k},
          {"top_p", s.top_p},
          {"min_p", s.min_p},
          {"repetition_penalty", s.repetition_penalty},
          {"presence_penalty", s.presence_penalty},
          {"frequency_penalty", s.frequency_penalty},
          {"seed", s.seed},
          {"stop_ids", o.stop_ids},
          {"stop", o.stop_strings},
          {"defaults_from", d.files}};
}

nlohmann::ordered_json logprobs_json(const std::vector<TokenLogprobs>& logprobs, const Tokenizer* tok, int64_t vocab) {
  auto one = [&](const TokenLogprob& t) {
    return nlohmann::ordered_json{
        {"id", t.token}, {"token", decode_ids(tok, {t.token}, vocab)}, {"logprob", t.logprob}};
  };
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const TokenLogprobs& l : logprobs) {
    nlohmann::ordered_json j = one(l.chosen);
    j["top_logprobs"] = nlohmann::ordered_json::array();
    for (const TokenLogprob& t : l.top) j["top_logprobs"].push_back(one(t));
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace moe::cli
