// XdsMetrics: the xDS server's Prometheus metrics (cairn_xds_*), registered
// on the registry's metrics registry. prometheus-cpp metrics are atomics:
// any thread may update them.
#pragma once

#include <array>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "registry/xds/xds_resources.h"

namespace cairn::xds {

struct XdsMetrics {
  explicit XdsMetrics(prometheus::Registry& registry);

  template <typename T>
  using PerType = std::array<T*, kResourceTypes>;

  prometheus::Gauge& streams;                                 // ADS streams open
  PerType<prometheus::Gauge> resources;                       // names subscribed, over all streams
  PerType<prometheus::Counter> responses;                     // responses sent
  PerType<prometheus::Counter> acks;                          // responses acknowledged
  PerType<prometheus::Counter> nacks;                         // responses rejected (error_detail)
  prometheus::Counter& stale_requests;                        // requests with an old nonce, ignored
  prometheus::Family<prometheus::Counter>& rejected_streams;  // {reason}
  prometheus::Histogram& push_latency;  // datum change -> response queued, seconds
};

}  // namespace cairn::xds
