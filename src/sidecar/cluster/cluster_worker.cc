#include <spdlog/spdlog.h>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "sidecar/cluster/cluster.h"
#include "sidecar/codec/rpc_codecs.h"

namespace cairn::sidecar {
namespace {

std::shared_ptr<const std::vector<double>> LatencyBuckets() {
  static const auto buckets = [] {
    auto b = std::make_shared<std::vector<double>>();
    for (double v = 0.0001; v < 30; v *= 2) b->push_back(v);
    return b;
  }();
  return buckets;
}

LocalCounter& Counter(LocalMetrics& m, const char* name, const char* help,
                      const std::string& cluster) {
  return m.Counter(name, help, {{"cluster", cluster}});
}

}  // namespace

ClusterStats::ClusterStats(LocalMetrics& r, const std::string& c)
    : requests(Counter(r, "cairn_sidecar_upstream_requests_total", "Requests sent upstream", c)),
      responses_5xx(Counter(r, "cairn_sidecar_upstream_5xx_total", "5xx responses", c)),
      errors(Counter(r, "cairn_sidecar_upstream_errors_total",
                     "Requests that got no response (connect failure, reset, timeout)", c)),
      retries(Counter(r, "cairn_sidecar_upstream_retries_total", "Retries", c)),
      timeouts(Counter(r, "cairn_sidecar_upstream_timeouts_total", "Requests timed out", c)),
      overflows(Counter(r, "cairn_sidecar_upstream_overflow_total",
                        "Requests refused by a circuit breaker", c)),
      ejections(Counter(r, "cairn_sidecar_upstream_ejections_total",
                        "Hosts ejected by outlier detection", c)),
      tls_failures(Counter(r, "cairn_sidecar_upstream_tls_failures_total",
                           "Upstream TLS handshakes failed or upstream identities refused", c)),
      active_connections(r.Gauge("cairn_sidecar_upstream_connections", "Open upstream connections",
                                 {{"cluster", c}})),
      latency(r.Histogram("cairn_sidecar_upstream_latency_seconds",
                          "Request start to response end, seconds", {{"cluster", c}},
                          LatencyBuckets())) {}

absl::StatusOr<asio::ip::tcp::endpoint> ToEndpoint(const upstream::HostAddress& address) {
  std::error_code ec;
  auto ip = asio::ip::make_address(address.host, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", address.host, "' is not an IP address (DNS names are not supported)"));
  }
  return asio::ip::tcp::endpoint(ip, address.port);
}

ClusterWorker::ClusterWorker(Worker& worker, const ClusterConfig& config, ClusterStats& stats,
                             std::function<void(const upstream::HostPtr&)> on_outlier)
    : worker_(worker), config_(config), stats_(stats), on_outlier_(std::move(on_outlier)) {
  auto lb = upstream::CreateLoadBalancer(config.lb, static_cast<uint64_t>(worker.index()) + 1);
  lb_ = lb.ok() ? std::move(*lb) : upstream::NewRoundRobinLoadBalancer(1);
  rpc_codec_ = FindRpcCodec(config.protocol);
}

ClusterWorker::~ClusterWorker() {
  // Pools tell this cluster (their observer) as their connections go.
  rpc_pools_.clear();
  pools_.clear();
}

upstream::HostPtr ClusterWorker::ChooseHost(const upstream::LbContext& ctx) {
  return lb_->ChooseHost(ctx);
}

ConnectionPool& ClusterWorker::PoolFor(const upstream::HostPtr& host) {
  auto& pool = pools_[host->address_string()];
  if (pool == nullptr) {
    PoolOptions options;
    options.protocol = config_.protocol == "http2" ? UpstreamConnection::Protocol::kHttp2
                                                   : UpstreamConnection::Protocol::kHttp1;
    options.connect_timeout = std::chrono::milliseconds(config_.connect_timeout_ms);
    options.idle_timeout = std::chrono::milliseconds(config_.idle_timeout_ms);
    options.max_connections = config_.limits.max_connections;
    options.max_pending = config_.limits.max_pending;
    if (tls_ != nullptr && config_.tls) {
      options.tls = tls_;
      options.tls_policy = TlsPolicyFor(host);
    }
    auto endpoint = ToEndpoint(host->address());
    ConnectionPool::Observer* observer = this;
    pool = std::make_unique<ConnectionPool>(
        worker_, endpoint.ok() ? *endpoint : asio::ip::tcp::endpoint(), options, observer);
  }
  return *pool;
}

RpcHostPool& ClusterWorker::RpcPoolFor(const upstream::HostPtr& host) {
  std::unique_ptr<RpcHostPool>& pool = rpc_pools_[host->address_string()];
  if (pool == nullptr) {
    RpcPoolOptions options;
    options.connect_timeout = std::chrono::milliseconds(config_.connect_timeout_ms);
    options.idle_timeout = std::chrono::milliseconds(config_.idle_timeout_ms);
    options.heartbeat_interval = std::chrono::milliseconds(config_.heartbeat_interval_ms);
    options.max_pending = config_.limits.max_pending;
    options.tls = tls_;
    if (options.tls != nullptr) options.tls_policy = TlsPolicyFor(host);
    // Addresses were validated when the host set was built.
    auto endpoint = ToEndpoint(host->address());
    ConnectionPool::Observer* observer = this;
    // REQUIRES (callers): rpc_codec() is set.
    pool = std::make_unique<RpcHostPool>(worker_, *rpc_codec_,
                                         endpoint.ok() ? *endpoint : asio::ip::tcp::endpoint(),
                                         std::move(options), observer);
  }
  return *pool;
}

TlsPeerPolicy ClusterWorker::TlsPolicyFor(const upstream::HostPtr& host) const {
  TlsPeerPolicy policy;
  if (!config_.tls) return policy;
  policy.expected_identity = config_.tls->expect_identity;
  policy.expected_app = config_.tls->expect_app;
  if (config_.tls->verify_app) {
    // The registry's word for this endpoint first; else the configured app.
    // Neither: an app nobody has, so the connection fails closed.
    const std::string* app = host->FindMetadata("app");
    if (app != nullptr && !app->empty()) {
      policy.expected_app = *app;
    } else if (policy.expected_app.empty()) {
      policy.expected_app = "(unknown: the registry gave no app)";
    }
  }
  return policy;
}

void ClusterWorker::OnConnectionCountChanged(int delta) { stats_.active_connections.Add(delta); }

void ClusterWorker::OnTlsFailure(const std::string& reason) { ReportTlsFailure(reason); }

void ClusterWorker::ReportTlsFailure(const std::string& reason) {
  stats_.tls_failures.Increment();
  auto now = std::chrono::steady_clock::now();
  if (now - last_tls_warning_ < std::chrono::seconds(1)) {
    ++unlogged_tls_failures_;
    return;
  }
  last_tls_warning_ = now;
  spdlog::warn("cluster {}: upstream refused: {}{}", config_.name, reason,
               unlogged_tls_failures_ == 0 ? std::string()
                                           : absl::StrCat(" (and ", unlogged_tls_failures_,
                                                          " more since the last warning)"));
  unlogged_tls_failures_ = 0;
}

void ClusterWorker::ReportResult(const upstream::HostPtr& host, bool success) {
  if (config_.outlier.consecutive_failures == 0 || health_ == nullptr) return;
  auto it = health_->find(host.get());
  if (it == health_->end()) return;
  HostHealth& h = *it->second;
  if (success) {
    h.consecutive_failures.store(0, std::memory_order_relaxed);
    return;
  }
  uint32_t failures = h.consecutive_failures.fetch_add(1, std::memory_order_relaxed) + 1;
  // ">=": an ejection the manager declined (max percent) is asked again on
  // the next failure. It ignores hosts already ejected.
  if (failures >= config_.outlier.consecutive_failures && on_outlier_) on_outlier_(host);
}

bool ClusterWorker::TryStartRequest() {
  if (active_requests_ >= config_.limits.max_requests) {
    stats_.overflows.Increment();
    return false;
  }
  ++active_requests_;
  return true;
}

void ClusterWorker::EndRequest() { --active_requests_; }

bool ClusterWorker::TryStartRetry() {
  if (active_retries_ >= config_.limits.max_retries) {
    stats_.overflows.Increment();
    return false;
  }
  ++active_retries_;
  return true;
}

void ClusterWorker::EndRetry() { --active_retries_; }

void ClusterWorker::UpdateHosts(
    std::shared_ptr<const upstream::HostSet> hosts,
    std::shared_ptr<std::unordered_map<const upstream::Host*, std::shared_ptr<HostHealth>>>
        health) {
  hosts_ = hosts;
  health_ = std::move(health);
  lb_->UpdateHosts(hosts);
  CloseIdleConnections();
}

void ClusterWorker::CloseIdleConnections() {
  // The addresses of the current hosts, once per call (a registry cluster
  // may have thousands of hosts and as many pools).
  absl::flat_hash_set<std::string> addresses;
  if (hosts_ != nullptr) {
    addresses.reserve(hosts_->size());
    for (const auto& h : hosts_->hosts()) addresses.insert(h->address_string());
  }
  auto present = [&addresses](const std::string& address) { return addresses.contains(address); };
  for (auto it = pools_.begin(); it != pools_.end();) {
    ConnectionPool& pool = *it->second;
    pool.CloseIdle();
    // A departed host's pool goes once its last request has finished.
    if (!present(it->first) && pool.connection_count() == 0 && pool.pending_count() == 0) {
      it = pools_.erase(it);
    } else {
      ++it;
    }
  }
  if (rpc_pools_.empty()) return;
  const auto now = std::chrono::steady_clock::now();
  // Ticking may fail requests, whose retries may add pools: tick a snapshot.
  std::vector<RpcHostPool*> all;
  all.reserve(rpc_pools_.size());
  for (auto& [address, pool] : rpc_pools_) all.push_back(pool.get());
  for (RpcHostPool* pool : all) pool->Tick(now);
  for (auto it = rpc_pools_.begin(); it != rpc_pools_.end();) {
    if (!present(it->first) && !it->second->busy()) {
      it = rpc_pools_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace cairn::sidecar
