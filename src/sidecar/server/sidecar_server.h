// SidecarServer: `cairn sidecar` — workers, listeners, clusters, the admin
// endpoints, and the registry client (registry-fed clusters, and publishing
// the local app for inbound listeners).
//
//   control loop ── ClusterManager, health checks, registry pushes, publish gate
//   worker 0..N-1 ── a Listener per configured listener (SO_REUSEPORT) and the
//                    connections it accepted: HttpConnectionManager / TcpProxy
//   admin thread ── /health /metrics /config /clusters
//
// Shutdown (SIGTERM): withdraw published endpoints, stop accepting, let
// requests in flight finish (drain_timeout_ms), then stop.
// Thread-safety: Start/Drain/Shutdown from the main thread.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "sidecar/config/sidecar_config.h"

namespace cairn::sidecar {

class SidecarServer {
 public:
  // Starts everything. If ready_file is set, writes "admin=HOST:PORT" and
  // "listener.<name>=HOST:PORT" lines there once every port listens.
  static absl::StatusOr<std::unique_ptr<SidecarServer>> Start(SidecarConfig config,
                                                              const std::string& ready_file);
  ~SidecarServer();

  // Withdraws publications, stops accepting and waits up to the drain
  // timeout for open requests. Then Shutdown().
  void Drain();
  // Reads every TLS certificate, key and CA file again now (SIGHUP); new
  // handshakes use them, open connections keep theirs. Any thread.
  void ReloadTls();
  void Shutdown();

  struct Impl;

 private:
  explicit SidecarServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cairn::sidecar
