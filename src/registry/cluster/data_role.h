// DataRole: the data role of cluster mode (`cairn registry --role data`).
//
// It serves the DataNode gRPC service (cluster.proto) for the slots the meta
// leader's table gives it, keeping publishers in a LocalDataServer:
//   * leader of a slot: applies the sessions' writes routed with the slot's
//     current epoch (anything else is refused with ABORTED or UNAVAILABLE,
//     which sessions retry after re-routing), replicates every applied write
//     to the slot's followers, and tells every watching session which datums
//     changed;
//   * follower: applies what the leader replicates, after catching up with a
//     copy of the whole slot;
//   * new leader: rebuilds the slot from the sessions, the authoritative
//     copies. Each session re-sends everything it holds in the slot (a
//     SlotSync), and the slot is served (fetches, change notices) only once
//     every live session has done so, or after `rebuild_timeout`. A
//     follower promoted this way already has the replicated data, so
//     subscribers never see a live publisher vanish while the slot moves.
//   * session leases: a session that stops watching (it died) keeps its
//     publishers for `session_lease`; after that they are removed unless its
//     clients re-registered them through another session.
//
// Thread-safety: Start/Drain/Stop from one thread. The role runs one event
// loop thread of its own (all slot state lives there) plus gRPC's threads.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/grpc_tls.h"
#include "coord/etcd_client.h"

namespace cairn::cluster {

struct DataRoleOptions {
  std::string cluster = "cairn";
  std::string id;                      // unique among data servers
  std::string listen = "127.0.0.1:0";  // the DataNode gRPC address; port 0 picks one
  uint32_t slot_count = 256;           // must equal the meta leader's
  std::chrono::seconds lease_ttl{5};   // of the membership key
  std::chrono::milliseconds session_lease{30000};
  std::chrono::milliseconds rebuild_timeout{3000};
  std::chrono::milliseconds drain_timeout{20000};
  // App revisions in etcd that no instance has used for this long are
  // deleted by the leader of their app's slot (RevisionCollector).
  std::chrono::milliseconds revision_gc_after{600000};
  // TLS of the DataNode server (ServerTlsFiles: client certificates required
  // once a CA is named) and of the channels to other data servers, which
  // present cert_file. Off while no file is named.
  TlsFiles tls;
  // With a CA: the identity (SPIFFE id, or cn=NAME) every caller of the
  // DataNode port must prove. Empty: the one this server's own certificate
  // names (registry servers usually share one).
  std::string peer_id;
};

class DataRole {
 public:
  // Listens, joins the cluster's data members and follows the slot table.
  // REQUIRES: client outlives the role.
  static absl::StatusOr<std::unique_ptr<DataRole>> Start(coord::EtcdClient& client,
                                                         DataRoleOptions options);
  ~DataRole();  // Stop()
  DataRole(const DataRole&) = delete;
  DataRole& operator=(const DataRole&) = delete;

  // The advertised DataNode address (host:port).
  const std::string& address() const;

  // Graceful leave: gives up membership, so the meta leader hands this
  // server's slots to others (promoting followers first), and keeps serving
  // until the table shows it leads no slot, or drain_timeout. Returns
  // whether every slot was handed over.
  bool Drain();
  // Stops serving at once. Idempotent.
  void Stop();

  struct Impl;

 private:
  explicit DataRole(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace cairn::cluster
