#include "registry/session/restart_warmup.h"

#include <prometheus/family.h>

#include "absl/strings/str_cat.h"

namespace cairn {

RestartWarmup::RestartWarmup(ClientCounts previous) {
  for (auto& [id, count] : previous) {
    if (count == 0) continue;
    remaining_[id] = count;
    expected_ += count;
  }
  awaited_ = expected_;
}

void RestartWarmup::OnHello(uint64_t connection_id, const std::string& client_id, uint32_t replay) {
  replaying_.erase(connection_id);
  if (remaining_.count(client_id) == 0) return;  // new since the restart, or all back
  if (replay == 0) {
    Returned(client_id);
    return;
  }
  replaying_[connection_id] = Replaying{client_id, replay};
}

void RestartWarmup::OnRegistrationAnswered(uint64_t connection_id) {
  auto it = replaying_.find(connection_id);
  if (it == replaying_.end()) return;
  if (--it->second.left > 0) return;
  std::string client_id = std::move(it->second.client_id);
  replaying_.erase(it);
  Returned(client_id);
}

void RestartWarmup::OnDisconnect(uint64_t connection_id) { replaying_.erase(connection_id); }

void RestartWarmup::Returned(const std::string& client_id) {
  // Several streams of one id may replay at once; only as many as the
  // previous run had count.
  auto it = remaining_.find(client_id);
  if (it == remaining_.end()) return;
  if (--it->second == 0) remaining_.erase(it);
  --awaited_;
}

std::string RestartWarmup::AwaitedSummary(size_t limit) const {
  std::string out;
  size_t shown = 0;
  for (const auto& [id, count] : remaining_) {
    if (shown == limit) {
      absl::StrAppend(&out, ", ...");
      break;
    }
    absl::StrAppend(&out, shown == 0 ? "" : ", ", "'", id, "'");
    if (count > 1) absl::StrAppend(&out, " x ", count);
    ++shown;
  }
  return out;
}

namespace {

prometheus::Gauge& NewGauge(prometheus::Registry& registry, const std::string& name,
                            const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add({});
}

}  // namespace

RestartWarmupMetrics::RestartWarmupMetrics(prometheus::Registry& registry)
    : active(NewGauge(registry, "cairn_registry_restart_warmup_active",
                      "1 while a restarted registry withholds pushes until its clients are back")),
      awaited(NewGauge(registry, "cairn_registry_restart_warmup_clients_awaited",
                       "Client streams of the previous run the warm-up still waits for")),
      duration(NewGauge(registry, "cairn_registry_restart_warmup_duration_seconds",
                        "How long the last restart warm-up withheld pushes")) {}

}  // namespace cairn
