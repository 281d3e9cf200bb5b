// Network partitions for the chaos suite: Linux network namespaces joined by
// veth pairs through a hub namespace, and blackhole policy rules in the hub.
//
// Layout, for a name prefix P ("cairnchaos<pid>", the pid of the process
// that created it) and members m_1..m_n (etcd, meta, data, session ids):
//   * namespace P-hub, where the chaos driver itself runs (re-executed with
//     `ip netns exec P-hub`), with IPv4 forwarding on;
//   * one namespace P-<id> per member, joined to the hub by a veth pair:
//     hub side vh<N> = 10.213.N.1/30, member side eth0 = 10.213.N.2/30 with
//     its default route via the hub. Loopback is up everywhere.
// Every address lives only inside these namespaces; nothing touches the
// host's own network namespace except creating and deleting the namespaces.
//
// A cut A -> B is a rule in the hub `from <A> to <B> blackhole`: packets
// from A to B are dropped silently (no reset: a stalled connection, as a
// real partition). Both directions are two rules. Heal() deletes them.
//
// Thread-safety: none; use from the driver thread.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cairn::chaos {

class NetnsLab {
 public:
  // "cairnchaos<pid>".
  static std::string PrefixFor(int pid);
  // Deletes namespaces named cairnchaos<pid>... whose pid no longer runs
  // (left by a run that was killed), after killing the processes inside.
  // Namespaces of a run still alive are left alone.
  static void DeleteLeftovers();
  // Creates the layout. On failure deletes whatever it made.
  static absl::StatusOr<NetnsLab> Create(const std::string& prefix,
                                         const std::vector<std::string>& members);
  // The layout made by Create() in another process (the driver inside the
  // hub); creates nothing.
  static NetnsLab Attach(const std::string& prefix, const std::vector<std::string>& members);

  // Kills every process left in the namespaces and deletes them. Idempotent.
  void Destroy();

  const std::string& hub() const { return hub_; }
  // The command that runs argv inside the hub namespace (exec, same pid).
  std::vector<std::string> ExecInHub() const;
  // The command that runs argv inside member `id`'s namespace (exec, same
  // pid), killed by the kernel if the process that started it dies.
  std::vector<std::string> ExecPrefix(const std::string& id) const;
  // The member's address, "10.213.N.2".
  std::string Address(const std::string& id) const;

  // Drops packets from `from` to `to` (member ids) until Heal().
  absl::Status Cut(const std::string& from, const std::string& to);
  // Deletes every cut made through this object.
  absl::Status HealAll();
  // Checks that a cut exists in the hub's rule list (for the log).
  std::string Rules() const;

 private:
  NetnsLab(std::string prefix, std::vector<std::string> members)
      : prefix_(std::move(prefix)), hub_(prefix_ + "-hub"), members_(std::move(members)) {}
  int Index(const std::string& id) const;  // N, from 1
  std::string Namespace(const std::string& id) const { return prefix_ + "-" + id; }

  std::string prefix_;
  std::string hub_;
  std::vector<std::string> members_;
  std::vector<std::pair<std::string, std::string>> cuts_;  // (from address, to address)
};

}  // namespace cairn::chaos
