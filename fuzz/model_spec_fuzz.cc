// Fuzzes config.json text -> ModelSpec as load_model_spec reads it (nesting depth, JSON, every
// family's dialect table, the size limits checked before anything is allocated) and, for specs
// small enough to list quickly, the TensorRegistry, the parameter counts and the cost model.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_util.h"
#include "spec/accounting.h"
#include "spec/model_spec.h"
#include "spec/tensor_registry.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  moe::fuzz::expect_moe_errors_only("parse_model_spec_text", [&] {
    const moe::ModelSpec spec = moe::parse_model_spec_text(text, "config.json");
    // The registry lists every tensor (layers x experts x 3 for the experts): only small specs, so
    // each input stays fast; the limits on large ones are checked by parse_model_spec above.
    if (double(spec.n_layer) * double(spec.n_expert + 8) > 4096) return;
    const moe::TensorRegistry registry = moe::build_registry(spec);
    const moe::ParamCounts counts = moe::count_params(spec, registry);
    (void)counts;
    moe::Workload w;
    w.context = 1 + static_cast<int64_t>(size);
    (void)moe::compute_cost(spec, registry, w);
  });
  return 0;
}
