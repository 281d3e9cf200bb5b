// Load balancers: pick one upstream host of a cluster per request.
//
// Threading and ownership: a LoadBalancer is a per-worker object, used only
// by the worker thread that owns it; it is NOT thread-safe and takes no locks.
// It keeps the shared_ptr<const HostSet> snapshot last given to UpdateHosts()
// (posted by the main thread when membership or weights change) plus its own
// derived state (cursor, EDF schedule, alias table, hash ring). Hosts are
// shared across workers; a balancer only reads their atomics.
//
// Rules every policy follows, in this order:
//   1. Pick among available hosts (Host::Available(), read live, so an
//      ejection takes effect on the very next pick without a new snapshot),
//      other than ctx.avoid.
//   2. If ctx.avoid is the only available host, return it: a retry to the
//      host that just failed beats spreading load over hosts known bad.
//   3. Panic mode: if no host is available but the set is not empty, pick as
//      if all hosts were available (still avoiding ctx.avoid when possible).
//      This is Envoy's panic threshold fixed at 0%: failing every request is
//      worse than trying hosts whose health state may be stale.
//   4. nullptr only when the set is empty.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "absl/status/statusor.h"
#include "sidecar/upstream/host.h"

namespace cairn::sidecar::upstream {

struct LbContext {
  // Ring hash only: the request's affinity key (e.g. HashKey(header value)).
  // Any 64-bit value works, small integers included: the balancer mixes it.
  // Without one, ring hash picks a random point.
  std::optional<uint64_t> hash_key = std::nullopt;
  // Retries: prefer a host other than this one (the one that just failed).
  const Host* avoid = nullptr;
};

class LoadBalancer {
 public:
  virtual ~LoadBalancer() = default;

  // Returns the host for this request, or nullptr when the set is empty (or
  // before the first UpdateHosts()). See the rules in the header comment.
  virtual HostPtr ChooseHost(const LbContext& ctx) = 0;

  // Replaces the host snapshot; the balancer rebuilds its derived state. A
  // null pointer is treated as an empty set.
  virtual void UpdateHosts(std::shared_ptr<const HostSet> hosts) = 0;
};

// Plain round robin over the hosts in set order; ignores weights.
std::unique_ptr<LoadBalancer> NewRoundRobinLoadBalancer(uint64_t seed);

// Weighted round robin, EDF-scheduled: host h is due every 1/weight(h) units
// of virtual time, so picks interleave in proportion to weight instead of
// coming in per-host bursts. O(log n) per pick.
std::unique_ptr<LoadBalancer> NewWeightedRoundRobinLoadBalancer(uint64_t seed);

// Random, proportional to weight (uniform when all weights are equal).
std::unique_ptr<LoadBalancer> NewRandomLoadBalancer(uint64_t seed);

// Least request, power of two choices: draw two distinct candidates at random
// in proportion to weight, keep the one with the lower (active + 1) / weight.
// Weight therefore counts twice: heavier hosts are drawn more often, and may
// carry proportionally more in-flight requests before losing a comparison.
std::unique_ptr<LoadBalancer> NewLeastRequestLoadBalancer(uint64_t seed);

struct RingHashConfig {
  // Virtual nodes of a host of average weight; a host of weight w gets
  // round(replicas * w / average weight), at least 1. 160 is Ketama's value:
  // each host's share of keys is within ~8% (one standard deviation) of fair.
  uint32_t replicas_per_host = 160;
  // Upper bound on the ring's points (memory: 12 bytes each, per worker).
  // Above it replicas are scaled down, which costs key stability.
  uint32_t max_ring_size = 4 * 1024 * 1024;
};

// Consistent hashing on a Ketama-style ring. A host's points depend only on
// its address, so adding a host moves only the keys it takes over (~1/n of
// them) and removing or ejecting one moves only its own keys (to the next
// host clockwise). With unequal weights the replica counts of all hosts are
// normalised by the average weight, so a membership change that shifts the
// average also moves the few keys of the points added or dropped.
std::unique_ptr<LoadBalancer> NewRingHashLoadBalancer(uint64_t seed, RingHashConfig config = {});

// "round_robin" | "weighted_round_robin" | "random" | "least_request" |
// "ring_hash" (default RingHashConfig). `seed` makes the balancer's random
// choices reproducible; give each worker a different one so workers do not
// start in lockstep on the same host.
absl::StatusOr<std::unique_ptr<LoadBalancer>> CreateLoadBalancer(std::string_view policy,
                                                                 uint64_t seed);

// A 64-bit hash that is stable across processes, builds and platforms (unlike
// absl::Hash, which is seeded per process): every sidecar must send the same
// key to the same host, and ring points must not move on restart. FNV-1a
// over the bytes followed by a 64-bit avalanche finaliser. Never change it:
// doing so reshuffles every ring in a mixed-version fleet.
uint64_t StableHash64(std::string_view data, uint64_t seed = 0);

// The ring-hash key for a request attribute such as a header value.
inline uint64_t HashKey(std::string_view value) { return StableHash64(value); }

}  // namespace cairn::sidecar::upstream
