#include "sidecar/http/route_table.h"

namespace cairn::sidecar {
namespace {

std::string_view PathOnly(std::string_view target) {
  size_t q = target.find('?');
  return q == std::string_view::npos ? target : target.substr(0, q);
}

std::string_view HostOnly(std::string_view authority) {
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    return close == std::string_view::npos ? authority : authority.substr(0, close + 1);
  }
  size_t colon = authority.rfind(':');
  return colon == std::string_view::npos ? authority : authority.substr(0, colon);
}

}  // namespace

RouteTable::RouteTable(std::vector<Route> routes) : routes_(std::move(routes)) {}

const Route* RouteTable::Match(const RequestHead& head) const {
  std::string_view path = PathOnly(head.path);
  for (const Route& route : routes_) {
    if (!route.path.empty()) {
      if (path != route.path) continue;
    } else if (path.substr(0, route.prefix.size()) != route.prefix) {
      continue;
    }
    if (!route.host.empty() && HostOnly(head.authority) != route.host) continue;
    bool headers_ok = true;
    for (const HeaderMatch& match : route.headers) {
      const std::string* value = FindHeader(head.headers, match.name);
      if (value == nullptr || (!match.value.empty() && *value != match.value)) {
        headers_ok = false;
        break;
      }
    }
    if (headers_ok) return &route;
  }
  return nullptr;
}

const std::string& RouteTable::PickCluster(const Route& route, uint64_t random) {
  if (route.weighted_clusters.empty()) return route.cluster;
  uint64_t total = 0;
  for (const auto& w : route.weighted_clusters) total += w.weight;
  if (total == 0) return route.weighted_clusters.front().cluster;
  uint64_t point = random % total;
  for (const auto& w : route.weighted_clusters) {
    if (point < w.weight) return w.cluster;
    point -= w.weight;
  }
  return route.weighted_clusters.back().cluster;
}

}  // namespace cairn::sidecar
