// Building blocks shared by the load-balancer policies. Private to
// src/sidecar/upstream; not an API.
//
// Threading: everything here belongs to one per-worker balancer and is not
// thread-safe (see load_balancer.h).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "sidecar/upstream/host.h"
#include "sidecar/upstream/load_balancer.h"

namespace cairn::sidecar::upstream::internal {

// SplitMix64: tiny state, passes BigCrush, and fast enough that the pick path
// is dominated by host access, not by the generator. Not for cryptography.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n) by multiply-shift (Lemire); the bias, below n / 2^64,
  // is irrelevant for balancing. REQUIRES: n > 0.
  uint64_t Uniform(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(Next()) * n) >> 64);
  }

 private:
  uint64_t state_;
};

// MurmurHash3's fmix64: a bijective avalanche step.
inline uint64_t Mix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

// Which hosts one pass of the fallback ladder (load_balancer.h) may return.
struct HostFilter {
  bool require_available = true;
  const Host* avoid = nullptr;
  // A second host to skip; least request uses it to draw distinct candidates.
  const Host* exclude = nullptr;

  bool Accepts(const Host& host) const {
    return &host != avoid && &host != exclude && (!require_available || host.Available());
  }
};

// Implements ChooseHost()'s fallback ladder once for all policies; a policy
// supplies one pass (TryPick) and rebuilds its state in OnHostsChanged().
class LoadBalancerBase : public LoadBalancer {
 public:
  HostPtr ChooseHost(const LbContext& ctx) final;
  void UpdateHosts(std::shared_ptr<const HostSet> hosts) final;

 protected:
  explicit LoadBalancerBase(uint64_t seed);

  // Returns a host of hosts() that `filter` accepts, or nullptr when there is
  // none. Must find one whenever one exists (no "unlucky" nullptr), since the
  // ladder would otherwise fall into panic mode with healthy hosts around.
  // REQUIRES: !hosts().empty().
  virtual const HostPtr* TryPick(const LbContext& ctx, const HostFilter& filter) = 0;
  // Called after the snapshot changed; hosts() is the new set.
  virtual void OnHostsChanged() = 0;

  const std::vector<HostPtr>& hosts() const { return *hosts_; }
  Rng& rng() { return rng_; }
  // O(n) existence check; policies call it after a short fruitless search so
  // that panic mode costs O(n), not O(whole structure), per pick.
  bool AnyAccepted(const HostFilter& filter) const;

 private:
  std::shared_ptr<const HostSet> snapshot_;
  const std::vector<HostPtr>* hosts_;  // into snapshot_, or an empty vector
  Rng rng_;
};

// Samples host indexes in proportion to weight in O(1) (Vose's alias method,
// exact integer masses). Degenerates to a plain uniform draw when all
// weights are equal, the common case.
class WeightedSampler {
 public:
  void Build(const std::vector<HostPtr>& hosts);
  // REQUIRES: Build() was given a non-empty vector.
  uint32_t Sample(Rng& rng) const;
  // Host i's weight as of Build(): fallbacks draw with the same weights as
  // Sample() even if Host::set_weight() ran since.
  uint32_t weight(uint32_t i) const { return weights_[i]; }

 private:
  uint32_t size_ = 0;
  bool uniform_ = true;
  std::vector<uint32_t> weights_;
  uint64_t total_ = 0;           // sum of weights; each bin holds this much mass
  std::vector<uint64_t> keep_;   // mass of bin i that belongs to host i
  std::vector<uint32_t> alias_;  // owner of the rest of bin i
};

}  // namespace cairn::sidecar::upstream::internal
