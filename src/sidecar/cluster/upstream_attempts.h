// UpstreamAttempts: the protocol-neutral core of one request's dealings with
// its cluster, shared by the HTTP stream (ActiveStream) and the RPC call
// (RpcRequest): the circuit breakers (the cluster's request budget, and the
// retry budget taken on the first retry), one host per attempt (another than
// the last when there is one), the host's active-request count while an
// attempt runs, passive health reported once per attempt, and the counters
// of ClusterStats those imply. What an attempt sends and how it fails stays
// with the protocol.
//
// Ownership: a member of its request; releases its budgets when destroyed.
// Thread-safety: the request's worker only.
#pragma once

#include <cstdint>
#include <string>

#include "sidecar/cluster/cluster.h"

namespace cairn::sidecar {

class UpstreamAttempts {
 public:
  UpstreamAttempts() = default;
  ~UpstreamAttempts();
  UpstreamAttempts(const UpstreamAttempts&) = delete;
  UpstreamAttempts& operator=(const UpstreamAttempts&) = delete;

  // Takes a request slot of `cluster` (its max_requests breaker). False:
  // the breaker is open (counted as an overflow); the request is refused.
  bool Begin(ClusterWorker& cluster);

  // Starts the next attempt on a host the load balancer picks, avoiding the
  // previous attempt's host. `ctx.avoid` is filled in here. Null when the
  // cluster has no available host. REQUIRES: Begin() succeeded.
  upstream::HostPtr NextHost(upstream::LbContext ctx = {});

  // The current attempt's outcome, for outlier ejection: a connect failure
  // or a reset is a failure; any response a success. Once per attempt.
  void Report(bool success);

  // Whether a retry may start: fewer than `max_retries` retries so far and
  // the cluster's retry budget (max_retries breaker, taken on the first
  // retry) allows it. Counts the retry when it does.
  bool TakeRetry(uint32_t max_retries);

  ClusterWorker* cluster() const { return cluster_; }
  const upstream::HostPtr& host() const { return host_; }
  uint32_t attempts() const { return attempts_; }
  // "host:port" of the current attempt, "-" before the first.
  std::string HostName() const;

 private:
  ClusterWorker* cluster_ = nullptr;  // set by a successful Begin()
  bool counted_retry_ = false;
  upstream::HostPtr host_;
  upstream::ActiveRequestHandle host_request_;
  uint32_t attempts_ = 0;
  bool reported_ = false;
};

}  // namespace cairn::sidecar
