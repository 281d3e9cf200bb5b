// RevisionCollector: garbage collection of app revisions in cluster mode.
//
// Standalone mode counts every reference to a revision in one process. In a
// cluster no server sees them all, but every reference to a revision of app A
// is an instance in the datum `app:A`, which lives in one slot. So the leader
// of that slot decides: a data server collects the revisions of the apps whose
// datum it leads (and has rebuilt), and nothing else.
//
// Every `sweep_interval` it reads the revision prefix of the cluster's KvStore
// in etcd (one range read) and, for each revision of an app it leads, asks
// `in_use` whether an instance references it. A revision unreferenced on
// every sweep for `gc_after` (counted from when this server first saw it so;
// a leader change starts the count again) is deleted with a transaction that
// holds only if the key's mod revision is still the one seen. Sessions
// rewrite a revision when a client registers it again (a "touch",
// ClusterAppDiscovery), which changes its mod revision: a revision a client
// is about to use again is then not deleted, and the count restarts.
//
// Thread-safety: Start/Stop on the owner's thread; sweeps run on `loop`
// (where in_use is called) and the etcd calls on `io_loop`.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/event_loop.h"
#include "coord/etcd_client.h"

namespace cairn::cluster {

class RevisionCollector {
 public:
  // The revisions the instances of an app use, or nullopt if this server
  // does not lead (or has not rebuilt) the slot of the app's datum. Called on
  // the loop.
  using InUse = std::function<std::optional<std::set<std::string>>(const std::string& app_name)>;

  struct Options {
    std::string revision_prefix;  // etcd prefix: ClusterKeys::Kv() + kRevisionKeyPrefix
    std::chrono::milliseconds gc_after{600000};
    std::chrono::milliseconds sweep_interval{30000};
  };

  // REQUIRES: client, loop and io_loop outlive this object.
  RevisionCollector(coord::EtcdClient& client, EventLoop& loop, EventLoop& io_loop, Options options,
                    InUse in_use);
  ~RevisionCollector();

  // On the loop: starts sweeping.
  void Start();
  // On the loop: no sweep starts or finishes after this.
  void Stop();

  // Revisions deleted so far (for tests and logs).
  size_t deleted() const { return deleted_; }

 private:
  struct Unreferenced {
    SteadyTime since;
    int64_t mod_revision = 0;
  };
  struct Seen {
    std::string revision;
    std::string app_name;
    int64_t mod_revision = 0;
  };

  void Sweep();
  void OnRead(absl::StatusOr<std::vector<Seen>> seen);

  coord::EtcdClient& client_;
  EventLoop& loop_;
  EventLoop& io_loop_;
  const Options options_;
  InUse in_use_;
  std::unordered_map<std::string, Unreferenced> unreferenced_;  // by revision id
  size_t deleted_ = 0;
  std::unique_ptr<EventLoop::Timer> timer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace cairn::cluster
