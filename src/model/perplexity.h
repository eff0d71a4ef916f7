// Perplexity of a text longer than one forward should hold, in sliding windows: the Hugging Face
// "perplexity of fixed-length models" recipe. Windows of `context` tokens start every `stride`
// tokens; each scores only the predictions the previous window did not (the rest of it is context),
// so every token after the first is scored exactly once. stride == context: separate chunks (each
// chunk's first token is context only). Logits are held for one window at a time ([context, V]),
// never for the whole text.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "model/decoder.h"

namespace moe {

struct EvalWindow {
  int64_t begin = 0, end = 0;  // the tokens [begin, end) run through the model
  int64_t first_scored = 0;    // predictions of the tokens [first_scored, end) are scored
};

// The windows over T tokens (context >= 2, 1 <= stride <= context); windows that would score
// nothing are left out. Throws moe::Error "[model] ..." for bad sizes.
std::vector<EvalWindow> plan_windows(int64_t n_tokens, int64_t context, int64_t stride);

struct WindowedEvalResult {
  int64_t scored = 0;       // predictions scored (T - 1 when every token after the first is)
  int64_t forwarded = 0;    // tokens run through the model (overlapping windows run some twice)
  int64_t windows = 0;      // windows run
  double nll_sum = 0.0;     // nats
  double mean_nll = 0.0;    // nll_sum / scored
  std::vector<double> nll;  // [scored] per-token -log p, in text order (only when asked)
};

// progress(done, total) after each window. Throws like evaluate() for a bad id.
WindowedEvalResult evaluate_windows(Decoder& model, const std::vector<int32_t>& ids, int64_t context, int64_t stride,
                                    bool per_token, const std::function<void(int64_t, int64_t)>& progress = {});

// -log softmax(row)[target] over a row of V logits (max-subtracted, in double).
double token_nll(const float* row, int64_t vocab, int32_t target);

}  // namespace moe
