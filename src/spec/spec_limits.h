// Upper bounds on what a config.json may declare, checked before anything is sized from it, so an
// absurd or hostile value ("num_hidden_layers": 1e9) is an error naming the field instead of a
// 48 GB layer table, an integer overflow, or an out-of-memory kill. Real models sit far below
// every bound (the largest have ~100 layers, ~400 experts, ~256k vocabulary, ~1T parameters).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "spec/model_spec.h"

namespace moe {

inline constexpr int64_t kMaxSpecLayers = 1 << 16;         // num_hidden_layers (+ MTP layers)
inline constexpr int64_t kMaxSpecWidth = 1 << 22;          // hidden, FFN and expert widths, ranks
inline constexpr int64_t kMaxSpecHeads = 1 << 16;          // heads, head dims, experts, groups
inline constexpr int64_t kMaxSpecVocab = 1 << 26;          // vocab_size
inline constexpr int64_t kMaxSpecTensors = 1 << 24;        // registry entries (layers x experts x 3 ...)
inline constexpr long double kMaxSpecParams = 1ull << 50;  // ~1.1e15 parameters

// Throws moe::Error "[spec] <source>: <field>: expected at most <max>, found <value>".
void check_spec_field(const std::string& source, std::string_view field, int64_t value, int64_t max);

// Every size field of a parsed spec, the registry size (layers x experts) and the parameter total.
void check_spec_limits(const ModelSpec& s);

}  // namespace moe
