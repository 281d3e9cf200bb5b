// RpcRouteTable: a listener's routes of one RPC protocol (bolt_routes,
// dubbo_routes), matched by a request's service (RpcMessage::service: Bolt's
// target service header, Dubbo's service path).
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

namespace cairn::sidecar {

class RpcRouteTable {
 public:
  explicit RpcRouteTable(std::vector<RpcRoute> routes);

  // nullptr when no route matches. An empty service (a request without the
  // routing headers) matches only a match-all route (or an empty prefix).
  const RpcRoute* Match(std::string_view service) const;

  bool empty() const { return routes_.empty(); }

 private:
  std::vector<RpcRoute> routes_;
  // Exact services -> index into routes_ (the first route naming it).
  absl::flat_hash_map<std::string, size_t> exact_;
  // Prefix and match-all routes, in order (indexes into routes_).
  std::vector<size_t> ordered_;
};

}  // namespace cairn::sidecar
