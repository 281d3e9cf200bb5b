#include "sidecar/config/sidecar_config.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace cairn::sidecar {
namespace {

// Debian's abseil has its own string_view type (not std::string_view).
absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Walks one YAML mapping, remembering which keys were read, so that unknown
// keys (usually typos) are reported with their full path.
class MapReader {
 public:
  MapReader(const YAML::Node& node, std::string path) : node_(node), path_(std::move(path)) {
    if (node_ && !node_.IsNull() && !node_.IsMap()) {
      status_ = absl::InvalidArgumentError(absl::StrCat(path_, ": expected a mapping"));
    }
  }

  template <typename T>
  void Get(const char* key, T* out) {
    known_.insert(key);
    if (!status_.ok() || !node_ || !node_[key]) return;
    try {
      *out = node_[key].as<T>();
    } catch (const YAML::Exception& e) {
      status_ = absl::InvalidArgumentError(absl::StrCat(Path(key), ": bad value (", e.what(), ")"));
    }
  }

  // Returns the sub-node (possibly undefined) and marks the key known.
  YAML::Node Child(const char* key) {
    known_.insert(key);
    if (!node_ || node_.IsNull()) return YAML::Node();
    return node_[key];
  }

  std::string Path(const std::string& key) const {
    return path_.empty() ? key : absl::StrCat(path_, ".", key);
  }

  absl::Status Finish() {
    if (!status_.ok() || !node_ || node_.IsNull()) return status_;
    for (const auto& entry : node_) {
      std::string key = entry.first.as<std::string>("");
      if (known_.count(key) == 0) {
        return absl::InvalidArgumentError(absl::StrCat(Path(key), ": unknown key"));
      }
    }
    return absl::OkStatus();
  }

 private:
  YAML::Node node_;
  std::string path_;
  std::set<std::string> known_;
  absl::Status status_;
};

#define CAIRN_RETURN_IF_ERROR(expr) \
  do {                              \
    absl::Status _s = (expr);       \
    if (!_s.ok()) return _s;        \
  } while (0)

// `tls:` of a listener (server side) or a cluster (client side).
absl::Status ParseTls(const YAML::Node& node, const std::string& path, bool listener,
                      TlsConfig* tls) {
  MapReader t(node, path);
  t.Get("cert", &tls->cert);
  t.Get("key", &tls->key);
  t.Get("ca", &tls->ca);
  if (listener) {
    t.Get("require_client_cert", &tls->require_client_cert);
  } else {
    t.Get("verify_app", &tls->verify_app);
    t.Get("expect_app", &tls->expect_app);
    t.Get("expect_identity", &tls->expect_identity);
  }
  CAIRN_RETURN_IF_ERROR(t.Finish());
  if (tls->cert.empty() != tls->key.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": cert and key go together"));
  }
  if (listener && tls->cert.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ".cert: required"));
  }
  if (tls->ca.empty() && (!listener || tls->require_client_cert)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ".ca: required",
                     listener ? " with require_client_cert" : " (upstreams are verified)"));
  }
  if (!tls->expect_identity.empty() && tls->expect_identity.rfind("spiffe://", 0) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, ".expect_identity: a spiffe:// id"));
  }
  return absl::OkStatus();
}

absl::Status ParseRoute(const YAML::Node& node, const std::string& path, Route* route) {
  MapReader r(node, path);
  YAML::Node match = r.Child("match");
  {
    MapReader m(match, r.Path("match"));
    m.Get("prefix", &route->prefix);
    m.Get("path", &route->path);
    m.Get("host", &route->host);
    YAML::Node headers = m.Child("headers");
    if (headers && headers.IsSequence()) {
      for (size_t i = 0; i < headers.size(); ++i) {
        MapReader h(headers[i], absl::StrCat(m.Path("headers"), "[", i, "]"));
        HeaderMatch hm;
        h.Get("name", &hm.name);
        h.Get("value", &hm.value);
        CAIRN_RETURN_IF_ERROR(h.Finish());
        for (char& c : hm.name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        route->headers.push_back(std::move(hm));
      }
    }
    CAIRN_RETURN_IF_ERROR(m.Finish());
  }
  r.Get("cluster", &route->cluster);
  YAML::Node weighted = r.Child("weighted_clusters");
  if (weighted && weighted.IsSequence()) {
    for (size_t i = 0; i < weighted.size(); ++i) {
      MapReader w(weighted[i], absl::StrCat(r.Path("weighted_clusters"), "[", i, "]"));
      WeightedCluster wc;
      w.Get("cluster", &wc.cluster);
      w.Get("weight", &wc.weight);
      CAIRN_RETURN_IF_ERROR(w.Finish());
      route->weighted_clusters.push_back(std::move(wc));
    }
  }
  YAML::Node direct = r.Child("direct_response");
  if (direct) {
    MapReader d(direct, r.Path("direct_response"));
    DirectResponse dr;
    d.Get("status", &dr.status);
    d.Get("body", &dr.body);
    CAIRN_RETURN_IF_ERROR(d.Finish());
    route->direct_response = dr;
  }
  r.Get("timeout_ms", &route->timeout_ms);
  r.Get("hash_header", &route->hash_header);
  r.Get("allow", &route->allow);
  YAML::Node retry = r.Child("retry");
  if (retry) {
    MapReader t(retry, r.Path("retry"));
    t.Get("attempts", &route->retry.attempts);
    t.Get("on_connect_failure", &route->retry.on_connect_failure);
    t.Get("on_5xx", &route->retry.on_5xx);
    t.Get("on_reset", &route->retry.on_reset);
    t.Get("per_try_timeout_ms", &route->retry.per_try_timeout_ms);
    CAIRN_RETURN_IF_ERROR(t.Finish());
  }
  CAIRN_RETURN_IF_ERROR(r.Finish());
  int actions = (route->cluster.empty() ? 0 : 1) + (route->weighted_clusters.empty() ? 0 : 1) +
                (route->direct_response ? 1 : 0);
  if (actions != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": exactly one of cluster, weighted_clusters, direct_response is required"));
  }
  return absl::OkStatus();
}

absl::Status ParseRpcRoute(const YAML::Node& node, const std::string& path, RpcRoute* route) {
  MapReader r(node, path);
  {
    MapReader m(r.Child("match"), r.Path("match"));
    m.Get("service", &route->service);
    m.Get("service_prefix", &route->service_prefix);
    CAIRN_RETURN_IF_ERROR(m.Finish());
  }
  r.Get("cluster", &route->cluster);
  r.Get("timeout_ms", &route->timeout_ms);
  YAML::Node retry = r.Child("retry");
  if (retry) {
    MapReader t(retry, r.Path("retry"));
    t.Get("attempts", &route->retry.attempts);
    t.Get("on_connect_failure", &route->retry.on_connect_failure);
    t.Get("on_reset", &route->retry.on_reset);
    CAIRN_RETURN_IF_ERROR(t.Finish());
  }
  CAIRN_RETURN_IF_ERROR(r.Finish());
  if (!route->service.empty() && !route->service_prefix.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(r.Path("match"), ": at most one of service and service_prefix"));
  }
  if (route->cluster.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(r.Path("cluster"), ": required"));
  }
  return absl::OkStatus();
}

absl::Status ParseCluster(const YAML::Node& node, const std::string& path, ClusterConfig* c) {
  MapReader r(node, path);
  r.Get("name", &c->name);
  r.Get("lb", &c->lb);
  r.Get("protocol", &c->protocol);
  r.Get("endpoints", &c->endpoints);
  r.Get("connect_timeout_ms", &c->connect_timeout_ms);
  r.Get("idle_timeout_ms", &c->idle_timeout_ms);
  r.Get("heartbeat_interval_ms", &c->heartbeat_interval_ms);
  YAML::Node registry = r.Child("registry");
  if (registry) {
    MapReader g(registry, r.Path("registry"));
    RegistrySource source;
    g.Get("data_id", &source.data_id);
    g.Get("group", &source.group);
    g.Get("instance_id", &source.instance_id);
    CAIRN_RETURN_IF_ERROR(g.Finish());
    if (source.data_id.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(g.Path("data_id"), ": required"));
    }
    c->registry = source;
  }
  if (YAML::Node tls = r.Child("tls")) {
    TlsConfig config;
    CAIRN_RETURN_IF_ERROR(ParseTls(tls, r.Path("tls"), false, &config));
    c->tls = config;
  }
  YAML::Node limits = r.Child("limits");
  {
    MapReader l(limits, r.Path("limits"));
    l.Get("max_connections", &c->limits.max_connections);
    l.Get("max_pending", &c->limits.max_pending);
    l.Get("max_requests", &c->limits.max_requests);
    l.Get("max_retries", &c->limits.max_retries);
    CAIRN_RETURN_IF_ERROR(l.Finish());
  }
  YAML::Node hc = r.Child("health_check");
  {
    MapReader h(hc, r.Path("health_check"));
    h.Get("type", &c->health_check.type);
    h.Get("path", &c->health_check.path);
    h.Get("interval_ms", &c->health_check.interval_ms);
    h.Get("timeout_ms", &c->health_check.timeout_ms);
    h.Get("unhealthy_threshold", &c->health_check.unhealthy_threshold);
    h.Get("healthy_threshold", &c->health_check.healthy_threshold);
    CAIRN_RETURN_IF_ERROR(h.Finish());
  }
  YAML::Node outlier = r.Child("outlier");
  {
    MapReader o(outlier, r.Path("outlier"));
    o.Get("consecutive_failures", &c->outlier.consecutive_failures);
    o.Get("base_ejection_ms", &c->outlier.base_ejection_ms);
    o.Get("max_ejection_percent", &c->outlier.max_ejection_percent);
    CAIRN_RETURN_IF_ERROR(o.Finish());
  }
  CAIRN_RETURN_IF_ERROR(r.Finish());
  if (c->name.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ".name: required"));
  static const std::set<std::string> kLbs = {"round_robin", "weighted_round_robin", "random",
                                             "least_request", "ring_hash"};
  if (kLbs.count(c->lb) == 0) {
    return absl::InvalidArgumentError(absl::StrCat(r.Path("lb"), ": unknown policy '", c->lb, "'"));
  }
  if (c->protocol != "http1" && c->protocol != "http2" && c->protocol != "tcp" &&
      !IsRpcProtocol(c->protocol)) {
    return absl::InvalidArgumentError(
        absl::StrCat(r.Path("protocol"), ": must be http1, http2, tcp, bolt or dubbo"));
  }
  if (c->endpoints.empty() == !c->registry.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": exactly one of endpoints and registry is required"));
  }
  if (c->tls && c->protocol == "tcp") {
    return absl::InvalidArgumentError(
        absl::StrCat(r.Path("tls"), ": not supported on a ", c->protocol, " cluster yet"));
  }
  if (c->tls && c->health_check.type == "http") {
    return absl::InvalidArgumentError(absl::StrCat(
        r.Path("health_check.type"), ": use tcp checks with tls (http checks are plaintext)"));
  }
  if (!c->health_check.type.empty() && c->health_check.type != "tcp" &&
      c->health_check.type != "http") {
    return absl::InvalidArgumentError(
        absl::StrCat(r.Path("health_check.type"), ": must be tcp or http"));
  }
  if (IsRpcProtocol(c->protocol) && c->health_check.type == "http") {
    return absl::InvalidArgumentError(absl::StrCat(r.Path("health_check.type"), ": a ", c->protocol,
                                                   " cluster supports tcp checks only"));
  }
  return absl::OkStatus();
}

absl::Status ParseListener(const YAML::Node& node, const std::string& path, ListenerConfig* l) {
  MapReader r(node, path);
  r.Get("name", &l->name);
  r.Get("address", &l->address);
  r.Get("protocol", &l->protocol);
  r.Get("tcp_cluster", &l->tcp_cluster);
  r.Get("publish_health_cluster", &l->publish_health_cluster);
  r.Get("http2_flush_delay_us", &l->http2_flush_delay_us);
  r.Get("http2_flush_batch", &l->http2_flush_batch);
  r.Get("request_header_timeout_ms", &l->request_header_timeout_ms);
  r.Get("idle_timeout_ms", &l->idle_timeout_ms);
  r.Get("max_connections", &l->max_connections);
  r.Get("http2_max_reset_burst", &l->http2_max_reset_burst);
  r.Get("http2_resets_per_s", &l->http2_resets_per_s);
  r.Get("http2_max_continuations", &l->http2_max_continuations);
  YAML::Node routes = r.Child("routes");
  if (routes && routes.IsSequence()) {
    for (size_t i = 0; i < routes.size(); ++i) {
      Route route;
      CAIRN_RETURN_IF_ERROR(
          ParseRoute(routes[i], absl::StrCat(r.Path("routes"), "[", i, "]"), &route));
      l->routes.push_back(std::move(route));
    }
  }
  for (std::string_view protocol : kRpcProtocols) {
    const std::string key = absl::StrCat(AV(protocol), "_routes");
    YAML::Node rpc_routes = r.Child(key.c_str());
    if (!rpc_routes || !rpc_routes.IsSequence() || rpc_routes.size() == 0) continue;
    std::vector<RpcRoute>& routes = l->rpc_routes[std::string(protocol)];
    for (size_t i = 0; i < rpc_routes.size(); ++i) {
      RpcRoute route;
      CAIRN_RETURN_IF_ERROR(
          ParseRpcRoute(rpc_routes[i], absl::StrCat(r.Path(key), "[", i, "]"), &route));
      routes.push_back(std::move(route));
    }
  }
  if (YAML::Node tls = r.Child("tls")) {
    TlsConfig config;
    CAIRN_RETURN_IF_ERROR(ParseTls(tls, r.Path("tls"), true, &config));
    l->tls = config;
  }
  for (size_t i = 0; i < l->routes.size(); ++i) {
    if (!l->routes[i].allow.empty() && (!l->tls || l->tls->ca.empty())) {
      return absl::InvalidArgumentError(
          absl::StrCat(r.Path("routes"), "[", i,
                       "].allow: needs tls with ca on the listener (who is calling?)"));
    }
  }
  if (l->tls && l->protocol == "auto" && !l->rpc_routes.empty()) {
    const std::string& rpc = l->rpc_routes.begin()->first;
    return absl::InvalidArgumentError(absl::StrCat(r.Path("tls"),
                                                   ": not supported on an auto listener with ", rpc,
                                                   "_routes (use protocol ", rpc, ")"));
  }
  YAML::Node publish = r.Child("publish");
  if (publish) {
    MapReader p(publish, r.Path("publish"));
    PublishConfig spec;
    p.Get("data_id", &spec.data_id);
    p.Get("group", &spec.group);
    p.Get("instance_id", &spec.instance_id);
    p.Get("app", &spec.app);
    p.Get("zone", &spec.zone);
    p.Get("endpoint", &spec.endpoint);
    YAML::Node interfaces = p.Child("interfaces");
    if (interfaces && !interfaces.IsSequence()) {
      return absl::InvalidArgumentError(absl::StrCat(p.Path("interfaces"), ": expected a list"));
    }
    for (size_t i = 0; interfaces && i < interfaces.size(); ++i) {
      MapReader f(interfaces[i], absl::StrCat(p.Path("interfaces"), "[", i, "]"));
      PublishedInterface interface;
      f.Get("data_id", &interface.data_id);
      f.Get("group", &interface.group);
      f.Get("instance_id", &interface.instance_id);
      f.Get("params", &interface.params);
      CAIRN_RETURN_IF_ERROR(f.Finish());
      if (interface.data_id.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(f.Path("data_id"), ": required"));
      }
      spec.interfaces.push_back(std::move(interface));
    }
    CAIRN_RETURN_IF_ERROR(p.Finish());
    l->publish = spec;
  }
  CAIRN_RETURN_IF_ERROR(r.Finish());
  if (l->name.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ".name: required"));
  if (l->address.rfind(':') == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(r.Path("address"), ": expected HOST:PORT"));
  }
  if (l->http2_flush_delay_us > 10000) {
    // A hold is meant to be far below a request's latency budget.
    return absl::InvalidArgumentError(
        absl::StrCat(r.Path("http2_flush_delay_us"), ": at most 10000"));
  }
  for (auto [key, value] : {std::pair{"request_header_timeout_ms", l->request_header_timeout_ms},
                            std::pair{"idle_timeout_ms", l->idle_timeout_ms}}) {
    if (value > 86'400'000) {
      return absl::InvalidArgumentError(absl::StrCat(r.Path(key), ": at most 86400000 (a day)"));
    }
  }
  static const std::set<std::string> kProtocols = {"auto", "http1", "http2", "tcp"};
  if (kProtocols.count(l->protocol) == 0 && !IsRpcProtocol(l->protocol)) {
    return absl::InvalidArgumentError(
        absl::StrCat(r.Path("protocol"), ": must be auto, http1, http2, tcp, bolt or dubbo"));
  }
  if (l->protocol == "tcp" && l->tcp_cluster.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": a tcp listener needs tcp_cluster"));
  }
  for (const auto& [rpc, routes] : l->rpc_routes) {
    if (l->protocol != rpc && l->protocol != "auto") {
      return absl::InvalidArgumentError(
          absl::StrCat(r.Path(rpc + "_routes"), ": only for protocol ", rpc, " or auto"));
    }
  }
  if (IsRpcProtocol(l->protocol) && !l->routes.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        r.Path("routes"), ": a ", l->protocol, " listener takes ", l->protocol, "_routes only"));
  }
  if (IsRpcProtocol(l->protocol) && l->RoutesOf(l->protocol).empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": a ", l->protocol, " listener needs ", l->protocol, "_routes"));
  }
  if (l->protocol == "auto" && l->routes.empty() && l->rpc_routes.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": an auto listener needs routes, bolt_routes or dubbo_routes"));
  }
  if ((l->protocol == "http1" || l->protocol == "http2") && l->routes.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": an HTTP listener needs routes"));
  }
  return absl::OkStatus();
}

absl::Status CheckReferences(const SidecarConfig& c) {
  auto known = [&c](const std::string& name) { return c.FindCluster(name) != nullptr; };
  // The RPC protocol of a cluster, or "" (HTTP, TCP, unknown).
  auto rpc_of = [&c](const std::string& name) {
    const ClusterConfig* cluster = c.FindCluster(name);
    return cluster != nullptr && IsRpcProtocol(cluster->protocol) ? cluster->protocol
                                                                  : std::string();
  };
  for (size_t i = 0; i < c.listeners.size(); ++i) {
    const ListenerConfig& l = c.listeners[i];
    std::string path = absl::StrCat("listeners[", i, "]");
    if (!l.tcp_cluster.empty() && !known(l.tcp_cluster)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ".tcp_cluster: no cluster named '", l.tcp_cluster, "'"));
    }
    if (!l.publish_health_cluster.empty() && !known(l.publish_health_cluster)) {
      return absl::InvalidArgumentError(absl::StrCat(path, ".publish_health_cluster: no cluster '",
                                                     l.publish_health_cluster, "'"));
    }
    for (size_t j = 0; j < l.routes.size(); ++j) {
      const Route& r = l.routes[j];
      std::string rpath = absl::StrCat(path, ".routes[", j, "]");
      if (!r.cluster.empty() && !known(r.cluster)) {
        return absl::InvalidArgumentError(
            absl::StrCat(rpath, ".cluster: no cluster named '", r.cluster, "'"));
      }
      if (const std::string rpc = rpc_of(r.cluster); !rpc.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(rpath, ".cluster: cluster '", r.cluster,
                                                       "' speaks ", rpc, ": route to it from ", rpc,
                                                       "_routes"));
      }
      for (const auto& w : r.weighted_clusters) {
        if (!known(w.cluster)) {
          return absl::InvalidArgumentError(
              absl::StrCat(rpath, ".weighted_clusters: no cluster named '", w.cluster, "'"));
        }
        if (const std::string rpc = rpc_of(w.cluster); !rpc.empty()) {
          return absl::InvalidArgumentError(
              absl::StrCat(rpath, ".weighted_clusters: cluster '", w.cluster, "' speaks ", rpc));
        }
      }
    }
    for (const auto& [rpc, routes] : l.rpc_routes) {
      for (size_t j = 0; j < routes.size(); ++j) {
        const RpcRoute& r = routes[j];
        std::string rpath = absl::StrCat(path, ".", rpc, "_routes[", j, "].cluster");
        if (!known(r.cluster)) {
          return absl::InvalidArgumentError(
              absl::StrCat(rpath, ": no cluster named '", r.cluster, "'"));
        }
        if (rpc_of(r.cluster) != rpc) {
          return absl::InvalidArgumentError(
              absl::StrCat(rpath, ": cluster '", r.cluster, "' is not protocol ", rpc));
        }
      }
    }
  }
  std::set<std::string> names;
  for (const auto& cluster : c.clusters) {
    if (!names.insert(cluster.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("clusters: duplicate name '", cluster.name, "'"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

bool IsRpcProtocol(std::string_view protocol) {
  for (std::string_view rpc : kRpcProtocols) {
    if (rpc == protocol) return true;
  }
  return false;
}

const std::vector<RpcRoute>& ListenerConfig::RoutesOf(std::string_view rpc_protocol) const {
  static const std::vector<RpcRoute> kNone;
  auto it = rpc_routes.find(std::string(rpc_protocol));
  return it == rpc_routes.end() ? kNone : it->second;
}

const ClusterConfig* SidecarConfig::FindCluster(const std::string& name) const {
  for (const auto& c : clusters) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

absl::StatusOr<SidecarConfig> ParseSidecarConfig(const std::string& yaml_text) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("YAML: ", e.what()));
  }
  SidecarConfig c;
  MapReader r(root, "");
  r.Get("workers", &c.workers);
  r.Get("admin", &c.admin);
  r.Get("admin_token_file", &c.admin_token_file);
  r.Get("registry_servers", &c.registry_servers);
  if (YAML::Node tls = r.Child("registry_tls")) {
    TlsConfig& config = c.registry_tls.emplace();
    CAIRN_RETURN_IF_ERROR(ParseTls(tls, "registry_tls", /*listener=*/false, &config));
    if (config.verify_app || !config.expect_app.empty() || !config.expect_identity.empty()) {
      return absl::InvalidArgumentError(
          "registry_tls: takes only cert, key and ca (the registry is verified by its CA and "
          "address)");
    }
  }
  r.Get("access_log", &c.access_log);
  r.Get("drain_timeout_ms", &c.drain_timeout_ms);
  r.Get("max_request_header_bytes", &c.max_request_header_bytes);
  r.Get("max_request_body_bytes", &c.max_request_body_bytes);
  YAML::Node app = r.Child("app");
  {
    MapReader a(app, "app");
    a.Get("name", &c.app.name);
    a.Get("discovery", &c.app.discovery);
    a.Get("zone", &c.app.zone);
    a.Get("mapping_refresh_ms", &c.app.mapping_refresh_ms);
    a.Get("local_api", &c.app.local_api);
    CAIRN_RETURN_IF_ERROR(a.Finish());
    if (c.app.discovery != "interface" && c.app.discovery != "both" && c.app.discovery != "app") {
      return absl::InvalidArgumentError("app.discovery: must be interface, both or app");
    }
    if (c.app.mapping_refresh_ms < 100) {
      return absl::InvalidArgumentError("app.mapping_refresh_ms: at least 100");
    }
  }
  YAML::Node clusters = r.Child("clusters");
  if (clusters && clusters.IsSequence()) {
    for (size_t i = 0; i < clusters.size(); ++i) {
      ClusterConfig cluster;
      CAIRN_RETURN_IF_ERROR(ParseCluster(clusters[i], absl::StrCat("clusters[", i, "]"), &cluster));
      c.clusters.push_back(std::move(cluster));
    }
  }
  YAML::Node listeners = r.Child("listeners");
  if (listeners && listeners.IsSequence()) {
    for (size_t i = 0; i < listeners.size(); ++i) {
      ListenerConfig listener;
      CAIRN_RETURN_IF_ERROR(
          ParseListener(listeners[i], absl::StrCat("listeners[", i, "]"), &listener));
      c.listeners.push_back(std::move(listener));
    }
  }
  CAIRN_RETURN_IF_ERROR(r.Finish());
  if (c.listeners.empty()) return absl::InvalidArgumentError("listeners: at least one is required");
  CAIRN_RETURN_IF_ERROR(CheckReferences(c));
  if (c.app.discovery != "interface") {
    std::string app_name = c.app.name;
    for (const auto& l : c.listeners) {
      if (app_name.empty() && l.publish) app_name = l.publish->app;
    }
    bool publishes = false;
    for (const auto& l : c.listeners) publishes |= l.publish.has_value();
    if (publishes && app_name.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("app.name: required for discovery ",
                                                     c.app.discovery,
                                                     " (or set publish.app on a listener)"));
    }
  }
  return c;
}

absl::StatusOr<SidecarConfig> LoadSidecarConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read config ", path));
  std::stringstream text;
  text << in.rdbuf();
  auto config = ParseSidecarConfig(text.str());
  if (!config.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", config.status().message()));
  }
  return config;
}

}  // namespace cairn::sidecar
