// `moe bench ceilings`: the machine's bandwidth and compute ceilings (table or --json).
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/flags.h"
#include "cli/output.h"
#include "io/disk_read.h"
#include "kernels/ceilings.h"

#include <optional>

namespace moe::cli {

void register_bench_ceilings(CLI::App& bench, const GlobalOptions& global) {
  auto* cmd = bench.add_subcommand("ceilings", "Memory bandwidth, f32 FMA, bf16 dot and sgemm peaks");
  auto opts = std::make_shared<CeilingsOptions>();
  add_number(cmd, "-r,--repetitions", opts->repetitions, "Timed repetitions per figure (median reported)", 1, 100);
  opts->stream_mib = default_stream_mib();
  add_number(cmd, "--stream-mib", opts->stream_mib,
             "Read array size in MiB (triad: half each); the default is twice the last-level cache, at least 256",
             size_t{8}, size_t{16384});
  add_number(cmd, "--sgemm-n", opts->sgemm_n, "Square sgemm size", 64, 8192);
  auto disk = std::make_shared<std::string>();
  auto disk_mib = std::make_shared<uint64_t>(4096);
  cmd->add_option("--disk", *disk,
                  "Also measure the disk's read ceiling on this file (O_DIRECT, 2 threads; a model file to offload)");
  add_number(cmd, "--disk-mib", *disk_mib, "MiB of --disk to read", uint64_t{1}, uint64_t{1} << 22);
  cmd->callback([&global, opts, disk, disk_mib] {
    const Ceilings c = measure_ceilings(*opts);
    std::optional<DiskReadCeiling> d;
    if (!disk->empty()) d = measure_disk_read(*disk, *disk_mib << 20);
    if (global.json) {
      nlohmann::ordered_json j;
      j["read_gb_per_s"] = c.all.read_gbps;
      j["triad_gb_per_s"] = c.all.triad_gbps;
      j["fma_f32_gflop_per_s"] = c.all.fma_f32_gflops;
      j["dot_bf16_gflop_per_s"] = c.all.dot_bf16_gflops;
      j["dot_i8_gop_per_s"] = c.all.dot_i8_gops;
      j["sgemm_gflop_per_s"] = c.all.sgemm_gflops;
      j["threads"] = c.all.threads;
      j["isa"] = c.isa;
      j["openblas_core"] = c.openblas_core;
      j["openblas_inherited_coretype"] = c.openblas_inherited_coretype;
      j["stream_bytes"] = c.stream_bytes;
      j["repetitions"] = opts->repetitions;
      if (d)
        j["disk"] = {{"file", *disk},          {"read_gb_per_s", d->gbps}, {"bytes", d->bytes},
                     {"direct_io", d->direct}, {"threads", d->threads},    {"chunk_bytes", d->chunk_bytes}};
      for (const CeilingRow& r : c.rows) {
        j["per_threads"].push_back({{"threads", r.threads},
                                    {"read_gb_per_s", r.read_gbps},
                                    {"triad_gb_per_s", r.triad_gbps},
                                    {"fma_f32_gflop_per_s", r.fma_f32_gflops},
                                    {"dot_bf16_gflop_per_s", r.dot_bf16_gflops},
                                    {"dot_i8_gop_per_s", r.dot_i8_gops},
                                    {"sgemm_gflop_per_s", r.sgemm_gflops}});
      }
      print_json_report(j);
      return;
    }
    fmt::print("ceilings (median of {} repetitions; kernel isa {}; stream arrays {} MiB)\n", opts->repetitions, c.isa,
               c.stream_bytes >> 20);
    fmt::print("{:>8} {:>11} {:>11} {:>15} {:>16} {:>15} {:>13}\n", "threads", "read GB/s", "triad GB/s",
               "f32 FMA GFLOP/s", "bf16 dot GFLOP/s", "int8 dot GOP/s", "sgemm GFLOP/s");
    for (const CeilingRow& r : c.rows) {
      fmt::print("{:>8} {:>11.1f} {:>11.1f} {:>15.1f} {:>16.1f} {:>15.1f} {:>13.1f}\n", r.threads, r.read_gbps,
                 r.triad_gbps, r.fma_f32_gflops, r.dot_bf16_gflops, r.dot_i8_gops, r.sgemm_gflops);
    }
    fmt::print(
        "openblas core: {} (sgemm {}x{}x{}){}\n", c.openblas_core, opts->sgemm_n, opts->sgemm_n, opts->sgemm_n,
        c.openblas_inherited_coretype.empty()
            ? ""
            : fmt::format("; environment had OPENBLAS_CORETYPE={}, overridden (MOE_OPENBLAS_CORETYPE=inherit keeps it)",
                          c.openblas_inherited_coretype));
    if (d)
      fmt::print("disk read {}: {:.2f} GB/s ({:.2f} GB, {} threads x {} MiB chunks, {})\n", *disk, d->gbps,
                 double(d->bytes) * 1e-9, d->threads, d->chunk_bytes >> 20,
                 d->direct ? "O_DIRECT" : "buffered: cached pages may inflate it");
  });
}

}  // namespace moe::cli
