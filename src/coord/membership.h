// Membership through etcd: each server keeps one key under its own lease
// (MemberRegistration) and anyone can keep a live view of a prefix
// (PrefixWatcher), e.g. every data server under ".../members/data/".
//
// A member that dies stops renewing; etcd deletes its key when the lease
// expires (the TTL), and every watcher sees the deletion. A member that
// leaves cleanly revokes its lease: watchers see it at once.
//
// Thread-safety: both classes are thread-safe; each runs one background
// thread, on which its callbacks run. Callbacks must not destroy the object.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "coord/etcd_client.h"

namespace cairn::coord {

// Keeps `key` = `value` alive under a lease of `ttl`. If the lease is lost
// (etcd unreachable for a TTL, or revoked) or the key deleted by someone
// else, it registers again with a new lease as soon as etcd answers.
class MemberRegistration {
 public:
  // REQUIRES: client outlives the registration.
  MemberRegistration(EtcdClient& client, std::string key, std::string value,
                     std::chrono::seconds ttl);
  ~MemberRegistration();  // Leave()
  MemberRegistration(const MemberRegistration&) = delete;
  MemberRegistration& operator=(const MemberRegistration&) = delete;

  // Registers once synchronously (so the caller learns at once whether etcd
  // is reachable), then keeps the registration in the background, retrying
  // even after a failed first attempt. Call once.
  absl::Status Start();
  // Revokes the lease (the key disappears for everyone at once) and stops.
  // Idempotent.
  void Leave();
  // The key exists with our lease, as of the last check.
  bool registered() const;

 private:
  struct State;
  absl::Status RegisterOnce();
  void Run();

  EtcdClient& client_;
  const std::string key_;
  const std::string value_;
  const std::chrono::seconds ttl_;
  std::unique_ptr<State> state_;
};

// A live copy of every key under a prefix: reads the prefix, then watches it
// from the revision after the read, applying each event. If the watch cannot
// resume (etcd compacted the revision away) it reads the prefix again.
class PrefixWatcher {
 public:
  // key (with the prefix removed) -> value.
  using Snapshot = std::map<std::string, std::string>;
  using ChangeCallback = std::function<void(const Snapshot&)>;
  // What changed since the previous call. After a (re)read of the whole
  // prefix `reset` is true and `puts` holds every key: any key not in it is
  // gone.
  struct Changes {
    bool reset = false;
    Snapshot puts;
    std::vector<std::string> deletes;
  };
  using ChangesCallback = std::function<void(Changes)>;

  // REQUIRES: client outlives the watcher.
  PrefixWatcher(EtcdClient& client, std::string prefix, ChangeCallback on_change = nullptr);
  // Incremental: `on_changes` gets each batch of events, not the whole
  // prefix, and the watcher keeps no copy (Get() returns nothing). For large
  // prefixes, where a copy per change would cost O(keys).
  PrefixWatcher(EtcdClient& client, std::string prefix, ChangesCallback on_changes);
  ~PrefixWatcher();
  PrefixWatcher(const PrefixWatcher&) = delete;
  PrefixWatcher& operator=(const PrefixWatcher&) = delete;

  // Reads the prefix synchronously (error if etcd cannot be read), then
  // keeps watching in the background. `on_change` runs after the first read
  // and after every change, with the whole new snapshot (`on_changes`: with
  // what changed). Call once.
  absl::Status Start();
  Snapshot Get() const;

 private:
  struct State;
  absl::Status Load();
  void Run();

  EtcdClient& client_;
  const std::string prefix_;
  ChangeCallback on_change_;
  ChangesCallback on_changes_;
  std::unique_ptr<State> state_;
};

}  // namespace cairn::coord
