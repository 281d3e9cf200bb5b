// SidecarConfig: what `cairn sidecar --config FILE` reads. Every field's
// default is written next to it; examples/ holds commented, runnable files.
//
// Plain data, validated once by LoadSidecarConfig; immutable afterwards and
// shared read-only by every worker.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace cairn::sidecar {

struct HeaderMatch {
  std::string name;   // lower-case header name
  std::string value;  // exact value; empty: the header must be present
};

struct WeightedCluster {
  std::string cluster;
  uint32_t weight = 1;
};

struct RetryPolicy {
  uint32_t attempts = 0;  // retries after the first try (0: none)
  bool on_connect_failure = true;
  bool on_5xx = false;
  bool on_reset = true;
  uint32_t per_try_timeout_ms = 0;  // 0: the route timeout
};

struct DirectResponse {
  int status = 200;
  std::string body;
};

// TLS on a listener (terminates it) or a cluster (originates it). The files
// are read again when they change (checked once a second) or on SIGHUP; new
// handshakes use the new pair, open connections keep theirs.
struct TlsConfig {
  std::string cert;  // PEM chain; listener: required; cluster: optional (mTLS when set)
  std::string key;   // PEM key of cert
  std::string ca;    // PEM CA the peer must chain to; cluster: required
  // Listener: a client without a certificate from `ca` fails the handshake
  // (needs ca). Without it, a client certificate is optional (but verified
  // when sent), and routes with `allow` refuse the ones without.
  bool require_client_cert = false;
  // Cluster: the upstream's certificate must name the app that serves the
  // endpoint: the `app` the registry gave for it (the endpoint URL's app=
  // parameter), else expect_app. No expected app known: the connection fails.
  bool verify_app = false;
  std::string expect_app;       // cluster: the app of static endpoints
  std::string expect_identity;  // cluster: an exact SPIFFE id instead
};

struct Route {
  // Match (all given conditions must hold).
  std::string prefix = "/";  // path prefix (ignored when `path` is set)
  std::string path;          // exact path
  std::string host;          // exact authority (without port); empty: any
  std::vector<HeaderMatch> headers;
  // Action: exactly one of cluster, weighted_clusters, direct_response.
  std::string cluster;
  std::vector<WeightedCluster> weighted_clusters;
  std::optional<DirectResponse> direct_response;
  uint32_t timeout_ms = 15000;  // whole request, retries included; 0: none
  RetryPolicy retry;
  std::string hash_header;  // ring_hash key: this request header's value
  // Callers allowed on this route, by SPIFFE id ("spiffe://td/app/x") or app
  // name ("x"), matched against the client certificate of a TLS listener with
  // `ca`. Others get 403. Empty (default): anyone who may connect.
  std::vector<std::string> allow;
};

// The RPC protocols a listener or cluster may speak besides http1, http2 and
// tcp. Each has a codec (sidecar/codec/rpc_codecs.cc; a test checks that the
// two lists agree) and a listener key `<name>_routes`.
inline constexpr std::array<std::string_view, 2> kRpcProtocols = {"bolt", "dubbo"};
bool IsRpcProtocol(std::string_view protocol);

// RPC routing (bolt_routes, dubbo_routes). A request is matched by its
// service: for Bolt the header map's `sofa_head_target_service`, else
// `service` ("interface:version"); for Dubbo the service path (interface).
struct RpcRetryPolicy {
  // Retries after the first try, each on another host when there is one.
  uint32_t attempts = 2;
  // Retry when the frame never left the sidecar (the connect failed).
  bool on_connect_failure = true;
  // Retry a frame already written when its upstream connection closed before
  // the response (a provider killed mid-call). Off: RPC calls may not be
  // idempotent; turn it on for services that are.
  bool on_reset = false;
};

struct RpcRoute {
  // Match: at most one of service (exact) and service_prefix; neither
  // matches every request. Exact routes win over prefix routes; prefix
  // routes (and match-all ones) are tried in order, first match wins.
  std::string service;
  std::string service_prefix;
  std::string cluster;  // required: a cluster of the listener's RPC protocol
  // Deadline when the frame's own timeout is 0 or negative (the frame's own
  // timeout wins otherwise); retries included; 0: none.
  uint32_t timeout_ms = 15000;
  RpcRetryPolicy retry;
};

// One interface an inbound listener serves, for application-level discovery
// (and, in modes interface and both, its own interface-level publication).
struct PublishedInterface {
  std::string data_id;  // required: the interface's dataInfoId ("com.example.Echo:1.0")
  std::string group;
  std::string instance_id;
  // version, protocol, serialization, weight...: rendered into the URL that
  // interface-level consumers see ("http://127.0.0.1:15006?version=1.0&weight=100").
  // `protocol` defaults to the listener's ("bolt" for a bolt listener, else
  // "http"); in an app-level record it picks the endpoint this interface is
  // served on.
  std::map<std::string, std::string> params;
};

struct PublishConfig {
  // publishes "<address-of-listener>" under this id (mode interface/both), and
  // counts as an interface without params (mode app/both). Optional when
  // `interfaces` are given, or when the app registers its interfaces through
  // the local API (POST /registry/publish on the admin listener).
  std::string data_id;
  std::string group;
  std::string instance_id;
  std::string app;
  std::string zone;
  // Data string; default "http://<listener address>" ("bolt://..." for a
  // bolt listener, or for an interface with protocol bolt on an auto listener).
  std::string endpoint;
  std::vector<PublishedInterface> interfaces;  // default none
};

struct ListenerConfig {
  std::string name;
  std::string address;  // HOST:PORT
  // auto: detect per connection (HTTP/2 preface, else HTTP/1; with RPC
  // routes also that protocol, by its first byte: Bolt 0x01 or 0x02, Dubbo
  // 0xda); or http1, http2, tcp, bolt, dubbo.
  std::string protocol = "auto";
  std::vector<Route> routes;  // HTTP protocols
  // RPC routes by protocol ("bolt" from bolt_routes, "dubbo" from
  // dubbo_routes): for a listener of that protocol, or auto. Only non-empty
  // lists are present.
  std::map<std::string, std::vector<RpcRoute>> rpc_routes;
  const std::vector<RpcRoute>& RoutesOf(std::string_view rpc_protocol) const;
  std::string tcp_cluster;               // protocol tcp
  std::optional<PublishConfig> publish;  // inbound: publish while the app is healthy
  std::string publish_health_cluster;    // the local app's cluster whose health gates publishing
  std::optional<TlsConfig> tls;          // terminate TLS (ALPN: h2, http/1.1); default off
  // HTTP/2 downstream write batching. When a response is ready while other
  // streams of the same client connection are still waiting on upstreams, its
  // bytes wait up to http2_flush_delay_us (or until http2_flush_batch
  // responses are ready; 0: no count limit) so that one send() carries
  // several responses. Never applies with a single stream in flight, and the
  // batch leaves as soon as the last in-flight stream completes. 0: off.
  // Default 0 (off) since issue 17: once the hold stopped pausing the whole
  // worker it no longer won on equal terms (docs/benchmarks.md, "The HTTP/2
  // hold on equal terms").
  uint32_t http2_flush_delay_us = 0;  // default 0; at most 10000
  uint32_t http2_flush_batch = 8;     // default 8

  // Limits against slow, idle and abusive clients (HTTP listeners, and
  // max_connections for every protocol; 0 turns each off, except
  // http2_max_continuations, where 0 allows none). docs/ARCHITECTURE.md,
  // "Limits against hostile clients".
  //
  // A request head (request line and header fields; for HTTP/2 the client
  // preface + SETTINGS, and each HEADERS block with its CONTINUATIONs) must
  // be complete within this long from the connection's accept, or from the
  // first byte of a later keep-alive request, however slowly it trickles in
  // (slowloris). Then HTTP/1 gets 408 and HTTP/2 a GOAWAY, and the connection
  // closes; counted in cairn_sidecar_downstream_timeouts_total{kind="header"}.
  // On an auto listener with bolt_routes, the first byte (which picks Bolt or
  // HTTP) must also come within it; on Bolt connections each frame must be
  // whole within it from its first byte (then the calls already read are
  // answered and the connection closes).
  // Default 10000: HAProxy's documented `timeout http-request` value and
  // Envoy's edge best-practice `request_headers_timeout`; nginx's
  // client_header_timeout is 60 s, long enough that a few thousand
  // slowloris connections hold a worker's file descriptors for a minute. A
  // real client sends its head in one packet; 10 s covers a very slow link.
  uint32_t request_header_timeout_ms = 10000;  // default 10000
  // No request in flight, no head arriving and no byte received for this
  // long: the connection closes (HTTP/2: GOAWAY first); counted with
  // kind="idle". Default 300000 (5 min): longer than the idle timeouts of the
  // usual client pools (Go 90 s, Node 4 s, OkHttp 5 min), so that the client,
  // not the sidecar, closes an idle pooled connection and no request races a
  // close; nginx uses 75 s, Envoy 1 h. Bolt connections too (a Bolt
  // heartbeat is a byte, so a live SOFARPC client keeps its connection).
  uint32_t idle_timeout_ms = 300000;  // default 300000
  // Open connections of this listener (all workers together). A connection
  // accepted beyond it is closed at once (counted in
  // cairn_sidecar_downstream_connections_rejected_total); open ones are not
  // affected. Default 10000: the process may hold 20,000 descriptors on a
  // usual host, and each proxied connection can also hold one upstream.
  uint32_t max_connections = 10000;  // default 10000
  // HTTP/2 rapid reset (CVE-2023-44487): the resets a client may send, as a
  // token bucket of http2_max_reset_burst tokens refilled at
  // http2_resets_per_s; a client beyond it gets GOAWAY and the connection
  // closes (the streams it reset never reach a cluster once it is cut).
  // CONTINUATION flood: at most http2_max_continuations CONTINUATION frames
  // per header block (the block is also bounded by max_request_header_bytes).
  // Defaults 1000 / 33 / 8: nghttp2's own (the HTTP/2 library of Apache
  // httpd, and of Envoy for years). The reset cap is checked by the sidecar, which stops
  // reading the connection at once: nghttp2's check only queues a GOAWAY and
  // goes on surfacing the streams behind it in the same read.
  uint32_t http2_max_reset_burst = 1000;  // default 1000
  uint32_t http2_resets_per_s = 33;       // default 33
  uint32_t http2_max_continuations = 8;   // default 8
};

struct HealthCheckConfig {
  std::string type;  // "" (none), "tcp", "http" (not for bolt clusters)
  std::string path = "/health";
  uint32_t interval_ms = 5000;
  uint32_t timeout_ms = 1000;
  uint32_t unhealthy_threshold = 2;
  uint32_t healthy_threshold = 1;
};

struct OutlierConfig {
  uint32_t consecutive_failures = 5;  // 5xx / connect failures / resets in a row; 0: off
  uint32_t base_ejection_ms = 10000;  // doubles per repeated ejection
  uint32_t max_ejection_percent = 50;
};

struct CircuitBreakers {
  uint32_t max_connections = 1024;  // per worker
  uint32_t max_pending = 1024;      // requests waiting for a connection, per worker
  uint32_t max_requests = 4096;     // in flight, per worker
  uint32_t max_retries = 16;        // retries in flight, per worker
};

// A cluster's endpoints from the registry: the publishers of this
// dataInfoId. With app.discovery: app they are found app-level instead (the
// apps serving the interface, their instances whose revision serves it, and
// their interface-level publishers; see sidecar/discovery/app_cluster_feed.h).
struct RegistrySource {
  std::string data_id;
  std::string group;
  std::string instance_id;
};

struct ClusterConfig {
  std::string name;
  std::string lb =
      "round_robin";  // round_robin | weighted_round_robin | random | least_request | ring_hash
  std::string protocol = "http1";          // upstream protocol: http1 | http2 | tcp | bolt | dubbo
  std::vector<std::string> endpoints;      // static "host:port[?weight=N]"
  std::optional<RegistrySource> registry;  // endpoints from the registry instead
  uint32_t connect_timeout_ms = 1000;
  uint32_t idle_timeout_ms = 60000;  // pooled upstream connection idle close
  // bolt, dubbo: an upstream connection that has read nothing for this long sends
  // a heartbeat, and is closed when the next interval passes without an
  // answer (checked once a second, and when the hosts change); 0: off.
  uint32_t heartbeat_interval_ms = 15000;
  CircuitBreakers limits;
  std::optional<TlsConfig> tls;  // originate (m)TLS to the upstreams; default off
  HealthCheckConfig health_check;
  OutlierConfig outlier;
};

// The app this sidecar fronts, and how it takes part in application-level
// discovery (docs/ARCHITECTURE.md, "Application-level discovery").
struct AppConfig {
  // The app's name; empty: the first publishing listener's publish.app.
  // Required (one way or the other) for discovery app or both.
  std::string name;
  // The per-app rollout switch:
  //   interface (default): inbound publishes one record per interface, as a
  //       sidecar always did; outbound subscribes per interface.
  //   both: inbound also registers a revision and publishes one app-level
  //       record, so app-level consumers find it while old ones keep theirs;
  //       outbound stays per interface (the registry already answers an
  //       interface subscription from app-level publishers too).
  //   app: inbound publishes app-level only (old consumers still find it: the
  //       registry derives interface-level data from it); outbound clusters
  //       fed by the registry subscribe app-level (see RegistrySource).
  // Why interface is the default: it is what every existing deployment does,
  // needs nothing new from the registry, and a fleet can move one app at a
  // time (interface -> both -> app) with each step reversible.
  std::string discovery = "interface";
  // Zone of the app-level record; empty: the first publishing listener's.
  std::string zone;
  // Outbound, discovery app: how often the interface -> apps index is read
  // again for each registry cluster (new apps serving it, interface-level
  // publishers gone).
  uint32_t mapping_refresh_ms = 5000;
  // The local registration API on the admin listener (POST /registry/publish,
  // /registry/unpublish, GET /registry). Its mutating endpoints require the
  // admin token when `admin_token_file` is set (see SidecarConfig); keep
  // `admin` on 127.0.0.1 either way.
  bool local_api = true;
};

struct SidecarConfig {
  uint32_t workers = 0;  // 0: one per core
  std::string admin = "127.0.0.1:9901";
  // A file holding the admin token (surrounding whitespace ignored; empty or
  // unreadable: the sidecar does not start). When set, every admin endpoint
  // that changes state (POST /registry/publish, POST /registry/unpublish)
  // requires `Authorization: Bearer <token>` (compared in constant time;
  // otherwise 401); read-only ones (GET /health, /metrics, /config,
  // /registry, /clusters) stay open. Default empty: no token, as before.
  std::string admin_token_file;
  std::vector<std::string> registry_servers = {"127.0.0.1:9600"};
  // mTLS to the registry (its --tls-ca must have signed `cert`): `ca` is
  // required and verifies the registry; `cert`+`key` are this sidecar's
  // identity (the app it publishes as). Files are re-read when they change.
  // Default off (plaintext).
  std::optional<TlsConfig> registry_tls;
  std::string access_log;            // file path; empty: off
  uint32_t drain_timeout_ms = 5000;  // SIGTERM: stop accepting, finish requests in flight
  size_t max_request_header_bytes = 64 * 1024;
  size_t max_request_body_bytes = 64 * 1024 * 1024;
  std::vector<ListenerConfig> listeners;
  std::vector<ClusterConfig> clusters;
  AppConfig app;

  const ClusterConfig* FindCluster(const std::string& name) const;
};

// Parses and validates (unknown keys, dangling cluster names, bad values are
// errors naming the key path, e.g. "listeners[0].routes[1].cluster").
absl::StatusOr<SidecarConfig> LoadSidecarConfig(const std::string& path);
absl::StatusOr<SidecarConfig> ParseSidecarConfig(const std::string& yaml_text);

// The effective configuration as YAML, for the admin /config endpoint.
std::string DumpSidecarConfig(const SidecarConfig& config);

}  // namespace cairn::sidecar
