// Builds the `moe` command line, applies global options, maps errors to exit codes.
#include <cstdio>
#include <cstdlib>

#include "cli/command.h"
#include "dist/ep_setup.h"
#include "runtime/thread_pool.h"
#include "util/error.h"

namespace moe::cli {

void not_implemented(const char* what, const char* issue) {
  fail("cli", "`moe {}` is not implemented yet (it lands with the issue \"{}\")", what, issue);
}

int run_main(int argc, char** argv) {
  CLI::App app{"moe: an engine for sparse Mixture-of-Experts transformers"};
  app.set_version_flag("--version", std::string(MOE_VERSION));
  app.require_subcommand(1);
  GlobalOptions global;
  app.add_flag("--json", global.json, "Print machine-readable JSON instead of tables")->configurable();
  app.add_option(
         "--threads", global.threads,
         fmt::format("Worker threads, 1 to {} (default: MOE_THREADS, else the CPUs this process may use)", kMaxThreads))
      ->check(CLI::Range(0, kMaxThreads));
  app.parse_complete_callback([&] {
    if (const char* env = std::getenv("MOE_THREADS");
        env != nullptr && global.threads == 0 && parse_thread_count(env) == 0) {
      fail_usage("cli", "MOE_THREADS={}: expected a thread count from 1 to {}", env, kMaxThreads);
    }
    if (global.threads > 0) set_num_threads(global.threads);
  });
  // Global flags are accepted after the subcommand too (`moe info --json`).
  app.fallthrough();

  register_info(app, global);
  register_bench(app, global);
  register_inspect(app, global);
  register_run(app, global);
  register_train(app, global);
  register_tokenize(app, global);
  register_quantize(app, global);

  // Under `mpirun ... --ep R` an error only this rank has aborts the job (the other ranks may be
  // waiting in a collective); MPI is finalized only after the command has ended on this rank.
  struct WorldRelease {
    ~WorldRelease() { dist::release_world(); }
  } world_release;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "moe: %s\n", e.what());
    dist::abort_world_on_error(e);
    return 2;
  } catch (const Error& e) {
    std::fprintf(stderr, "moe: %s\n", e.what());
    dist::abort_world_on_error(e);
    return 1;
  } catch (const std::bad_alloc& e) {
    std::fprintf(stderr, "moe: out of memory\n");
    dist::abort_world_on_error(e);
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moe: unexpected error: %s\n", e.what());
    dist::abort_world_on_error(e);
    return 1;
  }
  return 0;
}

}  // namespace moe::cli
