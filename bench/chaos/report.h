// Results of the chaos suite: per fault, its rounds' convergence times and
// the invariant's counts; printed as a table and written as JSON records
// {workload, system: "cairn", metric, value, unit} after one leading record
// (workload "_run") that describes the run.
//
// Thread-safety: none; use from the driver thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "canary.h"

namespace cairn::chaos {

struct FaultStats {
  std::string name;
  std::chrono::milliseconds budget{0};
  std::vector<double> convergence_ms;  // every round that ran, converged or not
  int rounds = 0;
  int failed_rounds = 0;  // convergence over the budget, stale views, or the fault itself failed
  int64_t false_removals = 0;  // pushes that lacked a live publisher already shown
  int64_t stale_subscribers = 0;
  int64_t duplicates = 0;                    // pushes listing one registration id twice
  std::string skipped;                       // non-empty: not run, and why
  std::vector<FalseRemoval> first_removals;  // the first few, for the log
};

class Report {
 public:
  // Settings and context written in the leading JSON record and the header.
  std::map<std::string, std::string> run_info;

  FaultStats& Fault(const std::string& name, std::chrono::milliseconds budget);
  void Skip(const std::string& name, const std::string& reason);
  // Adds one round's outcome (and the false removals and duplicates counted
  // during it) to `name`'s stats and prints a line for it.
  void AddRound(const std::string& name, int round, const RoundOutcome& outcome,
                int64_t false_removals, int64_t duplicates,
                const std::vector<FalseRemoval>& removals, bool fault_ok);

  // Given the totals counted under `name` over the whole run, adds what the
  // rounds did not count (received after a round's observation ended) and
  // prints it if any.
  void AddLate(const std::string& name, int64_t false_removals_total, int64_t duplicates_total);

  void PrintTable() const;
  std::string Json() const;
  // Empty when every fault that ran had no false removal, no stale
  // subscriber and no round over its budget; otherwise why not (for
  // --check). Duplicates are reported, not checked.
  std::string CheckFailures() const;

 private:
  std::vector<FaultStats> faults_;  // in first-run order
};

// "4 CPUs, <model>, 7.7 GiB RAM".
std::string MachineDescription();
std::string LoadAverage();
// `git rev-parse HEAD` of the source tree, with "+dirty" if tracked files differ.
std::string SourceCommit();

}  // namespace cairn::chaos
