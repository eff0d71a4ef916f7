// `moe info`: version, build, CPU features, kernel ISA, threads, OpenBLAS core.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/output.h"
#include "kernels/quant_matmul.h"
#include "runtime/blas.h"
#include "runtime/cpu_features.h"
#include "runtime/thread_pool.h"

namespace moe::cli {

void register_info(CLI::App& app, const GlobalOptions& global) {
  auto* cmd = app.add_subcommand("info", "Version, build, CPU features and threads");
  cmd->callback([&global] {
    const CpuFeatures& f = cpu_features();
    nlohmann::ordered_json j;
    j["version"] = MOE_VERSION;
    j["build_type"] = MOE_BUILD_TYPE;
    j["cpu"] = f.brand;
    j["cpu_features"] = cpu_feature_list();
    j["avx2"] = f.avx2;
    j["avx512f"] = f.avx512f;
    j["avx512bw"] = f.avx512bw;
    j["avx512vl"] = f.avx512vl;
    j["avx512_bf16"] = f.avx512_bf16;
    j["avx_vnni"] = f.avx_vnni;
    j["amx"] = f.amx_tile;
    j["kernel_isa"] = isa_name(active_isa());
    j["detected_isa"] = isa_name(detected_isa());
    j["amx_int8_kernels"] = amx_ready();  // quantized prefill on AMX tiles (MOE_AMX=0 turns it off)
    j["threads"] = num_threads();
    j["openblas_core"] = blas::core_name();
    j["openblas_inherited_coretype"] = blas::inherited_coretype();
    if (global.json) {
      print_json_report(j);
      return;
    }
    fmt::print("moe {} ({} build)\n", MOE_VERSION, MOE_BUILD_TYPE);
    fmt::print("  cpu            {}\n", f.brand);
    fmt::print("  features       {}\n", cpu_feature_list());
    fmt::print("  kernel isa     {} (detected {}){}\n", isa_name(active_isa()), isa_name(detected_isa()),
               amx_ready() ? "; AMX-INT8 tiles for quantized prefill" : "");
    fmt::print("  threads        {}\n", num_threads());
    fmt::print("  openblas core  {}{}\n", blas::core_name(),
               blas::inherited_coretype().empty()
                   ? ""
                   : fmt::format(" (environment had OPENBLAS_CORETYPE={})", blas::inherited_coretype()));
  });
}

}  // namespace moe::cli
