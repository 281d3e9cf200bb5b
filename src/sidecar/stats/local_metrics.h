// Metrics that workers update without locks or shared cache lines.
//
// prometheus-cpp's Counter is an atomic double updated with a CAS loop and its
// Histogram takes a mutex on every Observe; shared by every worker, each
// request then bounces cache lines between cores and takes a lock. Here each
// worker gets its own cells ("local" metrics): a cell has exactly one writer
// thread, so an update is a relaxed load and store, no read-modify-write. A
// scrape sums the cells that share a name and label set.
//
// Thread-safety: a LocalCounter / LocalGauge / LocalHistogram must be updated
// by one thread only (its owner); any thread may read it. LocalMetrics (the
// registry) is thread-safe: registration and Collect() take its mutex, which
// no update touches. Cells live as long as the LocalMetrics that made them.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace cairn::sidecar {

class LocalCounter {
 public:
  void Increment(uint64_t n = 1) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class LocalGauge {
 public:
  void Increment() { Add(1); }
  void Decrement() { Add(-1); }
  void Add(int64_t n) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  int64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

// Cumulative buckets are computed at scrape time; Observe bumps one bucket.
class LocalHistogram {
 public:
  // `bounds`: ascending upper bounds (the +Inf bucket is implicit).
  explicit LocalHistogram(std::shared_ptr<const std::vector<double>> bounds);
  void Observe(double value);

  const std::vector<double>& bounds() const { return *bounds_; }
  uint64_t BucketCount(size_t i) const { return counts_[i].load(std::memory_order_relaxed); }
  uint64_t Count() const;
  double Sum() const;

 private:
  std::shared_ptr<const std::vector<double>> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // bounds.size() + 1 (the last: +Inf)
  std::atomic<uint64_t> sum_bits_{0};                // a double, bit-cast
};

using MetricLabels = std::map<std::string, std::string>;

class LocalMetrics : public prometheus::Collectable {
 public:
  // Each call makes a new cell (typically one per worker); cells with the
  // same name and labels are summed when scraped. A name must keep one type
  // and one help text.
  LocalCounter& Counter(const std::string& name, const std::string& help,
                        const MetricLabels& labels);
  LocalGauge& Gauge(const std::string& name, const std::string& help, const MetricLabels& labels);
  LocalHistogram& Histogram(const std::string& name, const std::string& help,
                            const MetricLabels& labels,
                            std::shared_ptr<const std::vector<double>> bounds);

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  struct Family {
    std::string help;
    prometheus::MetricType type;
    std::map<MetricLabels, std::vector<const void*>> cells;  // LocalCounter/Gauge/Histogram
  };
  Family& FamilyFor(const std::string& name, const std::string& help, prometheus::MetricType type);

  mutable std::mutex mu_;
  std::map<std::string, Family> families_;
  std::deque<LocalCounter> counters_;  // deques: cells never move
  std::deque<LocalGauge> gauges_;
  std::deque<LocalHistogram> histograms_;
};

}  // namespace cairn::sidecar
