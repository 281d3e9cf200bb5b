// What the chaos suite's scenarios (cluster_chaos.h, standalone_chaos.h)
// share: the settings, and one measured round of a fault.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "canary.h"
#include "report.h"

namespace cairn::chaos {

struct ChaosSettings {
  // A fault's views must be right again this long after its end.
  std::chrono::milliseconds budget{10000};
  // Views right for this long (and the system settled) ends a round.
  std::chrono::milliseconds quiet{2000};
  // A round watches at least this long after the fault's end (a cluster:
  // the session lease + 1 s; a standalone registry: its restart warm-up
  // + 1 s), so that a late removal is counted against the fault causing it.
  std::chrono::milliseconds watch{5000};
  uint32_t slots = 64;
  int data_ids = 4;
  int publishers_per_data_id = 6;
  int publishing_clients = 4;
};

// One round of fault `name`: labels the canaries' pushes with it, runs
// `fault` (which returns the moment the fault ended: heal or restart done;
// it calls Canaries::StartChurn() while the fault holds),
// then Canaries::Observe() with `settled`, and adds the outcome to `report`.
// A fault that fails (error) still counts as a round, a failed one; its
// error is printed and the observation starts at once.
void RunRound(Canaries& canaries, Report& report, const ChaosSettings& settings,
              const std::string& name, int round,
              const std::function<absl::StatusOr<Clock::time_point>()>& fault,
              const std::function<bool()>& settled);

// Adds what `canaries` counted under `names` after their rounds ended (while
// the system settled, before the next fault) to the rounds' totals in
// `report`, and prints it. Call when a scenario is done.
void CountLate(Canaries& canaries, Report& report, const std::vector<std::string>& names);

// Sleeps `duration`; a fault holds its condition this long.
void Hold(std::chrono::milliseconds duration);

}  // namespace cairn::chaos
