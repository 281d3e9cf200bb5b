#include "registry/metrics.h"

#include <prometheus/text_serializer.h>

namespace cairn {
namespace {

prometheus::Gauge& MakeGauge(prometheus::Registry& r, const char* name, const char* help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(r).Add({});
}

prometheus::Counter& MakeCounter(prometheus::Registry& r, const char* name, const char* help,
                                 const std::map<std::string, std::string>& labels = {}) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r).Add(labels);
}

// Push latencies range from well under a millisecond (idle, loopback) to
// seconds (retries): exponential buckets from 100 us to ~6.5 s.
prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  prometheus::Histogram::BucketBoundaries b;
  for (double v = 0.0001; v < 10; v *= 2) b.push_back(v);
  return b;
}

}  // namespace

RegistryMetrics::RegistryMetrics() : RegistryMetrics(std::make_shared<prometheus::Registry>()) {}

RegistryMetrics::RegistryMetrics(std::shared_ptr<prometheus::Registry> r)
    : publishers(MakeGauge(*r, "cairn_registry_publishers", "Publishers registered")),
      subscribers(MakeGauge(*r, "cairn_registry_subscribers", "Subscribers registered")),
      connections(MakeGauge(*r, "cairn_registry_connections", "Client streams open")),
      datums(MakeGauge(*r, "cairn_registry_datums", "DataInfoIds known to the data role")),
      cached_datums(MakeGauge(*r, "cairn_registry_cached_datums",
                              "Datums a cluster session holds a copy of (dropped when idle)")),
      connections_opened(
          MakeCounter(*r, "cairn_registry_connections_opened_total", "Client streams accepted")),
      connections_closed(
          MakeCounter(*r, "cairn_registry_connections_closed_total", "Client streams ended")),
      keepalive_expired(MakeCounter(*r, "cairn_registry_keepalive_expired_total",
                                    "Client streams closed for missing keepalive")),
      pushes_sent(MakeCounter(*r, "cairn_registry_pushes_total", "Pushes by outcome",
                              {{"result", "sent"}})),
      pushes_acked(MakeCounter(*r, "cairn_registry_pushes_total", "Pushes by outcome",
                               {{"result", "acked"}})),
      pushes_retried(MakeCounter(*r, "cairn_registry_pushes_total", "Pushes by outcome",
                                 {{"result", "retried"}})),
      pushes_given_up(MakeCounter(*r, "cairn_registry_pushes_total", "Pushes by outcome",
                                  {{"result", "given_up"}})),
      pushes_coalesced(MakeCounter(*r, "cairn_registry_pushes_total", "Pushes by outcome",
                                   {{"result", "coalesced"}})),
      delta_pushes(MakeCounter(*r, "cairn_registry_delta_pushes_total",
                               "Pushes sent as deltas (also counted as sent)")),
      delta_need_full(MakeCounter(*r, "cairn_registry_delta_need_full_total",
                                  "Delta pushes a client could not apply (answered in full)")),
      push_latency(prometheus::BuildHistogram()
                       .Name("cairn_registry_push_latency_seconds")
                       .Help("Time from a datum change to the subscriber's acknowledgement")
                       .Register(*r)
                       .Add({}, LatencyBuckets())),
      requests_ok(MakeCounter(*r, "cairn_registry_requests_total", "Client requests by result",
                              {{"result", "ok"}})),
      requests_refused(MakeCounter(*r, "cairn_registry_requests_total", "Client requests by result",
                                   {{"result", "refused"}})),
      bad_messages(MakeCounter(*r, "cairn_registry_errors_total", "Errors by kind",
                               {{"kind", "bad_message"}})),
      denied(prometheus::BuildCounter()
                 .Name("cairn_registry_denied_total")
                 .Help("Requests refused by the authorization policy, by operation and rule")
                 .Register(*r)),
      registry_(std::move(r)) {}

std::string RegistryMetrics::Serialize() const {
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace cairn
