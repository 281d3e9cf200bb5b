// The slot table planner: a pure function from (previous table, live data
// servers, options) to the next table. The meta leader runs it whenever
// membership changes, and again after each published step until it reports
// `stable`, so slots move a few at a time.
//
// Rules, in the order they are applied within one step:
//  1. Repair (always, not limited by max_moves): members that are not live
//     are dropped; a slot whose leader is gone promotes one of its live
//     followers (the one leading the fewest slots), or, with no follower
//     left, gets the live server leading the fewest slots. Every slot has a
//     leader whenever a data server is alive.
//  2. Fill: slots with fewer than replicas-1 followers get the live servers
//     with the fewest followers. Extra followers (replicas lowered) go.
//  3. Follower balance: move a follower from the server with the most
//     followers to one with at least two fewer, preferring slots led by the
//     busiest leaders (which sets up step 4).
//  4. Leader balance: between servers whose leader counts differ by two or
//     more, swap roles in a slot where the less loaded one already follows
//     ("promote a follower first": no data moves). Only when no such slot
//     exists does leadership move to a server that was not a follower (it
//     rebuilds the slot from the sessions' copies).
// Steps 2-4 stop after `max_moves` changes. Each move of steps 3-4 lowers
// (sum of leaders^2, sum of followers^2) lexicographically, so repeated steps
// always reach a fixed point; at that point leader counts and follower
// counts each differ by at most one between servers (the property tests
// check this over many join/leave sequences).
//
// Epochs: the table epoch grows by one on every step that changes something;
// each changed slot takes the new table epoch as its own, so slot epochs only
// grow and a data server can compare them.
//
// Thread-safety: pure functions; no shared state.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "registry/meta/meta_service.h"

namespace cairn::cluster {

struct SlotPlanOptions {
  uint32_t slot_count = 256;
  // Copies of each slot, the leader included (1: no followers). Capped by
  // the number of live servers.
  uint32_t replicas = 2;
  // Changes per step in the fill and balance phases; 0: unlimited (the first
  // table of a new cluster).
  uint32_t max_moves = 8;
};

struct SlotPlan {
  SlotTable table;
  uint32_t repairs = 0;  // slots changed by step 1
  uint32_t moves = 0;    // changes made by steps 2-4
  // Leadership moved to a server that did not follow the slot (rule 4's
  // fallback, or a slot with no follower left).
  uint32_t direct_leader_moves = 0;
  bool stable = false;  // another step with the same live set changes nothing
};

// REQUIRES nothing of `previous`: an empty table means a new cluster; a
// table of another size is an error (InvalidArgument: slots cannot be
// resized, the hash would move every key). Duplicate or empty server ids are
// InvalidArgument.
absl::StatusOr<SlotPlan> PlanSlotTable(const SlotTable& previous,
                                       const std::vector<std::string>& live_servers,
                                       const SlotPlanOptions& options);

// Checks what every table must satisfy: slot i at index i; when `live` is not
// empty, every slot has a leader from `live`, followers are live, distinct,
// not the leader, and at most replicas-1; slot epochs <= table epoch.
absl::Status ValidateSlotTable(const SlotTable& table, const std::vector<std::string>& live,
                               uint32_t replicas);

struct ServerLoad {
  uint32_t leaders = 0;
  uint32_t followers = 0;
};
// Per server (every id in `live`, even with nothing assigned).
std::map<std::string, ServerLoad> ComputeLoad(const SlotTable& table,
                                              const std::vector<std::string>& live);

// The slot table as stored in etcd (cairn.cluster.v1.SlotTable).
std::string SerializeSlotTable(const SlotTable& table, uint32_t replicas);
// DataLoss when the bytes are not a slot table; InvalidArgument when slot
// numbers do not match their index.
absl::StatusOr<SlotTable> ParseSlotTable(const std::string& bytes, uint32_t* replicas = nullptr);

}  // namespace cairn::cluster
