// ClusterView: what a data or session server knows of its cluster, kept live
// from etcd: the slot table and the data and session members.
//
// Three PrefixWatchers feed it; every change is posted, as a whole new
// snapshot, to the owner's event loop, so the roles read their view without
// locks. Several changes in a row may arrive as one snapshot.
//
// Thread-safety: Start/Stop from the owning thread; the callback runs on
// `loop`. Stop before the loop stops.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "cairn/cluster/v1/cluster.pb.h"
#include "common/event_loop.h"
#include "coord/etcd_client.h"
#include "coord/membership.h"
#include "registry/cluster/cluster_keys.h"

namespace cairn::cluster {

// What a session calls itself towards the data servers (WatchRequest.session,
// ApplyRequest.session, the owner of its publishers): its member id and the
// start time of this process, "s1@1733570000123". A session restarted under
// the same id is another incarnation: its first (empty) SlotSync must not
// wipe the publishers its previous incarnation held for clients that are
// still coming back; those go with that incarnation's lease instead.
std::string SessionIncarnation(const v1::MemberInfo& session);

struct ClusterSnapshot {
  std::shared_ptr<const v1::SlotTable> table;      // null until the meta leader wrote one
  std::map<std::string, v1::MemberInfo> data;      // id -> member
  std::map<std::string, v1::MemberInfo> sessions;  // id -> member

  // The incarnations (SessionIncarnation) of the sessions in membership.
  std::set<std::string> SessionIncarnations() const;
};

class ClusterView {
 public:
  using Callback = std::function<void(const ClusterSnapshot&)>;
  // REQUIRES: client and loop outlive the view.
  ClusterView(coord::EtcdClient& client, const ClusterKeys& keys, EventLoop& loop,
              Callback on_change);
  ~ClusterView();  // Stop()

  // Reads everything once (error if etcd cannot be read), posts the first
  // snapshot, then follows changes in the background. The first snapshot
  // holds all three (table, data members, session members): a partial one
  // would tell a restarted data server that it leads slots in a cluster
  // without sessions.
  absl::Status Start();
  // After it returns no callback runs or is queued to run. Idempotent; the
  // first call must come while the loop runs.
  void Stop();

 private:
  void Changed();

  EventLoop& loop_;
  Callback on_change_;
  std::shared_ptr<bool> alive_;  // read on the loop; cleared on it by Stop
  bool stopped_ = false;
  std::mutex mu_;
  ClusterSnapshot latest_;     // guarded by mu_
  bool post_pending_ = false;  // guarded by mu_
  bool complete_ = false;      // guarded by mu_: every prefix was read once
  std::unique_ptr<coord::PrefixWatcher> table_;
  std::unique_ptr<coord::PrefixWatcher> data_;
  std::unique_ptr<coord::PrefixWatcher> sessions_;
};

}  // namespace cairn::cluster
