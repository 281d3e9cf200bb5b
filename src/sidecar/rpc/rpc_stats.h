// RPC metrics per protocol and service, exported with the sidecar's other
// metrics (<p> is the codec's name: bolt, dubbo):
//
//   cairn_sidecar_<p>_requests_total{service}
//   cairn_sidecar_<p>_responses_total{service,status}   status by the codec's name: SUCCESS, OK,
//   ... cairn_sidecar_<p>_request_duration_seconds{service}  request read to response written
//
// Services come from the network, so their number is capped: once
// `max_services` distinct names have a label, every new one is counted
// under service="other". Requests without a service count under "-".
//
// Threading: RpcStats (the label set) is shared by every worker and locks,
// but only when a worker meets a service name it has not seen. Each worker
// has an RpcStatsCache holding its own cells (LocalMetrics: one writer, no
// read-modify-write), so the request path does one hash lookup and plain
// relaxed stores.
#pragma once

#include <array>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "sidecar/codec/rpc_codec.h"
#include "sidecar/stats/local_metrics.h"

namespace cairn::sidecar {

inline constexpr size_t kDefaultMaxServiceLabels = 1000;
inline constexpr std::string_view kOtherServiceLabel = "other";
inline constexpr std::string_view kNoServiceLabel = "-";

class RpcStats {
 public:
  RpcStats(LocalMetrics& metrics, const RpcCodec& codec,
           size_t max_services = kDefaultMaxServiceLabels);
  RpcStats(const RpcStats&) = delete;
  RpcStats& operator=(const RpcStats&) = delete;

  // The label `service` is counted under: itself, "-" when empty, or
  // "other" past the cap. Thread-safe.
  std::string Label(std::string_view service);

  LocalMetrics& metrics() { return metrics_; }
  const RpcCodec& codec() const { return codec_; }
  // cairn_sidecar_<codec>_<suffix>
  const std::string& metric_prefix() const { return prefix_; }
  const std::shared_ptr<const std::vector<double>>& duration_buckets() const { return buckets_; }
  size_t max_services() const { return max_services_; }

 private:
  LocalMetrics& metrics_;
  const RpcCodec& codec_;
  const std::string prefix_;
  const size_t max_services_;
  const std::shared_ptr<const std::vector<double>> buckets_;
  std::mutex mu_;
  absl::flat_hash_set<std::string> services_;  // guarded by mu_: the labelled services
};

// One worker's cells for one label.
struct RpcServiceStats {
  std::string label;
  LocalCounter* requests = nullptr;
  LocalHistogram* duration = nullptr;
  std::array<LocalCounter*, kRpcStatusSlots> responses{};  // made on first use
};

// A worker's view of RpcStats. Thread-safety: its worker only.
class RpcStatsCache {
 public:
  explicit RpcStatsCache(RpcStats& stats) : stats_(stats) {}

  // The stats of `service`; the reference stays valid for the life of the
  // cache (requests keep it).
  RpcServiceStats& For(std::string_view service);
  void CountResponse(RpcServiceStats& service, uint32_t status);

 private:
  RpcServiceStats& ForLabel(const std::string& label);

  RpcStats& stats_;
  // Names seen by this worker -> their label's cells. Bounded (2 x the cap):
  // past that, unseen names ask RpcStats each time (only under a flood of
  // distinct names, which the cap turns into "other" anyway).
  absl::flat_hash_map<std::string, RpcServiceStats*> by_service_;
  absl::flat_hash_map<std::string, std::unique_ptr<RpcServiceStats>> by_label_;
};

}  // namespace cairn::sidecar
