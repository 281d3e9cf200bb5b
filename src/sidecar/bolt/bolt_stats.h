// Bolt metrics per service, exported with the sidecar's other metrics:
//
//   cairn_sidecar_bolt_requests_total{service}
//   cairn_sidecar_bolt_responses_total{service,status}   status by name: SUCCESS, TIMEOUT, ...
//   cairn_sidecar_bolt_request_duration_seconds{service}  request read to response written
//
// Services come from the network, so their number is capped: once
// `max_services` distinct names have a label, every new one is counted
// under service="other". Requests without a service count under "-".
//
// Threading: BoltStats (the label set) is shared by every worker and locks,
// but only when a worker meets a service name it has not seen. Each worker
// has a BoltStatsCache holding its own cells (LocalMetrics: one writer, no
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
#include "sidecar/codec/bolt/bolt_frame.h"
#include "sidecar/stats/local_metrics.h"

namespace cairn::sidecar::bolt {

inline constexpr size_t kDefaultMaxServiceLabels = 1000;
inline constexpr std::string_view kOtherServiceLabel = "other";
inline constexpr std::string_view kNoServiceLabel = "-";

// One slot per named status (see BoltStatusName) and one for the rest.
inline constexpr size_t kStatusSlots = 14;
size_t StatusSlot(BoltStatus status);

class BoltStats {
 public:
  BoltStats(LocalMetrics& metrics, size_t max_services = kDefaultMaxServiceLabels);
  BoltStats(const BoltStats&) = delete;
  BoltStats& operator=(const BoltStats&) = delete;

  // The label `service` is counted under: itself, "-" when empty, or
  // "other" past the cap. Thread-safe.
  std::string Label(std::string_view service);

  LocalMetrics& metrics() { return metrics_; }
  const std::shared_ptr<const std::vector<double>>& duration_buckets() const { return buckets_; }
  size_t max_services() const { return max_services_; }

 private:
  LocalMetrics& metrics_;
  const size_t max_services_;
  const std::shared_ptr<const std::vector<double>> buckets_;
  std::mutex mu_;
  absl::flat_hash_set<std::string> services_;  // guarded by mu_: the labelled services
};

// One worker's cells for one label.
struct BoltServiceStats {
  std::string label;
  LocalCounter* requests = nullptr;
  LocalHistogram* duration = nullptr;
  std::array<LocalCounter*, kStatusSlots> responses{};  // made on first use
};

// A worker's view of BoltStats. Thread-safety: its worker only.
class BoltStatsCache {
 public:
  explicit BoltStatsCache(BoltStats& stats) : stats_(stats) {}

  // The stats of `service`; the reference stays valid for the life of the
  // cache (requests keep it).
  BoltServiceStats& For(std::string_view service);
  void CountResponse(BoltServiceStats& service, BoltStatus status);

 private:
  BoltServiceStats& ForLabel(const std::string& label);

  BoltStats& stats_;
  // Names seen by this worker -> their label's cells. Bounded (2 x the cap):
  // past that, unseen names ask BoltStats each time (only under a flood of
  // distinct names, which the cap turns into "other" anyway).
  absl::flat_hash_map<std::string, BoltServiceStats*> by_service_;
  absl::flat_hash_map<std::string, std::unique_ptr<BoltServiceStats>> by_label_;
};

}  // namespace cairn::sidecar::bolt
