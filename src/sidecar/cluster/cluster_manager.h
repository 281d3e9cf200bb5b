// ClusterManager: owns every cluster's host set on the control loop and
// keeps each worker's ClusterWorker in step (see cluster.h for the picture).
//
// Thread-safety: construct, Init() and destroy on the control thread;
// SetEndpoints()/DescribeJson() on the control loop; ReportOutlier() from
// any thread (it posts); worker_clusters(i) is for worker i only.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include "sidecar/cluster/cluster.h"
#include "sidecar/cluster/health_checker.h"

namespace cairn::sidecar {

class ClusterManager {
 public:
  ClusterManager(const SidecarConfig& config, std::vector<Worker*> workers,
                 asio::io_context& control, LocalMetrics& metrics);
  ~ClusterManager();

  // Builds the static clusters' hosts and every worker's cluster state;
  // starts health checks. REQUIRES: workers are running. Invalid static
  // endpoints are errors.
  absl::Status Init();

  // Replaces a cluster's endpoints (registry pushes). Each entry is an
  // endpoint URL ("host:port" or "scheme://host:port?weight=N"); invalid ones
  // are skipped with a warning. Hosts that stay keep their Host object (and
  // health). Control loop.
  void SetEndpoints(const std::string& cluster, const std::vector<std::string>& urls);

  WorkerClusters& worker_clusters(int worker_index) { return *worker_clusters_[worker_index]; }

  // A worker saw `host` cross its consecutive-failure threshold.
  void ReportOutlier(const std::string& cluster, upstream::HostPtr host);

  // {"clusters":[{"name":..,"hosts":[{"address":..,"weight":..,"healthy":..,
  //   "failed_health_check":..,"ejected":..,"active_requests":..}]}]}
  std::string DescribeJson() const;

  // Stops health checks and ejection timers (before the control loop stops).
  void Shutdown();

 private:
  struct ClusterState {
    const ClusterConfig* config = nullptr;
    std::unique_ptr<ClusterStats> stats;                      // the control loop's (ejections)
    std::vector<std::unique_ptr<ClusterStats>> worker_stats;  // by worker index
    std::shared_ptr<const upstream::HostSet> hosts;
    std::shared_ptr<std::unordered_map<const upstream::Host*, std::shared_ptr<HostHealth>>> health;
    std::unique_ptr<HealthChecker> checker;
    // Ejections declined by max_ejection_percent: warned at most once a second.
    std::chrono::steady_clock::time_point last_declined_warning{};
    uint64_t unlogged_declines = 0;
  };

  void Publish(ClusterState& state, std::vector<upstream::HostPtr> hosts);
  void Eject(ClusterState& state, const upstream::HostPtr& host);

  const SidecarConfig& config_;
  std::vector<Worker*> workers_;
  asio::io_context& control_;
  LocalMetrics& metrics_;
  std::map<std::string, ClusterState> clusters_;
  std::vector<std::unique_ptr<WorkerClusters>> worker_clusters_;
  std::vector<std::unique_ptr<asio::steady_timer>> timers_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// Escapes a string for a JSON string literal (without the quotes).
std::string JsonEscape(std::string_view text);

}  // namespace cairn::sidecar
