// RouteTable: a listener's routes, matched in order (first match wins).
//
// A route matches when every condition it names holds: exact path, or path
// prefix; authority (port ignored); each header (exact value, or presence).
//
// Immutable after construction: shared read-only by every worker.
#pragma once

#include <string>
#include <vector>

#include "sidecar/codec/codec.h"
#include "sidecar/config/sidecar_config.h"

namespace cairn::sidecar {

class RouteTable {
 public:
  explicit RouteTable(std::vector<Route> routes);

  // nullptr when no route matches.
  const Route* Match(const RequestHead& head) const;

  // The cluster of a matched route; for weighted clusters, the one `random`
  // lands on (random is any uniformly distributed number).
  static const std::string& PickCluster(const Route& route, uint64_t random);

 private:
  std::vector<Route> routes_;
};

}  // namespace cairn::sidecar
