#include "sidecar/stats/local_metrics.h"

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include <cmath>
#include <thread>

namespace cairn::sidecar {
namespace {

const prometheus::MetricFamily* Find(const std::vector<prometheus::MetricFamily>& families,
                                     const std::string& name) {
  for (const auto& f : families) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

TEST(LocalMetricsTest, CellsWithTheSameLabelsAreSummedOthersKeptApart) {
  LocalMetrics metrics;
  LocalCounter& w0 = metrics.Counter("requests_total", "help", {{"cluster", "a"}});
  LocalCounter& w1 = metrics.Counter("requests_total", "help", {{"cluster", "a"}});
  LocalCounter& other = metrics.Counter("requests_total", "help", {{"cluster", "b"}});
  w0.Increment();
  w0.Increment(4);
  w1.Increment(10);
  other.Increment(7);

  auto families = metrics.Collect();
  const auto* f = Find(families, "requests_total");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->type, prometheus::MetricType::Counter);
  ASSERT_EQ(f->metric.size(), 2u);
  EXPECT_EQ(f->metric[0].label[0].value, "a");
  EXPECT_DOUBLE_EQ(f->metric[0].counter.value, 15);
  EXPECT_EQ(f->metric[1].label[0].value, "b");
  EXPECT_DOUBLE_EQ(f->metric[1].counter.value, 7);
}

TEST(LocalMetricsTest, GaugesGoBothWaysAndSumAcrossCells) {
  LocalMetrics metrics;
  LocalGauge& w0 = metrics.Gauge("open", "help", {});
  LocalGauge& w1 = metrics.Gauge("open", "help", {});
  w0.Increment();
  w0.Increment();
  w1.Add(3);
  w0.Decrement();
  const auto families = metrics.Collect();
  const auto* f = Find(families, "open");
  ASSERT_NE(f, nullptr);
  EXPECT_DOUBLE_EQ(f->metric.at(0).gauge.value, 4);
}

TEST(LocalMetricsTest, HistogramBucketsAreCumulativeAndInclusive) {
  LocalMetrics metrics;
  auto bounds = std::make_shared<const std::vector<double>>(std::vector<double>{0.1, 1.0});
  LocalHistogram& w0 = metrics.Histogram("latency", "help", {{"cluster", "a"}}, bounds);
  LocalHistogram& w1 = metrics.Histogram("latency", "help", {{"cluster", "a"}}, bounds);
  w0.Observe(0.05);
  w0.Observe(0.1);  // on the bound: counted in le="0.1"
  w1.Observe(0.5);
  w1.Observe(7);  // only +Inf
  const auto families = metrics.Collect();
  const auto* f = Find(families, "latency");
  ASSERT_NE(f, nullptr);
  const auto& h = f->metric.at(0).histogram;
  ASSERT_EQ(h.bucket.size(), 3u);
  EXPECT_EQ(h.bucket[0].cumulative_count, 2u);
  EXPECT_EQ(h.bucket[1].cumulative_count, 3u);
  EXPECT_EQ(h.bucket[2].cumulative_count, 4u);
  EXPECT_TRUE(std::isinf(h.bucket[2].upper_bound));
  EXPECT_EQ(h.sample_count, 4u);
  EXPECT_DOUBLE_EQ(h.sample_sum, 0.05 + 0.1 + 0.5 + 7);

  std::string text = prometheus::TextSerializer().Serialize(families);
  EXPECT_NE(text.find("latency_bucket{cluster=\"a\",le=\"0.1\"} 2"), std::string::npos) << text;
  EXPECT_NE(text.find("latency_count{cluster=\"a\"} 4"), std::string::npos) << text;
}

// Each cell has one writer thread; a scrape from another thread sees a
// consistent sum once the writers are done.
TEST(LocalMetricsTest, OneWriterPerCellNeedsNoLock) {
  LocalMetrics metrics;
  constexpr int kThreads = 4;
  constexpr int kIncrements = 100000;
  std::vector<LocalCounter*> cells;
  for (int i = 0; i < kThreads; ++i) cells.push_back(&metrics.Counter("n", "help", {}));
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([cell = cells[i]] {
      for (int k = 0; k < kIncrements; ++k) cell->Increment();
    });
  }
  for (int k = 0; k < 100; ++k) (void)metrics.Collect();  // concurrent scrapes
  for (auto& t : threads) t.join();
  EXPECT_DOUBLE_EQ(Find(metrics.Collect(), "n")->metric.at(0).counter.value,
                   double{kThreads} * kIncrements);
}

}  // namespace
}  // namespace cairn::sidecar
