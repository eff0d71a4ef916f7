// Fuzzes the token-id list parser (--ids, --prompt-ids, --stop-ids, --ids-file): any bytes are
// either ids or a usage error naming the entry; accepted ids print and parse back to themselves.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "tokenizer/ids.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  moe::fuzz::expect_moe_errors_only("parse_ids", [&] {
    const std::vector<int32_t> ids = moe::parse_ids(text, "fuzz");
    std::string again;
    for (int32_t id : ids) {
      moe::fuzz::check(id >= 0, "ids are non-negative");
      again += std::to_string(id) + ",";
    }
    moe::fuzz::check(moe::parse_ids("[" + again + "]", "again") == ids, "ids print and parse back");
  });
  return 0;
}
