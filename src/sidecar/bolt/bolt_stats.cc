#include "sidecar/bolt/bolt_stats.h"

namespace cairn::sidecar::bolt {
namespace {

constexpr char kRequestsName[] = "cairn_sidecar_bolt_requests_total";
constexpr char kRequestsHelp[] = "Bolt requests received (oneway included), by service";
constexpr char kResponsesName[] = "cairn_sidecar_bolt_responses_total";
constexpr char kResponsesHelp[] = "Bolt responses sent downstream, by service and status";
constexpr char kDurationName[] = "cairn_sidecar_bolt_request_duration_seconds";
constexpr char kDurationHelp[] = "Bolt request read to response written, seconds, by service";

std::shared_ptr<const std::vector<double>> DurationBuckets() {
  // 100 µs to ~26 s, doubling: the buckets of the cluster latency.
  auto b = std::make_shared<std::vector<double>>();
  for (double v = 0.0001; v < 30; v *= 2) b->push_back(v);
  return b;
}

}  // namespace

size_t StatusSlot(BoltStatus status) {
  const auto value = static_cast<uint16_t>(status);
  if (value <= 0x09) return value;                       // SUCCESS .. CODEC_EXCEPTION
  if (value >= 0x10 && value <= 0x12) return value - 6;  // CONNECTION_CLOSED .. (10..12)
  return kStatusSlots - 1;                               // UNRECOGNIZED
}

BoltStats::BoltStats(LocalMetrics& metrics, size_t max_services)
    : metrics_(metrics), max_services_(max_services), buckets_(DurationBuckets()) {}

std::string BoltStats::Label(std::string_view service) {
  if (service.empty()) return std::string(kNoServiceLabel);
  std::string name(service);
  std::lock_guard lock(mu_);
  if (services_.contains(name)) return name;
  if (services_.size() >= max_services_) return std::string(kOtherServiceLabel);
  services_.insert(name);
  return name;
}

BoltServiceStats& BoltStatsCache::ForLabel(const std::string& label) {
  std::unique_ptr<BoltServiceStats>& entry = by_label_[label];
  if (entry == nullptr) {
    entry = std::make_unique<BoltServiceStats>();
    entry->label = label;
    entry->requests = &stats_.metrics().Counter(kRequestsName, kRequestsHelp, {{"service", label}});
    entry->duration = &stats_.metrics().Histogram(kDurationName, kDurationHelp,
                                                  {{"service", label}}, stats_.duration_buckets());
  }
  return *entry;
}

BoltServiceStats& BoltStatsCache::For(std::string_view service) {
  // Debian's abseil has its own string_view type: convert for the lookup.
  auto it = by_service_.find(absl::string_view(service.data(), service.size()));
  if (it != by_service_.end()) return *it->second;
  BoltServiceStats& stats = ForLabel(stats_.Label(service));
  if (by_service_.size() < 2 * stats_.max_services()) {
    by_service_.emplace(std::string(service), &stats);
  }
  return stats;
}

void BoltStatsCache::CountResponse(BoltServiceStats& service, BoltStatus status) {
  LocalCounter*& counter = service.responses[StatusSlot(status)];
  if (counter == nullptr) {
    counter = &stats_.metrics().Counter(
        kResponsesName, kResponsesHelp,
        {{"service", service.label}, {"status", std::string(BoltStatusName(status))}});
  }
  counter->Increment();
}

}  // namespace cairn::sidecar::bolt
