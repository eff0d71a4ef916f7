// PCRE2 regex for tokenizer splits. Match data is per thread, so one Regex serves many threads.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include <pcre2.h>

#include <algorithm>
#include <cstdint>

#include "util/error.h"

namespace moe::tok {

struct Regex::Impl {
  pcre2_code* code = nullptr;
  bool jit = false;
  std::string where;
};

namespace {

// PCRE2's default match limit (10 million backtracking steps) is a guard against catastrophic
// backtracking, but a legitimate long whitespace run costs one step per byte in patterns such as
// `\s*[\r\n]+|\s+(?!\S)` (the greedy `\s*` gives back the run byte by byte): 10 MB of spaces
// failed with "match limit exceeded". The limit is scaled with the subject instead, so every
// pattern of the real tokenizers stays linear and a pathological pattern still stops.
constexpr uint64_t kMatchStepsPerByte = 64;
constexpr uint64_t kMinMatchLimit = 10'000'000;
constexpr uint32_t kMaxMatchLimit = UINT32_MAX;
// The interpreter's (non-JIT) backtracking memory, in KiB: PCRE2's default is 20 MB.
constexpr uint32_t kHeapLimitKib = 1u << 20;  // 1 GiB, allocated only as a pattern needs it
// The JIT's backtracking stack (its default is 32 KiB); grown on demand up to this size.
constexpr size_t kJitStackMax = size_t(64) << 20;

struct MatchState {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;
  MatchState()
      : data(pcre2_match_data_create(4, nullptr)),
        context(pcre2_match_context_create(nullptr)),
        jit_stack(pcre2_jit_stack_create(32 * 1024, kJitStackMax, nullptr)) {
    pcre2_set_heap_limit(context, kHeapLimitKib);
    if (jit_stack != nullptr) pcre2_jit_stack_assign(context, nullptr, jit_stack);
  }
  ~MatchState() {
    pcre2_match_data_free(data);
    pcre2_match_context_free(context);
    if (jit_stack != nullptr) pcre2_jit_stack_free(jit_stack);
  }
};

MatchState& thread_match_state() {
  thread_local MatchState state;
  return state;
}

}  // namespace

Regex::Regex(const std::string& pattern, const std::string& where) : impl_(std::make_unique<Impl>()) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP,
                              &error, &offset, nullptr);
  if (impl_->code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    fail("tokenizer", "{}: regex {:?} does not compile at offset {}: {}", where, pattern, size_t(offset),
         reinterpret_cast<const char*>(message));
  }
  impl_->jit = pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE) == 0;
  impl_->where = where;
}

Regex::~Regex() {
  if (impl_ && impl_->code) pcre2_code_free(impl_->code);
}

void Regex::find_all(std::string_view text, std::vector<Span>& out) const {
  MatchState& state = thread_match_state();
  pcre2_match_data* md = state.data;
  const uint64_t limit = std::max<uint64_t>(kMinMatchLimit, kMatchStepsPerByte * text.size());
  pcre2_set_match_limit(state.context, static_cast<uint32_t>(std::min<uint64_t>(limit, kMaxMatchLimit)));
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  while (start <= text.size()) {
    const int rc = impl_->jit
                       ? pcre2_jit_match(impl_->code, subject, text.size(), start, 0, md, state.context)
                       : pcre2_match(impl_->code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, md, state.context);
    if (rc == PCRE2_ERROR_NOMATCH) return;
    if (rc < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof(message));
      fail("tokenizer", "{}: regex match failed at byte {} of a {}-byte piece of the text: {}", impl_->where, start,
           text.size(), reinterpret_cast<const char*>(message));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    if (ov[1] == ov[0]) {  // an empty match: step over one code point, as JS and Rust do
      if (ov[0] >= text.size()) return;
      size_t next = ov[0] + 1;
      while (next < text.size() && (static_cast<unsigned char>(text[next]) & 0xC0) == 0x80) ++next;
      start = next;
      continue;
    }
    out.push_back({ov[0], ov[1]});
    start = ov[1];
  }
}

}  // namespace moe::tok
