// The `moe` command: each subcommand registers itself from its own file (cmd_*.cc).
// Global flags (--json, --threads) live in GlobalOptions, declared once in app.cc.
#pragma once

#include <CLI/CLI.hpp>

namespace moe::cli {

struct GlobalOptions {
  bool json = false;
  int threads = 0;  // 0: MOE_THREADS, else the CPUs this process may use (runtime/process_limits.h)
};

// Each adds its subcommand(s) to `app`; the callback runs after global options are applied.
void register_info(CLI::App& app, const GlobalOptions& global);
void register_bench(CLI::App& app, const GlobalOptions& global);  // bench ceilings|layer|model|serve
void register_inspect(CLI::App& app, const GlobalOptions& global);
void register_run(CLI::App& app, const GlobalOptions& global);       // run, eval
void register_train(CLI::App& app, const GlobalOptions& global);     // train, plot
void register_tokenize(CLI::App& app, const GlobalOptions& global);  // tokenize, detokenize
void register_quantize(CLI::App& app, const GlobalOptions& global);
void register_chat(CLI::App& app, const GlobalOptions& global);   // chat
void register_serve(CLI::App& app, const GlobalOptions& global);  // serve

// `moe bench` sub-subcommands, one file each.
void register_bench_ceilings(CLI::App& bench, const GlobalOptions& global);
void register_bench_layer(CLI::App& bench, const GlobalOptions& global);
void register_bench_model(CLI::App& bench, const GlobalOptions& global);
void register_bench_serve(CLI::App& bench, const GlobalOptions& global);

// Declares the global flags and every subcommand on `app` (callbacks keep a reference to `global`).
void build_app(CLI::App& app, GlobalOptions& global);

// Builds the app, parses argv, runs the chosen subcommand; returns the process exit code.
int run_main(int argc, char** argv);

// Throws a moe::Error saying that `what` lands with the named issue.
[[noreturn]] void not_implemented(const char* what, const char* issue);

}  // namespace moe::cli
