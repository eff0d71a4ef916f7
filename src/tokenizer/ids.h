// Token ids written as text (--ids, --prompt-ids, --stop-ids, --ids-file): the one parser every
// command uses.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace moe {

// Token ids separated by commas and/or whitespace, optionally in JSON brackets ("1,2,3",
// "[1, 2, 3]"); a usage error naming the source, the bad entry and its byte offset otherwise.
std::vector<int32_t> parse_ids(const std::string& text, const std::string& source);

}  // namespace moe
