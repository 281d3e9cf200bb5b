// StandaloneRegistry: every registry role in one process (the default mode).
//
//   gRPC (cairn.registry.v1, health, reflection)  ─┐
//   admin HTTP (/health, /metrics, /api/v1/...)   ─┼─► registry loop: SessionServer
//                                                   │      ├─ PushEngine
//                                                   │      └─ LocalDataServer (slots) ─
//                                                   VersionClock ─ KvStore (SQLite) └─
//                                                   LocalMetaService (all slots, epoch 1)
//
// Thread-safety: Start() and Shutdown() from one thread; the accessors are
// immutable after Start().
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "registry/server/registry_config.h"
#include "registry/session/session_server.h"

namespace cairn {

// The session role's options from the registry config (shared with cluster
// mode's session role).
SessionOptions SessionOptionsFrom(const RegistryConfig& config);

class StandaloneRegistry {
 public:
  // Opens the store, binds both ports and starts serving. Writes the ready
  // file (if configured) once both ports accept connections.
  static absl::StatusOr<std::unique_ptr<StandaloneRegistry>> Start(const RegistryConfig& config);
  ~StandaloneRegistry();  // Shutdown()

  // Stops accepting, ends every stream (clients will reconnect elsewhere or
  // later), and stops the roles. Idempotent.
  void Shutdown();

  const std::string& grpc_address() const;
  const std::string& admin_address() const;

  struct Impl;

 private:
  explicit StandaloneRegistry(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cairn
