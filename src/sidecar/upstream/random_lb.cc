// Random and least-request (power of two choices) balancers, both drawing
// hosts in proportion to weight through WeightedSampler.
#include <utility>
#include <vector>

#include "sidecar/upstream/lb_internal.h"
#include "sidecar/upstream/load_balancer.h"

namespace cairn::sidecar::upstream {
namespace internal {

void WeightedSampler::Build(const std::vector<HostPtr>& hosts) {
  size_ = static_cast<uint32_t>(hosts.size());
  weights_.resize(size_);
  total_ = 0;
  uniform_ = true;
  for (uint32_t i = 0; i < size_; ++i) {
    weights_[i] = hosts[i]->weight();
    total_ += weights_[i];
    uniform_ = uniform_ && weights_[i] == weights_[0];
  }
  keep_.clear();
  alias_.clear();
  if (uniform_) return;

  // Vose: bin i holds `total_` units of mass; host i owns weight * n units in
  // all. Hosts short of a full bin are topped up from hosts with a surplus.
  // Integer masses keep the table exact, so weights are honoured to the unit.
  keep_.resize(size_);
  alias_.resize(size_);
  std::vector<uint64_t> mass(size_);
  std::vector<uint32_t> small;
  std::vector<uint32_t> large;
  for (uint32_t i = 0; i < size_; ++i) {
    mass[i] = static_cast<uint64_t>(weights_[i]) * size_;
    (mass[i] < total_ ? small : large).push_back(i);
  }
  while (!small.empty() && !large.empty()) {
    uint32_t s = small.back();
    small.pop_back();
    uint32_t l = large.back();
    keep_[s] = mass[s];
    alias_[s] = l;
    mass[l] -= total_ - mass[s];
    if (mass[l] < total_) {
      large.pop_back();
      small.push_back(l);
    }
  }
  // Masses are exact integers summing to size_ * total_, so whatever is left
  // fills exactly one whole bin each.
  for (const std::vector<uint32_t>* rest : {&small, &large}) {
    for (uint32_t i : *rest) {
      keep_[i] = total_;
      alias_[i] = i;
    }
  }
}

uint32_t WeightedSampler::Sample(Rng& rng) const {
  const uint64_t r = rng.Next();
  // Two independent 32-bit halves: the bin, then the coin within the bin.
  // Both bounds are below 2^32 (size_ hosts of weight <= 128).
  const auto bin = static_cast<uint32_t>(((r >> 32) * size_) >> 32);
  if (uniform_) return bin;
  const uint64_t coin = ((r & 0xffffffffULL) * total_) >> 32;
  return coin < keep_[bin] ? bin : alias_[bin];
}

}  // namespace internal

namespace {

using internal::HostFilter;
using internal::LoadBalancerBase;
using internal::Rng;
using internal::WeightedSampler;

// Unfiltered draws tried before drawing exactly among accepted hosts. Each
// try succeeds with the accepted share of weight, so with most hosts
// available the O(n) fallback almost never runs.
constexpr int kRejectionAttempts = 4;

// Draws a host the filter accepts, in proportion to the sampler's weights;
// nullptr when none is accepted. Rejection sampling and the fallback both
// yield the exact weighted distribution restricted to accepted hosts.
const HostPtr* SampleAccepted(const std::vector<HostPtr>& all, const WeightedSampler& sampler,
                              Rng& rng, const HostFilter& filter) {
  for (int i = 0; i < kRejectionAttempts; ++i) {
    const HostPtr& host = all[sampler.Sample(rng)];
    if (filter.Accepts(*host)) return &host;
  }
  uint64_t total = 0;
  for (uint32_t i = 0; i < all.size(); ++i) {
    if (filter.Accepts(*all[i])) total += sampler.weight(i);
  }
  if (total == 0) return nullptr;
  uint64_t point = rng.Uniform(total);
  for (uint32_t i = 0; i < all.size(); ++i) {
    if (!filter.Accepts(*all[i])) continue;
    if (point < sampler.weight(i)) return &all[i];
    point -= sampler.weight(i);
  }
  // Only reachable if health flipped between the two passes; any accepted
  // host will do.
  for (const HostPtr& host : all) {
    if (filter.Accepts(*host)) return &host;
  }
  return nullptr;
}

class RandomLoadBalancer final : public LoadBalancerBase {
 public:
  explicit RandomLoadBalancer(uint64_t seed) : LoadBalancerBase(seed) {}

 private:
  const HostPtr* TryPick(const LbContext&, const HostFilter& filter) override {
    return SampleAccepted(hosts(), sampler_, rng(), filter);
  }
  void OnHostsChanged() override { sampler_.Build(hosts()); }

  WeightedSampler sampler_;
};

class LeastRequestLoadBalancer final : public LoadBalancerBase {
 public:
  explicit LeastRequestLoadBalancer(uint64_t seed) : LoadBalancerBase(seed) {}

 private:
  const HostPtr* TryPick(const LbContext&, const HostFilter& filter) override {
    const std::vector<HostPtr>& all = hosts();
    const HostPtr* first = SampleAccepted(all, sampler_, rng(), filter);
    if (first == nullptr) return nullptr;
    // Distinct candidates: comparing a host with itself wastes the second
    // choice, which matters most in small clusters.
    HostFilter others = filter;
    others.exclude = first->get();
    const HostPtr* second = SampleAccepted(all, sampler_, rng(), others);
    if (second == nullptr) return first;
    // (active + 1) / weight, cross-multiplied to stay in integers. The +1
    // lets weight break ties between idle hosts.
    const uint64_t first_load =
        (static_cast<uint64_t>((*first)->active_requests()) + 1) * (*second)->weight();
    const uint64_t second_load =
        (static_cast<uint64_t>((*second)->active_requests()) + 1) * (*first)->weight();
    return second_load < first_load ? second : first;
  }
  void OnHostsChanged() override { sampler_.Build(hosts()); }

  WeightedSampler sampler_;
};

}  // namespace

std::unique_ptr<LoadBalancer> NewRandomLoadBalancer(uint64_t seed) {
  return std::make_unique<RandomLoadBalancer>(seed);
}

std::unique_ptr<LoadBalancer> NewLeastRequestLoadBalancer(uint64_t seed) {
  return std::make_unique<LeastRequestLoadBalancer>(seed);
}

}  // namespace cairn::sidecar::upstream
