// The sidecar's TLS contexts: one per listener with `tls` (server side) and
// one per cluster with `tls` (client side), loaded at start (a bad file stops
// the start with an error naming it) and reloaded when their files change.
//
// Thread-safety: Load and ReloadChanged on one thread (the control loop);
// the sources themselves are shared with the workers (see tls_context.h).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "sidecar/config/sidecar_config.h"
#include "sidecar/network/tls_context.h"

namespace cairn::sidecar {

struct SidecarTls {
  std::vector<std::shared_ptr<TlsContextSource>> listeners;  // by listener; null: plaintext
  std::map<std::string, std::shared_ptr<TlsContextSource>> clusters;  // by cluster name

  static absl::StatusOr<SidecarTls> Load(const SidecarConfig& config);
  bool empty() const { return clusters.empty() && !HasListener(); }
  bool HasListener() const;
  // Re-reads every context whose files changed; logs what it did (a failed
  // reload keeps the previous pair and says why).
  void ReloadChanged();
  // Re-reads every context, changed or not (SIGHUP).
  void ReloadAll();
};

}  // namespace cairn::sidecar
