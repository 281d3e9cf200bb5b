// The fallback ladder shared by all policies, round robin, weighted round
// robin, the factory and the stable hash. Random and least request live in
// random_lb.cc, ring hash in ring_hash_lb.cc.
#include "sidecar/upstream/load_balancer.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "sidecar/upstream/lb_internal.h"

namespace cairn::sidecar::upstream {
namespace internal {
namespace {
const std::vector<HostPtr>& EmptyHosts() {
  static const auto* const kEmpty = new std::vector<HostPtr>();
  return *kEmpty;
}
}  // namespace

LoadBalancerBase::LoadBalancerBase(uint64_t seed) : hosts_(&EmptyHosts()), rng_(seed) {}

void LoadBalancerBase::UpdateHosts(std::shared_ptr<const HostSet> hosts) {
  snapshot_ = std::move(hosts);
  hosts_ = snapshot_ != nullptr ? &snapshot_->hosts() : &EmptyHosts();
  OnHostsChanged();
}

HostPtr LoadBalancerBase::ChooseHost(const LbContext& ctx) {
  if (hosts_->empty()) return nullptr;
  HostFilter filter{.require_available = true, .avoid = ctx.avoid};
  if (const HostPtr* host = TryPick(ctx, filter)) return *host;
  if (ctx.avoid != nullptr) {
    filter.avoid = nullptr;  // rule 2: the avoided host may be the only good one
    if (const HostPtr* host = TryPick(ctx, filter)) return *host;
    filter.avoid = ctx.avoid;
  }
  filter.require_available = false;  // rule 3: panic
  if (const HostPtr* host = TryPick(ctx, filter)) return *host;
  filter.avoid = nullptr;  // a one-host set whose only host is to be avoided
  if (const HostPtr* host = TryPick(ctx, filter)) return *host;
  return nullptr;  // unreachable: the filter accepts every host
}

bool LoadBalancerBase::AnyAccepted(const HostFilter& filter) const {
  return std::any_of(hosts_->begin(), hosts_->end(),
                     [&filter](const HostPtr& h) { return filter.Accepts(*h); });
}

}  // namespace internal

namespace {

using internal::HostFilter;
using internal::LoadBalancerBase;

class RoundRobinLoadBalancer final : public LoadBalancerBase {
 public:
  explicit RoundRobinLoadBalancer(uint64_t seed) : LoadBalancerBase(seed) {}

 private:
  // Skipped hosts are passed over, not retried later, so each available host
  // still gets one pick per cycle.
  const HostPtr* TryPick(const LbContext&, const HostFilter& filter) override {
    const std::vector<HostPtr>& all = hosts();
    const size_t n = all.size();
    size_t index = next_ < n ? next_ : 0;
    for (size_t tried = 0; tried < n; ++tried) {
      const HostPtr& host = all[index];
      if (++index == n) index = 0;
      if (filter.Accepts(*host)) {
        next_ = index;
        return &host;
      }
    }
    return nullptr;
  }

  // Each worker starts at a seed-chosen host: workers that all began at host
  // 0 would send their first requests after every update to the same host.
  void OnHostsChanged() override { next_ = hosts().empty() ? 0 : rng().Uniform(hosts().size()); }

  size_t next_ = 0;
};

// Earliest deadline first: host h is due at (k + phase_h) / weight_h for
// k = 0, 1, ...; each pick takes the host due soonest. Phases follow the
// golden-ratio sequence (rotated by the seed) rather than all being 0: with
// equal phases, light hosts fall due together and leave long runs of the
// heavy ones between them ({5,1,1} would give A A A A A B C ...).
class WeightedRoundRobinLoadBalancer final : public LoadBalancerBase {
 public:
  explicit WeightedRoundRobinLoadBalancer(uint64_t seed)
      : LoadBalancerBase(seed),
        // Mixed so that nearby seeds (worker 1, 2, ...) get unrelated phases.
        rotation_(static_cast<double>(internal::Mix64(seed) >> 11) * 0x1.0p-53) {}

 private:
  struct Entry {
    double deadline;
    uint32_t index;
  };
  // std::*_heap keep the "largest" first: invert to get the earliest
  // deadline, ties to the lower index so equal weights cycle in set order.
  static bool Later(const Entry& a, const Entry& b) {
    return a.deadline != b.deadline ? a.deadline > b.deadline : a.index > b.index;
  }

  static constexpr size_t kPopsBeforeExistenceCheck = 8;

  const HostPtr* TryPick(const LbContext&, const HostFilter& filter) override {
    const std::vector<HostPtr>& all = hosts();
    skipped_.clear();
    const HostPtr* picked = nullptr;
    double now = 0;
    while (!heap_.empty()) {
      std::pop_heap(heap_.begin(), heap_.end(), Later);
      Entry entry = heap_.back();
      heap_.pop_back();
      now = entry.deadline;
      if (filter.Accepts(*all[entry.index])) {
        picked = &all[entry.index];
        entry.deadline += step_[entry.index];
        Push(entry);
        break;
      }
      skipped_.push_back(entry);
      if (skipped_.size() == kPopsBeforeExistenceCheck && !AnyAccepted(filter)) break;
    }
    // After a pick, a skipped host loses this turn and is rescheduled from
    // now, as if it had been picked: keeping its old deadline would let it
    // bank turns while unavailable and burst when it comes back. A pass that
    // picks nothing leaves the schedule as it was, so the next rung of the
    // fallback ladder (panic) still sees the hosts' own phases.
    for (Entry& entry : skipped_) {
      if (picked != nullptr) entry.deadline = now + step_[entry.index];
      Push(entry);
    }
    return picked;
  }

  void Push(const Entry& entry) {
    heap_.push_back(entry);
    std::push_heap(heap_.begin(), heap_.end(), Later);
  }

  void OnHostsChanged() override {
    constexpr double kGoldenFraction = 0.6180339887498949;
    const std::vector<HostPtr>& all = hosts();
    heap_.clear();
    step_.resize(all.size());
    for (uint32_t i = 0; i < all.size(); ++i) {
      step_[i] = 1.0 / static_cast<double>(all[i]->weight());
      double phase = rotation_ + kGoldenFraction * i;
      phase -= static_cast<double>(static_cast<uint64_t>(phase));
      heap_.push_back(Entry{phase * step_[i], i});
    }
    std::make_heap(heap_.begin(), heap_.end(), Later);
  }

  const double rotation_;       // in [0, 1)
  std::vector<Entry> heap_;     // one entry per host
  std::vector<double> step_;    // 1 / weight, by host index
  std::vector<Entry> skipped_;  // scratch, kept to avoid allocating per pick
};

}  // namespace

std::unique_ptr<LoadBalancer> NewRoundRobinLoadBalancer(uint64_t seed) {
  return std::make_unique<RoundRobinLoadBalancer>(seed);
}

std::unique_ptr<LoadBalancer> NewWeightedRoundRobinLoadBalancer(uint64_t seed) {
  return std::make_unique<WeightedRoundRobinLoadBalancer>(seed);
}

absl::StatusOr<std::unique_ptr<LoadBalancer>> CreateLoadBalancer(std::string_view policy,
                                                                 uint64_t seed) {
  if (policy == "round_robin") return NewRoundRobinLoadBalancer(seed);
  if (policy == "weighted_round_robin") return NewWeightedRoundRobinLoadBalancer(seed);
  if (policy == "random") return NewRandomLoadBalancer(seed);
  if (policy == "least_request") return NewLeastRequestLoadBalancer(seed);
  if (policy == "ring_hash") return NewRingHashLoadBalancer(seed);
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown load balancing policy '", absl::string_view(policy.data(), policy.size()),
      "' (want round_robin, weighted_round_robin, random, least_request or ring_hash)"));
}

uint64_t StableHash64(std::string_view data, uint64_t seed) {
  constexpr uint64_t kFnvOffsetBasis = 0xcbf29ce484222325ULL;
  constexpr uint64_t kFnvPrime = 0x100000001b3ULL;
  uint64_t hash = kFnvOffsetBasis ^ internal::Mix64(seed);
  for (char c : data) {
    hash ^= static_cast<uint8_t>(c);
    hash *= kFnvPrime;
  }
  // FNV alone barely changes the high bits for inputs differing in the last
  // byte ("host_1" vs "host_2"), which would cluster ring points.
  return internal::Mix64(hash ^ data.size());
}

}  // namespace cairn::sidecar::upstream
