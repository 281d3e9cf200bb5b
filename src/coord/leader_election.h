// LeaderElection: one leader among candidates through an etcd lease.
//
// Campaign: each candidate holds its own lease (kept alive by a LeaseKeeper)
// and runs a transaction "if `key` does not exist, put key = my value with my
// lease, else read key". Whoever created the key leads. The others watch the
// key and try again when it is deleted: when the leader resigns (it deletes
// the key) or its lease expires (etcd deletes the key), so a standby takes
// over within the TTL of a leader that died.
//
// Safety: the leader gives leadership up (callback false) no later than etcd
// expires its lease, because its keeper counts the TTL from the moment it
// sent the last successful renewal. Writes that must only come from the
// leader should still be fenced: make them transactions that compare
// `key`'s create revision with leader_revision() (it changes with every
// new term), so a leader that stalled past its lease cannot write.
//
// Keys: `key` itself; nothing else in etcd may start with `key` (the watch is
// a prefix watch).
//
// Thread-safety: all methods are thread-safe. `on_change` runs on the
// election's own thread, once per transition (true: we lead; false: we no
// longer do), and must not call Resign() or destroy the election.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "coord/etcd_client.h"

namespace cairn::coord {

struct ElectionOptions {
  std::string key;    // e.g. "/cairn/<cluster>/meta/leader"
  std::string value;  // what observers read as the leader (id, address)
  std::chrono::seconds ttl{5};
  // How often to re-read the key even without a watch event (repairs a
  // missed event; bounds how stale Leader() can be).
  std::chrono::milliseconds recheck{2000};
  // Wait after an etcd error before trying again.
  std::chrono::milliseconds retry{300};
};

class LeaderElection {
 public:
  using ChangeCallback = std::function<void(bool leader)>;

  // REQUIRES: client outlives the election.
  LeaderElection(EtcdClient& client, ElectionOptions options, ChangeCallback on_change);
  ~LeaderElection();  // Resign()
  LeaderElection(const LeaderElection&) = delete;
  LeaderElection& operator=(const LeaderElection&) = delete;

  // Starts campaigning in the background. Call once.
  void Start();
  // Stops campaigning; if leading, deletes the key (only if it is still
  // ours) and revokes the lease so a standby takes over at once, then reports
  // false. Blocks for at most about two etcd request timeouts. Idempotent.
  void Resign();

  bool IsLeader() const;
  // The leader's value as last read ("" when there is none or it is unknown).
  std::string Leader() const;
  // While leading: the create revision of the leader key (the term's fencing
  // token). 0 when not leading.
  int64_t leader_revision() const;

 private:
  struct State;
  void Run();

  EtcdClient& client_;
  const ElectionOptions options_;
  ChangeCallback on_change_;
  std::unique_ptr<State> state_;
};

}  // namespace cairn::coord
