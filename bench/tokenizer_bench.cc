// Encode and decode throughput of the real tokenizers (single thread). The ratio to the
// JavaScript reference on the same text is measured by scripts/bench-tokenizer.sh.
// Tokenizers: $MOE_TOKENIZER_BENCH_DIRS (comma-separated) or <build>/tokenizer_fixtures/*;
// text: $MOE_TOKENIZER_BENCH_TEXT or a built-in 2 MB mix of prose, code, numbers, CJK and emoji.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "tokenizer/tokenizer.h"

namespace {

std::string bench_text() {
  if (const char* path = std::getenv("MOE_TOKENIZER_BENCH_TEXT")) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  const char* pieces[] = {
      "The router sends each token to its top-k experts; the combine step weights their outputs. ",
      "def forward(self, x):\n    return self.w2(F.silu(self.w1(x)) * self.w3(x))\n\n",
      "Numbers 3.14159, 2048, 1e-6 and 2024-05-17. ",
      "混合专家模型在每个词元上只激活少数专家。 ",
      "Emoji 🚀✨ and accents café naïve. ",
      "\t\tindented    spaces\n",
  };
  std::string text;
  for (size_t i = 0; text.size() < 2'000'000; ++i) {
    text += pieces[i % 6];
    text += std::to_string(i * 7919 % 100003);  // keeps the word cache from seeing only repeats
    text += ' ';
  }
  return text;
}

std::vector<std::filesystem::path> tokenizer_dirs() {
  std::vector<std::filesystem::path> dirs;
  if (const char* env = std::getenv("MOE_TOKENIZER_BENCH_DIRS")) {
    std::stringstream ss(env);
    for (std::string d; std::getline(ss, d, ',');)
      if (!d.empty()) dirs.emplace_back(d);
    return dirs;
  }
  const auto root = std::filesystem::read_symlink("/proc/self/exe").parent_path().parent_path() / "tokenizer_fixtures";
  if (std::filesystem::is_directory(root))
    for (const auto& e : std::filesystem::directory_iterator(root))
      if (std::filesystem::exists(e.path() / "tokenizer.json")) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

void register_all() {
  static const std::string text = bench_text();
  for (const auto& dir : tokenizer_dirs()) {
    std::shared_ptr<moe::Tokenizer> tok = moe::load_tokenizer(dir.string());
    const std::string name = dir.filename().string();
    benchmark::RegisterBenchmark(("encode/" + name).c_str(), [tok](benchmark::State& state) {
      size_t tokens = 0;
      for (auto _ : state) tokens = tok->encode(text).size();
      state.SetBytesProcessed(int64_t(state.iterations() * text.size()));
      state.counters["tokens"] = double(tokens);
    })->Unit(benchmark::kMillisecond);
    const std::vector<int32_t> ids = tok->encode(text);
    benchmark::RegisterBenchmark(("decode/" + name).c_str(), [tok, ids](benchmark::State& state) {
      for (auto _ : state) benchmark::DoNotOptimize(tok->decode(ids));
      state.SetBytesProcessed(int64_t(state.iterations() * text.size()));
    })->Unit(benchmark::kMillisecond);
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
