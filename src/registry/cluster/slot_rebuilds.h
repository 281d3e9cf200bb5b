// SlotRebuilds: when a data server may start serving a slot it has just come
// to lead.
//
// A new leader's copy of a slot may lack publishers: a follower misses the
// writes whose replication was lost, and a server that restarted (or lost
// both copies with its peers) has nothing. The sessions hold the
// authoritative copy, each of its own publishers, and every session re-sends
// its whole part of the slot (a SlotSync) when the slot gets a new leader.
// Until the slot is served, sessions keep pushing the last version they
// fetched: stale beats falsely empty.
//
// The rule: a slot is served once every LIVE session has synced it. Live
// means in etcd membership (its current incarnation) or watching this data
// server; a session that joins or starts watching while the slot rebuilds
// is waited for too. Only after `give_up_after` (the session lease: by then
// a silent session's publishers would be removed anyway) is the slot served
// without the sessions still missing, and that is reported as incomplete.
//
// Pure bookkeeping with the clock passed in, so every order of events can be
// tested. Thread-safety: none; the data role uses it on its loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/clock.h"

namespace cairn::cluster {

class SlotRebuilds {
 public:
  struct Options {
    // A slot rebuilding this long is reported (logs, Overdue()).
    std::chrono::milliseconds warn_after{3000};
    // A slot rebuilding this long is served without the missing sessions.
    std::chrono::milliseconds give_up_after{30000};
  };
  explicit SlotRebuilds(Options options) : options_(options) {}

  // The slot's rebuild starts (this server became its leader). Restarts an
  // ongoing one: syncs sent for an earlier leadership do not count.
  void Begin(uint32_t slot, SteadyTime now);
  // `session` re-sent its whole part of the slot. Ignored if not rebuilding.
  void Synced(uint32_t slot, const std::string& session);
  // The slot is served or no longer led: forget it.
  void End(uint32_t slot);
  bool Rebuilding(uint32_t slot) const { return slots_.contains(slot); }
  size_t size() const { return slots_.size(); }

  struct Ready {
    uint32_t slot = 0;
    bool complete = true;  // false: given up on `missing`
    std::vector<std::string> missing;
  };
  // The slots that may be served now, given the live sessions; each is
  // forgotten (End). `live` = membership incarnations + watching sessions.
  std::vector<Ready> TakeReady(const std::set<std::string>& live, SteadyTime now);

  // Slots rebuilding for longer than warn_after, with the live sessions each
  // still waits for.
  std::map<uint32_t, std::vector<std::string>> Overdue(const std::set<std::string>& live,
                                                       SteadyTime now) const;

 private:
  struct Rebuild {
    SteadyTime since;
    std::set<std::string> synced;
  };
  std::vector<std::string> Missing(const Rebuild& r, const std::set<std::string>& live) const;

  const Options options_;
  std::map<uint32_t, Rebuild> slots_;
};

}  // namespace cairn::cluster
