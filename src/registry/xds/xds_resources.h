// How registry data becomes xDS resources: the naming scheme, the four
// resource types, and the endpoints of a datum.
//
// One xDS name serves all four resources of a service: the Listener `S`
// (an api_listener for proxyless gRPC, HttpConnectionManager with RDS `S`
// and the router filter), the RouteConfiguration `S` (every path to cluster
// `S`), the Cluster `S` (EDS over ADS; round robin or ring hash) and the
// ClusterLoadAssignment `S` (the datum's publishers, a locality per zone).
// `S` is the datum's dataId when its group and instance id are the defaults
// (what `xds:///S` asks for), else the full dataInfoId text
// (docs/xds.md has the table).
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "registry/data/datum.h"

namespace cairn::xds {

enum class ResourceType { kListener = 0, kRoute = 1, kCluster = 2, kEndpoint = 3 };
inline constexpr int kResourceTypes = 4;

// "type.googleapis.com/envoy.config.listener.v3.Listener" and so on.
std::string_view TypeUrl(ResourceType type);
std::optional<ResourceType> TypeFromUrl(std::string_view type_url);
// "lds", "rds", "cds", "eds": metric labels and logs.
std::string_view ShortName(ResourceType type);

// The dataInfoId an xDS name stands for; nullopt if the name is neither a
// valid dataId nor a dataInfoId text.
std::optional<std::string> DataInfoIdOfName(std::string_view name);
// The xDS name of a dataInfoId (inverse of DataInfoIdOfName).
std::string NameOfDataInfoId(std::string_view data_info_id);

struct ResourceOptions {
  // Services whose Cluster uses RING_HASH (by xDS name); the others use
  // ROUND_ROBIN. Their route hashes on `hash_header`.
  std::set<std::string, std::less<>> ring_hash_services;
  std::string hash_header = "x-cairn-hash-key";
  // Which of a publisher's data URLs is its endpoint: the first whose scheme
  // comes first in this list. "" stands for a bare HOST:PORT.
  std::vector<std::string> endpoint_schemes = {"grpc", "h2c", "http", "https", "tcp", ""};
};

// One endpoint a publisher contributes.
struct XdsEndpoint {
  std::string scheme;  // of the URL it came from ("" for a bare HOST:PORT)
  std::string host;
  uint32_t port = 0;
  std::string zone;
  uint32_t weight = 1;
  int health = 1;  // envoy.config.core.v3.HealthStatus
};

// The endpoint of a publisher: its data URL picked by `schemes`, weight
// from attribute "weight" (1..1000, default 1), health from attribute
// "health" (healthy, unhealthy, draining, degraded; gRPC clients send
// traffic only to healthy ones). nullopt when no URL qualifies; a URL's host
// must be an IP literal (what xDS clients accept).
std::optional<XdsEndpoint> EndpointOf(const PublisherRecord& publisher,
                                      const std::vector<std::string>& schemes);

// The serialized resources (message bytes, not wrapped in Any).
std::string BuildListener(const std::string& name);
std::string BuildRouteConfiguration(const std::string& name, const ResourceOptions& options);
// Whether a datum's endpoints speak HTTP/2 (gRPC): its first endpoint's
// scheme is grpc, grpcs, h2c or h2. Envoy must be told (its default is
// HTTP/1.1); proxyless gRPC ignores it.
bool SpeaksHttp2(const DatumSnapshot& snapshot, const ResourceOptions& options);
std::string BuildCluster(const std::string& name, const ResourceOptions& options, bool http2);
std::string BuildClusterLoadAssignment(const std::string& name, const DatumSnapshot& snapshot,
                                       const ResourceOptions& options);

}  // namespace cairn::xds
