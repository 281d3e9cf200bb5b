#include "scenario.h"

#include <cstdio>
#include <thread>

namespace cairn::chaos {

void RunRound(Canaries& canaries, Report& report, const ChaosSettings& settings,
              const std::string& name, int round,
              const std::function<absl::StatusOr<Clock::time_point>()>& fault,
              const std::function<bool()>& settled) {
  report.Fault(name, settings.budget);
  canaries.SetPhase(name);
  const int64_t removals_before = canaries.false_removals(name);
  const int64_t duplicates_before = canaries.duplicates(name);
  const size_t recorded_before = canaries.removals().size();
  absl::StatusOr<Clock::time_point> ended = fault();
  if (!ended.ok()) {
    std::printf("%-28s round %d: the fault failed: %s\n", name.c_str(), round + 1,
                ended.status().ToString().c_str());
  }
  RoundOutcome outcome = canaries.Observe(ended.ok() ? *ended : Clock::now(), settings.budget,
                                          settled, settings.quiet, settings.watch);
  canaries.JoinChurn();
  std::vector<FalseRemoval> removals = canaries.removals();
  removals.erase(removals.begin(), removals.begin() + static_cast<std::ptrdiff_t>(std::min(
                                                          recorded_before, removals.size())));
  report.AddRound(name, round, outcome, canaries.false_removals(name) - removals_before,
                  canaries.duplicates(name) - duplicates_before, removals, ended.ok());
}

void CountLate(Canaries& canaries, Report& report, const std::vector<std::string>& names) {
  for (const auto& name : names) {
    report.AddLate(name, canaries.false_removals(name), canaries.duplicates(name));
  }
}

void Hold(std::chrono::milliseconds duration) { std::this_thread::sleep_for(duration); }

}  // namespace cairn::chaos
