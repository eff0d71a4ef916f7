// Checks on the paths a command reads and writes, made before any work, so a mix-up is named
// instead of destroying data or failing half way: an input file that is a folder (or the
// reverse), and an output that is one of the inputs - the same file reached through a symbolic
// or hard link counts (same device and inode) - are usage errors naming the flag.
#pragma once

#include <string>
#include <vector>

#include "util/input_file.h"  // read_input_file, require_input_file, require_input_folder

namespace moe {

// An output file path: not an existing folder, in an existing folder, and not the same file as
// any input (an input folder stands for every file directly in it).
void check_output_file(const std::string& path, const std::string& what, const std::vector<std::string>& inputs,
                       const std::string& component);
// An output folder: not an existing file, and not holding any input file (at any depth), nor
// being one of the input folders.
void check_output_folder(const std::string& dir, const std::string& what, const std::vector<std::string>& inputs,
                         const std::string& component);

}  // namespace moe
