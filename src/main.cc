// Entry point of the `moe` binary.
#include "cli/command.h"

int main(int argc, char** argv) { return moe::cli::run_main(argc, argv); }
