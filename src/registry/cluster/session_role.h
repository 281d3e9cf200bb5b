// SessionRole: the session role of cluster mode (`cairn registry --role
// session`). The registry API of standalone mode (the same gRPC service and
// admin HTTP endpoints, the same SessionServer and push engine) in front of a
// RemoteDataService that reaches the data servers through the slot table.
//
// The role registers itself under members/session/<id> with its client
// address: data leaders wait for every live session when they rebuild a
// slot, and `cairnctl cluster` lists the sessions clients can use. Clients
// find them over the admin API too: GET /api/v1/servers (ServerList in
// cluster.proto, as JSON).
//
// Application-level discovery runs here too (ClusterAppDiscovery), with app
// revisions kept in etcd under kv/revision/.
//
// Thread-safety: Start/Shutdown from one thread. The role runs one registry
// loop thread plus gRPC's and the etcd watchers' threads.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "coord/etcd_client.h"
#include "registry/server/registry_config.h"

namespace cairn::cluster {

class SessionRole {
 public:
  // Listens on config.listen (gRPC) and config.admin (HTTP), joins the
  // cluster. REQUIRES: client outlives the role.
  static absl::StatusOr<std::unique_ptr<SessionRole>> Start(coord::EtcdClient& client,
                                                            const RegistryConfig& config);
  ~SessionRole();  // Shutdown()

  // Leaves membership, ends every client stream (clients move to another
  // session and replay), stops. The data servers keep this session's
  // publishers for their session lease, or until the clients re-register.
  void Shutdown();

  const std::string& grpc_address() const;
  const std::string& admin_address() const;

  struct Impl;

 private:
  explicit SessionRole(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cairn::cluster
