// The chaos suite's standalone scenario: one `cairn registry` (no --role)
// on 127.0.0.1 with a private data dir (tests/support/process.h
// RegistryProcess), the canaries of canary.h all listing only that server,
// and one fault:
//   standalone_kill9_restart  kill -9, restarted on the same port and data dir
//                             while every client reconnects and replays
//
// Thread-safety: none; use from the driver thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "canary.h"
#include "process.h"
#include "report.h"
#include "scenario.h"

namespace cairn::chaos {

class StandaloneChaos {
 public:
  static const std::vector<std::string>& Names();

  StandaloneChaos(ChaosSettings settings, Report& report);
  ~StandaloneChaos();

  absl::Status Setup();
  void Run(const std::string& name, int round);
  int64_t pushes() { return canaries_ ? canaries_->pushes() : 0; }
  // See chaos::CountLate().
  void CountLate(const std::vector<std::string>& names) {
    if (canaries_) chaos::CountLate(*canaries_, report_, names);
  }

 private:
  ChaosSettings settings_;
  Report& report_;
  cairn::testing::RegistryProcess registry_;
  std::unique_ptr<Canaries> canaries_;  // destroyed before the registry
};

}  // namespace cairn::chaos
