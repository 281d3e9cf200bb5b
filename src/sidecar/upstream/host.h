// Upstream hosts of a cluster and the immutable host-set snapshot that load
// balancers pick from.
//
// Ownership and threading (Envoy's model):
//   - A Host is shared (HostPtr) by the main thread, which creates it and
//     updates its health, and by every worker, whose load balancers pick it
//     and count requests on it. Its address, zone and metadata are immutable;
//     health flags, weight and the active-request count are std::atomic with
//     relaxed ordering: they are advisory inputs to balancing decisions, never
//     used to publish other memory, so no stronger ordering is needed.
//   - A HostSet is an immutable snapshot (shared_ptr<const HostSet>) built on
//     the main thread when membership or weights change and posted to each
//     worker. It is safe to read from any thread. Health changes need no new
//     snapshot: load balancers read Host::Available() at pick time.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace cairn::sidecar::upstream {

// A host:port pair. IPv6 literals are stored without brackets ("::1").
struct HostAddress {
  std::string host;
  uint16_t port = 0;

  // "host:port", or "[v6]:port" when host contains ':'.
  std::string ToString() const;
  friend bool operator==(const HostAddress&, const HostAddress&) = default;
};

// Parses "host:port" or "[v6]:port". The port is required (1..65535);
// unbracketed IPv6 literals are rejected because their last ':' is ambiguous.
absl::StatusOr<HostAddress> ParseHostAddress(std::string_view host_port);

// Parses an endpoint as registries publish it:
//   host:port
//   scheme://host:port[/path][?k=v&weight=N...][#fragment]
// (host may be a bracketed IPv6 literal). When `weight` is non-null it gets
// the `weight` query parameter, or Host::kDefaultWeight when absent. Weights
// above Host::kMaxWeight are clamped (other registries use larger scales and
// the endpoint is still usable); weight=0, a non-numeric or a repeated weight
// is an error, since guessing could route traffic an operator meant to drain.
// Userinfo ("user@host") is rejected: a sidecar endpoint never carries one.
absl::StatusOr<HostAddress> ParseEndpointUrl(std::string_view url, uint32_t* weight);

// Why a host is not available. Several may be set at once.
enum class HealthFlag : uint32_t {
  kFailedActiveHealthCheck = 1u << 0,
  kEjectedByOutlierDetection = 1u << 1,
};

class Host {
 public:
  using Metadata = absl::flat_hash_map<std::string, std::string>;

  static constexpr uint32_t kMinWeight = 1;
  static constexpr uint32_t kMaxWeight = 128;
  static constexpr uint32_t kDefaultWeight = 1;

  // `weight` is clamped to [kMinWeight, kMaxWeight].
  explicit Host(HostAddress address, uint32_t weight = kDefaultWeight, std::string zone = "",
                Metadata metadata = {});
  Host(const Host&) = delete;
  Host& operator=(const Host&) = delete;

  const HostAddress& address() const { return address_; }
  // address().ToString(), computed once: ring hash and logs use it.
  const std::string& address_string() const { return address_string_; }
  const std::string& zone() const { return zone_; }
  const Metadata& metadata() const { return metadata_; }
  // nullptr when the key is absent.
  const std::string* FindMetadata(std::string_view key) const;

  // Load balancers that precompute from weights (weighted round robin,
  // random, ring hash) only see a change at their next UpdateHosts(), so the
  // main thread publishes a new HostSet after calling set_weight().
  uint32_t weight() const { return weight_.load(std::memory_order_relaxed); }
  void set_weight(uint32_t weight);  // clamped like the constructor's

  void SetHealthFlag(HealthFlag flag);
  void ClearHealthFlag(HealthFlag flag);
  bool HasHealthFlag(HealthFlag flag) const;
  // True when no health flag is set: the host may receive new requests.
  bool Available() const { return health_flags_.load(std::memory_order_relaxed) == 0; }

  // In-flight requests, maintained by whoever sends them (the router) and read
  // by the least-request balancer. Prefer ActiveRequestHandle, which keeps
  // increments and decrements paired.
  uint32_t active_requests() const { return active_requests_.load(std::memory_order_relaxed); }
  void IncActiveRequests() { active_requests_.fetch_add(1, std::memory_order_relaxed); }
  void DecActiveRequests() { active_requests_.fetch_sub(1, std::memory_order_relaxed); }

 private:
  const HostAddress address_;
  const std::string address_string_;
  const std::string zone_;
  const Metadata metadata_;
  std::atomic<uint32_t> weight_;
  std::atomic<uint32_t> health_flags_{0};
  std::atomic<uint32_t> active_requests_{0};
};

// Non-const: pickers bump the host's request counter.
using HostPtr = std::shared_ptr<Host>;

// Counts one in-flight request on a host for as long as it lives, so the count
// is decremented on every exit path of the request. Movable, not copyable.
class ActiveRequestHandle {
 public:
  ActiveRequestHandle() = default;
  explicit ActiveRequestHandle(HostPtr host);
  ActiveRequestHandle(ActiveRequestHandle&& other) noexcept = default;
  ActiveRequestHandle& operator=(ActiveRequestHandle&& other) noexcept;
  ~ActiveRequestHandle();

  const HostPtr& host() const { return host_; }

 private:
  HostPtr host_;
};

// Immutable snapshot of a cluster's hosts (see the header comment).
class HostSet {
 public:
  // Null entries are dropped.
  explicit HostSet(std::vector<HostPtr> hosts);
  static std::shared_ptr<const HostSet> Create(std::vector<HostPtr> hosts);

  const std::vector<HostPtr>& hosts() const { return hosts_; }
  size_t size() const { return hosts_.size(); }
  bool empty() const { return hosts_.empty(); }
  // O(n), reads live health: for stats and admin pages, not the pick path.
  size_t CountAvailable() const;

 private:
  const std::vector<HostPtr> hosts_;
};

}  // namespace cairn::sidecar::upstream
