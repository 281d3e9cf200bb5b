// MetaRole: the meta role of cluster mode. Every meta server registers
// itself (members/meta/<id>) and campaigns for leadership (meta/leader); the
// leader watches the data servers (members/data/) and keeps the slot table
// (slots/table) planned by PlanSlotTable: at once when membership changes,
// then one step every `step_interval` until the plan is stable, so slots
// move a few at a time. A standby does nothing but wait; it takes over
// within the lease TTL when the leader dies, or at once when it resigns.
//
// Every table write is a transaction fenced twice: on the leader key's
// create revision (only this term's leader writes) and on the table's mod
// revision (no lost update if a previous leader was still finishing a write).
//
// Thread-safety: Start/Stop from one thread; the getters from any thread
// until Stop() begins.
// The role runs one thread of its own plus those of its etcd helpers.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "coord/etcd_client.h"
#include "registry/cluster/slot_planner.h"

namespace cairn::cluster {

struct MetaRoleOptions {
  std::string cluster = "cairn";
  std::string id;       // unique among meta servers
  std::string address;  // advertised in the member key
  SlotPlanOptions plan;
  std::chrono::seconds lease_ttl{5};
  std::chrono::milliseconds step_interval{500};
};

class MetaRole {
 public:
  // Registers, starts campaigning, returns. Fails if etcd cannot be reached
  // for the registration. REQUIRES: client outlives the role.
  static absl::StatusOr<std::unique_ptr<MetaRole>> Start(coord::EtcdClient& client,
                                                         MetaRoleOptions options);
  ~MetaRole();  // Stop()
  MetaRole(const MetaRole&) = delete;
  MetaRole& operator=(const MetaRole&) = delete;

  // Resigns leadership (a standby takes over at once), leaves membership and
  // joins the thread. Idempotent.
  void Stop();
  bool IsLeader() const;
  // Epoch of the last table this server wrote or read (0: none yet).
  uint64_t table_epoch() const;

 private:
  struct State;
  MetaRole(coord::EtcdClient& client, MetaRoleOptions options);
  void Run();
  // One planning step against etcd; returns whether another step is due.
  bool Reconcile();

  coord::EtcdClient& client_;
  const MetaRoleOptions options_;
  std::unique_ptr<State> state_;
};

}  // namespace cairn::cluster
