#include "sidecar/rpc/rpc_route_table.h"

namespace cairn::sidecar {

RpcRouteTable::RpcRouteTable(std::vector<RpcRoute> routes) : routes_(std::move(routes)) {
  for (size_t i = 0; i < routes_.size(); ++i) {
    if (!routes_[i].service.empty()) {
      exact_.emplace(routes_[i].service, i);  // keeps the first of duplicates
    } else {
      ordered_.push_back(i);
    }
  }
}

const RpcRoute* RpcRouteTable::Match(std::string_view service) const {
  if (!exact_.empty() && !service.empty()) {
    // Debian's abseil has its own string_view type: convert for the lookup.
    auto it = exact_.find(absl::string_view(service.data(), service.size()));
    if (it != exact_.end()) return &routes_[it->second];
  }
  for (size_t i : ordered_) {
    const RpcRoute& route = routes_[i];
    if (service.substr(0, route.service_prefix.size()) == route.service_prefix) return &route;
  }
  return nullptr;
}

}  // namespace cairn::sidecar
