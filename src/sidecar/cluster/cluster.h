// Clusters: the upstream side of the sidecar.
//
//   ClusterManager (main thread)              WorkerClusters (one per worker)
//   ├ per cluster: current HostSet  ── post ─► per cluster: LoadBalancer,
//   │   (static endpoints or registry)         ConnectionPool per host,
//   ├ active health checks                     circuit-breaker counters
//   └ outlier ejection / un-ejection
//
// The manager builds immutable HostSet snapshots and posts them to every
// worker; a worker's ClusterWorker swaps its load balancer input and drops
// pools of hosts that left. Health is read live from Host flags, so ejection
// and health checks need no new snapshot.
//
// Thread-safety: ClusterManager methods run on the main (control) loop
// unless stated; ClusterWorker on its worker only. ClusterStats are atomics.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "sidecar/codec/rpc_codec.h"
#include "sidecar/config/sidecar_config.h"
#include "sidecar/network/worker.h"
#include "sidecar/pool/connection_pool.h"
#include "sidecar/pool/rpc_pool.h"
#include "sidecar/stats/local_metrics.h"
#include "sidecar/upstream/host.h"
#include "sidecar/upstream/load_balancer.h"

namespace cairn::sidecar {

// Per-cluster metrics of one thread (a worker, or the control loop for
// ejections): updated by that thread only, summed across threads at scrape.
struct ClusterStats {
  ClusterStats(LocalMetrics& metrics, const std::string& cluster);
  LocalCounter& requests;
  LocalCounter& responses_5xx;
  LocalCounter& errors;  // no response: connect failure, reset, timeout
  LocalCounter& retries;
  LocalCounter& timeouts;
  LocalCounter& overflows;  // circuit breaker tripped
  LocalCounter& ejections;
  LocalCounter& tls_failures;  // upstream TLS handshakes or identities refused
  LocalGauge& active_connections;
  LocalHistogram& latency;  // seconds, request start to response end
};

// Passive health: consecutive failures of one host, shared by all workers.
struct HostHealth {
  std::atomic<uint32_t> consecutive_failures{0};
  std::atomic<uint32_t> times_ejected{0};
};

// One cluster as one worker sees it.
class ClusterWorker : private ConnectionPool::Observer {
 public:
  ClusterWorker(Worker& worker, const ClusterConfig& config, ClusterStats& stats,
                std::function<void(const upstream::HostPtr&)> on_outlier);
  ~ClusterWorker() override;

  const ClusterConfig& config() const { return config_; }
  ClusterStats& stats() { return stats_; }

  // nullptr when the cluster has no host.
  upstream::HostPtr ChooseHost(const upstream::LbContext& ctx);
  // The pools of `host`, by what the cluster's protocol can do: HTTP/1 and
  // HTTP/2 streams go through a ConnectionPool; an RPC protocol (rpc_codec()
  // non-null: Bolt, Dubbo) multiplexes every request of the worker over one
  // connection with rewritten request ids (RpcHostPool). Created on first
  // use; by address, so a host that leaves and comes back finds its pool.
  ConnectionPool& PoolFor(const upstream::HostPtr& host);
  RpcHostPool& RpcPoolFor(const upstream::HostPtr& host);
  // The cluster's RPC codec (config.protocol names one), or nullptr.
  const RpcCodec* rpc_codec() const { return rpc_codec_; }
  // Upstream TLS of this cluster (config.tls), set before the first request.
  void SetTls(std::shared_ptr<TlsContextSource> tls) { tls_ = std::move(tls); }
  // Null: plaintext upstreams.
  const std::shared_ptr<TlsContextSource>& tls() const { return tls_; }
  // What `host`'s certificate must name (config.tls: verify_app, expect_*).
  TlsPeerPolicy TlsPolicyFor(const upstream::HostPtr& host) const;
  // An upstream TLS handshake or identity was refused: counted, and logged
  // at most once a second.
  void ReportTlsFailure(const std::string& reason);

  // Passive health: the outcome of one request (or connect) to a host.
  void ReportResult(const upstream::HostPtr& host, bool success);

  // Circuit breakers (per worker).
  bool TryStartRequest();
  void EndRequest();
  bool TryStartRetry();
  void EndRetry();

  void UpdateHosts(
      std::shared_ptr<const upstream::HostSet> hosts,
      std::shared_ptr<std::unordered_map<const upstream::Host*, std::shared_ptr<HostHealth>>>
          health);
  std::shared_ptr<const upstream::HostSet> hosts() const { return hosts_; }
  // Once a second, and after a host set change: closes idle connections,
  // sends RPC heartbeats, and drops the pools of departed hosts once idle.
  void CloseIdleConnections();

 private:
  void OnConnectionCountChanged(int delta) override;
  void OnTlsFailure(const std::string& reason) override;

  Worker& worker_;
  const ClusterConfig& config_;
  ClusterStats& stats_;
  std::function<void(const upstream::HostPtr&)> on_outlier_;
  std::unique_ptr<upstream::LoadBalancer> lb_;
  std::shared_ptr<const upstream::HostSet> hosts_;
  std::shared_ptr<std::unordered_map<const upstream::Host*, std::shared_ptr<HostHealth>>> health_;
  // By address: a host that leaves and comes back (a new Host object) gets
  // its old pool, and no pointer is ever reused as a key.
  std::unordered_map<std::string, std::unique_ptr<ConnectionPool>> pools_;
  const RpcCodec* rpc_codec_ = nullptr;
  std::unordered_map<std::string, std::unique_ptr<RpcHostPool>> rpc_pools_;
  std::shared_ptr<TlsContextSource> tls_;
  // Refused upstream warnings: at most one a second per worker (the counter
  // has them all), with how many were not logged.
  std::chrono::steady_clock::time_point last_tls_warning_{};
  uint64_t unlogged_tls_failures_ = 0;
  uint32_t active_requests_ = 0;
  uint32_t active_retries_ = 0;
};

// Every cluster of one worker, by name.
class WorkerClusters {
 public:
  ClusterWorker* Find(const std::string& name) {
    auto it = clusters_.find(name);
    return it == clusters_.end() ? nullptr : it->second.get();
  }
  void Add(const std::string& name, std::unique_ptr<ClusterWorker> cluster) {
    clusters_[name] = std::move(cluster);
  }
  std::unordered_map<std::string, std::unique_ptr<ClusterWorker>>& all() { return clusters_; }

 private:
  std::unordered_map<std::string, std::unique_ptr<ClusterWorker>> clusters_;
};

// Parses "host:port" into an endpoint. IP literals only (no DNS on the hot path).
absl::StatusOr<asio::ip::tcp::endpoint> ToEndpoint(const upstream::HostAddress& address);

}  // namespace cairn::sidecar
