// Builds the `moe` command line, applies global options, maps errors to exit codes.
#include <cstdio>
#include <cstdlib>

#include "cli/command.h"
#include "cli/flags.h"
#include "parallel/ep_setup.h"
#include "runtime/thread_pool.h"
#include "util/error.h"

namespace moe::cli {

void not_implemented(const char* what, const char* issue) {
  fail("cli", "`moe {}` is not implemented yet (it lands with the issue \"{}\")", what, issue);
}

void build_app(CLI::App& app, GlobalOptions& global) {
  app.set_version_flag("--version", std::string(MOE_VERSION));
  app.require_subcommand(1);
  app.add_flag("--json", global.json, "Print machine-readable JSON instead of tables")->configurable();
  add_number(&app, "-t,--threads", global.threads,
             "Worker threads (default: MOE_THREADS, else the CPUs this process may use)", 0, kMaxThreads,
             "0 = the default");
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
  register_chat(app, global);
  register_serve(app, global);
}

namespace {

// The first word on the command line that is neither a global flag nor its value, when it is
// not a command: `moe no-such-command` names it instead of saying "a subcommand is required".
std::string unknown_command(CLI::App& app, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("-", 0) == 0) {
      const CLI::Option* opt = app.get_option_no_throw(a.substr(0, a.find('=')));
      if (opt != nullptr && opt->get_items_expected() > 0 && a.find('=') == std::string::npos) ++i;  // its value
      continue;
    }
    for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
      if (sub->check_name(a)) return {};
    }
    return a;
  }
  return {};
}

std::string command_names(CLI::App& app) {
  std::string names;
  for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    names += (names.empty() ? "" : ", ") + sub->get_name();
  }
  return names;
}

// CLI11's parse errors in moe's format: `moe: [cli] --steps: expected ..., found '0'`, exit 2.
int report_parse_error(CLI::App& app, const CLI::ParseError& e, int argc, char** argv) {
  if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
  std::string message = e.what();
  if (const std::string cmd = unknown_command(app, argc, argv); !cmd.empty()) {
    message = fmt::format("unknown command '{}' (commands: {})", cmd, command_names(app));
  }
  std::fprintf(stderr, "moe: [cli] %s\nRun with --help for more information.\n", message.c_str());
  return 2;
}

}  // namespace

int run_main(int argc, char** argv) {
  CLI::App app{"moe: an engine for sparse Mixture-of-Experts transformers"};
  GlobalOptions global;
  build_app(app, global);

  // Under `mpirun ... --ep R` an error only this rank has aborts the job (the other ranks may be
  // waiting in a collective); MPI is finalized only after the command has ended on this rank.
  struct WorldRelease {
    ~WorldRelease() { parallel::release_world(); }
  } world_release;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return report_parse_error(app, e, argc, argv);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "moe: %s\n", e.what());
    parallel::abort_world_on_error(e);
    return 2;
  } catch (const Error& e) {
    std::fprintf(stderr, "moe: %s\n", e.what());
    parallel::abort_world_on_error(e);
    return 1;
  } catch (const std::bad_alloc& e) {
    std::fprintf(stderr, "moe: out of memory\n");
    parallel::abort_world_on_error(e);
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moe: unexpected error: %s\n", e.what());
    parallel::abort_world_on_error(e);
    return 1;
  }
  return 0;
}

}  // namespace moe::cli
