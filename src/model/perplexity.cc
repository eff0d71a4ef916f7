// Windowed perplexity (see perplexity.h).
#include "model/perplexity.h"

#include <algorithm>
#include <cmath>

#include "runtime/process_limits.h"
#include "util/error.h"

namespace moe {

std::vector<EvalWindow> plan_windows(int64_t n_tokens, int64_t context, int64_t stride) {
  if (context < 2) fail("model", "context {}: a window needs at least two tokens", context);
  if (stride < 1 || stride > context) {
    fail("model", "stride {}: expected 1 to the context {} (a larger stride would skip tokens)", stride, context);
  }
  std::vector<EvalWindow> out;
  int64_t prev_end = 0;
  for (int64_t begin = 0; begin < n_tokens; begin += stride) {
    const int64_t end = std::min(begin + context, n_tokens);
    const int64_t first = std::max(prev_end, begin + 1);  // a window's first token has no prediction
    if (first < end) out.push_back({begin, end, first});
    prev_end = end;
    if (end == n_tokens) break;
  }
  return out;
}

double token_nll(const float* row, int64_t vocab, int32_t target) {
  const double mx = *std::max_element(row, row + vocab);
  double sum = 0.0;
  for (int64_t j = 0; j < vocab; ++j) sum += std::exp(double(row[j]) - mx);
  return mx + std::log(sum) - row[target];
}

WindowedEvalResult evaluate_windows(Decoder& model, const std::vector<int32_t>& ids, int64_t context, int64_t stride,
                                    bool per_token, const std::function<void(int64_t, int64_t)>& progress) {
  const int64_t T = static_cast<int64_t>(ids.size()), V = model.spec().vocab;
  if (T < 2) fail("model", "evaluate needs at least two token ids (found {}): nothing to score", T);
  const std::vector<EvalWindow> windows = plan_windows(T, context, stride);
  const int64_t n = std::min(context, T);
  check_fits_in_memory(4.0L * n * V, "model",
                       fmt::format("a window of {} tokens (its logits: {} x vocab_size {} floats)", n, n, V));
  std::vector<float> logits(static_cast<size_t>(n * V));  // [context, V], reused by every window
  WindowedEvalResult r;
  for (const EvalWindow& w : windows) {
    KvCache cache = model.make_cache(w.end - w.begin);
    model.forward(ids.data() + w.begin, w.end - w.begin, cache, logits.data());
    for (int64_t t = w.first_scored; t < w.end; ++t) {  // logits of position t - 1 predict token t
      const double nll = token_nll(logits.data() + (t - 1 - w.begin) * V, V, ids[t]);
      if (!std::isfinite(nll))
        fail("model", "window [{}, {}): the logits predicting token {} are not finite", w.begin, w.end, t);
      r.nll_sum += nll;
      if (per_token) r.nll.push_back(nll);
    }
    r.scored += w.end - w.first_scored;
    r.forwarded += w.end - w.begin;
    ++r.windows;
    if (progress) progress(r.windows, static_cast<int64_t>(windows.size()));
  }
  r.mean_nll = r.nll_sum / static_cast<double>(r.scored);
  return r;
}

}  // namespace moe
