// Expert placement: contiguous, round-robin, from a file; validation with precise errors.
#include "parallel/placement.h"

#include <fstream>
#include <sstream>

#include "util/error.h"
#include "util/input_file.h"

namespace moe::parallel {

namespace {
void check_sizes(int n_expert, int n_rank) {
  if (n_expert < 1) fail("placement", "expert count must be >= 1, got {}", n_expert);
  if (n_rank < 1) fail("placement", "rank count must be >= 1, got {}", n_rank);
}
}  // namespace

ExpertPlacement::ExpertPlacement(std::vector<int> owner, int n_rank) : owner_(std::move(owner)), n_rank_(n_rank) {
  check_sizes(int(owner_.size()), n_rank);
  experts_of_.assign(size_t(n_rank), {});
  local_index_.assign(owner_.size(), -1);
  for (int e = 0; e < n_expert(); ++e) {
    const int r = owner_[size_t(e)];
    if (r < 0 || r >= n_rank)
      fail("placement", "expert {} is placed on rank {}, expected a rank in [0, {})", e, r, n_rank);
    local_index_[size_t(e)] = int(experts_of_[size_t(r)].size());
    experts_of_[size_t(r)].push_back(e);
  }
}

ExpertPlacement ExpertPlacement::contiguous(int n_expert, int n_rank) {
  check_sizes(n_expert, n_rank);
  std::vector<int> owner(static_cast<size_t>(n_expert));
  const int base = n_expert / n_rank, extra = n_expert % n_rank;
  int e = 0;
  for (int r = 0; r < n_rank; ++r)
    for (int i = 0; i < base + (r < extra ? 1 : 0); ++i) owner[size_t(e++)] = r;
  ExpertPlacement p(std::move(owner), n_rank);
  p.name_ = "contiguous";
  return p;
}

ExpertPlacement ExpertPlacement::round_robin(int n_expert, int n_rank) {
  check_sizes(n_expert, n_rank);
  std::vector<int> owner(static_cast<size_t>(n_expert));
  for (int e = 0; e < n_expert; ++e) owner[size_t(e)] = e % n_rank;
  ExpertPlacement p(std::move(owner), n_rank);
  p.name_ = "round-robin";
  return p;
}

ExpertPlacement ExpertPlacement::from_file(const std::string& path, int n_expert, int n_rank) {
  check_sizes(n_expert, n_rank);
  require_input_file(path, "placement file", "placement");
  std::ifstream in(path);
  if (!in) fail("placement", "cannot open placement file '{}'", path);
  std::vector<int> owner(size_t(n_expert), -1);
  std::string line;
  for (int line_no = 1; std::getline(in, line); ++line_no) {
    if (const size_t hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    std::istringstream fields(line);
    long long expert = 0, rank = 0;
    std::string rest;
    if (!(fields >> expert)) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank or comment
      fail("placement", "{}:{}: expected 'expert rank', found '{}'", path, line_no, line);
    }
    if (!(fields >> rank) || (fields >> rest))
      fail("placement", "{}:{}: expected 'expert rank', found '{}'", path, line_no, line);
    if (expert < 0 || expert >= n_expert)
      fail("placement", "{}:{}: expert {} is outside [0, {})", path, line_no, expert, n_expert);
    if (rank < 0 || rank >= n_rank)
      fail("placement", "{}:{}: rank {} is outside [0, {}) (the job has {} ranks)", path, line_no, rank, n_rank,
           n_rank);
    if (owner[size_t(expert)] >= 0)
      fail("placement", "{}:{}: expert {} is placed twice (first on rank {})", path, line_no, expert,
           owner[size_t(expert)]);
    owner[size_t(expert)] = int(rank);
  }
  for (int e = 0; e < n_expert; ++e)
    if (owner[size_t(e)] < 0)
      fail("placement", "{}: expert {} has no rank (every expert in [0, {}) must be listed)", path, e, n_expert);
  ExpertPlacement p(std::move(owner), n_rank);
  p.name_ = "file " + path;
  return p;
}

ExpertPlacement ExpertPlacement::parse(const std::string& spec, int n_expert, int n_rank) {
  if (spec == "contiguous") return contiguous(n_expert, n_rank);
  if (spec == "round-robin") return round_robin(n_expert, n_rank);
  if (spec.rfind("file:", 0) == 0) return from_file(spec.substr(5), n_expert, n_rank);
  fail_usage("placement", "unknown placement '{}': expected contiguous, round-robin or file:PATH", spec);
}

std::string ExpertPlacement::describe() const {
  std::string s = fmt::format("{} {} experts on {} ranks:", name_, n_expert(), n_rank_);
  for (const auto& experts : experts_of_) s += fmt::format(" {}", experts.size());
  return s;
}

}  // namespace moe::parallel
