// The chaos suite's cluster scenario: etcd, 2 meta, 3 data and 2 session
// `cairn registry --role ...` processes (tests/support/cluster_harness.h, its
// short timings: etcd lease 2 s, session lease 4 s), the canaries of
// canary.h on the two sessions, and the faults below, each a named workload.
//
// With a NetnsLab every process runs in its own network namespace (netns.h)
// and the partition faults can run; without one everything is on 127.0.0.1
// and they cannot.
//
// Thread-safety: none; use from the driver thread.
#pragma once

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "canary.h"
#include "cluster_harness.h"
#include "coord/etcd_client.h"
#include "netns.h"
#include "report.h"
#include "scenario.h"

namespace cairn::chaos {

class ClusterChaos {
 public:
  // The faults, in the order a full run takes them:
  //   data_kill9_restart      kill -9 of a data server, restarted at once (same id)
  //   data_sigstop            SIGSTOP of a data server for 3 leases, then SIGCONT
  //   two_data_kill9_restart  kill -9 of two data servers at once, both restarted
  //   data_rolling_sigterm    SIGTERM + restart of each data server, 2 s apart
  //   session_kill9_restart   kill -9 of a session (its clients fail over), restarted
  //   session_sigstop         SIGSTOP of a session for 1.5 session leases, then SIGCONT
  //   meta_leader_kill9       kill -9 of the meta leader, restarted 1.5 leases later
  //   meta_leader_sigstop     SIGSTOP of the meta leader for 3 leases, then SIGCONT
  //   etcd_sigstop            SIGSTOP of etcd for 5 s, then SIGCONT
  //   etcd_down_then_rolling  etcd SIGKILLed for 5 s and restarted (same data dir
  //                           and port), then a rolling data restart
  //   data_cut_from_etcd      (netns) a data server cut from etcd both ways for 3
  //                           leases, not from the sessions
  //   session_cut_from_data   (netns) a session cut from one data server both ways
  //                           for 1.5 session leases
  //   data_to_session_oneway  (netns) packets from a data server to a session
  //                           dropped for 1.5 session leases (the other way passes)
  static const std::vector<std::string>& Names();
  static bool NeedsPartitions(const std::string& name);

  // `lab` (may be null: no partitions) must outlive this object.
  ClusterChaos(ChaosSettings settings, Report& report, NetnsLab* lab);
  ~ClusterChaos();

  // Starts the cluster and the canaries; waits until the slot table has
  // settled and every view is complete.
  absl::Status Setup();
  // One round of fault `name`.
  void Run(const std::string& name, int round);
  int64_t pushes() { return canaries_ ? canaries_->pushes() : 0; }
  // See chaos::CountLate().
  void CountLate(const std::vector<std::string>& names) {
    if (canaries_) chaos::CountLate(*canaries_, report_, names);
  }

 private:
  absl::StatusOr<Clock::time_point> Fault(const std::string& name, int round);
  absl::StatusOr<Clock::time_point> KillRestart(const std::vector<std::string>& ids,
                                                const std::string& role);
  absl::StatusOr<Clock::time_point> RollingRestart();
  // SIGSTOP of member `id` for `hold`, then SIGCONT.
  absl::StatusOr<Clock::time_point> Freeze(const std::string& id, std::chrono::milliseconds hold);
  absl::StatusOr<Clock::time_point> Partition(
      const std::vector<std::pair<std::string, std::string>>& cuts, std::chrono::milliseconds hold);
  absl::Status StartMember(const std::string& role, const std::string& id);
  std::string MetaLeader();
  // "d1:22 d2:21 d3:21": slots led per data server in etcd's slot table,
  // printed before and at the end of a held fault to show that it bit.
  std::string Leadership();
  // Every slot has a running leader and follower, every data server leads
  // some slot, leaders per data server differ by at most one.
  bool Settled();
  // Restarts members that exited, waits for Settled() and complete views,
  // and moves failed-over clients back (Canaries::Rebalance()).
  void Recover(const std::string& after);

  ChaosSettings settings_;
  Report& report_;
  NetnsLab* lab_;
  cairn::testing::ClusterHarness harness_;
  std::unique_ptr<coord::EtcdClient> etcd_;
  std::unique_ptr<Canaries> canaries_;                // destroyed before the harness
  std::map<std::string, std::string> session_names_;  // address -> id
};

}  // namespace cairn::chaos
