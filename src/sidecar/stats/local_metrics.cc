#include "sidecar/stats/local_metrics.h"

#include <algorithm>
#include <bit>

namespace cairn::sidecar {

LocalHistogram::LocalHistogram(std::shared_ptr<const std::vector<double>> bounds)
    : bounds_(std::move(bounds)), counts_(new std::atomic<uint64_t>[bounds_->size() + 1]) {
  for (size_t i = 0; i <= bounds_->size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void LocalHistogram::Observe(double value) {
  // Prometheus buckets are "less than or equal": the first bound >= value.
  size_t i = static_cast<size_t>(std::lower_bound(bounds_->begin(), bounds_->end(), value) -
                                 bounds_->begin());
  counts_[i].store(counts_[i].load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  double sum = std::bit_cast<double>(sum_bits_.load(std::memory_order_relaxed)) + value;
  sum_bits_.store(std::bit_cast<uint64_t>(sum), std::memory_order_relaxed);
}

uint64_t LocalHistogram::Count() const {
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_->size(); ++i) total += BucketCount(i);
  return total;
}

double LocalHistogram::Sum() const {
  return std::bit_cast<double>(sum_bits_.load(std::memory_order_relaxed));
}

LocalMetrics::Family& LocalMetrics::FamilyFor(const std::string& name, const std::string& help,
                                              prometheus::MetricType type) {
  auto [it, inserted] = families_.try_emplace(name);
  if (inserted) {
    it->second.help = help;
    it->second.type = type;
  }
  return it->second;
}

LocalCounter& LocalMetrics::Counter(const std::string& name, const std::string& help,
                                    const MetricLabels& labels) {
  std::lock_guard lock(mu_);
  LocalCounter& cell = counters_.emplace_back();
  FamilyFor(name, help, prometheus::MetricType::Counter).cells[labels].push_back(&cell);
  return cell;
}

LocalGauge& LocalMetrics::Gauge(const std::string& name, const std::string& help,
                                const MetricLabels& labels) {
  std::lock_guard lock(mu_);
  LocalGauge& cell = gauges_.emplace_back();
  FamilyFor(name, help, prometheus::MetricType::Gauge).cells[labels].push_back(&cell);
  return cell;
}

LocalHistogram& LocalMetrics::Histogram(const std::string& name, const std::string& help,
                                        const MetricLabels& labels,
                                        std::shared_ptr<const std::vector<double>> bounds) {
  std::lock_guard lock(mu_);
  LocalHistogram& cell = histograms_.emplace_back(std::move(bounds));
  FamilyFor(name, help, prometheus::MetricType::Histogram).cells[labels].push_back(&cell);
  return cell;
}

std::vector<prometheus::MetricFamily> LocalMetrics::Collect() const {
  std::lock_guard lock(mu_);
  std::vector<prometheus::MetricFamily> out;
  out.reserve(families_.size());
  for (const auto& [name, family] : families_) {
    prometheus::MetricFamily& f = out.emplace_back();
    f.name = name;
    f.help = family.help;
    f.type = family.type;
    for (const auto& [labels, cells] : family.cells) {
      prometheus::ClientMetric& metric = f.metric.emplace_back();
      for (const auto& [label, value] : labels) metric.label.push_back({label, value});
      switch (family.type) {
        case prometheus::MetricType::Counter: {
          uint64_t total = 0;
          for (const void* c : cells) total += static_cast<const LocalCounter*>(c)->Value();
          metric.counter.value = static_cast<double>(total);
          break;
        }
        case prometheus::MetricType::Gauge: {
          int64_t total = 0;
          for (const void* c : cells) total += static_cast<const LocalGauge*>(c)->Value();
          metric.gauge.value = static_cast<double>(total);
          break;
        }
        case prometheus::MetricType::Histogram: {
          const auto* first = static_cast<const LocalHistogram*>(cells.front());
          const std::vector<double>& bounds = first->bounds();
          std::vector<uint64_t> counts(bounds.size() + 1, 0);
          double sum = 0;
          for (const void* c : cells) {
            const auto* h = static_cast<const LocalHistogram*>(c);
            // Cells of one series share bounds (the caller's contract).
            for (size_t i = 0; i < counts.size() && i <= h->bounds().size(); ++i) {
              counts[i] += h->BucketCount(i);
            }
            sum += h->Sum();
          }
          uint64_t cumulative = 0;
          for (size_t i = 0; i < counts.size(); ++i) {
            cumulative += counts[i];
            prometheus::ClientMetric::Bucket bucket;
            bucket.cumulative_count = cumulative;
            bucket.upper_bound =
                i < bounds.size() ? bounds[i] : std::numeric_limits<double>::infinity();
            metric.histogram.bucket.push_back(bucket);
          }
          metric.histogram.sample_count = cumulative;
          metric.histogram.sample_sum = sum;
          break;
        }
        default:
          break;
      }
    }
  }
  return out;
}

}  // namespace cairn::sidecar
