// The Decoder with expert-parallel MoE blocks (EpDecoderHook) on 2, 3 and 4 in-process ranks,
// for every fixture family (llama and qwen3 are dense: EP is a no-op there): the prompt's logits
// and two decode steps' logits are bitwise equal (memcmp) to the one-process Decoder on every
// rank; each rank loads only its own experts; the bytes every rank sends are the bytes the
// others receive; the report gathers every rank.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "dist/comm.h"
#include "dist/ep_decoder.h"
#include "io/safetensors.h"
#include "model/decoder.h"
#include "util/dtype.h"

namespace moe::dist {
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

INSTANTIATE_TEST_SUITE_P(Families, EpDecoder,
                         ::testing::Values("deepseek_v2_lite", "deepseek_v3", "gpt_oss", "llama", "mixtral", "olmoe",
                                           "qwen2_moe", "qwen3", "qwen3_moe"));

}  // namespace
}  // namespace moe::dist
