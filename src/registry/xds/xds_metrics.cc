#include "registry/xds/xds_metrics.h"

#include <string>

namespace cairn::xds {
namespace {

template <typename T>
XdsMetrics::PerType<T> PerTypeOf(prometheus::Family<T>& family) {
  XdsMetrics::PerType<T> out{};
  for (int i = 0; i < kResourceTypes; ++i) {
    out[i] = &family.Add({{"type", std::string(ShortName(static_cast<ResourceType>(i)))}});
  }
  return out;
}

prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  prometheus::Histogram::BucketBoundaries b;
  for (double v = 0.0001; v < 10; v *= 2) b.push_back(v);
  return b;
}

}  // namespace

XdsMetrics::XdsMetrics(prometheus::Registry& r)
    : streams(prometheus::BuildGauge()
                  .Name("cairn_xds_streams")
                  .Help("ADS streams open on this server")
                  .Register(r)
                  .Add({})),
      resources(PerTypeOf(prometheus::BuildGauge()
                              .Name("cairn_xds_resources")
                              .Help("Resource names subscribed, summed over ADS streams")
                              .Register(r))),
      responses(PerTypeOf(prometheus::BuildCounter()
                              .Name("cairn_xds_responses_total")
                              .Help("DiscoveryResponses sent")
                              .Register(r))),
      acks(PerTypeOf(prometheus::BuildCounter()
                         .Name("cairn_xds_acks_total")
                         .Help("DiscoveryResponses acknowledged")
                         .Register(r))),
      nacks(PerTypeOf(prometheus::BuildCounter()
                          .Name("cairn_xds_nacks_total")
                          .Help("DiscoveryResponses rejected by a client (error_detail)")
                          .Register(r))),
      stale_requests(prometheus::BuildCounter()
                         .Name("cairn_xds_stale_requests_total")
                         .Help("Requests naming an older nonce than the latest sent; ignored")
                         .Register(r)
                         .Add({})),
      rejected_streams(prometheus::BuildCounter()
                           .Name("cairn_xds_rejected_streams_total")
                           .Help("ADS streams ended by the server, by reason")
                           .Register(r)),
      push_latency(prometheus::BuildHistogram()
                       .Name("cairn_xds_push_latency_seconds")
                       .Help("Registry datum change to the xDS response carrying it being queued")
                       .Register(r)
                       .Add({}, LatencyBuckets())) {}

}  // namespace cairn::xds
