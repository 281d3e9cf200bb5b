#include "registry/xds/xds_resources.h"

#include <arpa/inet.h>

#include <charconv>
#include <map>
#include <set>

#include "common/data_info.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "envoy/config/route/v3/route.pb.h"
#include "envoy/extensions/filters/http/router/v3/router.pb.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "envoy/extensions/upstreams/http/v3/http_protocol_options.pb.h"

namespace cairn::xds {
namespace {

namespace core = envoy::config::core::v3;
namespace hcm = envoy::extensions::filters::network::http_connection_manager::v3;

constexpr std::string_view kTypeUrls[kResourceTypes] = {
    "type.googleapis.com/envoy.config.listener.v3.Listener",
    "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
    "type.googleapis.com/envoy.config.cluster.v3.Cluster",
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
};
constexpr std::string_view kShortNames[kResourceTypes] = {"lds", "rds", "cds", "eds"};
constexpr std::string_view kHcmTypeUrl =
    "type.googleapis.com/"
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
constexpr std::string_view kRouterTypeUrl =
    "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
constexpr uint32_t kMaxWeight = 1000;

void SetAds(core::ConfigSource* source) {
  source->mutable_ads();
  source->set_resource_api_version(core::V3);
}

// "HOST:PORT" (HOST may be "[v6]") at the start of `rest`, up to a '/', '?'
// or '#'. False if it is not one.
bool ParseAuthority(std::string_view rest, std::string* host, uint32_t* port) {
  size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  size_t colon = authority.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  std::string_view h = authority.substr(0, colon);
  std::string_view p = authority.substr(colon + 1);
  if (h.front() == '[') {
    if (h.size() < 3 || h.back() != ']') return false;
    h = h.substr(1, h.size() - 2);
  } else if (h.find(':') != std::string_view::npos) {
    return false;  // a v6 address must be bracketed
  }
  uint32_t value = 0;
  auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
  if (ec != std::errc() || ptr != p.data() + p.size() || value == 0 || value > 65535) return false;
  // xDS clients take only IP literals (a host name makes gRPC reject the
  // whole assignment), so an endpoint must be one.
  std::string literal(h);
  unsigned char buffer[sizeof(in6_addr)];
  if (inet_pton(AF_INET, literal.c_str(), buffer) != 1 &&
      inet_pton(AF_INET6, literal.c_str(), buffer) != 1) {
    return false;
  }
  *host = std::move(literal);
  *port = value;
  return true;
}

int HealthOf(const PublisherRecord& publisher) {
  auto it = publisher.attributes.find("health");
  if (it == publisher.attributes.end()) return core::HEALTHY;
  const std::string& v = it->second;
  if (v == "unhealthy") return core::UNHEALTHY;
  if (v == "draining") return core::DRAINING;
  if (v == "degraded") return core::DEGRADED;
  return core::HEALTHY;
}

uint32_t WeightOf(const PublisherRecord& publisher) {
  auto it = publisher.attributes.find("weight");
  if (it == publisher.attributes.end()) return 1;
  uint32_t value = 0;
  const std::string& v = it->second;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), value);
  if (ec != std::errc() || ptr != v.data() + v.size() || value == 0) return 1;
  return std::min(value, kMaxWeight);
}

}  // namespace

std::string_view TypeUrl(ResourceType type) { return kTypeUrls[static_cast<int>(type)]; }

std::optional<ResourceType> TypeFromUrl(std::string_view type_url) {
  for (int i = 0; i < kResourceTypes; ++i) {
    if (kTypeUrls[i] == type_url) return static_cast<ResourceType>(i);
  }
  return std::nullopt;
}

std::string_view ShortName(ResourceType type) { return kShortNames[static_cast<int>(type)]; }

std::optional<std::string> DataInfoIdOfName(std::string_view name) {
  pb::DataInfoKey key;
  if (name.find("#@#") != std::string_view::npos) {
    if (!ParseDataInfoId(name, &key)) return std::nullopt;
  } else {
    key.set_data_id(std::string(name));
  }
  key = NormalizeKey(key);
  if (!ValidateKey(key).ok()) return std::nullopt;
  return DataInfoId(key);
}

std::string NameOfDataInfoId(std::string_view data_info_id) {
  pb::DataInfoKey key;
  if (ParseDataInfoId(data_info_id, &key) && key.group() == kDefaultGroup &&
      key.instance_id() == kDefaultInstanceId) {
    return key.data_id();
  }
  return std::string(data_info_id);
}

std::optional<XdsEndpoint> EndpointOf(const PublisherRecord& publisher,
                                      const std::vector<std::string>& schemes) {
  size_t best_rank = schemes.size();
  XdsEndpoint best;
  for (const std::string& url : publisher.data) {
    std::string_view text = url;
    std::string_view scheme;
    size_t sep = text.find("://");
    if (sep != std::string_view::npos) {
      scheme = text.substr(0, sep);
      text.remove_prefix(sep + 3);
    }
    size_t rank = 0;
    while (rank < best_rank && schemes[rank] != scheme) ++rank;
    if (rank >= best_rank) continue;
    XdsEndpoint candidate;
    candidate.scheme = std::string(scheme);
    if (!ParseAuthority(text, &candidate.host, &candidate.port)) continue;
    best = std::move(candidate);
    best_rank = rank;
    if (rank == 0) break;
  }
  if (best_rank == schemes.size()) return std::nullopt;
  best.zone = publisher.zone;
  best.weight = WeightOf(publisher);
  best.health = HealthOf(publisher);
  return best;
}

std::string BuildListener(const std::string& name) {
  hcm::HttpConnectionManager manager;
  manager.set_stat_prefix(name);
  auto* rds = manager.mutable_rds();
  SetAds(rds->mutable_config_source());
  rds->set_route_config_name(name);
  auto* router = manager.add_http_filters();
  router->set_name("envoy.filters.http.router");
  router->mutable_typed_config()->set_type_url(std::string(kRouterTypeUrl));
  router->mutable_typed_config()->set_value(
      envoy::extensions::filters::http::router::v3::Router().SerializeAsString());

  envoy::config::listener::v3::Listener listener;
  listener.set_name(name);
  auto* any = listener.mutable_api_listener()->mutable_api_listener();
  any->set_type_url(std::string(kHcmTypeUrl));
  any->set_value(manager.SerializeAsString());
  return listener.SerializeAsString();
}

std::string BuildRouteConfiguration(const std::string& name, const ResourceOptions& options) {
  envoy::config::route::v3::RouteConfiguration config;
  config.set_name(name);
  auto* host = config.add_virtual_hosts();
  host->set_name(name);
  host->add_domains()->push_back('*');  // add_domains("*") trips GCC 12's -Wrestrict
  auto* route = host->add_routes();
  route->mutable_match()->set_prefix("");
  auto* action = route->mutable_route();
  action->set_cluster(name);
  if (options.ring_hash_services.count(name) != 0) {
    action->add_hash_policy()->mutable_header()->set_header_name(options.hash_header);
  }
  return config.SerializeAsString();
}

bool SpeaksHttp2(const DatumSnapshot& snapshot, const ResourceOptions& options) {
  for (const auto& publisher : snapshot.publishers) {
    auto endpoint = EndpointOf(*publisher, options.endpoint_schemes);
    if (!endpoint) continue;
    const std::string& s = endpoint->scheme;
    return s == "grpc" || s == "grpcs" || s == "h2c" || s == "h2";
  }
  return false;
}

std::string BuildCluster(const std::string& name, const ResourceOptions& options, bool http2) {
  envoy::config::cluster::v3::Cluster cluster;
  cluster.set_name(name);
  cluster.set_type(envoy::config::cluster::v3::Cluster::EDS);
  auto* eds = cluster.mutable_eds_cluster_config();
  SetAds(eds->mutable_eds_config());
  eds->set_service_name(name);
  cluster.mutable_connect_timeout()->set_seconds(5);
  if (options.ring_hash_services.count(name) != 0) {
    cluster.set_lb_policy(envoy::config::cluster::v3::Cluster::RING_HASH);
    auto* ring = cluster.mutable_ring_hash_lb_config();
    ring->set_hash_function(envoy::config::cluster::v3::Cluster::RingHashLbConfig::XX_HASH);
    ring->mutable_minimum_ring_size()->set_value(1024);
    ring->mutable_maximum_ring_size()->set_value(8 * 1024 * 1024);
  } else {
    cluster.set_lb_policy(envoy::config::cluster::v3::Cluster::ROUND_ROBIN);
  }
  if (http2) {
    envoy::extensions::upstreams::http::v3::HttpProtocolOptions protocol;
    protocol.mutable_explicit_http_config()->mutable_http2_protocol_options();
    google::protobuf::Any any;
    any.set_type_url("type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions");
    any.set_value(protocol.SerializeAsString());
    (*cluster.mutable_typed_extension_protocol_options())
        ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"] = std::move(any);
  }
  return cluster.SerializeAsString();
}

std::string BuildClusterLoadAssignment(const std::string& name, const DatumSnapshot& snapshot,
                                       const ResourceOptions& options) {
  envoy::config::endpoint::v3::ClusterLoadAssignment assignment;
  assignment.set_cluster_name(name);
  // One locality per zone, in the order of its first publisher (publishers
  // are sorted by registration id: equal data encode to equal bytes).
  std::map<std::string_view, envoy::config::endpoint::v3::LocalityLbEndpoints*> by_zone;
  std::map<std::string_view, uint64_t> zone_weight;
  // Clients reject an assignment naming one address twice (an app-level and
  // an interface-level publisher of the same process): the first wins.
  std::set<std::pair<std::string, uint32_t>> seen;
  for (const auto& publisher : snapshot.publishers) {
    auto endpoint = EndpointOf(*publisher, options.endpoint_schemes);
    if (!endpoint || !seen.emplace(endpoint->host, endpoint->port).second) continue;
    auto [it, added] = by_zone.try_emplace(publisher->zone, nullptr);
    if (added) {
      it->second = assignment.add_endpoints();
      it->second->mutable_locality()->set_zone(publisher->zone);
    }
    auto* lb = it->second->add_lb_endpoints();
    auto* socket = lb->mutable_endpoint()->mutable_address()->mutable_socket_address();
    socket->set_address(endpoint->host);
    socket->set_port_value(endpoint->port);
    lb->set_health_status(static_cast<core::HealthStatus>(endpoint->health));
    lb->mutable_load_balancing_weight()->set_value(endpoint->weight);
    zone_weight[publisher->zone] += endpoint->weight;
  }
  // A locality's weight is the sum of its endpoints' (proxyless gRPC drops
  // a locality without one), capped to what the field holds.
  for (auto& [zone, locality] : by_zone) {
    uint64_t weight = std::min<uint64_t>(zone_weight[zone], UINT32_MAX);
    locality->mutable_load_balancing_weight()->set_value(static_cast<uint32_t>(weight));
  }
  return assignment.SerializeAsString();
}

}  // namespace cairn::xds
