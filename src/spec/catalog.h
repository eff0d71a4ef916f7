// The embedded model catalog (data/models): real Hugging Face configs with the counts their
// authors published and the counting convention each published figure uses.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace moe {

struct CatalogEntry {
  std::string name;  // short name for `moe inspect NAME`
  std::vector<std::string> aliases;
  std::string file;                                  // data/models/<file>
  std::string published_total, published_activated;  // as printed: "46.7B", "1T"
  std::string published_total_with_mtp;              // when published ("685B")
  std::string published_total_checkpoint;            // a count from the checkpoint, when published
  std::string published_total_non_embedding;
  std::string total_convention = "total_params";          // a ParamCounts field name
  std::string activated_convention = "activated_params";  // a ParamCounts field name
  std::string total_with_mtp_convention = "total_params_with_mtp";
  bool truncates = false;  // the card truncates instead of rounding to nearest
  // > 0: no counting convention reproduces the card's rounding; the figure is checked to within this
  // relative distance (0.01: 1%), and the notes say which convention comes closest.
  double tolerance = 0;
  bool total_includes_vision = false;
  std::string source, notes;
  nlohmann::json config;

  // Whether a computed count agrees with one of this entry's published figures (rounding, truncation
  // or tolerance as the entry says).
  bool matches(double computed, const std::string& published) const;
};

// All entries, in catalog.json order.
const std::vector<CatalogEntry>& catalog();
// By name, alias or config file name (with or without .json), case-insensitive; nullptr if none.
const CatalogEntry* find_catalog_entry(const std::string& name);

// Parses a published figure ("46.7B", "1.026T", "685B") into its value and its last printed
// digit (ulp). A leading '~' ("~230B") marks a figure the card only approximates: it is checked to
// within 1% instead of by its rounding. Throws on malformed text.
struct PublishedNumber {
  double value = 0;
  double ulp = 0;
  bool approximate = false;
};
PublishedNumber parse_published(const std::string& text);
// Whether a computed count prints as the published figure: |x - v| <= ulp/2, or v <= x < v + ulp
// when the card truncates; with rel_tolerance > 0, |x - v| <= rel_tolerance * v instead.
bool matches_published(double computed, const std::string& published, bool truncates, double rel_tolerance = 0);

}  // namespace moe
