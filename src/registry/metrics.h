// RegistryMetrics: the Prometheus metrics of the registry roles.
//
// prometheus-cpp metrics are atomics: any thread may update them. The
// registry keeps one instance for the process and hands references to the
// roles.
#pragma once

#include <memory>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace cairn {

class RegistryMetrics {
 public:
  RegistryMetrics();

  prometheus::Registry& registry() { return *registry_; }
  std::shared_ptr<prometheus::Registry> shared_registry() { return registry_; }

  // Prometheus text exposition of every metric.
  std::string Serialize() const;

  prometheus::Gauge& publishers;
  prometheus::Gauge& subscribers;
  prometheus::Gauge& connections;
  prometheus::Gauge& datums;
  prometheus::Gauge& cached_datums;  // cluster session: datums it holds a copy of
  prometheus::Counter& connections_opened;
  prometheus::Counter& connections_closed;
  prometheus::Counter& keepalive_expired;
  prometheus::Counter& pushes_sent;
  prometheus::Counter& pushes_acked;
  prometheus::Counter& pushes_retried;
  prometheus::Counter& pushes_given_up;
  prometheus::Counter& pushes_coalesced;
  prometheus::Counter& delta_pushes;     // of the pushes sent, those sent as deltas
  prometheus::Counter& delta_need_full;  // deltas a client could not apply
  prometheus::Histogram& push_latency;   // datum change -> client ack, seconds
  prometheus::Counter& requests_ok;
  prometheus::Counter& requests_refused;
  prometheus::Counter& bad_messages;
  // cairn_registry_denied_total{op,rule}: requests the authorization policy
  // refused, by operation and deciding rule (registry/auth).
  prometheus::Family<prometheus::Counter>& denied;

 private:
  explicit RegistryMetrics(std::shared_ptr<prometheus::Registry> registry);
  // Declared last: the metric references above are built from the constructor
  // argument before it is moved here.
  std::shared_ptr<prometheus::Registry> registry_;
};

}  // namespace cairn
