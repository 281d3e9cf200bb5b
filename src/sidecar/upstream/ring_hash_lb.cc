// Ketama-style consistent hashing (see NewRingHashLoadBalancer).
#include <algorithm>
#include <charconv>
#include <numeric>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "sidecar/upstream/lb_internal.h"
#include "sidecar/upstream/load_balancer.h"

namespace cairn::sidecar::upstream {
namespace {

using internal::HostFilter;
using internal::LoadBalancerBase;

class RingHashLoadBalancer final : public LoadBalancerBase {
 public:
  RingHashLoadBalancer(uint64_t seed, RingHashConfig config)
      : LoadBalancerBase(seed), config_(config) {
    config_.replicas_per_host = std::max<uint32_t>(config_.replicas_per_host, 1);
    config_.max_ring_size = std::max<uint32_t>(config_.max_ring_size, 1);
  }

 private:
  // Ring points walked before checking that an acceptable host exists at all:
  // without the check, panic mode would walk the whole ring on every pick.
  static constexpr size_t kStepsBeforeExistenceCheck = 32;

  const HostPtr* TryPick(const LbContext& ctx, const HostFilter& filter) override {
    const size_t size = hashes_.size();
    if (size == 0) return nullptr;
    // Mixing lets callers pass raw ids (1, 2, 3 ...) without them all landing
    // on the arc before the first point; it is a bijection, so distinct keys
    // stay distinct.
    const uint64_t key = ctx.hash_key.has_value() ? internal::Mix64(*ctx.hash_key) : rng().Next();
    size_t pos = static_cast<size_t>(std::lower_bound(hashes_.begin(), hashes_.end(), key) -
                                     hashes_.begin());
    if (pos == size) pos = 0;
    // Walking clockwise past rejected hosts sends an ejected host's keys to
    // the hosts that would own them were it removed, and no other key moves.
    const std::vector<HostPtr>& all = hosts();
    for (size_t step = 1; step <= size; ++step) {
      const HostPtr& host = all[owners_[pos]];
      if (filter.Accepts(*host)) return &host;
      if (++pos == size) pos = 0;
      if (step == kStepsBeforeExistenceCheck && !AnyAccepted(filter)) return nullptr;
    }
    return nullptr;
  }

  void OnHostsChanged() override {
    hashes_.clear();
    owners_.clear();
    const std::vector<HostPtr>& all = hosts();
    if (all.empty()) return;

    // Replicas in proportion to weight / average weight, in integers:
    // round(replicas * w * n / total).
    const uint64_t n = all.size();
    std::vector<uint64_t> weights(n);
    for (size_t i = 0; i < n; ++i) weights[i] = all[i]->weight();
    const uint64_t total_weight = std::accumulate(weights.begin(), weights.end(), uint64_t{0});
    std::vector<uint64_t> counts(n);
    uint64_t total_points = 0;
    for (size_t i = 0; i < n; ++i) {
      counts[i] = std::max<uint64_t>(
          1, (config_.replicas_per_host * weights[i] * n + total_weight / 2) / total_weight);
      total_points += counts[i];
    }
    if (total_points > config_.max_ring_size) {
      const double scale =
          static_cast<double>(config_.max_ring_size) / static_cast<double>(total_points);
      total_points = 0;
      for (uint64_t& count : counts) {
        count = std::max<uint64_t>(1, static_cast<uint64_t>(static_cast<double>(count) * scale));
        total_points += count;
      }
    }

    // A host's points are hash("<address>_<k>") for k < its count: they
    // depend on nothing but the host itself, and a count change adds or
    // drops points only at the end of that sequence.
    struct Point {
      uint64_t hash;
      uint32_t owner;
    };
    std::vector<Point> points;
    points.reserve(total_points);
    std::string buf;
    for (uint32_t i = 0; i < n; ++i) {
      const std::string& address = all[i]->address_string();
      buf.assign(address);
      buf.push_back('_');
      const size_t prefix = buf.size();
      for (uint64_t k = 0; k < counts[i]; ++k) {
        char digits[24];
        auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), k);
        (void)ec;  // 24 digits always fit a uint64
        buf.resize(prefix);
        buf.append(digits, end);
        points.push_back(Point{StableHash64(buf), i});
      }
    }
    // Ties (a 64-bit collision, or a duplicated address) resolve by address,
    // not by index, so the order does not depend on the set's order.
    std::sort(points.begin(), points.end(), [&all](const Point& a, const Point& b) {
      if (a.hash != b.hash) return a.hash < b.hash;
      return std::tie(all[a.owner]->address_string(), a.owner) <
             std::tie(all[b.owner]->address_string(), b.owner);
    });
    hashes_.reserve(points.size());
    owners_.reserve(points.size());
    for (const Point& point : points) {
      hashes_.push_back(point.hash);
      owners_.push_back(point.owner);
    }
  }

  RingHashConfig config_;
  // The ring, as parallel arrays so the binary search touches only hashes.
  std::vector<uint64_t> hashes_;  // sorted
  std::vector<uint32_t> owners_;  // index into hosts()
};

}  // namespace

std::unique_ptr<LoadBalancer> NewRingHashLoadBalancer(uint64_t seed, RingHashConfig config) {
  return std::make_unique<RingHashLoadBalancer>(seed, config);
}

}  // namespace cairn::sidecar::upstream
