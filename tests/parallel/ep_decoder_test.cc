// The Decoder with expert-parallel MoE blocks (EpDecoderHook) on 2, 3 and 4 in-process ranks,
// for every fixture family (llama and qwen3 are dense: EP is a no-op there): the prompt's logits
// and two decode steps' logits are bitwise equal (memcmp) to the one-process Decoder on every
// rank; each rank loads only its own experts; the bytes every rank sends are the bytes the
// others receive; the report gathers every rank; every MoE layer's telemetry (activated parameters,
// tokens per expert, bytes, FLOPs) equals the one process's.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/decoder.h"
#include "moe/telemetry.h"
#include "parallel/comm.h"
#include "parallel/ep_decoder.h"
#include "util/dtype.h"

namespace moe::parallel {
namespace {

std::string fixture_dir(const std::string& family) {
  std::string dir = MOE_TEST_DATA_DIR;
  dir.append("/reference/fixtures/models/").append(family);
  return dir;
}

struct DecoderRun {
  std::vector<float> logits;  // prompt [T, V], then each decode step [1, V]
};

// The prompt as one prefill call, then two single-token decode steps (tokens 3 and 5).
DecoderRun run_decoder(Decoder& dec, const std::vector<int32_t>& prompt) {
  const int64_t T = int64_t(prompt.size()), V = dec.spec().vocab;
  KvCache cache = dec.make_cache(T + 2);
  DecoderRun r;
  r.logits.resize(size_t((T + 2) * V));  // [T + 2, V]
  dec.forward(prompt.data(), T, cache, r.logits.data());
  for (int32_t i = 0; i < 2; ++i) {
    const int32_t id = int32_t((3 + 2 * i) % V);
    dec.forward(&id, 1, cache, r.logits.data() + (T + i) * V);
  }
  return r;
}

std::vector<int32_t> prompt_of(const std::string& dir) {
  const SafetensorsFile expected = SafetensorsFile::open(dir + "/expected.safetensors");
  const auto p = expected.view<int64_t>("prompt_ids", DType::kI64);
  return std::vector<int32_t>(p.begin(), p.end());
}

class EpDecoder : public ::testing::TestWithParam<const char*> {};

TEST_P(EpDecoder, LogitsBitwiseEqualToOneProcess) {
  const std::string dir = fixture_dir(GetParam());
  const std::vector<int32_t> prompt = prompt_of(dir);
  Decoder single(dir);
  const DecoderRun want = run_decoder(single, prompt);
  const int E = int(single.spec().n_expert);
  for (int R : {2, 3, 4}) {
    std::vector<DecoderRun> got(static_cast<size_t>(R));
    std::vector<EpReport> reports(static_cast<size_t>(R));
    std::vector<int64_t> loaded(static_cast<size_t>(R), 0), sent(size_t(R), 0), received(size_t(R), 0);
    run_local_ranks(R, [&](Comm& comm) {
      EpDecoderHook hook(comm, R == 3 ? "round-robin" : "contiguous", E);
      DecoderOptions options = hook.options();
      if (options.load_expert) {
        const ExpertFilter inner = options.load_expert;
        options.load_expert = [&, inner](int64_t layer, int64_t e) {
          const bool keep = inner(layer, e);
          if (keep) ++loaded[size_t(comm.rank())];
          return keep;
        };
      }
      Decoder dec(dir, options);
      got[size_t(comm.rank())] = run_decoder(dec, prompt);
      sent[size_t(comm.rank())] = hook.total().exchange.bytes_sent;
      received[size_t(comm.rank())] = hook.total().exchange.bytes_received;
      reports[size_t(comm.rank())] = gather_ep_report(hook);
    });
    int64_t all_sent = 0, all_received = 0, all_loaded = 0;
    for (int r = 0; r < R; ++r) {
      SCOPED_TRACE(testing::Message() << GetParam() << " R=" << R << " rank " << r);
      const DecoderRun& g = got[size_t(r)];
      ASSERT_EQ(g.logits.size(), want.logits.size());
      EXPECT_EQ(std::memcmp(g.logits.data(), want.logits.data(), want.logits.size() * sizeof(float)), 0);
      ASSERT_EQ(reports[size_t(r)].ranks.size(), size_t(R));
      EXPECT_EQ(reports[size_t(r)].ranks[size_t(r)].rank, r);
      all_sent += sent[size_t(r)];
      all_received += received[size_t(r)];
      all_loaded += loaded[size_t(r)];
    }
    EXPECT_EQ(all_sent, all_received) << R;
    int64_t moe_layers = 0;
    for (const LayerSpec& l : single.spec().layers) moe_layers += l.is_moe ? 1 : 0;
    EXPECT_EQ(all_loaded, moe_layers * E) << "each expert loaded by exactly one rank";
    if (E > 0) {
      EXPECT_GT(all_sent, 0) << R;
    }
  }
}

// The telemetry of every MoE layer (ForwardStats) under --ep equals one process's: the same routing and the
// same accounting (account_moe_call), so the activated parameters count gpt-oss's expert biases on every
// rank, also on ranks that do not hold expert 0. Times and work items are each process's own.
TEST_P(EpDecoder, TelemetryEqualsOneProcess) {
  const std::string dir = fixture_dir(GetParam());
  const std::vector<int32_t> prompt = prompt_of(dir);
  const int64_t T = int64_t(prompt.size());
  Decoder single(dir);
  const int64_t V = single.spec().vocab;
  std::vector<float> logits(size_t(T * V));  // [T, V]
  ForwardStats want;
  KvCache cache = single.make_cache(T);
  single.forward(prompt.data(), T, cache, logits.data(), &want);
  for (int R : {2, 3}) {
    std::vector<ForwardStats> got(static_cast<size_t>(R));
    run_local_ranks(R, [&](Comm& comm) {
      EpDecoderHook hook(comm, R == 3 ? "round-robin" : "contiguous", int(single.spec().n_expert));
      Decoder dec(dir, hook.options());
      KvCache c = dec.make_cache(T);
      std::vector<float> l(size_t(T * V));
      dec.forward(prompt.data(), T, c, l.data(), &got[size_t(comm.rank())]);
    });
    for (int r = 0; r < R; ++r) {
      ASSERT_EQ(got[size_t(r)].moe_layers.size(), want.moe_layers.size());
      for (size_t l = 0; l < want.moe_layers.size(); ++l) {
        SCOPED_TRACE(testing::Message() << GetParam() << " R=" << R << " rank " << r << " layer " << l);
        const MoeTelemetry &a = want.moe_layers[l], &b = got[size_t(r)].moe_layers[l];
        EXPECT_EQ(b.n_tokens, a.n_tokens);
        EXPECT_EQ(b.top_k, a.top_k);
        EXPECT_EQ(b.tokens_per_expert, a.tokens_per_expert);
        EXPECT_EQ(b.dropped_slots, a.dropped_slots);
        EXPECT_EQ(b.experts_touched, a.experts_touched);
        EXPECT_EQ(b.activated_params, a.activated_params);
        EXPECT_EQ(b.expert_bytes_streamed, a.expert_bytes_streamed);
        EXPECT_EQ(b.expert_flops, a.expert_flops);
      }
    }
  }
  if (single.spec().family != Family::kGptOss) return;
  // gpt-oss: router [E, D] + bias [E], and per touched expert gate, up [F, D], down [D, F] and their biases.
  const ModelSpec& s = single.spec();
  const int64_t E = s.n_expert, D = s.d_model, F = s.n_ff_expert;
  for (const MoeTelemetry& t : want.moe_layers) {
    if (t.n_tokens == 0) continue;
    EXPECT_EQ(t.activated_params, E * D + E + t.experts_touched * (3 * F * D + 2 * F + D));
  }
}

INSTANTIATE_TEST_SUITE_P(Families, EpDecoder,
                         ::testing::Values("deepseek_v2_lite", "deepseek_v3", "gpt_oss", "llama", "mixtral", "olmoe",
                                           "qwen2_moe", "qwen3", "qwen3_moe"));

}  // namespace
}  // namespace moe::parallel
