// BoltRouteTable: a listener's Bolt routes, matched by a request's service
// (see RoutingService in codec/bolt/bolt_frame.h).
//
// Order: a route with an exact `service` wins (one hash lookup, so a table
// of thousands of services costs the same as one); otherwise prefix routes
// and match-all routes are tried in config order, first match wins.
//
// Immutable after construction: shared read-only by every worker.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "sidecar/config/sidecar_config.h"

namespace cairn::sidecar::bolt {

class BoltRouteTable {
 public:
  explicit BoltRouteTable(std::vector<BoltRoute> routes);

  // nullptr when no route matches. An empty service (a request without the
  // routing headers) matches only a match-all route (or an empty prefix).
  const BoltRoute* Match(std::string_view service) const;

  bool empty() const { return routes_.empty(); }

 private:
  std::vector<BoltRoute> routes_;
  // Exact services -> index into routes_ (the first route naming it).
  absl::flat_hash_map<std::string, size_t> exact_;
  // Prefix and match-all routes, in order (indexes into routes_).
  std::vector<size_t> ordered_;
};

}  // namespace cairn::sidecar::bolt
