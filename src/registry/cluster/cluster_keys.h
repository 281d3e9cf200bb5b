// Where cluster mode keeps its state in etcd. Every key of one cluster lives
// under "/cairn/<cluster>/", so several clusters can share an etcd:
//
//   /cairn/<c>/meta/leader               the meta leader's id, under its lease
//   /cairn/<c>/members/<role>/<id>       MemberInfo (cluster.proto), under the
//                                        member's lease; role: meta|data|session
//   /cairn/<c>/slots/table               SlotTable (cluster.proto), written
//                                        only by the meta leader, fenced on
//                                        its leader key
//   /cairn/<c>/kv/<key>                  the cluster's KvStore (coord/etcd_kv_store.h):
//                                        what standalone keeps in SQLite, e.g.
//                                        kv/revision/<id> (app revisions)
//
// Thread-safety: immutable.
#pragma once

#include <string>

namespace cairn::cluster {

class ClusterKeys {
 public:
  explicit ClusterKeys(const std::string& cluster) : root_("/cairn/" + cluster + "/") {}
  const std::string& root() const { return root_; }
  std::string MetaLeader() const { return root_ + "meta/leader"; }
  std::string Members() const { return root_ + "members/"; }
  std::string Members(const std::string& role) const { return root_ + "members/" + role + "/"; }
  std::string Member(const std::string& role, const std::string& id) const {
    return Members(role) + id;
  }
  std::string SlotTable() const { return root_ + "slots/table"; }
  // Prefix of the cluster's KvStore; ends with '/'.
  std::string Kv() const { return root_ + "kv/"; }

 private:
  std::string root_;
};

}  // namespace cairn::cluster
