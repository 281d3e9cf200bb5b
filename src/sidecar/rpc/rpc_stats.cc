#include "sidecar/rpc/rpc_stats.h"

#include <cctype>

#include "absl/strings/str_cat.h"

namespace cairn::sidecar {
namespace {

// Debian's abseil has its own string_view type (not std::string_view).
absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// "Bolt", "Dubbo": the codec's name as the metrics' help text says it.
std::string DisplayName(std::string_view name) {
  std::string out(name);
  if (!out.empty()) out[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[0])));
  return out;
}

std::shared_ptr<const std::vector<double>> DurationBuckets() {
  // 100 µs to ~26 s, doubling: the buckets of the cluster latency.
  auto b = std::make_shared<std::vector<double>>();
  for (double v = 0.0001; v < 30; v *= 2) b->push_back(v);
  return b;
}

}  // namespace

RpcStats::RpcStats(LocalMetrics& metrics, const RpcCodec& codec, size_t max_services)
    : metrics_(metrics),
      codec_(codec),
      prefix_(absl::StrCat("cairn_sidecar_", AV(codec.name()), "_")),
      max_services_(max_services),
      buckets_(DurationBuckets()) {}

std::string RpcStats::Label(std::string_view service) {
  if (service.empty()) return std::string(kNoServiceLabel);
  std::string name(service);
  std::lock_guard lock(mu_);
  if (services_.contains(name)) return name;
  if (services_.size() >= max_services_) return std::string(kOtherServiceLabel);
  services_.insert(name);
  return name;
}

RpcServiceStats& RpcStatsCache::ForLabel(const std::string& label) {
  std::unique_ptr<RpcServiceStats>& entry = by_label_[label];
  if (entry == nullptr) {
    entry = std::make_unique<RpcServiceStats>();
    entry->label = label;
    const std::string& prefix = stats_.metric_prefix();
    const std::string tag = DisplayName(stats_.codec().name());
    entry->requests = &stats_.metrics().Counter(
        absl::StrCat(prefix, "requests_total"),
        absl::StrCat(tag, " requests received (oneway included), by service"),
        {{"service", label}});
    entry->duration = &stats_.metrics().Histogram(
        absl::StrCat(prefix, "request_duration_seconds"),
        absl::StrCat(tag, " request read to response written, seconds, by service"),
        {{"service", label}}, stats_.duration_buckets());
  }
  return *entry;
}

RpcServiceStats& RpcStatsCache::For(std::string_view service) {
  // Debian's abseil has its own string_view type: convert for the lookup.
  auto it = by_service_.find(absl::string_view(service.data(), service.size()));
  if (it != by_service_.end()) return *it->second;
  RpcServiceStats& stats = ForLabel(stats_.Label(service));
  if (by_service_.size() < 2 * stats_.max_services()) {
    by_service_.emplace(std::string(service), &stats);
  }
  return stats;
}

void RpcStatsCache::CountResponse(RpcServiceStats& service, uint32_t status) {
  const RpcCodec& codec = stats_.codec();
  LocalCounter*& counter = service.responses[codec.StatusSlot(status)];
  if (counter == nullptr) {
    counter = &stats_.metrics().Counter(
        absl::StrCat(stats_.metric_prefix(), "responses_total"),
        absl::StrCat(DisplayName(codec.name()),
                     " responses sent downstream, by service and status"),
        {{"service", service.label}, {"status", std::string(codec.StatusName(status))}});
  }
  counter->Increment();
}

}  // namespace cairn::sidecar
