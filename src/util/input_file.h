// Reading an input file, the same way in every layer: a folder given where a file is expected (and
// the reverse) is a usage error that says so, naming `what` (a flag such as "--ids-file", or the
// file's role such as "config.json"; may be empty) and the path, instead of an empty read that
// surfaces later as "not valid JSON".
#pragma once

#include <string>

namespace moe {

// The bytes of an input file; "-" reads standard input to its end. A folder is "is a folder; expected a file" (usage error); a missing
// or unreadable path is an error with the system's reason ("No such file or directory").
std::string read_input_file(const std::string& path, const std::string& what, const std::string& component);
void require_input_file(const std::string& path, const std::string& what, const std::string& component);
// An input folder: "is a file; expected a folder" otherwise.
void require_input_folder(const std::string& path, const std::string& what, const std::string& component);

}  // namespace moe
