// Nearest-rank percentile of a sample, shared by the cluster benchmark's
// workloads so every table uses the same definition.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

namespace cairn::bench {

// The smallest sample with at least `p` of the samples at or below it;
// -1 for no samples. REQUIRES: `sorted` is sorted ascending.
inline double NearestRank(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return -1;
  size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  return sorted[std::min(std::max<size_t>(rank, 1), sorted.size()) - 1];
}

}  // namespace cairn::bench
