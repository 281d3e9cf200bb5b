// HealthChecker: active health checks of one cluster's hosts, run on the
// control loop. "tcp" passes when a connection opens within the timeout;
// "http" sends GET <path> and passes on a 2xx status line. A host is marked
// failed after unhealthy_threshold failures in a row and healthy again after
// healthy_threshold passes in a row (Host::HealthFlag::kFailedActiveHealthCheck).
//
// Thread-safety: control loop only; Host flags are atomics read by workers.
#pragma once

#include <memory>
#include <unordered_map>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include "sidecar/config/sidecar_config.h"
#include "sidecar/upstream/host.h"

namespace cairn::sidecar {

class HealthChecker {
 public:
  HealthChecker(asio::io_context& io, const HealthCheckConfig& config, std::string cluster);
  ~HealthChecker();

  // The hosts to check from now on (the current HostSet).
  void SetHosts(std::shared_ptr<const upstream::HostSet> hosts);
  void Start();

 private:
  struct HostState {
    uint32_t failures = 0;
    uint32_t passes = 0;
  };
  void CheckAll();
  void CheckOne(const upstream::HostPtr& host);
  void Record(const upstream::HostPtr& host, bool passed);

  asio::io_context& io_;
  HealthCheckConfig config_;
  std::string cluster_;
  std::shared_ptr<const upstream::HostSet> hosts_;
  std::unordered_map<std::string, HostState> states_;  // by address
  std::unique_ptr<asio::steady_timer> timer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace cairn::sidecar
