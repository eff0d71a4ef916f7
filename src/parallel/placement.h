// Expert placement for expert parallelism: which rank owns (computes, and loads the weights
// of) each routed expert. Contiguous blocks, round-robin, or an explicit expert -> rank file;
// E need not be divisible by R, and a rank may own no expert at all.
#pragma once

#include <string>
#include <vector>

namespace moe::parallel {

class ExpertPlacement {
 public:
  ExpertPlacement() = default;
  // owner[e] = rank of expert e; throws moe::Error("placement") for a rank outside [0, n_rank).
  ExpertPlacement(std::vector<int> owner, int n_rank);

  // Consecutive blocks as even as possible, the larger blocks first (E = 10, R = 4 -> 3, 3, 2, 2).
  static ExpertPlacement contiguous(int n_expert, int n_rank);
  // Expert e on rank e % R.
  static ExpertPlacement round_robin(int n_expert, int n_rank);
  // Text file, one "expert rank" pair per line ('#' starts a comment); every expert in
  // [0, n_expert) exactly once. Errors name the file, the line and what was wrong.
  static ExpertPlacement from_file(const std::string& path, int n_expert, int n_rank);
  // "contiguous", "round-robin" or "file:PATH".
  static ExpertPlacement parse(const std::string& spec, int n_expert, int n_rank);

  int n_expert() const { return int(owner_.size()); }
  int n_rank() const { return n_rank_; }
  int owner(int expert) const { return owner_[size_t(expert)]; }
  const std::vector<int>& owners() const { return owner_; }
  // Experts owned by `rank`, increasing.
  const std::vector<int>& experts_of(int rank) const { return experts_of_[size_t(rank)]; }
  // Position of `expert` in experts_of(owner(expert)).
  int local_index(int expert) const { return local_index_[size_t(expert)]; }
  bool owns(int rank, int expert) const { return owner(expert) == rank; }
  // One line, e.g. "contiguous 8 experts on 3 ranks: 3 3 2".
  std::string describe() const;

 private:
  std::vector<int> owner_;                    // [E]
  std::vector<std::vector<int>> experts_of_;  // [R][experts of r]
  std::vector<int> local_index_;              // [E]
  int n_rank_ = 1;
  std::string name_ = "custom";
};

}  // namespace moe::parallel
